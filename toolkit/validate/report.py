"""Validation results as files: every finding as a CSV row, and a self-contained HTML report."""

from __future__ import annotations

import csv
import html
import io
import re
from collections import Counter
from datetime import UTC, datetime

from toolkit.spreadsheet import safe_cell
from toolkit.validate import Finding, ValidationResult

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
    "absent",
)


def findings_csv_text(result: ValidationResult) -> str:
    """Every finding as a CSV row (columns CSV_FIELDS); values that would run as spreadsheet formulas are text."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for finding in result.findings:
        writer.writerow({k: ("" if v is None else safe_cell(v)) for k, v in finding.to_dict().items()})
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


# Float noise from binary arithmetic (118.42000000000002) is shown as the number the user typed.
_FLOAT_NOISE = re.compile(r"-?\d+\.\d*?(?:0{6,}\d|9{6,}\d)\d*")


def _clean_number(match: re.Match[str]) -> str:
    return f"{float(match.group(0)):.12g}"


def _shown(value: object) -> str:
    return html.escape(_FLOAT_NOISE.sub(_clean_number, "" if value is None else str(value)))


def _causes(findings: list[Finding]) -> dict[int, tuple[str, str]]:
    """What each finding follows from (by position in `findings`).

    An answer kept in a skipped section is reported with the whole relevance that skips it: its own, after the
    relevances of every enclosing group (`(A) and (B) and (C)`). When one submission has such findings under both
    `(A) and (B)` and `(A) and (B) and (C)`, the shorter one is false, so it explains the longer ones too: one
    unexpected answer upstream (rr_any12 = 7) is one cause, not one per question of the section. Other findings
    are their own cause (code and variable).
    """
    skipped: dict[str | None, list[str]] = {}
    for finding in findings:
        if finding.code == "nonrelevant_answered" and finding.expression:
            skipped.setdefault(finding.instance_id, []).append(finding.expression)
    shortest = {instance: sorted(set(found), key=len) for instance, found in skipped.items()}
    causes: dict[int, tuple[str, str]] = {}
    for position, finding in enumerate(findings):
        if finding.code == "nonrelevant_answered" and finding.expression:
            expression = finding.expression
            root = next(
                (e for e in shortest[finding.instance_id] if expression == e or expression.startswith(e + " and ")),
                expression,
            )
            causes[position] = (finding.code, root)
        else:
            causes[position] = (finding.code, finding.variable or finding.path)
    return causes


def _finding_rows(findings: list[Finding], causes: dict[int, tuple[str, str]], max_rows: int) -> str:
    groups: dict[tuple[str | None, str, str], list[Finding]] = {}
    for position, finding in enumerate(findings):
        groups.setdefault((finding.instance_id, *causes[position]), []).append(finding)
    rows = []
    for members in list(groups.values())[:max_rows]:
        first = members[0]
        cells = [first.instance_id, first.path, first.code, first.value, first.expression, first.message]
        if len(members) > 1:
            cells[4] = min((m.expression or "" for m in members), key=len)
            listed = ", ".join(_shown(m.variable or m.path) for m in members)
            cells[1] = f"{len(members)} variables"
            cells[3] = ""
            cells[5] = f"{len(members)} answers kept although this condition is false"
            detail = f"<details><summary>{_shown(cells[5])}</summary>{listed}</details>"
        else:
            detail = _shown(cells[5])
        rows.append(
            "<tr>"
            + "".join(f"<td>{_shown(v)}</td>" for v in cells[:5])
            + f"<td>{detail}</td><td>{_shown(first.enumerator)}</td></tr>"
        )
    more = (
        f"<p>… and {len(groups) - max_rows} more groups of findings (use --csv for all).</p>"
        if len(groups) > max_rows
        else ""
    )
    return "".join(rows) + "</table>" + more


def render_html(
    result: ValidationResult, *, title: str = "Validation report", max_rows: int = 2000
) -> str:
    """A self-contained HTML page: summary, bar charts per code, cause, enumerator and worst submissions, and the
    findings grouped by cause (first `max_rows` groups). No external assets."""
    stats = result.stats
    findings = result.findings
    by_enum = Counter(f.enumerator or "(unknown)" for f in findings if f.instance_id is not None)
    worst = Counter(f.instance_id for f in findings if f.instance_id)
    # Submissions affected per cause: one bar per cause rather than one identical bar per variable of a section.
    causes_of = _causes(list(findings))
    affected = {(f.instance_id, *causes_of[i]) for i, f in enumerate(findings)}
    causes = Counter(f"{code}: {what}" for _, code, what in affected)
    verdict = "valid" if result.valid else "has findings"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 90rem; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 2px 8px; border-bottom: 1px solid #eee; text-align:
left;
  vertical-align: top; font-size: 13px; }}
table.bars td.bar {{ width: 420px; }} table.bars td.bar div {{ height: 14px; }} td.n {{ text-align: right; }}
table.bars td.k {{ max-width: 32rem; overflow-wrap: anywhere; }}
table.findings {{ table-layout: fixed; width: 100%; }} table.findings td {{ overflow-wrap: anywhere; }}
table.findings col.instance {{ width: 13%; }} table.findings col.path {{ width: 15%; }}
table.findings col.code {{ width: 11%; }} table.findings col.value {{ width: 8%; }}
table.findings col.expression {{ width: 18%; }} table.findings col.enumerator {{ width: 7%; }}
.summary span {{ display: inline-block; margin-right: 2em; }} .bad {{ color: #b00; }} .ok {{ color: #070; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="summary"><span>{stats["instances"]} submissions</span><span>{stats["findings"]} findings</span>
<span>{stats["instances_with_findings"]} submissions with findings</span>
<span class="{"ok" if result.valid else "bad"}">{verdict}</span>
<span>generated {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}</span></p>
{_bars("Findings by code", sorted(stats["by_code"].items(), key=lambda kv: -kv[1]), "#c0392b")}
{_bars("Submissions affected, by cause (top 30)", causes.most_common(30), "#2471a3")}
{_bars("Findings by enumerator (id_int, else deviceid)", by_enum.most_common(30), "#7d3c98")}
{_bars("Submissions with most findings", worst.most_common(20), "#ca6f1e")}
<h2>Findings</h2>
<p>Findings with one cause in one submission (answers kept in a section whose condition is false) are one row;
open it to see the variables.</p>
<table class="findings"><colgroup><col class="instance"><col class="path"><col class="code"><col class="value">
<col class="expression"><col class="message"><col class="enumerator"></colgroup>
<tr><th>instance</th><th>path</th><th>code</th><th>value</th><th>expression</th><th>message</th>
<th>enumerator</th></tr>{_finding_rows(list(findings), causes_of, max_rows)}
</body></html>
"""
