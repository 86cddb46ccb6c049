"""`migkit run`: the whole survey job from a survey.toml (decrypt, ingest, validate, weights, export, codebook)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, err, guarded, out, print_json
from toolkit.errors import EXIT_CANNOT_RUN, EXIT_DATA_PROBLEMS, EXIT_OK

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.

_STYLE = {"ok": "green", "problems": "yellow", "failed": "red", "skipped": "dim"}


@app.command("run")
@guarded
def run(
    config: Annotated[Path, typer.Argument(help="The survey configuration (survey.toml).")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: from the file).")
    ] = None,
    as_json: JsonOption = False,
) -> int:
    """Run the survey job: decrypt -> ingest -> validate -> weights -> export -> codebook."""
    from toolkit.pipeline import SurveyConfig, run_survey

    survey = SurveyConfig.from_file(config)
    with err.status("starting") as status:
        result = run_survey(survey, out_dir=out_dir, on_stage=lambda name: status.update(f"{name} ..."))
    if as_json:
        print_json(result)
    else:
        table = Table(title=f"{result.survey} -> {result.out_dir}")
        for column in ("stage", "status", "summary", "seconds"):
            table.add_column(column)
        for stage in result.stages:
            colour = _STYLE[stage.status]
            table.add_row(
                stage.name,
                f"[{colour}]{stage.status}[/]",
                stage.summary,
                f"{stage.seconds:.1f}" if stage.status not in {"skipped"} else "",
            )
        out.print(table)
        for stage in result.stages:
            shown = [i for i in stage.issues if i.severity == "error"][:5]
            for issue in shown:
                err.print(f"[yellow]{stage.name}[/]: {escape(issue.format())}", markup=True, highlight=False)
            hidden = sum(1 for i in stage.issues if i.severity == "error") - len(shown)
            if hidden > 0:
                err.print(f"{stage.name}: {hidden} more problems; see the files in {result.out_dir}")
    if result.failed:
        return EXIT_CANNOT_RUN
    return EXIT_OK if result.ok else EXIT_DATA_PROBLEMS
