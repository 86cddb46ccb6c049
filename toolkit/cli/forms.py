"""`migkit forms build` and `migkit forms lint`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from toolkit import forms
from toolkit.cli import app
from toolkit.cli._common import JsonOption, err, guarded, out, print_json
from toolkit.errors import EXIT_DATA_PROBLEMS, EXIT_OK, Severity

forms_app = typer.Typer(help="Compile and check XLSForms.", no_args_is_help=True)
app.add_typer(forms_app, name="forms")


def _verdict(form: forms.CompiledForm) -> str:
    if form.xform is None:
        return "[red]does not compile[/]"
    if form.validated is None:
        return "[yellow]compiled, not validated[/]"
    return "[green]valid[/]" if form.validated else "[red]rejected by ODK Validate[/]"


@forms_app.command("build")
@guarded
def build(
    form_files: Annotated[list[Path] | None, typer.Argument(help="XLSForms; default every form in forms/.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the XForms.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat pyxform warnings as errors.")] = False,
    no_validate: Annotated[bool, typer.Option("--no-validate", help="Skip ODK Validate.")] = False,
    as_json: JsonOption = False,
) -> int:
    """Compile XLSForms to XForms with pyxform and check them with ODK Validate (JavaRosa)."""
    result = forms.build_forms(form_files or None, out_dir=out_dir, validate=not no_validate, strict=strict)
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "pyxform_version": result.pyxform_version,
                "forms": [
                    {
                        "source": f.source,
                        "form_id": f.form_id,
                        "version": f.version,
                        "title": f.title,
                        "xform_path": f.xform_path,
                        "compiled": f.xform is not None,
                        "odk_validate": {True: "valid", False: "invalid", None: "not validated"}[f.validated],
                        "ok": f.ok,
                        "issues": [i.flatten() for i in f.issues],
                    }
                    for f in result.forms
                ],
            }
        )
    else:
        table = Table(title=f"Forms (pyxform {result.pyxform_version})")
        for column in ("form", "form_id", "version", "verdict", "errors", "warnings", "XForm"):
            table.add_column(column)
        for f in result.forms:
            n_err = sum(i.severity == Severity.ERROR for i in f.issues)
            n_warn = sum(i.severity == Severity.WARNING for i in f.issues)
            table.add_row(
                Path(f.source).name, f.form_id or "", f.version or "", _verdict(f), str(n_err), str(n_warn),
                f.xform_path or "",
            )
        out.print(table)
        for f in result.forms:
            for issue in f.issues:
                colour = "red" if issue.severity == Severity.ERROR else "yellow"
                err.print(f"[{colour}]{issue.severity}[/]: {issue.format()}", markup=True, highlight=False)
    if not result.forms:
        err.print("No XLSForms found.")
        return EXIT_DATA_PROBLEMS
    return EXIT_OK if result.ok else EXIT_DATA_PROBLEMS
