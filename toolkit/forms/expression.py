"""XLSForm expressions (XPath 1.0 plus ${name} references) as a tree, for static checks.

The tokenizer follows XPath 1.0 section 3.7 (when `*`, `and`, `or`, `div`, `mod` are operators) and keeps each
token's character position, so that a problem can be reported at its place in the cell. What ODK Collect
(JavaRosa) refuses although XPath 1.0 allows it (unions, `//`, axes, node tests, paths on a parenthesised
expression) and nesting deeper than toolkit.xpath.MAX_EXPRESSION_DEPTH are refused here with the evaluator's
own messages (toolkit.xpath), so that lint and validate/simulate say the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from toolkit.xpath import XPATH_AXES, javarosa_rejection, nesting_too_deep, too_deep_message


class ExpressionError(ValueError):
    """An expression that does not parse; `position` is the 0-based character offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # REF STRING NUMBER NAME FUNC OP AXIS ( ) [ ] , / // . .. @ * END
    text: str
    pos: int


# XML NCName (XML 1.0 NameStartChar / NameChar without ':'), as pyxform accepts in names and ${references}.
_NCNAME = (
    r"[A-Za-z_\u00c0-\u02ff\u0370-\u1fff\u200c-\u200d\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf"
    r"\ufdf0-\ufffd][\w.\-\u00b7\u0300-\u036f\u203f-\u2040]*"
)
_TOKEN_RE = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<ref>\$\{{\s*(?P<ref_name>(?:last-saved\#)?{_NCNAME})\s*\}})
  | (?P<badref>\$\{{[^}}]*\}}?|\$)
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<badstring>['"])
  | (?P<number>\d+(?:\.\d*)?|\.\d+)
  | (?P<dotdot>\.\.)
  | (?P<dot>\.)
  | (?P<dslash>//)
  | (?P<op2>!=|<=|>=|::)
  | (?P<single>[/()\[\],|@*=<>+\-])
  | (?P<name>{_NCNAME}(?::{_NCNAME})?)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
# After these tokens no operator can follow, so `*` is a wildcard and `and`/`div` are names (XPath 1.0 §3.7).
_NO_OPERAND_BEFORE = {"(", "[", ",", "@", "::", "OP", "/", "//", None}
_OPERATOR_NAMES = {"and", "or", "div", "mod"}
_GLUED_OPERATOR = re.compile(r"^(and|or|div|mod)(?=.)")
_SMART_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def tokenize(text: str) -> list[Token]:  # noqa: PLR0912, PLR0915
    """Split an XLSForm expression into tokens, ending with an END token.

    Parameters:
        text: the expression as written in the cell (smart quotes are read as plain quotes, as pyxform does).

    Raises ExpressionError on a character XPath does not allow, an unclosed string or a bad ${reference}.
    """
    text = text.translate(_SMART_QUOTES)  # pyxform replaces smart quotes the same way
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN_RE.match(text, at)
        assert match is not None  # the last alternative matches any character
        at = match.end()
        kind = match.lastgroup
        value = match.group()
        pos = match.start()
        if kind == "ws":
            continue
        if kind == "ref_name":
            kind = "ref"
        if kind == "badref":
            raise ExpressionError(f"malformed reference {value!r}: write ${{name}} with a question name", pos)
        if kind == "badstring":
            raise ExpressionError(f"the text starting with {value} has no closing {value}", pos)
        if kind == "other":
            raise ExpressionError(f"unexpected character {value!r}", pos)
        previous = tokens[-1].kind if tokens else None
        previous_is_operand = previous not in _NO_OPERAND_BEFORE
        if kind == "ref":
            tokens.append(Token("REF", match.group("ref_name"), pos))
        elif kind == "string":
            tokens.append(Token("STRING", value[1:-1], pos))
        elif kind == "number":
            tokens.append(Token("NUMBER", value, pos))
        elif kind == "dotdot":
            tokens.append(Token("..", value, pos))
        elif kind == "dot":
            tokens.append(Token(".", value, pos))
        elif kind == "dslash":
            tokens.append(Token("//", value, pos))
        elif kind == "op2":
            tokens.append(Token("::" if value == "::" else "OP", value, pos))
        elif kind == "single":
            if value == "*" and not previous_is_operand:
                tokens.append(Token("*", value, pos))
            elif value in "=<>+-*|":
                tokens.append(Token("OP", value, pos))
            else:
                tokens.append(Token(value, value, pos))
        else:  # a name: operator name, function name, axis or node test
            rest = text[match.end() :].lstrip()
            glued = _GLUED_OPERATOR.match(value)
            if value in _OPERATOR_NAMES and previous_is_operand:
                tokens.append(Token("OP", value, pos))
            elif glued and previous_is_operand:
                # JavaRosa reads `3mod4` as 3 mod 4 and `6andx` as 6 and x: the operator, then the rest.
                tokens.append(Token("OP", glued.group(1), pos))
                at = pos + len(glued.group(1))
            elif rest.startswith("::"):
                tokens.append(Token("AXIS", value, pos))
            elif rest.startswith("("):
                tokens.append(Token("FUNC", value, pos))
            else:
                tokens.append(Token("NAME", value, pos))
    tokens.append(Token("END", "", len(text)))
    return tokens


@dataclass(frozen=True)
class Node:
    """One node of a parsed expression.

    kind: 'ref' (text = question name), 'string', 'number', 'call' (text = function name), 'binary'/'unary'
    (text = operator), 'context' ('.' or '..'), 'step' (a name test; children = its predicates) and 'path':
    text 'relative' or '/' or '//' (children = steps), 'filter' (a value then steps) or 'predicate' (a value
    then its predicates).
    """

    kind: str
    text: str
    pos: int
    children: tuple[Node, ...] = ()

    def walk(self) -> Iterable[Node]:
        yield self
        for child in self.children:
            yield from child.walk()


_BINARY_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"or"}),
    frozenset({"and"}),
    frozenset({"=", "!="}),
    frozenset({"<", ">", "<=", ">="}),
    frozenset({"+", "-"}),
    frozenset({"*", "div", "mod"}),
)
_PRECEDENCE = {op: level for level, ops in enumerate(_BINARY_LEVELS) for op in ops}
_NODE_TYPE_TESTS = frozenset({"node", "text", "comment", "processing-instruction"})


class _Parser:
    """Recursive-descent parser for the XPath 1.0 expression grammar, with ${name} as a primary expression."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            found = "the end of the expression" if token.kind == "END" else repr(token.text)
            raise ExpressionError(f"expected {what} but found {found}", token.pos)
        return self.take()

    def parse(self) -> Node:
        if self.peek().kind == "END":
            raise ExpressionError("the expression is empty", 0)
        node = self.binary(0)
        token = self.peek()
        if token.kind != "END":
            if token.kind == ")":
                raise ExpressionError("')' without a matching '('", token.pos)
            raise ExpressionError(f"unexpected {token.text!r} (missing operator or parenthesis?)", token.pos)
        return node

    def binary(self, level: int) -> Node:
        """Binary operators of `level` and tighter, by precedence climbing (one stack frame per level)."""
        left = self.unary()
        while True:
            token = self.peek()
            found = _PRECEDENCE.get(token.text) if token.kind == "OP" else None
            if found is None or found < level:
                return left
            self.take()
            left = Node("binary", token.text, token.pos, (left, self.binary(found + 1)))

    def unary(self) -> Node:
        signs: list[Token] = []
        while self.peek().kind == "OP" and self.peek().text == "-":
            signs.append(self.take())
        node = self.union()
        for sign in reversed(signs):
            node = Node("unary", "-", sign.pos, (node,))
        return node

    def union(self) -> Node:
        left = self.path()
        if self.peek().kind == "OP" and self.peek().text == "|":
            op = self.take()
            self.path()  # what follows must parse too
            raise ExpressionError(javarosa_rejection("the union operator '|'"), op.pos)
        return left

    def path(self) -> Node:
        token = self.peek()
        if token.kind in {"/", "//"}:
            self.take()
            steps: list[Node] = [Node("step", token.text, token.pos)]
            if self.peek().kind in {"NAME", "*", ".", "..", "@", "AXIS"} or (
                self.peek().kind == "FUNC" and self.peek().text in _NODE_TYPE_TESTS
            ):
                steps.extend(self.relative_path())
            elif token.kind == "//":
                raise ExpressionError("'//' must be followed by a step", self.peek().pos)
            if token.kind == "//":
                raise ExpressionError(javarosa_rejection("'//' (a descendant at any depth)"), token.pos)
            return Node("path", token.text, token.pos, tuple(steps))
        if token.kind in {"REF", "STRING", "NUMBER", "(", "FUNC"} and not (
            token.kind == "FUNC" and token.text in _NODE_TYPE_TESTS
        ):
            primary = self.filter_expr()
            if self.peek().kind in {"/", "//"}:
                # pyxform writes ${name} as a path; JavaRosa takes a path after instance() and current() only
                if not (
                    token.kind == "REF" or (primary.kind == "call" and primary.text in ("instance", "current"))
                ):
                    raise ExpressionError(
                        javarosa_rejection("a path after an expression other than instance() or current()"),
                        self.peek().pos,
                    )
                parts = [primary]
                while self.peek().kind in {"/", "//"}:
                    separator = self.take()
                    parts.append(self.step())
                    if separator.kind == "//":
                        raise ExpressionError(
                            javarosa_rejection("'//' (a descendant at any depth)"), separator.pos
                        )
                return Node("path", "filter", token.pos, tuple(parts))
            return primary
        if token.kind in {"NAME", "*", ".", "..", "@", "AXIS", "FUNC"}:
            steps = self.relative_path()
            if len(steps) == 1 and steps[0].kind == "context":
                return steps[0]
            return Node("path", "relative", token.pos, tuple(steps))
        found = "the end of the expression" if token.kind == "END" else repr(token.text)
        raise ExpressionError(
            f"expected a value, a reference or a function call but found {found}", token.pos
        )

    def relative_path(self) -> list[Node]:
        steps = [self.step()]
        while self.peek().kind in {"/", "//"}:
            separator = self.take()
            steps.append(self.step())
            if separator.kind == "//":
                raise ExpressionError(javarosa_rejection("'//' (a descendant at any depth)"), separator.pos)
        return steps

    def step(self) -> Node:
        token = self.peek()
        if token.kind in {".", ".."}:
            self.take()
            return Node("context", token.text, token.pos)
        axis = "child"
        if token.kind == "@":
            self.take()
            axis = "attribute"
        elif token.kind == "AXIS":
            self.take()
            self.expect("::", "'::'")
            axis = token.text
            if axis not in XPATH_AXES:
                raise ExpressionError(f"unknown axis {axis}::", token.pos)
        if axis not in ("child", "attribute", "self", "parent"):
            raise ExpressionError(javarosa_rejection(f"the {axis}:: axis"), token.pos)
        test = self.peek()
        if test.kind == "FUNC" and test.text in _NODE_TYPE_TESTS:
            self.take()
            self.expect("(", "'('")
            if test.text == "processing-instruction" and self.peek().kind == "STRING":
                self.take()
            self.expect(")", "')'")
            if not (test.text == "node" and axis in ("self", "parent")):
                raise ExpressionError(javarosa_rejection(f"the node test {test.text}()"), test.pos)
        elif test.kind in {"NAME", "*"}:
            self.take()
            if axis not in ("child", "attribute"):
                raise ExpressionError(javarosa_rejection(f"the {axis}:: axis"), token.pos)
            if test.text.endswith("*") and (axis == "attribute" or test.text != "*"):
                wildcard = ("@" if axis == "attribute" else "") + test.text
                raise ExpressionError(javarosa_rejection(f"the wildcard {wildcard}"), test.pos)
        else:
            found = "the end of the expression" if test.kind == "END" else repr(test.text)
            raise ExpressionError(f"expected a name in the path but found {found}", test.pos)
        return Node("step", test.text, test.pos, tuple(self.predicates()))

    def predicates(self) -> list[Node]:
        found: list[Node] = []
        while self.peek().kind == "[":
            self.take()
            found.append(self.binary(0))
            self.expect("]", "']'")
        return found

    def filter_expr(self) -> Node:
        token = self.take()
        if token.kind == "REF":
            node = Node("ref", token.text, token.pos)
        elif token.kind == "STRING":
            node = Node("string", token.text, token.pos)
        elif token.kind == "NUMBER":
            node = Node("number", token.text, token.pos)
        elif token.kind == "(":
            inner = self.binary(0)
            self.expect(")", "')' to close the '(' at character " + str(token.pos + 1))
            node = inner
        else:  # FUNC
            self.expect("(", "'('")
            args: list[Node] = []
            if self.peek().kind != ")":
                args.append(self.binary(0))
                while self.peek().kind == ",":
                    self.take()
                    args.append(self.binary(0))
            self.expect(")", f"')' to close {token.text}(")
            node = Node("call", token.text, token.pos, tuple(args))
        predicates = self.predicates()
        if predicates:
            if token.kind != "REF":  # pyxform writes ${name} as a path, which may take a predicate
                raise ExpressionError(
                    javarosa_rejection("a predicate on a parenthesised expression or function"), token.pos
                )
            return Node("path", "predicate", token.pos, (node, *predicates))
        return node


def parse_expression(text: str) -> Node:
    """Parse an XLSForm expression (XPath 1.0 with ${name} references) into a tree of Nodes.

    Parameters:
        text: the expression as written in the XLSForm cell.

    Raises ExpressionError (with the character position) when it does not parse, when it uses what ODK Collect
    refuses, or when it nests deeper than toolkit.xpath.MAX_EXPRESSION_DEPTH.
    """
    too_deep = nesting_too_deep(text)
    if too_deep is not None:
        raise ExpressionError(too_deep_message(too_deep), too_deep)
    try:
        return _Parser(text).parse()
    except RecursionError:  # a chain of operators that the nesting count does not see
        raise ExpressionError(too_deep_message(0), 0) from None
