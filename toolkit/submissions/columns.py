"""Typed columns from the rows of strings: one table per level, key columns, type checks, duplicates."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit.errors import (
    Issue,
    error,
    warning,
)
from toolkit.submissions.blocks import NO_POSITION, Block
from toolkit.submissions.parse import Record
from toolkit.submissions.plan import FieldPlan, Plan
from toolkit.submissions.result import (
    DUPLICATE_INSTANCE,
    TYPE_INVALID,
    UNKNOWN_FIELD,
    ColumnInfo,
)
from toolkit.xpath.values import DATE_TEXT, DATETIME_TEXT, DECIMAL_TEXT, INT64_TEXT, TIME_TEXT

# A date answer may carry a time part (older Collect versions): the column keeps the date.
_DATE = rf"{DATE_TEXT}(?:T.*)?"
_NUM = r"-?\d+(?:\.\d+)?"
_GEOPOINT = rf"{_NUM} {_NUM}(?: {_NUM}){{0,2}}"
# Text columns are Arrow-backed: one buffer per column instead of a Python object per cell, which is what keeps
# 100,000 households' tables within memory (readers of the DATA folder choose their own storage, tables.json
# records only "string").
_STRING = pd.StringDtype("pyarrow")
_PATTERNS = {
    "int": INT64_TEXT,
    "decimal": DECIMAL_TEXT,
    "date": _DATE,
    "dateTime": DATETIME_TEXT,
    "time": TIME_TEXT,
    "geopoint": _GEOPOINT,
}

# ODK Central adds meta/deprecatedID to a submission edited on the server (the instanceID of the version it
# replaces): a known field of every form, kept as a column without an "unknown field" warning.
CENTRAL_EDIT_META = "meta/deprecatedID"


def _typed(text: pd.Series, data_type: str) -> tuple[pd.Series, pd.Series | None]:
    """The typed column for a bind type and the mask of values that do not parse (None when all do)."""
    pattern = _PATTERNS.get(data_type)
    if pattern is None:
        return _blank_as_missing(text), None
    # Checked with Arrow's vectorised string kernels (RE2 accepts these patterns), then typed.
    raw = _blank_as_missing(text.str.strip())
    present = raw.notna()
    ok = raw.str.fullmatch(pattern).fillna(False).astype(bool)
    if data_type == "geopoint" and ok.any():
        parts = raw.where(ok).str.split(" ", n=2, expand=True)
        lat = pd.to_numeric(parts[0], errors="coerce")
        lon = pd.to_numeric(parts[1], errors="coerce")
        ok &= (lat.abs() <= 90).fillna(False).astype(bool) & (lon.abs() <= 180).fillna(False).astype(bool)
    clean = raw.where(ok)
    typed: pd.Series
    if data_type == "int":
        typed = clean.astype("Int64")
    elif data_type == "decimal":
        typed = clean.astype("Float64")
    elif data_type == "date":
        typed = pd.to_datetime(clean.str.slice(0, 10), format="%Y-%m-%d", errors="coerce").astype(
            "datetime64[s]"
        )
        ok &= typed.notna()
    else:
        typed = clean.astype(_STRING)
    bad = present & ~ok
    return typed, (bad if bad.any() else None)


def _blank_as_missing(text: pd.Series) -> pd.Series:
    """An Arrow-backed text column with empty texts as missing (Arrow's kernels: pandas' `mask` takes several times
    as long)."""
    column = pa.array(text.array)
    blank = pc.equal(column, "")
    return pd.Series(pd.arrays.ArrowStringArray(pc.if_else(blank, pa.scalar(None, column.type), column)))


def _dtype_name(series: pd.Series) -> str:
    return "string" if isinstance(series.dtype, pd.StringDtype) else str(series.dtype)


def _indexed_path(root: str, key: str, table_path: str, field_path: str) -> str:
    """JavaRosa-style path of one answer: `/data/hl[2]/hl_age` from KEY `uuid:…/hl[2]`."""
    rest = key.split("/", 1)[1] if "/" in key else ""
    return f"{root}{'/' + rest if rest else ''}{field_path[len(table_path) :]}"


def _unique_name(name: str, group: str, taken: set[str]) -> str:
    candidate = name if name not in taken else f"{group}_{name}"
    number = 2
    base = candidate
    while candidate in taken:
        candidate = f"{base}_{number}"
        number += 1
    taken.add(candidate)
    return candidate


def rekey(record: Record, new_id: str) -> Record:
    """The record with KEY `new_id` in place of its instanceID (its rows' keys are rewritten when the tables are
    built)."""
    original = record.instance_id if record.keyed_from is None else record.keyed_from
    return record._replace(instance_id=new_id, keyed_from=original)


def deduplicate(records: list[Record], issues: list[Issue]) -> list[Record]:
    """One record per instanceID: identical copies are dropped (warning); differing ones are kept with KEY
    `<instanceID>~dup<n>` (error), so that no answer is lost and the conflict stays visible."""
    by_id: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_id[record.instance_id].append(record)
    kept: list[Record] = []
    for instance_id, copies in by_id.items():
        kept.append(copies[0])
        variants: list[Record] = [copies[0]]
        for copy in copies[1:]:
            same = next((v for v in variants if v.digest == copy.digest and v.version == copy.version), None)
            if same is not None:
                issues.append(
                    warning(
                        DUPLICATE_INSTANCE,
                        f"{copy.source} repeats {same.source} exactly; one copy is kept.",
                        instance=instance_id,
                        file=copy.source,
                    )
                )
                continue
            new_id = f"{instance_id}~dup{len(variants) + 1}"
            variants.append(copy)
            issues.append(
                error(
                    DUPLICATE_INSTANCE,
                    f"{copy.source} has the instanceID of {copies[0].source} but "
                    f"other answers; both are kept, this one with KEY {new_id}. Find out which is the "
                    "right interview and remove the other from the input.",
                    instance=instance_id,
                    file=copy.source,
                )
            )
            kept.append(rekey(copy, new_id))
    return kept


def _ordered(blocks: list[Block], hh_of: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Row order of a table: by household (records sorted by instanceID), rows of one record as read; rows of
    dropped copies left out. Returns each kept row's record number and the positions to take."""
    record = np.concatenate([block.record for block in blocks]) if blocks else np.zeros(0, dtype=np.int64)
    household = hh_of[record]
    kept = np.flatnonzero(household > 0)
    order = kept[np.argsort(household[kept], kind="stable")]
    return record[order], pa.array(order, type=pa.int64())


