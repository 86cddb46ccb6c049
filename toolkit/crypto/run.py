"""Decrypt runs: finding submissions in folders and zips, the worker-process pool, and the public entry
points `decrypt`, `decrypt_submission` and `iter_log`.
"""

# File-wide lint exceptions, each for a reason:
# PTH: walking the inputs and writing the log use os-level calls on strings; pathlib objects cost measurable
#      time per file at tens of thousands of submissions (bench/decrypt.py).
# ruff: noqa: PTH116, PTH123

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import multiprocessing
import operator
import os
import shutil
import zipfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from toolkit.archives import ArchiveRefused, SafeZip
from toolkit.crypto.codes import COMMIT_FAILED, ZIP_TOO_LARGE, ZIP_UNREADABLE, ZIP_UNSAFE
from toolkit.crypto.commit import _Committer
from toolkit.crypto.keys import LoadedKey
from toolkit.crypto.outdir import (
    DISK_FULL_ERRNOS,
    LogWriter,
    clear_work_folders,
    disk_full_error,
    locked_output,
    refuse_overlap,
)
from toolkit.crypto.results import LOG_NAME, PARTIAL_DIR, DecryptResult, Status, SubmissionResult
from toolkit.crypto.scheme import PRIVATE_FOLDER_MODE
from toolkit.crypto.submission import DecryptOutcome, DecryptTask, safe_process
from toolkit.errors import INPUT_MISSING, ToolkitError, error

# --- Finding submissions in folders and zips
_entry_name = operator.attrgetter("name")


