"""Reading and writing the tables the weighting step works on (CSV, Parquet, SPSS .sav, Stata .dta, XLSX)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from toolkit.errors import (
    EXIT_CANNOT_RUN,
    EXIT_USAGE,
    INPUT_MISSING,
    INPUT_UNREADABLE,
    OUTPUT_UNWRITABLE,
    ToolkitError,
    error,
)
from toolkit.files import write_atomic

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
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"cannot read the table: {exc}", file=str(p)), EXIT_CANNOT_RUN
        ) from exc
    except Exception as exc:  # pyreadstat raises its own exception types
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"cannot read the table: {type(exc).__name__}: {exc}", file=str(p)),
            EXIT_CANNOT_RUN,
        ) from exc
    raise ToolkitError(
        error(
            INPUT_UNREADABLE,
            f"unknown table format {suffix!r}; use one of {', '.join(READABLE)}",
            file=str(p),
        ),
        EXIT_USAGE,
    )


def atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    """`toolkit.files.write_atomic` (0600: weighted tables hold answers), an OS error raised as OUTPUT_UNWRITABLE.

    Parameters:
        path: the file to create or replace.
        writer: writes the whole content to the temporary path it is given.
    """
    try:
        write_atomic(path, writer)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"cannot write: {exc}", file=str(path)), EXIT_CANNOT_RUN
        ) from exc


def write_table(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a table atomically in the format of its extension (.csv, .parquet, .sav, .dta)."""
    p = Path(path)
    suffix = p.suffix.lower()

    def writer(tmp: Path) -> None:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, encoding="utf-8-sig")
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix in (".sav", ".dta"):
            import pyreadstat

            if suffix == ".sav":
                pyreadstat.write_sav(frame, str(tmp))
            else:
                pyreadstat.write_dta(frame, str(tmp), version=14)
        else:
            raise ToolkitError(
                error(
                    OUTPUT_UNWRITABLE,
                    f"unknown output format {suffix!r}; use .csv, .parquet, .sav or .dta",
                    file=str(p),
                ),
                EXIT_USAGE,
            )

    atomic_write(p, writer)
