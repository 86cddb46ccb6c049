"""`toolkit.xml.parse_untrusted`, the one parser for XML from outside migkit, and the readers that go through it: a
DOCTYPE or entity is refused whatever comes before it, sizes are capped, and nothing but `UntrustedXMLError` comes out
of arbitrary bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from toolkit.errors import ToolkitError
from toolkit.xform import parse_xform
from toolkit.xml import UntrustedXMLError, parse_untrusted
from toolkit.xpath import XPathEvalError, load_secondary_instance

LEADING_COMMENTS = b"<!--" + b"x" * 5000 + b"-->\n"
DOCTYPE = b'<!DOCTYPE data [<!ENTITY e SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize(
    "document",
    [
        DOCTYPE + b"<data>&e;</data>",
        LEADING_COMMENTS + DOCTYPE + b"<data>&e;</data>",  # past the first 4 KB that some copies looked at
        LEADING_COMMENTS + b"<!DOCTYPE data><data/>",  # a DOCTYPE without an entity is refused too
        b"<?xml version='1.0'?><!doctype data><data/>",
        ("<!DOCTYPE data><data/>").encode("utf-16"),  # escapes a byte search; the parser still sees it
    ],
)
def test_a_doctype_is_refused_wherever_it_is(document: bytes) -> None:
    with pytest.raises(UntrustedXMLError) as refused:
        parse_untrusted(document)
    assert refused.value.reason == "doctype"


def test_every_reader_refuses_a_doctype_after_leading_comments(tmp_path: Path) -> None:
    document = LEADING_COMMENTS + b"<!DOCTYPE h:html>" + b'<h:html xmlns:h="http://www.w3.org/1999/xhtml"/>'
    with pytest.raises(ToolkitError, match="DOCTYPE"):
        parse_xform(document)
    attachment = tmp_path / "towns.xml"
    attachment.write_bytes(LEADING_COMMENTS + b"<!DOCTYPE root><root><item><name>a</name></item></root>")
    with pytest.raises(XPathEvalError, match="DOCTYPE"):
        load_secondary_instance(attachment)


def test_size_cap_and_syntax_errors() -> None:
    with pytest.raises(UntrustedXMLError) as refused:
        parse_untrusted(b"<data>" + b"x" * 100 + b"</data>", max_bytes=50)
    assert refused.value.reason == "too_large"
    with pytest.raises(UntrustedXMLError) as broken:
        parse_untrusted(b"<data><a></data>")
    assert broken.value.reason == "syntax"


def test_no_entity_is_expanded_and_comments_are_dropped() -> None:
    root = parse_untrusted(b"<data><!-- note --><?pi x?><a>&amp;</a></data>")
    assert [child.tag for child in root] == ["a"] and root[0].text == "&"
    kept = parse_untrusted(b"<data><!-- note --><a/></data>", keep_comments=True)
    assert len(kept) == 2


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=200).map(lambda s: f"<data>{s}</data>".encode()))
def test_arbitrary_bytes_give_a_tree_or_an_untrusted_xml_error(data: bytes) -> None:
    try:
        root = parse_untrusted(data)
    except UntrustedXMLError as exc:
        assert exc.reason in {"doctype", "too_large", "syntax"}
    else:
        assert isinstance(root, etree._Element)


TAG = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    element = etree.Element(draw(TAG))
    element.text = draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20))
    if depth < 3:
        for child in draw(st.lists(trees(depth + 1), max_size=3)):
            element.append(child)
    return element


@settings(max_examples=40, deadline=None)
@given(trees())
def test_round_trip(tree: etree._Element) -> None:
    parsed = parse_untrusted(etree.tostring(tree, encoding="utf-8"))
    assert etree.tostring(parsed, method="c14n") == etree.tostring(tree, method="c14n")
