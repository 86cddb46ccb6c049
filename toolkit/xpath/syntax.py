"""ODK XPath expressions as one typed syntax tree: the tokenizer and parser every stage uses.

Two dialects share the grammar, the tree and the messages:

* `parse(text)`: XPath as it stands in the XForm (the evaluators in `toolkit.xpath` and `toolkit.xpath.vector`,
  `simulate`, `validate`, `wording`).
* `parse_xlsform(text)`: an XLSForm cell (`forms.lint`): `${name}` references are primary expressions that may take
  a path or predicates (pyxform writes them as paths), and smart quotes are read as plain quotes, as pyxform does.

The tokenizer follows XPath 1.0 section 3.7 (when `*`, `and`, `or`, `div`, `mod` are operators) and keeps each token's
character position; every node carries the 0-based position of the token it starts at (a binary expression: its
operator), so a problem can be reported at its place in the cell. What ODK Collect (JavaRosa) refuses although XPath
1.0 allows it (unions, `//`, axes, node tests, paths and predicates on a parenthesised expression, `$variables`) and
nesting deeper than MAX_EXPRESSION_DEPTH raise `XPathRejectedError`, other syntax errors `XPathSyntaxError`; both
carry `position`.

Nodes are frozen dataclasses compared without their positions (`unparse` then `parse` gives an equal tree):
`Number`, `String`, `Reference` (`${name}`), `Call`, `Negate`, `Binary`, `LocationPath` of `Step`s (an optional `base`:
instance(), current() or a reference) and `Filter` (a reference with predicates, XLSForm only). `.` and `..` are
`LocationPath`s of one `self`/`parent` step whose test is NODE_TEST.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "MAX_EXPRESSION_DEPTH",
    "NODE_TEST",
    "NODE_TYPE_TESTS",
    "XPATH_AXES",
    "Binary",
    "Call",
    "Expr",
    "Filter",
    "LocationPath",
    "Negate",
    "Number",
    "Reference",
    "Step",
    "String",
    "XPathError",
    "XPathRejectedError",
    "XPathSyntaxError",
    "children",
    "is_context",
    "javarosa_rejection",
    "nesting_too_deep",
    "parse",
    "parse_xlsform",
    "too_deep_message",
    "unparse",
    "walk",
]


class XPathError(Exception):
    """Base class of the XPath errors."""


class XPathSyntaxError(XPathError):
    """The expression does not parse; `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int = 0) -> None:
        super().__init__(message)
        self.position = position


class XPathRejectedError(XPathSyntaxError):
    """Valid XPath 1.0 that JavaRosa refuses (unions, axes, //, node tests, filter paths, variables), or an
    expression nested too deeply to evaluate."""


# Nesting (parentheses, brackets, unary minus) beyond this is refused with a clear message instead of
# exhausting Python's stack; real forms stay far below it (a 40-branch nested if() is 40 levels).
MAX_EXPRESSION_DEPTH = 100

# Every XPath 1.0 axis; JavaRosa evaluates child, self and parent (only as `.` and `..`) and attribute (by
# name), and refuses the others when it loads the form.
XPATH_AXES = frozenset(
    {
        "ancestor",
        "ancestor-or-self",
        "attribute",
        "child",
        "descendant",
        "descendant-or-self",
        "following",
        "following-sibling",
        "namespace",
        "parent",
        "preceding",
        "preceding-sibling",
        "self",
    }
)
NODE_TYPE_TESTS = frozenset({"node", "text", "comment", "processing-instruction"})
# The test of the `self` and `parent` steps `.` and `..` (node(), the only node test JavaRosa takes).
NODE_TEST = "node()"
PATH_FUNCTIONS = ("instance", "current")


def javarosa_rejection(construct: str) -> str:
    """The message for valid XPath 1.0 that ODK Collect (JavaRosa) refuses, shared by lint and the evaluator.

    Parameters:
        construct: what the expression uses, e.g. "the union operator '|'" or "the ancestor:: axis".
    """
    return (
        f"{construct} is XPath 1.0 but ODK Collect (JavaRosa) cannot evaluate it; use paths of child names, "
        "'.', '..', '@name', instance('list')/root/item[...] or current()/..."
    )


def nesting_too_deep(text: str) -> int | None:
    """The 0-based position where `text` nests deeper than MAX_EXPRESSION_DEPTH, or None.

    Counts open parentheses and brackets outside quoted strings, and runs of unary minus signs.
    """
    depth = 0
    minus_run = 0
    quote = ""
    for position, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char in "([":
            depth += 1
            if depth > MAX_EXPRESSION_DEPTH:
                return position
        elif char in ")]":
            depth -= 1
        if char == "-":
            minus_run += 1
            if minus_run > MAX_EXPRESSION_DEPTH:
                return position
        elif not char.isspace():
            minus_run = 0
    return None


def too_deep_message(position: int) -> str:
    """The message for an expression nested deeper than MAX_EXPRESSION_DEPTH at `position` (0-based)."""
    return (
        f"the expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (at character {position + 1}); "
        "split it into several calculations"
    )


# --- the tree ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    text: str  # as written (lint reads the literal back)
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class String:
    value: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Reference:
    """`${name}` in an XLSForm cell (name may start with `last-saved#`)."""

    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    name: str  # as written, prefix included (jr:choice-name)
    args: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # or and = != < <= > >= + - * div mod
    left: Expr
    right: Expr
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Step:
    """One location step: axis child (name or `*`), attribute (name), self or parent (test NODE_TEST)."""

    axis: str
    name: str  # the name test as written (prefix included), `*`, or NODE_TEST
    predicates: tuple[Expr, ...] = ()
    pos: int = field(default=0, compare=False)

    @property
    def local_name(self) -> str:
        """The name without its namespace prefix (`jr:x` -> `x`)."""
        return self.name.split(":", 1)[-1]


