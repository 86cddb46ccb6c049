"""`migkit indicators`: the catalogue's headline tables with design-based errors (XLSX, CSV, HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, guarded, out, usage_error
from toolkit.cli.render import OptionalFormOption, fields_of, out_option, print_issues, render

if TYPE_CHECKING:
    from toolkit.indicators import IndicatorsResult

# Stage modules are imported inside the command: every migkit command imports this module.


@app.command("indicators")
@guarded
def indicators(
    data: Annotated[Path, typer.Argument(help="DATA folder from `migkit ingest` and `migkit weights`.")],
    catalogue: Annotated[Path, typer.Option("--catalogue", "-c", help="Indicator catalogue (TOML).")],
    form: OptionalFormOption = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of titles and labels: en or ru.")] = "en",
    out_dir: Annotated[Path, out_option("Output folder.")] = Path("indicators-out"),
    variance: Annotated[
        str, typer.Option("--variance", help="design (replicate weights when present) or taylor.")
    ] = "design",
    as_json: JsonOption = False,
) -> int:
    """Compute the catalogue's indicators: estimate, SE, 95% CI, CV, deff, n, weighted N and quality flags."""
    if lang not in ("en", "ru"):
        raise usage_error("--lang takes en or ru")
    if variance not in ("design", "taylor"):
        raise usage_error("--variance takes design or taylor")
    from toolkit.indicators import make_indicators
    from toolkit.xform import load_form

    model = load_form(form) if form is not None else None
    result = make_indicators(data, catalogue, out_dir=out_dir, form=model, language=lang, variance=variance)
    return render(
        "indicators",
        fields_of(result),
        result.issues,
        ok=result.ok,
        as_json=as_json,
        people=lambda: _show_indicators(result),
    )


def _show_indicators(result: IndicatorsResult) -> None:
    table = Table(title=f"indicators ({result.variance} standard errors)")
    for column in ("indicator", "category", "domain", "estimate", "95% CI", "n", "flags"):
        table.add_column(column)
    for row in result.rows:
        scale = 100.0 if row.statistic in ("proportion", "distribution", "shares") else 1.0
        table.add_row(
            row.indicator,
            row.category_label,
            "all" if row.domain == "all" else f"{row.domain}={row.domain_label}",
            f"{row.estimate * scale:.1f}",
            f"{row.ci_low * scale:.1f}–{row.ci_high * scale:.1f}",
            str(row.n),
            " ".join(row.flags),
        )
    out.print(table)
    for path in result.files:
        out.print(path)
    print_issues(result.issues)
