"""Decrypting one submission, or copying one plaintext instance, into a work folder inside OUT (runs in
worker processes): find the files the manifest lists, unwrap the key, try the IV derivations and signature
rules known encryptors use, and record the outcome. The main process then commits it (`commit`).
"""

# File-wide lint exceptions, each for a reason:
# PTH: the per-submission path uses os-level calls on strings; pathlib objects cost measurable time per
#      file at tens of thousands of submissions (bench/decrypt.py).
# S324: MD5 is fixed by the ODK format (the signature) and SHA-1 only names folders of instances without an
#      instanceID; nothing here relies on them for security that the format does not already.
# PLR0911, PLR0917: the private decrypt steps return one log row per outcome and pass their state explicitly.
# ruff: noqa: PTH102, PTH105, PTH108, PTH118, PTH119, PTH123, S324, PLR0911, PLR0917

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from toolkit.crypto.codes import (
    ENVELOPE_REPAIRED,
    INTERNAL_ERROR,
    KEY_BLOCK_CORRUPT,
    MANIFEST_INVALID,
    MANIFEST_UNSAFE,
    MEDIA_CORRUPT,
    MEDIA_MISSING,
    MGF1_SHA1,
    PLAINTEXT,
    RULES,
    SIGNATURE_CAUSES,
    SIGNATURE_MISMATCH,
    SIGNATURE_UNVERIFIABLE,
    WRONG_KEY,
    XML_CORRUPT,
    XML_MISSING,
)
from toolkit.crypto.manifest import (
    ID_MAX_CHARS,
    _attr,
    _is_manifest,
    _local,
    _Manifest,
    _parse_xml,
    _read_manifest,
    _Refused,
    _text,
    instance_folder,
    plain_name_ok,
)
from toolkit.crypto.outdir import DISK_FULL_ERRNOS
from toolkit.crypto.results import PARTIAL_DIR, Status, SubmissionResult
from toolkit.crypto.scheme import (
    _O_BINARY,
    AES_KEY_BYTES,
    CHUNK_BYTES,
    PRIVATE_FOLDER_MODE,
    RSA_BLOCK_SIZES,
    _create_private,
    _decrypt_file,
    _FileProblem,
    _read_all,
    _rsa_unwrap,
    _signature_digest,
    _utf16_units,
    _write_new_file,
    collect_iv,
    enketo_iv,
    enketo_legacy_seed,
    forge_md5,
    iv_seed,
    signature_text,
)
from toolkit.crypto.stamps import already_decrypted, content_digest, output_fingerprint, read_stamp, write_stamp
from toolkit.errors import OUTPUT_UNWRITABLE

# Manifests are a few KB (one line per media file); anything far larger is not a manifest.
MANIFEST_MAX_BYTES = 1 << 20
# Plaintext (never finalised) instances are parsed to find their instanceID; household instances stay far
# below.
PLAINTEXT_XML_MAX_BYTES = 64 << 20


@dataclass(frozen=True)
class DecryptTask:
    path: str  # the XML file on disk
    source: str  # how the log names it (zip members as archive.zip!member)
    out_dir: str


@dataclass(frozen=True)
class DecryptOutcome:
    result: SubmissionResult
    kind: str  # "none" (not a submission), "failed", "written", "skipped"
    tmp: str = ""
    folder: str = ""  # intended folder name (instanceID without uuid:)
    digest: str = ""
    existing: str = ""  # skipped: the verified folder; written: a folder of an earlier run to replace
    stamp: dict[str, Any] = field(default_factory=dict)


