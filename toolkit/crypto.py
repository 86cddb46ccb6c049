"""ODK encrypted submissions: key pairs, offline decryption, and a Collect-compatible encryptor.

The scheme (specs/odk-encryption.md section 1, after getodk/collect `EncryptionUtils.java`):

* every submission has its own random 32-byte AES key, wrapped with the form's RSA public key using OAEP
  (SHA-256, MGF1-SHA-256, empty label) and stored as `base64EncryptedKey` in a plaintext manifest;
* every file is encrypted with AES-256-CFB128 plus PKCS#7 padding; the IV of file k (0-based, manifest order,
  media first and `submission.xml` last) is MD5(instanceID + key) with k+1 single-byte increments spread
  round-robin over its 16 bytes;
* `base64EncryptedElementSignature` is the RSA-wrapped MD5 of form id, version, wrapped key, instanceID and
  `name::md5` per decrypted file, each followed by a newline.

Peers that encrypt differently (Enketo, SunJCE, Central's simulator) are read too: when a submission decrypts
but
its signature does not verify, the derivations those encryptors really use are tried, and the row names the
rule
that recovered it. This module does not use pandas so that it can be audited on its own. It never logs key
material, passphrases or decrypted content.
"""

# File-wide lint exceptions, each for a reason:
# PTH: the per-submission path uses os-level calls on strings; pathlib objects cost measurable time per
#      file at tens of thousands of submissions (bench/decrypt.py).
# S303, S324: MD5 and SHA-1 are fixed by the ODK format (IV seed, signature) or name folders; nothing here
#      relies on them for security that the format does not already.
# PLR0911, PLR0917: the private decrypt steps return one log row per outcome and pass their state explicitly.
# ruff: noqa: PTH101, PTH102, PTH104, PTH105, PTH108, PTH112, PTH116, PTH118, PTH119, PTH123, S303, S324, PLR0911, PLR0917

from __future__ import annotations

import base64
import binascii
import codecs
import concurrent.futures
import contextlib
import csv
import errno
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import operator
import os
import re
import shutil
import stat
import struct
import tempfile
import uuid
import warnings
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from toolkit.errors import EXIT_CANNOT_RUN, INPUT_MISSING, OUTPUT_UNWRITABLE, ToolkitError, define, error
from toolkit.settings import PASSPHRASE_ENV  # re-exported: where the CLI reads the passphrase from

try:  # cryptography >= 47 keeps CFB among the "decrepit" modes (cryptography.io, Decrepit Cipher Modes)
    from cryptography.hazmat.decrepit.ciphers.modes import CFB as _CFB
except (
    ImportError
):  # pragma: no cover - older cryptography: the old path still works, with a deprecation warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _CFB = modes.CFB  # type: ignore[misc,assignment]

__all__ = [
    "DecryptResult",
    "EncryptedSubmission",
    "KeyPairResult",
    "LoadedKey",
    "Status",
    "SubmissionResult",
    "attach_public_key",
    "decrypt",
    "decrypt_submission",
    "encrypt_submission",
    "generate_keypair",
    "key_needs_passphrase",
    "load_private_key",
    "public_key_base64",
    "read_passphrase_file",
]

# --- Names and limits
# --------------------------------------------------------------------------------------------
COLLECT_NS = "http://www.opendatakit.org/xforms/encrypted"
OPENROSA_NS = "http://openrosa.org/xforms"
LOG_NAME = "decrypt-log.csv"
LOG_COLUMNS = ("instance_id", "form_id", "version", "source", "status", "reason_code", "message")
STAMP_XATTR = "user.migkit.decrypt"  # what an output folder holds, as an extended attribute (Linux)
STAMP_NAME = ".migkit-decrypt.json"  # the same as a dot-file where there are no extended attributes
PARTIAL_DIR = ".migkit-partial"  # work folders inside OUT, renamed into place when complete
CONFLICT_SEPARATOR = "__"  # second submission with a known instanceID but other content: OUT/<id>__2
AES_KEY_BYTES = 32
BLOCK = 16
CHUNK_BYTES = 1 << 20
# Manifests are a few KB (one line per media file); anything far larger is not a manifest.
MANIFEST_MAX_BYTES = 1 << 20
# Plaintext (never finalised) instances are parsed to find their instanceID; household instances stay far
# below.
PLAINTEXT_XML_MAX_BYTES = 64 << 20
# Element caps: an 8192-bit RSA block is 1,368 base64 characters.
BASE64_MAX_CHARS = 2048
ID_MAX_CHARS = 512
NAME_MAX_BYTES = 255  # file-name limit of ext4, NTFS and APFS
MEDIA_MAX_FILES = 2000
ZIP_MAX_MEMBERS = 1_000_000
ZIP_MAX_TOTAL_BYTES = 200 << 30
# Central managed keys (central-backend lib/util/crypto.js): PBKDF2-HMAC-SHA256, 128,000 rounds, 32-byte key.
CENTRAL_PBKDF2_ROUNDS = 128_000
KEY_SIZES = (2048, 3072, 4096)
RSA_BLOCK_SIZES = frozenset({128, 256, 384, 512, 768, 1024})  # wrapped-key lengths of 1024..8192-bit keys

# --- Issue codes
# -------------------------------------------------------------------------------------------------
KEY_UNREADABLE = define("key.unreadable", "The private key file cannot be read as an RSA private key")
KEY_PUBLIC_GIVEN = define(
    "key.public_given", "A public key or certificate was given where the private key is needed"
)
KEY_PASSPHRASE_NEEDED = define(
    "key.passphrase_needed", "The private key is protected and no passphrase was given"
)
KEY_PASSPHRASE_WRONG = define("key.passphrase_wrong", "The passphrase does not open the private key")
KEY_EXISTS = define("key.exists", "A key file already exists; keys are never overwritten")
KEY_BAD_SIZE = define("key.bad_size", "Unsupported RSA key size")
FORM_NO_WORKBOOK = define("keys.form_unreadable", "The XLSForm cannot be opened as an .xlsx workbook")

WRONG_KEY = define("decrypt.wrong_key", "The submission was encrypted for a different public key")
KEY_BLOCK_CORRUPT = define("decrypt.key_corrupt", "The wrapped AES key is damaged")
XML_MISSING = define("decrypt.xml_missing", "The encrypted submission.xml listed in the manifest is missing")
XML_CORRUPT = define(
    "decrypt.xml_corrupt", "The encrypted submission.xml does not decrypt (damaged or truncated)"
)
MANIFEST_INVALID = define("decrypt.manifest_invalid", "The submission manifest cannot be read")
MANIFEST_UNSAFE = define("decrypt.manifest_unsafe", "The manifest asks for something unsafe and was refused")
MEDIA_MISSING = define("decrypt.media_missing", "A media file listed in the manifest is missing")
MEDIA_CORRUPT = define("decrypt.media_corrupt", "A media file does not decrypt (damaged or truncated)")
SIGNATURE_MISMATCH = define(
    "decrypt.signature_mismatch", "Decrypted, but the signature does not match the files"
)
SIGNATURE_UNVERIFIABLE = define("decrypt.signature_unverifiable", "The signature element cannot be read")
PLAINTEXT = define("decrypt.plaintext", "The submission is not encrypted and was copied through")
DUPLICATE = define("decrypt.duplicate", "The same submission was already decrypted")
CONFLICT = define("decrypt.conflict", "Another submission with the same instanceID but other content exists")
ALREADY_DONE = define("decrypt.already_done", "Decrypted in an earlier run; outputs verified and kept")
ZIP_UNSAFE = define("decrypt.zip_unsafe_member", "A zip member would land outside the extraction folder")
MGF1_SHA1 = define(
    "decrypt.mgf1_sha1", "The AES key was wrapped with OAEP MGF1-SHA1 (SunJCE-style encryptor)"
)
INTERNAL_ERROR = define("decrypt.internal_error", "migkit failed on this submission; the run went on")
ENVELOPE_REPAIRED = define(
    "decrypt.envelope_repaired", "The manifest was not well-formed XML and was repaired"
)