def _text(arrays: list[pa.Array | None], blocks: list[Block], take: pa.Array) -> pd.Series:
    """One text column of a table from its array in each block (None: no answer in that block), in row order."""
    whole = [pa.nulls(len(b.record), pa.string()) if a is None else a for a, b in zip(arrays, blocks, strict=True)]
    return pd.Series(pd.arrays.ArrowStringArray(pa.concat_arrays(whole or [pa.array([], pa.string())]).take(take)))


def _rekeyed(keys: pd.Series, record: np.ndarray, renamed: dict[int, tuple[str, str]]) -> pd.Series:
    """KEY or PARENT_KEY of re-keyed records' rows: the new instanceID in place of the old one."""
    hits = np.flatnonzero(np.isin(record, np.fromiter(renamed, dtype=np.int64)))
    if not hits.size:
        return keys
    keys = keys.copy()
    for position in map(int, hits):
        old, new = renamed[int(record[position])]
        text = keys.iat[position]
        if isinstance(text, str):
            keys.iat[position] = new + text[len(old) :]
    return keys


def _positions(blocks: list[Block], level: int, take: pa.Array) -> pd.Series:
    numbers = np.concatenate([np.zeros(0, dtype=np.int64), *(block.positions[level] for block in blocks)])
    numbers = numbers[take.to_numpy()]
    return pd.Series(pd.array(numbers, dtype="Int64")).mask(numbers == NO_POSITION)


def _extra_values(blocks: list[Block], path: str, take: pa.Array) -> pd.Series:
    """A column of an element the form does not define, from the rows' extras."""
    starts = np.cumsum([0] + [len(block.record) for block in blocks])
    inverse = np.full(starts[-1], -1, dtype=np.int64)
    inverse[take.to_numpy()] = np.arange(len(take))
    values: list[str | None] = [None] * len(take)
    for start, block in zip(starts, blocks, strict=False):
        for position, extra in block.extras:
            row = inverse[start + position]
            if row >= 0:
                values[row] = extra.get(path)
    return pd.Series(values, dtype=_STRING)


