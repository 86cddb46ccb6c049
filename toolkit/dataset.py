"""The DATA folder contract (docs/tables.md): `tables.json` beside one Parquet file per table.

Ingest writes it, weights adds to it, and validate, export, codebook, indicators and the pipeline read it, all
through `DataFolder`: the one place that knows the manifest's keys. A folder is read whole and checked before
any stage uses it (schema version, every table entry, every file), so a stage never meets half a contract.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.errors import (
    INPUT_MISSING,
    INPUT_UNREADABLE,
    OUTPUT_UNWRITABLE,
    Issue,
    ToolkitError,
    error,
)
from toolkit.files import write_text_atomic, write_together_atomic
from toolkit.spreadsheet import safe_frame

MANIFEST = "tables.json"

# Version 1: the manifests written before the version was recorded (no `schema_version` key; also the early
# layout with `tables` as a list of entries and `versions` for the form versions). Version 2 records the key and
# is otherwise the same layout: a reader of version 1 reads both.
SCHEMA_VERSION = 2
SCHEMA_VERSIONS_READ = (1, 2)

# The text dtype ("string" in tables.json) as ingest builds it: Arrow-backed in memory, one buffer per column rather
# than a Python object per cell (what lets every stage hold 100,000 households' tables within 2 GB).
_STRING = pd.StringDtype("pyarrow")


@dataclass(frozen=True)
class Column:
    """One column of a table.

    `path` is the form node it comes from ("" for key and meta columns, None for columns `migkit weights` adds),
    `question_type` the XLSForm type ("unknown" for an element no form defines), `dtype` the pandas dtype.
    """

    name: str
    path: str | None
    question_type: str | None
    dtype: str


@dataclass(frozen=True)
class Table:
    """One table (one level of the form): its name, Parquet file, node path, parent table, rows and columns.

    `weights` and `replicate_weights` are the weight columns `migkit weights` added (empty before weighting).
    """

    name: str
    file: str
    path: str
    parent: str | None
    rows: int
    columns: tuple[Column, ...] = ()
    weights: tuple[str, ...] = ()
    replicate_weights: tuple[str, ...] = ()

    @property
    def column_paths(self) -> dict[str, str]:
        """Column name -> form node path, for the columns that come from a form node."""
        return {c.name: c.path for c in self.columns if c.path}


@dataclass(frozen=True)
class Replicates:
    """Replicate weights `migkit weights` made: columns `<prefix>1..<prefix>n`, by `method` (jkn, brr...)."""

    prefix: str
    method: str
    n: int


@dataclass(frozen=True)
class Design:
    """The variance design `migkit weights` records: the weight, strata and PSU columns, and the replicates."""

    weight: str | None = None
    strata: str | None = None
    psu: str | None = None
    replicates: Replicates | None = None


@dataclass(frozen=True)
class TableWeights:
    """What `migkit weights` adds to one table: its weight columns, replicate weight columns, and the new
    columns to list (appended to the table's columns unless already listed)."""

    table: str
    weights: tuple[str, ...]
    replicate_weights: tuple[str, ...]
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class DataFolder:
    """A DATA folder: where it is, the form, its tables, and what ingest and weights recorded.

    `stats` and `issues` are what ingest found while reading the submissions; `design` is None before weighting.
    """

    folder: Path
    form_id: str
    tables: tuple[Table, ...]
    form_versions: tuple[str, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    issues: tuple[Issue, ...] = ()
    design: Design | None = None
    schema_version: int = SCHEMA_VERSION

    # --- reading -------------------------------------------------------------------------------------------

    @classmethod
    def exists(cls, folder: Path | str) -> bool:
        """Whether `folder` holds a tables.json (is a DATA folder rather than submissions or a CSV export)."""
        return (Path(folder) / MANIFEST).is_file()

    @classmethod
    def read(cls, folder: Path | str) -> DataFolder:
        """Read and check a DATA folder: its schema version, every table entry and that every file is there.

        Raises ToolkitError naming the folder, what is wrong and the fix (all problems of the manifest at once).

        Parameters:
            folder: the folder holding tables.json and the Parquet files.
        """
        folder = Path(folder)
        manifest = read_manifest(folder)
        problems: list[str] = []
        data = _from_manifest(folder, manifest, problems)
        if problems or data is None:
            where = str(folder / MANIFEST)
            raise ToolkitError.of([error(INPUT_UNREADABLE, problem, file=where) for problem in problems])
        missing = [t for t in data.tables if not (folder / t.file).is_file()]
        if missing:
            raise ToolkitError.of(
                [
                    error(
                        INPUT_MISSING,
                        f"tables.json lists table {t.name!r} but its file {t.file} is not in the folder; copy the "
                        "whole DATA folder, or run `migkit ingest` again to write it.",
                        file=str(folder / t.file),
                    )
                    for t in missing
                ]
            )
        return data

    def table(self, name: str) -> Table:
        """The table named `name`; KeyError when there is none."""
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tables)

    def load(self, name: str, *, columns: Sequence[str] | None = None, recorded_dtypes: bool = False) -> pd.DataFrame:
        """One table as a DataFrame.

        Parameters:
            name: the table's name.
            columns: read only these columns (stages read a few columns of wide tables); None reads all.
            recorded_dtypes: cast the columns to the dtypes tables.json records ("string" as pandas' Arrow-backed
                string); False keeps what the Parquet file holds.
        """
        table = self.table(name)
        path = self.folder / table.file
        try:
            frame = pd.read_parquet(path, columns=list(columns) if columns is not None else None)
            if recorded_dtypes:
                for column in table.columns:
                    if column.name in frame.columns and column.dtype:
                        dtype: Any = _STRING if column.dtype == "string" else column.dtype  # a name from tables.json
                        frame[column.name] = frame[column.name].astype(dtype)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ToolkitError(
                error(INPUT_UNREADABLE, f"Cannot read table {name!r}: {exc}.", file=str(path))
            ) from None
        return frame

    def load_all(self, *, recorded_dtypes: bool = False) -> dict[str, pd.DataFrame]:
        """Every table by name, in manifest order; see `load`."""
        return {t.name: self.load(t.name, recorded_dtypes=recorded_dtypes) for t in self.tables}

    # --- changing and writing ------------------------------------------------------------------------------

    def with_weights(self, added: Iterable[TableWeights], design: Design) -> DataFolder:
        """This folder as `migkit weights` leaves it: per table the weight columns and their new columns, and the
        variance design; everything ingest recorded is kept.

        Parameters:
            added: the weighted tables (by name); tables not named stay as they are.
            design: the weight, strata and PSU columns and the replicates.
        """
        by_name = {a.table: a for a in added}
        tables = []
        for table in self.tables:
            weighting = by_name.get(table.name)
            if weighting is None:
                tables.append(table)
                continue
            known = {c.name for c in table.columns}
            new = tuple(c for c in weighting.columns if c.name not in known)
            tables.append(
                dataclasses.replace(
                    table,
                    columns=table.columns + new,
                    weights=weighting.weights,
                    replicate_weights=weighting.replicate_weights,
                )
            )
        return dataclasses.replace(self, tables=tuple(tables), design=design, schema_version=SCHEMA_VERSION)

    def manifest_text(self) -> str:
        """tables.json as written (UTF-8 text, two-space indent, Cyrillic kept as it is)."""
        return json.dumps(_to_manifest(self), ensure_ascii=False, indent=2, default=str)

    def write(self, frames: Mapping[str, pd.DataFrame] | None = None, *, csv: bool = False) -> list[Path]:
        """Write tables.json and the given tables into the folder (created when missing), atomically.

        Every file is written whole in a temporary folder before the first is renamed into place, tables.json
        last, so a failed write leaves the previous set as it was. The files are private (0600): they hold answers.

        Parameters:
            frames: table name -> DataFrame for the tables to (re)write; None writes only tables.json.
            csv: also write `<table>.csv` for each frame (UTF-8 with BOM so Excel shows Cyrillic; answers that a
                spreadsheet would run as formulas start with `'`).
        Returns the written paths, tables.json last.
        """
        frames = frames or {}
        writers: list[tuple[str, Callable[[Path], object]]] = []
        for name, frame in frames.items():
            writers.append((self.table(name).file, functools.partial(_write_parquet, frame)))
            if csv:
                writers.append((f"{name}.csv", functools.partial(_write_csv, frame)))
        text = self.manifest_text()
        try:
            if not writers:
                write_text_atomic(self.folder / MANIFEST, text)
                return [self.folder / MANIFEST]
            writers.append((MANIFEST, lambda path: path.write_text(text, encoding="utf-8")))
            return write_together_atomic(self.folder, writers)
        except OSError as exc:
            raise ToolkitError(
                error(OUTPUT_UNWRITABLE, f"Cannot write the DATA folder: {exc}.", file=str(self.folder))
            ) from None


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed tables.json of a DATA folder, unchecked (`DataFolder.read` checks it); a ToolkitError naming the
    folder and the fix when it is missing or cannot be read.

    Parameters:
        folder: the DATA folder.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ToolkitError(
            error(
                INPUT_MISSING,
                "No tables.json here; run `migkit ingest` (and `migkit weights`) first to make the DATA folder.",
                file=str(folder),
            )
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolkitError(error(INPUT_UNREADABLE, f"Cannot read tables.json: {exc}.", file=str(path))) from None
    if not isinstance(manifest, dict):
        raise ToolkitError(error(INPUT_UNREADABLE, "tables.json is not a JSON object.", file=str(path)))
    return manifest


def unsafe_name(name: object) -> str | None:
    """Why a table or file name from a manifest cannot be used (None when it can): it must be a plain file name,
    so that a crafted tables.json cannot make a stage read or write outside the DATA folder."""
    if not isinstance(name, str) or not name.strip():
        return "is not a non-empty text"
    if "/" in name or "\\" in name or ".." in name or "\x00" in name or ":" in name:
        return "holds a path separator, `..`, `:` or a NUL"
    return None


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    # For spreadsheets: answers that would run as formulas are written as text (the Parquet tables keep them).
    safe_frame(frame).to_csv(path, index=False, encoding="utf-8-sig")


# --- the manifest as JSON ----------------------------------------------------------------------------------


def _to_manifest(data: DataFolder) -> dict[str, Any]:
    # Key order as ingest and weights wrote it before the DataFolder type, so that files stay comparable.
    manifest: dict[str, Any] = {
        "schema_version": data.schema_version,
        "form_id": data.form_id,
        "form_versions": list(data.form_versions),
        "tables": {table.name: _table_entry(table) for table in data.tables},
        "stats": dict(data.stats),
        "issues": [issue.flatten() for issue in data.issues],
    }
    if data.design is not None:
        design = dataclasses.asdict(data.design)
        manifest["design"] = design
    return manifest


def _table_entry(table: Table) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "file": table.file,
        "path": table.path,
        "parent": table.parent,
        "rows": table.rows,
        "columns": [dataclasses.asdict(c) for c in table.columns],
    }
    if table.weights or table.replicate_weights:
        entry["weights"] = list(table.weights)
        entry["replicate_weights"] = list(table.replicate_weights)
    return entry


def _from_manifest(folder: Path, manifest: Mapping[str, Any], problems: list[str]) -> DataFolder | None:
    version = manifest.get("schema_version", 1)
    if isinstance(version, bool) or version not in SCHEMA_VERSIONS_READ:
        problems.append(
            f"tables.json has schema version {version!r}; this migkit reads versions "
            f"{', '.join(map(str, SCHEMA_VERSIONS_READ))}. Update migkit, or run `migkit ingest` again."
        )
        return None
    form_id = manifest.get("form_id")
    if not isinstance(form_id, str) or not form_id:
        problems.append("tables.json has no form_id; run `migkit ingest` again to write it.")
    entries = manifest.get("tables")
    if isinstance(entries, list) and version == 1:  # the early layout: a list of entries named by their file
        entries = {_listed_name(e): e for e in entries}
    if not isinstance(entries, dict) or not entries:
        problems.append("tables.json lists no tables; run `migkit ingest` again.")
        return None
    tables = [_table(folder, name, entry, problems) for name, entry in entries.items()]
    versions = manifest.get("form_versions", manifest.get("versions", []))
    stats = manifest.get("stats") or {}
    design = _design(manifest.get("design"), problems)
    issues = _issues(manifest.get("issues") or [], problems)
    if not isinstance(versions, list) or not isinstance(stats, dict):
        problems.append("tables.json: form_versions must be a list and stats an object; run `migkit ingest` again.")
    if problems:
        return None
    return DataFolder(
        folder=folder,
        form_id=str(form_id),
        tables=tuple(t for t in tables if t is not None),
        form_versions=tuple(str(v) for v in versions),
        stats=stats,
        issues=issues,
        design=design,
        schema_version=int(version),
    )


def _listed_name(entry: object) -> str:
    if not isinstance(entry, dict):
        return repr(entry)
    name = entry.get("name") or str(entry.get("file", "")).removesuffix(".parquet")
    return str(name)


def _table(folder: Path, name: str, entry: object, problems: list[str]) -> Table | None:
    if not isinstance(entry, dict):
        problems.append(f"table {name!r}: the entry is not an object; run `migkit ingest` again.")
        return None
    file = entry.get("file", f"{name}.parquet")
    for what, value in (("name", name), ("file", file)):
        why = unsafe_name(value)
        if why:
            problems.append(
                f"table {name!r}: its {what} {value!r} {why}; a table is a plain file name in the DATA folder. "
                "Do not use this folder: run `migkit ingest` again on the submissions."
            )
    parent = entry.get("parent")
    if isinstance(parent, str) and parent.endswith(".parquet"):
        parent = parent.removesuffix(".parquet")  # the early layout names the parent by its file
    columns = _columns(name, entry.get("columns") or [], problems)
    rows = entry.get("rows")
    if rows is None and not unsafe_name(file) and (folder / file).is_file():
        rows = _row_count(folder / file)
    words = (entry.get("path", ""), parent, entry.get("weights", []), entry.get("replicate_weights", []))
    if (
        not isinstance(rows, int)
        or isinstance(rows, bool)
        or rows < 0
        or not isinstance(words[0], str)
        or not (words[1] is None or isinstance(words[1], str))
        or not all(isinstance(w, list) and all(isinstance(x, str) for x in w) for w in words[2:])
    ):
        problems.append(
            f"table {name!r}: rows must be a count, path and parent text, weights lists of column names; "
            "run `migkit ingest` (and `migkit weights`) again."
        )
        return None
    if columns is None or any(unsafe_name(v) for v in (name, file)):
        return None
    return Table(
        name=name,
        file=str(file),
        path=words[0],
        parent=words[1],
        rows=rows,
        columns=columns,
        weights=tuple(words[2]),
        replicate_weights=tuple(words[3]),
    )


def _row_count(path: Path) -> int | None:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, ValueError):
        return None


