"""`migkit export DATA --form FORM --format sav,dta,csv [--lang L] [--out OUT] [--json]`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, guarded, out, progress_bar, shown, usage_error
from toolkit.cli.render import FormOption, LangOption, fields_of, out_option, print_issues, progress_from, render
from toolkit.settings import CHOICE_NUMERIC_CODE_COLUMN

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.
if TYPE_CHECKING:
    from toolkit.export import ExportResult


@app.command("export")
@guarded
def export(
    data_dir: Annotated[Path, typer.Argument(help="The DATA folder written by `migkit ingest`.")],
    form: FormOption,
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: sav, dta, csv.")] = "sav,dta,csv",
    lang: LangOption = None,
    out_dir: Annotated[Path | None, out_option("Output folder; default `export` next to DATA.")] = None,
    choice_missing: Annotated[
        str | None,
        typer.Option("--choice-missing", help='Choice codes that are missing, e.g. "98=d,99=r,97=n" (Stata letters).'),
    ] = None,
    number_missing: Annotated[
        str | None, typer.Option("--number-missing", help='Numeric sentinels, e.g. "-98=d,-99=r".')
    ] = None,
    codes_from: Annotated[
        str | None,
        typer.Option(
            "--codes-from",
            help="Choices column with numeric codes for lists whose names are not numbers "
            "(default iso_num, as forms lint reads them); lists without it are coded 1..n.",
        ),
    ] = CHOICE_NUMERIC_CODE_COLUMN,
    as_json: JsonOption = False,
) -> int:
    """Labelled SPSS (.sav) and Stata 14+ (.dta) files, CSV, and companion .sps/.do syntax, one per table."""
    from toolkit import export as export_lib
    from toolkit.xform import load_form

    try:
        codes = export_lib.MissingCodes.parse(choice_missing, number_missing)
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    model = load_form(form)
    with progress_bar(TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar:
        result = export_lib.export_tables(
            data_dir,
            model,
            formats=formats.split(","),
            language=lang,
            out_dir=out_dir or data_dir.parent / "export",
            missing_codes=codes,
            codes_from=codes_from,
            progress=progress_from(bar, "export", shown_from=_PROGRESS_MIN_ROWS),
        )
    fields = {**fields_of(result), "renamed": [r for r in result.renames if r.reason]}
    del fields["renames"]  # every variable's entry is in the rename map file; --json lists the renamed ones
    return render("export", fields, result.issues, ok=result.ok, as_json=as_json, people=lambda: _show_export(result))


def _show_export(result: ExportResult) -> None:
    table = Table(title=shown(f"Export of {result.form_id} (labels: {result.language or 'form default'})"))
    for column in ("file", "kind", "rows", "variables"):
        table.add_column(column, justify="right" if column in {"rows", "variables"} else "left")
    for file in result.files:
        table.add_row(shown(Path(file.path).name), file.kind, str(file.rows or ""), str(file.variables or ""))
    out.print(table)
    print_issues(
        result.issues, per_code=_SHOWN_PER_CODE, whole_list="the rename map and --json list them all", tally=True
    )


# Per code, the first few issues are shown; renames and cut labels can run into the hundreds on a big form.
_SHOWN_PER_CODE = 3


# A bar only for exports that take a while (tables of this many rows and more).
_PROGRESS_MIN_ROWS = 50_000