@dataclass(frozen=True, slots=True)
class LocationPath:
    """A location path: absolute (`/data/a`), relative (`a/b`, `.`, `..`), or steps after `base` (instance(),
    current(), or in an XLSForm cell a reference, possibly filtered)."""

    absolute: bool
    steps: tuple[Step, ...]
    base: Expr | None = None
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Filter:
    """`${name}[predicate]...` in an XLSForm cell."""

    base: Expr
    predicates: tuple[Expr, ...]
    pos: int = field(default=0, compare=False)


Expr = Number | String | Reference | Call | Negate | Binary | LocationPath | Filter
Node = Expr | Step


def children(node: Node) -> tuple[Node, ...]:  # noqa: PLR0911 (one return per node class)
    """The direct sub-nodes of `node`, in source order."""
    match node:
        case Call(args=args):
            return args
        case Negate(operand=operand):
            return (operand,)
        case Binary(left=left, right=right):
            return (left, right)
        case LocationPath(steps=steps, base=base):
            return steps if base is None else (base, *steps)
        case Filter(base=base, predicates=predicates):
            return (base, *predicates)
        case Step(predicates=predicates):
            return predicates
    return ()


def walk(node: Node) -> Iterator[Node]:
    """`node` and every node below it, depth first in source order."""
    yield node
    for child in children(node):
        yield from walk(child)


def is_context(node: Node, step: str = ".") -> bool:
    """Whether `node` is `.` (or `..` with step="..") on its own."""
    axis = "self" if step == "." else "parent"
    return (
        isinstance(node, LocationPath)
        and not node.absolute
        and node.base is None
        and len(node.steps) == 1
        and node.steps[0].axis == axis
        and node.steps[0].name == NODE_TEST
    )


def unparse(node: Node) -> str:  # noqa: PLR0911 (one return per node class)
    """Expression text that parses back to `node` (binary operations parenthesised)."""
    match node:
        case Number(text=text):
            return text
        case String(value=value):
            quote = '"' if "'" in value else "'"
            return quote + value + quote
        case Reference(name=name):
            return "${" + name + "}"
        case Call(name=name, args=args):
            return name + "(" + ", ".join(unparse(a) for a in args) + ")"
        case Negate(operand=operand):
            return "-" + unparse(operand)
        case Binary(op=op, left=left, right=right):
            return f"({unparse(left)} {op} {unparse(right)})"
        case Filter(base=base, predicates=predicates):
            return unparse(base) + "".join(f"[{unparse(p)}]" for p in predicates)
        case LocationPath(absolute=absolute, steps=steps, base=base):
            text = "/".join(unparse(s) for s in steps)
            if base is not None:
                return unparse(base) + "/" + text
            return "/" + text if absolute else text
        case Step(axis=axis, name=name, predicates=predicates):
            head = {"self": ".", "parent": ".."}.get(axis, "@" + name if axis == "attribute" else name)
            return head + "".join(f"[{unparse(p)}]" for p in predicates)
    raise TypeError(f"not a syntax node: {node!r}")


