"""RSA keys for ODK encryption: passphrases, private keys in every form they come in (PEM PKCS#1/PKCS#8,
encrypted or not, DER, Central managed-key records), new key pairs, and the XLSForm `public_key` setting.
"""

# File-wide lint exceptions, each for a reason:
# PTH: tempfile.mkstemp gives a descriptor and a string path; the atomic writes work on those.
# ruff: noqa: PTH101, PTH105, PTH108

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from toolkit.crypto.codes import (
    FORM_NO_WORKBOOK,
    KEY_BAD_SIZE,
    KEY_EXISTS,
    KEY_PASSPHRASE_NEEDED,
    KEY_PASSPHRASE_WRONG,
    KEY_PUBLIC_GIVEN,
    KEY_UNREADABLE,
)
from toolkit.crypto.scheme import BLOCK, strip_pkcs7
from toolkit.errors import EXIT_CANNOT_RUN, INPUT_MISSING, OUTPUT_UNWRITABLE, ToolkitError, error
from toolkit.files import make_private_folder
from toolkit.settings import PASSPHRASE_ENV  # re-exported: where the CLI reads the passphrase from

# Central managed keys (central-backend lib/util/crypto.js): PBKDF2-HMAC-SHA256, 128,000 rounds, 32-byte key.
CENTRAL_PBKDF2_ROUNDS = 128_000
KEY_SIZES = (2048, 3072, 4096)


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


def _load_central_record(text: str, secret: bytes | None, path: Path) -> LoadedKey:  # noqa: PLR0912
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
    plain = strip_pkcs7(padded)
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
            try:
                theirs = serialization.load_pem_public_key(expected)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise _key_error(KEY_UNREADABLE, "the record's pubkey is not a readable public key.", path) from None
            same = isinstance(theirs, rsa.RSAPublicKey) and theirs.public_numbers() == ours.public_numbers()
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
        make_private_folder(out_dir)  # 0700 whatever the umask: it holds the private key
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
    """Set `public_key` on the settings sheet of an XLSForm, keeping the other sheets and formatting (as far as openpyxl
    keeps them). The workbook is written to a temporary file and renamed over the original.

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
