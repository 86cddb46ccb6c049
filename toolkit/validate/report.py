"""Validation results as files: every finding as a CSV row, and a self-contained HTML report."""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from datetime import UTC, datetime

from toolkit.validate import ValidationResult

CSV_FIELDS = (
    "instance_id",
    "path",
    "code",
    "value",
    "expression",
    "message",
    "severity",
    "variable",
    "enumerator",
    "source",
)


def findings_csv_text(result: ValidationResult) -> str:
    """Every finding as a CSV row (columns CSV_FIELDS)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for finding in result.findings:
        writer.writerow({k: ("" if v is None else v) for k, v in finding.to_dict().items()})
    return buffer.getvalue()


def _bars(title: str, counts: list[tuple[str, int]], colour: str) -> str:
    if not counts:
        return f"<h2>{html.escape(title)}</h2><p>None.</p>"
    top = max(n for _, n in counts) or 1
    rows = "".join(
        f'<tr><td class="k">{html.escape(str(k))}</td><td class="bar"><div style="width:{100 * n / top:.1f}%;'
        f'background:{colour}"></div></td><td class="n">{n}</td></tr>'
        for k, n in counts
    )
    return f'<h2>{html.escape(title)}</h2><table class="bars">{rows}</table>'


def render_html(
    result: ValidationResult, *, title: str = "Validation report", max_rows: int = 2000
) -> str:
    """A self-contained HTML page: summary, bar charts per code, variable and enumerator, worst submissions,
    and the findings (first `max_rows`). No external assets."""
    stats = result.stats
    findings = result.findings
    by_enum = Counter(f.enumerator or "(unknown)" for f in findings if f.instance_id is not None)
    worst = Counter(f.instance_id for f in findings if f.instance_id)
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('' if v is None else str(v))}</td>"
            for v in (f.instance_id, f.path, f.code, f.value, f.expression, f.message, f.enumerator)
        )
        + "</tr>"
        for f in findings[:max_rows]
    )
    more = (
        f"<p>… and {len(findings) - max_rows} more (use --csv for all).</p>"
        if len(findings) > max_rows
        else ""
    )
    verdict = "valid" if result.valid else "has findings"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 8px; border-bottom: 1px solid #eee; text-align:
left;
  vertical-align: top; font-size: 13px; }}
table.bars td.bar {{ width: 420px; }} table.bars td.bar div {{ height: 14px; }} td.n {{ text-align: right; }}
.summary span {{ display: inline-block; margin-right: 2em; }} .bad {{ color: #b00; }} .ok {{ color: #070; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="summary"><span>{stats["instances"]} submissions</span><span>{stats["findings"]} findings</span>
<span>{stats["instances_with_findings"]} submissions with findings</span>
<span class="{"ok" if result.valid else "bad"}">{verdict}</span>
<span>generated {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}</span></p>
{_bars("Findings by code", sorted(stats["by_code"].items(), key=lambda kv: -kv[1]), "#c0392b")}
{_bars("Findings by variable (top 30)", list(stats["by_variable"].items())[:30], "#2471a3")}
{_bars("Findings by enumerator (id_int, else deviceid)", by_enum.most_common(30), "#7d3c98")}
{_bars("Submissions with most findings", worst.most_common(20), "#ca6f1e")}
<h2>Findings</h2>
<table><tr><th>instance</th><th>path</th><th>code</th><th>value</th><th>expression</th><th>message</th>
<th>enumerator</th></tr>{rows}</table>{more}
</body></html>
"""
