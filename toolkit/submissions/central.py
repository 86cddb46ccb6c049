"""ODK Central CSV exports ("All data" zip, or its CSVs in a folder) read back into submission rows."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from toolkit.errors import INPUT_UNREADABLE, Issue, error, warning
from toolkit.submissions.parse import Record
from toolkit.submissions.plan import Plan, TablePlan
from toolkit.submissions.result import NOT_DECRYPTED, ORPHAN_ROW
from toolkit.submissions.sources import ZIP_MAX_CSV_BYTES, open_zip, zip_infos, zip_read

# Central "All data" export columns that carry no answer (lib/data/briefcase.js in getodk/central-backend).
_CENTRAL_META = {
    "SubmissionDate",
    "KEY",
    "PARENT_KEY",
    "SubmitterID",
    "SubmitterName",
    "AttachmentsPresent",
    "AttachmentsExpected",
    "Status",
    "ReviewState",
    "DeviceID",
    "Edits",
    "FormVersion",
}
_GEO_PARTS = ("Latitude", "Longitude", "Altitude", "Accuracy")


def _central_columns(plan: Plan, table: TablePlan) -> dict[str, tuple[str, int | None]]:
    """CSV header -> (field path, geopoint part index).

    Central writes group paths joined by '-' relative to the table (its default) or bare names
    (groupPaths=false); geopoints as four columns.
    """
    mapping: dict[str, tuple[str, int | None]] = {}
    specs = (*table.fields, *table.notes)
    # Group paths first; a bare name never takes the place of another field's group path.
    for bare in (False, True):
        for spec in specs:
            label = spec.name if bare else spec.path[len(table.path) + 1 :].replace("/", "-")
            if spec.data_type == "geopoint":
                for index, part in enumerate(_GEO_PARTS):
                    mapping.setdefault(f"{label}-{part}", (spec.path, index))
            else:
                mapping.setdefault(label, (spec.path, None))
    return mapping


_POSITION = re.compile(r"\[(\d+)\]")


def read_central(  # noqa: PLR0912
    open_member: Callable[[str], bytes | None], plan: Plan, source: str, issues: list[Issue]
) -> list[Record]:
    """Records from a Central CSV export: `<form>.csv` plus `<form>-<repeat>.csv` per repeat."""
    records: dict[str, Record] = {}
    order: list[str] = []
    for index, table in enumerate(plan.tables):
        data = open_member(f"{table.name}.csv")
        if data is None:
            continue
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
        except (ValueError, UnicodeDecodeError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
            issues.append(
                error(
                    INPUT_UNREADABLE,
                    f"{table.name}.csv of this Central export cannot be read as CSV ({exc}); its rows are "
                    "left out. Download the export from Central again.",
                    file=source,
                )
            )
            continue
        mapping = _central_columns(plan, table)
        known = [c for c in frame.columns if c in mapping]
        # Select-multiple split columns (`name/choice`, 0/1) repeat the space-separated answer: skip them.
        extra = [c for c in frame.columns if c not in mapping and c not in _CENTRAL_META and "/" not in c]
        unknown = frozenset((index, f"{table.path}/{c.replace('-', '/')}") for c in extra)
        columns = {c: frame[c].tolist() for c in (*known, *extra)}
        keys = frame["KEY"].tolist() if "KEY" in frame.columns else []
        for row_number, key in enumerate(keys):
            values: dict[str, str] = {}
            for column in known:
                text = columns[column][row_number]
                if text == "":
                    continue
                path, part = mapping[column]
                if part is None:
                    values[path] = text
                else:
                    values[path] = (values.get(path, "") + " " + text).strip()
            for column in extra:
                text = columns[column][row_number]
                if text != "":
                    values[f"{table.path}/{column.replace('-', '/')}"] = text
            if index == 0:
                status = str(frame["Status"].iat[row_number]) if "Status" in frame.columns else ""
                if status:
                    issues.append(
                        warning(
                            NOT_DECRYPTED,
                            f"Central reports '{status}' for this submission: its row "
                            "has no answers. Decrypt it with the form's private key and ingest the "
                            "decrypted XML instead.",
                            file=source,
                            instance=key,
                        )
                    )
                # read as text (dtype=str, no NA values): "" when Central left a cell empty
                version = str(frame["FormVersion"].iat[row_number]) if "FormVersion" in frame.columns else None
                date = str(frame["SubmissionDate"].iat[row_number]) if "SubmissionDate" in frame.columns else None
                records[key] = Record(
                    source,
                    None,
                    version or None,
                    key,
                    [(0, key, None, (), values)],
                    unknown,
                    submission_date=date or None,
                )
                order.append(key)
                continue
            instance_id = key.split("/", 1)[0]
            record = records.get(instance_id)
            parent = frame["PARENT_KEY"].iat[row_number] if "PARENT_KEY" in frame.columns else None
            if record is None:
                issues.append(
                    warning(
                        ORPHAN_ROW,
                        f"Row {row_number + 2} of {table.name}.csv belongs to no "
                        "submission of the main CSV; it is left out. Export again from Central.",
                        file=source,
                        instance=key,
                    )
                )
                continue
            nos = tuple(int(n) for n in _POSITION.findall(key[len(instance_id) :]))
            record.rows.append((index, key, parent, nos, values))
            if unknown - record.unknown:
                records[instance_id] = record._replace(unknown=record.unknown | unknown)
    return [
        records[key]._replace(rows=plan.freeze(records[key].rows, with_unknown=bool(records[key].unknown)))
        for key in order
    ]


def central_opener(input_path: Path) -> Callable[[str], bytes | None] | None:
    """A reader of members by name when `input_path` is a Central CSV export (zip or folder), else None."""
    if input_path.is_dir():

        def read_file(name: str) -> bytes | None:
            candidate = input_path / name
            return candidate.read_bytes() if candidate.is_file() else None

        return read_file if any(input_path.glob("*.csv")) else None
    if zipfile.is_zipfile(input_path):
        with open_zip(input_path) as archive:
            tables = {
                info.filename: zip_read(archive, info, ZIP_MAX_CSV_BYTES, str(input_path))
                for info in zip_infos(archive, str(input_path))
                if info.filename.lower().endswith(".csv") and "/" not in info.filename
            }
        return tables.get if tables else None
    return None
