"""What ingest returns and writes: `IngestResult`, its issue codes, and the DATA folder (tables.json)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.dataset import Column, DataFolder, Table
from toolkit.errors import (
    Issue,
    Severity,
    define,
)

# Shared with validate (same code, same title: define() refuses a second title).
TYPE_INVALID = define("type_invalid", "A value does not parse as the question's type")
DUPLICATE_INSTANCE = define("duplicate_instance", "The same instanceID occurs in more than one submission")
OTHER_FORM = define("ingest.other_form", "Input files belong to another form and were skipped")
ENCRYPTED_SKIPPED = define("ingest.encrypted", "Encrypted submissions were skipped (decrypt them first)")
UNKNOWN_FIELD = define("ingest.unknown_field", "Submissions hold a field the form does not define")
NO_INSTANCE_ID = define("ingest.instance_id_missing", "A submission has no meta/instanceID")
NOT_DECRYPTED = define(
    "ingest.not_decrypted", "A Central export row has no data: the submission was not decrypted"
)
ORPHAN_ROW = define("ingest.orphan_row", "A repeat row of a Central export has no parent row")
NO_SUBMISSIONS = define("ingest.no_submissions", "The input holds no submission of the form")
MEDIA_CONFLICT = define("ingest.media_conflict", "Two attachments share a file name but differ")
LINK_REFUSED = define("ingest.link_refused", "An attachment is a symbolic link, which is never followed")


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a table: its name, the node path it comes from (empty for key columns), type, dtype."""

    name: str
    path: str
    question_type: str
    dtype: str


@dataclass(frozen=True)
class IngestResult:
    """Tables read from submissions.

    `tables` maps table name (`<form_id>`, `<form_id>-<repeat>`) to a DataFrame, `table_paths` the name to
    the node path of its level, `parents` the name to the parent table's name (None for the main table),
    `columns` the name to column descriptions in column order. `issues` are the data problems found while
    reading.
    """

    form_id: str
    tables: dict[str, pd.DataFrame]
    table_paths: dict[str, str]
    issues: tuple[Issue, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    columns: dict[str, tuple[ColumnInfo, ...]] = field(default_factory=dict)
    form_versions: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not any(issue.severity == Severity.ERROR for issue in self.issues)

    def counts_by_code(self) -> dict[str, int]:
        return dict(Counter(issue.code for issue in self.issues))


def data_folder(result: IngestResult, out_dir: Path) -> DataFolder:
    """The DATA folder record of an ingest result: one table per level, with its columns and row count."""
    tables = tuple(
        Table(
            name=name,
            file=f"{name}.parquet",
            path=result.table_paths[name],
            parent=result.parents.get(name),
            rows=len(frame),
            columns=tuple(
                Column(c.name, c.path, c.question_type, c.dtype) for c in result.columns.get(name, ())
            ),
        )
        for name, frame in result.tables.items()
    )
    return DataFolder(
        folder=Path(out_dir),
        form_id=result.form_id,
        tables=tables,
        form_versions=result.form_versions,
        stats=result.stats,
        issues=result.issues,
    )


def write_tables(result: IngestResult, out_dir: Path, *, csv: bool = False) -> list[Path]:
    """Write the tables (Parquet, plus CSV with a BOM when asked) and tables.json into `out_dir`, atomically
    (`DataFolder.write`: a failed write leaves the previous set as it was).

    Parameters:
        result: what `ingest` returned.
        out_dir: the DATA folder (created when missing).
        csv: also write `<table>.csv` (UTF-8 with BOM, so Excel shows Cyrillic).
    Returns the written paths, tables.json last.
    """
    return data_folder(result, out_dir).write(result.tables, csv=csv)


def read_tables(data_dir: Path) -> IngestResult:
    """Read a DATA folder back into an IngestResult (dtypes as in tables.json).

    Parameters:
        data_dir: the folder holding tables.json and the Parquet files.
    """
    return from_data_folder(DataFolder.read(data_dir))


def from_data_folder(data: DataFolder) -> IngestResult:
    """The IngestResult of a DATA folder that `DataFolder.read` checked (its tables loaded with their dtypes)."""
    return IngestResult(
        form_id=data.form_id,
        tables=data.load_all(recorded_dtypes=True),
        table_paths={t.name: t.path for t in data.tables},
        issues=data.issues,
        stats=dict(data.stats),
        parents={t.name: t.parent for t in data.tables},
        columns={
            t.name: tuple(ColumnInfo(c.name, c.path or "", c.question_type or "", c.dtype) for c in t.columns)
            for t in data.tables
        },
        form_versions=data.form_versions,
    )
