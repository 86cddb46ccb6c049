"""`migkit indicators`: the catalogue's headline tables with design-based errors (XLSX, CSV, HTML)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from toolkit.cli import app
from toolkit.cli._common import JsonOption, guarded, out, print_json, usage_error
from toolkit.cli.render import OptionalFormOption, print_issues
from toolkit.errors import EXIT_DATA_PROBLEMS, EXIT_OK

# Stage modules are imported inside the command: every migkit command imports this module.


@app.command("indicators")
@guarded
def indicators(
    data: Annotated[Path, typer.Argument(help="DATA folder from `migkit ingest` and `migkit weights`.")],
    catalogue: Annotated[Path, typer.Option("--catalogue", "-c", help="Indicator catalogue (TOML).")],
    form: OptionalFormOption = None,
    lang: Annotated[str, typer.Option("--lang", help="Language of titles and labels: en or ru.")] = "en",
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("indicators-out"),
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
    if as_json:
        # JSON has no NaN: an estimate that does not exist (empty domain, no variance) is null
        print_json(_finite_or_null(dataclasses.asdict(result)))
    else:
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
    return EXIT_OK if result.ok else EXIT_DATA_PROBLEMS


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    return value
