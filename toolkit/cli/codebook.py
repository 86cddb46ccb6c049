"""`migkit codebook`: HTML, XLSX and DDI Codebook 2.5 from the form (and the data, when given)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli import app
from toolkit.cli._common import JsonOption, guarded, out, print_json, shown
from toolkit.cli.render import LangOption, MediaOption, print_issues
from toolkit.errors import EXIT_OK
from toolkit.settings import CODEBOOK_FORMATS

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.


@app.command("codebook")
@guarded
def codebook(
    form: Annotated[Path, typer.Argument(help="XLSForm (.xlsx/.xls/.md) or compiled XForm (.xml).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("codebook"),
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
    tables = None
    asked = None
    if data is not None:
        from toolkit import validate as validation
        from toolkit.dataset import DataFolder

        tables = DataFolder.read(data).load_all(recorded_dtypes=True)
        # The form's skip logic evaluated on the same tables tells "not asked" apart from "missing".
        asked = validation.validate(data, form, media_dir=media).asked or None
    result = write_codebook(
        model,
        out_dir=out_dir,
        formats=formats.split(","),
        tables=tables,
        rename_map=rename_map,
        language=lang,
        asked=asked,
    )
    if as_json:
        print_json({"files": result.files, "issues": [i.flatten() for i in result.issues]})
    else:
        for path in result.files:
            out.print(shown(path))
        print_issues(result.issues)
    return EXIT_OK