def _walk(top: Path, out_dir: Path) -> Iterator[str]:
    """Every regular file below `top`, sorted, never following links nor entering OUT or its work folders."""
    try:
        out_stat = os.stat(out_dir)
        out_id = (out_stat.st_dev, out_stat.st_ino)
    except OSError:
        out_id = None
    stack = [str(top)]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as scan:
                entries = sorted(scan, key=_entry_name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:  # links are neither (follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                if entry.name == PARTIAL_DIR:
                    continue
                if (
                    out_id is not None
                    and entry.inode() == out_id[1]
                    and os.stat(entry.path).st_dev == out_id[0]
                ):
                    continue
                subdirs.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                yield entry.path
        stack.extend(reversed(subdirs))


def _label(path: Path, base: Path, prefix: str) -> str:
    try:
        rel = path.relative_to(base).as_posix()
    except ValueError:
        rel = path.as_posix()
    return f"{prefix}!{rel}" if prefix else str(path)


def _discover(inputs: Sequence[Path], out_dir: Path, scratch: Path) -> Iterator[DecryptTask | SubmissionResult]:
    zips = 0

    def from_zip(archive: Path) -> Iterator[DecryptTask | SubmissionResult]:
        nonlocal zips
        zips += 1
        target = scratch / f"zip{zips}"
        target.mkdir(PRIVATE_FOLDER_MODE, parents=True)
        try:
            with SafeZip(archive) as pulled:
                refused = [*pulled.refused, *pulled.extract(target)]
        except ArchiveRefused as exc:
            # One damaged or hostile zip is one failed row; the other inputs go on.
            shutil.rmtree(target, ignore_errors=True)
            code = ZIP_UNREADABLE if exc.reason == "unreadable" else ZIP_TOO_LARGE
            yield SubmissionResult(
                "", "", "", str(archive), Status.FAILED, code, f"{exc.message}; nothing in this zip was decrypted"
            )
            return
        for member in refused:
            yield SubmissionResult(
                "",
                "",
                "",
                f"{archive}!{member.name}",
                Status.FAILED,
                ZIP_UNSAFE,
                f"zip member refused: {member.why}; nothing extracted from it",
            )
        for file in _walk(target, out_dir):
            if file[-4:].lower() == ".xml":
                yield DecryptTask(file, _label(Path(file), target, str(archive)), str(out_dir))

    for item in inputs:
        if item.is_file() and item.suffix.lower() == ".zip":
            yield from from_zip(item)
        elif item.is_file():
            yield DecryptTask(str(item), str(item), str(out_dir))
        else:
            out = str(out_dir)
            for file in _walk(item, out_dir):
                suffix = file[-4:].lower()
                if suffix == ".xml":
                    yield DecryptTask(file, file, out)
                elif suffix == ".zip":
                    yield from from_zip(Path(file))



def count_submissions(inputs: Sequence[Path], out_dir: Path) -> int:
    """How many submissions a decrypt of `inputs` will look at, counted from file names alone (zips by their
    member names, nothing extracted): the total a progress display shows before the first one is done. Other XML
    files in the inputs (a form definition copied from a tablet) are counted too, so this is an upper bound."""
    out_dir = Path(out_dir)

    def in_zip(archive: str | Path) -> int:
        try:
            with zipfile.ZipFile(archive) as opened:
                return sum(name[-4:].lower() == ".xml" for name in opened.namelist())
        except (OSError, zipfile.BadZipFile, ValueError):
            return 1  # reported as one failed row

    total = 0
    for item in map(Path, inputs):
        if item.is_file():
            total += in_zip(item) if item.suffix.lower() == ".zip" else 1
        elif item.is_dir():
            for file in _walk(item, out_dir):
                suffix = file[-4:].lower()
                total += 1 if suffix == ".xml" else in_zip(file) if suffix == ".zip" else 0
    return total


# --- Worker processes
_WORKER_KEY: rsa.RSAPrivateKey | None = None


def _init_worker(private_der: bytes) -> None:
    global _WORKER_KEY  # noqa: PLW0603 - one key per worker process, loaded once
    key = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    _WORKER_KEY = key


def _worker_batch(tasks: Sequence[DecryptTask]) -> list[DecryptOutcome]:
    assert _WORKER_KEY is not None
    return [safe_process(task, _WORKER_KEY) for task in tasks]


# --- Public entry points
def _as_key(key: LoadedKey | rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    return key.private_key if isinstance(key, LoadedKey) else key


def decrypt_submission(
    manifest: Path,
    *,
    key: LoadedKey | rsa.RSAPrivateKey,
    out_dir: Path,
    files: Mapping[str, Path] | None = None,
    source: str | None = None,
) -> SubmissionResult:
    """Decrypt one submission (or copy one plaintext instance) into OUT/<folder>/ (the instanceID without uuid:
    when it is a safe folder name, see `instance_folder`).

    The same rules as `decrypt` apply: signature check with peer recovery, incomplete media, duplicates and
    conflicts against what OUT already holds, atomic rename into place, nothing written for failures.

    Parameters:
        manifest: the manifest XML (`submission.xml` in storage, `<instance>.xml` on a tablet).
        key: the private key.
        out_dir: the output folder.
        files: maps manifest file names (`x.jpg.enc`, `submission.xml.enc`) to paths, when they are not simply
            next to the manifest under those names.
        source: how the result names the input (default: the manifest path).
    """
    out_dir = Path(out_dir)
    with locked_output(out_dir):
        task = DecryptTask(str(manifest), source or str(manifest), str(out_dir))
        outcome = safe_process(task, _as_key(key), files)
        return _commit_one(_Committer(out_dir), outcome)


def _commit_one(committer: _Committer, outcome: DecryptOutcome) -> SubmissionResult:
    """Commit one outcome; an error moving it into place is its own failed row (a full disk stops the run)."""
    try:
        return committer.commit(outcome)
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise
        if outcome.tmp:
            shutil.rmtree(outcome.tmp, ignore_errors=True)
        return dataclasses.replace(
            outcome.result,
            status=Status.FAILED,
            reason_code=COMMIT_FAILED,
            folder="",
            message=f"decrypted, but could not be moved into the output folder as {outcome.folder!r} "
            f"({exc.strerror or type(exc).__name__}); nothing was kept. Run again once the cause is fixed",
        )


def decrypt(
    inputs: Sequence[Path],
    *,
    key: LoadedKey | rsa.RSAPrivateKey,
    out_dir: Path,
    workers: int = 1,
    keep_results: bool = True,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> DecryptResult:
    """Decrypt every submission found in folders and zip files into OUT, and write OUT/decrypt-log.csv.

    Inputs are searched recursively for Collect instance folders, Briefcase/Aggregate storage, Central or Enketo
    downloads and plaintext instances. Inputs are never changed; each submission is written to a work folder and renamed
    into place when complete; re-running on the same OUT verifies and skips what is already there. One run at a time
    writes into OUT (a second one is refused while the first holds OUT's lock); OUT may not be inside an input folder
    nor an input inside OUT. A full disk stops the run cleanly, with the log of what was written.

    Parameters:
        inputs: folders and .zip files.
        key: the private key (see `load_private_key`).
        out_dir: the output folder (created if missing).
        workers: processes decrypting in parallel (1 = in this process).
        keep_results: keep every row in the result (set False for very large runs: rows are in the log).
        on_result: called with every row as soon as it is final (progress display).
    """
    out_dir = Path(out_dir)
    items = [Path(p) for p in inputs]
    for item in items:
        if not item.exists():
            raise ToolkitError(error(INPUT_MISSING, "does not exist; give a folder or a .zip.", file=str(item)))
    refuse_overlap(items, out_dir)
    private = _as_key(key)
    counts = {str(s): 0 for s in Status}
    kept: list[SubmissionResult] = []
    log_path = out_dir / LOG_NAME
    committer = _Committer(out_dir)
    with locked_output(out_dir) as partial:
        log = LogWriter(partial)
        try:

            def emit(result: SubmissionResult) -> None:
                counts[str(result.status)] += 1
                log.add(result.row())
                if keep_results:
                    kept.append(result)
                if on_result is not None:
                    on_result(result)

            try:
                for outcome in _outcomes(_discover(items, out_dir, partial / "zips"), private, workers):
                    if isinstance(outcome, SubmissionResult):
                        emit(outcome)
                    elif outcome.kind != "none":
                        emit(_commit_one(committer, outcome))
                log.finish(log_path)
            except OSError as exc:
                if exc.errno not in DISK_FULL_ERRNOS:
                    raise
                clear_work_folders(partial)  # frees the space of submissions not yet committed
                try:
                    log.finish(log_path)
                except OSError:
                    raise disk_full_error(out_dir, exc, sum(counts.values()), log_kept=False) from None
                raise disk_full_error(out_dir, exc, sum(counts.values()), log_kept=True) from None
        finally:
            log.close()
    return DecryptResult(out_dir=out_dir, log_path=log_path, counts=counts, submissions=tuple(kept))


IN_FLIGHT_PER_WORKER = 256


def _outcomes(
    found: Iterator[DecryptTask | SubmissionResult], key: rsa.RSAPrivateKey, workers: int
) -> Iterator[DecryptOutcome | SubmissionResult]:
    """Results in input order. With workers > 1, batches go to a process pool with a bounded window, so memory
    stays flat however many submissions there are."""
    if workers <= 1:
        for item in found:
            yield item if isinstance(item, SubmissionResult) else safe_process(item, key)
        return
    # Batches grow from 8 to 128 submissions: a small run is still spread over every worker, a large one pays for
    # inter-process traffic rarely (128 per batch costs about 6% less CPU per submission than 32). Submissions in
    # flight (decrypted into OUT's work folder, not yet committed) are capped at IN_FLIGHT_PER_WORKER per worker:
    # enough queued work to keep every worker busy, and a bounded amount of temporary disk with large photos.
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(der,)
    ) as pool:
        try:
            yield from _pooled(found, pool, workers)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # a full disk: batches not started are not worth starting
            raise


def _pooled(
    found: Iterator[DecryptTask | SubmissionResult], pool: concurrent.futures.ProcessPoolExecutor, workers: int
) -> Iterator[DecryptOutcome | SubmissionResult]:
    """Feed the pool in growing batches with a bounded window; results in input order."""
    batch_size, largest_batch = 8, 128
    in_flight_limit = workers * IN_FLIGHT_PER_WORKER
    pending: deque[tuple[concurrent.futures.Future[list[DecryptOutcome]] | list[SubmissionResult], int]] = deque()
    in_flight = 0
    batch: list[DecryptTask] = []

    def submit(tasks: list[DecryptTask]) -> None:
        nonlocal in_flight
        pending.append((pool.submit(_worker_batch, tasks), len(tasks)))
        in_flight += len(tasks)

    def drain(limit: int) -> Iterator[DecryptOutcome | SubmissionResult]:
        nonlocal in_flight
        while pending and in_flight > limit:
            head, size = pending.popleft()
            in_flight -= size
            yield from (head if isinstance(head, list) else head.result())

    for item in found:
        if isinstance(item, SubmissionResult):
            if batch:
                submit(batch)
                batch = []
            pending.append(([item], 0))
        else:
            batch.append(item)
            if len(batch) >= batch_size:
                submit(batch)
                batch = []
                batch_size = min(largest_batch, batch_size * 2)
        yield from drain(in_flight_limit)
    if batch:
        submit(batch)
    yield from drain(-1)


def iter_log(path: Path) -> Iterator[dict[str, str]]:
    """Read decrypt-log.csv rows back (the CLI's --json for runs that did not keep rows)."""
    with open(path, encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)