class _DirCache:
    """File listings of the folders a worker looks at (for loose name matching), small and per process."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, ...]] = {}

    def names(self, folder: Path) -> tuple[str, ...]:
        key = str(folder)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            try:
                self._cache[key] = tuple(
                    sorted(e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False))
                )
            except OSError:
                self._cache[key] = ()
        return self._cache[key]


_DIRS = _DirCache()


def _regular(path: str | Path) -> bool:
    return _size(path) >= 0


def _size(path: str | Path) -> int:
    """Size of a regular file (links are not followed), or -1."""
    try:
        info = os.lstat(path)
    except OSError:
        return -1
    return info.st_size if stat.S_ISREG(info.st_mode) else -1


def _locate(folder: str, listed: str, manifest_name: str, files: Mapping[str, Path] | None) -> tuple[str, str]:
    """Find the file a manifest lists: exact name, the Briefcase test prefix, then a unique loose match
    (servers rename stored files, e.g. `submission.xml_ED6i4G8.enc`). Returns (path, "") or ("", why none was
    found)."""
    if files is not None:
        mapped = files.get(listed)
        return (str(mapped), "") if mapped is not None and _regular(mapped) else ("", "is missing")
    candidates = [listed]
    if not listed.endswith(".enc"):
        candidates.append(listed + ".enc")  # Central's simulator lists media without .enc
    if manifest_name.endswith("submission.xml") and manifest_name != "submission.xml":
        prefix = manifest_name[: -len("submission.xml")]
        candidates += [prefix + name for name in list(candidates)]
    for name in candidates:
        candidate = os.path.join(folder, name)
        if _size(candidate) >= 0:
            return candidate, ""
    base = listed.removesuffix(".enc")
    loose = [
        name
        for name in _DIRS.names(Path(folder))
        if name != manifest_name
        and (name.endswith("-" + listed) or (name.startswith(base + "_") and name.endswith(".enc")))
    ]
    if len(loose) == 1:
        return os.path.join(folder, loose[0]), ""
    if len(loose) > 1:
        return "", f"is ambiguous: {len(loose)} files could be it ({', '.join(loose[:3])})"
    return "", "is missing"


def _signed_name(listed: str) -> str:
    """Name in the signature: the manifest name with exactly one `.enc` removed (central-backend PR #242)."""
    return listed.removesuffix(".enc")


@dataclass
class _Attempt:
    label: str  # rule name ("" for the spec rule)
    instance_id: str
    folder: str
    md5s: dict[int, str] = field(default_factory=dict)  # manifest position -> md5 hex (xml at len(media))
    problems: dict[int, _FileProblem] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)  # manifest position -> "size:sha256" of the input


def _run_attempt(
    manifest: _Manifest,
    paths: dict[int, str],
    aes_key: bytes,
    seed: bytes,
    iv_rule: Callable[[bytes, int], bytes],
    attempt: _Attempt,
    *,
    create_folder: bool,
) -> None:
    names = [*manifest.media, manifest.xml_file]
    if create_folder:  # the first attempt writes straight into the work folder, which exists
        os.mkdir(attempt.folder, PRIVATE_FOLDER_MODE)
    for index, listed in enumerate(names):
        src = paths.get(index)
        if src is None:
            continue
        target_name = "submission.xml" if index == len(manifest.media) else _signed_name(listed)
        dst = attempt.folder + os.sep + target_name  # a plain name (manifest rules)
        try:
            attempt.md5s[index], attempt.fingerprints[index] = _decrypt_file(src, dst, aes_key, iv_rule(seed, index))
        except _FileProblem as problem:
            attempt.problems[index] = problem
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dst)


