"""The DATA folder contract (docs/tables.md): `tables.json` beside one Parquet file per table.

Ingest writes it, weights adds to it, and validate, export, codebook and indicators read it. This module is the one
place that reads the manifest; the full DataFolder type of issue #11 grows here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.errors import INPUT_MISSING, INPUT_UNREADABLE, ToolkitError, error

MANIFEST = "tables.json"


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed tables.json of a DATA folder; a ToolkitError naming the folder and the fix when it is missing or
    cannot be read.

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
