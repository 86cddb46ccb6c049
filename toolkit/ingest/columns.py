"""Typed columns from the rows of strings: one table per level, key columns, type checks, duplicates."""

from __future__ import annotations

from collections import Counter, defaultdict

import pandas as pd

from toolkit.errors import (
    Issue,
    error,
    warning,
)
from toolkit.ingest.parse import _Record
from toolkit.ingest.plan import _Field, _Plan
from toolkit.ingest.result import (
    DUPLICATE_INSTANCE,
    TYPE_INVALID,
    UNKNOWN_FIELD,
    ColumnInfo,
)

_INT = r"[+-]?\d{1,18}"
_DECIMAL = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_DATE = r"\d{4}-\d{2}-\d{2}(?:T.*)?"
_ZONE = r"(?:Z|[+-]\d{2}(?::?\d{2})?)?"
_CLOCK = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_DATETIME = rf"\d{{4}}-\d{{2}}-\d{{2}}T{_CLOCK}{_ZONE}"
_TIME = rf"{_CLOCK}{_ZONE}"
_NUM = r"-?\d+(?:\.\d+)?"
_GEOPOINT = rf"{_NUM} {_NUM}(?: {_NUM}){{0,2}}"
_STRING = pd.StringDtype("python")
_ARROW_STRING = pd.StringDtype("pyarrow")
_PATTERNS = {
    "int": _INT,
    "decimal": _DECIMAL,
    "date": _DATE,
    "dateTime": _DATETIME,
    "time": _TIME,
    "geopoint": _GEOPOINT,
}

# ODK Central adds meta/deprecatedID to a submission edited on the server (the instanceID of the version it
# replaces): a known field of every form, kept as a column without an "unknown field" warning.
CENTRAL_EDIT_META = "meta/deprecatedID"


def _typed(values: list[str | None], data_type: str) -> tuple[pd.Series, pd.Series | None]:
    """The typed column for a bind type and the mask of values that do not parse (None when all do)."""
    pattern = _PATTERNS.get(data_type)
    if pattern is None:
        raw = pd.Series(values, dtype=_STRING)
        return raw.mask(raw == ""), None
    # Checked with Arrow's vectorised string kernels (RE2 accepts these patterns), then typed.
    raw = pd.Series(values, dtype=_ARROW_STRING).str.strip()
    raw = raw.mask(raw == "")
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


def _rekey(record: _Record, new_id: str) -> _Record:
    """The record with KEY `new_id` in place of its instanceID, on every row."""
    old = record.instance_id
    rows = [
        (t, new_id + k[len(old) :], None if p is None else new_id + p[len(old) :], n, v, x)
        for t, k, p, n, v, x in record.rows
    ]
    return record._replace(instance_id=new_id, rows=rows)


def _deduplicate(records: list[_Record], issues: list[Issue]) -> list[_Record]:
    """One record per instanceID: identical copies are dropped (warning); differing ones are kept with KEY
    `<instanceID>~dup<n>` (error), so that no answer is lost and the conflict stays visible."""
    by_id: dict[str, list[_Record]] = defaultdict(list)
    for record in records:
        by_id[record.instance_id].append(record)
    kept: list[_Record] = []
    for instance_id, copies in by_id.items():
        kept.append(copies[0])
        variants: list[_Record] = [copies[0]]
        for copy in copies[1:]:
            same = next((v for v in variants if v.rows == copy.rows and v.version == copy.version), None)
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
            kept.append(_rekey(copy, new_id))
    return kept