def _signature_candidates(
    manifest: _Manifest, attempt: _Attempt, xml_path: str
) -> Iterator[tuple[tuple[str, ...], bytes]]:
    """(rules, digest) for every signature derivation known encryptors use; the spec rule first."""
    media_md5 = [attempt.md5s[i] for i in range(len(manifest.media))]
    xml_md5 = attempt.md5s[len(manifest.media)]
    versions: list[tuple[tuple[str, ...], str | None]] = [((), manifest.version)]
    if manifest.version == "":
        versions.append((("empty_version_absent",), None))
    namings: list[tuple[tuple[str, ...], list[str]]] = [((), [_signed_name(n) for n in manifest.media])]
    if any(n.endswith(".enc") for n in manifest.media):
        namings.append((("names_with_enc",), list(manifest.media)))
    xml_text: str | None = None
    for hashing in ("utf8", "enketo_legacy_hash"):
        if hashing != "utf8":
            if xml_text is None:
                try:
                    with open(xml_path, "rb") as handle:
                        xml_text = handle.read().decode("utf-8")
                except (OSError, UnicodeDecodeError):
                    return
            legacy_xml_md5 = forge_md5(_utf16_units(xml_text)).hex()
        for version_rules, version in versions:
            for name_rules, names in namings:
                files = [*zip(names, media_md5, strict=True), ("submission.xml", xml_md5)]
                if hashing != "utf8":
                    files[-1] = ("submission.xml", legacy_xml_md5)
                text = signature_text(
                    manifest.form_id, version, manifest.encrypted_key, attempt.instance_id, files
                )
                if hashing == "utf8":
                    digest = hashlib.md5(text.encode("utf-8")).digest()
                    rules = version_rules + name_rules
                else:
                    digest = forge_md5(_utf16_units(text))
                    rules = ("enketo_legacy_hash", *version_rules, *name_rules)
                yield rules, digest


_PARTIAL_COUNTER = itertools.count()


def _copy_private(source: Path, target: Path) -> tuple[str, str]:
    """Copy a plaintext media file into a private file; returns the MD5 of the copy and the fingerprint of the
    input ("size:sha256"), both from the one read."""
    md5, sha, size = hashlib.md5(), hashlib.sha256(), 0
    with open(source, "rb") as reader, open(_create_private(str(target)), "wb") as writer:
        while chunk := reader.read(CHUNK_BYTES):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
            writer.write(chunk)
    return md5.hexdigest(), f"{size}:{sha.hexdigest()}"


def _new_partial(out_dir: Path | str) -> str:
    partial = f"{out_dir}{os.sep}{PARTIAL_DIR}{os.sep}{os.getpid()}-{next(_PARTIAL_COUNTER)}"
    os.mkdir(partial, PRIVATE_FOLDER_MODE)
    return partial


def _result(
    m: _Manifest | None, source: str, status: Status, code: str, message: str, instance_id: str = ""
) -> SubmissionResult:
    return SubmissionResult(
        instance_id=instance_id or (m.instance_id if m else ""),
        form_id=m.form_id if m else "",
        version=(m.version or "") if m else "",
        source=source,
        status=status,
        reason_code=code,
        message=message,
    )


def _manifest_too_big(source: str, size: int) -> DecryptOutcome:
    message = f"is a manifest of {size} bytes (limit {MANIFEST_MAX_BYTES}); refused"
    return DecryptOutcome(_result(None, source, Status.FAILED, MANIFEST_UNSAFE, message), "failed")


