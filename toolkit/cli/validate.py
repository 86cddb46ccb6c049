"""`migkit validate`: check submissions against the form's skip logic, required answers and constraints."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, err, guarded, out, print_json, progress_bar, shown, usage_error
from toolkit.cli.render import FormOption, MediaOption, print_issues
from toolkit.errors import EXIT_DATA_PROBLEMS, EXIT_OK, OUTPUT_UNWRITABLE, ToolkitError, error
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
    report: Annotated[
        Path | None, typer.Option("--report", help="Write a self-contained HTML report here.")
    ] = None,
    csv_path: Annotated[
        Path | None, typer.Option("--csv", help="Write every finding as a CSV row here.")
    ] = None,
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
    from toolkit import validate as validation
    from toolkit.validate.report import findings_csv_text, render_html

    try:
        fixed_today = date.fromisoformat(today) if today else None
    except ValueError:
        raise usage_error(f"--today takes a date such as 2026-11-20, not {today!r}.") from None
    with progress_bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        quiet=as_json,
    ) as bar:
        task = bar.add_task("validating", total=None)
        result = validation.validate(
            input_path,
            form,
            media_dir=media,
            today=fixed_today,
            progress=lambda done: (
                bar.update(task, description=f"validating: {done} submissions") if done % 200 == 0 else None
            ),
        )
    if link:
        from toolkit.validate.links import LinkSpec, validate_links, with_link_findings

        specs = [LinkSpec.parse(text) for text in link]
        result = with_link_findings(result, validate_links(input_path, form, specs))
    if csv_path is not None:
        _write_output(csv_path, findings_csv_text(result))
    if report is not None:
        _write_output(
            report, render_html(result, title=f"Validation of {input_path.name} against {form.name}")
        )
    if as_json:
        print_json(result.to_dict())
    else:
        _print_summary(result)
    print_issues(result.issues)
    if result.stats["instances"] == 0:
        if not result.issues:
            err.print(
                f"[yellow]warning[/]: no submission of this form was found in {shown(input_path)}.", markup=True
            )
        return EXIT_DATA_PROBLEMS
    return EXIT_OK if result.valid else EXIT_DATA_PROBLEMS


def _write_output(path: Path, text: str) -> None:
    try:
        # BOM on CSV, so that Excel shows Cyrillic; 0600, since findings quote answers.
        write_text_atomic(path, "\ufeff" + text if path.suffix == ".csv" else text)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot write the file: {exc.strerror}.", file=str(path))
        ) from None


def _print_summary(result: validation.ValidationResult) -> None:
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
