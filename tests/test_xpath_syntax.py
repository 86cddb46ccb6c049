"""The one XPath parser (toolkit.xpath.syntax): unparse round-trips, positions, and the two dialects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.xpath.syntax import (
    NODE_TEST,
    Binary,
    Call,
    Expr,
    Filter,
    LocationPath,
    Negate,
    Number,
    Reference,
    Step,
    String,
    XPathRejectedError,
    XPathSyntaxError,
    is_context,
    parse,
    parse_xlsform,
    unparse,
    walk,
)

_RESERVED = {"and", "or", "div", "mod", "node", "text", "comment", "processing-instruction", "instance"}
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True).filter(lambda n: n not in _RESERVED)
FUNCTIONS = st.sampled_from(["if", "concat", "selected", "count", "sum", "jr:choice-name", "string-length", "f_x"])
OPERATORS = st.sampled_from(["or", "and", "=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "div", "mod"])
NUMBERS = st.from_regex(r"\d{1,4}(\.\d{1,3})?", fullmatch=True).map(lambda text: Number(float(text), text))
STRINGS = st.text(st.characters(blacklist_characters="'\"", blacklist_categories=("Cs",)), max_size=8).map(String)


def _steps(expressions: st.SearchStrategy[Expr]) -> st.SearchStrategy[tuple[Step, ...]]:
    predicates = st.lists(expressions, max_size=1).map(tuple)
    child = st.builds(Step, st.just("child"), NAMES | st.just("*"), predicates)
    context = st.sampled_from([Step("self", NODE_TEST), Step("parent", NODE_TEST)])
    attribute = st.builds(Step, st.just("attribute"), NAMES)
    return st.tuples(st.lists(child | context, min_size=1, max_size=3), st.lists(attribute, max_size=1)).map(
        lambda parts: (*parts[0], *parts[1])
    )


def _trees(*, xlsform: bool) -> st.SearchStrategy[Expr]:
    def extend(inner: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        steps = _steps(inner)
        bases = st.sampled_from([Call("current", ()), Call("instance", (String("list"),))])
        if xlsform:
            references = st.builds(Reference, NAMES)
            bases = (
                bases | references | st.builds(Filter, references, st.lists(inner, min_size=1, max_size=2).map(tuple))
            )
        paths = (
            st.builds(LocationPath, st.just(True), steps.filter(lambda s: s[0].axis == "child"))  # no `/..`
            | st.builds(LocationPath, st.just(False), steps)
            | st.builds(LocationPath, st.just(False), steps, bases)
        )
        return (
            st.builds(Binary, OPERATORS, inner, inner)
            | st.builds(Negate, inner)
            | st.builds(Call, FUNCTIONS, st.lists(inner, max_size=3).map(tuple))
            | paths
        )

    leaves = NUMBERS | STRINGS
    if xlsform:
        leaves = leaves | st.builds(Reference, NAMES | st.just("last-saved#x"))
    return st.recursive(leaves, extend, max_leaves=8)


TREES = {xlsform: _trees(xlsform=xlsform) for xlsform in (False, True)}


def _token_at(text: str, node: Expr | Step) -> bool:
    """Whether the node's position points at the token it starts with."""
    match node:
        case Number(text=number):
            return text.startswith(number, node.pos)
        case String():
            return text[node.pos] in "'\""
        case Reference() | Filter():
            return text.startswith("${", node.pos)
        case Call(name=name):
            return text.startswith(name, node.pos)
        case Negate():
            return text[node.pos] == "-"
        case Binary(op=op):
            return text.startswith(op, node.pos)
        case LocationPath(absolute=True):
            return text[node.pos] == "/"
        case LocationPath(base=None, steps=steps):
            return node.pos == steps[0].pos
        case LocationPath(base=base):
            return base is not None and node.pos == base.pos
        case Step(axis="self"):
            return text.startswith(".", node.pos)
        case Step(axis="parent"):
            return text.startswith("..", node.pos)
        case Step(name=name):
            return text.startswith(name, node.pos)
    return False


@pytest.mark.parametrize("xlsform", [False, True], ids=["xform", "xlsform"])
@given(data=st.data())
@settings(max_examples=100, deadline=None)
def test_trees_round_trip_through_their_text(xlsform: bool, data: st.DataObject) -> None:
    tree = data.draw(TREES[xlsform], label="tree")
    text = unparse(tree)
    parsed = parse_xlsform(text) if xlsform else parse(text)
    assert parsed == tree
    assert all(_token_at(text, node) for node in walk(parsed))


def test_positions_are_those_of_the_cell() -> None:
    text = "if(${a} > 1, /data/b[. = 'x'], \u2018y\u2019)"  # smart quotes are read as quotes, positions kept
    tree = parse_xlsform(text)
    assert isinstance(tree, Call) and tree.pos == 0
    comparison, path, quoted = tree.args
    assert isinstance(comparison, Binary) and comparison.pos == text.index(">")
    assert isinstance(comparison.left, Reference) and comparison.left.pos == 3
    assert isinstance(path, LocationPath) and path.pos == text.index("/data")
    (predicate,) = path.steps[1].predicates
    assert isinstance(predicate, Binary) and is_context(predicate.left) and predicate.left.pos == text.index(".")
    assert quoted == String("y") and quoted.pos == text.index("\u2018")


@pytest.mark.parametrize(
    ("text", "xform", "xlsform"),
    [
        ("${a} + 1", XPathSyntaxError, None),  # references only in an XLSForm cell
        ("$a + 1", XPathRejectedError, XPathSyntaxError),  # a $variable: refused by JavaRosa, malformed in a cell
        ("${a}[1]/b", XPathSyntaxError, None),
        ("/..", XPathRejectedError, None),  # lint has never refused it; the evaluator does, as JavaRosa
        ("instance(${a})/root", XPathSyntaxError, None),
        ("instance(/data/a)/root", XPathRejectedError, None),
        ("@a/b", XPathRejectedError, None),
        ("5/5", XPathSyntaxError, XPathRejectedError),  # JavaRosa: a syntax error; lint: the refusal first
    ],
)
def test_the_dialects_differ_only_where_their_sources_do(
    text: str, xform: type[Exception] | None, xlsform: type[Exception] | None
) -> None:
    for parser, expected in ((parse, xform), (parse_xlsform, xlsform)):
        if expected is None:
            parser(text)
        else:
            with pytest.raises(expected) as caught:
                parser(text)
            assert type(caught.value) is expected
