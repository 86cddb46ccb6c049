"""What ingest returns and writes: `IngestResult`, its issue codes, and the DATA folder (tables.json)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.dataset import MANIFEST, read_manifest
from toolkit.errors import (
    INPUT_UNREADABLE,
    OUTPUT_UNWRITABLE,
    Issue,
    Location,
    Severity,
    ToolkitError,
    define,
    error,
)
from toolkit.spreadsheet import safe_frame

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


# Text columns of the DATA folder are Arrow-backed in memory, as ingest builds them: one buffer per column rather
# than a Python object per cell (what lets every stage hold 100,000 households' tables within 2 GB).
_STRING = pd.StringDtype("pyarrow")


def _manifest(result: IngestResult, files: dict[str, str]) -> dict[str, Any]:
    return {
        "form_id": result.form_id,
        "form_versions": list(result.form_versions),
        "tables": {
            name: {
                "file": files[name],
                "path": result.table_paths[name],
                "parent": result.parents.get(name),
                "rows": len(frame),
                "columns": [
                    {"name": c.name, "path": c.path, "question_type": c.question_type, "dtype": c.dtype}
                    for c in result.columns.get(name, ())
                ],
            }
            for name, frame in result.tables.items()
        },
        "stats": result.stats,
        "issues": [issue.flatten() for issue in result.issues],
    }


def write_tables(result: IngestResult, out_dir: Path, *, csv: bool = False) -> list[Path]:
    """Write the tables (Parquet, plus CSV with a BOM when asked) and tables.json into `out_dir`, atomically.

    Parameters:
        result: what `ingest` returned.
        out_dir: the DATA folder (created when missing).
        csv: also write `<table>.csv` (UTF-8 with BOM, so Excel shows Cyrillic).
    Returns the written paths, tables.json last.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # Not toolkit.files: the tables and tables.json are written whole in one temporary folder before the
        # first is renamed into place (tables.json last), so a failed write leaves the previous set as it was
        # (a failure during the renames themselves can leave new tables beside the previous tables.json).
        temp = Path(tempfile.mkdtemp(prefix=".ingest-", dir=out_dir))
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot create the output folder: {exc}.", file=str(out_dir))
        ) from None
    try:
        names: list[str] = []
        files: dict[str, str] = {}
        for name, frame in result.tables.items():
            files[name] = f"{name}.parquet"
            frame.to_parquet(temp / files[name], index=False)
            names.append(files[name])
            if csv:
                # For spreadsheets: answers that would run as formulas are written as text (Parquet keeps them).
                safe_frame(frame).to_csv(temp / f"{name}.csv", index=False, encoding="utf-8-sig")
                names.append(f"{name}.csv")
        (temp / MANIFEST).write_text(
            json.dumps(_manifest(result, files), ensure_ascii=False, indent=2, default=str), encoding="utf-8"
        )
        names.append(MANIFEST)
        written = []
        for name in names:
            (temp / name).chmod(0o600)  # the tables hold answers: private, as every other output with answers
            (temp / name).replace(out_dir / name)
            written.append(out_dir / name)
        return written
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot write the tables: {exc}.", file=str(out_dir))
        ) from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _restore(frame: pd.DataFrame, columns: list[dict[str, Any]]) -> pd.DataFrame:
    for column in columns:
        name, dtype = column["name"], column["dtype"]
        if name in frame.columns:
            frame[name] = frame[name].astype(_STRING if dtype == "string" else dtype)
    return frame


def read_tables(data_dir: Path) -> IngestResult:
    """Read a DATA folder written by `write_tables` back into an IngestResult (dtypes as in tables.json).

    Parameters:
        data_dir: the folder holding tables.json and the Parquet files.
    """
    data_dir = Path(data_dir)
    manifest = read_manifest(data_dir)
    try:
        tables = {
            name: _restore(pd.read_parquet(data_dir / meta["file"]), meta["columns"])
            for name, meta in manifest["tables"].items()
        }
    except (OSError, ValueError, KeyError) as exc:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"Cannot read the tables: {exc}.", file=str(data_dir))
        ) from None
    issues = []
    for stored in manifest.get("issues", []):
        flat = dict(stored)
        code, severity, message = flat.pop("code"), Severity(flat.pop("severity")), flat.pop("message")
        value = flat.pop("value", None)
        issues.append(Issue(code, severity, message, Location(**flat), value))
    return IngestResult(
        form_id=manifest["form_id"],
        tables=tables,
        table_paths={name: meta["path"] for name, meta in manifest["tables"].items()},
        issues=tuple(issues),
        stats=manifest.get("stats", {}),
        parents={name: meta.get("parent") for name, meta in manifest["tables"].items()},
        columns={
            name: tuple(ColumnInfo(**c) for c in meta["columns"]) for name, meta in manifest["tables"].items()
        },
        form_versions=tuple(manifest.get("form_versions", [])),
    )
