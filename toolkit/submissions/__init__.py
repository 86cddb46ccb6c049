"""Reading submissions into tables: one table for the main level and one per repeat, with Central-compatible keys.

The reader below the stages: `migkit ingest` writes what it reads as a DATA folder, and `migkit validate` judges a
folder of XMLs or a Central export through it as it is.

Inputs are folders of instance XMLs (the output of `migkit decrypt`: `<instance>/submission.xml`, or any
tree of instance files) and ODK Central "All data" CSV export zips (or such a zip unpacked into a folder).
Every submission is read into rows of strings (per batch of files, in a process pool when there are many),
packed column-wise per batch, and the typed columns are built at the end with vectorised pandas. How keys and types
look, is the contract in docs/tables.md.

Modules: `plan` (the form versions merged into plain data for the workers), `sources` (files in folders
and zips, untrusted), `parse` (one submission -> rows), `central` (Central CSV exports -> rows), `columns`
(rows -> typed tables, duplicates), `blocks` (rows packed column-wise between processes), `result`
(IngestResult, issue codes, the DATA folder). This module reads.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from toolkit.dataset import MANIFEST
from toolkit.errors import (
    INPUT_MISSING,
    INPUT_UNREADABLE,
    Issue,
    ToolkitError,
    error,
    warning,
)
from toolkit.submissions.blocks import Block, init_worker, pack, read_and_pack
from toolkit.submissions.central import central_opener, read_central
from toolkit.submissions.columns import build_tables, deduplicate, rekey
from toolkit.submissions.parse import Record, cyclic_gc_paused, read_batch
from toolkit.submissions.plan import Plan, make_plan
from toolkit.submissions.result import (
    DUPLICATE_INSTANCE,
    ENCRYPTED_SKIPPED,
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
    read_tables,
    write_tables,
)
from toolkit.submissions.sources import (
    copy_media,
    iter_submission_xml,
    media_files,
    xml_sources,
)
from toolkit.xform import FormModel

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
    "iter_submission_xml",
    "read_submissions",
    "read_tables",
    "write_tables",
]

# From this many submission files on, parsing runs in a process pool (one worker per core).
POOL_MIN_FILES = 2000
_CHUNK = 250


def _read_all(
    items: list[tuple[str, bytes | None]],
    plan: Plan,
    *,
    first_number: int,
    workers: int,
    progress: Callable[[int], None] | None,
) -> tuple[list[Record], list[list[Block | None]]]:
    """Read every candidate file: the records (without rows) and their rows packed per batch of _CHUNK files."""
    chunks = [(first_number + i, items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]
    records: list[Record] = []
    batches: list[list[Block | None]] = []
    if workers <= 1 or len(items) < POOL_MIN_FILES:
        for number, chunk in chunks:
            bare, blocks = pack(read_batch(chunk, plan), plan, number)
            records += bare
            batches.append(blocks)
            if progress is not None:
                progress(len(chunk))
        return records, batches
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, initializer=init_worker, initargs=(plan,)
    ) as pool:
        for bare, blocks in pool.map(read_and_pack, chunks):
            records += bare
            batches.append(blocks)
            if progress is not None:
                progress(len(bare))
    return records, batches


# 100,000 households are about a million Python objects in the parent (records, packed blocks) and none is part of a
# reference cycle: the cyclic collector would scan them all again and again (a third of the parent's time).
@cyclic_gc_paused()
def read_submissions(  # noqa: PLR0912, PLR0915
    inputs: Sequence[Path] | Path,
    form: FormModel | Sequence[FormModel],
    *,
    media_dir: Path | None = None,
    attachments_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Read submissions into one table per level of the form.

    Parameters:
        inputs: folders of instance XMLs (`migkit decrypt` output or any tree), zips of them, single XML files, or ODK
            Central CSV export zips ("All data", or the same files unpacked in a folder).
        form: the form model; several models (form versions, newest first) merge into one set of tables.
        media_dir: the form's own attachments (pulldata / select_one_from_file files), as validate and
            simulate take them; ingest reads answers only, so it does not need them (never written to).
        attachments_dir: when given, the submissions' attachments (files next to each submission, or under
            `media/` in a Central zip) are copied there, flat.
        workers: parser processes; default one per core, used from POOL_MIN_FILES files on.
        progress: called as `progress(done, total)` while submission files are read.
    """
    started = time.perf_counter()
    forms = [form] if isinstance(form, FormModel) else list(form)
    if not forms:
        raise ValueError("ingest needs at least one form model")
    plan = make_plan(forms)
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    issues: list[Issue] = []
    records: list[Record] = []
    batches: list[list[Block | None]] = []
    items: list[tuple[str, bytes | None]] = []
    skipped: Counter[str] = Counter()
    other_ids: Counter[str] = Counter()
    for path in paths:
        if not path.exists():
            raise ToolkitError(
                error(INPUT_MISSING, "The input does not exist; check the path.", file=str(path))
            )
        opener = central_opener(path)
        if opener is not None and opener(f"{plan.tables[0].name}.csv") is not None:
            bare, blocks = pack(read_central(opener, plan, str(path), issues), plan, len(records))
            records += bare
            batches.append(blocks)
            continue
        try:
            sources = xml_sources(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ToolkitError(
                error(INPUT_UNREADABLE, f"Cannot read the input: {exc}.", file=str(path))
            ) from None
        for source in sources:
            if source.is_file:
                items.append((source.name, None))
                continue
            try:
                items.append((source.name, source.load()))
            except (OSError, ToolkitError, zipfile.BadZipFile) as exc:
                issues.append(
                    error(INPUT_UNREADABLE, f"Cannot read this file ({exc}); left out.", file=source.name)
                )
    total = len(items)
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    submission_files: list[str] = []
    read, read_batches = _read_all(
        items, plan, first_number=len(records), workers=workers or os.cpu_count() or 1, progress=tick
    )
    batches += read_batches
    for record in read:
        if record.kind == "other_form":
            other_ids[record.form_id or ""] += 1
        elif record.kind == "doctype":
            issues.append(
                error(
                    INPUT_UNREADABLE,
                    "The file declares a DOCTYPE, which ODK never writes; it is left out.",
                    file=record.source,
                )
            )
        elif record.problem is not None:
            issues.append(
                error(
                    INPUT_UNREADABLE,
                    f"Cannot read this submission: {record.problem}. It is left out.",
                    file=record.source,
                )
            )
        elif record.kind != "instance":
            skipped[record.kind] += 1
        else:
            submission_files.append(record.source)
            if not record.instance_id:
                issues.append(
                    error(
                        NO_INSTANCE_ID,
                        "The submission has no meta/instanceID; it is keyed by its file "
                        "name instead. Check that it was exported whole.",
                        file=record.source,
                    )
                )
                record = rekey(record, f"file:{record.source}")  # noqa: PLW2901 (the re-keyed copy is kept)
            records.append(record)
    del media_dir  # see the docstring: the form's attachments do not change how answers are read
    if attachments_dir is not None:
        for path in paths:
            copy_media(media_files(path, submission_files), Path(attachments_dir), issues)
    if skipped["encrypted"]:
        issues.append(
            warning(
                ENCRYPTED_SKIPPED,
                f"{skipped['encrypted']} encrypted submission(s) were skipped; run "
                "`migkit decrypt` on them and ingest its output.",
            )
        )
    if other_ids:
        listed = ", ".join(f"{k or '?'} ({v})" for k, v in sorted(other_ids.items()))
        issues.append(warning(OTHER_FORM, f"Files of other forms were skipped: {listed}."))
    records = deduplicate(records, issues)
    if not records:
        issues.append(
            error(
                NO_SUBMISSIONS,
                f"No submission of form {forms[0].form_id} was found in the input. "
                "Check the folder and the --form.",
                file=", ".join(map(str, paths)),
            )
        )
    tables, columns = build_tables(plan, records, batches, issues)
    versions = tuple(sorted({r.version for r in records if r.version}))
    stats = {
        "submissions": len(records),
        "files_read": len(items),
        "skipped": dict(skipped),
        "rows": {name: len(frame) for name, frame in tables.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }
    return IngestResult(
        form_id=forms[0].form_id,
        tables=tables,
        table_paths={t.name: t.path for t in plan.tables},
        issues=tuple(issues),
        stats=stats,
        parents={t.name: None if t.parent is None else plan.tables[t.parent].name for t in plan.tables},
        columns=columns,
        form_versions=versions,
    )
