"""Reading submission manifests and plaintext instances: untrusted XML from devices in the field, parsed
without DTDs or entities, with caps on every element and file names that must be plain names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from lxml import etree

from toolkit.crypto.codes import MANIFEST_INVALID, MANIFEST_UNSAFE
from toolkit.crypto.results import LOG_NAME, STAMP_NAME
from toolkit.xml import UntrustedXMLError, parse_untrusted

# Element caps: an 8192-bit RSA block is 1,368 base64 characters.
BASE64_MAX_CHARS = 2048
ID_MAX_CHARS = 512
NAME_MAX_BYTES = 255  # file-name limit of ext4, NTFS and APFS
MEDIA_MAX_FILES = 2000


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Central's simulator writes `encrypted="yes", version="..."` (central-backend test/util/crypto-odk.js).
_STRAY_COMMA_RE = re.compile(rb'("|\')\s*,(\s+[A-Za-z_][\w.:-]*\s*=)')


def _parse_xml(data: bytes, max_bytes: int) -> tuple[etree._Element, bool]:
    """Parse untrusted XML; refuse any DOCTYPE or entity declaration. Returns (root, repaired)."""
    try:
        return parse_untrusted(data, max_bytes=max_bytes), False
    except UntrustedXMLError as exc:
        if exc.reason != "syntax":
            raise _Refused(MANIFEST_UNSAFE, exc.message) from None
        syntax = exc.message
    head_end = data.find(b">", data.find(b"<data"))
    fixed = _STRAY_COMMA_RE.sub(rb"\1\2", data[: head_end + 1], count=4) + data[head_end + 1 :]
    if head_end < 0 or fixed == data:
        raise _Refused(MANIFEST_INVALID, syntax)
    try:
        return parse_untrusted(fixed, max_bytes=max_bytes), True
    except UntrustedXMLError as exc:
        raise _Refused(MANIFEST_INVALID if exc.reason == "syntax" else MANIFEST_UNSAFE, syntax) from None


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


def plain_name_ok(name: str) -> bool:
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
        if not plain_name_ok(name):
            raise _Refused(
                MANIFEST_UNSAFE,
                f"lists a media file {name!r} that is not a plain file name (path separators, '..', absolute "
                "paths "
                "and control characters are refused)",
            )
    # Each media file becomes OUT/<id>/<name without .enc>: two entries with one output name (listed twice, or
    # as x.jpg and x.jpg.enc), or one named like the decrypted submission, would overwrite each other. Collect
    # never writes such a manifest.
    seen: set[str] = set()
    for name in media:
        output = name.removesuffix(".enc")
        if output in seen or output == "submission.xml":
            raise _Refused(
                MANIFEST_UNSAFE,
                f"lists a media file {name!r} whose decrypted name {output!r} is taken (by another media file or "
                "by submission.xml); refused",
            )
        seen.add(output)
    xml_file = _text(children.get("encryptedXmlFile")) or "submission.xml.enc"
    if not plain_name_ok(xml_file):
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


# Output folders are named after the instanceID. A name is used as it is only when it is safe on every file system
# OUT may be copied to and cannot be mistaken for anything else decrypt writes: no separators, control or Windows-
# forbidden characters, not hidden (ingest skips dot-folders), not '.', not a reserved name, not ending like a
# conflict copy (`<id>__2`), and short enough that `__<n>` and the hidden temporary names still fit in 255 bytes.
FOLDER_MAX_BYTES = 200
_FOLDER_UNSAFE_RE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|~]')
_WINDOWS_DEVICE_RE = re.compile(r"^(?:CON|PRN|AUX|NUL|COM\d|LPT\d)(?:\..*)?$", re.IGNORECASE)
_CONFLICT_LIKE_RE = re.compile(r"__\d+$")
_READABLE_PART_BYTES = 80
_DIGEST_CHARS = 20  # 80 bits of SHA-256: no two instanceIDs of any survey share a folder by chance


def _plain_folder(name: str) -> bool:
    return bool(
        name
        and not name.startswith((".", " "))
        and not name.endswith((".", " "))
        and not _FOLDER_UNSAFE_RE.search(name)
        and not _CONFLICT_LIKE_RE.search(name)
        and not _WINDOWS_DEVICE_RE.match(name)
        and name.casefold() != LOG_NAME.casefold()
        and len(name.encode("utf-8")) <= FOLDER_MAX_BYTES
    )


def instance_folder(instance_id: str) -> str:
    """The output folder of an instanceID: the ID without `uuid:` when that is a safe name (every Collect, Enketo
    and Central ID is), else a readable part of it with `~` and a digest of the whole ID. `~` never appears in a name
    used as it is, so the two kinds never meet; the log records which folder each instanceID went to. As before,
    `uuid:x` and `x` are one submission's ID (conflicts between them are kept apart when committing).

    Parameters:
        instance_id: the instanceID as the submission gives it.
    """
    name = instance_id.removeprefix("uuid:")
    if _plain_folder(name):
        return name
    readable = _FOLDER_UNSAFE_RE.sub("_", name).strip(". ")
    readable = readable.encode("utf-8")[:_READABLE_PART_BYTES].decode("utf-8", errors="ignore").rstrip(". ")
    digest = hashlib.sha256(name.encode("utf-8", errors="surrogatepass")).hexdigest()[:_DIGEST_CHARS]
    return f"{readable or 'instance'}~{digest}"
