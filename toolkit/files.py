"""Writing outputs so that nothing half-written is ever left behind: write a temporary file beside the target, then
rename it into place (a rename within one folder is atomic on every file system migkit runs on)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path


def write_atomic(target: Path, write: Callable[[Path], object], *, shared: bool = False) -> None:
    """Call `write(temporary_path)`, then rename the temporary file onto `target`.

    When `write` raises (or the run is interrupted), the temporary file is removed and an existing `target` is left
    as it was.

    Parameters:
        target: the file to create or replace (its folder is created when missing).
        write: writes the whole content to the path it is given.
        shared: give the file the usual permissions (0666 less the umask) instead of a private 0600 (outputs
            hold answers by default); for outputs without answers in them (XForms, codebooks).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    path = _new_temporary(target, 0o666 if shared else 0o600)
    try:
        write(path)
        path.replace(target)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_together_atomic(folder: Path, writers: Sequence[tuple[str, Callable[[Path], object]]]) -> list[Path]:
    """Write several files of one folder as a set: each whole into one hidden temporary folder inside `folder`, then
    renamed into place in the given order (put the file that names the others last). A failed write leaves the
    previous set as it was; only a failure during the renames themselves can leave new files beside old ones.
    The files are private (0600).

    Parameters:
        folder: where the files go (created when missing).
        writers: (file name, function writing the whole file to the path it is given), in rename order.
    Returns the written paths, in that order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=".write-", dir=folder))
    try:
        for name, write in writers:
            write(temp / name)
            (temp / name).chmod(0o600)
        written = []
        for name, _ in writers:
            (temp / name).replace(folder / name)
            written.append(folder / name)
        return written
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _new_temporary(target: Path, mode: int) -> Path:
    """Create an empty hidden file beside `target` with `mode` (the system applies the umask to it, so 0o666
    gives the usual permissions without reading or changing the process umask).

    The name is hidden, so that nobody opens the file before it is whole, and ends in random letters, not the
    target's extension: pyreadstat, pandas (given a Path) and savefig(format=...) do not choose the format by name;
    a writer that infers compression from ".gz" would."""
    for _ in range(100):
        # The target's name cut to 200 bytes (whole characters): with the dot and the 9-character suffix the
        # temporary name stays inside the 255-byte limit of ext4, NTFS and APFS even for a long Cyrillic name.
        stem = target.name.encode("utf-8")[:200].decode("utf-8", errors="ignore")
        path = target.parent / f".{stem}.{secrets.token_hex(4)}"
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        except FileExistsError:
            continue
        os.close(handle)
        return path
    raise FileExistsError(f"no free temporary name beside {target}")


def write_text_atomic(target: Path, text: str, *, shared: bool = False) -> None:
    """Write UTF-8 text (newlines as given) atomically; see `write_atomic`.

    Parameters:
        target: the file to create or replace.
        text: the whole content; start it with "\\ufeff" for CSV that Excel should read as UTF-8 (Cyrillic).
        shared: the usual permissions instead of 0600, for outputs without answers.
    """

    def write(path: Path) -> None:
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    write_atomic(target, write, shared=shared)


def write_bytes_atomic(target: Path, data: bytes, *, shared: bool = False) -> None:
    """Write bytes atomically; see `write_atomic`.

    Parameters:
        target: the file to create or replace.
        data: the whole content.
        shared: the usual permissions instead of 0600, for outputs without answers.
    """
    write_atomic(target, lambda path: path.write_bytes(data), shared=shared)


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where copies from tablets hold no symbolic links


class NotRegularFile(OSError):
    """An input that is a symbolic link (never followed: it could point at a private key) or not a file at all."""


def read_regular_file(path: Path | str, *, max_bytes: int | None = None) -> bytes:
    """Read an input file without following a symbolic link in its last component.

    Raises `NotRegularFile` for a link, a folder, a device or a pipe (and one larger than `max_bytes`), `OSError` when
    it cannot be read.

    Parameters:
        path: the file.
        max_bytes: the largest file accepted (None: any).
    """
    try:
        handle = os.open(path, os.O_RDONLY | _O_NOFOLLOW | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        if Path(path).is_symlink():
            raise NotRegularFile(errno.ELOOP, "it is a symbolic link, which migkit never follows", str(path)) from None
        raise
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, "it is not a regular file", str(path))
        if max_bytes is not None and info.st_size > max_bytes:
            raise NotRegularFile(errno.EFBIG, f"it is {info.st_size} bytes long (limit {max_bytes})", str(path))
    except BaseException:
        os.close(handle)
        raise
    with os.fdopen(handle, "rb") as reader:
        return reader.read()


def make_private_folder(path: Path) -> None:
    """Create a folder (and missing parents) readable by its owner only, whatever the umask; an existing folder
    keeps its permissions.

    Parameters:
        path: the folder.
    """
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(0o700)
        path.chmod(0o700)  # mkdir's mode is cut by the umask; this one is exact
