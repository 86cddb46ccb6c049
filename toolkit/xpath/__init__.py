"""The ODK XPath evaluator: parse once, evaluate over a submission, with JavaRosa's semantics.

ODK Collect evaluates skip logic, constraints and calculations with JavaRosa. This module reproduces
JavaRosa's XPath engine closely enough that its verdicts match (tests/test_validate_javarosa.py runs JavaRosa
itself on the same forms and instances), so that `validate` and `simulate` share one evaluator.

Public API (stable; `simulate` and `validate` use it)::

    from toolkit.xpath import compile_xpath, build_tree, EvalEnv, to_boolean, to_number, to_string

    expr = compile_xpath("/data/age >= 18 and selected(/data/langs, 'ru')")   # parsed once, cached
    root = build_tree(lxml_root_element, types={"/data/age": "int"})           # instance tree (XNode)
    env = EvalEnv(root=root, secondary={"yn": build_tree(choices_root)}, today=date(2026, 11, 27))
    value = expr.evaluate(root.find("/data/age"), env=env)                     # Python value, see below
    ok = expr.evaluate_boolean(context_node, env=env)

Values follow JavaRosa's types: `str`, `float` (numbers, NaN included), `bool`, `datetime.date` (dates) and
`datetime.datetime` (timezone-aware, for dateTime), and `list[XNode]` for node-sets. Coercions are `to_boolean`,
`to_number`, `to_string`, `to_date` (JavaRosa's XPathFuncExpr.toBoolean/toNumeric/toString/toDate). A node's value is
typed by its bind type as JavaRosa does (int/decimal nodes are numbers, date nodes dates, empty nodes the empty string);
pass the types when building the tree (`build_tree(..., types=...)`).

Errors: `XPathSyntaxError` (the expression does not parse), `XPathRejectedError` (a subclass: valid XPath 1.0
that JavaRosa refuses when it loads a form, such as unions, `//`, axes other than child/attribute, node tests,
paths after other expressions than instance()/current(), `$variables`, or nesting deeper than
MAX_EXPRESSION_DEPTH; lint gives the same messages), `XPathUnsupportedError` (a function this evaluator does not
implement; raised by `compile_xpath`, so callers report it once per expression), `XPathEvalError` (a run-time
error JavaRosa would also raise, e.g. a repeated field used as a single value).

As in JavaRosa, an absolute path evaluated inside a repeat is pinned to the context's repeat instances
(`/data/hh/age` evaluated in `/data/hh[2]/...` reads `/data/hh[2]/age`). tests/test_xpath_javarosa_cases.py
runs JavaRosa's own expression tests (tests/fixtures/javarosa-xpath) against this module.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import itertools
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from toolkit.xml import UntrustedXMLError, parse_untrusted
from toolkit.xpath.syntax import (
    MAX_EXPRESSION_DEPTH,
    NODE_TYPE_TESTS,
    XPATH_AXES,
    Binary,
    Call,
    Expr,
    LocationPath,
    Negate,
    Number,
    Step,
    String,
    XPathError,
    XPathRejectedError,
    XPathSyntaxError,
    javarosa_rejection,
    nesting_too_deep,
    parse,
    too_deep_message,
    walk,
)

__all__ = [
    "MAX_EXPRESSION_DEPTH",
    "NODE_TYPE_TESTS",
    "XPATH_AXES",
    "CompiledExpr",
    "EvalEnv",
    "XNode",
    "XPathError",
    "XPathEvalError",
    "XPathRejectedError",
    "XPathSyntaxError",
    "XPathUnsupportedError",
    "build_tree",
    "compile_tree",
    "compile_xpath",
    "javarosa_rejection",
    "load_secondary_instance",
    "nesting_too_deep",
    "parse",
    "to_boolean",
    "to_date",
    "to_number",
    "to_string",
    "too_deep_message",
    "value_function",
    "wrap_calculated",
]

NAN = float("nan")
EPOCH = date(1970, 1, 1)
DAY_SECONDS = 86400.0


class XPathUnsupportedError(XPathError):
    """The expression calls a function this evaluator does not implement."""

    def __init__(self, function: str) -> None:
        super().__init__(f"the function {function}() is not supported by migkit's evaluator")
        self.function = function


class XPathEvalError(XPathError):
    """A run-time error that JavaRosa raises too (repeated field as a value, bad date, bad arguments)."""


# ----------------------------------------------------------------------------------------------------
# Instance tree
# ----------------------------------------------------------------------------------------------------


class XNode:
    """One element (or attribute) of an instance: name, text, typed value, children, parent.

    `dtype` is the bind type (int, decimal, date, dateTime, boolean, string, ...) that types the node's value.
    """

    __slots__ = (
        "_chain",
        "_repeat_names",
        "_value",
        "attrs",
        "children",
        "dtype",
        "index",
        "is_attr",
        "name",
        "parent",
        "relevant",
        "text",
    )

    def __init__(
        self, name: str, text: str | None = None, parent: XNode | None = None, dtype: str | None = None
    ):
        self.name = name
        self.text = text
        self.parent = parent
        self.children: list[XNode] = []
        self.attrs: dict[str, str] = {}
        self.dtype = dtype
        self.index = 0  # 0-based position among same-named siblings (JavaRosa's multiplicity)
        self.is_attr = False
        self._value: Any = None
        self._repeat_names: frozenset[str] | None = None
        self._chain: list[XNode] | None = None  # root .. self, once attached under its tree's root
        # JavaRosa reads a non-relevant node (or one inside a non-relevant group) as empty in every
        # expression.
        self.relevant = True

    def append(self, child: XNode) -> XNode:
        child.parent = self
        child.index = sum(1 for c in self.children if c.name == child.name)
        self.children.append(child)
        return child

    def child(self, name: str) -> XNode | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    @property
    def string(self) -> str:
        return self.text or ""

    def set(self, text: str | None, typed: Any = None) -> None:
        """Replace the node's text; `typed` is its in-memory value when it differs from the text's."""
        self.text = text
        self._value = typed

    @property
    def value(self) -> Any:
        """The node's value as JavaRosa's getRefValue gives it (typed by `dtype`; "" if non-relevant)."""
        if not self.relevant:
            return ""
        cached = self._value
        if cached is None:
            cached = self._value = _typed_value(self.text, self.dtype)
        return cached

    def path(self, *, indexes: bool = True) -> str:
        """Absolute path; with indexes, ``[n]`` (1-based) on repeat instances and repeated elements."""
        parts = []
        node: XNode | None = self
        while node is not None:
            name = ("@" + node.name) if node.is_attr else node.name
            if indexes and node.parent is not None and not node.is_attr and _is_repeated(node):
                name += f"[{node.index + 1}]"
            parts.append(name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    def generic_path(self) -> str:
        return self.path(indexes=False)

    def find(self, path: str) -> XNode | None:
        """The first node at a simple absolute path (``/data/g/x``) below this tree's root."""
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != self.name:
            return None
        node: XNode | None = self
        for part in parts[1:]:
            node = node.child(part) if node is not None else None
        return node

    def iter(self) -> Iterable[XNode]:
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def __repr__(self) -> str:
        return f"XNode({self.path()!r}, {self.text!r})"


def _is_repeated(node: XNode) -> bool:
    if node.index > 0:
        return True
    parent = node.parent
    if parent is None:
        return False
    if parent._repeat_names and node.name in parent._repeat_names:
        return True
    return sum(1 for c in parent.children if c.name == node.name) > 1


