"""Finding submission files in folders and zips (untrusted: safe members, size caps), and attachments."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from toolkit.archives import ZIP_MAX_RATIO as ARCHIVE_MAX_RATIO
from toolkit.archives import ArchiveRefused, SafeZip
from toolkit.errors import (
    INPUT_MISSING,
    INPUT_UNREADABLE,
    Issue,
    ToolkitError,
    error,
    warning,
)
from toolkit.files import NotRegularFile, read_regular_file, write_bytes_atomic
from toolkit.submissions.result import LINK_REFUSED, MEDIA_CONFLICT

# Zip inputs are untrusted: entries are read into memory (never extracted by their own names) under the caps of
# toolkit.archives and these.
ZIP_MAX_XML_BYTES = 64 * 1024 * 1024
ZIP_MAX_CSV_BYTES = 2 * 1024 * 1024 * 1024
ZIP_MAX_MEDIA_BYTES = 2 * 1024 * 1024 * 1024
ZIP_MAX_RATIO = ARCHIVE_MAX_RATIO

# What `classify` calls files that cannot be read as XML at all; how to fix each is in UNREADABLE_HINTS.
UNREADABLE_KINDS = frozenset({"empty", "binary"})
UNREADABLE_HINTS = {
    "empty": "the file is empty; copy it again from the tablet or the server (or run `migkit decrypt` again)",
    "binary": "the file is not XML text (binary content, or an encoding other than UTF-8/UTF-16); copy it "
    "again from the tablet or the server, or save it as UTF-8",
    "utf16": "the file starts as UTF-16 text but does not decode as UTF-16; save it again as UTF-8",
}


_HEAD = re.compile(rb"^(?:\s|<\?.*?\?>|<!--.*?-->)*<([A-Za-z_][\w.:-]*)((?:\s[^>]*)?)/?>", re.DOTALL)
_ATTR = re.compile(rb"""([\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


_UTF16_DECLARATION = re.compile(rb"""^(<\?xml[^>]*?encoding\s*=\s*)(["'])utf-?16(?:le|be)?\2""", re.IGNORECASE)


def as_utf8(data: bytes) -> bytes | None:
    """XML in UTF-16 (with a byte-order mark, or starting with its XML declaration) as UTF-8, its declaration
    changed to match; any other data unchanged. None when the data claims UTF-16 but does not decode.

    Parameters:
        data: the bytes of a file. Editors on Windows save "Unicode" text as UTF-16; byte checks (DOCTYPE, the
            form id on the root) and the parsers then see the same text as in a UTF-8 file.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        codec = "utf-16"
    elif data.startswith(b"<\x00?\x00"):
        codec = "utf-16-le"
    elif data.startswith(b"\x00<\x00?"):
        codec = "utf-16-be"
    else:
        return data
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    return _UTF16_DECLARATION.sub(rb"\1\2UTF-8\2", text.encode("utf-8"), count=1)


def classify(data: bytes) -> tuple[str, dict[str, str]]:  # noqa: PLR0911 (one return per kind of file)
    """What an XML file is, from its head: instance, encrypted (an ODK manifest), doctype, other (XML that is no
    submission: an XForm, a log), empty, or binary (not XML text at all). UTF-16 goes through `as_utf8` first."""
    head = data[:65536].lstrip(b"\xef\xbb\xbf")
    if not head.strip():
        return "empty", {}
    if b"\x00" in head[:4096] or not head.lstrip().startswith(b"<"):
        return "binary", {}
    if b"<!DOCTYPE" in head:
        return "doctype", {}
    match = _HEAD.match(head)
    if match is None:
        return "other", {}
    tag = match.group(1).decode("utf-8", "replace").rsplit(":", 1)[-1]
    attrs = {
        m.group(1).decode("utf-8", "replace").rsplit(":", 1)[-1]: (m.group(2) or m.group(3) or b"").decode(
            "utf-8", "replace"
        )
        for m in _ATTR.finditer(match.group(2))
    }
    if tag == "html":
        return "other", attrs  # an XForm, not a submission
    if attrs.get("encrypted") == "yes":
        return "encrypted", attrs
    if "id" not in attrs:
        return "other", attrs  # every ODK instance root carries the form id; logs and reports do not
    return "instance", attrs


class _Source(NamedTuple):
    name: str
    load: Callable[[], bytes]
    is_file: bool = False  # a plain file, which a worker process can read by its name


def open_zip(path: Path) -> SafeZip:
    """Open an input zip under the shared caps; ToolkitError when it cannot be read or is refused whole."""
    try:
        return SafeZip(path, max_ratio=ZIP_MAX_RATIO)
    except ArchiveRefused as exc:
        raise ToolkitError(error(INPUT_UNREADABLE, f"The zip {exc.message}.", file=str(path))) from None


def zip_read(archive: SafeZip, info: zipfile.ZipInfo, cap: int, source: str) -> bytes:
    """Read one zip entry under a size cap and a compression-ratio cap; ToolkitError when it breaks one."""
    try:
        return archive.read(info, cap)
    except ArchiveRefused as exc:
        raise ToolkitError(
            error(
                INPUT_UNREADABLE,
                f"Zip entry {info.filename} is too large, damaged or compressed suspiciously ({exc.message}); "
                "refusing it.",
                file=source,
            )
        ) from None


def zip_infos(archive: SafeZip, source: str) -> list[zipfile.ZipInfo]:
    """The entries that may be read (regular files with safe names); `source` names the zip in messages."""
    del source  # the archive was checked when it was opened
    return archive.members


def _raiser(exc: Exception) -> Callable[[], bytes]:
    def load() -> bytes:
        raise exc

    return load


def _holder(data: bytes) -> Callable[[], bytes]:
    def load() -> bytes:
        return data

    return load


def _xml_files(folder: str) -> list[str]:
    """The .xml files under `folder`, folder by folder in name order; names starting with a dot (work folders of
    atomic writers) are passed over, linked folders are not entered, folders that cannot be listed are passed over.
    One directory read per folder: `migkit decrypt` writes a folder per submission, 100,000 of them."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted((entry for entry in listing if entry.name[0] != "."), key=attrgetter("name"))
    except OSError:
        return []
    found: list[str] = []
    for entry in entries:
        if _is_folder(entry):
            if not entry.is_symlink():
                found += _xml_files(f"{folder}{os.sep}{entry.name}")
        elif entry.name.lower().endswith(".xml"):
            found.append(f"{folder}{os.sep}{entry.name}")
    return found


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def xml_sources(input_path: Path) -> list[_Source]:
    """Candidate XML files of a folder (recursive, sorted) or a zip, not yet read."""
    if input_path.is_dir():
        return [_Source(name, partial(read_regular_file, name), True) for name in _xml_files(str(input_path))]
    if zipfile.is_zipfile(input_path):
        # Submissions in a zip are small: read them all while the archive is open.
        sources = []
        with open_zip(input_path) as archive:
            infos = [i for i in zip_infos(archive, str(input_path)) if i.filename.lower().endswith(".xml")]
            for info in sorted(infos, key=lambda i: i.filename):
                name = f"{input_path}!{info.filename}"
                try:
                    data = zip_read(archive, info, ZIP_MAX_XML_BYTES, str(input_path))
                except ToolkitError as exc:
                    sources.append(_Source(name, _raiser(exc)))
                    continue
                sources.append(_Source(name, _holder(data)))
        return sources
    if input_path.is_file():
        return [_Source(str(input_path), partial(read_regular_file, input_path), True)]
    raise ToolkitError(
        error(INPUT_MISSING, "The input does not exist; check the path.", file=str(input_path))
    )


def iter_submission_xml(input_path: Path, *, form_id: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield `(source_name, xml_bytes)` for every submission instance under `input_path`.

    Parameters:
        input_path: a folder (searched recursively: `migkit decrypt` output `<instance>/submission.xml`,
            or any tree of instance XMLs), a zip of such files, or one XML file. Encrypted ODK manifests
            (root attribute encrypted="yes"), XForms and XML without a form id on the root (logs) are skipped.
            Files that cannot be submissions of any form (empty, binary, broken UTF-16, with a DOCTYPE) are
            yielded as they are, so that the reader reports them instead of passing them over. UTF-16 comes
            as UTF-8.
        form_id: when given, only instances whose root `id` is this form id.
    """
    for source in xml_sources(Path(input_path)):
        raw = source.load()
        data = as_utf8(raw)
        if data is None:
            yield source.name, raw
            continue
        kind, attrs = classify(data)
        if kind in UNREADABLE_KINDS or kind == "doctype" or (
            kind == "instance" and (form_id is None or attrs.get("id") == form_id)
        ):
            yield source.name, data


def copy_media(
    files: Iterable[tuple[str, Callable[[], bytes]]], target_dir: Path, issues: list[Issue]
) -> int:
    """Copy attachments flat into `target_dir` (Collect names them by capture time, so names rarely clash)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name, load in files:
        target = target_dir / Path(name).name
        try:
            data = load()
        except NotRegularFile as exc:
            issues.append(warning(LINK_REFUSED, f"{exc.strerror}; not copied.", file=name))
            continue
        if target.exists():
            if target.read_bytes() != data:
                issues.append(
                    warning(
                        MEDIA_CONFLICT,
                        f"{target.name} exists with other content; the copy from {name} is not written.",
                        file=name,
                    )
                )
            continue
        write_bytes_atomic(target, data)  # 0600: photos and recordings are answers
        copied += 1
    return copied


def media_files(
    input_path: Path, submission_sources: list[str]
) -> Iterator[tuple[str, Callable[[], bytes]]]:
    if input_path.is_dir():
        folders = {
            Path(s).parent for s in submission_sources if "!" not in s and Path(s).is_relative_to(input_path)
        }
        files = []
        for folder in sorted(folders):
            if folder == input_path:
                continue
            for path in sorted(folder.iterdir()):
                # Links are listed (and refused when read, with a warning): a linked "photo" could be any file.
                if (
                    (path.is_symlink() or path.is_file())
                    and path.suffix.lower() not in {".xml", ".enc"}
                    and not path.name.startswith(".")
                ):
                    files.append((str(path), partial(read_regular_file, path)))
        media = input_path / "media"
        if media.is_dir() and not media.is_symlink():
            files += [
                (str(p), partial(read_regular_file, p))
                for p in sorted(media.iterdir())
                if p.is_symlink() or p.is_file()
            ]
        yield from files
    elif zipfile.is_zipfile(input_path):
        with open_zip(input_path) as archive:  # open while the caller copies, one entry at a time
            for info in zip_infos(archive, str(input_path)):
                name = info.filename
                if name.startswith("media/") and not name.lower().endswith((".xml", ".csv")):
                    yield (
                        f"{input_path}!{name}",
                        partial(zip_read, archive, info, ZIP_MAX_MEDIA_BYTES, str(input_path)),
                    )
