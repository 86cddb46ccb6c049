"""Codebooks from the form model, optionally with the data: HTML, XLSX and DDI Codebook 2.5 XML.

A codebook lists, per table (the main level and each repeat), every variable with its question text in each
language, type, universe (the relevance that decides who is asked), constraint, derivation (calculations), the
choice list with its codes (don't know / refused marked as missing categories) and, when the ingested tables are
given, counts of valid and missing answers, category frequencies and numeric summaries. When an export rename map is
given, the SPSS and Stata names of each variable are listed too, so users can go from the questionnaire to the files.

DDI Codebook 2.5 is the metadata standard of the IHSN/World Bank microdata catalogues (NADA); the XML written here
validates against the official schema (shared/schemas/ddi-codebook-2.5/codebook.xsd in the tests).
"""

from __future__ import annotations

import csv
import html
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from lxml import etree

from toolkit import __version__
from toolkit.errors import INPUT_MISSING, OUTPUT_UNWRITABLE, Issue, ToolkitError, define, error, warning
from toolkit.files import write_atomic
from toolkit.settings import (
    CHOICE_DONT_KNOW,
    CHOICE_REFUSED,
    CODEBOOK_FORMATS,
    NUMERIC_DONT_KNOW,
    NUMERIC_REFUSED,
)
from toolkit.spreadsheet import safe_row
from toolkit.wording import in_words
from toolkit.xform import NO_LANGUAGE, FormModel, Node, resolve_language

CODEBOOK_FORMAT_UNKNOWN = define(
    "codebook.format_unknown", "A codebook format that migkit does not write was asked for"
)
CODEBOOK_TABLE_MISSING = define(
    "codebook.table_missing", "A table of the form has no data in the DATA folder"
)

DDI_NS = "ddi:codebook:2_5"
XML_NS = "http://www.w3.org/XML/1998/namespace"
DDI_SCHEMA_LOCATION = (
    "ddi:codebook:2_5 http://www.ddialliance.org/Specification/DDI-Codebook/2.5/XMLSchema/codebook.xsd"
)

# Question types that hold no data (they are left out of codebooks, as they are of exports).
_NO_DATA_TYPES = frozenset({"note", "acknowledge", "group", "repeat"})
_NUMERIC_TYPES = frozenset({"integer", "decimal", "range"})
_MISSING_CHOICES = {CHOICE_DONT_KNOW: "don't know", CHOICE_REFUSED: "refused"}
_NUMERIC_SENTINELS = (float(NUMERIC_DONT_KNOW), float(NUMERIC_REFUSED))
_REF = re.compile(
    r"( ?)("
    r"(?:/[A-Za-z_][\w.-]*(?:/[A-Za-z_][\w.-]*)+)"  # an absolute path
    r"|(?:(?:current\(\)/)?(?:\.\./)+[A-Za-z_][\w.-]*(?:/[A-Za-z_][\w.-]*)*)"  # a relative one
    r") ?"
)
_LANGUAGE_CODE = re.compile(r"\(([a-z]{2,3})\)\s*$")


@dataclass(frozen=True)
class CategoryStat:
    code: str  # the choice name in the form
    label: str
    missing: bool
    frequency: int | None = None
    exported: str | None = None  # the code in the exported .sav/.dta when it differs from the name (RUS -> 643)


@dataclass(frozen=True)
class VariableEntry:
    """One variable of the codebook."""

    table: str
    name: str
    path: str
    question_type: str
    labels: Mapping[str, str]
    hints: Mapping[str, str]
    universe: str | None
    constraint: str | None
    derivation: str | None
    choice_list: str | None
    categories: tuple[CategoryStat, ...] = ()
    spss_name: str | None = None
    stata_name: str | None = None
    valid: int | None = None
    missing: int | None = None
    not_asked: int | None = None  # rows where skip logic did not ask the question (None: relevance not evaluated)
    dont_know_refused: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    stdev: float | None = None
    universe_words: str | None = None  # "Asked if" in words with labels; None when the relevance has no wording


@dataclass(frozen=True)
class TableEntry:
    name: str
    path: str
    label: str
    rows: int | None
    variables: tuple[VariableEntry, ...]