def _process(task: DecryptTask, key: rsa.RSAPrivateKey, files: Mapping[str, Path] | None = None) -> DecryptOutcome:  # noqa: PLR0912
    """Read one XML file: decrypt it if it is a manifest, copy it if it is a plaintext instance."""
    out_dir, source = task.out_dir, task.source
    try:
        fd = os.open(task.path, os.O_RDONLY | _O_BINARY)
        try:
            size = os.fstat(fd).st_size
            data = b"" if size > PLAINTEXT_XML_MAX_BYTES else _read_all(fd, size, PLAINTEXT_XML_MAX_BYTES)
        finally:
            os.close(fd)
        size = max(size, len(data))
        if size > PLAINTEXT_XML_MAX_BYTES:
            return DecryptOutcome(
                _result(
                    None,
                    source,
                    Status.FAILED,
                    MANIFEST_UNSAFE,
                    f"is larger than any submission XML should be ({size} bytes); refused",
                ),
                "failed",
            )
    except OSError as exc:
        return DecryptOutcome(
            _result(None, source, Status.FAILED, MANIFEST_INVALID, f"cannot be read: {exc.strerror}"),
            "failed",
        )
    looks_like_manifest = b"base64EncryptedKey" in data[:MANIFEST_MAX_BYTES] or b"encrypted=" in data[:4096]
    if looks_like_manifest and size > MANIFEST_MAX_BYTES:
        return _manifest_too_big(source, size)  # refused before parsing
    try:
        root, repaired = _parse_xml(data, PLAINTEXT_XML_MAX_BYTES)
    except _Refused as refused:
        if not looks_like_manifest and refused.code == MANIFEST_INVALID and b"instanceID" not in data:
            # Some other broken XML file (not a submission): not ours to report. A damaged instance (it
            # names an instanceID) is reported below.
            return DecryptOutcome(_result(None, source, Status.FAILED, refused.code, refused.message), "none")
        return DecryptOutcome(_result(None, source, Status.FAILED, refused.code, refused.message), "failed")
    if _local(root) == "html":
        return DecryptOutcome(_result(None, source, Status.FAILED, "", "form definition"), "none")  # an XForm
    if not _is_manifest(root):
        return _copy_plaintext(task, root, data)
    if size > MANIFEST_MAX_BYTES:  # a manifest whose markers were pushed past the first MB (leading comments)
        return _manifest_too_big(source, size)
    manifest: _Manifest | None = None
    try:
        manifest = _read_manifest(root, repaired)
        if not manifest.instance_id:
            raise _Refused(MANIFEST_INVALID, "has no instanceID (neither meta/instanceID nor a root attribute)")
        folder = instance_folder(manifest.instance_id)
        if not manifest.encrypted_key:
            raise _Refused(MANIFEST_INVALID, "has no base64EncryptedKey")
    except _Refused as refused:
        return DecryptOutcome(
            _result(manifest, source, Status.FAILED, refused.code, f"manifest {refused.message}"), "failed"
        )
    names = [*manifest.media, manifest.xml_file]
    folder_name, file_name = os.path.split(task.path)
    located = {i: _locate(folder_name, listed, file_name, files) for i, listed in enumerate(names)}
    paths = {i: path for i, (path, _) in located.items() if path}
    unfound = {i: why for i, (path, why) in located.items() if not path}
    manifest_sha = hashlib.sha256(data).hexdigest()
    done, replace = already_decrypted(out_dir, folder, manifest_sha, paths.values())
    if done is not None:
        return _skipped(manifest, source, folder, done)
    return _decrypt_manifest(task, manifest, folder, paths, unfound, key, manifest_sha, replace)


def _skipped(manifest: _Manifest, source: str, folder: str, done: Path) -> DecryptOutcome:
    stamp = read_stamp(done) or {}
    status = str(stamp.get("status", Status.OK))
    result = _result(
        manifest,
        source,
        Status(status) if status in set(Status) else Status.OK,
        str(stamp.get("reason_code", "")),
        str(stamp.get("message", "")),
    )
    return DecryptOutcome(result, "skipped", folder=folder, existing=done.name, stamp=stamp)


