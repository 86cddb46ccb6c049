"""Reading and writing the tables the weighting step works on (CSV, Parquet, SPSS .sav, Stata .dta, XLSX)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.errors import (
    EXIT_CANNOT_RUN,
    EXIT_USAGE,
    OUTPUT_UNWRITABLE,
    ToolkitError,
    error,
)
from toolkit.files import write_atomic
from toolkit.tablefile import read_table, unreadable_table_error

# Cells pandas reads as missing in a CSV by default (a subset of its list: the spellings survey tools write).
CSV_MISSING = frozenset({"", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "#N/A", "-nan"})
# A double holds every integer up to 2^53 (15 significant digits are always safe): longer digit strings are
# identifiers (IMEIs, national IDs) that a float would round.
FLOAT_SAFE_DIGITS = 15
_INTEGER_TEXT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class TableMetadata:
    """What an SPSS .sav or Stata .dta file holds besides the values, as pyreadstat reads and writes it.

    Parameters:
        suffix: ".sav" or ".dta", the format the metadata belongs to.
        file_label: the file label.
        column_labels: variable labels by column.
        value_labels: value labels by column (value → label).
        missing_ranges: SPSS user-missing values and ranges by column.
        missing_user_values: Stata extended missing values (.a–.z, as letters) by column.
        measure: SPSS measurement level by column (nominal, ordinal, scale).
        formats: the print format by column (SPSS F8.2/A20, Stata %9.0g).
        display_width: SPSS display width by column.
    """

    suffix: str
    file_label: str = ""
    column_labels: Mapping[str, str | None] = field(default_factory=dict)
    value_labels: Mapping[str, Mapping[Any, str]] = field(default_factory=dict)
    missing_ranges: Mapping[str, list[Any]] = field(default_factory=dict)
    missing_user_values: Mapping[str, list[Any]] = field(default_factory=dict)
    measure: Mapping[str, str] = field(default_factory=dict)
    formats: Mapping[str, str] = field(default_factory=dict)
    display_width: Mapping[str, int] = field(default_factory=dict)

    def with_column(self, name: str, label: str, *, measure: str = "scale") -> TableMetadata:
        """The same metadata with a new column's variable label (and SPSS measurement level)."""
        return replace(
            self,
            column_labels={**self.column_labels, name: label},
            measure={**self.measure, name: measure},
        )


@dataclass(frozen=True)
class KeptTable:
    """A table read twice over: `values` to compute on (user-missing values are missing), `kept` to write back
    as the file had it (user-missing values kept, CSV identifiers as text, integers as integers), and the
    .sav/.dta metadata."""

    values: pd.DataFrame
    kept: pd.DataFrame
    metadata: TableMetadata | None


def read_table_keeping(path: Path | str) -> KeptTable:
    """Read a table to change and write back with nothing lost: .sav/.dta with their labels, user-missing
    definitions, measurement levels and formats; CSV with identifier-like digit columns as text (leading zeros,
    more than 15 digits) and integer columns as (nullable) integers.

    Parameters:
        path: the file (.csv, .parquet, .sav, .dta or .xlsx).
    """
    p = Path(path)
    values = read_table(p)
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return KeptTable(values, _read_csv_keeping(p), None)
        if suffix in (".sav", ".dta"):
            import pyreadstat

            reader = pyreadstat.read_sav if suffix == ".sav" else pyreadstat.read_dta
            kept, meta = reader(str(p), user_missing=True)
            return KeptTable(values, kept, _metadata(meta, suffix))
    except Exception as exc:  # pyreadstat raises its own exception types
        raise unreadable_table_error(p, exc) from exc
    return KeptTable(values, values, None)


def _metadata(meta: Any, suffix: str) -> TableMetadata:
    return TableMetadata(
        suffix=suffix,
        file_label=meta.file_label or "",
        column_labels=dict(meta.column_names_to_labels),
        value_labels=dict(meta.variable_value_labels),
        missing_ranges=dict(meta.missing_ranges or {}),
        missing_user_values=dict(meta.missing_user_values or {}),
        measure={k: v for k, v in (meta.variable_measure or {}).items() if v in ("nominal", "ordinal", "scale")},
        formats=dict(meta.original_variable_types or {}),
        display_width=dict(meta.variable_display_width or {}),
    )


