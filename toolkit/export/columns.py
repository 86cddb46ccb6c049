"""Column conversions: select codes, select_multiple dummies, geopoints, ODK dates and dateTimes, Stata
missing values.

Survey answers repeat a few values many times, so conversions work per distinct value (Arrow dictionary
encoding) and spread the result back to the rows; Arrow compute does the regular-expression work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.errors import (
    Issue,
    error,
    warning,
)
from toolkit.export.codes import EXPORT_BAD_VALUE, EXPORT_UNKNOWN_CHOICE
from toolkit.settings import (
    SPSS_SHORT_STRING_MAX_BYTES,
)
from toolkit.xform import Node

# Epochs: SPSS counts seconds from 1582-10-14, Stata days (%td) or milliseconds (%tc) from 1960-01-01.
SPSS_EPOCH = np.datetime64("1582-10-14", "s")
STATA_EPOCH = np.datetime64("1960-01-01", "s")
INTEGER = re.compile(r"^[+-]?\d+$")
# ODK dateTime: local date and time, then the device's UTC offset (RE2 syntax, for Arrow).
_ODK_DATETIME = (
    r"^\s*(?P<local>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)"
    r"\s*(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?\s*$"
)


def as_integers(series: pd.Series, whole: bool | None = None) -> pd.Series:
    """Whole-number floats as nullable integers (so that CSV shows 2, not 2.0); other series unchanged.

    Parameters:
        series: the column (or some of its rows).
        whole: whether every number of the whole column is whole (`all_whole`), when `series` is a part of it;
            None decides on `series` itself.
    """
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    if whole is None:
        whole = _whole(values)
    if whole:
        return pd.Series(pd.array(values, dtype="Float64").astype("Int64"), index=series.index)
    return series


def all_whole(series: pd.Series) -> bool:
    """Every number of the column is whole (or missing): `as_integers` writes it as integers."""
    return _whole(series.to_numpy(dtype="float64", na_value=np.nan))


def _whole(values: np.ndarray) -> bool:
    return bool(np.all(np.isnan(values) | (values == np.round(values))))


def seconds_since(series: pd.Series, epoch: np.datetime64) -> np.ndarray:
    """Seconds from `epoch` to each date or datetime (NaN where missing), for SPSS and Stata dates."""
    values = series.to_numpy(dtype="datetime64[s]")
    seconds = (values - epoch).astype("float64")
    seconds[np.isnat(values)] = np.nan
    return seconds


# narwhals sniffs the type of an object column from its first 100 values.
NARWHALS_SNIFF_ROWS = 100


def stata_tagging(series: pd.Series, missing: Mapping[float, str]) -> Literal["float", "tagged"]:
    """How a variable with missing codes goes to Stata: a plain float column when no code occurs (letter-keyed
    value labels still apply to it), else a column holding the letters of extended missing values."""
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    return "tagged" if np.isin(values, list(missing)).any() else "float"


def tagged(series: pd.Series, missing: Mapping[float, str]) -> pd.Series:
    """A column holding numbers and the letters of Stata extended missing values (.d, .r, .n), for pyreadstat.

    pyreadstat reads column types through narwhals, which takes an object column for text when its first 100
    values hold no number (only missing values and letters, as in a question most people skip), and the write
    then fails. Such a column is made categorical with the numbers first among its categories, which narwhals
    reads as numbers; other columns stay plain object columns, which are cheaper to build.
    """
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    out = values.astype(object)
    out[np.isnan(values)] = None
    coded = np.zeros(len(values), dtype=bool)
    for code, letter in missing.items():
        hit = values == code
        out[hit] = letter
        coded |= hit
    head = slice(0, NARWHALS_SNIFF_ROWS)
    if np.any(~np.isnan(values[head]) & ~coded[head]):
        return pd.Series(out, index=series.index, dtype=object)
    numbers = np.unique(values[~np.isnan(values) & ~coded]).tolist()
    letters = sorted(set(missing.values()))
    return pd.Series(pd.Categorical(out, categories=[*numbers, *letters]), index=series.index)


def all_numeric(series: pd.Series) -> bool:
    """Whether every present value of a text column reads as a number (a calculation exported as numeric)."""
    present = series.dropna()
    if present.empty:
        return False
    return bool(pd.to_numeric(pd.Series(present.unique()), errors="coerce").notna().all())


def text_numbers(series: pd.Series) -> np.ndarray:
    """The numbers of a text column whose every present value reads as one (`all_numeric`), as float64 (NaN where
    missing); each distinct text is parsed once."""
    codes, distinct = pd.factorize(series)
    numbers = pd.to_numeric(pd.Series(distinct)).to_numpy(dtype="float64")
    return np.append(numbers, np.nan)[codes]


def byte_width(series: pd.Series) -> int:
    """UTF-8 byte width of the longest value (an upper bound, 4 bytes a character, when that is short)."""
    lengths = series.str.len()
    longest = lengths.max()
    if pd.isna(longest) or longest == 0:
        return 1
    if longest * 4 <= SPSS_SHORT_STRING_MAX_BYTES:
        return int(longest) * 4
    return int(series.dropna().map(lambda s: len(s.encode("utf-8"))).max())


def arrow_strings(series: pd.Series) -> pa.Array:
    """The series as an Arrow string array (zero-copy for pandas' Arrow-backed strings)."""
    array = pa.array(series, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pa.array(series.astype("str").where(series.notna()), from_pandas=True)
    return array


def _distinct(series: pd.Series) -> tuple[list[str], np.ndarray]:
    """The distinct values of a text column and, per row, the position of its value (len(values) if missing).

    Survey answers repeat a few values many times, so work per distinct value is cheap and vectorised per row.
    """
    encoded = arrow_strings(series).dictionary_encode()
    values = encoded.dictionary.to_pylist()
    return values, encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)


def _lookup(series: pd.Series, function: Callable[[str], float]) -> tuple[np.ndarray, list[str]]:
    """`function` applied to every distinct value, spread back to the rows (NaN where missing)."""
    values, index = _distinct(series)
    table = np.array([function(value) for value in values] + [np.nan], dtype="float64")
    return table[index], values


def select_codes(
    series: pd.Series,
    mapping: Mapping[str, int],
    node: Node,
    *,
    table: str,
    issues: list[Issue],
    labels: dict[int, str],
) -> np.ndarray:
    """Numeric codes of select_one answers; values outside the list keep their integer or get new codes."""
    values, index = _distinct(series)
    unknown = sorted(v for v in values if v not in mapping)
    full = dict(mapping)
    if unknown:
        next_code = max(full.values(), default=0) + 1
        for value in unknown:
            if INTEGER.match(value) and all(INTEGER.match(n) for n in mapping):
                full[value] = int(value)
            else:
                full[value] = next_code
                labels[next_code] = value
                next_code += 1
        issues.append(
            warning(
                EXPORT_UNKNOWN_CHOICE,
                f"{len(unknown)} answer value(s) are not in choice list {node.choice_list!r}: "
                f"{', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''}. Integer values are kept as "
                "they are; others got new codes after the list, labelled with the value. Check the form "
                "version.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    lookup = np.array([full[v] for v in values] + [np.nan], dtype="float64")
    return lookup[index]


def dummies(series: pd.Series, names: Sequence[str]) -> np.ndarray:
    """0/1 per choice (columns in list order) from space-separated answers; NaN rows where not answered."""
    values, index = _distinct(series)
    table = np.full((len(values) + 1, len(names)), np.nan)
    for row, value in enumerate(values):
        chosen = set(value.split())
        table[row] = [1.0 if name in chosen else 0.0 for name in names]
    return table[index]


def check_multiple(
    series: pd.Series, names: Sequence[str], node: Node, table: str, issues: list[Issue]
) -> None:
    """Warn about selected names that are not in the choice list (they get no dummy)."""
    known = set(names)
    values, _ = _distinct(series)
    unknown = sorted({token for value in values for token in value.split()} - known)
    if unknown:
        issues.append(
            warning(
                EXPORT_UNKNOWN_CHOICE,
                f"{len(unknown)} selected value(s) are not in choice list {node.choice_list!r} and have no "
                f"dummy: {', '.join(unknown[:10])}. They stay in the original space-separated variable.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )


_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_GEOPOINT = (
    rf"^\s*(?P<latitude>{_NUMBER})\s+(?P<longitude>{_NUMBER})"
    rf"(?:\s+(?P<altitude>{_NUMBER}))?(?:\s+(?P<accuracy>{_NUMBER}))?\s*$"
)


def split_geopoint(series: pd.Series, node: Node, table: str, issues: list[Issue]) -> list[np.ndarray]:
    """Latitude, longitude, altitude and accuracy of ODK geopoints ("lat lon alt acc")."""
    parts = pc.extract_regex(arrow_strings(series), _GEOPOINT)
    out = []
    for name in ("latitude", "longitude", "altitude", "accuracy"):
        text = parts.field(name)
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
        out.append(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))
    bad = series.notna().to_numpy() & np.isnan(out[0])
    if bad.any():
        issues.append(
            error(
                EXPORT_BAD_VALUE,
                f"{int(bad.sum())} geopoint value(s) are not 'lat lon alt acc'; their parts are missing.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    return out


def _utc_offset(zone: str) -> float:
    """Minutes east of UTC of an ISO 8601 zone designator (Z, +03:00, -0530, +05); NaN when there is none."""
    if zone in {"Z", "z"}:
        return 0.0
    digits = re.sub(r"[^0-9]", "", zone)
    if len(digits) < 2:
        return float("nan")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return -float(minutes) if zone.startswith("-") else float(minutes)


def split_datetime(
    series: pd.Series, node: Node | None, table: str, issues: list[Issue]
) -> tuple[pd.Series, np.ndarray]:
    """Local wall-clock time and UTC offset (minutes) of ODK dateTimes (2026-11-27T10:15:00.000+03:00)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        local = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
        return local.astype("datetime64[s]"), np.full(len(series), np.nan)
    parts = pc.extract_regex(arrow_strings(series), _ODK_DATETIME)
    wall_clock = pc.replace_substring(parts.field("local"), " ", "T").to_pandas(types_mapper=None)
    local = pd.to_datetime(pd.Series(wall_clock, index=series.index), format="ISO8601", errors="coerce")
    offset, _ = _lookup(pd.Series(parts.field("zone").to_pandas(), index=series.index), _utc_offset)
    bad = series.notna().to_numpy() & local.isna().to_numpy()
    if bad.any() and node is not None:
        issues.append(
            error(
                EXPORT_BAD_VALUE,
                f"{int(bad.sum())} dateTime value(s) could not be read; they are missing in the export.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    return local.astype("datetime64[s]"), offset


def to_dates(series: pd.Series, node: Node, table: str, issues: list[Issue]) -> pd.Series:
    """ODK dates as datetime64 (day precision); unreadable values become missing with an error issue."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("datetime64[s]")
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce")
    bad = series.notna() & parsed.isna()
    if bad.any():
        issues.append(
            error(
                EXPORT_BAD_VALUE,
                f"{int(bad.sum())} date value(s) could not be read; they are missing in the export.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    return parsed.astype("datetime64[s]")