def _local_name(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def build_tree(element: Any, *, types: Mapping[str, str] | None = None, repeats: Iterable[str] = ()) -> XNode:
    """An instance tree (XNode) from an lxml element.

    Parameters:
        element: the root element of the instance (e.g. ``<data id=...>``) or of a secondary instance.
        types: bind type per generic path (``/data/age`` -> ``int``); nodes not listed are strings.
        repeats: generic paths of repeats, so that the first instance of a repeat is written ``x[1]`` in
            paths.
    """
    types = types or {}
    repeat_paths = set(repeats)

    def visit(el: Any, parent: XNode | None, prefix: str) -> XNode:
        name = _local_name(el.tag)
        path = f"{prefix}/{name}"
        kids = [c for c in el if isinstance(c.tag, str)]
        text = None if kids else el.text
        node = XNode(name, text, None, types.get(path))
        for key, value in el.attrib.items():
            attr = XNode(_local_name(key), value, node)
            attr.is_attr = True
            node.attrs[attr.name] = value
        if parent is not None:
            parent.append(node)
        for child in kids:
            visit(child, node, path)
        if repeat_paths:
            names = {p.rsplit("/", 1)[1] for p in repeat_paths if p.rsplit("/", 1)[0] == path}
            if names:
                node._repeat_names = frozenset(names)
        return node

    return visit(element, None, "")


def _typed_value(text: str | None, dtype: str | None) -> Any:  # noqa: PLR0911 (one return per JavaRosa type rule)
    if text is None or text == "":
        return ""
    if dtype is None or dtype == "string":
        return text
    if dtype in ("int", "integer", "long", "decimal"):
        number = _parse_decimal(text)
        if number is None:
            return text
        if dtype != "decimal":
            return float(int(number))
        return number
    if dtype == "date":
        parsed = _parse_datetime(text.strip())
        if parsed is None:
            return text
        return parsed.date() if isinstance(parsed, datetime) else parsed
    if dtype == "dateTime":
        parsed = _parse_datetime(text.strip())
        return parsed if parsed is not None else text
    if dtype == "boolean":
        return text.strip().lower() in ("true", "1")
    return text


_DECIMAL_TEXT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _parse_decimal(text: str) -> float | None:
    """A stored int/decimal answer as JavaRosa's IntegerData/DecimalData cast reads it."""
    if not _DECIMAL_TEXT.match(text):
        return None
    return float(text)


# ----------------------------------------------------------------------------------------------------
# Dates
# ----------------------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"^(-?\d{4,})-(\d{2})-(\d{2})$")
_DATETIME_RE = re.compile(
    r"^(-?\d{4,})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def _parse_datetime(text: str, tz: tzinfo | None = None) -> date | datetime | None:
    """ISO 8601 date or dateTime; a dateTime without offset is local time (`tz`, UTC by default)."""
    m = _DATE_RE.match(text)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    m = _DATETIME_RE.match(text)
    if not m:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    fraction = (m.group(7) or "0")[:6].ljust(6, "0")
    offset = m.group(8)
    if offset is None:
        zone = tz or UTC
    elif offset == "Z":
        zone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours = int(digits[:2])
        minutes = int(digits[2:4] or 0)
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=zone)
    except ValueError:
        return None


def _as_datetime(value: date, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=tz)


def _days_since_epoch(value: date, tz: tzinfo) -> float:
    """JavaRosa's toNumeric(Date): whole local days since 1970-01-01."""
    if isinstance(value, datetime):
        value = value.astimezone(tz).date()
    return float((value - EPOCH).days)


def _fractional_days(value: date, tz: tzinfo) -> float:
    """JavaRosa's decimal-date-time: (milliseconds since the epoch) / day, local midnight for dates."""
    moment = _as_datetime(value, tz)
    return moment.timestamp() / DAY_SECONDS


def _format_iso(value: date, tz: tzinfo) -> str:
    """JavaRosa's toString(Date): the ISO date (yyyy-mm-dd) in local time."""
    if isinstance(value, datetime):
        value = value.astimezone(tz).date()
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _format_date(value: date, fmt: str, tz: tzinfo) -> str:  # noqa: PLR0912
    """JavaRosa's DateUtils.format: %Y %y %m %n %b %d %e %H %h %M %S %3 %a %W."""
    moment = _as_datetime(value, tz).astimezone(tz)
    out: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%" or i + 1 >= len(fmt):
            out.append(ch)
            i += 1
            continue
        code = fmt[i + 1]
        i += 2
        if code == "Y":
            out.append(f"{moment.year:04d}")
        elif code == "y":
            out.append(f"{moment.year % 100:02d}")
        elif code == "m":
            out.append(f"{moment.month:02d}")
        elif code == "n":
            out.append(str(moment.month))
        elif code == "b":
            out.append(_MONTHS[moment.month - 1])
        elif code == "d":
            out.append(f"{moment.day:02d}")
        elif code == "e":
            out.append(str(moment.day))
        elif code == "H":
            out.append(f"{moment.hour:02d}")
        elif code == "h":
            out.append(str(moment.hour))
        elif code == "M":
            out.append(f"{moment.minute:02d}")
        elif code == "S":
            out.append(f"{moment.second:02d}")
        elif code == "3":
            out.append(f"{moment.microsecond // 1000:03d}")
        elif code == "a":
            out.append(_DAYS[moment.weekday()])
        elif code == "W":
            # Week of the year as JavaRosa's DateUtilsFormatTests state it: ISO 8601 weeks (Monday first, week 1
            # holds the first Thursday), which is also what Calendar gives on devices in ISO-week locales
            # (ru, kk, ky, tg, uz and most of Europe); en-US devices count Sunday-first weeks instead.
            out.append(str(moment.isocalendar().week))
        elif code == "%":
            out.append("%")
        else:
            raise XPathEvalError(f"format-date: unknown format code %{code}")
    return "".join(out)


# ----------------------------------------------------------------------------------------------------
# Coercions (JavaRosa XPathFuncExpr.toBoolean / toNumeric / toString / toDate / unpack)
# ----------------------------------------------------------------------------------------------------


def unpack(value: Any) -> Any:
    """A node-set as a single value: "" when empty, the node's value when one, an error when several."""
    if isinstance(value, list):
        if not value:
            return ""
        if len(value) > 1:
            raise XPathEvalError(
                f"This field is repeated: {value[0].path()} ... use indexed-repeat() or a predicate"
            )
        return value[0].value
    return value


def to_boolean(value: Any) -> bool:
    value = unpack(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return abs(value) > 1.0e-12 and not math.isnan(value)
    if isinstance(value, str):
        return len(value) > 0
    if isinstance(value, date):
        return True
    raise XPathEvalError(f"cannot convert {value!r} to a boolean")


_NUMERIC_CHARS = frozenset("-.0123456789")


def to_number(value: Any, tz: tzinfo = UTC) -> float:
    value = unpack(value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return _string_to_number(value)
    if isinstance(value, date):
        return _days_since_epoch(value, tz)
    if isinstance(value, int):
        return float(value)
    raise XPathEvalError(f"cannot convert {value!r} to a number")


@lru_cache(maxsize=65536)
def _string_to_number(text: str) -> float:
    # XPath does not read scientific notation or Infinity from strings; JavaRosa also accepts a decimal comma.
    s = text.replace(",", ".").strip()
    if not s or not set(s) <= _NUMERIC_CHARS:
        return NAN
    try:
        return _java_parse_double(s)
    except ValueError:
        return NAN


def _java_parse_double(s: str) -> float:
    # Double.parseDouble accepts "1.", ".5", "-.5"; rejects "-", ".", "1-2", "1.2.3".
    if s.count("-") > 1 or ("-" in s and not s.startswith("-")) or s.count(".") > 1:
        raise ValueError(s)
    body = s.lstrip("-")
    if not body or body == ".":
        raise ValueError(s)
    return float(s)


def to_int(value: Any, tz: tzinfo = UTC) -> float:
    number = to_number(value, tz)
    if math.isnan(number) or math.isinf(number) or abs(number) >= 9.2e18:
        return number
    truncated = float(int(number))
    if truncated == 0 and (number < 0 or math.copysign(1, number) < 0):
        return -0.0
    return truncated


def java_double_str(d: float) -> str:
    """Java's Double.toString."""
    d = float(d)
    if d == 0:
        return "-0.0" if math.copysign(1, d) < 0 else "0.0"
    r = repr(d)
    a = abs(d)
    if 1e-3 <= a < 1e7:
        if "e" in r:  # repr chose exponent form
            r = f"{d:.17f}".rstrip("0")
        return r if "." in r else r + ".0"
    mantissa, _, exp = f"{d:.17e}".partition("e")
    digits = repr(d)
    # shortest digits from repr, re-laid as d.dddE<exp>
    if "e" in digits:
        mant, _, ex = digits.partition("e")
        exponent = int(ex)
    else:
        mant, exponent = digits, 0
    sign = "-" if mant.startswith("-") else ""
    mant = mant.lstrip("-").replace(".", "")
    if "e" not in digits:
        # digits like 12345678.0 or 0.0001234 -> normalise
        intpart, _, frac = digits.lstrip("-").partition(".")
        if intpart != "0":
            exponent = len(intpart) - 1
            mant = (intpart + frac).rstrip("0") or "0"
        else:
            stripped = frac.lstrip("0")
            exponent = -(len(frac) - len(stripped) + 1)
            mant = stripped.rstrip("0")
    else:
        whole, _, frac = repr(abs(d)).partition("e")[0].partition(".")
        mant = (whole + frac).rstrip("0") or "0"
    del mantissa, exp
    lead, rest = mant[0], mant[1:] or "0"
    return f"{sign}{lead}.{rest}E{exponent}"


def to_string(value: Any, tz: tzinfo = UTC) -> str:
    value = unpack(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number_to_string(value)
    if isinstance(value, str):
        return value
    if isinstance(value, date):
        return _format_iso(value, tz)
    if isinstance(value, int):
        return str(value)
    raise XPathEvalError(f"cannot convert {value!r} to a string")


def _number_to_string(d: float) -> str:
    if math.isnan(d):
        return "NaN"
    if abs(d) < 1.0e-12:
        return "0"
    if math.isinf(d):
        return "-Infinity" if d < 0 else "Infinity"
    # Java's (int) cast saturates at the int range.
    as_int = max(-2147483648, min(2147483647, int(d)))
    if abs(d - as_int) < 1.0e-12:
        return str(as_int)
    return java_double_str(d)


def to_date(value: Any, *, preserve_time: bool = False, tz: tzinfo = UTC) -> Any:  # noqa: PLR0911 (one return per JavaRosa type rule)
    """JavaRosa's toDate: a date (or dateTime), or "" / NaN passed through."""
    value = unpack(value)
    if isinstance(value, bool):
        raise XPathEvalError(f'The value "{to_string(value)}" can\'t be converted to a date.')
    if isinstance(value, float):
        if math.isnan(value):
            return value
        if math.isinf(value) or abs(value) > 2147483647:
            raise XPathEvalError(f'The value "{value}" is out of range for representing a date.')
        if preserve_time:
            return datetime.fromtimestamp(int(value * DAY_SECONDS * 1000) / 1000.0, tz=UTC).astimezone(tz)
        return EPOCH + timedelta(days=int(to_int(value)))
    if isinstance(value, str):
        if value == "":
            return value
        parsed = _parse_datetime(value.strip(), tz)
        if parsed is None:
            raise XPathEvalError(f'The value "{value}" can\'t be converted to a date.')
        return parsed
    if isinstance(value, date):
        if preserve_time or not isinstance(value, datetime):
            return value
        return value.astimezone(tz).date()
    raise XPathEvalError(f'The value "{value}" can\'t be converted to a date.')


# ----------------------------------------------------------------------------------------------------
# Evaluation environment
# ----------------------------------------------------------------------------------------------------


@dataclass
class EvalEnv:
    """What an evaluation may read besides the context node.

    Parameters:
        root: the primary instance's root node.
        secondary: secondary instances by id (choice lists, CSV/XML attachments), each an XNode whose root is
            the instance's root element (``<root><item>...``).
        today: the date `today()` returns (fixed, so results are reproducible); `now` likewise.
        tz: local time zone for date conversions (JavaRosa uses the device's; UTC by default).
        choice_name: callback(value, question_path) -> label, for jr:choice-name().
        media_dir: folder of the form's attachments, for pulldata() (CSV files).
        current: the node the expression belongs to (for current() and once()); set by the caller.
    """

    root: XNode
    secondary: Mapping[str, XNode] = field(default_factory=dict)
    today: date | None = None
    now: datetime | None = None
    tz: tzinfo = UTC
    choice_name: Callable[[str, str], str] | None = None
    media_dir: Path | None = None
    current: XNode | None = None
    _pulldata_cache: dict[str, list[dict[str, str]]] = field(default_factory=dict, repr=False)

    def get_today(self) -> date:
        if self.today is not None:
            return self.today
        return datetime.now(self.tz).date()

    def get_now(self) -> datetime:
        if self.now is not None:
            return self.now
        return datetime.now(self.tz)


def load_secondary_instance(path: Path) -> XNode:
    """A secondary instance from an attachment: a CSV (one <item> per row) or an XML file."""
    if path.suffix.lower() == ".csv":
        root = XNode("root")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                item = root.append(XNode("item"))
                for key, value in row.items():
                    if key is not None:
                        item.append(XNode(key.strip(), value or ""))
        return root
    try:
        return build_tree(parse_untrusted(path.read_bytes()))
    except UntrustedXMLError as exc:
        if exc.reason == "doctype":
            raise XPathEvalError(f"{path.name}: attachments with a DOCTYPE are refused") from None
        raise XPathEvalError(f"{path.name}: the attachment {exc.message}") from None


def _pulldata_rows(env: EvalEnv, name: str) -> list[dict[str, str]]:
    rows = env._pulldata_cache.get(name)
    if rows is None:
        if env.media_dir is None:
            raise XPathEvalError(f"pulldata('{name}', ...): no media folder given (use --media)")
        path = env.media_dir / (name if name.endswith(".csv") else name + ".csv")
        if not path.is_file():
            raise XPathEvalError(f"pulldata: attachment {path.name} not found in {env.media_dir}")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in csv.DictReader(handle)]
        env._pulldata_cache[name] = rows
    return rows


# ----------------------------------------------------------------------------------------------------
# Compilation to closures: each AST node becomes fn(node, position, size, env) -> value
# ----------------------------------------------------------------------------------------------------

Fn = Callable[[XNode, int, int, EvalEnv], Any]

# Functions whose value may change between evaluations on the same data: a stored value is never a mismatch.
VOLATILE_FUNCTIONS = frozenset({"now", "today", "random", "uuid", "randomize", "once", "property"})


def compile_tree(node: Expr) -> Fn:
    """The evaluation function `fn(context, position, size, env)` of a syntax tree."""
    match node:
        case Number(value=number):
            return lambda n, p, s, e: number
        case String(value=text):
            return lambda n, p, s, e: text
        case Negate(operand=operand):
            inner = compile_tree(operand)
            return lambda n, p, s, e: -to_number(inner(n, p, s, e), e.tz)
        case Binary(op=op, left=left, right=right):
            return _compile_binary(op, compile_tree(left), compile_tree(right))
        case Call(name=name, args=args):
            return _compile_function(name, args)
        case LocationPath():
            return _compile_path(node)
    raise XPathSyntaxError(f"{type(node).__name__} cannot stand in an XForm expression", node.pos)


def _apply_predicates(nodes: list[XNode], predicates: tuple[Fn, ...], env: EvalEnv) -> list[XNode]:
    for predicate in predicates:
        size = len(nodes)
        kept = []
        for position, candidate in enumerate(nodes, start=1):
            result = predicate(candidate, position, size, env)
            if isinstance(result, float):
                if result == position:
                    kept.append(candidate)
            elif to_boolean(result):
                kept.append(candidate)
        nodes = kept
    return nodes


def _compile_step(step: Step) -> Callable[[list[XNode], EvalEnv], list[XNode]]:
    """One step of the axes JavaRosa evaluates: child (by name or *), attribute (by name), '.' and '..'."""
    axis = step.axis
    predicates = tuple(compile_tree(p) for p in step.predicates)
    local = step.local_name

    def select(node: XNode) -> list[XNode]:
        if axis == "child":
            if local == "*":
                return list(node.children)
            return [c for c in node.children if c.name == local]
        if axis == "self":
            return [node]
        if axis == "parent":
            return [node.parent] if node.parent is not None else []
        if node.is_attr or local not in node.attrs:
            return []
        attr = XNode(local, node.attrs[local], node)
        attr.is_attr = True
        return [attr]

    def apply(nodes: list[XNode], env: EvalEnv) -> list[XNode]:
        if len(nodes) == 1:
            result = select(nodes[0])
            return _apply_predicates(result, predicates, env) if predicates else result
        out: list[XNode] = []
        seen: set[int] = set()
        for node in nodes:
            selected = select(node)
            if predicates:
                selected = _apply_predicates(selected, predicates, env)
            for x in selected:
                if id(x) not in seen:
                    seen.add(id(x))
                    out.append(x)
        return out

    return apply


def _context_chain(context: XNode, root: XNode) -> list[XNode]:
    """The context node and its ancestors, root first; empty when the context is not in the main instance.

    Kept on the node once it hangs under the root: nodes are not moved after they are attached.
    """
    chain = context._chain
    if chain is None:
        chain = []
        cursor: XNode | None = context
        while cursor is not None:
            chain.append(cursor)
            cursor = cursor.parent
        chain.reverse()
        if chain[0] is not root:
            return []
        context._chain = chain
    return chain if chain[0] is root else []


def _pinned_children(nodes: list[XNode], name: str, pin: XNode | None) -> list[XNode]:
    """Children named `name`; with `pin`, only those at the pin's position among its same-named siblings."""
    if pin is None:
        return [c for x in nodes for c in x.children if c.name == name]
    return [c for x in nodes for c in x.children if c.name == name and c.index == pin.index]


def _compile_path(node: LocationPath) -> Fn:
    """A path. An absolute path is pinned to the context's repeat instances, as JavaRosa contextualizes it:
    each leading child step (without a predicate) whose name is the context's ancestor at that depth takes
    that ancestor's position, so `/data/outer/q` evaluated inside `/data/outer[2]/...` reads
    `/data/outer[2]/q` (TreeReference.contextualize; pinning stops at the first name that differs)."""
    absolute, steps = node.absolute, node.steps
    base = compile_tree(node.base) if node.base is not None else None
    # Fast path: an absolute path of plain child steps without predicates (most references in binds).
    plain = all(step.axis == "child" and not step.predicates and step.name != "*" for step in steps)
    if absolute and base is None and plain:
        names = tuple(step.local_name for step in steps)
        if not names:
            return lambda n, p, s, e: [e.root]

        def plain_absolute(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
            root = e.root
            if root.name != names[0]:
                return []
            chain = _context_chain(n, root) if n.parent is not None else []
            pinning = len(chain) > 1
            current = [root]
            for depth, name in enumerate(names[1:], start=1):
                pin = chain[depth] if pinning and depth < len(chain) and chain[depth].name == name else None
                pinning = pin is not None
                current = _pinned_children(current, name, pin)
                if not current:
                    return current
            # JavaRosa drops non-relevant nodes from every path's result (XPathPathExprEval).
            return [x for x in current if x.relevant]

        return plain_absolute
    compiled_steps = [_compile_step(step) for step in steps]
    pinnable = [step.axis == "child" and step.name != "*" for step in steps]
    names = tuple(step.local_name for step in steps)

    def evaluate_path(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
        chain: list[XNode] = []
        if base is not None:
            current = base(n, p, s, e)
            if not isinstance(current, list):
                raise XPathEvalError("a path step needs a node-set")
        elif absolute:
            # The document node's only child is the root element.
            document = XNode("#document")
            document.children = [e.root]
            current = [document]
            chain = _context_chain(n, e.root) if n.parent is not None else []
        else:
            current = [n]
        for depth, step in enumerate(compiled_steps):
            pin = None
            if chain and depth > 0:
                if not pinnable[depth] or depth >= len(chain) or chain[depth].name != names[depth]:
                    chain = []
                elif not steps[depth].predicates:
                    pin = chain[depth]
            current = _pinned_children(current, pin.name, pin) if pin is not None else step(current, e)
            if not current:
                return current
        if absolute and base is None and not steps:
            return [e.root]
        # JavaRosa drops non-relevant nodes from every path's result (XPathPathExprEval).
        return [x for x in current if x.relevant]

    return evaluate_path


def _compile_binary(op: str, left: Fn, right: Fn) -> Fn:
    if op == "or":
        return lambda n, p, s, e: to_boolean(left(n, p, s, e)) or to_boolean(right(n, p, s, e))
    if op == "and":
        return lambda n, p, s, e: to_boolean(left(n, p, s, e)) and to_boolean(right(n, p, s, e))
    if op in ("=", "!="):
        want = op == "="

        def equality(n: XNode, p: int, s: int, e: EvalEnv) -> bool:
            return _equal(unpack(left(n, p, s, e)), unpack(right(n, p, s, e)), e.tz) == want

        return equality
    if op in ("<", "<=", ">", ">="):
        compare = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}[op]

        def relational(n: XNode, p: int, s: int, e: EvalEnv) -> bool:
            return compare(to_number(left(n, p, s, e), e.tz), to_number(right(n, p, s, e), e.tz))

        return relational
    arith: Callable[[float, float], float] = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "div": _divide,
        "mod": _modulo,
    }[op]

    def arithmetic(n: XNode, p: int, s: int, e: EvalEnv) -> float:
        a = to_number(left(n, p, s, e), e.tz)
        b = to_number(right(n, p, s, e), e.tz)
        try:
            return arith(a, b)
        except OverflowError:
            return math.inf

    return arithmetic


def _equal(a: Any, b: Any, tz: tzinfo) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return to_boolean(a) == to_boolean(b)
    if isinstance(a, float) or isinstance(b, float):
        return abs(to_number(a, tz) - to_number(b, tz)) < 1e-12
    return to_string(a, tz) == to_string(b, tz)


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def _modulo(a: float, b: float) -> float:
    # Java's % (truncated remainder), NaN for a zero divisor.
    if b == 0 or math.isnan(a) or math.isnan(b) or math.isinf(a):
        return NAN
    if math.isinf(b):
        return a
    return math.fmod(a, b)


# --- the function library -----------------------------------------------------------------------------------


def _arity(name: str, args: tuple, *counts: int) -> None:
    if len(args) not in counts:
        raise XPathSyntaxError(f"{name}() takes {' or '.join(map(str, counts))} arguments, {len(args)} given")


def _values_of(value: Any) -> list[Any]:
    return [x.value for x in value] if isinstance(value, list) else [value]


def _java_round(number: float, places: int) -> float:
    if math.isnan(number) or math.isinf(number):
        return number
    if places > 30 or places < -30:
        return NAN
    if places >= 0:
        mode = ROUND_HALF_DOWN if number < 0 else ROUND_HALF_UP
        try:
            text = java_double_str(number)
            return float(Decimal(text).quantize(Decimal(1).scaleb(-places), rounding=mode))
        except InvalidOperation:
            return NAN
    scaled = float(Decimal(repr(number)).scaleb(places))
    rounded = float(int(scaled + 0.5))
    return float(Decimal(repr(rounded)).scaleb(-places))


def _split_selection(value: Any) -> list[str]:
    text = unpack(value)
    if not isinstance(text, str):
        text = to_string(text)
    return text.split()


def _regex(pattern: str) -> re.Pattern[str]:
    return _compiled_regex(pattern)


@lru_cache(maxsize=1024)
def _compiled_regex(pattern: str) -> re.Pattern[str]:
    # Java's regex dialect is close to Python's for what forms use; \p{L} style classes are mapped.
    translated = pattern.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{Lu}", r"[^\W\d_]")
    try:
        return re.compile(translated)
    except re.error as exc:
        raise XPathEvalError(f"regex(): invalid pattern {pattern!r}: {exc}") from None


def _compile_function(raw_name: str, arg_asts: tuple[Expr, ...]) -> Fn:  # noqa: PLR0911, PLR0912, PLR0915
    name = raw_name
    if ":" in name:
        prefix, local = name.split(":", 1)
        name = "jr:choice-name" if prefix == "jr" and local == "choice-name" else local
    args = tuple(compile_tree(a) for a in arg_asts)
    n_args = len(args)

    # Short-circuiting and path-aware functions first.
    if name == "if":
        _arity(name, args, 3)
        cond, yes, no = args
        return lambda n, p, s, e: yes(n, p, s, e) if to_boolean(cond(n, p, s, e)) else no(n, p, s, e)
    if name == "coalesce":
        _arity(name, args, 2)
        first, second = args

        def coalesce(n: XNode, p: int, s: int, e: EvalEnv) -> Any:
            a = first(n, p, s, e)
            value = unpack(a)
            if (isinstance(value, str) and value == "") or (isinstance(value, float) and math.isnan(value)):
                return second(n, p, s, e)
            return a

        return coalesce
    if name == "indexed-repeat":
        if n_args not in (3, 5, 7, 9, 11):
            raise XPathSyntaxError("indexed-repeat() takes 3, 5, 7, 9 or 11 arguments")
        return _compile_indexed_repeat(arg_asts, args)
    if name == "current":
        _arity(name, args, 0)
        return lambda n, p, s, e: [e.current if e.current is not None else n]
    if name == "instance":
        _arity(name, args, 1)
        (ident,) = args

        def instance(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
            key = to_string(ident(n, p, s, e))
            root = e.secondary.get(key)
            if root is None:
                raise XPathEvalError(f"instance('{key}') is not available (attach it or pass --media)")
            doc = XNode("#instance")
            doc.children = [root]
            return [doc]

        return instance
    if name == "position":
        if n_args == 0:
            return lambda n, p, s, e: float(p) if p > 0 else float(n.index + 1)
        _arity(name, args, 0, 1)
        (target,) = args

        def position(n: XNode, p: int, s: int, e: EvalEnv) -> float:
            nodes = target(n, p, s, e)
            if not isinstance(nodes, list):
                raise XPathEvalError("position() needs a node-set")
            return float(nodes[0].index + 1) if nodes else 0.0

        return position
    # last() is XPath 1.0 but JavaRosa does not implement it (Collect fails on it): unsupported here too.
    if name == "once":
        _arity(name, args, 1)
        (inner,) = args

        def once(n: XNode, p: int, s: int, e: EvalEnv) -> Any:
            target = e.current if e.current is not None else n
            current = target.value
            if current is not None and to_string(current, e.tz) != "":
                return current
            return inner(n, p, s, e)

        return once
    if name in ("string-length", "normalize-space") and n_args == 0:
        transform = _STRING_FUNCS[name]
        return lambda n, p, s, e: transform(to_string(n.value, e.tz))

    impl = _SIMPLE.get(name)
    if impl is None:
        raise XPathUnsupportedError(raw_name)
    checker, body = impl
    checker(name, args)

    if n_args == 1:
        (a0,) = args
        return lambda n, p, s, e: body(e, a0(n, p, s, e))
    if n_args == 2:
        a0, a1 = args
        return lambda n, p, s, e: body(e, a0(n, p, s, e), a1(n, p, s, e))
    return lambda n, p, s, e: body(e, *(a(n, p, s, e) for a in args))


def _compile_indexed_repeat(arg_asts: tuple[Expr, ...], args: tuple[Fn, ...]) -> Fn:
    paths: dict[int, LocationPath] = {}
    for i in [0, *range(1, len(arg_asts), 2)]:
        argument = arg_asts[i]
        if not isinstance(argument, LocationPath):
            raise XPathSyntaxError(f"indexed-repeat(): argument {i + 1} must be a path", argument.pos)
        paths[i] = argument

    def steps_of(path: LocationPath, context: XNode) -> list[str]:
        if path.base is not None:
            raise XPathEvalError("indexed-repeat(): paths must be plain references")
        if path.absolute:
            names: list[str] = []
        else:
            names = [x for x in context.generic_path().split("/") if x]
        for step in path.steps:
            if step.axis == "parent":
                names.pop()
            elif step.axis == "self":
                continue
            elif step.axis == "child":
                names.append(step.local_name)
            else:
                raise XPathEvalError("indexed-repeat(): paths must use child steps and ..")
        return names

    target_ast = paths[0]
    pairs = [(paths[i], args[i + 1]) for i in range(1, len(arg_asts), 2)]

    def indexed_repeat(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
        target = steps_of(target_ast, n)
        chosen: dict[int, int] = {}
        for group_ast, index_fn in pairs:
            group = steps_of(group_ast, n)
            if target[: len(group)] != group:
                raise XPathEvalError("indexed-repeat(): each repeat must contain the target field")
            index = to_int(index_fn(n, p, s, e), e.tz)
            idx = int(index) if not math.isnan(index) else 1
            chosen[len(group) - 1] = max(idx, 1) - 1
        # Walk from the root; at indexed levels take the chosen instance, elsewhere follow the context node's
        # own instance when it lies on the same path (JavaRosa contextualizes the target ref), else the first.
        context_chain: dict[int, XNode] = {}
        cursor: XNode | None = n
        while cursor is not None:
            depth = len([x for x in cursor.generic_path().split("/") if x]) - 1
            context_chain[depth] = cursor
            cursor = cursor.parent
        if e.root.name != target[0]:
            return []
        current = [e.root]
        for depth, name in enumerate(target[1:], start=1):
            candidates = [c for x in current for c in x.children if c.name == name]
            if depth in chosen:
                k = chosen[depth]
                candidates = candidates[k : k + 1]
            elif (
                depth in context_chain
                and context_chain[depth].name == name
                and context_chain[depth] in candidates
            ):
                candidates = [context_chain[depth]]
            current = candidates
            if not current:
                return []
        return current

    return indexed_repeat


def _any(*counts: int) -> Callable[[str, tuple], None]:
    return lambda name, args: _arity(name, args, *counts)


def _at_least(k: int) -> Callable[[str, tuple], None]:
    def check(name: str, args: tuple) -> None:
        if len(args) < k:
            raise XPathSyntaxError(f"{name}() takes at least {k} arguments")

    return check


def _nodeset(value: Any, function: str) -> list[XNode]:
    if not isinstance(value, list):
        raise XPathEvalError(f"{function}(): not a node-set")
    return value


def _f_sum(e: EvalEnv, nodes: Any) -> float:
    total = 0.0
    for value in _values_of(_nodeset(nodes, "sum")):
        number = to_number(value, e.tz)
        if not math.isnan(number):
            total += number
    return total


def _extreme(e: EvalEnv, values: list[Any], pick: Callable[[float, float], float], start: float) -> float:
    best = start
    found = False
    for value in values:
        number = to_number(value, e.tz)
        if not math.isnan(number):
            best = pick(best, number)
            found = True
    return best if found else NAN


def _f_max(e: EvalEnv, *args: Any) -> float:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return _extreme(e, values, max, 5e-324)  # JavaRosa starts from Double.MIN_VALUE (the smallest positive)


def _f_min(e: EvalEnv, *args: Any) -> float:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return _extreme(e, values, min, 1.7976931348623157e308)


def _f_concat(e: EvalEnv, *args: Any) -> str:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return "".join(to_string(v, e.tz) for v in values)


def _f_join(e: EvalEnv, sep: Any, *args: Any) -> str:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return to_string(sep, e.tz).join(to_string(v, e.tz) for v in values)


def _f_substr(e: EvalEnv, text: Any, start: Any, end: Any = None) -> str:
    s = to_string(text, e.tz)
    length = len(s)
    begin = int(to_int(start, e.tz)) if not math.isnan(to_int(start, e.tz)) else 0
    stop = length if end is None else (int(to_int(end, e.tz)) if not math.isnan(to_int(end, e.tz)) else 0)
    if begin < 0:
        begin += length
    if stop < 0:
        stop += length
    stop = min(max(0, stop), length)
    begin = min(max(0, begin), length)
    return s[begin:stop] if begin <= stop else ""


def _f_selected(e: EvalEnv, selection: Any, choice: Any) -> bool:
    wanted = unpack(choice)
    if not isinstance(wanted, str):
        raise XPathEvalError("The second parameter to the selected() function must be in quotes (like '1').")
    text = unpack(selection)
    if not isinstance(text, str):
        raise XPathEvalError("selected(): the first argument must be a select answer")
    return f" {wanted.strip()} " in f" {text} "


def _f_count_selected(e: EvalEnv, selection: Any) -> float:
    text = unpack(selection)
    if not isinstance(text, str):
        raise XPathEvalError("count-selected(): the argument must be a select answer")
    return float(len([x for x in text.split(" ") if x]))


def _f_selected_at(e: EvalEnv, selection: Any, index: Any) -> str:
    text = unpack(selection)
    if not isinstance(text, str):
        raise XPathEvalError("selected-at(): the first argument must be a select answer")
    i = to_int(index, e.tz)
    items = [x for x in text.split(" ") if x]
    if math.isnan(i):
        i = 0.0
    k = int(i)
    return items[k] if 0 <= k < len(items) else ""


def _f_choice_name(e: EvalEnv, value: Any, question: Any) -> str:
    if e.choice_name is None:
        raise XPathEvalError("jr:choice-name(): no choice lists available")
    ref = re.sub(r"\[[^\]]*\]", "", to_string(question, e.tz)).strip()
    if not ref.startswith("/"):
        # JavaRosa anchors a relative question reference at the context node.
        parts = [x for x in (e.current.generic_path() if e.current is not None else "").split("/") if x]
        for step in ref.split("/"):
            if step == "..":
                parts = parts[:-1]
            elif step not in (".", ""):
                parts.append(step)
        ref = "/" + "/".join(parts)
    return e.choice_name(to_string(value, e.tz), ref)


def _f_pulldata(e: EvalEnv, *args: Any) -> str:
    if len(args) != 4:
        raise XPathEvalError("pulldata() takes 4 arguments")
    name, column, key_column, key = (to_string(a, e.tz) for a in args)
    for row in _pulldata_rows(e, name):
        if row.get(key_column) == key:
            return row.get(column, "")
    return ""


def _f_checklist(e: EvalEnv, low: Any, high: Any, *factors: Any) -> bool:
    values = _values_of(factors[0]) if len(factors) == 1 and isinstance(factors[0], list) else list(factors)
    lo, hi = to_number(low, e.tz), to_number(high, e.tz)
    count = sum(1 for v in values if to_boolean(v))
    lo_i = int(lo) if not math.isnan(lo) else 0
    hi_i = int(hi) if not math.isnan(hi) else 0
    return (lo_i < 0 or count >= lo_i) and (hi_i < 0 or count <= hi_i)


def _f_weighted_checklist(e: EvalEnv, low: Any, high: Any, *rest: Any) -> bool:
    if len(rest) == 2 and isinstance(rest[0], list) and isinstance(rest[1], list):
        flags, weights = _values_of(rest[0]), _values_of(rest[1])
        if len(flags) != len(weights):
            raise XPathEvalError("weighted-checklist: nodesets not same length")
    else:
        flags, weights = list(rest[0::2]), list(rest[1::2])
    total = sum(to_number(w, e.tz) for f, w in zip(flags, weights, strict=False) if to_boolean(f))
    return to_number(low, e.tz) <= total <= to_number(high, e.tz)


def _f_digest(e: EvalEnv, text: Any, algorithm: Any, encoding: Any = "base64") -> str:
    alg = to_string(algorithm, e.tz).upper().replace("-", "")
    names = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
    if alg not in names:
        raise XPathEvalError(f"digest(): unknown algorithm {alg}")
    raw = hashlib.new(names[alg], to_string(text, e.tz).encode("utf-8")).digest()
    enc = to_string(encoding, e.tz).lower()
    return raw.hex() if enc == "hex" else base64.b64encode(raw).decode("ascii")


def _f_format_date(e: EvalEnv, value: Any, fmt: Any) -> str:
    parsed = to_date(value, preserve_time=True, tz=e.tz)
    if not isinstance(parsed, date):
        return ""
    return _format_date(parsed, to_string(fmt, e.tz), e.tz)


def _f_decimal_date_time(e: EvalEnv, value: Any) -> Any:
    v = unpack(value)
    if isinstance(v, float):
        if math.isnan(v):
            return v
        return v
    if isinstance(v, str) and v == "":
        return v
    parsed = to_date(v, preserve_time=True, tz=e.tz)
    return _fractional_days(parsed, e.tz)


def _f_decimal_time(e: EvalEnv, value: Any) -> Any:
    v = unpack(value)
    if isinstance(v, float):
        return v if math.isnan(v) else v - math.floor(v)
    if isinstance(v, str) and v == "":
        return v
    if isinstance(v, str) and re.match(r"^\d{2}:\d{2}", v.strip()):
        v = "1970-01-01T" + v.strip()
    parsed = to_date(v, preserve_time=True, tz=e.tz)
    moment = _as_datetime(parsed, e.tz).astimezone(e.tz)
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
    return seconds / DAY_SECONDS


def _java_math(fn: Callable[[float], float]) -> Callable[[EvalEnv, Any], float]:
    def apply(e: EvalEnv, value: Any) -> float:
        v = unpack(value)
        x = _fractional_days(v, e.tz) if isinstance(v, date) else to_number(v, e.tz)
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return NAN

    return apply


def _java_log(x: float) -> float:
    if x < 0 or math.isnan(x):
        return NAN
    return -math.inf if x == 0 else math.log(x)


def _java_log10(x: float) -> float:
    if x < 0 or math.isnan(x):
        return NAN
    return -math.inf if x == 0 else math.log10(x)


def _java_pow(e: EvalEnv, a: Any, b: Any) -> float:
    va, vb = unpack(a), unpack(b)
    x = _fractional_days(va, e.tz) if isinstance(va, date) else to_number(va, e.tz)
    y = _fractional_days(vb, e.tz) if isinstance(vb, date) else to_number(vb, e.tz)
    try:
        result = math.pow(x, y)
    except (ValueError, OverflowError):
        return NAN if x < 0 else math.inf
    return result


_STRING_FUNCS: dict[str, Callable[[str], Any]] = {
    "string-length": lambda s: float(len(s)),
    "normalize-space": lambda s: " ".join(s.split()),
}


def _translate(e: EvalEnv, text: Any, src: Any, dst: Any) -> str:
    s, a, b = to_string(text, e.tz), to_string(src, e.tz), to_string(dst, e.tz)
    out = []
    for ch in s:
        k = a.find(ch)
        if k == -1:
            out.append(ch)
        elif k < len(b):
            out.append(b[k])
    return "".join(out)


def _substring_before(e: EvalEnv, text: Any, sub: Any) -> str:
    s, t = to_string(text, e.tz), to_string(sub, e.tz)
    k = s.find(t)
    return s[:k] if k >= 0 else ""


def _substring_after(e: EvalEnv, text: Any, sub: Any) -> str:
    s, t = to_string(text, e.tz), to_string(sub, e.tz)
    k = s.find(t)
    return s[k + len(t) :] if k >= 0 else ""


def _f_count_non_empty(e: EvalEnv, nodes: Any) -> float:
    # XPathNodeset.getNonEmptySize: a node counts when it has children or a value.
    return float(sum(1 for x in _nodeset(nodes, "count-non-empty") if x.children or (x.text or "") != ""))


def _f_round(e: EvalEnv, value: Any, places: Any = 0.0) -> float:
    p = to_number(places, e.tz)
    return _java_round(to_number(value, e.tz), int(p) if not math.isnan(p) else 0)


def _f_base64_decode(e: EvalEnv, value: Any) -> str:
    try:
        return base64.b64decode(to_string(value, e.tz)).decode("utf-8", errors="replace")
    except ValueError:
        return ""


def _f_uuid(e: EvalEnv, *args: Any) -> str:
    return str(uuid.uuid4())


# --- geo functions (JavaRosa GeoUtils and XPathFuncExprGeo) ------------------------------------------------

EARTH_EQUATORIAL_RADIUS_METERS = 6_378_100.0
EARTH_EQUATORIAL_CIRCUMFERENCE_METERS = 2 * EARTH_EQUATORIAL_RADIUS_METERS * math.pi


def _geopoint(text: str, function: str) -> tuple[float, float]:
    """(latitude, longitude) of a geopoint "lat lon [alt [accuracy]]" (GeoPointData.cast); empty reads as 0 0."""
    parts = [x for x in text.split(" ") if x]
    if len(parts) > 4 or not all(_DECIMAL_TEXT.match(x) for x in parts):
        raise XPathEvalError(f"The function '{function}' received a value that does not represent GPS coordinates")
    numbers = [float(x) for x in parts] + [0.0, 0.0]
    return numbers[0], numbers[1]


def _java_split(text: str, separator: str) -> list[str]:
    """Java's String.split: trailing empty strings are dropped."""
    parts = text.split(separator)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _geo_points(value: Any, function: str) -> list[tuple[float, float]]:
    """The points of a node-set argument: one node is a geoshape/geotrace, several nodes are geopoints."""
    if not isinstance(value, list):
        raise XPathEvalError(f"function '{function}' requires a field as the parameter.")
    if len(value) == 1:
        return [_geopoint(part.strip(), function) for part in _java_split(value[0].string, ";")]
    return [_geopoint(to_string(node.value), function) for node in value]


def _great_circle(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres between two points by the spherical law of cosines (GeoUtils.distanceBetween)."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    delta = math.radians(a[1] - b[1])
    cosine = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(delta)
    return (math.acos(cosine) if -1.0 <= cosine <= 1.0 else NAN) * EARTH_EQUATORIAL_RADIUS_METERS


def _path_length(points: list[tuple[float, float]]) -> float:
    return sum((_great_circle(points[i - 1], points[i]) for i in range(1, len(points))), 0.0)


def _f_distance(e: EvalEnv, *args: Any) -> float:
    if not args:
        raise XPathEvalError("function 'distance' requires at least one parameter.")
    if len(args) > 1:
        return _path_length([_geopoint(to_string(a, e.tz), "distance") for a in args])
    (value,) = args
    if isinstance(value, list):
        return _path_length(_geo_points(value, "distance"))
    if isinstance(value, str):
        return _path_length([_geopoint(part, "distance") for part in _java_split(value, ";")])
    raise XPathEvalError("function 'distance' requires a field or text as the parameter.")


def _f_area(e: EvalEnv, shape: Any) -> float:
    """Square metres inside a polygon, by triangles from its first point on a flat projection
    (GeoUtils.calculateAreaOfGPSPolygonOnEarthInSquareMeters)."""
    points = _geo_points(shape, "area")
    if len(points) < 3:
        return 0.0
    lat0, lon0 = points[0]
    ys = [(lat - lat0) * EARTH_EQUATORIAL_CIRCUMFERENCE_METERS / 360.0 for lat, _ in points[1:]]
    xs = [
        (lon - lon0) * EARTH_EQUATORIAL_CIRCUMFERENCE_METERS * math.cos(math.radians(lat)) / 360.0
        for lat, lon in points[1:]
    ]
    total = sum((ys[i - 1] * xs[i] - xs[i - 1] * ys[i]) / 2 for i in range(1, len(xs)))
    return abs(total)


def _f_geofence(e: EvalEnv, point: Any, shape: Any) -> bool:
    """Whether a point lies inside a closed geoshape (GeoUtils.calculateIsPointInGPSPolygon, the pnpoly test
    over consecutive vertices: a geoshape repeats its first point last)."""
    lat, lon = _geopoint(to_string(point, e.tz), "geofence")
    polygon = _geo_points(shape, "geofence")
    inside = False
    for (lat1, lon1), (lat2, lon2) in itertools.pairwise(polygon):
        if (lat2 > lat) != (lat1 > lat) and lon < (lon1 - lon2) * (lat - lat2) / (lat1 - lat2) + lon2:
            inside = not inside
    return inside


# --- randomize() (JavaRosa FisherYates with the ParkMiller generator) -------------------------------------

_PARK_MILLER_MODULUS = 2147483647
_PARK_MILLER_MULTIPLIER = 16807


def _seed_of(value: Any, tz: tzinfo) -> int:
    """RandomizeHelper.toNumericWithLongHash: the number truncated to a long, or for text that is not a number
    the first 8 bytes (big-endian, signed) of its UTF-8 SHA-256; the empty string is 0."""
    number = to_number(value, tz)
    if not math.isnan(number):
        if math.isinf(number):
            return (2**63 - 1) if number > 0 else -(2**63)
        return max(-(2**63), min(2**63 - 1, int(number)))
    text = to_string(value, tz)
    if text == "":
        return 0
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big", signed=True)


def _park_miller_doubles(seed: int) -> Iterable[float]:
    """ParkMiller.nextDouble(): a Lehmer generator kept in a double, as JavaRosa (and Enketo) compute it."""
    state = math.fmod(float(seed), _PARK_MILLER_MODULUS)
    if state <= 0:
        state += _PARK_MILLER_MODULUS - 1
    while True:
        state = math.fmod(state * _PARK_MILLER_MULTIPLIER, _PARK_MILLER_MODULUS)
        yield (int(state) - 1) / (_PARK_MILLER_MODULUS - 1)


def _f_randomize(e: EvalEnv, nodes: Any, seed: Any = None) -> list[XNode]:
    if not isinstance(nodes, list):
        raise XPathEvalError("First argument to randomize must be a nodeset")
    doubles: Iterable[float] = (
        iter(random.random, None)  # unseeded: a new order every time
        if seed is None
        else _park_miller_doubles(_seed_of(seed, e.tz))
    )
    # FisherYates.shuffle: element i goes to a position drawn from [0, i], the one there moves to i.
    shuffled: list[XNode] = []
    for i, (node, draw) in enumerate(zip(nodes, doubles, strict=False)):
        j = int(draw * (i + 1))
        if j == i:
            shuffled.append(node)
        else:
            shuffled.append(shuffled[j])
            shuffled[j] = node
    return shuffled


def _f_random(e: EvalEnv) -> float:
    return random.random()  # noqa: S311 (the form's random(), not security)


def _f_date(e: EvalEnv, value: Any) -> Any:
    return to_date(value, preserve_time=False, tz=e.tz)


def _f_date_time(e: EvalEnv, value: Any) -> Any:
    return to_date(value, preserve_time=True, tz=e.tz)


_SIMPLE: dict[str, tuple[Callable[[str, tuple], None], Callable[..., Any]]] = {
    "true": (_any(0), lambda e: True),
    "false": (_any(0), lambda e: False),
    "boolean": (_any(1), lambda e, a: to_boolean(a)),
    "not": (_any(1), lambda e, a: not to_boolean(a)),
    "number": (_any(1), lambda e, a: to_number(a, e.tz)),
    "int": (_any(1), lambda e, a: to_int(a, e.tz)),
    "string": (_any(1), lambda e, a: to_string(a, e.tz)),
    "round": (_any(1, 2), _f_round),
    # floor() and ceiling() are XPath 1.0 but JavaRosa does not implement them: Collect fails on them, so do
    # we.
    "abs": (_any(1), _java_math(abs)),
    "acos": (_any(1), _java_math(math.acos)),
    "asin": (_any(1), _java_math(math.asin)),
    "atan": (_any(1), _java_math(math.atan)),
    "atan2": (_any(2), lambda e, a, b: math.atan2(to_number(a, e.tz), to_number(b, e.tz))),
    "cos": (_any(1), _java_math(math.cos)),
    "sin": (_any(1), _java_math(math.sin)),
    "tan": (_any(1), _java_math(math.tan)),
    "exp": (_any(1), _java_math(math.exp)),
    "exp10": (_any(1), _java_math(lambda x: math.pow(10.0, x))),
    "log": (_any(1), _java_math(_java_log)),
    "log10": (_any(1), _java_math(_java_log10)),
    "sqrt": (_any(1), _java_math(lambda x: math.sqrt(x) if x >= 0 else NAN)),
    "pi": (_any(0), lambda e: math.pi),
    "pow": (_any(2), _java_pow),
    "date": (_any(1), _f_date),
    "date-time": (_any(1), _f_date_time),
    "decimal-date-time": (_any(1), _f_decimal_date_time),
    "decimal-time": (_any(1), _f_decimal_time),
    "format-date": (_any(2), _f_format_date),
    "format-date-time": (_any(2), _f_format_date),
    "today": (_any(0), lambda e: e.get_today()),
    "now": (_any(0), lambda e: e.get_now()),
    "boolean-from-string": (_any(1), lambda e, a: (s := to_string(a, e.tz)).lower() == "true" or s == "1"),
    "selected": (_any(2), _f_selected),
    "is-selected": (_any(2), _f_selected),
    "count-selected": (_any(1), _f_count_selected),
    "selected-at": (_any(2), _f_selected_at),
    "jr:choice-name": (_any(2), _f_choice_name),
    "count": (_any(1), lambda e, a: float(len(_nodeset(a, "count")))),
    "count-non-empty": (_any(1), _f_count_non_empty),
    "sum": (_any(1), _f_sum),
    "max": (_at_least(1), _f_max),
    "min": (_at_least(1), _f_min),
    "concat": (_at_least(0), _f_concat),
    "join": (_at_least(1), _f_join),
    "substr": (_any(2, 3), _f_substr),
    "substring-before": (_any(2), _substring_before),
    "substring-after": (_any(2), _substring_after),
    "translate": (_any(3), _translate),
    "contains": (_any(2), lambda e, a, b: to_string(b, e.tz) in to_string(a, e.tz)),
    "starts-with": (_any(2), lambda e, a, b: to_string(a, e.tz).startswith(to_string(b, e.tz))),
    "ends-with": (_any(2), lambda e, a, b: to_string(a, e.tz).endswith(to_string(b, e.tz))),
    "string-length": (_any(1), lambda e, a: float(len(to_string(a, e.tz)))),
    "normalize-space": (_any(1), lambda e, a: " ".join(to_string(a, e.tz).split())),
    "checklist": (_at_least(2), _f_checklist),
    "weighted-checklist": (_at_least(2), _f_weighted_checklist),
    "regex": (_any(2), lambda e, a, b: _regex(to_string(b, e.tz)).fullmatch(to_string(a, e.tz)) is not None),
    "depend": (_at_least(1), lambda e, *a: a[0]),
    "random": (_any(0), _f_random),
    "uuid": (_any(0, 1), _f_uuid),
    "digest": (_any(2, 3), _f_digest),
    "base64-decode": (_any(1), _f_base64_decode),
    "pulldata": (_any(4), _f_pulldata),
    "distance": (_at_least(1), _f_distance),
    "area": (_any(1), _f_area),
    "enclosed-area": (_any(1), _f_area),
    "geofence": (_any(2), _f_geofence),
    "randomize": (_any(1, 2), _f_randomize),
    "version": (_any(0), lambda e: e.root.attrs.get("version", "")),
}

def wrap_calculated(result: Any, dtype: str | None, tz: tzinfo = UTC) -> tuple[str, Any]:  # noqa: PLR0911 (one return per JavaRosa type rule)
    """What JavaRosa stores for a calculation's result in a node of this bind type (IAnswerData.wrapData).

    Returns the serialized text (as written to the instance XML, "" for no value) and the in-memory value
    later expressions read (booleans stay booleans, numbers numbers, dates dates).
    """
    if isinstance(result, list):
        result = unpack(result)
    if (isinstance(result, str) and result == "") or (isinstance(result, float) and math.isnan(result)):
        return "", ""
    dtype = dtype or "string"
    if dtype == "boolean" or isinstance(result, bool):
        flag = to_boolean(result)
        return ("1" if flag else "0"), flag
    if isinstance(result, float):
        if math.isinf(result):
            return ("Infinity" if result > 0 else "-Infinity"), result
        whole = int(result)
        if dtype == "int":
            whole = max(-2147483648, min(2147483647, whole))
            return str(whole), float(whole)
        if abs(result - whole) < 1.0e-9:
            return str(whole), float(whole)
        return java_double_str(result), result
    if isinstance(result, datetime | date):
        if dtype == "date":
            day = result.astimezone(tz).date() if isinstance(result, datetime) else result
            return day.isoformat(), day
        moment = (
            result
            if isinstance(result, datetime)
            else datetime(result.year, result.month, result.day, tzinfo=tz)
        )
        moment = moment.astimezone(tz)
        offset = moment.strftime("%z")
        offset = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + offset
        return text, moment
    text = to_string(result, tz)
    if not text.strip():
        return "", ""
    return text, text


# Functions whose result depends on more than their argument values (a draw, the form's version attribute, the
# order of a node-set): a column-wise evaluator cannot apply them to one row's values.
_NOT_ON_VALUES = frozenset({"random", "uuid", "randomize", "version", "now", "today"})


def value_function(name: str) -> Callable[..., Any] | None:
    """The implementation `body(env, *values)` of a library function of plain values, or None.

    For evaluators that hold each argument's value rather than a node-set (the column-wise validator): the
    result is the one the compiled expression gives for these argument values. None for the functions
    handled in the compiler itself (if, coalesce, position, count, ...) and those listed in _NOT_ON_VALUES.
    """
    if name in _NOT_ON_VALUES:
        return None
    impl = _SIMPLE.get(name)
    return impl[1] if impl is not None else None


# ----------------------------------------------------------------------------------------------------
# Compiled expressions
# ----------------------------------------------------------------------------------------------------


class _Unresolvable(Exception):
    pass


def _collect_refs(node: Expr, context: list[str], current: list[str], found: set[str]) -> None:
    match node:
        case Binary(left=left, right=right):
            _collect_refs(left, context, current, found)
            _collect_refs(right, context, current, found)
        case Negate(operand=operand):
            _collect_refs(operand, context, current, found)
        case Call(name="instance"):
            return
        case Call(name=name, args=args):
            if (name in ("string-length", "normalize-space") and not args) or name == "once":
                found.add("/" + "/".join(context))
            for arg in args:
                _collect_refs(arg, context, current, found)
        case LocationPath():
            _collect_path_refs(node, context, current, found)


def _path_base_names(path: LocationPath, context: list[str], current: list[str]) -> list[str]:
    match path.base:
        case None:
            return [] if path.absolute else list(context)
        case Call(name="instance"):
            return ["#instance"]  # secondary instances never change; only their predicates may read the form
        case Call(name="current"):
            return list(current)
    raise _Unresolvable


def _collect_path_refs(path: LocationPath, context: list[str], current: list[str], found: set[str]) -> None:
    names = _path_base_names(path, context, current)
    for step in path.steps:
        if step.axis == "self":
            pass
        elif step.axis == "parent":
            if not names:
                raise _Unresolvable
            names.pop()
        elif step.axis == "child" and not step.name.startswith("*") and step.name != "*":
            names.append(step.local_name)
        elif step.axis == "attribute":
            return
        else:
            raise _Unresolvable
        for predicate in step.predicates:
            _collect_refs(predicate, list(names), current, found)
        found.add("/" + "/".join(names))


@dataclass(frozen=True)
class CompiledExpr:
    """An expression parsed and compiled once.

    `functions` lists the functions it calls; `volatile` is True when its value may change between evaluations
    on the same data (now(), today(), random(), uuid(), once()).
    """

    source: str
    ast: Expr = field(repr=False)
    fn: Fn = field(repr=False, compare=False)
    functions: frozenset[str] = frozenset()

    @property
    def volatile(self) -> bool:
        return bool(self.functions & VOLATILE_FUNCTIONS)

    def evaluate(
        self, context: XNode | None = None, *, env: EvalEnv, position: int = 0, size: int = 0
    ) -> Any:
        """The raw value (str, float, bool, date, datetime or list of nodes).

        Parameters:
            context: the context node (the node a bind belongs to); the root when None.
            env: the environment: instance root, secondary instances, today, time zone, current node.
            position, size: context position and size (0 = the node's own position among its siblings).
        """
        node = context if context is not None else env.root
        return self.fn(node, position, size, env)

    def evaluate_boolean(self, context: XNode | None = None, *, env: EvalEnv) -> bool:
        return to_boolean(self.evaluate(context, env=env))

    def evaluate_number(self, context: XNode | None = None, *, env: EvalEnv) -> float:
        return to_number(self.evaluate(context, env=env), env.tz)

    def evaluate_string(self, context: XNode | None = None, *, env: EvalEnv) -> str:
        return to_string(self.evaluate(context, env=env), env.tz)

    def dependencies(self, context_path: str) -> frozenset[str] | None:
        """Generic paths of the nodes the expression reads when evaluated at `context_path`.

        Relative paths, `current()` and predicates are resolved; returns None when a dependency cannot be
        known statically (descendant axes, wildcards, paths from a function result other than
        current()/instance()).
        """
        found: set[str] = set()
        base = [x for x in context_path.split("/") if x]
        try:
            _collect_refs(self.ast, base, base, found)
        except _Unresolvable:
            return None
        return frozenset(p for p in found if not p.startswith("/#instance"))

    def references(self) -> tuple[str, ...]:
        """Absolute plain paths the expression reads (for dependency ordering); relative ones are skipped."""
        refs = []
        for node in walk(self.ast):
            if isinstance(node, LocationPath) and node.absolute and node.base is None:
                refs.append("/" + "/".join(step.local_name for step in node.steps))
        return tuple(refs)


@lru_cache(maxsize=8192)
def compile_xpath(expr: str) -> CompiledExpr:
    """Parse and compile an ODK XPath expression (cached by its text).

    Raises XPathSyntaxError when it does not parse and XPathUnsupportedError when it calls a function the
    evaluator does not implement.
    """
    ast = parse(expr)
    functions = frozenset(
        (n.name.split(":", 1)[-1] if not n.name.startswith("jr:choice") else n.name)
        for n in walk(ast)
        if isinstance(n, Call)
    )
    return CompiledExpr(source=expr, ast=ast, fn=compile_tree(ast), functions=functions)