def _decrypt_manifest(
    task: DecryptTask,
    manifest: _Manifest,
    folder: str,
    paths: dict[int, str],
    unfound: dict[int, str],  # manifest position -> why the file was not found
    key: rsa.RSAPrivateKey,
    manifest_sha: str,
    replace: Path | None,
) -> DecryptOutcome:
    source, out_dir = task.source, task.out_dir
    n_media = len(manifest.media)
    notes: list[tuple[str, str]] = []  # (code, sentence) of secondary facts
    if manifest.repaired:
        notes.append(
            (
                ENVELOPE_REPAIRED,
                "the manifest was not well-formed XML (a stray comma between attributes, "
                "as Central's test simulator writes) and was repaired before reading",
            )
        )
    try:
        wrapped = base64.b64decode(manifest.encrypted_key, validate=True)
    except (binascii.Error, ValueError):
        return DecryptOutcome(
            _result(
                manifest,
                source,
                Status.FAILED,
                KEY_BLOCK_CORRUPT,
                "base64EncryptedKey is not valid base64: the manifest is damaged",
            ),
            "failed",
        )
    unwrapped = _rsa_unwrap(key, wrapped)
    if unwrapped is None or len(unwrapped[0]) != AES_KEY_BYTES:
        # The signature is wrapped with the same public key: if it opens, the private key is the right one and
        # it is the key block that is damaged.
        if (
            unwrapped is None
            and len(wrapped) in RSA_BLOCK_SIZES
            and _signature_digest(key, manifest.signature) is None
        ):
            return DecryptOutcome(
                _result(
                    manifest,
                    source,
                    Status.FAILED,
                    WRONG_KEY,
                    "this submission was encrypted for a different public key: the private key given does "
                    "not belong "
                    "to the public key of this form version. Use the private key that matches the form's "
                    "public_key "
                    "(nothing was written)",
                ),
                "failed",
            )
        return DecryptOutcome(
            _result(
                manifest,
                source,
                Status.FAILED,
                KEY_BLOCK_CORRUPT,
                "the wrapped AES key (base64EncryptedKey) is damaged, although the key given is the "
                "right one; nothing was written",
            ),
            "failed",
        )
    aes_key, mgf1_sha1 = unwrapped
    if mgf1_sha1:
        notes.append((MGF1_SHA1, "the AES key was wrapped with OAEP MGF1-SHA1 (a SunJCE-style encryptor)"))
    xml_index = n_media
    if xml_index not in paths:
        return DecryptOutcome(
            _result(
                manifest,
                source,
                Status.FAILED,
                XML_MISSING,
                f"the encrypted submission file {manifest.xml_file} {unfound[xml_index]}; "
                "copy it next to the manifest and run again (nothing was written)",
            ),
            "failed",
        )
    partial = _new_partial(out_dir)
    try:
        return _decrypt_attempts(
            task,
            manifest,
            folder,
            paths,
            unfound,
            key,
            aes_key,
            notes,
            partial,
            manifest_sha,
            replace,
        )
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _decrypt_attempts(  # noqa: PLR0912, PLR0915
    task: DecryptTask,
    manifest: _Manifest,
    folder: str,
    paths: dict[int, str],
    unfound: dict[int, str],  # manifest position -> why the file was not found
    key: rsa.RSAPrivateKey,
    aes_key: bytes,
    notes: list[tuple[str, str]],
    partial: str,
    manifest_sha: str,
    replace: Path | None,
) -> DecryptOutcome:
    source, n_media = task.source, len(manifest.media)
    xml_index = n_media
    expected = _signature_digest(key, manifest.signature)
    # Derivations: the spec rule, then what known encryptors really do (tried only when the signature fails).
    primary = manifest.instance_id
    base_seed = iv_seed(primary, aes_key)

    def derivations() -> Iterator[tuple[str, str, Callable[[bytes, int], bytes], bytes]]:
        yield "", primary, collect_iv, base_seed
        # Only reached when the spec rule did not verify.
        other = (
            manifest.root_instance_id if primary == manifest.meta_instance_id else manifest.meta_instance_id
        )
        if other and other != primary:
            rule = "root_instance_id" if other == manifest.root_instance_id else "meta_instance_id"
            yield rule, other, collect_iv, iv_seed(other, aes_key)
        if any(enketo_iv(base_seed, i) != collect_iv(base_seed, i) for i in range(n_media + 1)):
            yield "enketo_iv_overflow", primary, enketo_iv, base_seed
        if not primary.isascii():
            yield "enketo_legacy_seed", primary, enketo_iv, enketo_legacy_seed(primary, aes_key)

    attempts: list[_Attempt] = []
    chosen: tuple[_Attempt, tuple[str, ...]] | None = None
    for n, (label, instance_id, rule, seed) in enumerate(derivations()):
        attempt = _Attempt(label, instance_id, str(partial) if n == 0 else f"{partial}-{n}")
        _run_attempt(manifest, paths, aes_key, seed, rule, attempt, create_folder=n > 0)
        attempts.append(attempt)
        if xml_index not in attempt.md5s:
            continue  # a different IV derivation may still open a file of 16 bytes or less
        if expected is None or len(attempt.md5s) != n_media + 1:
            break  # no signature to check, or media missing: nothing to compare against
        match = next(
            (
                rules
                for rules, digest in _signature_candidates(
                    manifest, attempt, os.path.join(attempt.folder, "submission.xml")
                )
                if digest == expected
            ),
            None,
        )
        if match is not None:
            chosen = (attempt, ((label,) if label else ()) + match)
            break
    opened = [a for a in attempts if xml_index in a.md5s]
    winner = chosen[0] if chosen else (opened[0] if opened else attempts[0])
    for extra in {a.folder for a in attempts[1:]}:
        if extra != winner.folder:
            shutil.rmtree(extra, ignore_errors=True)
    if winner.folder != str(partial):
        shutil.rmtree(partial, ignore_errors=True)
        os.replace(winner.folder, partial)
    note_codes = [code for code, _ in notes]
    note_text = "".join(f"; {sentence}" for _, sentence in notes)
    if xml_index not in winner.md5s:
        shutil.rmtree(partial, ignore_errors=True)
        problem = winner.problems.get(xml_index)
        return DecryptOutcome(
            _result(
                manifest,
                source,
                Status.FAILED,
                XML_CORRUPT,
                f"{manifest.xml_file} {problem.detail if problem else 'does not decrypt'}: the ciphertext is "
                "damaged, "
                "truncated, or belongs to another submission (the AES key itself unwrapped correctly, so "
                "the private "
                f"key is right); nothing was written{note_text}",
            ),
            "failed",
        )
    missing = [
        f"{manifest.media[i]} {unfound[i] if i not in paths else winner.problems[i].detail}"
        for i in range(n_media)
        if i not in winner.md5s
    ]
    outputs = {
        ("submission.xml" if i == xml_index else _signed_name(manifest.media[i])): md5
        for i, md5 in winner.md5s.items()
    }
    if missing:
        corrupt = any(i in paths for i in range(n_media) if i not in winner.md5s)
        status, code = Status.INCOMPLETE, (MEDIA_CORRUPT if corrupt else MEDIA_MISSING)
        message = (
            f"{len(missing)} of {n_media} media files could not be decrypted ({'; '.join(missing)}); "
            "submission.xml and the other files were written and keep their IV positions; the signature "
            "cannot be checked until every file is present. Copy the missing files next to the manifest "
            f"and run again{note_text}"
        )
    elif chosen is not None and chosen[1]:
        rules = chosen[1]
        status, code = Status.OK, "decrypt.recovered." + rules[0]
        message = (
            "decrypted; the signature verifies only after allowing for "
            + "; ".join(RULES[r] for r in rules)
            + f" (rule {'+'.join(rules)}){note_text}"
        )
    elif chosen is not None:
        status, code = Status.OK, (note_codes[0] if note_codes else "")
        message = "decrypted; signature valid" + note_text
    elif expected is None:
        status, code = Status.SIGNATURE_INVALID, SIGNATURE_UNVERIFIABLE
        shown = manifest.signature if len(manifest.signature) <= 8 else manifest.signature[:8] + "..."
        message = (
            f"decrypted, but the signature element ({shown!r}) is not an RSA block for this key, so the "
            f"files cannot be checked (Central's test simulator writes 'no'); {SIGNATURE_CAUSES}{note_text}"
        )
    else:
        status, code = Status.SIGNATURE_INVALID, SIGNATURE_MISMATCH
        message = (
            f"decrypted, but the signature does not match (tried the spec rule and {len(attempts)} "
            f"IV derivation(s) with the known peer variants); {SIGNATURE_CAUSES}{note_text}"
        )
    result = _result(manifest, source, status, code, message)
    stamp = {
        "version": 1,
        "manifest_sha256": manifest_sha,
        "inputs": {
            **output_fingerprint(paths[i] for i in paths if i not in attempts[0].fingerprints),
            **{os.path.basename(paths[i]): attempts[0].fingerprints[i] for i in attempts[0].fingerprints},
        },
        "outputs": outputs,
        "status": str(status),
        "reason_code": code,
        "message": message,
        "source": source,
    }
    write_stamp(partial, stamp)
    return DecryptOutcome(
        result,
        "written",
        tmp=str(partial),
        folder=folder,
        digest=content_digest(outputs),
        existing=str(replace.name) if replace else "",
    )


