"""Reading one table file of any format a statistician hands over: CSV, Parquet, SPSS .sav, Stata .dta, XLSX.

Used by the weighting step (samples, frames, margins) and by `migkit estimate`; below every stage.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from toolkit.errors import EXIT_CANNOT_RUN, EXIT_USAGE, INPUT_MISSING, INPUT_UNREADABLE, ToolkitError, error

READABLE = (".csv", ".parquet", ".sav", ".dta", ".xlsx")


def read_table(path: Path | str) -> pd.DataFrame:
    """Read a table by its extension: .csv (UTF-8, BOM allowed), .parquet, .sav, .dta or .xlsx (first sheet).

    Parameters:
        path: the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ToolkitError(error(INPUT_MISSING, "file not found; check the path", file=str(p)), EXIT_USAGE)
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p, encoding="utf-8-sig")
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix in (".sav", ".dta"):
            import pyreadstat

            reader = pyreadstat.read_sav if suffix == ".sav" else pyreadstat.read_dta
            frame, _meta = reader(str(p))
            return frame
        if suffix == ".xlsx":
            return pd.read_excel(p)
    except Exception as exc:  # pyreadstat raises its own exception types
        raise unreadable_table_error(p, exc) from exc
    raise ToolkitError(
        error(
            INPUT_UNREADABLE,
            f"unknown table format {suffix!r}; use one of {', '.join(READABLE)}",
            file=str(p),
        ),
        EXIT_USAGE,
    )


def unreadable_table_error(path: Path, exc: Exception) -> ToolkitError:
    """The error for a table file that exists but cannot be read, with the reader's reason."""
    known = isinstance(exc, (OSError, ValueError, UnicodeDecodeError))
    reason = str(exc) if known else f"{type(exc).__name__}: {exc}"
    return ToolkitError(error(INPUT_UNREADABLE, f"cannot read the table: {reason}", file=str(path)), EXIT_CANNOT_RUN)