@dataclass(frozen=True)
class Codebook:
    form_id: str
    version: str | None
    title: str | None
    languages: tuple[str, ...]
    language: str | None
    tables: tuple[TableEntry, ...]


@dataclass(frozen=True)
class CodebookResult:
    """What `write_codebook` wrote, and warnings (e.g. a table without data)."""

    codebook: Codebook = field(repr=False)
    files: tuple[str, ...]
    issues: tuple[Issue, ...] = ()


def _readable(form: FormModel, expression: str | None, context: str | None = None) -> str | None:
    """An XForm expression as the XLSForm author wrote it: node paths shown as ${name} references.

    pyxform writes each ${name} as an absolute path padded with one space on each side (or, inside a repeat, a
    relative path such as ../name); both are turned back, relative paths resolved from `context` (the node whose
    bind holds the expression).
    """
    if not expression:
        return None

    def name_of(match: re.Match[str]) -> str:
        path = match.group(2)
        if not path.startswith("/") and context is not None:
            base = context.split("/")
            for step in path.split("/"):
                if step == "..":
                    base = base[:-1]
                elif step not in {".", ""}:
                    base.append(step)
            path = "/".join(base)
        return "${" + form.nodes[path].name + "}" if path in form.nodes else match.group(0)

    return " ".join(_REF.sub(name_of, expression).split())


def _universe(form: FormModel, node: Node) -> str | None:
    """Who is asked: the node's own relevance and every enclosing group's and repeat's, joined with 'and'."""
    parts = [_readable(form, a.relevant, a.path) for a in form.ancestors(node.path) if a.relevant]
    if node.relevant:
        parts.append(_readable(form, node.relevant, node.path))
    cleaned = [p for p in parts if p]
    if not cleaned:
        return None
    return " and ".join(f"({p})" if len(cleaned) > 1 else p for p in cleaned)


def _universe_words(form: FormModel, node: Node, language: str | None) -> str | None:
    """Who is asked, in words: every enclosing group's and repeat's relevance and the node's own, each worded with
    the labels in `language`; None when any of them has no wording (the XPath is shown instead)."""
    holders = [a for a in form.ancestors(node.path) if a.relevant] + ([node] if node.relevant else [])
    worded = [in_words(form, holder.relevant, holder.path, language) for holder in holders]
    if not holders or any(w is None for w in worded):
        return None
    return "; ".join(w for w in worded if w)


def _read_value_map(rename_map: Path | None) -> dict[tuple[str, str], str]:
    """(choice list, choice name) -> the code written to .sav/.dta, from the value map `migkit export` writes
    beside the rename map; empty when there is none."""
    if rename_map is None:
        return {}
    value_map = rename_map.with_name(rename_map.name.replace("-rename-map.csv", "-value-map.csv"))
    if value_map == rename_map or not value_map.is_file():
        return {}
    with value_map.open(encoding="utf-8-sig", newline="") as handle:
        return {(row["choice_list"], row["choice_name"]): row["code"] for row in csv.DictReader(handle)}


def _table_names(form: FormModel) -> dict[str, str]:
    """Table path -> table name, as `migkit ingest` names them."""
    return {
        path: form.form_id if path == form.root else f"{form.form_id}-{form.nodes[path].name}"
        for path in form.table_paths()
    }


