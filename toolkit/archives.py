"""The one reader of zip files from outside migkit (Central and Briefcase exports, tablet pulls): member names that
would land outside the extraction folder are refused, and sizes are capped while the bytes stream out, so that a
zip bomb or a header that lies about sizes is stopped before it fills a disk.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

ZIP_MAX_MEMBERS = 1_000_000
# Deflate cannot expand data more than ~1030x, but XML and CSV compress ~10-30x and photos, audio and .enc files
# not at all: a member (or a whole archive) that expands more than this is treated as a zip bomb.
ZIP_MAX_RATIO = 200
# Small members are not judged by their ratio (an empty repeat compresses very well); the whole archive still is.
RATIO_FLOOR_BYTES = 1 << 20
ZIP_MAX_TOTAL_BYTES = 200 << 30
COPY_CHUNK_BYTES = 1 << 20

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class ArchiveRefused(Exception):
    """The whole archive is refused: `reason` is "unreadable" (damaged, truncated, not a zip) or "too_large" (a cap
    was broken); `message` says which, without the archive's path (callers name it)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class RefusedMember:
    """A member left out of an archive that is otherwise read: its name and why."""

    name: str
    why: str


def member_problem(info: zipfile.ZipInfo) -> str:
    """Why a member must not be read by its own name ("" when it may): absolute paths, drive letters, '..', NUL,
    symbolic links and other special files are refused."""
    name = info.filename.replace("\\", "/")
    if not name or "\0" in name:
        return "its name is empty or holds a NUL character"
    if name.startswith("/") or _DRIVE_RE.match(name):
        return "it is an absolute path (a path outside the extraction folder)"
    if any(part == ".." for part in name.split("/")):
        return "its name climbs out with '..' (a path outside the extraction folder)"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "it is a symbolic link"
    if kind not in {0, stat.S_IFREG, stat.S_IFDIR}:
        return "it is a special file (a device or a pipe)"
    return ""


class SafeZip:
    """A zip file opened for reading under caps; use as a context manager.

    `members` are the regular files that may be read (sorted by name is up to the caller), `refused` the members
    left out with the reason. `read` and `extract` count every byte they produce against the caps and raise
    `ArchiveRefused` as soon as one is broken.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_total_bytes: int = ZIP_MAX_TOTAL_BYTES,
        max_ratio: int = ZIP_MAX_RATIO,
    ) -> None:
        """Open the archive and sort its members.

        Parameters:
            path: the .zip file.
            max_total_bytes: the most bytes all members together may produce.
            max_ratio: the largest expansion (produced / compressed bytes) of a member and of the whole archive.
        """
        self.path = Path(path)
        self.max_ratio = max_ratio
        self.produced = 0
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
            archive_bytes = self.path.stat().st_size
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise ArchiveRefused("unreadable", f"cannot be read as a zip file ({_why(exc)})") from None
        if len(infos) > ZIP_MAX_MEMBERS:
            self._zip.close()
            raise ArchiveRefused("too_large", f"has {len(infos)} members (limit {ZIP_MAX_MEMBERS}); refused")
        # The whole archive may not expand more than its members may (counted while streaming, so that many small
        # members below the ratio floor cannot add up to a bomb either).
        self.max_total_bytes = min(max_total_bytes, max_ratio * archive_bytes + RATIO_FLOOR_BYTES)
        self.members: list[zipfile.ZipInfo] = []
        self.refused: list[RefusedMember] = []
        seen: set[str] = set()
        for info in infos:
            problem = member_problem(info)
            if not problem and info.filename in seen:
                problem = "it is listed twice"
            if problem:
                self.refused.append(RefusedMember(info.filename, problem))
            elif not info.is_dir():
                self.members.append(info)
                seen.add(info.filename)
        declared = sum(info.file_size for info in self.members)
        if declared > max_total_bytes:
            self._zip.close()
            raise ArchiveRefused("too_large", f"unpacks to {declared} bytes (limit {max_total_bytes}); refused")

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._zip.close()

    def close(self) -> None:
        self._zip.close()

    def _check_header(self, info: zipfile.ZipInfo, max_bytes: int) -> None:
        """Refuse a member by the sizes its header gives, before anything is written."""
        if info.file_size > max(self.max_ratio * info.compress_size, RATIO_FLOOR_BYTES):
            raise ArchiveRefused("too_large", _too_large(f"member {info.filename} expands to {info.file_size} bytes"))
        if info.file_size > max_bytes:
            raise ArchiveRefused("too_large", f"member {info.filename} is {info.file_size} bytes (limit {max_bytes})")

    def _chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The member's bytes in chunks, each counted against the member's header and the archive's cap (a header
        may lie: zipfile stops at the size it gives, and the CRC check then fails)."""
        written = 0
        try:
            with self._zip.open(info) as source:
                while chunk := source.read(COPY_CHUNK_BYTES):
                    written += len(chunk)
                    self.produced += len(chunk)
                    if written > info.file_size:
                        raise ArchiveRefused(
                            "too_large", f"member {info.filename} is larger than its header says (a zip bomb?)"
                        )
                    if self.produced > self.max_total_bytes:
                        raise ArchiveRefused("too_large", _too_large(f"it unpacks to more than {self.produced} bytes"))
                    yield chunk
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
            raise ArchiveRefused("unreadable", f"member {info.filename} cannot be read ({_why(exc)})") from None

    def read(self, info: zipfile.ZipInfo, max_bytes: int) -> bytes:
        """The whole member in memory.

        Parameters:
            info: one of `members`.
            max_bytes: the largest member accepted.
        """
        self._check_header(info, max_bytes)
        return b"".join(self._chunks(info))

    def extract(self, target: Path) -> list[RefusedMember]:
        """Write every member below `target` (an empty folder), never following a link. Returns the members
        refused here (a name that clashes with another member's folder) besides `refused`.

        Parameters:
            target: the extraction folder.
        """
        root = Path(os.path.realpath(target))
        clashes: list[RefusedMember] = []
        for info in self.members:
            destination = Path(os.path.realpath(root / info.filename.replace("\\", "/")))
            if os.path.commonpath([root, destination]) != str(root) or destination == root:
                clashes.append(RefusedMember(info.filename, "it resolves outside the extraction folder"))
                continue
            self._check_header(info, self.max_total_bytes)
            try:
                destination.parent.mkdir(0o700, parents=True, exist_ok=True)
                fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_BINARY, 0o600)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                clashes.append(RefusedMember(info.filename, "its name clashes with another member"))
                continue
            with os.fdopen(fd, "wb") as handle:
                for chunk in self._chunks(info):
                    handle.write(chunk)
        return clashes


def _too_large(what: str) -> str:
    return f"{what}, more than a zip of this size should (a zip bomb?); refused"


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
