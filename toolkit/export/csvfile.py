"""The plain and labelled CSV of a table, formatted and joined by Arrow (the bytes `spreadsheet.write_csv_pair` writes).

`write_csv_pair` hands every cell to Python's `csv.writer`, which took most of an export's time at 100,000
households. Here each column becomes an Arrow string array (numbers formatted once per distinct value, as
`csv.writer` formats them; text quoted as its QUOTE_MINIMAL dialect quotes it) and Arrow joins the rows. A table
with a column this writer does not know (or with a single column, which `csv.writer` writes differently) goes to
`write_csv_pair`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.spreadsheet import safe_frame, write_csv_pair

# Rows formatted and written at a time: bounds the Arrow buffers held for a large table (a row of the person
# table is about 1 kB of text; at 50,000 rows a part, Arrow's pool held 0.4 GB for the person table of 100,000
# households, at 10,000 it holds 0.1 GB, for 1-2 s more).
ROWS_PER_CHUNK = 10_000
# What csv.writer's QUOTE_MINIMAL quotes, with "\n" as the line terminator: the delimiter, the quote character and
# the line terminator (a lone "\r" is written as it is).
_NEEDS_QUOTES = (",", '"', "\n")
_EMPTY = pa.scalar("", pa.string())
_TYPE_OF = np.frompyfunc(type, 1, 1)


def write_csv_files(path: Path, frame: pd.DataFrame, other: Path, replaced: Mapping[str, pd.Series]) -> None:
    """Write `frame` to `path` and the same table with the columns of `replaced` swapped in to `other`.

    The same bytes as `toolkit.spreadsheet.write_csv_pair(path, frame, other, replaced)`: UTF-8 with BOM, text cells
    that would run as formulas made safe, missing values empty, numbers as `csv.writer` writes them.

    Parameters:
        path: the plain CSV.
        frame: the table; it is not changed.
        other: the variant (the labelled CSV).
        replaced: column name -> the variant's column (same length as `frame`).
    """
    write_csv_parts(path, other, [(frame, replaced)])


def write_csv_parts(
    path: Path, other: Path, parts: Iterable[tuple[pd.DataFrame, Mapping[str, pd.Series]]]
) -> None:
    """`write_csv_files` of a table given as consecutive parts of its rows (the same columns and dtypes in each),
    so that only one part is held as text at a time.

    Parameters:
        path: the plain CSV.
        other: the variant (the labelled CSV).
        parts: (rows of the table, their replaced columns), in row order; at least one (it may have no rows).
    """
    pending = iter(parts)
    first = next(pending)
    safe, swaps = _made_safe(*first)
    columns = [safe.iloc[:, i] for i in range(len(safe.columns))]
    if len(columns) < 2 or any(not _supported(c) for c in [*columns, *(swaps[n] for n in swaps.columns)]):
        # A column this writer does not know: csv.writer writes the whole table.
        whole = [first, *pending]
        frame = pd.concat([part for part, _ in whole])
        replaced = {name: pd.concat([swap[name] for _, swap in whole]) for name in first[1]}
        write_csv_pair(path, frame, other, replaced)
        return
    header = _header([str(name) for name in safe.columns])
    positions = {int(safe.columns.get_indexer(pd.Index([name]))[0]): name for name in swaps.columns}
    with path.open("wb") as plain, other.open("wb") as labelled:
        for handle in (plain, labelled):
            handle.write(header)
        while True:
            columns = [safe.iloc[:, i] for i in range(len(safe.columns))]
            for start in range(0, len(safe), ROWS_PER_CHUNK):
                rows = slice(start, start + ROWS_PER_CHUNK)
                cells = [_cells(column.iloc[rows]) for column in columns]
                plain.write(_lines(cells))
                for position, name in positions.items():
                    cells[position] = _cells(swaps[name].iloc[rows])
                labelled.write(_lines(cells))
            part = next(pending, None)
            if part is None:
                return
            safe, swaps = _made_safe(*part)


def _made_safe(frame: pd.DataFrame, replaced: Mapping[str, pd.Series]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A part and its replaced columns with their text cells made safe (`safe_frame`)."""
    swaps = safe_frame(pd.DataFrame(dict(replaced), index=frame.index)) if replaced else pd.DataFrame()
    return safe_frame(frame), swaps