def _read_rename_map(path: Path | None) -> dict[tuple[str, str], tuple[str, str]]:
    if path is None:
        return {}
    if not path.is_file():
        raise ToolkitError(
            error(
                INPUT_MISSING,
                "The rename map does not exist; export writes it as "
                "<form_id>-rename-map.csv next to the files.",
                file=str(path),
            )
        )
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {
            (row["table"], row["original_name"]): (row["spss_name"], row["stata_name"])
            for row in csv.DictReader(handle)
        }


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _stats(
    node: Node, series: pd.Series | None, categories: list[CategoryStat], asked: np.ndarray | None = None
) -> dict:
    if series is None:
        return {}
    answered = series.notna() & (series.astype("string").str.strip() != "")
    present = answered.fillna(False).to_numpy(dtype=bool)
    stats: dict = {"valid": int(present.sum()), "missing": int((~present).sum())}
    if asked is not None and len(asked) == len(present):
        # A question skip logic did not ask is empty by design: "not asked" is not "missing" (no answer where one
        # was due). An answer kept where the question was not asked still counts as valid (validate reports it).
        stats["not_asked"] = int((~asked & ~present).sum())
        stats["missing"] = int((asked & ~present).sum())
    if node.question_type in _NUMERIC_TYPES:
        values = _numeric(series)
        sentinel = np.isin(values, _NUMERIC_SENTINELS)
        stats["dont_know_refused"] = int(sentinel.sum())
        usable = values[~np.isnan(values) & ~sentinel]
        stats["valid"] = int(usable.size)
        if usable.size:
            stats.update(
                minimum=float(usable.min()),
                maximum=float(usable.max()),
                mean=float(usable.mean()),
                stdev=float(usable.std(ddof=1)) if usable.size > 1 else 0.0,
            )
    elif categories:
        text = series.astype("string").dropna()
        if node.question_type == "select_multiple":
            counts = text.str.split().explode().value_counts()
        else:
            counts = text.value_counts()
        categories[:] = [
            CategoryStat(c.code, c.label, c.missing, int(counts.get(c.code, 0)), c.exported) for c in categories
        ]
        stats["dont_know_refused"] = int(sum(c.frequency or 0 for c in categories if c.missing))
        if node.question_type == "select_one":
            stats["valid"] -= stats["dont_know_refused"]
    return stats


def build_codebook(
    form: FormModel,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
    rename_map: Path | None = None,
    language: str | None = None,
    asked: Mapping[str, np.ndarray] | None = None,
) -> tuple[Codebook, list[Issue]]:
    """Assemble the codebook of a form, with statistics when the ingested tables are given.

    Parameters:
        form: the form model.
        tables: table name -> DataFrame as written by `migkit ingest` (optional).
        rename_map: the `<form_id>-rename-map.csv` written by `migkit export` (optional).
        language: the language of the HTML/XLSX texts; default the form's default language. DDI gets all languages.
        asked: per question path, which rows of its table skip logic asked it (`ValidationResult.asked`, from
            the relevance validate evaluated on the same tables): blanks are then split into "not asked" and
            "missing".
    """
    issues: list[Issue] = []
    names = _read_rename_map(rename_map)
    exported_codes = _read_value_map(rename_map)
    chosen = resolve_language(form, language)
    table_entries = []
    for table_path, table_name in _table_names(form).items():
        frame = tables.get(table_name) if tables is not None else None
        if tables is not None and frame is None:
            issues.append(
                warning(
                    CODEBOOK_TABLE_MISSING,
                    f"No data for table {table_name}; the codebook lists its variables without statistics.",
                    variable=table_name,
                )
            )
        variables = []
        for node in form.fields_in(table_path):
            if node.question_type in _NO_DATA_TYPES:
                continue
            choice_list = form.choice_lists.get(node.choice_list) if node.choice_list else None
            categories = [
                CategoryStat(
                    c.name,
                    c.label(chosen),
                    c.name in _MISSING_CHOICES,
                    exported=exported_codes.get((node.choice_list or "", c.name)),
                )
                for c in (choice_list.choices if choice_list else ())
            ]
            column = frame[node.name] if frame is not None and node.name in frame.columns else None
            stats = _stats(node, column, categories, asked.get(node.path) if asked is not None else None)
            spss, stata = names.get((table_name, node.name), (None, None))
            variables.append(
                VariableEntry(
                    table=table_name,
                    name=node.name,
                    path=node.path,
                    question_type=node.question_type,
                    labels=dict(node.labels),
                    hints=dict(node.hints),
                    universe=_universe(form, node),
                    universe_words=_universe_words(form, node, chosen),
                    constraint=_readable(form, node.constraint, node.path),
                    derivation=_readable(form, node.calculate, node.path),
                    choice_list=node.choice_list,
                    categories=tuple(categories),
                    spss_name=spss,
                    stata_name=stata,
                    **stats,
                )
            )
        label = (
            form.title or form.form_id if table_path == form.root else form.nodes[table_path].label(chosen)
        )
        table_entries.append(
            TableEntry(
                table_name,
                table_path,
                label or table_name,
                None if frame is None else len(frame),
                tuple(variables),
            )
        )
    codebook = Codebook(form.form_id, form.version, form.title, form.languages, chosen, tuple(table_entries))
    return codebook, issues


