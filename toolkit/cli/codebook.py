"""`migkit codebook`: HTML, XLSX and DDI Codebook 2.5 from the form (and the data, when given)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from toolkit.cli import app
from toolkit.cli._common import JsonOption, guarded, out, shown
from toolkit.cli.render import LangOption, MediaOption, out_option, print_issues, render
from toolkit.settings import CODEBOOK_FORMATS

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.


@app.command("codebook")
@guarded
def codebook(
    form: Annotated[Path, typer.Argument(help="XLSForm (.xlsx/.xls/.md) or compiled XForm (.xml).")],
    out_dir: Annotated[Path, out_option("Output folder.")] = Path("codebook"),
    data: Annotated[
        Path | None, typer.Option("--data", help="DATA folder from `migkit ingest`, for statistics.")
    ] = None,
    rename_map: Annotated[
        Path | None, typer.Option("--rename-map", help="<form_id>-rename-map.csv from `migkit export`.")
    ] = None,
    lang: LangOption = None,
    media: MediaOption = None,
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: html, xlsx, ddi.")] = ",".join(
        CODEBOOK_FORMATS
    ),
    as_json: JsonOption = False,
) -> int:
    """Write a codebook of the form's variables (HTML, XLSX, DDI Codebook 2.5 XML)."""
    from toolkit.codebook import write_codebook
    from toolkit.xform import load_form

    model = load_form(form)
    tables, asked = _data_for_codebook(data, form, media) if data is not None else (None, None)
    result = write_codebook(
        model,
        out_dir=out_dir,
        formats=formats.split(","),
        tables=tables,
        rename_map=rename_map,
        language=lang,
        asked=asked,
    )

    def people() -> None:
        for path in result.files:
            out.print(shown(path))
        print_issues(result.issues)

    return render("codebook", {"files": result.files}, result.issues, ok=True, as_json=as_json, people=people)


def _data_for_codebook(data: Path, form: Path, media: Path | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The DATA folder's tables, and per question the rows skip logic asked it (to tell "not asked" from
    "missing": the form's skip logic evaluated on the same tables)."""
    from toolkit import validate as validation
    from toolkit.dataset import DataFolder

    tables = DataFolder.read(data).load_all(recorded_dtypes=True)
    return tables, dict(validation.validate(data, form, media_dir=media).asked) or None