def _header(names: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(names)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _supported(column: pd.Series) -> bool:
    dtype = column.dtype
    return (
        dtype == np.float64
        or isinstance(dtype, (pd.Int64Dtype, pd.StringDtype))
        or pd.api.types.is_object_dtype(dtype)
    )


def _lines(cells: list[pa.Array]) -> memoryview:
    """The rows of a chunk as CSV lines, each ending in "\\n" (a view of Arrow's buffer)."""
    rows = pc.binary_join_element_wise(*cells, ",")
    lines = pc.binary_join_element_wise(rows, _EMPTY, "\n")
    if not len(lines):
        return memoryview(b"")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def _cells(column: pd.Series) -> pa.Array:
    """One column's cells as csv.writer writes them: a non-null Arrow string array, quoted where needed."""
    dtype = column.dtype
    if dtype == np.float64:
        return _floats(column.to_numpy())
    if isinstance(dtype, pd.Int64Dtype):
        return pc.cast(pa.array(column), pa.string()).fill_null("")
    if isinstance(dtype, pd.StringDtype) or pd.api.types.infer_dtype(column, skipna=True) in {"string", "empty"}:
        text = pa.array(column, type=pa.string(), from_pandas=True)
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        return _quoted(text.fill_null(""))
    return _quoted(pa.array(_object_texts(column), type=pa.string()))


def _object_texts(column: pd.Series) -> np.ndarray:
    """Mixed Python objects (labels beside codes without one) as csv.writer formats them, each distinct value of
    each type formatted once (1, 1.0 and True are one value to a hash table but three texts)."""
    values = column.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    texts = np.full(len(values), "", dtype=object)
    present = ~pd.isna(values)
    types = _TYPE_OF(values)
    for kind in pd.unique(types[present]):
        rows = present & (types == kind)
        if kind is str:
            texts[rows] = values[rows]
            continue
        chosen = values[rows]
        if issubclass(kind, (float, np.floating)) and _has_negative_zero(chosen.astype("float64")):
            texts[rows] = [_text(value) for value in chosen]
            continue
        codes, distinct = pd.factorize(chosen)
        texts[rows] = np.array([_text(value) for value in distinct] + [""], dtype=object)[codes]
    return texts


def _text(value: object) -> str:
    """A cell as csv.writer formats it: text as it is, floats by repr(), anything else by str()."""
    if isinstance(value, str):
        return value
    return repr(value) if isinstance(value, float) else str(value)


def _floats(values: np.ndarray) -> pa.Array:
    """float64 cells by repr() (what csv.writer writes), each distinct value formatted once; NaN empty."""
    if _has_negative_zero(values):
        return pa.array(["" if np.isnan(v) else repr(v) for v in values.tolist()], type=pa.string())
    codes, distinct = pd.factorize(values)
    texts = pa.array([repr(v) for v in distinct.tolist()] + [""], type=pa.string())
    codes[codes < 0] = len(distinct)
    return texts.take(pa.array(codes))


def _has_negative_zero(values: np.ndarray) -> bool:
    """Whether -0.0 occurs: -0.0 and 0.0 are one value to a hash table but two texts."""
    return bool(np.any((values == 0) & np.signbit(values)))


def _quoted(text: pa.Array) -> pa.Array:
    """Cells holding a delimiter, quote or newline put in quotes, inner quotes doubled (QUOTE_MINIMAL)."""
    needs = pc.match_substring(text, _NEEDS_QUOTES[0])
    for needle in _NEEDS_QUOTES[1:]:
        needs = pc.or_(needs, pc.match_substring(text, needle))
    if not pc.any(needs).as_py():
        return text
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, text)