# --- the tokenizer -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # REF STRING NUMBER NAME FUNC OP AXIS VAR ( ) [ ] , / // . .. @ * END
    text: str
    pos: int


# XML NCName (XML 1.0 NameStartChar / NameChar without ':'), as pyxform accepts in names and ${references}.
_NCNAME = (
    r"[A-Za-z_\u00c0-\u02ff\u0370-\u1fff\u200c-\u200d\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf"
    r"\ufdf0-\ufffd][\w.\-\u00b7\u0300-\u036f\u203f-\u2040]*"
)
# In an XForm (written by pyxform or by hand) JavaRosa's lexer takes any character past Latin-1 in a name.
_XFORM_NAME = r"[A-Za-z_\u00c0-\uffff][\w.\-\u00b7\u00c0-\uffff]*"
_COMMON_TOKENS = r"""
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<badstring>['"])
  | (?P<number>\d+(?:\.\d*)?|\.\d+)
  | (?P<dotdot>\.\.)
  | (?P<dot>\.)
  | (?P<dslash>//)
  | (?P<op2>!=|<=|>=|::)
  | (?P<single>[/()\[\],|@*=<>+\-])
"""
_XLSFORM_TOKENS = re.compile(
    r"(?P<ws>\s+)"
    rf"  | (?P<ref>\$\{{\s*(?P<ref_name>(?:last-saved\#)?{_NCNAME})\s*\}})"
    r"  | (?P<badref>\$\{[^}]*\}?|\$)"
    + _COMMON_TOKENS
    + rf"  | (?P<name>{_NCNAME}(?::{_NCNAME})?)"
    r"  | (?P<other>.)",
    re.VERBOSE | re.DOTALL,
)
_XFORM_TOKENS = re.compile(
    r"(?P<ws>\s+)"
    r"  | (?P<var>\$)"
    + _COMMON_TOKENS
    + rf"  | (?P<name>{_XFORM_NAME}(?::(?:{_XFORM_NAME}|\*))?)"
    r"  | (?P<other>.)",
    re.VERBOSE | re.DOTALL,
)
# After these tokens no operand has ended, so `*` is a wildcard and `and`/`div` are names (XPath 1.0 §3.7).
_NO_OPERAND_BEFORE = {"(", "[", ",", "@", "::", "OP", "/", "//", "VAR", None}
_OPERATOR_NAMES = {"and", "or", "div", "mod"}
# JavaRosa's lexer reads an operator name glued to what follows when an operator is due: `3mod4` is 3 mod 4,
# `6andpath` is 6 and path, `5 divx` is 5 div x.
_GLUED_OPERATOR = re.compile(r"^(and|or|div|mod)(?=.)")
_SMART_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_PLAIN_KINDS = {"dotdot": "..", "dot": ".", "dslash": "//"}


def tokenize(text: str, *, xlsform: bool = False) -> list[Token]:
    """Split an expression into tokens, ending with an END token.

    Parameters:
        text: the expression (smart quotes already replaced for an XLSForm cell).
        xlsform: read `${name}` references (an XLSForm cell) rather than `$variables` (an XForm).

    Raises XPathSyntaxError on a character XPath does not allow, an unclosed string or a bad ${reference}.
    """
    pattern = _XLSFORM_TOKENS if xlsform else _XFORM_TOKENS
    tokens: list[Token] = []
    at = 0
    while at < len(text):
        match = pattern.match(text, at)
        assert match is not None  # the last alternative matches any character
        at = match.end()
        kind = match.lastgroup or ""
        value = match.group()
        pos = match.start()
        if kind == "ws":
            continue
        if kind == "badref":
            raise XPathSyntaxError(f"malformed reference {value!r}: write ${{name}} with a question name", pos)
        if kind == "badstring":
            raise XPathSyntaxError(f"the text starting with {value} has no closing {value}", pos)
        if kind == "other":
            raise XPathSyntaxError(f"unexpected character {value!r}", pos)
        previous_is_operand = (tokens[-1].kind if tokens else None) not in _NO_OPERAND_BEFORE
        if kind == "name":
            glued = _GLUED_OPERATOR.match(value)
            if glued and previous_is_operand and value not in _OPERATOR_NAMES:
                # JavaRosa reads `3mod4` as 3 mod 4 and `6andx` as 6 and x: the operator, then the rest.
                tokens.append(Token("OP", glued.group(1), pos))
                at = pos + len(glued.group(1))
                continue
            tokens.append(Token(_name_kind(value, text[match.end() :], previous_is_operand), value, pos))
        else:
            tokens.append(_symbol(kind, value, match, previous_is_operand))
    tokens.append(Token("END", "", len(text)))
    return tokens


