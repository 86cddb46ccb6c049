"""`migkit validate`: check submissions against the form's skip logic, required answers and constraints."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, err, guarded, out, progress_bar, shown, usage_error
from toolkit.cli.render import FormOption, MediaOption, print_issues, render
from toolkit.errors import OUTPUT_UNWRITABLE, Issue, ToolkitError, error
from toolkit.files import write_text_atomic
from toolkit.report import counted

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.
if TYPE_CHECKING:
    from toolkit import validate as validation


@app.command("validate")
@guarded
def validate_command(
    input_path: Annotated[
        Path,
        typer.Argument(
            help="Submissions: a folder of instance XMLs (decrypt output), a Central CSV zip, a DATA folder.",
        ),
    ],
    form: FormOption,
    as_json: JsonOption = False,
    report: Annotated[Path | None, typer.Option("--report", help="Write a self-contained HTML report here.")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write every finding as a CSV row here.")] = None,
    media: MediaOption = None,
    today: Annotated[
        str | None,
        typer.Option(
            "--today",
            help="The date today() returns, YYYY-MM-DD. Default: each submission's interview day "
            "(its today or start field), as Collect saw it.",
        ),
    ] = None,
    link: Annotated[
        list[str] | None,
        typer.Option(
            "--link",
            help="FORM=DATA: also check that every submission names an existing record of that form "
            "(women's questionnaire -> household: household key and selected line). Repeatable.",
        ),
    ] = None,
) -> int:
    """Check every submission against the form: relevance, required, constraints, types, choices, calcs."""
    try:
        fixed_today = date.fromisoformat(today) if today else None
    except ValueError:
        raise usage_error(f"--today takes a date such as 2026-11-20, not {today!r}.") from None
    result = _validated(input_path, form, media, fixed_today, link or [], quiet=as_json)
    _write_outputs(result, csv_path, report, title=f"Validation of {input_path.name} against {form.name}")
    findings = [finding_issue(f) for f in result.findings]
    return render(
        "validate",
        {"valid": result.valid, "stats": result.stats},
        [*findings, *result.issues],
        ok=result.valid and result.stats["instances"] > 0,
        as_json=as_json,
        people=lambda: _print_summary(result, input_path),
        issue_extras=[{"absent": f.absent} for f in result.findings],
    )


def finding_issue(finding: validation.Finding) -> Issue:
    """A finding as the one problem record: `Finding.to_issue()` with the enumerator and the topic `validate`."""
    issue = finding.to_issue()
    where = dataclasses.replace(issue.location, enumerator=finding.enumerator)
    return dataclasses.replace(issue, location=where, topic="validate")


def _validated(
    input_path: Path, form: Path, media: Path | None, today: date | None, links: list[str], *, quiet: bool
) -> validation.ValidationResult:
    """Validate with a spinner on stderr; with --link, add the findings of the links between forms."""
    from toolkit import validate as validation

    with progress_bar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), quiet=quiet) as bar:
        task = bar.add_task("validating", total=None)
        result = validation.validate(
            input_path,
            form,
            media_dir=media,
            today=today,
            progress=lambda done: (
                bar.update(task, description=f"validating: {done} submissions") if done % 200 == 0 else None
            ),
        )
    if links:
        from toolkit.validate.links import LinkSpec, validate_links, with_link_findings

        specs = [LinkSpec.parse(text) for text in links]
        result = with_link_findings(result, validate_links(input_path, form, specs))
    return result


def _write_outputs(
    result: validation.ValidationResult, csv_path: Path | None, report: Path | None, *, title: str
) -> None:
    from toolkit.validate.report import findings_csv_text, render_html

    if csv_path is not None:
        _write_output(csv_path, findings_csv_text(result))
    if report is not None:
        _write_output(report, render_html(result, title=title))


def _write_output(path: Path, text: str) -> None:
    try:
        # BOM on CSV, so that Excel shows Cyrillic; 0600, since findings quote answers.
        write_text_atomic(path, "\ufeff" + text if path.suffix == ".csv" else text)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot write the file: {exc.strerror}.", file=str(path))
        ) from None


def _print_summary(result: validation.ValidationResult, input_path: Path) -> None:
    _print_tables(result)
    print_issues(result.issues)
    if result.stats["instances"] == 0 and not result.issues:
        err.print(f"[yellow]warning[/]: no submission of this form was found in {shown(input_path)}.", markup=True)


def _print_tables(result: validation.ValidationResult) -> None:
    stats = result.stats
    verdict = "[green]valid[/]" if result.valid else "[red]findings[/]"
    out.print(
        f"{counted(stats['instances'], 'submission')} checked in {stats['seconds']} s: {verdict}, "
        f"{counted(stats['findings'], 'finding')} in {counted(stats['instances_with_findings'], 'submission')}."
    )
    if not result.findings:
        return
    by_code = Table(title="Findings by code")
    by_code.add_column("code")
    by_code.add_column("findings", justify="right")
    for code, n in sorted(stats["by_code"].items(), key=lambda kv: -kv[1]):
        by_code.add_row(shown(code), str(n))
    out.print(by_code)
    by_var = Table(title="Variables with most findings")
    by_var.add_column("variable")
    by_var.add_column("findings", justify="right")
    by_var.add_column("codes")
    codes_per_var: dict[str, Counter[str]] = {}
    for f in result.findings:
        if f.variable:
            codes_per_var.setdefault(f.variable, Counter())[f.code] += 1
    for variable, n in list(stats["by_variable"].items())[:15]:
        detail = ", ".join(f"{c} {k}" for c, k in codes_per_var.get(variable, Counter()).most_common())
        by_var.add_row(shown(variable), str(n), shown(detail))
    out.print(by_var)
    worst = Counter(f.instance_id for f in result.findings if f.instance_id)
    table = Table(title="Submissions with most findings")
    table.add_column("instance")
    table.add_column("findings", justify="right")
    table.add_column("first finding")
    first: dict[str | None, validation.Finding] = {}
    for f in result.findings:
        first.setdefault(f.instance_id, f)
    for instance, n in worst.most_common(10):
        table.add_row(shown(instance or ""), str(n), shown(first[instance].message))
    out.print(table)
    for f in result.findings:
        if f.instance_id is None:
            err.print(f"[yellow]{f.severity}[/]: {shown(f'{f.message} [{f.code}]')}", markup=True, highlight=False)
