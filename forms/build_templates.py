"""Build the XLSForm templates in forms/ from their reviewable text sources in forms/src/.

    python forms/build_templates.py           write forms/<form>.xlsx for every form in forms/src/
    python forms/build_templates.py --check   exit 1 if a forms/<form>.xlsx differs from its sources

Sources (UTF-8 CSV, one row per XLSForm row, the header row gives the XLSForm columns):
    forms/src/lists/<list_name>.csv   shared lists (list_name, name, label::<Language (xx)> ..., extras)
    forms/src/<form>/survey.csv       the survey sheet
    forms/src/<form>/choices.csv      lists used only by this form (optional, columns as the shared lists)
    forms/src/<form>/settings.csv     one header row and one value row

A form's choices sheet is its own choices.csv followed by every shared list that its survey references through
`select_one X` / `select_multiple X` (in order of first reference), so a shared list is edited in one place
only. The .xlsx files are generated, never edited by hand: the workbook timestamps and the zip entry dates are
fixed, so rebuilding unchanged sources gives byte-identical files (reviewable diffs stay in the CSVs).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.writer.excel import ExcelWriter

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
LISTS = SRC / "lists"

# Fixed so that the generated workbooks do not change when nothing in the sources changed.
FIXED_TIMESTAMP = datetime(2026, 1, 1, 0, 0, 0)  # naive: openpyxl stores it as UTC
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry

CHOICE_KEY_COLUMNS = ("list_name", "name")
_SELECT = re.compile(r"^\s*(select_one|select_multiple)\s+([A-Za-z_][\w.-]*)\s*$")


class SourceError(Exception):
    """A source CSV is malformed (the message names the file and row)."""


@dataclass(frozen=True)
class Sheet:
    """One worksheet: the header and the rows, every cell a string ('' = empty)."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Read a UTF-8 CSV source into its header and a list of row dicts (blank lines dropped).

    Parameters:
        path: the CSV file.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration as exc:
            raise SourceError(f"{path}: empty file, expected a header row") from exc
        if len(set(header)) != len(header):
            raise SourceError(f"{path}: duplicate column names in the header")
        rows: list[dict[str, str]] = []
        for lineno, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(header):
                raise SourceError(
                    f"{path} line {lineno}: {len(values)} cells but the header has {len(header)}"
                )
            padded = values + [""] * (len(header) - len(values))
            rows.append(dict(zip(header, padded, strict=True)))
    return header, rows


def referenced_lists(survey_rows: list[dict[str, str]]) -> list[str]:
    """The choice-list names that `select_one X` / `select_multiple X` rows use, in order of first use.

    `select_one ${field}` (choices from a repeat) is not a list and is skipped.

    Parameters:
        survey_rows: the survey sheet rows.
    """
    seen: list[str] = []
    for row in survey_rows:
        match = _SELECT.match(row.get("type", ""))
        if match and match.group(2) not in seen:
            seen.append(match.group(2))
    return seen


def _merge_header(headers: list[list[str]]) -> list[str]:
    merged: list[str] = []
    for header in headers:
        for column in header:
            if column not in merged:
                merged.append(column)
    return merged


def form_sheets(form_dir: Path, lists_dir: Path = LISTS) -> list[Sheet]:
    """The survey, choices and settings sheets of one form, assembled from its sources.

    Parameters:
        form_dir: forms/src/<form>.
        lists_dir: the folder of shared lists.
    """
    survey_header, survey_rows = read_csv(form_dir / "survey.csv")
    choice_parts: list[tuple[list[str], list[dict[str, str]]]] = []
    own_lists: set[str] = set()
    own = form_dir / "choices.csv"
    if own.is_file():
        header, rows = read_csv(own)
        own_lists = {r["list_name"] for r in rows}
        choice_parts.append((header, rows))
    for list_name in referenced_lists(survey_rows):
        shared = lists_dir / f"{list_name}.csv"
        if list_name in own_lists:
            if shared.is_file():
                raise SourceError(f"{own}: list {list_name!r} is also a shared list in {shared}; keep one")
            continue
        if not shared.is_file():
            raise SourceError(
                f"{form_dir / 'survey.csv'}: list {list_name!r} is neither in choices.csv nor in {lists_dir}"
            )
        header, rows = read_csv(shared)
        wrong = {r["list_name"] for r in rows} - {list_name}
        if wrong:
            raise SourceError(f"{shared}: rows of other lists {sorted(wrong)}; one list per file")
        choice_parts.append((header, rows))
    choices_header = _merge_header([h for h, _ in choice_parts]) if choice_parts else list(CHOICE_KEY_COLUMNS)
    seen_keys: set[tuple[str, str]] = set()
    choice_rows: list[tuple[str, ...]] = []
    for _, rows in choice_parts:
        for row in rows:
            key = (row["list_name"], row["name"])
            if key in seen_keys:
                raise SourceError(f"{form_dir}: choice {key} appears twice")
            seen_keys.add(key)
            choice_rows.append(tuple(row.get(c, "") for c in choices_header))
    settings_header, settings_rows = read_csv(form_dir / "settings.csv")
    if len(settings_rows) != 1:
        raise SourceError(f"{form_dir / 'settings.csv'}: expected exactly one value row")
    return [
        Sheet("survey", tuple(survey_header), tuple(tuple(r[c] for c in survey_header) for r in survey_rows)),
        Sheet("choices", tuple(choices_header), tuple(choice_rows)),
        Sheet("settings", tuple(settings_header), (tuple(settings_rows[0][c] for c in settings_header),)),
    ]


