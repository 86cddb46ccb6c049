"""Publication files of an indicators result: XLSX (one sheet per indicator), CSV (every row) and one
self-contained HTML page with a chart per indicator (plain SVG, no scripts, no network), in English or Russian."""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from toolkit.files import write_atomic, write_text_atomic
from toolkit.indicators.compute import IndicatorRow, IndicatorsResult, IndicatorSummary
from toolkit.spreadsheet import safe_cell as spreadsheet_safe

PROPORTIONS = frozenset({"proportion", "distribution", "shares"})
WORDS = {
    "en": {
        "domain": "Domain",
        "group": "Group",
        "category": "Category",
        "estimate": "Estimate",
        "low": "95% CI low",
        "high": "95% CI high",
        "se": "SE",
        "cv": "CV, %",
        "deff": "Design effect",
        "n": "Unweighted n",
        "N": "Weighted N",
        "flags": "Flags",
        "definition": "Definition",
        "universe": "Universe",
        "source": "Source",
        "missing": "Missing values",
        "variance": "Standard errors",
        "level": "Unit",
        "all": "Total",
        "legend": "* fewer than {s} unweighted cases: not shown. ( ) {s} to {p} cases: interpret "
        "with care. ‡ coefficient of variation above {cv:.0f}%.",
        "skipped": "Not computed",
        "index": "Indicators",
        "rules": {
            "exclude": "don't know and refused left out of the denominator",
            "as_no": "don't know and refused counted as 'no' (DHS practice)",
            "category": "don't know and refused shown as their own category",
        },
        "percent": "%",
        "confidence": "interval",
    },
    "ru": {
        "domain": "Разрез",
        "group": "Группа",
        "category": "Категория",
        "estimate": "Оценка",
        "low": "95% ДИ, нижн.",
        "high": "95% ДИ, верхн.",
        "se": "Ст. ошибка",
        "cv": "КВ, %",
        "deff": "Эффект плана",
        "n": "n (без весов)",
        "N": "N (взвеш.)",
        "flags": "Отметки",
        "definition": "Определение",
        "universe": "Совокупность",
        "source": "Источник",
        "missing": "Пропуски",
        "variance": "Стандартные ошибки",
        "level": "Единица",
        "all": "Всего",
        "legend": "* менее {s} наблюдений без весов: не публикуется. ( ) от {s} до {p} наблюдений: "
        "толковать с осторожностью. ‡ коэффициент вариации выше {cv:.0f}%.",
        "skipped": "Не рассчитано",
        "index": "Показатели",
        "rules": {
            "exclude": "«не знаю» и отказ исключены из знаменателя",
            "as_no": "«не знаю» и отказ считаются как «нет» (практика DHS)",
            "category": "«не знаю» и отказ показаны отдельной категорией",
        },
        "percent": "%",
        "confidence": "интервал",
    },
}
def _words(language: str) -> dict:
    return WORDS.get(language, WORDS["en"])


def _shown(row: IndicatorRow, value: float, scale: float) -> str:
    if not math.isfinite(value):
        return ""
    number = value * scale
    digits = 1 if scale == 100 or abs(number) < 1000 else 0
    return f"{number:,.{digits}f}".replace(",", " ")


def _scale(row: IndicatorRow) -> float:
    return 100.0 if row.statistic in PROPORTIONS else 1.0


def display_estimate(row: IndicatorRow) -> str:
    """The estimate as published: suppressed (*), in parentheses, or plain; ‡ after a high CV."""
    if "empty" in row.flags:
        return "–"
    if "suppressed" in row.flags:
        return "*"
    text = _shown(row, row.estimate, _scale(row))
    if "parentheses" in row.flags:
        text = f"({text})"
    if "cv" in row.flags:
        text += " ‡"
    return text


def _group_label(row: IndicatorRow, words: dict, titles: Mapping[str, str] | None = None) -> tuple[str, str]:
    if row.domain == "all":
        return words["all"], ""
    return (titles or {}).get(row.domain, row.domain), row.domain_label


def _rounded(row: IndicatorRow, value: float, scale: float) -> float | None:
    """A number for a spreadsheet cell, rounded as published (percentages and small values to 0.1)."""
    if not math.isfinite(value):
        return None
    number = value * scale
    return round(number, 1 if scale == 100 or abs(number) < 1000 else 0)


