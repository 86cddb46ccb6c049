"""The output folder of a decrypt run: it must not overlap the inputs, one run at a time writes into it (an
exclusive lock), its work folder is cleared on every start and exit, and its log survives a full disk.
"""

# File-wide lint exceptions, each for a reason:
# PTH: the log is written with os-level calls on a descriptor, to know exactly which rows reached the disk.

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from toolkit.crypto.codes import DISK_FULL, OUT_LOCKED, OUT_OVERLAPS_INPUT
from toolkit.crypto.results import LOG_COLUMNS, LOG_NAME, PARTIAL_DIR
from toolkit.crypto.scheme import PRIVATE_FILE_MODE, PRIVATE_FOLDER_MODE
from toolkit.errors import EXIT_USAGE, OUTPUT_UNWRITABLE, ToolkitError, error
from toolkit.files import make_private_folder

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; one run at a time is then the user's care
    fcntl = None  # type: ignore[assignment]

# A full disk and a full quota stop the run (every later submission would fail the same way); any other error
# writing one submission is that submission's failed row.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
LOG_TEMPORARY = LOG_NAME + ".tmp"
_LOG_FLUSH_CHARS = 1 << 16


def refuse_overlap(inputs: Sequence[Path], out_dir: Path) -> None:
    """Refuse an OUT inside an input folder (a re-run would read its own outputs back) and an input inside OUT.

    Parameters:
        inputs: the input folders and files.
        out_dir: the output folder (it may not exist yet).
    """
    out = Path(os.path.realpath(out_dir))
    for item in inputs:
        real = Path(os.path.realpath(item))
        if real == out or (real.is_dir() and out.is_relative_to(real)):
            where = "is" if real == out else "is inside"
            why = f"the output folder {where} the input folder {item}"
        elif real.is_relative_to(out):
            why = f"the input {item} is inside the output folder"
        else:
            continue
        raise ToolkitError(
            error(
                OUT_OVERLAPS_INPUT,
                f"{why}: decrypt would read its own outputs back. Choose an --out folder outside the inputs.",
                file=str(out_dir),
            ),
            EXIT_USAGE,
        )


@contextlib.contextmanager
def locked_output(out_dir: Path) -> Iterator[Path]:
    """Create OUT when missing (private), take its exclusive lock, and give a fresh, private work folder; the work
    folder is removed on any exit, and left-overs of a killed run are removed when the next run starts.

    Parameters:
        out_dir: the output folder.
    """
    try:
        make_private_folder(out_dir)
        handle = os.open(out_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"cannot prepare the output folder: {exc.strerror}", file=str(out_dir))
        ) from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ToolkitError(
                    error(
                        OUT_LOCKED,
                        "another `migkit decrypt` run is writing into this folder (it holds the folder's lock). "
                        "Wait until it has finished, or give another --out.",
                        file=str(out_dir),
                    )
                ) from None
        partial = out_dir / PARTIAL_DIR
        try:
            shutil.rmtree(partial, ignore_errors=True)  # left-overs of an interrupted run
            partial.mkdir(PRIVATE_FOLDER_MODE)
        except OSError as exc:
            raise ToolkitError(
                error(OUTPUT_UNWRITABLE, f"cannot prepare the output folder: {exc.strerror}", file=str(out_dir))
            ) from None
        try:
            yield partial
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    finally:
        os.close(handle)  # releases the lock


def clear_work_folders(partial: Path) -> None:
    """Remove every work folder (to free space) but the log being written.

    Parameters:
        partial: OUT's work folder.
    """
    with os.scandir(partial) as entries:
        for entry in entries:
            if entry.name != LOG_TEMPORARY:
                shutil.rmtree(entry.path, ignore_errors=True)


class LogWriter:
    """decrypt-log.csv, written into the work folder and renamed into place at the end. Rows reach the disk in
    blocks; a block that does not fit (a full disk) is cut off again and kept in memory, so that `flush` can be
    retried once space is freed and the log holds exactly the rows written."""

    def __init__(self, partial: Path) -> None:
        """Create the temporary log (mode 0600 whatever the umask) with its header.

        Parameters:
            partial: OUT's work folder.
        """
        self.path = partial / LOG_TEMPORARY
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        os.fchmod(self._fd, PRIVATE_FILE_MODE)
        self._on_disk = 0
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer)
        self._csv.writerow(LOG_COLUMNS)

    def add(self, row: dict[str, str]) -> None:
        """Queue one row (the log columns); written when enough are queued.

        Parameters:
            row: the row, by column name.
        """
        self._csv.writerow([row[name] for name in LOG_COLUMNS])
        if self._buffer.tell() >= _LOG_FLUSH_CHARS:
            self.flush()

    def flush(self) -> None:
        """Write the queued rows; on an error they stay queued and the file keeps only whole earlier rows."""
        data = memoryview(self._buffer.getvalue().encode("utf-8"))
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            os.ftruncate(self._fd, self._on_disk)
            os.lseek(self._fd, self._on_disk, os.SEEK_SET)
            raise
        self._on_disk += len(data)
        self._buffer.seek(0)
        self._buffer.truncate()

    def finish(self, log_path: Path) -> None:
        """Write what is queued, close, and rename the log into place.

        Parameters:
            log_path: OUT/decrypt-log.csv.
        """
        self.flush()
        os.close(self._fd)
        self._fd = -1
        self.path.replace(log_path)

    def close(self) -> None:
        """Close without renaming (the work folder and the temporary log are then removed)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def disk_full_error(out_dir: Path, exc: OSError, committed: int, log_kept: bool) -> ToolkitError:
    """The error that ends a run on a full disk: which disk, how full, what was kept and what to do.

    Parameters:
        out_dir: the output folder.
        exc: the error the system gave.
        committed: submissions written into OUT before the disk filled up.
        log_kept: whether decrypt-log.csv could still be written.
    """
    mount = Path(os.path.realpath(out_dir))
    with contextlib.suppress(OSError):
        device = mount.stat().st_dev
        while mount.parent != mount and mount.parent.stat().st_dev == device:
            mount = mount.parent
    free = ""
    with contextlib.suppress(OSError):
        info = os.statvfs(out_dir)
        free = f", {info.f_bavail * info.f_frsize // (1 << 20)} MB free"
    what = "full" if exc.errno == errno.ENOSPC else "over its quota"
    kept = (
        f"the {committed} submission(s) written before that are listed in {LOG_NAME}"
        if log_kept
        else f"{committed} submission(s) were written before that, but {LOG_NAME} could not be written either"
    )
    return ToolkitError(
        error(
            DISK_FULL,
            f"the disk holding the output folder (mounted at {mount}{free}) is {what}; decrypt stopped and "
            f"{kept}. Free space there or give an --out on another disk, then run again: what was written is "
            "verified and skipped.",
            file=str(out_dir),
        )
    )
