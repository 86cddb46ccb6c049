"""`migkit ingest`: submissions -> the DATA folder of tables (docs/tables.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, guarded, out, progress_bar, shown
from toolkit.cli.render import FormVersionsOption, fields_of, out_option, print_issues, progress_from, render

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.
if TYPE_CHECKING:
    from toolkit.ingest import IngestResult
    from toolkit.simulate import SimulateResult

# Show a progress bar from this many submission files on.
_PROGRESS_MIN_FILES = 500
_ISSUES_SHOWN = 20


def _ingest_fields(result: IngestResult, out_dir: Path, written: list[Path]) -> dict[str, Any]:
    return {
        "form_id": result.form_id,
        "form_versions": list(result.form_versions),
        "out": out_dir,
        "files": written,
        "tables": {name: {"rows": len(frame), "columns": len(frame.columns)} for name, frame in result.tables.items()},
        "stats": result.stats,
        "issues_by_code": result.counts_by_code(),
    }


def _show_ingest(result: IngestResult, out_dir: Path, manifest: str) -> None:
    table = Table(title=shown(f"{result.form_id}: {result.stats.get('submissions', 0)} submissions -> {out_dir}"))
    for column in ("table", "level", "rows", "columns"):
        table.add_column(column, justify="right" if column in {"rows", "columns"} else "left")
    for name, frame in result.tables.items():
        table.add_row(shown(name), shown(result.table_paths[name]), str(len(frame)), str(len(frame.columns)))
    out.print(table)
    if result.issues:
        issue_table = Table(title="Issues")
        for column in ("code", "severity", "count"):
            issue_table.add_column(column)
        counts = Counter((issue.code, str(issue.severity)) for issue in result.issues)
        for (code, severity), count in counts.most_common():
            issue_table.add_row(code, severity, str(count))
        out.print(issue_table)
    print_issues(
        result.issues, limit=_ISSUES_SHOWN, whole_list=f"all are listed in {shown(out_dir / manifest)} and with --json"
    )


@app.command("ingest")
@guarded
def ingest_command(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Folders of submissions (migkit decrypt output or any tree of "
            "instance XMLs), zips of them, or ODK Central CSV export zips."
        ),
    ],
    form: FormVersionsOption,
    out_dir: Annotated[Path, out_option("The DATA folder to write the tables into.")],
    csv: Annotated[bool, typer.Option("--csv", help="Also write each table as CSV (UTF-8 with BOM).")] = False,
    attachments: Annotated[
        Path | None, typer.Option("--attachments", help="Copy the submissions' attachments into this folder.")
    ] = None,
    as_json: JsonOption = False,
) -> int:
    """Turn submissions into one table per level of the form (main and each repeat): Parquet + tables.json."""
    from toolkit import ingest as ingest_stage
    from toolkit.xform import load_form

    models = [load_form(path) for path in form]
    with progress_bar(
        TextColumn("reading submissions"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        progress = progress_from(bar, "ingest", shown_from=_PROGRESS_MIN_FILES)
        result = ingest_stage.ingest(inputs, models, attachments_dir=attachments, progress=progress)
    written = ingest_stage.write_tables(result, out_dir, csv=csv)
    return render(
        "ingest",
        _ingest_fields(result, out_dir, written),
        result.issues,
        ok=result.valid,
        as_json=as_json,
        people=lambda: _show_ingest(result, out_dir, ingest_stage.MANIFEST),
    )


@app.command("simulate")
@guarded
def simulate_command(
    form: Annotated[Path, typer.Argument(help="The form (XLSForm .xlsx/.xls/.md or XForm .xml).")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="Number of submissions.")] = 100,
    out_dir: Annotated[Path, out_option("Folder for <uuid>/submission.xml.")] = Path("sim"),
    seed: Annotated[int, typer.Option("--seed", help="Seed; the same seed gives the same submissions.")] = 0,
    encrypt_with: Annotated[
        Path | None,
        typer.Option("--encrypt-with", help="PEM public key: write Collect-style encrypted folders."),
    ] = None,
    media: Annotated[
        Path | None,
        typer.Option("--media", help="The form's attachments (pulldata CSVs); default <form>-media/."),
    ] = None,
    answers: Annotated[
        Path | None,
        typer.Option(
            "--answers",
            help="TOML file: how often each answer is given (choice weights, number distributions) by question.",
        ),
    ] = None,
    errors: Annotated[
        float,
        typer.Option(
            "--errors",
            min=0.0,
            max=1.0,
            help="Share of submissions (0-1) given one planted fault, listed in an answer key CSV (see above).",
        ),
    ] = 0.0,
    errors_key: Annotated[
        Path | None,
        typer.Option("--errors-key", help="Answer key CSV of the planted faults; default OUT-errors.csv."),
    ] = None,
    as_json: JsonOption = False,
) -> int:
    """Write synthetic submissions that follow the form's skip logic, constraints and calculations.

    Only interviews ODK Collect could finalise are written: a draw that reaches a relevant required note (a hard
    stop) or leaves a relevant required question empty, or in which `migkit validate` would find anything, is
    drawn again. Text questions with a regex() constraint get strings that match it.

    --errors RATE plants one fault in that share of submissions and writes the answer key (instance_id, path,
    code): exactly what `migkit validate` must find, no more and no fewer. Faults go only into fields that no
    other expression reads, so each makes one finding: nonrelevant_answered (a valid answer in a skipped
    question), required_missing (a required answer removed), constraint_violated (a number just past a literal
    bound, never -98/-99), choice_unknown (a code not in the list), calculate_mismatch (a stored calculation
    changed; never uuid()/now()/random()/once()), duplicate_instance (the submission written again as
    <uuid>-copy; plain output only). The rest of each submission is what the same seed gives without --errors.
    """
    from toolkit import simulate as simulate_stage
    from toolkit.xform import load_form

    model = load_form(form)
    rules = simulate_stage.load_answers(answers, model) if answers is not None else None
    with progress_bar(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        result = simulate_stage.simulate(
            model,
            n,
            out_dir,
            seed=seed,
            encrypt_with=encrypt_with,
            media_dir=media,
            progress=progress_from(bar, "simulate", shown_from=_PROGRESS_MIN_FILES),
            answers=rules,
            errors=errors,
            errors_key=errors_key,
        )
    fields = {name: value for name, value in fields_of(result).items() if name not in _SIMULATE_NOT_SHOWN}
    return render("simulate", fields, result.issues, ok=True, as_json=as_json, people=lambda: _show_simulation(result))


# Kept out of simulate's --json: the instance IDs (one per submission: the folders list them) and the answer key
# itself (the CSV at errors_key has it).
_SIMULATE_NOT_SHOWN = frozenset({"instance_ids", "planted"})


def _show_simulation(result: SimulateResult) -> None:
    out.print(
        f"{result.stats['instances']} submissions of {shown(result.form_id)} "
        f"({result.stats['repeat_rows']} repeat rows{', encrypted' if result.encrypted else ''}) "
        f"-> {shown(result.out_dir)} in {result.stats['seconds']} s"
    )
    if result.errors_key is not None:
        out.print(f"{result.stats['planted']} planted faults; answer key: {result.errors_key}")
    print_issues(result.issues)