def _name_kind(value: str, rest: str, previous_is_operand: bool) -> str:
    """An operator name, function name, axis or name test, by what precedes and follows it."""
    rest = rest.lstrip()
    if value in _OPERATOR_NAMES and previous_is_operand:
        return "OP"
    if rest.startswith("::"):
        return "AXIS"
    if rest.startswith("("):
        return "FUNC"
    return "NAME"


def _symbol(kind: str, value: str, match: re.Match[str], previous_is_operand: bool) -> Token:  # noqa: PLR0911 (one return per token kind)
    pos = match.start()
    if kind == "ref":
        return Token("REF", match.group("ref_name"), pos)
    if kind == "string":
        return Token("STRING", value[1:-1], pos)
    if kind == "number":
        return Token("NUMBER", value, pos)
    if kind == "var":
        return Token("VAR", value, pos)
    if kind in _PLAIN_KINDS:
        return Token(_PLAIN_KINDS[kind], value, pos)
    if kind == "op2":
        return Token("::" if value == "::" else "OP", value, pos)
    if value == "*" and not previous_is_operand:
        return Token("*", value, pos)
    if value in "=<>+-*|":
        return Token("OP", value, pos)
    return Token(value, value, pos)


# --- the parser --------------------------------------------------------------------------------------------------

_BINARY_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"or"}),
    frozenset({"and"}),
    frozenset({"=", "!="}),
    frozenset({"<", ">", "<=", ">="}),
    frozenset({"+", "-"}),
    frozenset({"*", "div", "mod"}),
)
_PRECEDENCE = {op: level for level, ops in enumerate(_BINARY_LEVELS) for op in ops}
_STEP_START = {"NAME", "*", ".", "..", "@", "AXIS"}


def _found(token: Token) -> str:
    return "the end of the expression" if token.kind == "END" else repr(token.text)