# --- HTML ------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;margin:2rem;color:#1b1b1b;
max-width:75rem}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:2px solid #1f4e79;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccd;padding:.25rem .5rem;
text-align:left;vertical-align:top;font-size:.9rem}th{background:#eef2f7}code{font-size:.85rem;background:#f4f4f4;
padding:0 .2rem}.var{margin:1.2rem 0;padding:.6rem .8rem;border-left:4px solid #1f4e79;background:#fafbfd}
.meta{color:#555;font-size:.85rem}.missing{color:#8a3b12}nav ul{columns:3}nav li{break-inside:avoid}
.index{columns:14rem;font-size:.85rem}.index a{display:block;break-inside:avoid}
"""


def _e(text: object) -> str:
    return html.escape("" if text is None else str(text))


def _pick_text(texts: Mapping[str, str], language: str | None) -> str:
    if language and texts.get(language):
        return texts[language]
    return texts.get(NO_LANGUAGE) or next((t for t in texts.values() if t), "")


def render_html(codebook: Codebook) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external assets)."""
    lang = codebook.language
    title = f"Codebook: {codebook.title or codebook.form_id}"
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(_iso_language(lang) or "en")}"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">form_id <code>{_e(codebook.form_id)}</code> · version <code>{_e(codebook.version or "")}'
        f"</code> · language {_e(lang or '')} · languages in the form: {_e(', '.join(codebook.languages) or '—')}"
        f" · written by migkit {_e(__version__)}</p>",
        "<nav><h2>Tables</h2><ul>",
    ]
    for table in codebook.tables:
        rows = "" if table.rows is None else f", {table.rows} row{'' if table.rows == 1 else 's'}"
        out.append(
            f'<li><a href="#t-{_e(table.name)}">{_e(table.name)}</a> — {_e(table.label)} '
            f"({len(table.variables)} variables{rows})</li>"
        )
    out.append("</ul></nav>")
    # Every variable in alphabetical order, linked to its entry: the way people look a name up.
    entries = sorted((var.name.lower(), var.name, table.name) for table in codebook.tables for var in table.variables)
    out.append('<nav><h2>Variable index</h2><div class="index">')
    # The table is shown by its level (hl, ab, ...): the form_id prefix is the same for all of them.
    out.extend(
        f'<a href="#v-{_e(table)}-{_e(name)}"><code>{_e(name)}</code> '
        f'<span class="meta">{_e(table.removeprefix(codebook.form_id).lstrip("-") or "main")}</span></a>'
        for _, name, table in entries
    )
    out.append("</div></nav>")
    for table in codebook.tables:
        out.append(f'<h2 id="t-{_e(table.name)}">{_e(table.name)}: {_e(table.label)}</h2>')
        out.append(
            f'<p class="meta">level <code>{_e(table.path)}</code>'
            + ("" if table.rows is None else f" · {table.rows} row{'' if table.rows == 1 else 's'}")
            + "</p>"
        )
        for var in table.variables:
            out.append(_html_variable(var, lang))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _html_variable(var: VariableEntry, lang: str | None) -> str:
    parts = [
        f'<div class="var" id="v-{_e(var.table)}-{_e(var.name)}"><h3><code>{_e(var.name)}</code> '
        f"{_e(_pick_text(var.labels, lang))}</h3>"
    ]
    facts = [("type", var.question_type), ("path", var.path)]
    if var.spss_name or var.stata_name:
        facts.append(("SPSS / Stata name", f"{var.spss_name or '—'} / {var.stata_name or '—'}"))
    if var.universe_words:
        facts.append(("asked if", var.universe_words))
    if var.universe:
        facts.append(("universe (XPath)" if var.universe_words else "universe (asked when)", var.universe))
    if var.constraint:
        facts.append(("constraint", var.constraint))
    if var.derivation:
        facts.append(("derivation", var.derivation))
    hint = _pick_text(var.hints, lang)
    if hint:
        facts.append(("interviewer instruction", hint))
    if var.valid is not None:
        counts = f"{var.valid} valid, {var.missing} missing"
        if var.not_asked is not None:
            counts += f", {var.not_asked} not asked (skipped by the form's logic)"
        if var.dont_know_refused:
            counts += f", {var.dont_know_refused} don't know/refused"
        facts.append(("answers", counts))
    if var.mean is not None:
        facts.append(
            ("min / mean / max (sd)", f"{var.minimum:g} / {var.mean:.4g} / {var.maximum:g} ({var.stdev:.4g})")
        )
    parts.append(
        "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts) + "</table>"
    )
    if var.categories:
        show_freq = any(c.frequency is not None for c in var.categories)
        head = "<tr><th>code</th><th>label</th>" + ("<th>frequency</th>" if show_freq else "") + "</tr>"
        rows = []
        for c in var.categories:
            cls = ' class="missing"' if c.missing else ""
            freq = f"<td>{c.frequency}</td>" if show_freq else ""
            code = f"{c.exported} ({c.code})" if c.exported and c.exported != c.code else c.code
            rows.append(
                f"<tr{cls}><td><code>{_e(code)}</code></td><td>{_e(c.label)}"
                f"{' (missing)' if c.missing else ''}</td>{freq}</tr>"
            )
        parts.append(f'<table class="choices">{head}{"".join(rows)}</table>')
    parts.append("</div>")
    return "".join(parts)