def _referenced_media(root: etree._Element, folder: Path, xml_name: str) -> list[Path]:
    """Plaintext instances name their media files as answer values (Collect stores the file name)."""
    values = {(el.text or "").strip() for el in root.iter() if isinstance(el.tag, str) and len(el) == 0}
    found = []
    for name in sorted(v for v in values if v and plain_name_ok(v) and v != xml_name):
        if not name.endswith((".xml", ".enc")) and _regular(folder / name):
            found.append(folder / name)
    return found


def _copy_plaintext(task: DecryptTask, root: etree._Element, data: bytes) -> DecryptOutcome:
    path, out_dir, source = Path(task.path), Path(task.out_dir), task.source
    meta_id = ""
    for element in root.iter():
        if _local(element) == "instanceID" and element is not root:
            meta_id = _text(element)
            break
    instance_id = meta_id or _attr(root, "instanceID") or ""
    form_id = _attr(root, "id") or ""
    if not instance_id and not form_id:
        return DecryptOutcome(_result(None, source, Status.FAILED, "", "not a submission"), "none")
    m = _Manifest(
        form_id=form_id[:ID_MAX_CHARS],
        version=_attr(root, "version"),
        encrypted_key="",
        meta_instance_id=instance_id[:ID_MAX_CHARS],
        root_instance_id="",
        media=(),
        xml_file="",
        signature="",
        repaired=False,
    )
    folder = instance_folder(instance_id) if instance_id else "noid-" + hashlib.sha1(source.encode()).hexdigest()[:12]
    media = _referenced_media(root, path.parent, path.name)
    manifest_sha = hashlib.sha256(data).hexdigest()
    done, replace = already_decrypted(out_dir, folder, manifest_sha, media)
    if done is not None:
        return _skipped(m, source, folder, done)
    partial = Path(_new_partial(out_dir))
    outputs = {"submission.xml": hashlib.md5(data).hexdigest()}
    _write_new_file(str(partial / "submission.xml"), data)
    inputs: dict[str, str] = {}
    for media_path in media:
        outputs[media_path.name], inputs[media_path.name] = _copy_private(media_path, partial / media_path.name)
    message = (
        "not encrypted (saved but never finalised on the device, or the form has no public key); copied as "
        f"it is with {len(media)} media file(s)"
    )
    stamp = {
        "version": 1,
        "manifest_sha256": manifest_sha,
        "inputs": inputs,
        "outputs": outputs,
        "status": str(Status.PLAINTEXT),
        "reason_code": PLAINTEXT,
        "message": message,
        "source": source,
    }
    write_stamp(partial, stamp)
    return DecryptOutcome(
        _result(m, source, Status.PLAINTEXT, PLAINTEXT, message),
        "written",
        tmp=str(partial),
        folder=folder,
        digest=content_digest(outputs),
        existing=replace.name if replace else "",
    )


def safe_process(task: DecryptTask, key: rsa.RSAPrivateKey, files: Mapping[str, Path] | None = None) -> DecryptOutcome:
    try:
        return _process(task, key, files)
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise  # every later submission would fail alike: the run stops, with its log
        return DecryptOutcome(
            _result(
                None,
                task.source,
                Status.FAILED,
                OUTPUT_UNWRITABLE,
                f"could not be processed: {exc.strerror or exc}",
            ),
            "failed",
        )
    except Exception as exc:  # one odd file from the field must not stop a run of thousands
        # Only the exception type is reported: its text could quote decrypted content.
        return DecryptOutcome(
            _result(
                None,
                task.source,
                Status.FAILED,
                INTERNAL_ERROR,
                f"could not be processed ({type(exc).__name__} inside migkit); nothing was written. Please "
                "report it, with this submission if its owner allows",
            ),
            "failed",
        )
