"""Decrypt runs: finding submissions in folders and zips, the worker-process pool, and the public entry
points `decrypt`, `decrypt_submission` and `iter_log`.
"""

# File-wide lint exceptions, each for a reason:
# PTH: walking the inputs and writing the log use os-level calls on strings; pathlib objects cost measurable
#      time per file at tens of thousands of submissions (bench/decrypt.py).
# ruff: noqa: PTH105, PTH116, PTH123

from __future__ import annotations

import concurrent.futures
import csv
import multiprocessing
import operator
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from toolkit.crypto.codes import ZIP_UNSAFE
from toolkit.crypto.commit import _Committer
from toolkit.crypto.keys import LoadedKey
from toolkit.crypto.results import LOG_COLUMNS, LOG_NAME, PARTIAL_DIR, DecryptResult, Status, SubmissionResult
from toolkit.crypto.scheme import CHUNK_BYTES, PRIVATE_FOLDER_MODE
from toolkit.crypto.submission import _Outcome, _safe_process, _Task
from toolkit.errors import INPUT_MISSING, OUTPUT_UNWRITABLE, ToolkitError, error

ZIP_MAX_MEMBERS = 1_000_000
ZIP_MAX_TOTAL_BYTES = 200 << 30


# --- Finding submissions in folders and zips
def _unsafe_member(name: str) -> bool:
    normalised = name.replace("\\", "/")
    return (
        not normalised
        or "\0" in normalised
        or normalised.startswith("/")
        or bool(re.match(r"^[A-Za-z]:", normalised))
        or any(part == ".." for part in normalised.split("/"))
    )


def _extract_zip(archive: Path, target: Path, label: str) -> list[SubmissionResult]:
    """Extract a zip safely: members that would escape `target` (absolute paths, '..', drive letters, symlinks) are
    refused and reported; sizes are checked while copying."""
    refused: list[SubmissionResult] = []
    total = 0
    root = target.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > ZIP_MAX_MEMBERS:
                raise ToolkitError(
                    error(INPUT_MISSING, f"has {len(members)} members; too many.", file=str(archive))
                )
            for info in members:
                mode = info.external_attr >> 16
                is_link = stat.S_ISLNK(mode)
                destination = (root / info.filename.replace("\\", "/")).resolve()
                escapes = os.path.commonpath([root, destination]) != str(root)
                if _unsafe_member(info.filename) or escapes or is_link:
                    why = "a symbolic link" if is_link else "a path outside the extraction folder"
                    refused.append(
                        SubmissionResult(
                            "",
                            "",
                            "",
                            f"{label}!{info.filename}",
                            Status.FAILED,
                            ZIP_UNSAFE,
                            f"zip member refused: it is {why}; nothing extracted from it",
                        )
                    )
                    continue
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                total += info.file_size
                if total > ZIP_MAX_TOTAL_BYTES:
                    raise ToolkitError(
                        error(INPUT_MISSING, "unpacks to more than 200 GB; refused.", file=str(archive))
                    )
                destination.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with zf.open(info) as src, open(destination, "wb") as dst:
                    while chunk := src.read(CHUNK_BYTES):
                        written += len(chunk)
                        if written > info.file_size:
                            raise ToolkitError(
                                error(
                                    INPUT_MISSING,
                                    f"member {info.filename} is larger than its "
                                    "header says (a zip bomb?); refused.",
                                    file=str(archive),
                                )
                            )
                        dst.write(chunk)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ToolkitError(
            error(INPUT_MISSING, f"cannot be read as a zip file: {exc}", file=str(archive))
        ) from None
    return refused


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


def _discover(inputs: Sequence[Path], out_dir: Path, scratch: Path) -> Iterator[_Task | SubmissionResult]:
    zips = 0

    def from_zip(archive: Path) -> Iterator[_Task | SubmissionResult]:
        nonlocal zips
        zips += 1
        target = scratch / f"zip{zips}"
        target.mkdir(parents=True)
        yield from _extract_zip(archive, target, str(archive))
        for file in _walk(target, out_dir):
            if file[-4:].lower() == ".xml":
                yield _Task(file, _label(Path(file), target, str(archive)), str(out_dir))

    for item in inputs:
        if item.is_file() and item.suffix.lower() == ".zip":
            yield from from_zip(item)
        elif item.is_file():
            yield _Task(str(item), str(item), str(out_dir))
        else:
            out = str(out_dir)
            for file in _walk(item, out_dir):
                suffix = file[-4:].lower()
                if suffix == ".xml":
                    yield _Task(file, file, out)
                elif suffix == ".zip":
                    yield from from_zip(Path(file))


# --- Worker processes
_WORKER_KEY: rsa.RSAPrivateKey | None = None