# Rules that recover a signature (recorded as reason code decrypt.recovered.<rule>).
RULES: dict[str, str] = {
    "empty_version_absent": "the empty version was left out of the signature (Enketo, valigetta)",
    "empty_version_line": "the empty version was kept as an empty signature line (Collect)",
    "names_with_enc": "media names were signed with their .enc suffix",
    "enketo_legacy_hash": (
        "MD5 taken over UTF-16 code units instead of UTF-8 bytes (Enketo before 2025-08, enketo/enketo#1421)"
    ),
    "root_instance_id": "the instanceID of the manifest's root attribute was used (valigetta order)",
    "meta_instance_id": "the instanceID of meta/instanceID was used (Briefcase order)",
    "enketo_iv_overflow": (
        "IV bytes were incremented past 255 without wrapping (Enketo encryptor.js Seed, node-forge)"
    ),
    "enketo_legacy_seed": (
        "the IV seed hashed a non-ASCII instanceID as UTF-16 code units (Enketo before 2025-08)"
    ),
}
for _rule, _text in RULES.items():
    define(f"decrypt.recovered.{_rule}", f"Signature verified after allowing for: {_text}")

SIGNATURE_CAUSES = (
    "exported anyway, as Briefcase does. A mismatch means the files are not exactly what the device signed: "
    "a file "
    "was changed, re-encoded or swapped after encryption, the manifest's instanceID or file list was edited, "
    "or the "
    "encryptor computed the signature in a way migkit does not know. Compare the answers with the field team "
    "before using them"
)


class Status(StrEnum):
    OK = "ok"
    SIGNATURE_INVALID = "signature_invalid"
    INCOMPLETE = "incomplete"
    PLAINTEXT = "plaintext"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    FAILED = "failed"


GOOD_STATUSES = frozenset({Status.OK, Status.PLAINTEXT, Status.DUPLICATE})


# --- Results
# -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubmissionResult:
    """One row of the decrypt log: what happened to one submission found in the inputs."""

    instance_id: str
    form_id: str
    version: str
    source: str
    status: Status
    reason_code: str
    message: str
    folder: str = ""  # output folder name inside OUT, "" when nothing was written

    def row(self) -> dict[str, str]:
        """The log columns (no output folder), as written to decrypt-log.csv and printed by --json."""
        return {name: str(getattr(self, name)) for name in LOG_COLUMNS}

    @property
    def good(self) -> bool:
        return self.status in GOOD_STATUSES


@dataclass(frozen=True)
class DecryptResult:
    """The outcome of a decrypt run: counts by status, the log path and (unless not kept) every row."""

    out_dir: Path
    log_path: Path
    counts: dict[str, int]
    submissions: tuple[SubmissionResult, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """True when every submission is ok, plaintext or a duplicate."""
        return all(self.counts.get(str(s), 0) == 0 for s in Status if s not in GOOD_STATUSES)


@dataclass(frozen=True)
class LoadedKey:
    """A private key ready for decryption. `kind` says where it came from; the key itself is never printed."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    kind: str  # "pkcs1", "pkcs8", "pkcs8-encrypted", "pkcs1-encrypted", "der", "central-managed"
    bits: int

    def private_der(self) -> bytes:
        """Unencrypted PKCS#8 DER, to hand the key to worker processes (never written to disk)."""
        return self.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass(frozen=True)
class KeyPairResult:
    private_path: Path
    public_path: Path
    public_key_base64: str  # the one-line value of the XLSForm settings column public_key
    bits: int
    encrypted: bool


@dataclass(frozen=True)
class AttachResult:
    form: Path
    public_key_base64: str
    replaced: bool  # True when the settings sheet already had a (different) public_key


@dataclass(frozen=True)
class EncryptedSubmission:
    """What `encrypt_submission` wrote: the manifest and the `.enc` files, in IV order."""

    manifest: Path
    files: tuple[Path, ...]
    instance_id: str


# ============================================================================================================
# Keys
# ============================================================================================================
def read_passphrase_file(path: Path) -> bytes:
    """Read a passphrase from a file: its bytes without one trailing newline (LF or CRLF).

    Parameters:
        path: the file; it should be readable by its owner only.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ToolkitError(
            error(INPUT_MISSING, f"cannot read the passphrase file: {exc.strerror}", file=str(path))
        ) from None
    data = data.removeprefix(codecs.BOM_UTF8)
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data.removesuffix(b"\n")


def _as_bytes(passphrase: bytes | str | None) -> bytes | None:
    if passphrase is None:
        return None
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)


def _decode_text(raw: bytes) -> str:
    """Key files saved by Windows Notepad as "Unicode" are UTF-16; others may carry a UTF-8 BOM."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    if len(raw) >= 2 and raw[0] != 0 and raw[1] == 0:
        return raw.decode("utf-16-le")
    if len(raw) >= 2 and raw[0] == 0 and raw[1] != 0:
        return raw.decode("utf-16-be")
    return raw.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="replace")


_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def _pem_block(text: str) -> tuple[str, bytes] | None:
    """The first PEM block, rebuilt with clean LF line ends: (label, pem bytes)."""
    match = _PEM_RE.search(text)
    if match is None:
        return None
    label = match.group(1)
    lines = [line.strip() for line in match.group(2).splitlines() if line.strip()]
    headers = [line for line in lines if ":" in line]
    body = [line for line in lines if ":" not in line]
    # Legacy encrypted PEM (Proc-Type/DEK-Info headers) needs a blank line before the base64 body.
    middle = [*headers, "", *body] if headers else body
    pem = "\n".join([f"-----BEGIN {label}-----", *middle, f"-----END {label}-----", ""])
    return label, pem.encode("ascii", errors="replace")


def _key_error(code: str, message: str, path: Path) -> ToolkitError:
    return ToolkitError(error(code, message, file=str(path)), EXIT_CANNOT_RUN)


def _read_key_file(path: Path) -> bytes:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise _key_error(INPUT_MISSING, f"cannot read the key file: {exc.strerror}.", path) from None
    if len(raw) > 1 << 20:
        raise _key_error(
            KEY_UNREADABLE, "this file is too large to be a key file; give the private key .pem.", path
        )
    return raw


def key_needs_passphrase(path: Path) -> bool:
    """True when the key file is an encrypted PEM or a Central managed-key record (both need a passphrase).

    Parameters:
        path: the key file given to `migkit decrypt --key`.
    """
    text = _decode_text(_read_key_file(path))
    if text.lstrip().startswith("{"):
        return True
    block = _pem_block(text)
    if block is None:
        return False
    label, pem = block
    return label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in pem


def load_private_key(path: Path, *, passphrase: bytes | str | None = None) -> LoadedKey:
    """Load an RSA private key: PEM (PKCS#1 or PKCS#8, passphrase-protected or not), DER, or a Central
    managed-key record (JSON with pubkey/privkey/salt/iv).

    UTF-16 files (Notepad "Unicode"), a UTF-8 BOM, CRLF or CR line ends, indentation and notes around the PEM
    block are tolerated. Raises `ToolkitError` (exit code 3) with a message that says what to do.

    Parameters:
        path: the key file.
        passphrase: for encrypted PEMs and Central records; str is encoded as UTF-8.
    """
    path = Path(path)
    raw = _read_key_file(path)
    secret = _as_bytes(passphrase)
    text = _decode_text(raw)
    if text.lstrip().startswith("{"):
        return _load_central_record(text, secret, path)
    block = _pem_block(text)
    if block is None:
        try:
            key = serialization.load_der_private_key(raw, password=secret or None)
        except (ValueError, TypeError):
            raise _key_error(
                KEY_UNREADABLE,
                "no PEM private key found in this file (expected '-----BEGIN PRIVATE KEY-----' or "
                "'-----BEGIN RSA PRIVATE KEY-----'). Give the private key you made with `migkit keys new` or "
                "openssl.",
                path,
            ) from None
        return _checked(key, "der", path)
    label, pem = block
    if label in {"PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE"}:
        raise _key_error(
            KEY_PUBLIC_GIVEN,
            f"this is a {label.lower()}, which can only encrypt. Give the matching private key "
            "(private.pem).",
            path,
        )
    encrypted = label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in pem
    if encrypted and not secret:
        raise _key_error(
            KEY_PASSPHRASE_NEEDED,
            f"this private key is protected by a passphrase; give --passphrase-file or set {PASSPHRASE_ENV}.",
            path,
        )
    try:
        key = serialization.load_pem_private_key(pem, password=secret if encrypted else None)
    except ValueError:
        if encrypted:
            raise _key_error(
                KEY_PASSPHRASE_WRONG, "the passphrase is wrong for this private key.", path
            ) from None
        raise _key_error(
            KEY_UNREADABLE, "the PEM block is damaged and cannot be read as a private key.", path
        ) from None
    except TypeError:
        raise _key_error(KEY_UNREADABLE, "the PEM block cannot be read as a private key.", path) from None
    kind = {"RSA PRIVATE KEY": "pkcs1", "PRIVATE KEY": "pkcs8", "ENCRYPTED PRIVATE KEY": "pkcs8"}.get(
        label, label
    )
    return _checked(key, kind + ("-encrypted" if encrypted else ""), path)


