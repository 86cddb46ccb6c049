"""Universe and condition expressions of the indicator catalogue, evaluated over a whole table at once.

A small language in the XLSForm spirit, so a methodologist reads it as she reads a `relevant`:

    hl_age >= 15 and hl_sex = '2'
    ab_work = '1' and not(ab_emp = '2')
    selected(ru_use, '3') or rr_any12 in ('1', '2')
    answered(rm_rci) and rm_rci >= 0

Names are columns (bare, or `${name}` as in XLSForm). Literals are numbers or quoted codes. Operators: `=`, `!=`,
`<`, `<=`, `>`, `>=`, `in (…)`, `and`, `or`, `not(…)`; functions `selected(var, 'code')` (a select_multiple answer
contains the code), `answered(var)` (not missing) and `missing(var)`.

Three-valued care: a comparison with a missing value is false (as in XPath, where an empty answer compares false
with a number), so `x != '1'` does NOT select rows where x was not asked. Write `missing(x) or x != '1'` when that is
meant. Codes compare as text with text literals and as numbers with number literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<op><=|>=|!=|=|<|>|\(|\)|,)"
    r"|(?P<name>\$\{[A-Za-z_][A-Za-z0-9_.\-]*\}|[A-Za-z_][A-Za-z0-9_.\-]*))"
)
_FUNCTIONS = {"selected": 2, "answered": 1, "missing": 1, "not": 1}


class FilterSyntaxError(ValueError):
    """The expression does not parse; the message says where."""


@dataclass(frozen=True)
class Compare:
    variable: str
    op: str
    values: tuple[str | float, ...]


@dataclass(frozen=True)
class Call:
    function: str
    variable: str | None
    argument: str | None
    inner: Node | None = None


@dataclass(frozen=True)
class Logic:
    op: str  # "and" | "or"
    left: Node
    right: Node


Node = Compare | Call | Logic


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterSyntaxError(f"cannot read {text[position : position + 20]!r} at character {position + 1}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "name" and value.startswith("${"):
            value = value[2:-1]
        out.append((kind, value))
        position = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (expected is not None and token[1] != expected):
            found = "the end" if token is None else repr(token[1])
            raise FilterSyntaxError(f"expected {expected or 'more'} but found {found} in {self.text!r}")
        self.i += 1
        return token

    def parse(self) -> Node:
        node = self.disjunction()
        if (token := self.peek()) is not None:
            raise FilterSyntaxError(f"unexpected {token[1]!r} in {self.text!r}")
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.peek() == ("name", "or"):
            self.take()
            node = Logic("or", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.atom()
        while self.peek() == ("name", "and"):
            self.take()
            node = Logic("and", node, self.atom())
        return node

    def literal(self) -> str | float:
        kind, value = self.take()
        if kind == "num":
            return float(value)
        if kind == "str":
            return value[1:-1]
        raise FilterSyntaxError(f"expected a number or a quoted code, found {value!r} in {self.text!r}")

    def atom(self) -> Node:
        kind, value = self.take()
        if value == "(":
            node = self.disjunction()
            self.take(")")
            return node
        if kind != "name":
            raise FilterSyntaxError(f"expected a variable name, found {value!r} in {self.text!r}")
        if value in _FUNCTIONS and self.peek() == ("op", "("):
            self.take("(")
            if value == "not":
                inner = self.disjunction()
                self.take(")")
                return Call("not", None, None, inner)
            var_kind, variable = self.take()
            if var_kind != "name":
                raise FilterSyntaxError(f"{value}() needs a variable name first, in {self.text!r}")
            argument = None
            if _FUNCTIONS[value] == 2:
                self.take(",")
                argument = str(self.literal())
                if argument.endswith(".0"):
                    argument = argument[:-2]
            self.take(")")
            return Call(value, variable, argument)
        token = self.peek()
        if token == ("name", "in"):
            self.take()
            self.take("(")
            values = [self.literal()]
            while self.peek() == ("op", ","):
                self.take()
                values.append(self.literal())
            self.take(")")
            return Compare(value, "in", tuple(values))
        if token is None or token[1] not in {"=", "!=", "<", "<=", ">", ">="}:
            raise FilterSyntaxError(f"{value!r} must be compared with something (=, !=, <, >, in (…)) in {self.text!r}")
        op = self.take()[1]
        return Compare(value, op, (self.literal(),))


def parse_filter(text: str) -> Node:
    """Parse an expression (raises FilterSyntaxError with the place of the problem)."""
    return _Parser(text).parse()


def variables(node: Node) -> list[str]:
    """The variables an expression reads, in order of appearance."""
    if isinstance(node, Compare):
        return [node.variable]
    if isinstance(node, Call):
        return variables(node.inner) if node.inner is not None else [node.variable or ""]
    return variables(node.left) + variables(node.right)


def codes_compared(node: Node) -> list[tuple[str, str]]:
    """(variable, code) pairs the expression compares a select answer with: `x = '3'`, `selected(x, '3')`."""
    if isinstance(node, Compare):
        if node.op in {"=", "!=", "in"}:
            return [(node.variable, str(v)) for v in node.values if isinstance(v, str)]
        return []
    if isinstance(node, Call):
        if node.inner is not None:
            return codes_compared(node.inner)
        return [(node.variable or "", node.argument or "")] if node.function == "selected" else []
    return codes_compared(node.left) + codes_compared(node.right)


def _as_text(series: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(series):
        codes, distinct = pd.factorize(series, use_na_sentinel=True)  # each distinct number written once
        texts = np.array([*(str(int(v)) if float(v).is_integer() else str(v) for v in distinct), None], dtype=object)
        return pd.Series(texts[codes], index=series.index, dtype=object)  # code -1 (missing): the last, None
    return series.astype("string")


def evaluate(node: Node, table: pd.DataFrame) -> np.ndarray:  # noqa: PLR0911 (one return per kind of node)
    """Boolean mask of the rows where the expression is true (missing compares false)."""
    if isinstance(node, Logic):
        left, right = evaluate(node.left, table), evaluate(node.right, table)
        return (left & right) if node.op == "and" else (left | right)
    if isinstance(node, Call):
        if node.inner is not None:
            return ~evaluate(node.inner, table)
        column = table[node.variable]
        present = column.notna().to_numpy()
        if node.function == "answered":
            return present
        if node.function == "missing":
            return ~present
        words = column.astype("string").fillna("").str.split()
        return np.fromiter((node.argument in w for w in words), dtype=bool, count=len(table))
    column = table[node.variable]
    present = column.notna().to_numpy()
    if all(isinstance(v, float) for v in node.values):
        numbers = pd.to_numeric(column, errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        target = np.array(node.values, dtype=float)
        with np.errstate(invalid="ignore"):
            result = np.isin(numbers, target) if node.op == "in" else _OPS[node.op](numbers, target[0])
        return result & np.isfinite(numbers)
    text = _as_text(column).fillna("").to_numpy(dtype=object)
    if node.op == "in":
        return np.isin(text, [str(v) for v in node.values]) & present
    if node.op not in {"=", "!="}:
        raise FilterSyntaxError(f"{node.variable} {node.op} needs a number, not a quoted code")
    equal = text == str(node.values[0])
    return (equal if node.op == "=" else ~equal) & present


_OPS = {
    "=": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