def _init_worker(private_der: bytes) -> None:
    global _WORKER_KEY  # noqa: PLW0603 - one key per worker process, loaded once
    key = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    _WORKER_KEY = key


def _worker_batch(tasks: Sequence[_Task]) -> list[_Outcome]:
    assert _WORKER_KEY is not None
    return [_safe_process(task, _WORKER_KEY) for task in tasks]


# --- Public entry points
def _as_key(key: LoadedKey | rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    return key.private_key if isinstance(key, LoadedKey) else key


def _prepare_out(out_dir: Path) -> None:
    try:
        # A new OUT and the work folders are private (decrypted answers); an existing OUT keeps its permissions.
        out_dir.mkdir(PRIVATE_FOLDER_MODE, parents=True, exist_ok=True)
        shutil.rmtree(out_dir / PARTIAL_DIR, ignore_errors=True)  # leftovers of an interrupted run
        (out_dir / PARTIAL_DIR).mkdir(PRIVATE_FOLDER_MODE)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"cannot prepare the output folder: {exc.strerror}", file=str(out_dir))
        ) from None


def decrypt_submission(
    manifest: Path,
    *,
    key: LoadedKey | rsa.RSAPrivateKey,
    out_dir: Path,
    files: Mapping[str, Path] | None = None,
    source: str | None = None,
) -> SubmissionResult:
    """Decrypt one submission (or copy one plaintext instance) into OUT/<instanceID without uuid:>/.

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
    _prepare_out(out_dir)
    task = _Task(str(manifest), source or str(manifest), str(out_dir))
    outcome = _safe_process(task, _as_key(key), files)
    result = _Committer(out_dir).commit(outcome)
    shutil.rmtree(out_dir / PARTIAL_DIR, ignore_errors=True)
    return result


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
    into place when complete; re-running on the same OUT verifies and skips what is already there.

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
            raise ToolkitError(
                error(INPUT_MISSING, "does not exist; give a folder or a .zip.", file=str(item))
            )
    _prepare_out(out_dir)
    private = _as_key(key)
    counts = {str(s): 0 for s in Status}
    kept: list[SubmissionResult] = []
    log_path = out_dir / LOG_NAME
    log_tmp = out_dir / PARTIAL_DIR / (LOG_NAME + ".tmp")
    committer = _Committer(out_dir)
    scratch = Path(tempfile.mkdtemp(prefix="migkit-decrypt-"))
    try:
        with open(log_tmp, "w", encoding="utf-8", newline="") as log_file:
            writer = csv.DictWriter(log_file, fieldnames=LOG_COLUMNS)
            writer.writeheader()

            def emit(result: SubmissionResult) -> None:
                counts[str(result.status)] += 1
                writer.writerow(result.row())
                if keep_results:
                    kept.append(result)
                if on_result is not None:
                    on_result(result)

            for outcome in _outcomes(_discover(items, out_dir, scratch), private, workers):
                if isinstance(outcome, SubmissionResult):
                    emit(outcome)
                elif outcome.kind != "none":
                    emit(committer.commit(outcome))
        os.replace(log_tmp, log_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(out_dir / PARTIAL_DIR, ignore_errors=True)
    return DecryptResult(out_dir=out_dir, log_path=log_path, counts=counts, submissions=tuple(kept))


IN_FLIGHT_PER_WORKER = 256


def _outcomes(
    found: Iterator[_Task | SubmissionResult], key: rsa.RSAPrivateKey, workers: int
) -> Iterator[_Outcome | SubmissionResult]:
    """Results in input order. With workers > 1, batches go to a process pool with a bounded window, so memory
    stays flat however many submissions there are."""
    if workers <= 1:
        for item in found:
            yield item if isinstance(item, SubmissionResult) else _safe_process(item, key)
        return
    # Batches grow from 8 to 128 submissions: a small run is still spread over every worker, a large one pays for
    # inter-process traffic rarely (128 per batch costs about 6% less CPU per submission than 32). Submissions in
    # flight (decrypted into OUT's work folder, not yet committed) are capped at IN_FLIGHT_PER_WORKER per worker:
    # enough queued work to keep every worker busy, and a bounded amount of temporary disk with large photos.
    batch_size, largest_batch = 8, 128
    in_flight_limit = workers * IN_FLIGHT_PER_WORKER
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    pending: deque[tuple[concurrent.futures.Future[list[_Outcome]] | list[SubmissionResult], int]] = deque()
    in_flight = 0
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(der,)
    ) as pool:
        batch: list[_Task] = []

        def submit(tasks: list[_Task]) -> None:
            nonlocal in_flight
            pending.append((pool.submit(_worker_batch, tasks), len(tasks)))
            in_flight += len(tasks)

        def drain(limit: int) -> Iterator[_Outcome | SubmissionResult]:
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