def _read_csv_keeping(path: Path) -> pd.DataFrame:
    """A CSV with every column typed from its text: digit-only columns are integers unless one value looks like
    an identifier (a leading zero, or more than 15 digits: kept as written); numbers are floats; the rest text."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    columns: dict[str, Any] = {}
    for name in raw.columns:
        text = raw[name]
        present = ~text.str.strip().isin(CSV_MISSING)
        values = text[present].str.strip()
        if values.empty:
            columns[name] = pd.Series(pd.NA, index=raw.index, dtype=object)
        elif values.map(lambda v: _INTEGER_TEXT.fullmatch(v) is not None).all():
            digits = values.str.lstrip("+-")
            identifier = (digits.str.len() > FLOAT_SAFE_DIGITS) | ((digits.str.len() > 1) & digits.str.startswith("0"))
            if identifier.any():
                columns[name] = text.where(present, None)
            else:
                columns[name] = pd.to_numeric(values).reindex(raw.index).astype("Int64")
        else:
            numbers = pd.to_numeric(values, errors="coerce")
            if numbers.notna().all():
                columns[name] = numbers.reindex(raw.index).astype(float)
            else:
                columns[name] = text.where(present, None)
    return pd.DataFrame(columns, index=raw.index)


def atomic_write(path: Path, writer: Callable[[Path], object]) -> None:
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


def write_table(frame: pd.DataFrame, path: Path | str, *, metadata: TableMetadata | None = None) -> None:
    """Write a table atomically in the format of its extension (.csv, .parquet, .sav, .dta).

    Parameters:
        frame: the table.
        path: the file to create or replace.
        metadata: labels, user-missing definitions and formats for a .sav/.dta of the same format (see
            `read_table_keeping`); only the columns of `frame` are used.
    """
    p = Path(path)
    suffix = p.suffix.lower()

    def writer(tmp: Path) -> None:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, encoding="utf-8-sig")
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        elif suffix in (".sav", ".dta"):
            import pyreadstat

            # SPSS and Stata numbers are doubles here; pyreadstat does not take pandas' nullable integers.
            plain = frame.astype({c: "float64" for c in frame.columns if isinstance(frame[c].dtype, pd.Int64Dtype)})
            options = _writer_options(metadata, suffix, list(plain.columns))
            if suffix == ".sav":
                pyreadstat.write_sav(plain, str(tmp), **options)
            else:
                pyreadstat.write_dta(plain, str(tmp), version=14, **options)
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


def _writer_options(metadata: TableMetadata | None, suffix: str, columns: list[str]) -> dict[str, Any]:
    """pyreadstat keyword arguments that write `metadata` back, restricted to the columns written."""
    if metadata is None:
        return {}

    def only(mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in mapping.items() if k in columns and v is not None}

    options: dict[str, Any] = {
        "file_label": metadata.file_label,
        "column_labels": [metadata.column_labels.get(c) for c in columns],
        "variable_value_labels": only(metadata.value_labels),
    }
    if metadata.suffix != suffix:
        # Labels carry over; missing-value rules and formats belong to the source format. Stata labels only
        # integers, so an SPSS label set with other values stays behind.
        options["variable_value_labels"] = {
            column: {int(value): text for value, text in labels.items()}
            for column, labels in only(metadata.value_labels).items()
            if all(isinstance(v, (int, float)) and float(v).is_integer() for v in labels)
        }
        return options
    if suffix == ".sav":
        options.update(
            missing_ranges=only(metadata.missing_ranges),
            variable_measure=only(metadata.measure),
            variable_format=only(metadata.formats),
            variable_display_width=only(metadata.display_width),
        )
    else:
        options.update(missing_user_values=only(metadata.missing_user_values))
    return options