def _footnote(
    summary: IndicatorSummary, rows: Sequence[IndicatorRow], result: IndicatorsResult, language: str
) -> list[str]:
    words = _words(language)
    first = rows[0] if rows else None
    q = result.quality
    notes = [
        f"{words['definition']}: {summary.definition}",
        f"{words['universe']}: {summary.level}; {summary.universe_text}",
        f"{words['source']}: {summary.source}",
    ]
    if first is not None:
        notes.append(f"{words['missing']}: {words['rules'].get(first.missing, first.missing)}")
        notes.append(
            f"{words['variance']}: {first.variance}; {words['confidence']}: {first.ci_method}; "
            f"{first.table}, {first.weight}"
        )
    notes.append(
        words["legend"].format(
            s=int(q.get("suppress_below", 25)),
            p=int(q.get("parentheses_below", 50)) - 1,
            cv=100 * float(q.get("cv_above", 0.3)),
        )
    )
    return notes


def _by_indicator(result: IndicatorsResult) -> dict[str, list[IndicatorRow]]:
    grouped: dict[str, list[IndicatorRow]] = {s.id: [] for s in result.indicators}
    for row in result.rows:
        grouped.setdefault(row.indicator, []).append(row)
    return grouped


def write_csv(result: IndicatorsResult, path: Path) -> Path:
    """Every row in long form (UTF-8 with BOM, so Excel shows Cyrillic), text cells spreadsheet-safe."""
    titles = {s.id: s.title for s in result.indicators}
    columns = list(IndicatorRow.__dataclass_fields__)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["title", *columns])
    for row in result.rows:
        values = []
        for name in columns:
            value = getattr(row, name)
            if isinstance(value, tuple):
                value = " ".join(value)
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                value = ""
            values.append(
                spreadsheet_safe(value)
                if isinstance(value, str)
                else repr(value)
                if isinstance(value, float)
                else value
            )
        writer.writerow([spreadsheet_safe(titles.get(row.indicator, "")), *values])
    write_text_atomic(path, "\ufeff" + buffer.getvalue(), shared=True)
    return path