def _build(  # noqa: PLR0912
    plan: _Plan, records: list[_Record], issues: list[Issue]
) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[ColumnInfo, ...]]]:
    records.sort(key=lambda r: r.instance_id)
    per_table: list[list[tuple[int, tuple]]] = [[] for _ in plan.tables]
    for hh_id, record in enumerate(records, start=1):
        for row in record.rows:
            per_table[row[0]].append((hh_id, row))
    unknown_seen: Counter[tuple[int, str]] = Counter(u for r in records for u in r.unknown)
    tables: dict[str, pd.DataFrame] = {}
    infos: dict[str, tuple[ColumnInfo, ...]] = {}
    with_dates = any(r.submission_date for r in records)
    for index, table in enumerate(plan.tables):
        rows = per_table[index]
        keys = [row[1] for _, row in rows]
        data: dict[str, pd.Series] = {"KEY": pd.Series(keys, dtype=_STRING)}
        columns = [ColumnInfo("KEY", "", "key", "string")]
        if index == 0:
            data["hh_id"] = pd.Series([hh for hh, _ in rows], dtype="Int64")
            versions = [r.version for r in records]
            data["FormVersion"] = pd.Series(versions, dtype=_STRING)
            columns += [
                ColumnInfo("hh_id", "", "key", "Int64"),
                ColumnInfo("FormVersion", "", "meta", "string"),
            ]
            if with_dates:
                data["SubmissionDate"] = pd.Series([r.submission_date for r in records], dtype=_STRING)
                columns.append(ColumnInfo("SubmissionDate", "", "meta", "string"))
        else:
            data["PARENT_KEY"] = pd.Series([row[2] for _, row in rows], dtype=_STRING)
            data["hh_id"] = pd.Series([hh for hh, _ in rows], dtype="Int64")
            columns += [
                ColumnInfo("PARENT_KEY", "", "key", "string"),
                ColumnInfo("hh_id", "", "key", "Int64"),
            ]
            for depth, repeat_name in enumerate(table.repeats):
                name = f"{repeat_name}_no"
                data[name] = pd.Series(
                    [row[3][depth] if len(row[3]) > depth else None for _, row in rows], dtype="Int64"
                )
                columns.append(ColumnInfo(name, "", "key", "Int64"))
        taken = set(data)
        specs = list(table.fields)
        known = {spec.path for spec in (*specs, *table.notes)}
        for (table_index, path), count in sorted(unknown_seen.items()):
            if table_index == index and path not in known:
                parent, _, name = path.rpartition("/")
                if path == f"{table.path}/{CENTRAL_EDIT_META}":
                    specs.append(_Field(path, name, parent.rsplit("/", 1)[-1], "deprecatedID", "string"))
                    continue
                specs.append(_Field(path, name, parent.rsplit("/", 1)[-1], "unknown", "string"))
                issues.append(
                    warning(
                        UNKNOWN_FIELD,
                        f"{count} submission(s) hold {path}, which the form does not "
                        "define; it is kept as a text column. Pass the form version that has it "
                        "with another --form.",
                        path=path,
                    )
                )
        # The rows' value tuples transposed into columns; undefined elements come from the rows' extras.
        known_columns = list(zip(*(row[4] for _, row in rows), strict=True)) if rows else []
        for position_in_table, spec in enumerate(specs):
            if position_in_table < len(table.fields):
                values = list(known_columns[position_in_table]) if rows else []
            else:
                values = [row[5].get(spec.path) if row[5] else None for _, row in rows]
            series, bad = _typed(values, spec.data_type)
            name = _unique_name(spec.name, spec.parent_name, taken)
            data[name] = series
            columns.append(ColumnInfo(name, spec.path, spec.question_type, _dtype_name(series)))
            if bad is not None:
                for position in bad.to_numpy().nonzero()[0]:
                    key = keys[position]
                    issues.append(
                        error(
                            TYPE_INVALID,
                            f"'{values[position]}' is not a valid {spec.data_type} for {spec.name}; the "
                            "cell is left empty. Correct the submission or the form's type.",
                            instance=key.split("/", 1)[0],
                            path=_indexed_path(plan.root, key, table.path, spec.path),
                            variable=name,
                            value=values[position],
                        )
                    )
        tables[table.name] = pd.DataFrame(data)
        infos[table.name] = tuple(columns)
    return tables, infos
