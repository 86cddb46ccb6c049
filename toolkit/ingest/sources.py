"""Finding submission files in folders and zips (untrusted: safe members, size caps), and attachments."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from lxml import etree

from toolkit.errors import (
    INPUT_MISSING,
    INPUT_UNREADABLE,
    Issue,
    ToolkitError,
    error,
    warning,
)
from toolkit.files import write_bytes_atomic
from toolkit.ingest.result import MEDIA_CONFLICT

# Zip inputs are untrusted: entries are read into memory (never extracted by their own names) under caps.
ZIP_MAX_ENTRIES = 1_000_000
ZIP_MAX_XML_BYTES = 64 * 1024 * 1024
ZIP_MAX_CSV_BYTES = 2 * 1024 * 1024 * 1024
ZIP_MAX_MEDIA_BYTES = 2 * 1024 * 1024 * 1024
# A deflated entry expanding more than this is treated as a zip bomb (XML and CSV compress ~10-30x).
ZIP_MAX_RATIO = 200


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_HEAD = re.compile(rb"^(?:\s|<\?.*?\?>|<!--.*?-->)*<([A-Za-z_][\w.:-]*)((?:\s[^>]*)?)/?>", re.DOTALL)
_ATTR = re.compile(rb"""([\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _classify(data: bytes) -> tuple[str, dict[str, str]]:
    """What an XML file is, from its head: instance, encrypted (an ODK manifest), doctype, or other."""
    head = data[:65536].lstrip(b"\xef\xbb\xbf")
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


def _safe_member(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not (name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name))


def _zip_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, source: str) -> bytes:
    """Read one zip entry under a size cap and a compression-ratio cap; ToolkitError when it breaks one."""
    too_big = info.file_size > cap or (
        info.compress_size > 0
        and info.file_size > 1_000_000
        and info.file_size / info.compress_size > ZIP_MAX_RATIO
    )
    if too_big:
        raise ToolkitError(
            error(
                INPUT_UNREADABLE,
                f"Zip entry {info.filename} is too large or compressed "
                f"suspiciously ({info.file_size} bytes); refusing it.",
                file=source,
            )
        )
    with archive.open(info) as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"Zip entry {info.filename} is larger than declared.", file=source)
        )
    return data


def _zip_infos(archive: zipfile.ZipFile, source: str) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > ZIP_MAX_ENTRIES:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"The zip has {len(infos)} entries; refusing it.", file=source)
        )
    return [info for info in infos if not info.is_dir() and _safe_member(info.filename)]


def _raiser(exc: Exception) -> Callable[[], bytes]:
    def load() -> bytes:
        raise exc

    return load


def _xml_sources(input_path: Path) -> list[_Source]:
    """Candidate XML files of a folder (recursive, sorted) or a zip, not yet read."""
    if input_path.is_dir():
        found: list[str] = []
        for folder, dirs, files in os.walk(input_path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # work folders of atomic writers
            found += [f"{folder}{os.sep}{f}" for f in files if f.lower().endswith(".xml") and f[0] != "."]
        found.sort(key=lambda name: name.split(os.sep))  # noqa: PTH206 (folder by folder, cheaply)
        return [_Source(name, Path(name).read_bytes, True) for name in found]
    if zipfile.is_zipfile(input_path):
        # Submissions in a zip are small: read them all while the archive is open.
        sources = []
        with zipfile.ZipFile(input_path) as archive:
            infos = [i for i in _zip_infos(archive, str(input_path)) if i.filename.lower().endswith(".xml")]
            for info in sorted(infos, key=lambda i: i.filename):
                name = f"{input_path}!{info.filename}"
                try:
                    data = _zip_read(archive, info, ZIP_MAX_XML_BYTES, str(input_path))
                except ToolkitError as exc:
                    sources.append(_Source(name, _raiser(exc)))
                    continue
                sources.append(_Source(name, lambda data=data: data))
        return sources
    if input_path.is_file():
        return [_Source(str(input_path), input_path.read_bytes, True)]
    raise ToolkitError(
        error(INPUT_MISSING, "The input does not exist; check the path.", file=str(input_path))
    )


def iter_submission_xml(input_path: Path, *, form_id: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield `(source_name, xml_bytes)` for every submission instance under `input_path`.

    Parameters:
        input_path: a folder (searched recursively: `migkit decrypt` output `<instance>/submission.xml`,
            or any tree of instance XMLs), a zip of such files, or one XML file. Encrypted ODK manifests
            (root attribute encrypted="yes"), XForms and XML without a form id on the root (logs) are skipped.
        form_id: when given, only instances whose root `id` is this form id.
    """
    for source in _xml_sources(Path(input_path)):
        data = source.load()
        kind, attrs = _classify(data)
        if kind == "instance" and (form_id is None or attrs.get("id") == form_id):
            yield source.name, data


def _copy_media(
    files: Iterable[tuple[str, Callable[[], bytes]]], target_dir: Path, issues: list[Issue]
) -> int:
    """Copy attachments flat into `target_dir` (Collect names them by capture time, so names rarely clash)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name, load in files:
        target = target_dir / Path(name).name
        data = load()
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


def _media_files(
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
                if (
                    path.is_file()
                    and path.suffix.lower() not in {".xml", ".enc"}
                    and not path.name.startswith(".")
                ):
                    files.append((str(path), path.read_bytes))
        media = input_path / "media"
        if media.is_dir():
            files += [(str(p), p.read_bytes) for p in sorted(media.iterdir()) if p.is_file()]
        yield from files
    elif zipfile.is_zipfile(input_path):
        with zipfile.ZipFile(input_path) as archive:  # open while the caller copies, one entry at a time
            for info in _zip_infos(archive, str(input_path)):
                name = info.filename
                if name.startswith("media/") and not name.lower().endswith((".xml", ".csv")):
                    yield (
                        f"{input_path}!{name}",
                        lambda info=info: _zip_read(archive, info, ZIP_MAX_MEDIA_BYTES, str(input_path)),
                    )
