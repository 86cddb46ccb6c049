"""The ODK encryption scheme itself (specs/odk-encryption.md section 1): RSA-OAEP wrapping of the AES key,
the IV seed and the IV of each file (Collect's rule and Enketo's), MD5 as node-forge computes it, AES-256-CFB
with PKCS#7, decrypting one file, and the text the element signature covers.
"""

# File-wide lint exceptions, each for a reason:
# S303, S324: MD5 and SHA-1 are fixed by the ODK format (IV seed, signature, the MGF1-SHA1 of SunJCE peers);
#      nothing here relies on them for security that the format does not already.
# ruff: noqa: S303, S324

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import math
import os
import stat
import struct
import warnings
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 47 keeps CFB among the "decrepit" modes (cryptography.io, Decrepit Cipher Modes)
    from cryptography.hazmat.decrepit.ciphers.modes import CFB as _CFB
except (
    ImportError
):  # pragma: no cover - older cryptography: the old path still works, with a deprecation warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _CFB = modes.CFB  # type: ignore[misc]

AES_KEY_BYTES = 32
BLOCK = 16
CHUNK_BYTES = 1 << 20
RSA_BLOCK_SIZES = frozenset({128, 256, 384, 512, 768, 1024})  # wrapped-key lengths of 1024..8192-bit keys

# The padding Collect wraps the AES key and the signature with (spec 1): OAEP, SHA-256, MGF1-SHA-256, no label.
OAEP_SHA256 = asym_padding.OAEP(
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
        return key.decrypt(block, OAEP_SHA256), False
    except ValueError:
        pass
    try:
        return key.decrypt(block, _OAEP_MGF1_SHA1), True
    except ValueError:
        return None


def rsa_wrap(public: rsa.RSAPublicKey, data: bytes) -> str:
    """RSA-OAEP encrypt as Collect does (`OAEP_SHA256`), base64: how the AES key and the signature are stored.

    Parameters:
        public: the form's public key.
        data: the AES key, or the MD5 digest of the signature text.
    """
    return base64.b64encode(public.encrypt(data, OAEP_SHA256)).decode("ascii")


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
    """MD5 as node-forge computes it over a JS string given without an encoding: each UTF-16 code unit is taken as one
    "byte", and words are packed with `c0 ^ c1<<8 ^ c2<<16 ^ c3<<24`, so units above 0xFF bleed into the neighbouring
    bytes (enketo/enketo#1421, #1608). For code units <= 0xFF this is plain MD5."""
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


def strip_pkcs7(data: bytes) -> bytes | None:
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
        fd = os.open(src, os.O_RDONLY | _O_BINARY | _O_NOFOLLOW)
    except OSError:
        raise _FileProblem("missing", "cannot be read (or is a link, which is never followed)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _FileProblem("missing", "is not a regular file")
        size = info.st_size
        if size == 0 or size % BLOCK:
            raise _FileProblem(
                "truncated", f"is {size} bytes, not a multiple of 16: the file was cut short (incomplete copy?)"
            )
        decryptor = Cipher(algorithms.AES(aes_key), _CFB(iv)).decryptor()
        if size <= CHUNK_BYTES:  # household XML, audit logs and most photos: one read, one write
            ciphertext = _read_all(fd, size)
            fingerprint = f"{len(ciphertext)}:{hashlib.sha256(ciphertext).hexdigest()}"
            padded = decryptor.update(ciphertext)
            if len(ciphertext) % BLOCK or strip_pkcs7(padded[-BLOCK:]) is None:  # the pad is in the last block
                raise _FileProblem("padding", "does not decrypt: its padding is invalid")
            plain = memoryview(padded)[: len(padded) - padded[-1]]  # no copy of the plaintext
            _write_new_file(dst, plain)
            return hashlib.md5(plain).hexdigest(), fingerprint
        digest, seen, read = hashlib.md5(), hashlib.sha256(), 0
        with open(fd, "rb", closefd=False) as source, open(_create_private(dst), "wb") as target:
            held = b""
            while chunk := source.read(CHUNK_BYTES):
                seen.update(chunk)
                read += len(chunk)
                decrypted = held + decryptor.update(chunk)
                held, decrypted = decrypted[-BLOCK:], decrypted[:-BLOCK]
                digest.update(decrypted)
                target.write(decrypted)
            last = strip_pkcs7(held)
            if last is None:
                raise _FileProblem("padding", "does not decrypt: its padding is invalid")
            digest.update(last)
            target.write(last)
        return digest.hexdigest(), f"{read}:{seen.hexdigest()}"
    finally:
        os.close(fd)


_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows, where tablets' copies hold no symbolic links
# Decrypted files hold the answers: readable by their owner only, as every migkit output holding answers.
PRIVATE_FILE_MODE, PRIVATE_FOLDER_MODE = 0o600, 0o700
_READ_CHUNK = 1 << 16


def _read_all(fd: int, size: int, limit: int | None = None) -> bytes:
    """Read an open file known to be small with plain system calls (no buffering layer); stop once more than
    `limit` bytes have come. `size` is what fstat said: the usual case reads it all in one call; where it is 0 or
    stale (files on FUSE or MTP tablet mounts), the rest comes in 64 KiB reads."""
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, size if not chunks and size > 0 else _READ_CHUNK):
        chunks.append(chunk)
        total += len(chunk)
        if (total == size and len(chunks) == 1) or (limit is not None and total > limit):
            break  # the usual case: all of it in one call
    return b"".join(chunks)


def _create_private(path: str) -> int:
    """Create (or truncate) a file readable by its owner only; returns the open descriptor."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, PRIVATE_FILE_MODE)


def _write_new_file(path: str, data: bytes | memoryview) -> None:
    fd = _create_private(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def encrypt_bytes(data: bytes, aes_key: bytes, iv: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), _CFB(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def signature_text(
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


def _signature_digest(key: rsa.RSAPrivateKey, signature_b64: str) -> bytes | None:
    try:
        block = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    unwrapped = _rsa_unwrap(key, block)
    if unwrapped is None or len(unwrapped[0]) != 16:
        return None
    return unwrapped[0]