def _columns(table: str, entries: object, problems: list[str]) -> tuple[Column, ...] | None:
    out = []
    for entry in entries if isinstance(entries, list) else [entries]:
        fields = _column_fields(entry)
        if fields is None:
            problems.append(
                f"table {table!r}: a column entry is not {{name, path, question_type, dtype}} ({entry!r}); "
                "run `migkit ingest` again."
            )
            return None
        out.append(Column(*fields))
    return tuple(out)


def _column_fields(entry: object) -> tuple[str, str | None, str | None, str] | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return None
    path, question_type, dtype = entry.get("path", ""), entry.get("question_type", ""), entry.get("dtype", "")
    if not all(value is None or isinstance(value, str) for value in (path, question_type, dtype)):
        return None
    return entry["name"], path, question_type, dtype or ""


def _design(entry: object, problems: list[str]) -> Design | None:
    if entry is None:
        return None
    fix = "run `migkit weights` again."
    if not isinstance(entry, dict):
        problems.append(f"tables.json: design is not an object; {fix}")
        return None
    names = [entry.get(key) for key in ("weight", "strata", "psu")]
    if not all(value is None or isinstance(value, str) for value in names):
        problems.append(f"tables.json: design weight, strata and psu must be column names; {fix}")
        return None
    reps = entry.get("replicates")
    replicates = None
    if reps is not None:
        valid = (
            isinstance(reps, dict)
            and isinstance(reps.get("prefix"), str)
            and isinstance(reps.get("method"), str)
            and isinstance(reps.get("n"), int)
        )
        if not valid:
            problems.append(f"tables.json: design replicates must be {{prefix, method, n}}; {fix}")
            return None
        replicates = Replicates(reps["prefix"], reps["method"], reps["n"])
    return Design(names[0], names[1], names[2], replicates)


def _issues(stored: object, problems: list[str]) -> tuple[Issue, ...]:
    issues = []
    for flat in stored if isinstance(stored, list) else [stored]:
        try:
            if not isinstance(flat, dict):
                raise TypeError
            issues.append(Issue.from_flat(flat))
        except (TypeError, ValueError, KeyError):
            problems.append(f"tables.json: an ingest issue cannot be read ({flat!r}); run `migkit ingest` again.")
            break
    return tuple(issues)


def release_freed_memory() -> None:
    """Return memory that was freed to the operating system.

    The C allocators keep freed pages for reuse (glibc's heap below its top, Arrow's memory pool). At 100,000
    households that is a gigabyte after a stage, which the next stage would start with, and half a gigabyte after
    the export has planned its tables, which every process it forks would start with.
    """
    import contextlib
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): the allocator keeps its pages
        ctypes.CDLL("libc.so.6").malloc_trim(0)