class _Parser:
    """Recursive-descent parser for the XPath 1.0 expression grammar (with ${name} in an XLSForm cell)."""

    def __init__(self, text: str, *, xlsform: bool) -> None:
        self.tokens = tokenize(text, xlsform=xlsform)
        self.xlsform = xlsform
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at_op(self, text: str) -> bool:
        token = self.tokens[self.i]
        return token.kind == "OP" and token.text == text

    def expect(self, kind: str, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise XPathSyntaxError(f"expected {what} but found {_found(token)}", token.pos)
        return self.take()

    def parse(self) -> Expr:
        if self.peek().kind == "END":
            raise XPathSyntaxError("the expression is empty", 0)
        node = self.binary(0)
        token = self.peek()
        if token.kind != "END":
            if token.kind == ")":
                raise XPathSyntaxError("')' without a matching '('", token.pos)
            raise XPathSyntaxError(f"unexpected {token.text!r} (missing operator or parenthesis?)", token.pos)
        return node

    def binary(self, level: int) -> Expr:
        """Binary operators of `level` and tighter, by precedence climbing (one stack frame per level)."""
        left = self.unary()
        while True:
            token = self.peek()
            found = _PRECEDENCE.get(token.text) if token.kind == "OP" else None
            if found is None or found < level:
                return left
            self.take()
            left = Binary(token.text, left, self.binary(found + 1), token.pos)

    def unary(self) -> Expr:
        signs: list[Token] = []
        while self.at_op("-"):
            signs.append(self.take())
        node = self.union()
        for sign in reversed(signs):
            node = Negate(node, sign.pos)
        return node

    def union(self) -> Expr:
        left = self.path()
        if self.at_op("|"):
            op = self.take()
            self.path()  # what follows must parse too: `8|-9` is a syntax error, `a | b` a refusal
            raise XPathRejectedError(javarosa_rejection("the union operator '|'"), op.pos)
        return left

    def path(self) -> Expr:
        token = self.peek()
        if token.kind in {"/", "//"}:
            return self.absolute_path()
        if token.kind in {"REF", "STRING", "NUMBER", "(", "FUNC", "VAR"} and not (
            token.kind == "FUNC" and token.text in NODE_TYPE_TESTS
        ):
            primary = self.filter_expr()
            if self.peek().kind not in {"/", "//"}:
                return primary
            # pyxform writes ${name} as a path; JavaRosa takes a path after instance() and current() only
            slash = self.peek()
            allowed = isinstance(primary, Reference | Filter) or (
                isinstance(primary, Call) and primary.name in PATH_FUNCTIONS
            )
            rejection = XPathRejectedError(
                javarosa_rejection("a path after an expression other than instance() or current()"), slash.pos
            )
            if not allowed and self.xlsform:
                raise rejection
            # in an XForm, steps that do not parse are a syntax error first (`5/5`)
            steps = self.relative_steps(self.take_slash())
            if not allowed:
                raise rejection
            return LocationPath(False, steps, primary, token.pos)
        if token.kind in _STEP_START or token.kind == "FUNC":
            return LocationPath(False, self.relative_steps(), None, token.pos)
        raise XPathSyntaxError(
            f"expected a value, a reference or a function call but found {_found(token)}", token.pos
        )

    def take_slash(self) -> int | None:
        """Take a '/' or '//'; the position of a '//' that is refused once the path's steps parse (XForm)."""
        separator = self.take()
        if separator.kind != "//":
            return None
        if not self.xlsform:
            return separator.pos  # JavaRosa refuses `//` after the whole path parsed (`a//b[` is a syntax error)
        self.step()  # `//` alone is a syntax error, `//x` a refusal
        raise XPathRejectedError(javarosa_rejection("'//' (a descendant at any depth)"), separator.pos)

    def absolute_path(self) -> LocationPath:
        token = self.take()
        steps: tuple[Step, ...] = ()
        following = self.peek()
        if following.kind in _STEP_START or (
            following.kind == "FUNC" and (following.text in NODE_TYPE_TESTS or not self.xlsform)
        ):
            steps = self.relative_steps(token.pos if token.kind == "//" and not self.xlsform else None)
        elif token.kind == "//":
            raise XPathSyntaxError("'//' must be followed by a step", following.pos)
        if token.kind == "//":
            raise XPathRejectedError(javarosa_rejection("'//' (a descendant at any depth)"), token.pos)
        if not self.xlsform and steps and steps[0].axis == "parent":
            raise XPathRejectedError(javarosa_rejection("'..' right after the root '/'"), steps[0].pos)
        return LocationPath(True, steps, None, token.pos)

    def relative_steps(self, descendant: int | None = None) -> tuple[Step, ...]:
        steps = [self.step()]
        while self.peek().kind in {"/", "//"}:
            found = self.take_slash()
            descendant = found if descendant is None else descendant
            steps.append(self.step())
        if descendant is not None:
            raise XPathRejectedError(javarosa_rejection("'//' (a descendant at any depth)"), descendant)
        if not self.xlsform and any(step.axis == "attribute" for step in steps[:-1]):
            raise XPathRejectedError(javarosa_rejection("a step after an attribute"), steps[-1].pos)
        return tuple(steps)

    def step(self) -> Step:
        token = self.peek()
        if token.kind in {".", ".."}:
            self.take()
            if not self.xlsform and self.peek().kind == "[":
                raise XPathSyntaxError(f"a predicate cannot follow {token.text!r}", self.peek().pos)
            return Step("self" if token.kind == "." else "parent", NODE_TEST, (), token.pos)
        axis = "child"
        if token.kind == "@":
            self.take()
            axis = "attribute"
        elif token.kind == "AXIS":
            self.take()
            self.expect("::", "'::'")
            axis = token.text
            if axis not in XPATH_AXES:
                raise XPathSyntaxError(f"unknown axis {axis}::", token.pos)
        if axis not in ("child", "attribute", "self", "parent") and self.xlsform:
            raise XPathRejectedError(javarosa_rejection(f"the {axis}:: axis"), token.pos)
        test = self.peek()  # in an XForm, a test that does not parse is a syntax error first (`preceding::..`)
        if test.kind == "FUNC" and test.text in NODE_TYPE_TESTS:
            self.node_test(test, axis)
            return Step(axis, NODE_TEST, tuple(self.predicates()), test.pos)
        # JavaRosa's lexer reads a name before '(' or '::' as a name test where a step is due (`/data/f(`
        # fails later, at the '(').
        names = {"NAME", "*"} if self.xlsform else {"NAME", "*", "FUNC", "AXIS"}
        if test.kind not in names:
            raise XPathSyntaxError(f"expected a name in the path but found {_found(test)}", test.pos)
        self.take()
        if axis not in ("child", "attribute"):
            raise XPathRejectedError(javarosa_rejection(f"the {axis}:: axis"), token.pos)
        if test.text.endswith("*") and (axis == "attribute" or test.text != "*"):
            wildcard = ("@" if axis == "attribute" else "") + test.text
            raise XPathRejectedError(javarosa_rejection(f"the wildcard {wildcard}"), test.pos)
        return Step(axis, test.text, tuple(self.predicates()), test.pos)

    def node_test(self, test: Token, axis: str) -> None:
        self.take()
        self.expect("(", "'('")
        if test.text == "processing-instruction" and self.peek().kind == "STRING":
            self.take()
        self.expect(")", "')'")
        if not (test.text == "node" and axis in ("self", "parent")):
            raise XPathRejectedError(javarosa_rejection(f"the node test {test.text}()"), test.pos)

    def predicates(self) -> list[Expr]:
        found: list[Expr] = []
        while self.peek().kind == "[":
            self.take()
            found.append(self.binary(0))
            self.expect("]", "']'")
        return found

    def filter_expr(self) -> Expr:
        token = self.take()
        node: Expr
        if token.kind == "REF":
            node = Reference(token.text, token.pos)
        elif token.kind == "STRING":
            node = String(token.text, token.pos)
        elif token.kind == "NUMBER":
            node = Number(float(token.text), token.text, token.pos)
        elif token.kind == "VAR":
            name = self.peek()
            if name.kind not in {"NAME", "FUNC", "AXIS"} or "*" in name.text:
                raise XPathSyntaxError("'$' must be followed by a variable name", name.pos)
            raise XPathRejectedError(javarosa_rejection(f"the variable ${name.text}"), token.pos)
        elif token.kind == "(":
            node = self.binary(0)
            self.expect(")", "')' to close the '(' at character " + str(token.pos + 1))
        else:  # FUNC
            node = self.call(token)
        if self.peek().kind != "[":
            return node
        rejection = XPathRejectedError(
            javarosa_rejection("a predicate on a parenthesised expression or function"), token.pos
        )
        if not self.xlsform:
            raise rejection  # JavaRosa refuses it at the '[' (what follows need not parse)
        predicates = self.predicates()
        if token.kind != "REF":  # pyxform writes ${name} as a path, which may take a predicate
            raise rejection
        return Filter(node, tuple(predicates), token.pos)

    def call(self, token: Token) -> Call:
        self.expect("(", "'('")
        args: list[Expr] = []
        if self.peek().kind != ")":
            args.append(self.binary(0))
            while self.peek().kind == ",":
                self.take()
                args.append(self.binary(0))
        self.expect(")", f"')' to close {token.text}(")
        if (
            not self.xlsform
            and token.text == "instance"
            and (len(args) != 1 or not isinstance(args[0], String))
        ):
            raise XPathRejectedError(javarosa_rejection("instance() with anything but one quoted name"), token.pos)
        return Call(token.text, tuple(args), token.pos)


def _parse(text: str, *, xlsform: bool) -> Expr:
    too_deep = nesting_too_deep(text)
    if too_deep is not None:
        raise XPathRejectedError(too_deep_message(too_deep), too_deep)
    try:
        return _Parser(text, xlsform=xlsform).parse()
    except RecursionError:  # a chain of operators that the nesting count does not see
        raise XPathRejectedError(too_deep_message(0), 0) from None


def parse(text: str) -> Expr:
    """The syntax tree of an XPath expression as it stands in an XForm.

    Parameters:
        text: the expression.

    Raises XPathSyntaxError when it does not parse, XPathRejectedError (a subclass) for what JavaRosa refuses
    or for nesting deeper than MAX_EXPRESSION_DEPTH; both carry the 0-based `position`.
    """
    return _parse(text, xlsform=False)


def parse_xlsform(text: str) -> Expr:
    """The syntax tree of an XLSForm expression (XPath 1.0 with ${name} references).

    Parameters:
        text: the expression as written in the XLSForm cell (smart quotes are read as plain quotes, as pyxform
            does; positions stay those of the cell).

    Raises XPathSyntaxError (with `position`) when it does not parse, XPathRejectedError when it uses what ODK
    Collect refuses or nests deeper than MAX_EXPRESSION_DEPTH.
    """
    return _parse(text.translate(_SMART_QUOTES), xlsform=True)
