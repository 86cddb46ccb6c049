"""The record ("stamp") of what an output folder holds, and checking an earlier run's output against it:
re-runs verify and skip what is intact, and replace what changed.
"""

# File-wide lint exceptions, each for a reason:
# PTH: stamps are read and written for every submission with os-level calls on strings; pathlib objects cost
#      measurable time at tens of thousands of submissions (bench/decrypt.py).
# S324: outputs are recorded by the MD5 the ODK signature covers; stamps of earlier builds hold MD5 fingerprints.
# ruff: noqa: PTH112, PTH118, PTH119, PTH123, S324

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from toolkit.crypto.results import CONFLICT_SEPARATOR, STAMP_NAME, STAMP_XATTR
from toolkit.crypto.scheme import CHUNK_BYTES


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def content_digest(outputs: Mapping[str, str]) -> str:
    return hashlib.sha256("".join(f"{n}:{m}\n" for n, m in sorted(outputs.items())).encode()).hexdigest()


def write_stamp(folder: str | Path, stamp: Mapping[str, Any]) -> None:
    """Record what a work folder holds, before it is renamed into place (so it is never seen half-written).

    The record is an extended attribute of the folder where the file system has them (Linux): creating one more file per
    submission costs as much as decrypting it on some disks. Elsewhere (or when the attribute does not fit) it is the
    dot-file STAMP_NAME inside the folder."""
    data = json.dumps(stamp, ensure_ascii=False, sort_keys=True).encode("utf-8")
    if hasattr(os, "setxattr"):
        try:
            os.setxattr(folder, STAMP_XATTR, data)
        except OSError:
            pass
        else:
            return
    with open(os.path.join(folder, STAMP_NAME), "wb") as handle:
        handle.write(data)


def read_stamp(folder: str | Path) -> dict[str, Any] | None:
    raw: bytes | None = None
    if hasattr(os, "getxattr"):
        with contextlib.suppress(OSError):
            raw = os.getxattr(folder, STAMP_XATTR)
    if raw is None:
        try:
            raw = (Path(folder) / STAMP_NAME).read_bytes()
        except OSError:
            return None
    try:
        stamp = json.loads(raw)
    except ValueError:
        return None
    return stamp if isinstance(stamp, dict) else None


def folder_outputs(folder: Path) -> dict[str, str]:
    """MD5 of every output file of a folder that has no record (copied without extended attributes)."""
    return {
        e.name: _md5_file(Path(e.path)) for e in os.scandir(folder) if e.is_file() and e.name != STAMP_NAME
    }


def existing_folders(out_dir: str | Path, folder: str) -> Iterator[Path]:
    """OUT/<id>, then the conflict copies OUT/<id>__2, __3, ... that exist."""
    if not os.path.isdir(f"{out_dir}{os.sep}{folder}"):
        return  # conflict copies exist only next to the first folder
    yield Path(out_dir, folder)
    n = 2
    while os.path.isdir(os.path.join(out_dir, f"{folder}{CONFLICT_SEPARATOR}{n}")):
        yield Path(out_dir, f"{folder}{CONFLICT_SEPARATOR}{n}")
        n += 1


def _verified(folder: Path, stamp: Mapping[str, Any]) -> bool:
    """An earlier run's output is intact: exactly the files it recorded, with the same MD5s."""
    outputs = stamp.get("outputs")
    if not isinstance(outputs, dict):
        return False
    present = {e.name for e in os.scandir(folder) if e.name != STAMP_NAME}
    if present != set(outputs):
        return False
    return all(_md5_file(folder / name) == md5 for name, md5 in outputs.items())


def output_fingerprint(paths: Iterable[str | Path], *, algorithm: str = "sha256") -> dict[str, str]:
    """Size and digest of each input file ("size:hex"). Sizes alone are not enough: a copy damaged in transfer
    keeps its size, and would then pass for the copy already decrypted (and hide a good copy found later)."""
    out: dict[str, str] = {}
    for path in paths:
        with contextlib.suppress(OSError):
            digest = hashlib.new(algorithm)
            with open(path, "rb") as handle:
                size = 0
                while chunk := handle.read(CHUNK_BYTES):
                    size += len(chunk)
                    digest.update(chunk)
            out[os.path.basename(path)] = f"{size}:{digest.hexdigest()}"
    return out


def _inputs_unchanged(recorded: Any, paths: Iterable[str | Path]) -> bool:
    """The input files found now are those an earlier run recorded (SHA-256; stamps of earlier builds hold
    MD5)."""
    if not isinstance(recorded, dict):
        return False
    md5 = any(len(str(value).partition(":")[2]) == 32 for value in recorded.values())
    return recorded == output_fingerprint(paths, algorithm="md5" if md5 else "sha256")


def already_decrypted(
    out_dir: str | Path, folder: str, manifest_sha: str, inputs: Iterable[str | Path]
) -> tuple[Path | None, Path | None]:
    """Look for an earlier run's output of the same manifest: (verified folder, None) when it is intact and
    the inputs are unchanged, (None, folder to replace) when not, (None, None) when there is none."""
    for existing in existing_folders(out_dir, folder):
        stamp = read_stamp(existing)
        if stamp is None or stamp.get("manifest_sha256") != manifest_sha:
            continue
        if _inputs_unchanged(stamp.get("inputs"), inputs) and _verified(existing, stamp):
            return existing, None
        return None, existing
    return None, None
