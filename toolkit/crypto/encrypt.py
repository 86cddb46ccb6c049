"""Collect-compatible encryption of one submission (used by tests, `migkit simulate` and bench/decrypt.py)."""

# File-wide lint exceptions, each for a reason:
# S324: MD5 is fixed by the ODK format (the signature covers the MD5 of each file).
# ruff: noqa: S324

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from toolkit.crypto.manifest import plain_name_ok
from toolkit.crypto.scheme import AES_KEY_BYTES, collect_iv, encrypt_bytes, iv_seed, rsa_wrap, signature_text

COLLECT_NS = "http://www.opendatakit.org/xforms/encrypted"
OPENROSA_NS = "http://openrosa.org/xforms"


@dataclass(frozen=True)
class EncryptedSubmission:
    """What `encrypt_submission` wrote: the manifest and the `.enc` files, in IV order."""

    manifest: Path
    files: tuple[Path, ...]
    instance_id: str


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

    Writes `<media>.enc` (IV indices 0..n-1 in the order given), `submission.xml.enc` (IV index n) and the manifest in
    Collect's layout (namespace `http://www.opendatakit.org/xforms/encrypted`, `orx:meta`, one `<media>` per file, no
    XML declaration) with a valid element signature.

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
    wrapped = rsa_wrap(public_key, key)
    seed = iv_seed(instance_id, key)
    written: list[Path] = []
    signed: list[tuple[str, str]] = []
    media_names: list[str] = []
    for index, (name, content) in enumerate(media):
        if not plain_name_ok(name):
            raise ValueError(f"media name {name!r} is not a plain file name")
        path = out_dir / f"{name}.enc"
        path.write_bytes(encrypt_bytes(content, key, collect_iv(seed, index)))
        written.append(path)
        media_names.append(path.name)
        signed.append((name, hashlib.md5(content).hexdigest()))
    xml_path = out_dir / "submission.xml.enc"
    xml_path.write_bytes(encrypt_bytes(instance_xml, key, collect_iv(seed, len(media))))
    written.append(xml_path)
    signed.append(("submission.xml", hashlib.md5(instance_xml).hexdigest()))
    digest = hashlib.md5(
        signature_text(form_id, version, wrapped, instance_id, signed).encode("utf-8")
    ).digest()
    signature = rsa_wrap(public_key, digest)
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
