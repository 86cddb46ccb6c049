"""Writing outputs so that nothing half-written is ever left behind: write a temporary file beside the target, then
rename it into place (a rename within one folder is atomic on every file system migkit runs on)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(target: Path, write: Callable[[Path], None], *, shared: bool = False) -> None:
    """Call `write(temporary_path)`, then rename the temporary file onto `target`.

    When `write` raises (or the run is interrupted), the temporary file is removed and an existing `target` is left
    as it was.

    Parameters:
        target: the file to create or replace (its folder is created when missing).
        write: writes the whole content to the path it is given.
        shared: give the file the usual permissions (0666 less the umask) instead of mkstemp's private 0600;
            for outputs without answers in them (XForms, codebooks).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # A hidden name, so that nobody opens the file before it is whole; 0600 by default, since outputs hold answers.
    # The name ends in mkstemp's random letters, not the target's extension: pyreadstat, pandas (given a Path) and
    # savefig(format=...) do not choose the format by name; a writer that infers compression from ".gz" would.
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    path = Path(temporary)
    try:
        write(path)
        if shared:
            umask = os.umask(0)
            os.umask(umask)
            path.chmod(0o666 & ~umask)
        path.replace(target)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


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