def _checked(key: Any, kind: str, path: Path) -> LoadedKey:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise _key_error(KEY_UNREADABLE, "this is not an RSA private key; ODK encryption uses RSA.", path)
    return LoadedKey(private_key=key, kind=kind, bits=key.key_size)


def _b64(value: Any, what: str, path: Path) -> bytes:
    if not isinstance(value, str):
        raise _key_error(KEY_UNREADABLE, f"the Central key record has no '{what}' text.", path)
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        raise _key_error(KEY_UNREADABLE, f"the Central key record's '{what}' is not base64.", path) from None


def _load_central_record(text: str, secret: bytes | None, path: Path) -> LoadedKey:
    """Central "managed encryption" (central-backend lib/util/crypto.js getPrivate): the PEM is AES-256-CBC
    encrypted with a PBKDF2-HMAC-SHA256 key (128,000 rounds) over the passphrase."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        raise _key_error(KEY_UNREADABLE, "the file starts like JSON but is not valid JSON.", path) from None
    if isinstance(record, dict) and "private" in record and "privkey" not in record:
        record = record["private"]  # a whole row of Central's `keys` table
        if isinstance(record, str):
            try:
                record = json.loads(record)
            except json.JSONDecodeError:
                raise _key_error(KEY_UNREADABLE, "the record's 'private' column is not JSON.", path) from None
    if not isinstance(record, dict) or "privkey" not in record:
        raise _key_error(
            KEY_UNREADABLE, "this JSON is not a Central managed-key record (pubkey, privkey, salt, iv).", path
        )
    if not secret:
        raise _key_error(
            KEY_PASSPHRASE_NEEDED,
            "a Central managed key needs the project passphrase; give --passphrase-file or set "
            f"{PASSPHRASE_ENV}.",
            path,
        )
    salt, iv, ciphertext = (
        _b64(record.get("salt"), "salt", path),
        _b64(record.get("iv"), "iv", path),
        _b64(record.get("privkey"), "privkey", path),
    )
    # Central reads salt and iv into 16-byte buffers (Buffer.alloc(16, x, 'base64')).
    salt, iv = salt[:16].ljust(16, b"\0"), iv[:16].ljust(16, b"\0")
    wrong = _key_error(KEY_PASSPHRASE_WRONG, "the passphrase is wrong for this Central managed key.", path)
    if not ciphertext or len(ciphertext) % BLOCK:
        raise _key_error(KEY_UNREADABLE, "the record's privkey has a damaged length.", path)
    wrapping = hashlib.pbkdf2_hmac("sha256", secret, salt, CENTRAL_PBKDF2_ROUNDS, 32)
    decryptor = Cipher(algorithms.AES(wrapping), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    plain = _strip_pkcs7(padded)
    if plain is None:
        raise wrong
    block = _pem_block(plain.decode("latin-1"))
    if block is None:
        raise wrong
    try:
        key = serialization.load_pem_private_key(block[1], password=None)
    except (ValueError, TypeError):
        raise wrong from None
    loaded = _checked(key, "central-managed", path)
    if isinstance(record.get("pubkey"), str):
        expected = _b64(record["pubkey"], "pubkey", path)
        ours = loaded.private_key.public_key()
        if b"BEGIN PUBLIC KEY" in expected:
            same = serialization.load_pem_public_key(expected).public_numbers() == ours.public_numbers()  # type: ignore[union-attr]
        else:
            same = expected == ours.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        if not same:
            raise wrong
    return loaded


def public_key_base64(key: rsa.RSAPublicKey | rsa.RSAPrivateKey | Path) -> str:
    """The one-line base64 SubjectPublicKeyInfo that XLSForm's `public_key` setting takes.

    Parameters:
        key: a public or private key object, or the path of a public-key PEM.
    """
    if isinstance(key, Path | str):
        text = _decode_text(_read_key_file(Path(key)))
        block = _pem_block(text)
        if block is None or block[0] not in {"PUBLIC KEY", "RSA PUBLIC KEY"}:
            raise _key_error(KEY_UNREADABLE, "no '-----BEGIN PUBLIC KEY-----' block in this file.", Path(key))
        loaded = serialization.load_pem_public_key(block[1])
        if not isinstance(loaded, rsa.RSAPublicKey):
            raise _key_error(KEY_UNREADABLE, "this is not an RSA public key.", Path(key))
        key = loaded
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a new file atomically and refuse to replace an existing one (link() fails on existing names)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def generate_keypair(
    out_dir: Path, *, bits: int = 2048, passphrase: bytes | str | None = None
) -> KeyPairResult:
    """Make an RSA key pair: OUT/private.pem (PKCS#8, mode 0600, encrypted when a passphrase is given) and
    OUT/public.pem. Existing files are never overwritten.

    Parameters:
        out_dir: folder for the two files (created if missing).
        bits: 2048, 3072 or 4096.
        passphrase: protects private.pem (PKCS#8 with the best encryption `cryptography` offers).
    """
    if bits not in KEY_SIZES:
        raise ToolkitError(
            error(KEY_BAD_SIZE, f"RSA key size {bits} is not one of {KEY_SIZES}."), EXIT_CANNOT_RUN
        )
    out_dir = Path(out_dir)
    private_path, public_path = out_dir / "private.pem", out_dir / "public.pem"
    for existing in (private_path, public_path):
        if existing.exists():
            raise ToolkitError(
                error(
                    KEY_EXISTS,
                    "exists already; keys are never overwritten. Choose another --out folder "
                    "(losing a private key makes its submissions undecryptable).",
                    file=str(existing),
                ),
                EXIT_CANNOT_RUN,
            )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"cannot create the folder: {exc.strerror}", file=str(out_dir))
        ) from None
    secret = _as_bytes(passphrase)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        _write_new(private_path, private_pem, 0o600)
        _write_new(public_path, public_pem, 0o644)
    except FileExistsError as exc:
        raise ToolkitError(
            error(KEY_EXISTS, "appeared while writing; nothing overwritten.", file=str(exc.filename))
        ) from None
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"cannot write the key: {exc.strerror}", file=str(out_dir))
        ) from None
    return KeyPairResult(private_path, public_path, public_key_base64(key), bits, bool(secret))


def attach_public_key(form: Path, *, public_pem: Path) -> AttachResult:
    """Set `public_key` on the settings sheet of an XLSForm, keeping the other sheets and formatting (as far
    as
    openpyxl keeps them). The workbook is written to a temporary file and renamed over the original.

    Parameters:
        form: the .xlsx XLSForm.
        public_pem: the public key PEM made by `generate_keypair`.
    """
    from openpyxl import load_workbook

    form = Path(form)
    value = public_key_base64(Path(public_pem))
    try:
        workbook = load_workbook(form)
    except Exception as exc:  # openpyxl raises many kinds on non-xlsx input
        raise ToolkitError(
            error(
                FORM_NO_WORKBOOK,
                f"cannot open as .xlsx ({type(exc).__name__}); save the form as .xlsx.",
                file=str(form),
            ),
            EXIT_CANNOT_RUN,
        ) from None
    sheet = next((ws for ws in workbook.worksheets if ws.title.strip().lower() == "settings"), None)
    if sheet is None:
        sheet = workbook.create_sheet("settings")
    column = None
    for cell in sheet[1]:
        if isinstance(cell.value, str) and cell.value.strip().lower() == "public_key":
            column = cell.column
            break
    if column is None:
        column = sheet.max_column + 1 if sheet.max_row > 1 or sheet.cell(1, 1).value is not None else 1
        sheet.cell(row=1, column=column, value="public_key")
    old = sheet.cell(row=2, column=column).value
    sheet.cell(row=2, column=column, value=value)
    fd, tmp = tempfile.mkstemp(prefix=f".{form.name}.", suffix=".xlsx", dir=form.parent)
    os.close(fd)
    try:
        workbook.save(tmp)
        with contextlib.suppress(OSError):
            os.chmod(tmp, stat.S_IMODE(form.stat().st_mode))
        os.replace(tmp, form)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return AttachResult(form, value, replaced=bool(old) and old != value)


# ============================================================================================================
# Primitives: OAEP, IVs, AES-CFB with PKCS#7, MD5 as node-forge computes it
# ============================================================================================================
_OAEP_SHA256 = asym_padding.OAEP(
    mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)
# SunJCE's "RSA/ECB/OAEPWithSHA-256AndMGF1Padding" keeps MGF1 on SHA-1 (spec 1.1); OAEP's own checks make the
# retry unambiguous.
_OAEP_MGF1_SHA1 = asym_padding.OAEP(
    mgf=asym_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA256(), label=None
)


def _rsa_unwrap(key: rsa.RSAPrivateKey, block: bytes) -> tuple[bytes, bool] | None:
    """RSA-OAEP decrypt: (plaintext, used MGF1-SHA1 fallback) or None when neither variant fits."""
    if len(block) != (key.key_size + 7) // 8:
        return None
    try:
        return key.decrypt(block, _OAEP_SHA256), False
    except ValueError:
        pass
    try:
        return key.decrypt(block, _OAEP_MGF1_SHA1), True
    except ValueError:
        return None


def _rsa_wrap(public: rsa.RSAPublicKey, data: bytes) -> str:
    return base64.b64encode(public.encrypt(data, _OAEP_SHA256)).decode("ascii")


def iv_seed(instance_id: str, aes_key: bytes) -> bytes:
    """MD5 of the instanceID as UTF-8 followed by the raw AES key (Collect `EncryptedFormInformation`)."""
    return hashlib.md5(instance_id.encode("utf-8") + aes_key).digest()


def _increments(index: int) -> list[int]:
    """How often each seed byte has been raised once the IV of file `index` is taken (round-robin,
    cumulative)."""
    full, rest = divmod(index + 1, BLOCK)
    return [full + (1 if position < rest else 0) for position in range(BLOCK)]


@functools.lru_cache(maxsize=64)
def _increments_word(index: int) -> int:
    return int.from_bytes(bytes(n & 0xFF for n in _increments(index)), "big")


_LOW_SEVEN_BITS = int.from_bytes(b"\x7f" * BLOCK, "big")
_HIGH_BITS = int.from_bytes(b"\x80" * BLOCK, "big")


def collect_iv(seed: bytes, index: int) -> bytes:
    """IV of file `index` (0-based, manifest order) as Collect, Briefcase and Central derive it: each seed
    byte raised on its own, wrapping at 256 (the 16 byte additions are done at once, without carries between
    bytes)."""
    a, b = int.from_bytes(seed, "big"), _increments_word(index)
    return (((a & _LOW_SEVEN_BITS) + (b & _LOW_SEVEN_BITS)) ^ ((a ^ b) & _HIGH_BITS)).to_bytes(BLOCK, "big")


def enketo_iv(seed: bytes, index: int) -> bytes:
    """IV as Enketo's `Seed` hands it to node-forge: the seed values are plain JS numbers that are incremented
    without wrapping at 255, and forge packs them into 32-bit words with `c0<<24 ^ c1<<16 ^ c2<<8 ^ c3`, so a
    byte that reached 256 becomes 0 and flips the lowest bit of the byte before it."""
    values = [b + n for b, n in zip(seed, _increments(index), strict=True)]
    out = bytearray()
    for w in range(0, BLOCK, 4):
        c0, c1, c2, c3 = values[w : w + 4]
        word = ((c0 << 24) ^ (c1 << 16) ^ (c2 << 8) ^ c3) & 0xFFFFFFFF
        out += word.to_bytes(4, "big")
    return bytes(out)


_MD5_SHIFTS = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4
_MD5_K = [int(abs(math.sin(i + 1)) * 2**32) & 0xFFFFFFFF for i in range(64)]
_M32 = 0xFFFFFFFF


def forge_md5(units: Sequence[int]) -> bytes:
    """MD5 as node-forge computes it over a JS string given without an encoding: each UTF-16 code unit is
    taken
    as one "byte", and words are packed with `c0 ^ c1<<8 ^ c2<<16 ^ c3<<24`, so units above 0xFF bleed into
    the
    neighbouring bytes (enketo/enketo#1421, #1608). For code units <= 0xFF this is plain MD5."""
    length = len(units)
    stream = list(units) + [0x80] + [0] * ((55 - length) % 64)
    stream += list(struct.pack("<Q", (length * 8) & 0xFFFFFFFFFFFFFFFF))
    words = [
        (stream[i] ^ (stream[i + 1] << 8) ^ (stream[i + 2] << 16) ^ (stream[i + 3] << 24)) & _M32
        for i in range(0, len(stream), 4)
    ]
    a0, b0, c0, d0 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for start in range(0, len(words), 16):
        m = words[start : start + 16]
        a, b, c, d = a0, b0, c0, d0
        for i in range(64):
            if i < 16:
                f, g = (b & c) | (~b & _M32 & d), i
            elif i < 32:
                f, g = (d & b) | (~d & _M32 & c), (5 * i + 1) % 16
            elif i < 48:
                f, g = b ^ c ^ d, (3 * i + 5) % 16
            else:
                f, g = c ^ (b | (~d & _M32)), (7 * i) % 16
            f = (f + a + _MD5_K[i] + m[g]) & _M32
            a, d, c = d, c, b
            b = (b + (((f << _MD5_SHIFTS[i]) | (f >> (32 - _MD5_SHIFTS[i]))) & _M32)) & _M32
        a0, b0, c0, d0 = (a0 + a) & _M32, (b0 + b) & _M32, (c0 + c) & _M32, (d0 + d) & _M32
    return struct.pack("<4I", a0, b0, c0, d0)


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-le", errors="surrogatepass")
    return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]


def enketo_legacy_seed(instance_id: str, aes_key: bytes) -> bytes:
    """The IV seed of Enketo before 2025-08: MD5 over the JS string instanceId + key without UTF-8
    encoding."""
    return forge_md5(_utf16_units(instance_id) + list(aes_key))


def _strip_pkcs7(data: bytes) -> bytes | None:
    """Strict PKCS#7 check (pad 1..16, all pad bytes equal); None when it fails."""
    if not data or len(data) % BLOCK:
        return None
    pad = data[-1]
    if pad < 1 or pad > BLOCK or data[-pad:] != bytes([pad]) * pad:
        return None
    return data[:-pad]


class _FileProblem(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # "missing", "truncated", "padding"
        self.detail = detail


def _decrypt_file(src: str, dst: str, aes_key: bytes, iv: bytes) -> tuple[str, str]:
    """Decrypt one `.enc` file to `dst`, streaming. Returns the MD5 hex of the plaintext (what the signature
    covers) and the fingerprint of the ciphertext ("size:sha256", what re-runs compare), taken from the same
    read."""
    try:
        fd = os.open(src, os.O_RDONLY | _O_BINARY)
    except OSError:
        raise _FileProblem("missing", "cannot be read") from None
    try:
        size = os.fstat(fd).st_size
        if size == 0 or size % BLOCK:
            raise _FileProblem(
                "truncated", f"is {size} bytes, not a multiple of 16: the file was cut short (incomplete copy?)"
            )
        decryptor = Cipher(algorithms.AES(aes_key), _CFB(iv)).decryptor()
        if size <= CHUNK_BYTES:  # household XML, audit logs and most photos: one read, one write
            ciphertext = _read_all(fd, size)
            fingerprint = f"{len(ciphertext)}:{hashlib.sha256(ciphertext).hexdigest()}"
            padded = decryptor.update(ciphertext)
            if len(ciphertext) % BLOCK or _strip_pkcs7(padded[-BLOCK:]) is None:  # the pad is in the last block
                raise _FileProblem("padding", "does not decrypt: its padding is invalid")
            plain = memoryview(padded)[: len(padded) - padded[-1]]  # no copy of the plaintext
            _write_new_file(dst, plain)
            return hashlib.md5(plain).hexdigest(), fingerprint
        digest, seen, read = hashlib.md5(), hashlib.sha256(), 0
        with open(fd, "rb", closefd=False) as source, open(dst, "wb") as target:
            held = b""
            while chunk := source.read(CHUNK_BYTES):
                seen.update(chunk)
                read += len(chunk)
                plain = held + decryptor.update(chunk)
                held, plain = plain[-BLOCK:], plain[:-BLOCK]
                digest.update(plain)
                target.write(plain)
            last = _strip_pkcs7(held)
            if last is None:
                raise _FileProblem("padding", "does not decrypt: its padding is invalid")
            digest.update(last)
            target.write(last)
        return digest.hexdigest(), f"{read}:{seen.hexdigest()}"
    finally:
        os.close(fd)


_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows


def _read_all(fd: int, size: int, limit: int | None = None) -> bytes:
    """Read an open file known to be small with plain system calls (no buffering layer); stop once more than
    `limit` bytes have come."""
    chunks, total = [], 0
    while chunk := os.read(fd, max(size, 1)):
        chunks.append(chunk)
        total += len(chunk)
        if (total == size and len(chunks) == 1) or (limit is not None and total > limit):
            break  # the usual case: all of it in one call
    return b"".join(chunks)


def _write_new_file(path: str, data: bytes | memoryview) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _encrypt_bytes(data: bytes, aes_key: bytes, iv: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), _CFB(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


# ============================================================================================================
# Collect-compatible encryption (tests, simulate, bench)
# ============================================================================================================
def _signature_text(
    form_id: str,
    version: str | None,
    encrypted_key_b64: str,
    instance_id: str,
    files: Sequence[tuple[str, str]],
) -> str:
    """The text whose MD5 is signed: one line per element, each ending in a newline (Collect)."""
    lines = [form_id]
    if version is not None:
        lines.append(version)
    lines += [encrypted_key_b64, instance_id]
    lines += [f"{name}::{md5hex}" for name, md5hex in files]
    return "".join(line + "\n" for line in lines)


def _xml_escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;") if attribute else text


def encrypt_submission(
    instance_xml: bytes,
    *,
    public_key: rsa.RSAPublicKey,
    form_id: str,
    instance_id: str,
    out_dir: Path,
    version: str | None = None,
    media: Sequence[tuple[str, bytes]] = (),
    manifest_name: str = "submission.xml",
    aes_key: bytes | None = None,
) -> EncryptedSubmission:
    """Encrypt one submission exactly as ODK Collect does and write its files into `out_dir`.

    Writes `<media>.enc` (IV indices 0..n-1 in the order given), `submission.xml.enc` (IV index n) and the
    manifest
    in Collect's layout (namespace `http://www.opendatakit.org/xforms/encrypted`, `orx:meta`, one `<media>`
    per
    file, no XML declaration) with a valid element signature.

    Parameters:
        instance_xml: the plaintext submission XML (bytes as they should decrypt).
        public_key: the form's RSA public key.
        form_id: the form id (root `id` attribute).
        instance_id: the full instanceID, e.g. ``uuid:...``.
        out_dir: folder to write into (created if missing); a tablet instance folder or a Briefcase one.
        version: the form version, or None when the form has none.
        media: (plain file name, content) pairs, in the order Collect found them.
        manifest_name: file name of the manifest (`<instance>.xml` on a tablet, `submission.xml` in storage).
        aes_key: a fixed 32-byte AES key (tests only); random by default.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = aes_key if aes_key is not None else os.urandom(AES_KEY_BYTES)
    if len(key) != AES_KEY_BYTES:
        raise ValueError("aes_key must be 32 bytes")
    wrapped = _rsa_wrap(public_key, key)
    seed = iv_seed(instance_id, key)
    written: list[Path] = []
    signed: list[tuple[str, str]] = []
    media_names: list[str] = []
    for index, (name, content) in enumerate(media):
        if not _plain_name_ok(name):
            raise ValueError(f"media name {name!r} is not a plain file name")
        path = out_dir / f"{name}.enc"
        path.write_bytes(_encrypt_bytes(content, key, collect_iv(seed, index)))
        written.append(path)
        media_names.append(path.name)
        signed.append((name, hashlib.md5(content).hexdigest()))
    xml_path = out_dir / "submission.xml.enc"
    xml_path.write_bytes(_encrypt_bytes(instance_xml, key, collect_iv(seed, len(media))))
    written.append(xml_path)
    signed.append(("submission.xml", hashlib.md5(instance_xml).hexdigest()))
    digest = hashlib.md5(
        _signature_text(form_id, version, wrapped, instance_id, signed).encode("utf-8")
    ).digest()
    signature = _rsa_wrap(public_key, digest)
    version_attr = f' version="{_xml_escape(version, True)}"' if version is not None else ""
    parts = [
        f'<data xmlns="{COLLECT_NS}" id="{_xml_escape(form_id, True)}"{version_attr} encrypted="yes">',
        f"<base64EncryptedKey>{wrapped}</base64EncryptedKey>",
        f'<orx:meta xmlns:orx="{OPENROSA_NS}">'
        f"<orx:instanceID>{_xml_escape(instance_id)}</orx:instanceID></orx:meta>",
        *(f"<media><file>{_xml_escape(name)}</file></media>" for name in media_names),
        "<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>",
        f"<base64EncryptedElementSignature>{signature}</base64EncryptedElementSignature>",
        "</data>",
    ]
    manifest = out_dir / manifest_name
    manifest.write_bytes("".join(parts).encode("utf-8"))
    return EncryptedSubmission(manifest=manifest, files=tuple(written), instance_id=instance_id)


# ============================================================================================================
# Reading manifests and plaintext instances (untrusted input from devices in the field)
# ============================================================================================================
class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}
_DOCTYPE_RE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)
# Central's simulator writes `encrypted="yes", version="..."` (central-backend test/util/crypto-odk.js).
_STRAY_COMMA_RE = re.compile(rb'("|\')\s*,(\s+[A-Za-z_][\w.:-]*\s*=)')


_PARSER: etree.XMLParser | None = None


def _parse_xml(data: bytes) -> tuple[etree._Element, bool]:
    """Parse untrusted XML; refuse any DOCTYPE or entity declaration. Returns (root, repaired)."""
    global _PARSER  # noqa: PLW0603 - one parser per process: making one costs more than parsing a manifest
    if _DOCTYPE_RE.search(data):
        raise _Refused(MANIFEST_UNSAFE, "contains a DOCTYPE or ENTITY declaration, which is never accepted")
    if _PARSER is None:
        _PARSER = etree.XMLParser(**_PARSER_OPTIONS)
    parser = _PARSER
    try:
        root = etree.fromstring(data, parser)
        repaired = False
    except etree.XMLSyntaxError as exc:
        head_end = data.find(b">", data.find(b"<data"))
        fixed = _STRAY_COMMA_RE.sub(rb"\1\2", data[: head_end + 1], count=4) + data[head_end + 1 :]
        if head_end < 0 or fixed == data:
            raise _Refused(MANIFEST_INVALID, f"is not well-formed XML ({exc.msg})") from None
        try:
            root = etree.fromstring(fixed, etree.XMLParser(**_PARSER_OPTIONS))
        except etree.XMLSyntaxError:
            raise _Refused(MANIFEST_INVALID, f"is not well-formed XML ({exc.msg})") from None
        repaired = True
    if root.getroottree().docinfo.doctype:
        raise _Refused(MANIFEST_UNSAFE, "contains a DOCTYPE declaration, which is never accepted")
    return root, repaired


def _local(element: etree._Element) -> str:
    tag = element.tag
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _text(element: etree._Element | None) -> str:
    if element is None:
        return ""
    if len(element):  # mixed content (not written by any encryptor): all text, in order
        return "".join(element.itertext()).strip()
    return (element.text or "").strip()


def _attr(root: etree._Element, name: str) -> str | None:
    """Attribute by local name, ignoring namespaces."""
    value = root.get(name)
    if value is not None:
        return str(value)
    for key, value in root.attrib.items():
        if key.rpartition("}")[2] == name:
            return str(value)
    return None


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Path separators, parent references, control characters (NUL included) and drive letters ("C:x", "C:\\x").
_UNSAFE_NAME_RE = re.compile(r"[\x00-\x1f\x7f/\\]|\.\.|^[A-Za-z]:")


def _plain_name_ok(name: str) -> bool:
    """A plain file name: no separators, no '..', not absolute, no NUL or control characters, not too long."""
    return bool(
        name
        and not _UNSAFE_NAME_RE.search(name)
        and len(name.encode("utf-8")) <= NAME_MAX_BYTES
        and name != STAMP_NAME
    )


@dataclass(frozen=True)
class _Manifest:
    form_id: str
    version: str | None
    encrypted_key: str
    meta_instance_id: str
    root_instance_id: str
    media: tuple[str, ...]
    xml_file: str
    signature: str
    repaired: bool

    @property
    def instance_id(self) -> str:
        """Briefcase order: the first instanceID element, else the root attribute (spec 1.5)."""
        return self.meta_instance_id or self.root_instance_id


def _capped(value: str, limit: int, what: str) -> str:
    if len(value) > limit:
        raise _Refused(MANIFEST_UNSAFE, f"{what} is {len(value)} characters long (limit {limit}); refused")
    return value


def _read_manifest(root: etree._Element, repaired: bool) -> _Manifest:
    children: dict[str, etree._Element] = {}
    media: list[str] = []
    meta_id = ""
    # Elements by local name, namespaces ignored (Briefcase XmlElement, Central traverseXml); every
    # <media><file> in document order, including several files in one <media> (briefcase#653).
    for element in root:
        name = _local(element)
        if name == "media":
            media.extend(_text(f) for f in element if _local(f) == "file")
        elif name == "meta":
            if not meta_id:
                meta_id = next((_text(f) for f in element if _local(f) == "instanceID"), "")
        elif name == "instanceID":
            meta_id = meta_id or _text(element)
        elif name not in children:
            children[name] = element
    if len(media) > MEDIA_MAX_FILES:
        raise _Refused(MANIFEST_UNSAFE, f"lists {len(media)} media files (limit {MEDIA_MAX_FILES}); refused")
    for name in media:
        if not _plain_name_ok(name):
            raise _Refused(
                MANIFEST_UNSAFE,
                f"lists a media file {name!r} that is not a plain file name (path separators, '..', absolute "
                "paths "
                "and control characters are refused)",
            )
    xml_file = _text(children.get("encryptedXmlFile")) or "submission.xml.enc"
    if not _plain_name_ok(xml_file):
        raise _Refused(
            MANIFEST_UNSAFE, f"names its encrypted XML {xml_file!r}, which is not a plain file name"
        )
    return _Manifest(
        form_id=_capped(_attr(root, "id") or "", ID_MAX_CHARS, "the form id"),
        version=_capped(v, ID_MAX_CHARS, "the version")
        if (v := _attr(root, "version")) is not None
        else None,
        encrypted_key=_capped(
            _text(children.get("base64EncryptedKey")), BASE64_MAX_CHARS, "base64EncryptedKey"
        ),
        meta_instance_id=_capped(meta_id, ID_MAX_CHARS, "the instanceID"),
        root_instance_id=_capped(_attr(root, "instanceID") or "", ID_MAX_CHARS, "the instanceID attribute"),
        media=tuple(media),
        xml_file=xml_file,
        signature=_capped(
            _text(children.get("base64EncryptedElementSignature")), BASE64_MAX_CHARS, "the signature"
        ),
        repaired=repaired,
    )


def _is_manifest(root: etree._Element) -> bool:
    if (_attr(root, "encrypted") or "").lower() == "yes":
        return True
    return any(_local(child) == "base64EncryptedKey" for child in root)


def _instance_folder(instance_id: str) -> str:
    folder = instance_id.removeprefix("uuid:")
    if not _plain_name_ok(folder):
        raise _Refused(
            MANIFEST_UNSAFE,
            "has an instanceID that cannot be a folder name (path separators, '..' or control characters); "
            "refused",
        )
    return folder


# ============================================================================================================
# Decrypting one submission (runs in worker processes)
# ============================================================================================================
@dataclass(frozen=True)
class _Task:
    path: str  # the XML file on disk
    source: str  # how the log names it (zip members as archive.zip!member)
    out_dir: str


@dataclass(frozen=True)
class _Outcome:
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
) -> None:
    names = [*manifest.media, manifest.xml_file]
    if not os.path.isdir(attempt.folder):  # the first attempt writes straight into the work folder
        os.mkdir(attempt.folder)
    for index, listed in enumerate(names):
        src = paths.get(index)
        if src is None:
            continue
        target_name = "submission.xml" if index == len(manifest.media) else _signed_name(listed)
        dst = os.path.join(attempt.folder, target_name)
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
                text = _signature_text(
                    manifest.form_id, version, manifest.encrypted_key, attempt.instance_id, files
                )
                if hashing == "utf8":
                    digest = hashlib.md5(text.encode("utf-8")).digest()
                    rules = version_rules + name_rules
                else:
                    digest = forge_md5(_utf16_units(text))
                    rules = ("enketo_legacy_hash", *version_rules, *name_rules)
                yield rules, digest


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _content_digest(outputs: Mapping[str, str]) -> str:
    return hashlib.sha256("".join(f"{n}:{m}\n" for n, m in sorted(outputs.items())).encode()).hexdigest()


def _write_stamp(folder: str | Path, stamp: Mapping[str, Any]) -> None:
    """Record what a work folder holds, before it is renamed into place (so it is never seen half-written).

    The record is an extended attribute of the folder where the file system has them (Linux): creating one
    more
    file per submission costs as much as decrypting it on some disks. Elsewhere (or when the attribute does
    not
    fit) it is the dot-file STAMP_NAME inside the folder."""
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


def _read_stamp(folder: str | Path) -> dict[str, Any] | None:
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


def _folder_outputs(folder: Path) -> dict[str, str]:
    """MD5 of every output file of a folder that has no record (copied without extended attributes)."""
    return {
        e.name: _md5_file(Path(e.path)) for e in os.scandir(folder) if e.is_file() and e.name != STAMP_NAME
    }


def _existing_folders(out_dir: str | Path, folder: str) -> Iterator[Path]:
    """OUT/<id>, then the conflict copies OUT/<id>__2, __3, ... that exist."""
    if not os.path.isdir(os.path.join(out_dir, folder)):
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


def _fingerprint(paths: Iterable[str | Path], *, algorithm: str = "sha256") -> dict[str, str]:
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
    return recorded == _fingerprint(paths, algorithm="md5" if md5 else "sha256")


_PARTIAL_COUNTER = itertools.count()


def _new_partial(out_dir: Path | str) -> str:
    partial = os.path.join(out_dir, PARTIAL_DIR, f"{os.getpid()}-{next(_PARTIAL_COUNTER)}")
    os.mkdir(partial)
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


def _already_done(
    out_dir: str | Path, folder: str, manifest_sha: str, inputs: Iterable[str | Path]
) -> tuple[Path | None, Path | None]:
    """Look for an earlier run's output of the same manifest: (verified folder, None) when it is intact and
    the inputs are unchanged, (None, folder to replace) when not, (None, None) when there is none."""
    for existing in _existing_folders(out_dir, folder):
        stamp = _read_stamp(existing)
        if stamp is None or stamp.get("manifest_sha256") != manifest_sha:
            continue
        if _inputs_unchanged(stamp.get("inputs"), inputs) and _verified(existing, stamp):
            return existing, None
        return None, existing
    return None, None


def _process(task: _Task, key: rsa.RSAPrivateKey, files: Mapping[str, Path] | None = None) -> _Outcome:
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
            return _Outcome(
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
        return _Outcome(
            _result(None, source, Status.FAILED, MANIFEST_INVALID, f"cannot be read: {exc.strerror}"),
            "failed",
        )
    looks_like_manifest = b"base64EncryptedKey" in data[:MANIFEST_MAX_BYTES] or b"encrypted=" in data[:4096]
    if looks_like_manifest and size > MANIFEST_MAX_BYTES:
        return _Outcome(
            _result(
                None,
                source,
                Status.FAILED,
                MANIFEST_UNSAFE,
                f"is a manifest of {size} bytes (limit {MANIFEST_MAX_BYTES}); refused",
            ),
            "failed",
        )
    try:
        root, repaired = _parse_xml(data)
    except _Refused as refused:
        if not looks_like_manifest and refused.code == MANIFEST_INVALID and b"instanceID" not in data:
            # Some other broken XML file (not a submission): not ours to report. A damaged instance (it
            # names an instanceID) is reported below.
            return _Outcome(_result(None, source, Status.FAILED, refused.code, refused.message), "none")
        return _Outcome(_result(None, source, Status.FAILED, refused.code, refused.message), "failed")
    if _local(root) == "html":
        return _Outcome(_result(None, source, Status.FAILED, "", "form definition"), "none")  # an XForm
    if not _is_manifest(root):
        return _copy_plaintext(task, root, data)
    manifest: _Manifest | None = None
    try:
        manifest = _read_manifest(root, repaired)
        if not manifest.instance_id:
            raise _Refused(
                MANIFEST_INVALID, "has no instanceID (neither meta/instanceID nor a root attribute)"
            )
        folder = _instance_folder(manifest.instance_id)
        if manifest.root_instance_id:
            _instance_folder(manifest.root_instance_id)
        if not manifest.encrypted_key:
            raise _Refused(MANIFEST_INVALID, "has no base64EncryptedKey")
    except _Refused as refused:
        return _Outcome(
            _result(manifest, source, Status.FAILED, refused.code, f"manifest {refused.message}"), "failed"
        )
    names = [*manifest.media, manifest.xml_file]
    folder_name, file_name = os.path.split(task.path)
    located = {i: _locate(folder_name, listed, file_name, files) for i, listed in enumerate(names)}
    paths = {i: path for i, (path, _) in located.items() if path}
    unfound = {i: why for i, (path, why) in located.items() if not path}
    manifest_sha = hashlib.sha256(data).hexdigest()
    done, replace = _already_done(out_dir, folder, manifest_sha, paths.values())
    if done is not None:
        return _skipped(manifest, source, folder, done)
    return _decrypt_manifest(task, manifest, folder, paths, unfound, key, manifest_sha, replace)


def _skipped(manifest: _Manifest, source: str, folder: str, done: Path) -> _Outcome:
    stamp = _read_stamp(done) or {}
    status = str(stamp.get("status", Status.OK))
    result = _result(
        manifest,
        source,
        Status(status) if status in set(Status) else Status.OK,
        str(stamp.get("reason_code", "")),
        str(stamp.get("message", "")),
    )
    return _Outcome(result, "skipped", folder=folder, existing=done.name, stamp=stamp)


def _decrypt_manifest(
    task: _Task,
    manifest: _Manifest,
    folder: str,
    paths: dict[int, str],
    unfound: dict[int, str],  # manifest position -> why the file was not found
    key: rsa.RSAPrivateKey,
    manifest_sha: str,
    replace: Path | None,
) -> _Outcome:
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
        return _Outcome(
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
            return _Outcome(
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
        return _Outcome(
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
        return _Outcome(
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


def _decrypt_attempts(
    task: _Task,
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
) -> _Outcome:
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
        _run_attempt(manifest, paths, aes_key, seed, rule, attempt)
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
        return _Outcome(
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
            **_fingerprint(paths[i] for i in paths if i not in attempts[0].fingerprints),
            **{os.path.basename(paths[i]): attempts[0].fingerprints[i] for i in attempts[0].fingerprints},
        },
        "outputs": outputs,
        "status": str(status),
        "reason_code": code,
        "message": message,
        "source": source,
    }
    _write_stamp(partial, stamp)
    return _Outcome(
        result,
        "written",
        tmp=str(partial),
        folder=folder,
        digest=_content_digest(outputs),
        existing=str(replace.name) if replace else "",
    )


def _signature_digest(key: rsa.RSAPrivateKey, signature_b64: str) -> bytes | None:
    try:
        block = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    unwrapped = _rsa_unwrap(key, block)
    if unwrapped is None or len(unwrapped[0]) != 16:
        return None
    return unwrapped[0]


def _referenced_media(root: etree._Element, folder: Path, xml_name: str) -> list[Path]:
    """Plaintext instances name their media files as answer values (Collect stores the file name)."""
    values = {(el.text or "").strip() for el in root.iter() if isinstance(el.tag, str) and len(el) == 0}
    found = []
    for name in sorted(v for v in values if v and _plain_name_ok(v) and v != xml_name):
        if not name.endswith((".xml", ".enc")) and _regular(folder / name):
            found.append(folder / name)
    return found


def _copy_plaintext(task: _Task, root: etree._Element, data: bytes) -> _Outcome:
    path, out_dir, source = Path(task.path), Path(task.out_dir), task.source
    meta_id = ""
    for element in root.iter():
        if _local(element) == "instanceID" and element is not root:
            meta_id = _text(element)
            break
    instance_id = meta_id or _attr(root, "instanceID") or ""
    form_id = _attr(root, "id") or ""
    if not instance_id and not form_id:
        return _Outcome(_result(None, source, Status.FAILED, "", "not a submission"), "none")
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
    try:
        folder = (
            _instance_folder(instance_id)
            if instance_id
            else "noid-" + hashlib.sha1(source.encode()).hexdigest()[:12]
        )
    except _Refused as refused:
        return _Outcome(
            _result(m, source, Status.FAILED, refused.code, f"plaintext instance {refused.message}"), "failed"
        )
    media = _referenced_media(root, path.parent, path.name)
    manifest_sha = hashlib.sha256(data).hexdigest()
    inputs = _fingerprint(media)
    done, replace = _already_done(out_dir, folder, manifest_sha, media)
    if done is not None:
        return _skipped(m, source, folder, done)
    partial = Path(_new_partial(out_dir))
    outputs = {"submission.xml": hashlib.md5(data).hexdigest()}
    (partial / "submission.xml").write_bytes(data)
    for media_path in media:
        shutil.copyfile(media_path, partial / media_path.name)
        outputs[media_path.name] = _md5_file(partial / media_path.name)
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
    _write_stamp(partial, stamp)
    return _Outcome(
        _result(m, source, Status.PLAINTEXT, PLAINTEXT, message),
        "written",
        tmp=str(partial),
        folder=folder,
        digest=_content_digest(outputs),
        existing=replace.name if replace else "",
    )


# --- worker processes
# ----------------------------------------------------------------------------------------------
_WORKER_KEY: rsa.RSAPrivateKey | None = None


def _init_worker(private_der: bytes) -> None:
    global _WORKER_KEY  # noqa: PLW0603 - one key per worker process, loaded once
    key = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    _WORKER_KEY = key


def _worker_batch(tasks: Sequence[_Task]) -> list[_Outcome]:
    assert _WORKER_KEY is not None
    return [_safe_process(task, _WORKER_KEY) for task in tasks]


def _safe_process(task: _Task, key: rsa.RSAPrivateKey, files: Mapping[str, Path] | None = None) -> _Outcome:
    try:
        return _process(task, key, files)
    except OSError as exc:
        return _Outcome(
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
        return _Outcome(
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


# ============================================================================================================
# Committing results into OUT (main process: decides duplicate / conflict, renames into place)
# ============================================================================================================
class _Committer:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.this_run: dict[str, str] = {}  # folder name -> source that put or verified it in this run

    def commit(self, outcome: _Outcome) -> SubmissionResult:
        result = outcome.result
        if outcome.kind == "skipped":
            if outcome.existing in self.this_run:
                return self._dup(result, outcome.existing)
            self.this_run[outcome.existing] = result.source
            message = (
                f"already decrypted into {outcome.existing} by an earlier run; outputs verified, skipped"
            )
            if result.message:
                message += f" (earlier result: {result.message})"
            return _replace(
                result,
                message=message,
                folder=outcome.existing,
                reason_code=result.reason_code or ALREADY_DONE,
            )
        if outcome.kind != "written":
            return result
        tmp = Path(outcome.tmp)
        earlier = (_read_stamp(self.out_dir / outcome.existing) or {}) if outcome.existing else {}
        if (
            outcome.existing
            and outcome.existing not in self.this_run
            and not (earlier.get("status") == Status.OK and result.status != Status.OK)
        ):
            # Same manifest as an earlier run whose outputs changed or whose inputs grew: replace atomically,
            # unless this copy has fewer files than what is there (a partial pull of a complete submission).
            # A verified output is never replaced by a worse copy: that one is kept beside it as a conflict.
            target = self.out_dir / outcome.existing
            before = (_read_stamp(target) or {}).get("outputs") or {}
            ours = (_read_stamp(tmp) or {}).get("outputs") or {}
            if result.status == Status.INCOMPLETE and _same_files(before, ours) and set(ours) < set(before):
                shutil.rmtree(tmp, ignore_errors=True)
                return _replace(
                    result,
                    status=Status.DUPLICATE,
                    reason_code=DUPLICATE,
                    folder=target.name,
                    message=f"a partial copy of the submission already in {target.name} with more of its "
                    "files; nothing new written",
                )
            trash = self.out_dir / PARTIAL_DIR / f"old-{uuid.uuid4().hex}"
            os.replace(target, trash)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
            self.this_run[target.name] = result.source
            return _replace(result, folder=target.name)
        try:  # the usual case: a new instanceID. Fails when OUT/<id> exists (not empty).
            os.rename(outcome.tmp, os.path.join(self.out_dir, outcome.folder))
        except OSError as exc:
            if exc.errno not in {errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR}:
                raise
        else:
            self.this_run[outcome.folder] = result.source
            return _replace(result, folder=outcome.folder)
        for existing in _existing_folders(self.out_dir, outcome.folder):
            stamp = _read_stamp(existing)
            if stamp is None and existing.name not in self.this_run:
                # A folder without its record (copied without extended attributes, or an interrupted run):
                # identical content is adopted, anything else is a conflict.
                if _content_digest(_folder_outputs(existing)) == outcome.digest:
                    record = _read_stamp(tmp) or {}
                    shutil.rmtree(tmp, ignore_errors=True)
                    _write_stamp(existing, record)
                    self.this_run[existing.name] = result.source
                    return _replace(result, folder=existing.name)
                continue
            if stamp is not None and _content_digest(stamp.get("outputs") or {}) == outcome.digest:
                shutil.rmtree(tmp, ignore_errors=True)
                if result.status == Status.INCOMPLETE:  # still incomplete: say so rather than "duplicate"
                    return _replace(
                        result,
                        folder=existing.name,
                        message=f"{result.message}; the same partial content is already in "
                        f"{existing.name}, nothing new written",
                    )
                return self._dup(result, existing.name)
            if stamp is None:
                continue
            # The same manifest (same wrapped key and signature) is the same submission: when the copy already
            # there did not verify and this one does, the earlier copy was damaged in transfer; this one wins.
            mine = _read_stamp(tmp) or {}
            if (
                stamp.get("status") == Status.SIGNATURE_INVALID
                and result.status == Status.OK
                and stamp.get("manifest_sha256") == mine.get("manifest_sha256")
            ):
                trash = self.out_dir / PARTIAL_DIR / f"old-{uuid.uuid4().hex}"
                os.replace(existing, trash)
                os.replace(tmp, existing)
                shutil.rmtree(trash, ignore_errors=True)
                self.this_run[existing.name] = result.source
                return _replace(
                    result,
                    folder=existing.name,
                    message=f"{result.message}; replaced the copy in {existing.name} whose signature did not "
                    "verify (a copy damaged in transfer)",
                )
            theirs, ours = stamp.get("outputs") or {}, (_read_stamp(tmp) or {}).get("outputs") or {}
            if not _same_files(theirs, ours):
                continue
            # The same submission pulled twice with different media present (a photo that arrived later).
            if stamp.get("status") == Status.INCOMPLETE and set(theirs) < set(ours):
                trash = self.out_dir / PARTIAL_DIR / f"old-{uuid.uuid4().hex}"
                os.replace(existing, trash)
                os.replace(tmp, existing)
                shutil.rmtree(trash, ignore_errors=True)
                self.this_run[existing.name] = result.source
                return _replace(
                    result,
                    folder=existing.name,
                    message=f"{result.message}; replaced the incomplete copy in {existing.name}",
                )
            if result.status == Status.INCOMPLETE and set(ours) < set(theirs):
                shutil.rmtree(tmp, ignore_errors=True)
                return _replace(
                    result,
                    status=Status.DUPLICATE,
                    reason_code=DUPLICATE,
                    folder=existing.name,
                    message=f"a partial copy of the submission already in {existing.name} with more of its "
                    "files; nothing new written",
                )
        n = 2
        while (self.out_dir / f"{outcome.folder}{CONFLICT_SEPARATOR}{n}").exists():
            n += 1
        target = self.out_dir / f"{outcome.folder}{CONFLICT_SEPARATOR}{n}"
        first = self.this_run.get(outcome.folder, "an earlier run")
        message = (
            f"another submission with instanceID {result.instance_id} but different content was decrypted "
            f"into {outcome.folder} (from {first}); both are kept, this one in {target.name}. Find out which "
            f"is the final version (an edited re-submission?) before using either. This one: {result.status}"
            f" - {result.message}"
        )
        conflict = _replace(
            result, status=Status.CONFLICT, reason_code=CONFLICT, message=message, folder=target.name
        )
        _write_stamp(
            tmp,
            {
                **(_read_stamp(tmp) or {}),
                "status": str(Status.CONFLICT),
                "reason_code": CONFLICT,
                "message": message,
            },
        )
        os.replace(tmp, target)
        self.this_run[target.name] = result.source
        return conflict

    def _dup(self, result: SubmissionResult, folder: str) -> SubmissionResult:
        first = self.this_run.get(folder, "an earlier run")
        return _replace(
            result,
            status=Status.DUPLICATE,
            reason_code=DUPLICATE,
            folder=folder,
            message=f"the same submission (identical decrypted content) is already in {folder} "
            f"(from {first}); nothing new written",
        )


def _same_files(theirs: Mapping[str, str], ours: Mapping[str, str]) -> bool:
    """The files both copies have are identical (same names, same MD5)."""
    common = set(theirs) & set(ours)
    return bool(common) and all(theirs[name] == ours[name] for name in common)


def _replace(result: SubmissionResult, **changes: Any) -> SubmissionResult:
    values = {name: getattr(result, name) for name in SubmissionResult.__slots__}  # type: ignore[attr-defined]
    values.update(changes)
    return SubmissionResult(**values)


# ============================================================================================================
# Finding submissions in folders and zips
# ============================================================================================================
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
    """Extract a zip safely: members that would escape `target` (absolute paths, '..', drive letters,
    symlinks)
    are refused and reported; sizes are checked while copying."""
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


# ============================================================================================================
# Public entry points
# ============================================================================================================
def _as_key(key: LoadedKey | rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    return key.private_key if isinstance(key, LoadedKey) else key


def _prepare_out(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out_dir / PARTIAL_DIR, ignore_errors=True)  # leftovers of an interrupted run
        (out_dir / PARTIAL_DIR).mkdir()
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

    Inputs are searched recursively for Collect instance folders, Briefcase/Aggregate storage, Central or
    Enketo
    downloads and plaintext instances. Inputs are never changed; each submission is written to a work folder
    and
    renamed into place when complete; re-running on the same OUT verifies and skips what is already there.

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


def _outcomes(
    found: Iterator[_Task | SubmissionResult], key: rsa.RSAPrivateKey, workers: int
) -> Iterator[_Outcome | SubmissionResult]:
    """Results in input order. With workers > 1, batches go to a process pool with a bounded window, so memory
    stays flat however many submissions there are."""
    if workers <= 1:
        for item in found:
            yield item if isinstance(item, SubmissionResult) else _safe_process(item, key)
        return
    batch_size = 32  # amortises inter-process traffic; results still come back in input order
    window = workers * 4
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    pending: deque[concurrent.futures.Future[list[_Outcome]] | list[SubmissionResult]] = deque()
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(der,)
    ) as pool:
        batch: list[_Task] = []

        def drain(limit: int) -> Iterator[_Outcome | SubmissionResult]:
            while len(pending) > limit:
                head = pending.popleft()
                yield from (head if isinstance(head, list) else head.result())

        for item in found:
            if isinstance(item, SubmissionResult):
                if batch:
                    pending.append(pool.submit(_worker_batch, batch))
                    batch = []
                pending.append([item])
            else:
                batch.append(item)
                if len(batch) >= batch_size:
                    pending.append(pool.submit(_worker_batch, batch))
                    batch = []
            yield from drain(window)
        if batch:
            pending.append(pool.submit(_worker_batch, batch))
        yield from drain(0)


def iter_log(path: Path) -> Iterator[dict[str, str]]:
    """Read decrypt-log.csv rows back (the CLI's --json for runs that did not keep rows)."""
    with open(path, encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)
