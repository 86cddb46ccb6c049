"""The one parser for XML migkit did not write itself: submissions and manifests from tablets, XForms, external
secondary instances. No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a document
that declares a DOCTYPE or an entity is refused whatever comes before the declaration.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

# Submissions of a household survey are a few hundred KB; XForms of the largest templates about 2 MB. lxml's own
# limits (without huge_tree) also hold: 256 levels of nesting, 10 MB per text node.
XML_MAX_BYTES = 64 << 20

# A DOCTYPE (and with it any ENTITY) can only come before the root element, but leading comments and processing
# instructions may push it anywhere in the file, so the whole text is searched. Case and blanks are allowed for
# because some parsers are lenient about them.
_DECLARATION_RE = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


class UntrustedXMLError(ValueError):
    """The XML was refused (`reason` "doctype" or "too_large") or is not well-formed ("syntax")."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


_LOCAL = threading.local()  # lxml parsers must not be shared between threads; making one costs ~20 us


def _parser(keep_comments: bool) -> etree.XMLParser:
    parsers: dict[bool, etree.XMLParser] | None = getattr(_LOCAL, "parsers", None)
    if parsers is None:
        parsers = _LOCAL.parsers = {}
    parser = parsers.get(keep_comments)
    if parser is None:
        parser = parsers[keep_comments] = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=not keep_comments,
            remove_pis=not keep_comments,
        )
    return parser


def parse_untrusted(
    data: bytes | str, *, max_bytes: int = XML_MAX_BYTES, keep_comments: bool = False
) -> etree._Element:
    """Parse XML from outside migkit safely and return its root element.

    Raises `UntrustedXMLError` when the text is larger than `max_bytes` ("too_large"), declares a DOCTYPE or an
    entity ("doctype"), or is not well-formed ("syntax", with lxml's message).

    Parameters:
        data: the XML (text is encoded as UTF-8 first).
        max_bytes: the largest document accepted.
        keep_comments: keep comments and processing instructions in the tree (they are dropped by default).
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise UntrustedXMLError("too_large", f"is {len(raw)} bytes long (limit {max_bytes}); refused")
    if _DECLARATION_RE.search(raw):
        raise UntrustedXMLError("doctype", "declares a DOCTYPE or an entity, which is never accepted")
    try:
        root = etree.fromstring(raw, _parser(keep_comments))
    except etree.XMLSyntaxError as exc:
        raise UntrustedXMLError("syntax", f"is not well-formed XML ({exc.msg})") from None
    # UTF-16 text escapes the byte search above; the parser still records the declaration it saw.
    if root.getroottree().docinfo.doctype:
        raise UntrustedXMLError("doctype", "declares a DOCTYPE or an entity, which is never accepted")
    return root