# --- XLSX ------------------------------------------------------------------------------------------------------


def _write_xlsx(codebook: Codebook, target: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    sheet = book.active
    assert isinstance(sheet, Worksheet)  # a new workbook has one sheet, a worksheet
    sheet.title = "variables"
    lang = codebook.language
    header = [
        "table",
        "name",
        "spss_name",
        "stata_name",
        "type",
        "label",
        "asked_if",
        "universe",
        "constraint",
        "derivation",
        "choice_list",
        "valid",
        "missing",
        "not_asked",
        "dont_know_refused",
        "min",
        "mean",
        "max",
        "sd",
    ]
    sheet.append(header)
    # Labels and expressions come from forms made by others: text that would run as a formula is kept as text.
    for table in codebook.tables:
        for v in table.variables:
            sheet.append(
                safe_row([
                    v.table,
                    v.name,
                    v.spss_name,
                    v.stata_name,
                    v.question_type,
                    _pick_text(v.labels, lang),
                    v.universe_words,
                    v.universe,
                    v.constraint,
                    v.derivation,
                    v.choice_list,
                    v.valid,
                    v.missing,
                    v.not_asked,
                    v.dont_know_refused,
                    v.minimum,
                    v.mean,
                    v.maximum,
                    v.stdev,
                ])
            )
    choices = book.create_sheet("categories")
    choices.append(["table", "variable", "code", "choice_name", "label", "missing", "frequency"])
    for table in codebook.tables:
        for v in table.variables:
            for c in v.categories:
                code = c.exported or c.code
                choices.append(
                    safe_row([v.table, v.name, code, c.code, c.label, "yes" if c.missing else "", c.frequency])
                )
    tables = book.create_sheet("tables")
    tables.append(["table", "level", "label", "rows", "variables"])
    for t in codebook.tables:
        tables.append(safe_row([t.name, t.path, t.label, t.rows, len(t.variables)]))
    for ws in book.worksheets:
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
    # Fixed document times keep the file identical when nothing changed (codebooks are committed with the forms).
    from datetime import datetime

    book.properties.created = book.properties.modified = datetime(2026, 1, 1)
    book.properties.creator = "migkit"
    book.save(target)


# --- DDI Codebook 2.5 -------------------------------------------------------------------------------------------


def _iso_language(language: str | None) -> str | None:
    if not language:
        return None
    match = _LANGUAGE_CODE.search(language)
    return match.group(1) if match else None


def _xml_id(*parts: str) -> str:
    """An xs:ID (an NCName) from table and variable names."""
    raw = "-".join(parts)
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", raw)
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"_{cleaned}"


def render_ddi(codebook: Codebook, *, agency: str = "migkit") -> bytes:
    """DDI Codebook 2.5 XML: study, one fileDscr per table, one var per variable with labels in every language."""
    root = etree.Element(
        f"{{{DDI_NS}}}codeBook", nsmap={None: DDI_NS, "xsi": "http://www.w3.org/2001/XMLSchema-instance"}
    )
    root.set("version", "2.5")
    root.set("codeBookAgency", agency)
    root.set("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation", DDI_SCHEMA_LOCATION)

    def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
        child = etree.SubElement(parent, f"{{{DDI_NS}}}{tag}", attrib=attrs)
        if text is not None:
            child.text = text
        return child

    doc = sub(root, "docDscr")
    doc_titl = sub(sub(doc, "citation"), "titlStmt")
    sub(doc_titl, "titl", f"Codebook of {codebook.title or codebook.form_id}")
    study = sub(root, "stdyDscr")
    citation = sub(study, "citation")
    titl = sub(citation, "titlStmt")
    sub(titl, "titl", codebook.title or codebook.form_id)
    sub(titl, "IDNo", codebook.form_id)
    sub(sub(citation, "prodStmt"), "software", f"migkit {__version__}", version=__version__)
    if codebook.version:
        sub(sub(citation, "verStmt"), "version", codebook.version)
    info = sub(study, "stdyInfo")
    summary = sub(info, "sumDscr")
    sub(summary, "anlyUnit", "households and persons (roster members, persons abroad, return migrants)")
    sub(
        sub(sub(study, "method"), "dataColl"),
        "collMode",
        "Computer-assisted personal interviewing (ODK Collect)",
    )
    file_ids = {}
    for table in codebook.tables:
        file_id = _xml_id("F", table.name)
        file_ids[table.name] = file_id
        file_dscr = sub(root, "fileDscr", ID=file_id)
        text = sub(file_dscr, "fileTxt")
        sub(text, "fileName", table.name)
        dims = sub(text, "dimensns")
        if table.rows is not None:
            sub(dims, "caseQnty", str(table.rows))
        sub(dims, "varQnty", str(len(table.variables)))
    data = sub(root, "dataDscr")
    multiple = [(t, v) for t in codebook.tables for v in t.variables if v.question_type == "select_multiple"]
    for table, var in multiple:
        group = sub(
            data, "varGrp", type="multipleResp", var=_xml_id("V", table.name, var.name), name=var.name
        )
        sub(group, "labl", _pick_text(var.labels, codebook.language) or var.name)
    for table in codebook.tables:
        for var in table.variables:
            data.append(_ddi_var(var, file_ids[table.name], codebook.language, sub))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _ddi_var(var: VariableEntry, file_id: str, language: str | None, sub: Callable) -> etree._Element:  # noqa: PLR0912
    element = etree.Element(f"{{{DDI_NS}}}var")
    element.set("ID", _xml_id("V", var.table, var.name))
    element.set("name", var.name)
    element.set("files", file_id)
    numeric = var.question_type in _NUMERIC_TYPES
    element.set("intrvl", "contin" if var.question_type == "decimal" else "discrete")
    for lang, text in var.labels.items():
        if text:
            label = sub(element, "labl", text)
            code = _iso_language(lang)
            if code:
                label.set(f"{{{XML_NS}}}lang", code)
    for lang, text in var.labels.items():
        if not text:
            continue
        question = sub(element, "qstn")
        sub(question, "qstnLit", text)
        code = _iso_language(lang)
        if code:
            question.set(f"{{{XML_NS}}}lang", code)
        hint = var.hints.get(lang)
        if hint:
            sub(question, "ivuInstr", hint)
    if numeric:
        invalid = sub(element, "invalrng")
        for sentinel in (NUMERIC_DONT_KNOW, NUMERIC_REFUSED):
            sub(invalid, "item", VALUE=str(sentinel))
    if var.universe:
        worded = f"{var.universe_words} (XPath: {var.universe})" if var.universe_words else var.universe
        sub(element, "universe", worded, clusion="I")
    if var.valid is not None:
        sub(element, "sumStat", str(var.valid), type="vald")
        sub(element, "sumStat", str(var.missing), type="invd")
    for kind, value in (("min", var.minimum), ("max", var.maximum), ("mean", var.mean), ("stdev", var.stdev)):
        if value is not None:
            sub(element, "sumStat", f"{value:.10g}", type=kind)
    if var.not_asked is not None:
        # DDI 2.5 has no "not in universe" statistic (sumStat types are fixed): say it in words.
        sub(element, "txt", f"Not asked (outside the universe): {var.not_asked} cases.")
    if var.constraint:
        sub(element, "txt", f"Constraint: {var.constraint}")
    for category in var.categories:
        attrs = {"missing": "Y"} if category.missing else {}
        cat = sub(element, "catgry", **attrs)
        sub(cat, "catValu", category.exported or category.code)
        sub(cat, "labl", category.label)
        if category.frequency is not None:
            sub(cat, "catStat", str(category.frequency), type="freq")
    if var.derivation:
        derivation = sub(element, "derivation")
        sub(derivation, "drvcmd", var.derivation, syntax="ODK XPath")
    date_types = {"date", "datetime", "start", "end", "today"}
    sub(
        element,
        "varFormat",
        type="numeric" if numeric or var.categories else "character",
        **({"category": "date"} if var.question_type in date_types else {}),
    )
    if var.spss_name or var.stata_name:
        sub(element, "notes", f"SPSS name: {var.spss_name or '-'}; Stata name: {var.stata_name or '-'}")
    return element


# --- writing -----------------------------------------------------------------------------------------------------


def write_codebook(
    form: FormModel,
    *,
    out_dir: str | os.PathLike[str],
    formats: Iterable[str] = CODEBOOK_FORMATS,
    tables: Mapping[str, pd.DataFrame] | None = None,
    rename_map: Path | None = None,
    language: str | None = None,
    asked: Mapping[str, np.ndarray] | None = None,
) -> CodebookResult:
    """Write `<form_id>-codebook.html`, `.xlsx` and `-ddi.xml` into `out_dir`.

    Parameters:
        form: the form model.
        out_dir: the output folder (created if needed).
        formats: any of "html", "xlsx", "ddi".
        tables: ingested tables for statistics (optional).
        rename_map: the export rename map, to list SPSS/Stata names (optional).
        language: language of the HTML/XLSX texts; default the form's default language.
        asked: per question path, the rows skip logic asked it (see `build_codebook`).
    """
    chosen: Sequence[str] = [f.strip().lower() for f in formats if f.strip()]
    unknown = sorted(set(chosen) - set(CODEBOOK_FORMATS))
    if unknown:
        raise ToolkitError(
            error(
                CODEBOOK_FORMAT_UNKNOWN,
                f"Unknown codebook format {', '.join(unknown)}; choose from {', '.join(CODEBOOK_FORMATS)}.",
            ),
            exit_code=2,
        )
    codebook, issues = build_codebook(form, tables=tables, rename_map=rename_map, language=language, asked=asked)
    out = Path(out_dir)
    files = []
    try:
        if "html" in chosen:
            target = out / f"{form.form_id}-codebook.html"
            write_atomic(target, lambda p: p.write_text(render_html(codebook), encoding="utf-8"), shared=True)
            files.append(str(target))
        if "xlsx" in chosen:
            target = out / f"{form.form_id}-codebook.xlsx"
            write_atomic(target, lambda p: _write_xlsx(codebook, p), shared=True)
            files.append(str(target))
        if "ddi" in chosen:
            target = out / f"{form.form_id}-ddi.xml"
            write_atomic(target, lambda p: p.write_bytes(render_ddi(codebook)), shared=True)
            files.append(str(target))
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot write the codebook: {exc.strerror}.", file=str(out))
        ) from None
    return CodebookResult(codebook, tuple(files), tuple(issues))