def write_xlsx(result: IndicatorsResult, path: Path) -> Path:
    """One sheet per computed indicator: a publication table and a footnote; a first sheet lists them all."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.worksheet.worksheet import Worksheet

    words = _words(result.language)
    book = Workbook()
    index = book.active
    assert isinstance(index, Worksheet)  # a new workbook has one sheet, a worksheet
    index.title = words["index"][:31]
    index.append([spreadsheet_safe(words["index"]), "", ""])
    index["A1"].font = Font(bold=True, size=13)
    grouped = _by_indicator(result)
    for summary in result.indicators:
        rows = grouped.get(summary.id, [])
        status = "" if summary.status == "ok" else f"{words['skipped']}: {summary.message}"
        index.append([summary.id, spreadsheet_safe(summary.title), spreadsheet_safe(status)])
        if summary.status != "ok":
            continue
        sheet = book.create_sheet(summary.id[:31])
        sheet.append([spreadsheet_safe(summary.title + (f" ({summary.unit})" if summary.unit else ""))])
        sheet["A1"].font = Font(bold=True, size=12)
        sheet.append([])
        header = [
            words["domain"],
            words["group"],
            words["category"],
            words["estimate"],
            words["low"],
            words["high"],
            words["se"],
            words["cv"],
            words["deff"],
            words["n"],
            words["N"],
            words["flags"],
        ]
        sheet.append(header)
        for cell in sheet[3]:
            cell.font = Font(bold=True)
        for row in rows:
            scale = _scale(row)
            hidden = "suppressed" in row.flags or "empty" in row.flags
            domain, group = _group_label(row, words, result.domain_titles)
            sheet.append(
                [
                    spreadsheet_safe(domain),
                    spreadsheet_safe(group),
                    spreadsheet_safe(row.category_label),
                    display_estimate(row),
                    None if hidden else _rounded(row, row.ci_low, scale),
                    None if hidden else _rounded(row, row.ci_high, scale),
                    None if hidden else _rounded(row, row.se, scale),
                    None if not math.isfinite(row.cv) else round(100 * row.cv, 1),
                    None if row.deff is None or not math.isfinite(row.deff) else round(row.deff, 2),
                    row.n,
                    round(row.weighted_n),
                    " ".join(row.flags),
                ]
            )
        sheet.append([])
        for note in _footnote(summary, rows, result, result.language):
            sheet.append([spreadsheet_safe(note)])
            sheet.cell(sheet.max_row, 1).alignment = Alignment(wrap_text=False)
        for letter, width in zip("ABCDEFGHIJKL", (16, 18, 28, 12, 12, 12, 10, 8, 10, 10, 12, 18), strict=True):
            sheet.column_dimensions[letter].width = width
    index.column_dimensions["A"].width = 28
    index.column_dimensions["B"].width = 70
    write_atomic(path, book.save, shared=True)
    return path


def _chart(rows: Sequence[IndicatorRow], words: dict, titles: Mapping[str, str]) -> str:
    """A horizontal bar chart with interval whiskers, as inline SVG (suppressed and empty rows are left out)."""
    shown = [r for r in rows if "suppressed" not in r.flags and "empty" not in r.flags and math.isfinite(r.estimate)]
    if not shown:
        return ""
    scale = _scale(shown[0])
    values = [r.estimate * scale for r in shown]
    highs = [(r.ci_high * scale if math.isfinite(r.ci_high) else r.estimate * scale) for r in shown]
    lows = [(r.ci_low * scale if math.isfinite(r.ci_low) else r.estimate * scale) for r in shown]
    top = max([*highs, *values, 0.0]) or 1.0
    bottom = min([*lows, *values, 0.0])
    span = top - bottom or 1.0
    label_width, bar_width, line = 260, 420, 22
    height = line * len(shown) + 30

    def x(value: float) -> float:
        return label_width + (value - bottom) / span * bar_width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 90}" height="{height}" '
        f'role="img" font-family="sans-serif" font-size="12">'
    ]
    for i, row in enumerate(shown):
        y = 10 + i * line
        domain, group = _group_label(row, words, titles)
        label = " · ".join(t for t in (row.category_label, group or domain) if t)
        parts.append(f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end">{html.escape(label[:42])}</text>')
        left, right = sorted((x(0.0), x(values[i])))
        colour = "#9ab" if "parentheses" in row.flags or "cv" in row.flags else "#2b6cb0"
        parts.append(
            f'<rect x="{left:.1f}" y="{y + 3}" width="{max(right - left, 0.5):.1f}" height="14" fill="{colour}"/>'
        )
        parts.append(f'<line x1="{x(lows[i]):.1f}" x2="{x(highs[i]):.1f}" y1="{y + 10}" y2="{y + 10}" stroke="#222"/>')
        parts.append(
            f'<text x="{max(x(highs[i]), right) + 4:.1f}" y="{y + 14}">{html.escape(display_estimate(row))}</text>'
        )
    parts.append(f'<line x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="5" y2="{height - 15}" stroke="#888"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(result: IndicatorsResult, *, title: str) -> str:
    """The whole report as one HTML page (tables, SVG charts, footnotes)."""
    words = _words(result.language)
    grouped = _by_indicator(result)
    body = [f"<h1>{html.escape(title)}</h1>", "<ul>"]
    for summary in result.indicators:
        if summary.status == "ok":
            body.append(f'<li><a href="#{summary.id}">{html.escape(summary.title)}</a></li>')
        else:
            body.append(f"<li>{html.escape(summary.title)} — {words['skipped']}: {html.escape(summary.message)}</li>")
    body.append("</ul>")
    columns = ["domain", "group", "category", "estimate", "low", "high", "se", "n", "N", "flags"]
    for summary in result.indicators:
        if summary.status != "ok":
            continue
        rows = grouped.get(summary.id, [])
        unit = (
            f" ({html.escape(summary.unit)})"
            if summary.unit
            else (" (%)" if rows and rows[0].statistic in PROPORTIONS else "")
        )
        body.append(f'<section id="{summary.id}"><h2>{html.escape(summary.title)}{unit}</h2>')
        body.append(_chart([r for r in rows if r.domain == "all"] or rows, words, result.domain_titles))
        body.append("<table><tr>" + "".join(f"<th>{html.escape(words[c])}</th>" for c in columns) + "</tr>")
        for row in rows:
            scale = _scale(row)
            hidden = "suppressed" in row.flags or "empty" in row.flags
            domain, group = _group_label(row, words, result.domain_titles)
            cells = [
                domain,
                group,
                row.category_label,
                display_estimate(row),
                "" if hidden else _shown(row, row.ci_low, scale),
                "" if hidden else _shown(row, row.ci_high, scale),
                "" if hidden else _shown(row, row.se, scale),
                str(row.n),
                f"{row.weighted_n:,.0f}".replace(",", " "),
                " ".join(row.flags),
            ]
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        body.append("</table>")
        body.append(
            "".join(f'<p class="note">{html.escape(n)}</p>' for n in _footnote(summary, rows, result, result.language))
        )
        body.append("</section>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
        "margin:.5em 0}td,th{border-bottom:1px solid #ddd;padding:2px 8px;text-align:right}td:nth-child(-n+3),"
        "th:nth-child(-n+3){text-align:left}.note{font-size:85%;color:#555;margin:.2em 0}section{margin-top:2.5em}"
    )
    return (
        f'<!DOCTYPE html><html lang="{result.language}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def write_outputs(result: IndicatorsResult, out_dir: Path, *, title: str) -> tuple[Path, ...]:
    """indicators.xlsx, indicators.csv and indicators.html in `out_dir` (summaries, no microdata: shared mode)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "indicators.html"
    write_text_atomic(page, render_html(result, title=title), shared=True)
    return (write_xlsx(result, out_dir / "indicators.xlsx"), write_csv(result, out_dir / "indicators.csv"), page)
