"""The ingest stage (`migkit ingest`): submissions -> a DATA folder (docs/tables.md).

Reading is `toolkit.submissions`, below the stages, because validate reads submissions too (it judges a folder of
XMLs or a Central export as it is); this stage is what the command line and the pipeline call: read, then write
the tables and tables.json with `write_tables`.
"""

from __future__ import annotations

from toolkit.submissions import (
    DUPLICATE_INSTANCE,
    ENCRYPTED_SKIPPED,
    MANIFEST,
    MEDIA_CONFLICT,
    NO_INSTANCE_ID,
    NO_SUBMISSIONS,
    NOT_DECRYPTED,
    ORPHAN_ROW,
    OTHER_FORM,
    TYPE_INVALID,
    UNKNOWN_FIELD,
    ColumnInfo,
    IngestResult,
    iter_submission_xml,
    read_tables,
    write_tables,
)
from toolkit.submissions import read_submissions as ingest

__all__ = [
    "DUPLICATE_INSTANCE",
    "ENCRYPTED_SKIPPED",
    "MANIFEST",
    "MEDIA_CONFLICT",
    "NOT_DECRYPTED",
    "NO_INSTANCE_ID",
    "NO_SUBMISSIONS",
    "ORPHAN_ROW",
    "OTHER_FORM",
    "TYPE_INVALID",
    "UNKNOWN_FIELD",
    "ColumnInfo",
    "IngestResult",
    "ingest",
    "iter_submission_xml",
    "read_tables",
    "write_tables",
]