def build_tables(  # noqa: PLR0912, PLR0915
    plan: Plan, records: list[Record], batches: list[list[Block | None]], issues: list[Issue]
) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[ColumnInfo, ...]]]:
    records.sort(key=lambda r: r.instance_id)
    numbered = [int(block.record.max()) for batch in batches for block in batch if block is not None]
    numbered += [r.number for r in records]
    hh_of = np.zeros(max(numbered, default=-1) + 1, dtype=np.int64)  # 0: a copy left out
    for hh_id, record in enumerate(records, start=1):
        hh_of[record.number] = hh_id
    renamed = {r.number: (r.keyed_from, r.instance_id) for r in records if r.keyed_from is not None}
    unknown_seen: Counter[tuple[int, str]] = Counter(u for r in records for u in r.unknown)
    tables: dict[str, pd.DataFrame] = {}
    infos: dict[str, tuple[ColumnInfo, ...]] = {}
    with_dates = any(r.submission_date for r in records)
    for index, table in enumerate(plan.tables):
        blocks = [block for batch in batches if (block := batch[index]) is not None]
        row_record, take = _ordered(blocks, hh_of)
        keys = _text([b.key for b in blocks], blocks, take)
        keys = _rekeyed(keys, row_record, renamed) if renamed else keys
        data: dict[str, pd.Series] = {"KEY": keys}
        columns = [ColumnInfo("KEY", "", "key", "string")]
        households = pd.Series(pd.array(hh_of[row_record], dtype="Int64"))
        if index == 0:
            data["hh_id"] = households
            data["FormVersion"] = pd.Series([r.version for r in records], dtype=_STRING)
            columns += [
                ColumnInfo("hh_id", "", "key", "Int64"),
                ColumnInfo("FormVersion", "", "meta", "string"),
            ]
            if with_dates:
                data["SubmissionDate"] = pd.Series([r.submission_date for r in records], dtype=_STRING)
                columns.append(ColumnInfo("SubmissionDate", "", "meta", "string"))
        else:
            parents = _text([b.parent for b in blocks], blocks, take)
            data["PARENT_KEY"] = _rekeyed(parents, row_record, renamed) if renamed else parents
            data["hh_id"] = households
            columns += [
                ColumnInfo("PARENT_KEY", "", "key", "string"),
                ColumnInfo("hh_id", "", "key", "Int64"),
            ]
            for depth, repeat_name in enumerate(table.repeats):
                name = f"{repeat_name}_no"
                data[name] = _positions(blocks, depth, take)
                columns.append(ColumnInfo(name, "", "key", "Int64"))
        taken = set(data)
        specs = list(table.fields)
        known = {spec.path for spec in (*specs, *table.notes)}
        for (table_index, path), count in sorted(unknown_seen.items()):
            if table_index == index and path not in known:
                parent, _, name = path.rpartition("/")
                if path == f"{table.path}/{CENTRAL_EDIT_META}":
                    specs.append(FieldPlan(path, name, parent.rsplit("/", 1)[-1], "deprecatedID", "string"))
                    continue
                specs.append(FieldPlan(path, name, parent.rsplit("/", 1)[-1], "unknown", "string"))
                issues.append(
                    warning(
                        UNKNOWN_FIELD,
                        f"{count} submission(s) hold {path}, which the form does not "
                        "define; it is kept as a text column. Pass the form version that has it "
                        "with another --form.",
                        path=path,
                    )
                )
        for position_in_table, spec in enumerate(specs):
            if position_in_table < len(table.fields):
                text = _text([b.values[position_in_table] for b in blocks], blocks, take)
            else:
                text = _extra_values(blocks, spec.path, take)
            series, bad = _typed(text, spec.data_type)
            name = _unique_name(spec.name, spec.parent_name, taken)
            data[name] = series
            columns.append(ColumnInfo(name, spec.path, spec.question_type, _dtype_name(series)))
            if bad is not None:
                for position in map(int, bad.to_numpy().nonzero()[0]):
                    key = str(keys.iat[position])
                    value = text.iat[position]
                    issues.append(
                        error(
                            TYPE_INVALID,
                            f"'{value}' is not a valid {spec.data_type} for {spec.name}; the "
                            "cell is left empty. Correct the submission or the form's type.",
                            instance=key.split("/", 1)[0],
                            path=_indexed_path(plan.root, key, table.path, spec.path),
                            variable=name,
                            value=value,
                        )
                    )
        tables[table.name] = pd.DataFrame(data)
        infos[table.name] = tuple(columns)
        for batch in batches:  # the packed rows of this table are no longer needed
            batch[index] = None
    return tables, infos
