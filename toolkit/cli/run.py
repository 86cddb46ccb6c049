"""`migkit run`: the whole survey job from a survey.toml (decrypt, ingest, validate, weights, indicators, export,
codebook), with an index page of the run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, err, guarded, out, shown
from toolkit.cli.render import exit_code, fields_of, issue_line, out_option, render
from toolkit.errors import EXIT_CANNOT_RUN

if TYPE_CHECKING:
    from toolkit.pipeline import PipelineResult

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.

# The folders a run writes, in the order of the stages, and what each holds.
_FOLDERS = (
    ("submissions", "decrypted submissions"),
    ("data", "Parquet tables, weights and their report"),
    ("validation", "report.html, findings.csv"),
    ("indicators", "indicator tables: HTML, XLSX, CSV"),
    ("export", ".sav .dta .csv and syntax"),
    ("codebook", "HTML, XLSX, DDI"),
)

_STYLE = {"ok": "green", "problems": "yellow", "failed": "red", "skipped": "dim"}


@app.command("run")
@guarded
def run(
    config: Annotated[Path, typer.Argument(help="The survey configuration (survey.toml).")],
    out_dir: Annotated[Path | None, out_option("Output folder (default: from the file).")] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Check the configuration, the form, the key and its passphrase, the inputs and the weighting "
            "design; run nothing.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> int:
    """Run the survey job: decrypt -> ingest -> validate -> weights -> indicators -> export -> codebook."""
    from toolkit.pipeline import SurveyConfig, check_survey, run_survey

    survey = SurveyConfig.from_file(config)
    if check:
        result = check_survey(survey)
    else:
        with err.status("starting") as status:
            result = run_survey(survey, out_dir=out_dir, on_stage=lambda name: status.update(f"{name} ..."))
    issues = [issue for stage in result.stages for issue in stage.issues]
    code = EXIT_CANNOT_RUN if result.failed else exit_code(result.ok)
    return render(
        "run",
        fields_of(result),
        issues,
        ok=result.ok,
        code=code,
        as_json=as_json,
        people=lambda: _show_run(result, check=check),
    )


def _show_run(result: PipelineResult, *, check: bool) -> None:
    title = f"Checks of {result.survey} (nothing run)" if check else f"{result.survey} -> {result.out_dir}"
    table = Table(title=shown(title))
    for column in ("check", "status", "summary") if check else ("stage", "status", "summary", "seconds"):
        table.add_column(column)
    for stage in result.stages:
        colour = _STYLE[stage.status]
        seconds = [] if check else [f"{stage.seconds:.1f}" if stage.status != "skipped" else ""]
        table.add_row(stage.name, f"[{colour}]{stage.status}[/]", shown(stage.summary), *seconds)
    out.print(table)
    if not check:
        folder = Path(result.out_dir)
        made = [f"{name}/ ({what})" for name, what in _FOLDERS if (folder / name).is_dir()]
        out.print(f"Outputs in {shown(str(folder))}/: " + ", ".join(made))
        out.print(f"Start at {shown(str(folder / 'index.html'))}: it links every report of the run.")
    for stage in result.stages:
        listed = [i for i in stage.issues if i.severity == "error"][:5]
        for issue in listed:
            err.print(issue_line(issue, prefix=stage.name), markup=True, highlight=False)
        hidden = sum(1 for i in stage.issues if i.severity == "error") - len(listed)
        if hidden > 0:
            err.print(f"{stage.name}: {hidden} more problems; see the files in {shown(result.out_dir)}")
