"""`migkit forms build` and `migkit forms lint`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, err, guarded, out, shown, usage_error
from toolkit.cli.render import out_option, print_issues, render
from toolkit.errors import Severity

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.
if TYPE_CHECKING:
    from toolkit import forms
    from toolkit.report import Report

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
    out_dir: Annotated[Path | None, out_option("Folder for the XForms.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat pyxform warnings as errors.")] = False,
    no_validate: Annotated[bool, typer.Option("--no-validate", help="Skip ODK Validate.")] = False,
    as_json: JsonOption = False,
) -> int:
    """Compile XLSForms to XForms with pyxform and check them with ODK Validate (JavaRosa)."""
    from toolkit import forms

    result = forms.build_forms(form_files or None, out_dir=out_dir, validate=not no_validate, strict=strict)
    fields = {"pyxform_version": result.pyxform_version, "forms": [_form_fields(f) for f in result.forms]}
    issues = [issue for f in result.forms for issue in f.issues]
    ok = result.ok and bool(result.forms)
    return render("forms build", fields, issues, ok=ok, as_json=as_json, people=lambda: _show_build(result))


def _form_fields(form: forms.CompiledForm) -> dict[str, object]:
    return {
        "source": form.source,
        "form_id": form.form_id,
        "version": form.version,
        "title": form.title,
        "xform_path": form.xform_path,
        "compiled": form.xform is not None,
        "odk_validate": {True: "valid", False: "invalid", None: "not validated"}[form.validated],
        "ok": form.ok,
    }


def _show_build(result: forms.BuildResult) -> None:
    table = Table(title=f"Forms (pyxform {result.pyxform_version})")
    for column in ("form", "form_id", "version", "verdict", "errors", "warnings", "XForm"):
        table.add_column(column)
    for f in result.forms:
        n_err = sum(i.severity == Severity.ERROR for i in f.issues)
        n_warn = sum(i.severity == Severity.WARNING for i in f.issues)
        table.add_row(
            shown(Path(f.source).name),
            shown(f.form_id or ""),
            shown(f.version or ""),
            _verdict(f),
            str(n_err),
            str(n_warn),
            shown(f.xform_path or ""),
        )
    out.print(table)
    for f in result.forms:
        print_issues(f.issues)
    if not result.forms:
        err.print("No XLSForms found.")


@forms_app.command("lint")
@guarded
def lint(
    form_file: Annotated[Path, typer.Argument(help="The XLSForm (.xlsx, .xls, .md or .csv).")],
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="House rules to apply: 'ncamig' (migkit's templates) makes export names, integer choice codes "
            "errors; without it they are warnings, as export resolves them.",
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat every finding as an error.")] = False,
    as_json: JsonOption = False,
) -> int:
    """Check skip logic and export readiness: selects, forward/repeat references, names, codes, languages."""
    from toolkit import forms
    from toolkit.forms.lint import PROFILES

    if profile is not None and profile not in PROFILES:
        raise usage_error(f"--profile must be one of: {', '.join(PROFILES)} (got {profile!r}).")
    report = forms.lint_form(form_file, profile=profile, strict=strict)
    return render(
        "forms lint",
        {"valid": report.valid, "stats": report.stats},
        report.issues,
        ok=report.valid,
        as_json=as_json,
        people=lambda: _show_lint(report, form_file),
    )


def _show_lint(report: Report, form_file: Path) -> None:
    stats = report.stats
    table = Table(
        title=shown(
            f"{form_file.name}: {stats['questions']} questions, {stats['choice_lists']} choice lists, "
            f"languages: {', '.join(stats['languages']) or 'one (no language columns)'}"
        )
    )
    table.add_column("where", no_wrap=True)
    table.add_column("code", no_wrap=True)
    table.add_column("finding", ratio=1, overflow="fold")
    for i in report.issues:
        colour = "red" if i.severity == Severity.ERROR else "yellow"
        where = " ".join(
            part
            for part in (
                i.location.sheet,
                None if i.location.row is None else f"row {i.location.row}",
                i.location.column,
            )
            if part
        )
        table.add_row(
            shown(where),
            f"[{colour}]{i.code}[/]",
            shown(i.message) + (f"\n[dim]{shown(i.location.expression)}[/]" if i.location.expression else ""),
        )
    if report.issues:
        out.print(table)
    verdict = (
        "[green]no problems[/]"
        if not report.issues
        else (f"[red]{len(report.errors)} error(s)[/], [yellow]{len(report.warnings)} warning(s)[/]")
    )
    err.print(f"{shown(str(form_file))}: {verdict}", markup=True, highlight=False)