def workbook_bytes(sheets: list[Sheet]) -> bytes:
    """The .xlsx bytes for the sheets, with fixed timestamps so equal sheets give equal bytes.

    Parameters:
        sheets: the worksheets in order.
    """
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        ws = wb.create_sheet(sheet.name)
        ws.append(list(sheet.header))
        for row in sheet.rows:
            # Empty cells stay empty (None); all values are text, so '01' and versions keep their form.
            ws.append([value if value != "" else None for value in row])
            for cell in ws[ws.max_row]:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"  # text such as "= 5" is an answer or label, never an Excel formula
    wb.properties.created = FIXED_TIMESTAMP
    wb.properties.modified = FIXED_TIMESTAMP
    wb.properties.creator = "migkit forms/build_templates.py"
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).write_data()
    # openpyxl stamps every zip entry with the current time; rewrite them with a fixed date.
    fixed = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename))
    return fixed.getvalue()


def workbook_content(path: Path) -> list[tuple[str, list[tuple[str, ...]]]]:
    """The sheet names and cell values of an .xlsx, for comparing content whatever the bytes.

    Parameters:
        path: the workbook.
    """
    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        content = []
        for ws in wb.worksheets:
            rows = [tuple("" if v is None else str(v) for v in row) for row in ws.iter_rows(values_only=True)]
            content.append((ws.title, [r for r in rows if any(r)]))
        return content
    finally:
        wb.close()


def sheets_content(sheets: list[Sheet]) -> list[tuple[str, list[tuple[str, ...]]]]:
    """Same shape as workbook_content, computed from the sources."""
    out = []
    for sheet in sheets:
        rows = [sheet.header, *sheet.rows]
        width = len(sheet.header)
        out.append((sheet.name, [tuple(r) + ("",) * (width - len(r)) for r in rows if any(r)]))
    return out


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def form_dirs(src: Path = SRC) -> list[Path]:
    """Every forms/src/<form>/ folder that has a survey.csv, sorted by name."""
    return sorted(p for p in src.iterdir() if p.is_dir() and (p / "survey.csv").is_file())


def build(*, check: bool = False, src: Path = SRC, out_dir: Path = HERE) -> list[str]:
    """Write (or, with check, compare) forms/<form>.xlsx for every form source.

    Parameters:
        check: compare only; return the names of the workbooks that differ from their sources.
        src: the forms/src folder.
        out_dir: where the .xlsx files go.

    Returns the workbooks written (or, with check, the ones that drifted).
    """
    changed: list[str] = []
    for form_dir in form_dirs(src):
        sheets = form_sheets(form_dir, src / "lists")
        target = out_dir / f"{form_dir.name}.xlsx"
        if check:
            if not target.is_file() or workbook_content(target) != sheets_content(sheets):
                changed.append(str(target))
            continue
        data = workbook_bytes(sheets)
        if not target.is_file() or target.read_bytes() != data:
            _write_atomic(target, data)
            changed.append(str(target))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a generated .xlsx differs from its sources"
    )
    args = parser.parse_args(argv)
    try:
        changed = build(check=args.check)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for name in changed:
            print(f"out of date: {name} (run: python forms/build_templates.py)", file=sys.stderr)
        return 1 if changed else 0
    for name in changed:
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
