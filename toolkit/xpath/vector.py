"""The column evaluator: XPath bind expressions over whole columns (one row per submission or repeat instance).

The scalar evaluator (`toolkit.xpath`) walks one instance tree at a time. Here an expression becomes one numpy
computation over all rows of its level: values are "tagged vectors" (`TV`): per row a JavaRosa type tag
(string, number, boolean, date, dateTime) with the number/string payload, so that XPath 1.0 coercions (empty
string vs number, booleans, NaN) apply row by row exactly as in the scalar evaluator. Levels (`Level`) are the
submissions and each repeat, each row knowing its parent row; `Ctx` holds the columns, relevance and secondary
instances an expression reads.

Only expressions whose shape is known are vectorised: references to the same level or an enclosing one,
aggregates (count, sum, min, max, count-non-empty) over an enclosed repeat with an optional predicate,
position(..), indexed-repeat() into a child repeat, `instance(...)/root/item[name = expr]/col` lookups and the
function library (the functions of plain values through their scalar implementation, once per distinct tuple
of arguments). Anything else raises `NotVectorizable` while compiling (or while running, when the data does
not suit it: a date that does not parse, keys of mixed types); callers then evaluate that expression per
instance with the scalar evaluator, which is the reference (validate does so in `toolkit.validate.columns`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from toolkit.xpath import (
    EPOCH,
    EvalEnv,
    XNode,
    XPathError,
    _f_substr,
    _java_round,
    _number_to_string,
    _parse_datetime,
    _pulldata_rows,
    _regex,
    _string_to_number,
    _typed_value,
    compile_xpath,
    java_double_str,
    value_function,
    wrap_calculated,
)
from toolkit.xpath.syntax import NODE_TEST, Binary, Call, Expr, LocationPath, Negate, Number, Step, String, walk

S, N, B, D, DT = (
    0,
    1,
    2,
    3,
    4,
)  # type tags: string, number, boolean, date (days), dateTime (fractional UTC days)


# The devices' time zone for this validation run. dateTime payloads are instants (fractional days since the epoch,
# UTC); their calendar day, their text and a date's midnight are taken in this zone, as JavaRosa does on the device.
DEVICE_TZ: ContextVar[tzinfo] = ContextVar("migkit_device_tz", default=UTC)


def _local_days(n: np.ndarray) -> np.ndarray:
    """Instants (fractional UTC days) -> the whole local days of the devices' time zone."""
    tz = DEVICE_TZ.get()
    if tz is UTC:
        return np.floor(n)

    def day(x: float) -> float:
        if math.isnan(x):
            return x
        return float((datetime.fromtimestamp(x * 86400.0, tz=tz).date() - EPOCH).days)

    return per_unique(day, n, float)


class NotVectorizable(Exception):
    """The expression's shape is not handled column-wise; the caller validates per instance."""


class TV:
    """A tagged vector: per row a JavaRosa value type `t`, a string payload `s` and a number payload `n`."""

    __slots__ = ("n", "s", "t")

    def __init__(self, t: np.ndarray, s: np.ndarray, n: np.ndarray) -> None:
        self.t, self.s, self.n = t, s, n

    @classmethod
    def const(cls, value: Any, size: int) -> TV:
        if isinstance(value, bool):
            return cls(np.full(size, B, np.int8), empty_strings(size), np.full(size, float(value)))
        if isinstance(value, float):
            return cls(np.full(size, N, np.int8), empty_strings(size), np.full(size, value))
        if isinstance(value, datetime):
            return cls(
                np.full(size, DT, np.int8), empty_strings(size), np.full(size, value.timestamp() / 86400.0)
            )
        if isinstance(value, date):
            return cls(
                np.full(size, D, np.int8), empty_strings(size), np.full(size, float((value - EPOCH).days))
            )
        s = np.empty(size, dtype=object)
        s[:] = value
        return cls(np.zeros(size, np.int8), s, np.full(size, np.nan))

    def take(self, index: np.ndarray) -> TV:
        return TV(self.t[index], self.s[index], self.n[index])

    def blank_where(self, mask: np.ndarray) -> TV:
        """Rows in `mask` read as the empty string (non-relevant nodes in JavaRosa)."""
        if not mask.any():
            return self
        t, s, n = self.t.copy(), self.s.copy(), self.n.copy()
        t[mask] = S
        s[mask] = ""
        n[mask] = np.nan
        return TV(t, s, n)

    def __len__(self) -> int:
        return len(self.t)


def empty_strings(size: int) -> np.ndarray:
    s = np.empty(size, dtype=object)
    s[:] = ""
    return s


def where(cond: np.ndarray, a: TV, b: TV) -> TV:
    return TV(np.where(cond, a.t, b.t), np.where(cond, a.s, b.s), np.where(cond, a.n, b.n))


# --- coercions ----------------------------------------------------------------------------------------------


def to_num(v: TV) -> np.ndarray:
    out = v.n.copy()
    strings = v.t == S
    if strings.any():
        out[strings] = per_unique(_string_to_number, v.s[strings], float)
    dts = v.t == DT
    if dts.any():
        out[dts] = np.floor(v.n[dts])
    return out


def to_bool(v: TV) -> np.ndarray:
    bools = v.t == B
    if bools.all():  # the result of a comparison or of and/or
        return v.n != 0
    out = np.ones(len(v), dtype=bool)
    strings = v.t == S
    if strings.any():
        out[strings] = v.s[strings].astype(bool)
    nums = v.t == N
    if nums.any():
        x = v.n[nums]
        out[nums] = (np.abs(x) > 1e-12) & ~np.isnan(x)
    if bools.any():
        out[bools] = v.n[bools] != 0
    return out


_NUM_TEXT: dict[float, str] = {}


def _num_text(x: float) -> str:
    text = _NUM_TEXT.get(x)
    if text is None:
        text = _number_to_string(x)
        if len(_NUM_TEXT) < 200_000:
            _NUM_TEXT[x] = text
    return text


def _days_text(days: float) -> str:
    return (EPOCH + timedelta(days=math.floor(days))).isoformat()


def to_str(v: TV) -> np.ndarray:
    out = v.s.copy()
    nums = v.t == N
    if nums.any():
        out[nums] = [_num_text(x) for x in v.n[nums].tolist()]
    bools = v.t == B
    if bools.any():
        out[bools] = np.where(v.n[bools] != 0, "true", "false")
    dates = v.t == D
    if dates.any():
        out[dates] = [_days_text(x) for x in v.n[dates]]
    moments = v.t == DT
    if moments.any():
        out[moments] = [_days_text(x) for x in _local_days(v.n[moments])]
    return out


def bool_tv(values: np.ndarray) -> TV:
    return TV(np.full(len(values), B, np.int8), empty_strings(len(values)), values.astype(float))


def num_tv(values: np.ndarray) -> TV:
    return TV(np.full(len(values), N, np.int8), empty_strings(len(values)), values.astype(float))


def str_tv(values: np.ndarray) -> TV:
    return TV(np.zeros(len(values), np.int8), values.astype(object), np.full(len(values), np.nan))


# --- levels -------------------------------------------------------------------------------------------------


@dataclass
class Level:
    """One table: the rows of a repeat (or the submissions), with the index of each row's parent row."""

    path: str  # generic path of the repeat, or the root
    size: int
    parent: Level | None
    parent_index: np.ndarray | None  # row in parent level, per row
    position: np.ndarray  # 1-based position among siblings (the `<repeat>_no`)

    def ancestors(self) -> list[Level]:
        chain: list[Level] = []
        cursor: Level | None = self
        while cursor is not None:
            chain.append(cursor)
            cursor = cursor.parent
        return chain

    def index_to(self, ancestor: Level) -> np.ndarray:
        """For each row of this level, the row of `ancestor` (an enclosing level) it sits in."""
        memo = self.__dict__.setdefault("_memo", {})
        found = memo.get(id(ancestor))
        if found is None:
            found = memo[id(ancestor)] = self._index_to(ancestor)
        return found

    def _index_to(self, ancestor: Level) -> np.ndarray:
        index = np.arange(self.size)
        cursor: Level = self
        while cursor is not ancestor:
            if cursor.parent is None or cursor.parent_index is None:
                raise NotVectorizable("not an enclosing level")
            index = cursor.parent_index[index]
            cursor = cursor.parent
        return index


# --- the vector compiler ------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a vector expression reads: levels, columns (typed values), relevance, secondary instances."""

    levels: Mapping[str, Level]
    level_of: Mapping[str, str]  # generic node path -> its level path
    values: dict[str, TV]  # field path -> typed values at its level (in-memory values, calculations updated)
    relevance: dict[str, np.ndarray]  # node path -> inherited relevance at its level
    secondary: Mapping[str, XNode]
    today: date | np.ndarray  # one date, or per submission (main-table row) days since EPOCH
    labels: Mapping[tuple[str, str], str]
    node_kinds: Mapping[str, str]
    candidate: TV | None = None  # the value `.` reads in a constraint
    media: Any = None  # an EvalEnv whose media_dir serves pulldata()
    item: Mapping[str, str] | None = None  # the choice whose filter is being evaluated
    rows: np.ndarray | None = None  # the rows whose result is used (a per-instance evaluation skips the rest)


VFn = Callable[[Ctx, Level], TV]
_VOLATILE = frozenset({"now", "random", "uuid", "once", "randomize", "property"})
_AGGREGATES = frozenset({"count", "sum", "max", "min", "count-non-empty"})


_SELF = LocationPath(False, (Step("self", NODE_TEST),))


def _resolve(steps: tuple[Step, ...], base: list[str]) -> list[str]:
    names = list(base)
    for step in steps:
        if step.predicates:
            raise NotVectorizable("predicate")
        if step.axis == "self":
            continue
        if step.axis == "parent":
            if not names:
                raise NotVectorizable("above the root")
            names.pop()
        elif step.axis == "child" and not step.name.startswith("*") and step.name != "*":
            names.append(step.local_name)
        else:
            raise NotVectorizable(f"axis {step.axis}")
    return names


def _path_of(ast: Expr, context: list[str]) -> tuple[str, Expr | None]:
    """The generic path a path expression points to, and a predicate on its last step (or None)."""
    if not isinstance(ast, LocationPath):
        raise NotVectorizable("not a path")
    steps = ast.steps
    match ast.base:
        case None:
            start = [] if ast.absolute else list(context)
        case Call(name="current", args=()):
            start = list(context)
        case _:
            raise NotVectorizable("path from an expression")
    predicate = None
    if steps and steps[-1].predicates:
        if len(steps[-1].predicates) != 1:
            raise NotVectorizable("several predicates")
        predicate = steps[-1].predicates[0]
        steps = (*steps[:-1], Step(steps[-1].axis, steps[-1].name))
    return "/" + "/".join(_resolve(steps, start)), predicate


def _is_lookup(ast: Expr) -> bool:
    """instance('list')/root/item[...]/column."""
    return isinstance(ast, LocationPath) and isinstance(ast.base, Call) and ast.base.name == "instance"


class VCompiler:
    """Compiles bind expressions into vector functions for a given context node."""

    def __init__(
        self,
        level_of: Mapping[str, str],
        node_kinds: Mapping[str, str],
        root: str,
        *,
        item_mode: bool = False,
    ) -> None:
        self.level_of = level_of
        self.node_kinds = node_kinds
        self.root = root
        # In a choice filter, a bare relative name (`name`, `region`) is a column of the choice being tested.
        self.item_mode = item_mode

    def compile(self, expr: str, context_path: str) -> VFn:
        """The vector function of `expr` evaluated at the node `context_path` (raises NotVectorizable)."""
        return self.compile_ast(compile_xpath(expr).ast, context_path)

    def compile_ast(self, ast: Expr, context_path: str) -> VFn:
        """The vector function of a parsed expression (`compile_xpath(...).ast`) at the node `context_path`."""
        return self._c(ast, [x for x in context_path.split("/") if x], context_path)

    def _level(self, path: str) -> str:
        level = self.level_of.get(path)
        if level is None:
            raise NotVectorizable(f"unknown node {path}")
        return level

    def _c(self, ast: Expr, context: list[str], context_path: str) -> VFn:
        match ast:
            case Number(value=value) | String(value=value):
                return lambda c, lv: TV.const(value, lv.size)
            case Negate(operand=operand):
                inner = self._c(operand, context, context_path)
                return lambda c, lv: num_tv(-to_num(inner(c, lv)))
            case Binary(op=op, left=left, right=right):
                return self._binary(op, self._c(left, context, context_path), self._c(right, context, context_path))
            case LocationPath() if _is_lookup(ast):
                return self._lookup(ast, context, context_path)
            case LocationPath():
                return self._reference(ast, context, context_path)
            case Call(name=name, args=args):
                return self._function(name, args, context, context_path)
        raise NotVectorizable(type(ast).__name__)

    def _reference(self, ast: LocationPath, context: list[str], context_path: str) -> VFn:
        relative = not ast.absolute and ast.base is None
        if self.item_mode and relative and len(ast.steps) == 1 and ast.steps[0].axis == "child":
            column = ast.steps[0].name
            if ast.steps[0].predicates or column.startswith("*"):
                raise NotVectorizable("choice filter step")
            return lambda c, lv: TV.const(c.item.get(column, "") if c.item is not None else "", lv.size)
        if self.item_mode and relative:
            raise NotVectorizable("relative path in a choice filter")
        path, predicate = _path_of(ast, context)
        if predicate is not None:
            raise NotVectorizable("predicate outside an aggregate")
        if self.node_kinds.get(path) != "field":
            raise NotVectorizable("a group used as a value")
        target_level = self._level(path)
        own_level = self._level(context_path)
        if path == context_path:

            def own(c: Ctx, lv: Level) -> TV:
                if c.candidate is not None:
                    return c.candidate
                return c.values[path].blank_where(~c.relevance[path])

            return own

        def reference(c: Ctx, lv: Level) -> TV:
            target = c.levels[target_level]
            if target not in lv.ancestors():
                raise NotVectorizable("a repeated field used as a single value")
            value = c.values[path].blank_where(~c.relevance[path])
            return value if target is lv else value.take(lv.index_to(target))

        del own_level
        return reference

    def _binary(self, op: str, left: VFn, right: VFn) -> VFn:
        if op in ("and", "or"):
            combine = np.logical_and if op == "and" else np.logical_or
            return lambda c, lv: bool_tv(combine(to_bool(left(c, lv)), to_bool(right(c, lv))))
        if op in ("=", "!="):
            want = op == "="
            return lambda c, lv: bool_tv(_equal(left(c, lv), right(c, lv)) == want)
        if op in ("<", "<=", ">", ">="):
            cmp = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[op]

            def relational(c: Ctx, lv: Level) -> TV:
                with np.errstate(invalid="ignore"):
                    return bool_tv(cmp(to_num(left(c, lv)), to_num(right(c, lv))))

            return relational

        def arithmetic(c: Ctx, lv: Level) -> TV:
            a, b = to_num(left(c, lv)), to_num(right(c, lv))
            with np.errstate(all="ignore"):
                if op == "+":
                    r = a + b
                elif op == "-":
                    r = a - b
                elif op == "*":
                    r = a * b
                elif op == "div":
                    r = a / b
                else:
                    r = np.where((b == 0) | np.isinf(a), np.nan, np.fmod(a, np.where(b == 0, 1, b)))
            return num_tv(r)

        return arithmetic

    def _function(self, raw: str, args: tuple[Expr, ...], context: list[str], context_path: str) -> VFn:  # noqa: PLR0911, PLR0912
        name = raw.split(":", 1)[-1] if not raw.startswith("jr:choice") else "jr:choice-name"
        if name in _VOLATILE:
            raise NotVectorizable(name)
        if name in _AGGREGATES:
            return self._aggregate(name, args, context, context_path)
        if name == "position":
            return self._position(args, context, context_path)
        if name == "indexed-repeat":
            return self._indexed_repeat(args, context, context_path)
        if name == "instance":
            raise NotVectorizable("instance() outside a lookup")
        if name == "pulldata":
            return self._pulldata(args, context, context_path)
        if name in ("true", "false") and not args:
            flag = name == "true"
            return lambda c, lv: TV.const(flag, lv.size)
        if name == "today" and not args:
            root = self.root

            def today_of(c: Ctx, lv: Level) -> TV:
                if isinstance(c.today, date):
                    return TV.const(c.today, lv.size)
                days = c.today[lv.index_to(c.levels[root])]  # each submission's interview day
                return TV(np.full(lv.size, D, np.int8), empty_strings(lv.size), days)

            return today_of
        if name == "current" and not args:
            return self._reference(_SELF, context, context_path)
        if name in ("string-length", "normalize-space") and not args:
            args = (_SELF,)
        compiled = [self._arg(a, context, context_path) for a in args]
        impl = _SCALAR.get(name)
        if impl is None:
            # Any other function of plain values (trigonometry, digest, geo on a single trace ...): the scalar
            # implementation, once per distinct tuple of arguments.
            scalar = value_function(name)
            if scalar is None:
                raise NotVectorizable(name)
            if not compiled:
                return lambda c, lv: TV.const(scalar(EvalEnv(root=XNode("x"))), lv.size)
            impl = (None, _on_values(name, scalar))
        arity, body = impl
        if arity is not None and len(args) not in arity:
            raise NotVectorizable(f"{name} arity")
        if name == "if":
            cond, yes, no = compiled
            return lambda c, lv: where(to_bool(cond(c, lv)), yes(c, lv), no(c, lv))
        if name == "jr:choice-name":
            return lambda c, lv: body(c, context_path, *(f(c, lv) for f in compiled))
        return lambda c, lv: body(*(f(c, lv) for f in compiled))

    def _arg(self, ast: Expr, context: list[str], context_path: str) -> VFn:
        # instance('list')/root/item[name = expr]/column: a lookup by key
        if isinstance(ast, LocationPath) and _is_lookup(ast):
            return self._lookup(ast, context, context_path)
        return self._c(ast, context, context_path)

    def _pulldata(self, args: tuple[Expr, ...], context: list[str], context_path: str) -> VFn:
        names = [a.value for a in args[:3] if isinstance(a, String)]
        if len(args) != 4 or len(names) != 3:
            raise NotVectorizable("pulldata with computed file or column names")
        name, column, key_column = names
        key_fn = self._c(args[3], context, context_path)

        def pulldata(c: Ctx, lv: Level) -> TV:
            try:
                rows = _pulldata_rows(c.media, name)
            except XPathError as exc:
                raise NotVectorizable(str(exc)) from None
            table: dict[str, str] = {}
            for row in rows:
                key = row.get(key_column)
                if key is not None and key not in table:
                    table[key] = row.get(column, "")
            return str_tv(per_unique(lambda k: table.get(k, ""), to_str(key_fn(c, lv)), object))

        return pulldata

    def _lookup(self, ast: LocationPath, context: list[str], context_path: str) -> VFn:
        steps = ast.steps
        match ast.base:
            case Call(args=(String(value=ident),)) if len(steps) == 3:
                pass
            case _:
                raise NotVectorizable("instance lookup shape")
        root_step, item_step, column_step = steps
        item_name, column, preds = item_step.name, column_step.name, item_step.predicates
        if root_step.predicates or column_step.predicates or len(preds) != 1:
            raise NotVectorizable("instance lookup predicate")
        match preds[0]:
            case Binary(op="=", left=LocationPath(absolute=False, base=None, steps=(key_step,)), right=expr_ast):
                key_name = key_step.name
            case Binary(op="="):
                raise NotVectorizable("instance lookup key")
            case _:
                raise NotVectorizable("instance lookup predicate")
        value_fn = self._c(expr_ast, context, context_path)

        def lookup(c: Ctx, lv: Level) -> TV:
            inst = c.secondary.get(ident)
            if inst is None:
                raise NotVectorizable(f"instance {ident} missing")
            table: dict[str, str] = {}
            for item in inst.children:
                if item.name != item_name:
                    continue
                k, v = item.child(key_name), item.child(column)
                if k is not None and v is not None and k.string not in table:
                    table[k.string] = v.string
            keys = value_fn(c, lv)
            if (keys.t == N).any():
                raise NotVectorizable("numeric lookup keys")
            found = np.array([table.get(k) for k in to_str(keys)], dtype=object)
            missing = np.array([x is None for x in found], dtype=bool)
            found[missing] = ""
            return str_tv(found)

        return lookup

    def _child_rows(  # noqa: PLR0917 (hot internal helper)
        self, c: Ctx, lv: Level, path: str, predicate: Expr | None, context: list[str], pred_fn: VFn | None
    ) -> tuple[Level, np.ndarray, np.ndarray]:
        """Rows of a descendant level under each row of `lv`: (level, counted rows, owner row in lv)."""
        target = c.levels[self._level(path)]
        if target is lv or lv not in target.ancestors():
            raise NotVectorizable("aggregate over a non-descendant")
        mask = c.relevance[path].copy()
        if pred_fn is not None:
            mask &= to_bool(pred_fn(c, target))
        return target, mask, target.index_to(lv)

    def _aggregate(self, name: str, args: tuple[Expr, ...], context: list[str], context_path: str) -> VFn:
        if len(args) > 1 and name in ("max", "min"):
            parts = [self._c(a, context, context_path) for a in args]

            def extreme(c: Ctx, lv: Level) -> TV:
                xs = np.vstack([to_num(p(c, lv)) for p in parts])
                found = ~np.isnan(xs).all(axis=0)
                start = 5e-324 if name == "max" else 1.7976931348623157e308
                with np.errstate(invalid="ignore"):
                    best = (np.fmax if name == "max" else np.fmin).reduce(
                        np.vstack([np.full(lv.size, start), xs])
                    )
                return num_tv(np.where(found, best, np.nan))

            return extreme
        if len(args) != 1:
            raise NotVectorizable(f"{name} with several arguments")
        path, predicate = _path_of(args[0], context)
        kind = self.node_kinds.get(path)
        if kind is None:
            raise NotVectorizable("unknown node")
        pred_fn = None
        if predicate is not None and _mentions_current(predicate):
            if name != "count" or kind != "repeat":
                raise NotVectorizable("current() in a predicate")
            return self._count_matching(path, predicate, context_path)
        if predicate is not None:
            pred_fn = self._c(predicate, [x for x in path.split("/") if x], path)
            if _is_numeric_predicate(predicate):
                raise NotVectorizable("positional predicate")
        if name in ("sum", "max", "min", "count-non-empty") and kind != "field":
            raise NotVectorizable(f"{name} of a group")
        absolute = isinstance(args[0], LocationPath) and args[0].absolute and args[0].base is None
        own_level, target_level = self._level(context_path), self._level(path)
        if absolute and predicate is None and (own_level + "/").startswith(target_level + "/"):
            return self._pinned_aggregate(name, path, target_level)

        def aggregate(c: Ctx, lv: Level) -> TV:
            _target, mask, owner = self._child_rows(c, lv, path, predicate, context, pred_fn)
            if name == "count":
                return num_tv(np.bincount(owner[mask], minlength=lv.size).astype(float))
            values = c.values[path].blank_where(~c.relevance[path])
            if name == "count-non-empty":
                nonempty = mask & (to_str(values) != "")
                return num_tv(np.bincount(owner[nonempty], minlength=lv.size).astype(float))
            x = to_num(values)
            ok = mask & ~np.isnan(x)
            if name == "sum":
                return num_tv(np.bincount(owner[ok], weights=x[ok], minlength=lv.size))
            found = np.bincount(owner[ok], minlength=lv.size) > 0
            if name == "max":
                out = np.full(lv.size, 5e-324)
                np.maximum.at(out, owner[ok], x[ok])
            else:
                out = np.full(lv.size, 1.7976931348623157e308)
                np.minimum.at(out, owner[ok], x[ok])
            return num_tv(np.where(found, out, np.nan))

        return aggregate

    def _pinned_aggregate(self, name: str, path: str, target_level: str) -> VFn:
        """An aggregate over an absolute path whose repeats all enclose the context: JavaRosa pins each of them to
        the context's instance (TreeReference.contextualize), so it reads the one node of this row."""

        def single(c: Ctx, lv: Level) -> TV:
            target = c.levels[target_level]
            index = None if target is lv else lv.index_to(target)
            relevant = c.relevance[path] if index is None else c.relevance[path][index]
            if name == "count":
                return num_tv(relevant.astype(float))
            values = c.values[path].blank_where(~c.relevance[path])
            values = values if index is None else values.take(index)
            if name == "count-non-empty":
                return num_tv(((to_str(values) != "") & relevant).astype(float))
            x = to_num(values)
            with np.errstate(invalid="ignore"):
                if name == "sum":
                    return num_tv(np.where(np.isnan(x), 0.0, x))
                # max/min start from Double.MIN_VALUE / MAX_VALUE, as in the aggregate below
                bound = np.maximum(x, 5e-324) if name == "max" else np.minimum(x, 1.7976931348623157e308)
            return num_tv(np.where(np.isnan(x), np.nan, bound))

        return single

    def _count_matching(self, repeat: str, predicate: Expr, context_path: str) -> VFn:
        """count(repeat[field = current()/...]): rows whose field equals this row's value (uniqueness checks such
        as `count(../../ab[ab_line = current()/.]) = 1`, or an answer picked from another repeat's rows), by
        grouping instead of pairing rows. The predicate may also be `(filter) and field = current()/...`, the
        filter not mentioning current(): only the rows it allows count."""
        row_filter: VFn | None = None
        if isinstance(predicate, Binary) and predicate.op == "and":
            first, second = predicate.left, predicate.right
            if _mentions_current(first):
                first, second = second, first
            if _mentions_current(first) or _is_numeric_predicate(first):
                raise NotVectorizable("current() predicate shape")
            row_filter = self._c(first, [x for x in repeat.split("/") if x], repeat)
            predicate = second
        if not isinstance(predicate, Binary) or predicate.op != "=":
            raise NotVectorizable("current() predicate shape")
        left, right = predicate.left, predicate.right
        if _mentions_current(left):
            left, right = right, left
        if (
            _mentions_current(left)
            or not isinstance(left, LocationPath)
            or left.absolute
            or left.base is not None
            or len(left.steps) != 1
        ):
            raise NotVectorizable("current() predicate shape")
        field = repeat + "/" + left.steps[0].local_name
        if self.node_kinds.get(field) != "field" or left.steps[0].predicates:
            raise NotVectorizable("current() predicate field")
        here = [x for x in context_path.split("/") if x]
        other = self._c(right, here, context_path)

        def count(c: Ctx, lv: Level) -> TV:
            target = c.levels[repeat]
            # Rows are matched within the row of the repeat's parent level that holds this row: the same
            # household for a sibling check, or for a pick from another repeat of the same submission.
            if target.parent is None or target.parent_index is None or target.parent not in lv.ancestors():
                raise NotVectorizable("current() predicate across levels")
            candidates = c.relevance[repeat]
            if row_filter is not None:
                candidates = candidates & to_bool(row_filter(c, target))
            keys_t = _eq_keys(c.values[field].blank_where(~c.relevance[field]))
            keys_c = _eq_keys(other(c, lv))
            owner_t = target.parent_index[candidates].astype(np.int64)
            owner_c = lv.index_to(target.parent).astype(np.int64)
            # (owner row, key) pairs as one integer each: count the rows' pairs, look up each context's pair.
            codes, uniques = pd.factorize(np.concatenate([keys_t[candidates], keys_c]), use_na_sentinel=False)
            width = len(uniques) + 1
            pairs_t = owner_t * width + codes[: len(owner_t)]
            pairs_c = owner_c * width + codes[len(owner_t) :]
            seen, counts = np.unique(pairs_t, return_counts=True)
            if not len(seen):
                return num_tv(np.zeros(lv.size))
            at = np.minimum(np.searchsorted(seen, pairs_c), len(seen) - 1)
            return num_tv(np.where(seen[at] == pairs_c, counts[at], 0).astype(float))

        return count

    def _position(self, args: tuple[Expr, ...], context: list[str], context_path: str) -> VFn:
        if not args:
            raise NotVectorizable("position() outside a predicate")
        path, predicate = _path_of(args[0], context)
        if predicate is not None or self.node_kinds.get(path) != "repeat":
            raise NotVectorizable("position() of a non-repeat")

        def position(c: Ctx, lv: Level) -> TV:
            target = c.levels[path]
            if target not in lv.ancestors():
                raise NotVectorizable("position() of a non-enclosing repeat")
            index = lv.index_to(target)
            pos = target.position[index].astype(float)
            relevant = c.relevance[path][index]
            return num_tv(np.where(relevant, pos, 0.0))

        return position

    def _indexed_repeat(self, args: tuple[Expr, ...], context: list[str], context_path: str) -> VFn:
        if len(args) != 3:
            raise NotVectorizable("indexed-repeat with nested repeats")
        field, p1 = _path_of(args[0], context)
        repeat, p2 = _path_of(args[1], context)
        if p1 is not None or p2 is not None or self.node_kinds.get(repeat) != "repeat":
            raise NotVectorizable("indexed-repeat shape")
        if self._level(field) != repeat or not field.startswith(repeat + "/"):
            raise NotVectorizable("indexed-repeat target outside the repeat")
        index_fn = self._c(args[2], context, context_path)

        def indexed(c: Ctx, lv: Level) -> TV:
            target = c.levels[repeat]
            if target.parent is None or target.parent not in lv.ancestors():
                raise NotVectorizable("indexed-repeat from another level")
            owner = lv.index_to(target.parent)
            wanted = to_num(index_fn(c, lv))
            wanted = np.where(np.isnan(wanted), 1, np.trunc(wanted))
            wanted = np.where(wanted <= 0, 1, wanted)
            assert target.parent_index is not None
            lookup = pd.Series(
                np.arange(target.size),
                index=pd.MultiIndex.from_arrays([target.parent_index, target.position]),
            )
            lookup = lookup[~lookup.index.duplicated()]
            keys = pd.MultiIndex.from_arrays([owner, wanted.astype(np.int64)])
            rows = lookup.reindex(keys).to_numpy()
            found = ~pd.isna(rows)
            rows_i = np.where(found, rows, 0).astype(np.int64)
            visible = c.relevance[field].copy()
            value = c.values[field].blank_where(~visible)
            if target.size == 0:
                return TV.const("", lv.size)
            picked = value.take(rows_i)
            ok = found & visible[rows_i] & c.relevance[repeat][rows_i]
            return picked.blank_where(~ok)

        return indexed


def _mentions_current(ast: Expr) -> bool:
    return any(isinstance(node, Call) and node.name == "current" for node in walk(ast))


def _eq_keys(v: TV) -> np.ndarray:
    """Keys equal exactly when JavaRosa's `=` says so, for columns of one kind (numbers, or strings)."""
    numeric = v.t == N
    nonempty_strings = (v.t == S) & (v.s != "")
    if (v.t == B).any() or (v.t >= D).any() or (numeric.any() and nonempty_strings.any()):
        raise NotVectorizable("mixed types in an equality key")
    keys = np.empty(len(v), dtype=object)
    keys[:] = v.s
    if numeric.any():
        keys[numeric] = v.n[numeric].tolist()
    return keys


def _is_numeric_predicate(ast: Expr) -> bool:
    return isinstance(ast, Number | Negate) or (
        isinstance(ast, Binary) and ast.op in ("+", "-", "*", "div", "mod")
    )


def _equal(a: TV, b: TV) -> np.ndarray:
    if not a.t.any() and not b.t.any():  # two string columns (select answers against a code): compared as texts
        return np.asarray(a.s == b.s, dtype=bool)
    out = np.zeros(len(a), dtype=bool)
    boolish = (a.t == B) | (b.t == B)
    if boolish.any():
        out[boolish] = to_bool(a)[boolish] == to_bool(b)[boolish]
    numeric = ~boolish & ((a.t == N) | (b.t == N))
    if numeric.any():
        with np.errstate(invalid="ignore"):
            out[numeric] = np.abs(to_num(a)[numeric] - to_num(b)[numeric]) < 1e-12
    rest = ~boolish & ~numeric
    if rest.any():
        out[rest] = to_str(a)[rest] == to_str(b)[rest]
    return out


def per_unique(fn: Callable[[Any], Any], values: np.ndarray, dtype: Any) -> np.ndarray:
    """fn applied once per distinct value (answers repeat a lot across submissions), spread back to rows."""
    if len(values) == 0:
        return np.empty(0, dtype=dtype)
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.array([fn(u) for u in uniques], dtype=dtype)[codes]


# --- scalar library, element-wise ---------------------------------------------------------------------------


def _map_str(fn: Callable[[str], Any], v: TV) -> list[Any]:
    return [fn(x) for x in to_str(v)]


def _selected(a: TV, b: TV) -> TV:
    if (b.t != S).any():
        raise NotVectorizable("selected() with a non-string choice")
    wanted = set(b.s.tolist())
    if len(wanted) == 1:
        w = f" {next(iter(wanted)).strip()} "
        return bool_tv(per_unique(lambda x: w in f" {x} ", to_str(a), bool))
    return bool_tv(
        np.array([f" {w.strip()} " in f" {x} " for x, w in zip(to_str(a), b.s, strict=True)], bool)
    )


def _count_selected(a: TV) -> TV:
    return num_tv(per_unique(lambda x: float(len(x.split())), to_str(a), float))


def _selected_at(a: TV, i: TV) -> TV:
    idx = to_num(i)
    out = []
    for x, k in zip(to_str(a), idx, strict=True):
        items = x.split()
        j = int(k) if not math.isnan(k) else 0
        out.append(items[j] if 0 <= j < len(items) else "")
    return str_tv(np.array(out, dtype=object))


def _regex_fn(a: TV, p: TV) -> TV:
    patterns = set(p.s[p.t == S]) if (p.t == S).all() else None
    if patterns is None or len(patterns) != 1:
        raise NotVectorizable("regex with a computed pattern")
    pattern = _regex(next(iter(patterns)))
    cache: dict[str, bool] = {}
    out = []
    for x in to_str(a):
        r = cache.get(x)
        if r is None:
            r = cache[x] = pattern.fullmatch(x) is not None
        out.append(r)
    return bool_tv(np.array(out, dtype=bool))


def _concat(*vs: TV) -> TV:
    parts = [to_str(v) for v in vs]
    if not parts:
        return TV.const("", 0)
    out = parts[0].copy()
    for p in parts[1:]:
        out = out + p
    return str_tv(out)


def _int_fn(v: TV) -> TV:
    x = to_num(v)
    with np.errstate(invalid="ignore"):
        return num_tv(np.where(np.isfinite(x), np.trunc(x), x))


def _round_fn(v: TV, places: TV | None = None) -> TV:
    x = to_num(v)
    p = to_num(places) if places is not None else np.zeros(len(x))
    digits = set(p.tolist())
    if len(digits) <= 1:
        d = next(iter(digits), 0.0)
        k = int(d) if not math.isnan(d) else 0
        return num_tv(per_unique(lambda a: _java_round(float(a), k), x, float))
    out = [_java_round(float(a), int(b) if not math.isnan(b) else 0) for a, b in zip(x, p, strict=True)]
    return num_tv(np.array(out, dtype=float))


def _coalesce(a: TV, b: TV) -> TV:
    empty = ((a.t == S) & (a.s == "")) | ((a.t == N) & np.isnan(a.n))
    return where(empty, b, a)


def _date_fn(v: TV) -> TV:
    if (v.t == B).any():
        raise NotVectorizable("date() of a boolean")  # a type error in JavaRosa, raised per instance
    t = v.t.copy()
    n = v.n.copy()
    s = v.s.copy()
    strings = (v.t == S) & (v.s != "")
    if strings.any():

        def days_of(text: str) -> float:
            parsed = _parse_datetime(str(text).strip())
            if parsed is None:
                raise NotVectorizable("unparseable date")
            if isinstance(parsed, datetime):
                parsed = parsed.date()
            return float((parsed - EPOCH).days)

        rows = np.flatnonzero(strings)
        t[rows], n[rows], s[rows] = D, per_unique(days_of, v.s[rows], float), ""
    nums = v.t == N
    n[nums] = np.where(np.isnan(v.n[nums]), np.nan, np.trunc(v.n[nums]))
    t[nums & ~np.isnan(v.n)] = D
    dts = v.t == DT
    n[dts] = _local_days(v.n[dts])
    t[dts] = D
    return TV(t, s, n)


def _str_fn(fn: Callable[..., Any], kind: int) -> Callable[..., TV]:
    def apply(*vs: TV) -> TV:
        columns = [to_str(v) for v in vs]
        constant_rest = all(len(set(c.tolist())) <= 1 for c in columns[1:])
        if constant_rest:
            rest = [c[0] if len(c) else "" for c in columns[1:]]
            out_type = bool if kind == B else (float if kind == N else object)
            values: np.ndarray | list[Any] = per_unique(lambda x: fn(x, *rest), columns[0], out_type)
        else:
            values = [fn(*row) for row in zip(*columns, strict=True)]
        if kind == B:
            return bool_tv(np.array(values, dtype=bool))
        if kind == N:
            return num_tv(np.array(values, dtype=float))
        return str_tv(np.array(values, dtype=object))

    return apply


def _substr(s: str, start: str, end: str | None = None) -> str:
    return _f_substr(EvalEnv(root=XNode("x")), s, start, end)


def _question_path(ref_text: str, context_path: str) -> str:
    """The generic path jr:choice-name() names: predicates dropped, a relative path anchored at the context."""
    ref = re.sub(r"\[[^\]]*\]", "", ref_text).strip()
    if ref.startswith("/"):
        return ref
    parts = [x for x in context_path.split("/") if x]
    for step in ref.split("/"):
        if step == "..":
            parts = parts[:-1]
        elif step not in (".", ""):
            parts.append(step)
    return "/" + "/".join(parts)


def _label_of(labels: Mapping[tuple[str, str], str], question_path: str, answer: str) -> str:
    return labels.get((question_path, answer), "")


def _choice_name(c: Ctx, context_path: str, value: TV, question: TV) -> TV:
    """jr:choice-name(value, question): the question is nearly always one literal, but may be computed per row."""
    answers = to_str(value)
    out = empty_strings(len(answers))
    codes, refs = pd.factorize(to_str(question), use_na_sentinel=False)
    for k, ref_text in enumerate(refs):
        question_path = _question_path(str(ref_text), context_path)
        rows = np.flatnonzero(codes == k)
        out[rows] = per_unique(partial(_label_of, c.labels, question_path), answers[rows], object)
    return str_tv(out)


def _num_fn(fn: Callable[[float], float]) -> Callable[[TV], TV]:
    def apply(v: TV) -> TV:
        x = v.n.copy() if (v.t == D).all() else to_num(v)
        with np.errstate(all="ignore"):
            return num_tv(np.array([_safe(fn, a) for a in x], dtype=float))

    return apply


def _safe(fn: Callable[[float], float], a: float) -> float:
    try:
        return fn(a)
    except (ValueError, OverflowError):
        return math.nan


def _safe_pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except (ValueError, OverflowError):
        return math.nan


def _pow(a: TV, b: TV) -> TV:
    x, y = to_num(a), to_num(b)
    return num_tv(np.array([_safe_pow(p, q) for p, q in zip(x, y, strict=True)], float))


def scalar_at(v: TV, row: int) -> Any:
    """One row's value as the scalar evaluator holds it (str, float, bool, date, an aware datetime)."""
    tag = v.t[row]
    if tag == S:
        return v.s[row]
    x = float(v.n[row])
    if tag == N:
        return x
    if tag == B:
        return x != 0
    if tag == D:
        return EPOCH + timedelta(days=int(x))
    return datetime.fromtimestamp(x * 86400.0, tz=DEVICE_TZ.get())


def tv_of_scalars(values: list[Any]) -> TV:
    """Scalar results (str, float, bool, date, datetime) as a tagged vector."""
    size = len(values)
    t = np.zeros(size, np.int8)
    s = empty_strings(size)
    n = np.full(size, np.nan)
    for i, value in enumerate(values):
        if isinstance(value, bool):
            t[i], n[i] = B, float(value)
        elif isinstance(value, float | int):
            t[i], n[i] = N, float(value)
        elif isinstance(value, datetime):
            t[i], n[i] = DT, value.timestamp() / 86400.0
        elif isinstance(value, date):
            t[i], n[i] = D, float((value - EPOCH).days)
        else:
            s[i] = value if isinstance(value, str) else str(value)
    return TV(t, s, n)


def _on_values(name: str, body: Callable[..., Any]) -> Callable[..., TV]:
    """A library function of plain values applied row by row, once per distinct tuple of argument values.

    Its result is the scalar evaluator's own; where that raises for a row (a date that does not parse), the
    expression is handed to the per-instance evaluator, which reports the error on that submission.
    """

    def apply(*vs: TV) -> TV:
        env = EvalEnv(root=XNode("x"), tz=DEVICE_TZ.get())
        size = len(vs[0])
        # Each row's argument tuple as one small integer: the codes of (type tag, text, number) of each argument,
        # combined and renumbered argument by argument.
        combined = np.zeros(size, dtype=np.int64)
        for v in vs:
            texts, _ = pd.factorize(np.where(v.t == S, v.s, ""), use_na_sentinel=False)
            numbers, _ = pd.factorize(v.n, use_na_sentinel=False)
            for codes in (v.t.astype(np.int64), texts, numbers):
                combined = np.unique(combined * (int(codes.max(initial=0)) + 1) + codes, return_inverse=True)[1]
        _, first, back = np.unique(combined, return_index=True, return_inverse=True)
        results: list[Any] = []
        for row in first.tolist():
            try:
                results.append(body(env, *(scalar_at(v, row) for v in vs)))
            except XPathError as exc:
                raise NotVectorizable(f"{name}: {exc}") from None
        return tv_of_scalars(results).take(back.reshape(-1))

    return apply


_SCALAR: dict[str, tuple[tuple[int, ...] | None, Callable[..., TV]]] = {
    "not": ((1,), lambda a: bool_tv(~to_bool(a))),
    "boolean": ((1,), lambda a: bool_tv(to_bool(a))),
    "number": ((1,), lambda a: num_tv(to_num(a))),
    "string": ((1,), lambda a: str_tv(to_str(a))),
    "int": ((1,), _int_fn),
    "round": ((1, 2), _round_fn),
    "if": ((3,), lambda *a: a[0]),
    "coalesce": ((2,), _coalesce),
    "selected": ((2,), _selected),
    "is-selected": ((2,), _selected),
    "count-selected": ((1,), _count_selected),
    "selected-at": ((2,), _selected_at),
    "regex": ((2,), _regex_fn),
    "concat": (None, _concat),
    "contains": ((2,), _str_fn(lambda a, b: b in a, B)),
    "starts-with": ((2,), _str_fn(lambda a, b: a.startswith(b), B)),
    "ends-with": ((2,), _str_fn(lambda a, b: a.endswith(b), B)),
    "string-length": ((1,), _str_fn(lambda a: float(len(a)), N)),
    "normalize-space": ((1,), _str_fn(lambda a: " ".join(a.split()), S)),
    "substring-before": ((2,), _str_fn(lambda a, b: a[: a.find(b)] if b in a else "", S)),
    "substring-after": ((2,), _str_fn(lambda a, b: a[a.find(b) + len(b) :] if b in a else "", S)),
    "substr": ((2, 3), _str_fn(_substr, S)),
    "boolean-from-string": ((1,), _str_fn(lambda a: a.lower() == "true" or a == "1", B)),
    "date": ((1,), _date_fn),
    "abs": ((1,), _num_fn(abs)),
    "sqrt": ((1,), _num_fn(lambda x: math.sqrt(x) if x >= 0 else math.nan)),
    "log10": ((1,), _num_fn(lambda x: math.log10(x) if x > 0 else (-math.inf if x == 0 else math.nan))),
    "pow": ((2,), _pow),
    "jr:choice-name": ((2,), _choice_name),
}
for _name in ("format-date", "format-date-time"):
    _SCALAR[_name] = ((2,), _on_values(_name, value_function(_name)))  # type: ignore[arg-type]


def _decimal_date_time(v: TV) -> TV:
    out = v.n.copy()
    t = np.where((v.t == D) | (v.t == DT) | (v.t == N), N, S).astype(np.int8)
    s = empty_strings(len(v))
    for i in np.flatnonzero(v.t == S):
        text = str(v.s[i])
        if text == "":
            continue
        tz = DEVICE_TZ.get()
        parsed = _parse_datetime(text.strip(), tz)
        if parsed is None:
            raise NotVectorizable("unparseable date")
        moment = (
            parsed
            if isinstance(parsed, datetime)
            else datetime(parsed.year, parsed.month, parsed.day, tzinfo=tz)
        )
        out[i], t[i] = moment.timestamp() / 86400.0, N
    dates = v.t == D
    tz = DEVICE_TZ.get()
    if dates.any() and tz is not UTC:  # a date is its local midnight

        def midnight(days: float) -> float:
            day = EPOCH + timedelta(days=int(days))
            return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() / 86400.0

        out[dates] = per_unique(midnight, v.n[dates], float)
    bools = v.t == B
    if bools.any():
        raise NotVectorizable("decimal-date-time of a boolean")
    return TV(t, s, out)


_SCALAR["decimal-date-time"] = ((1,), _decimal_date_time)


# --- wrapping calculated results (IAnswerData.wrapData), column-wise ----------------------------------------


def wrap(result: TV, dtype: str | None) -> tuple[TV, np.ndarray]:
    """The in-memory values and serialized texts JavaRosa stores for calculated results of a bind type."""
    size = len(result)
    texts = np.empty(size, dtype=object)
    t, s, n = result.t.copy(), result.s.copy(), result.n.copy()
    dtype = dtype or "string"
    strings = t == S
    nums = t == N
    bools = t == B
    if dtype == "boolean":
        flags = to_bool(result)
        empty = (strings & (s == "")) | (nums & np.isnan(n))
        t[:] = B
        n = flags.astype(float)
        texts[:] = np.where(flags, "1", "0")
        t[empty], texts[empty], s[empty], n[empty] = S, "", "", np.nan
        return TV(t, s, n), texts
    if bools.any():
        texts[bools] = np.where(n[bools] != 0, "1", "0")
    if nums.any():
        x = n[nums]
        finite = np.isfinite(x)
        whole = np.where(finite, np.trunc(x), 0)
        if dtype == "int":
            whole = np.clip(whole, -2147483648, 2147483647)
            values = np.where(finite, whole, x)
            integral = finite
            n[nums] = np.where(np.isnan(x), np.nan, values)
        else:
            integral = finite & (np.abs(x - whole) < 1e-9)
            values = np.where(integral, whole, x)
            n[nums] = values
        text = np.empty(len(x), dtype=object)
        text[integral] = values[integral].astype(np.int64).astype(str)
        others = ~integral
        text[others] = per_unique(
            lambda v: "" if math.isnan(v) else _number_text_wrapped(float(v), False), values[others], object
        )
        texts[nums] = text
        nan = nums & np.isnan(n)
        t[nan], s[nan] = S, ""
    if strings.any():
        values = s[strings]
        blank = np.array([not x or x.isspace() for x in values], dtype=bool)
        values = values.copy()
        values[blank] = ""
        s[strings] = values
        texts[strings] = values
    dates = t >= D
    if dates.any():
        tz = DEVICE_TZ.get()
        for i in np.flatnonzero(dates):
            value: Any = (
                (EPOCH + timedelta(days=int(n[i]))) if t[i] == D else datetime.fromtimestamp(n[i] * 86400.0, tz=tz)
            )
            text_i, _typed = wrap_calculated(value, dtype, tz)
            texts[i] = text_i
    return TV(t, s, n), texts


def _number_text_wrapped(value: float, integral: bool) -> str:
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if integral:
        return str(int(value))
    return java_double_str(value)


# --- columns of the ingest tables as tagged vectors --------------------------------------------------------


def column_texts(series: pd.Series | None, size: int, dtype: str | None) -> np.ndarray:
    """Stored texts of one table column ("" when empty)."""
    if series is None:
        return empty_strings(size)
    if dtype == "date" and pd.api.types.is_datetime64_any_dtype(series.dtype):
        out = np.datetime_as_string(series.to_numpy(dtype="datetime64[D]"), unit="D").astype(object)
        out[series.isna().to_numpy()] = ""
        return out
    if pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
        return series.to_numpy(dtype=object, na_value="")
    out = empty_strings(size)
    present = ~series.isna().to_numpy()
    if pd.api.types.is_integer_dtype(series.dtype):
        out[present] = series.to_numpy(dtype="float64", na_value=0)[present].astype(np.int64).astype(str)
    elif pd.api.types.is_float_dtype(series.dtype):
        out[present] = [repr(v) for v in series.to_numpy(dtype="float64", na_value=0)[present].tolist()]
    else:
        out[present] = [str(v) for v in series[present].tolist()]
    return out


def column_typed(  # noqa: PLR0911 (one return per JavaRosa type rule)
    series: pd.Series | None, column: TextColumn, dtype: str | None
) -> TV:
    """Typed values of one column as JavaRosa reads them (numbers, dates, booleans; "" when empty)."""
    size = column.size
    if series is None:
        return TV.const("", size)
    present = column.present
    t = np.zeros(size, np.int8)
    n = np.full(size, np.nan)
    if dtype in ("int", "decimal") and pd.api.types.is_numeric_dtype(series.dtype):
        x = series.to_numpy(dtype=float, na_value=np.nan)
        t[present], n[present] = N, x[present]
        return TV(t, empty_strings(size), n)
    if dtype == "date" and pd.api.types.is_datetime64_any_dtype(series.dtype):
        days = series.to_numpy(dtype="datetime64[D]").astype("int64").astype(float)
        t[present], n[present] = D, days[present]
        return TV(t, empty_strings(size), n)
    texts = column.full
    s = texts.copy()
    if dtype == "dateTime" and present.any():
        stamps = pd.to_datetime(
            pd.Series(texts[present], dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        ok = ~stamps.isna().to_numpy()
        rows = np.flatnonzero(present)[ok]
        t[rows] = DT
        n[rows] = stamps[ok].to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9 / 86400.0
        s[rows] = ""
        return TV(t, s, n)
    if dtype == "boolean":
        rows = np.flatnonzero(present)
        t[rows] = B
        n[rows] = [float(x.strip().lower() in ("true", "1")) for x in texts[rows]]
        s[rows] = ""
        return TV(t, s, n)
    if dtype in ("int", "decimal", "date"):
        # A column that ingest could not type: read the texts as the scalar evaluator would.
        for i in np.flatnonzero(present):
            value = _typed_value(texts[i], dtype)
            if isinstance(value, float):
                t[i], n[i], s[i] = N, value, ""
            elif isinstance(value, date):
                t[i], n[i], s[i] = D, float((value - EPOCH).days), ""
        return TV(t, s, n)
    return TV(t, s, n)


class TextColumn:
    """Stored texts of one column: which rows are answered at once, the texts only when needed."""

    def __init__(self, series: pd.Series | None, size: int, dtype: str | None) -> None:
        self.series, self.size, self.dtype = series, size, dtype
        self._full: np.ndarray | None = None
        self.present: np.ndarray
        if series is None or pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
            full = empty_strings(size) if series is None else series.to_numpy(dtype=object, na_value="")
            self._full, self.present = full, np.not_equal(full, "")
        else:
            self.present = ~series.isna().to_numpy()

    @property
    def full(self) -> np.ndarray:
        if self._full is None:
            self._full = column_texts(self.series, self.size, self.dtype)
        return self._full

    def take(self, rows: np.ndarray) -> np.ndarray:
        if self._full is not None or self.series is None:  # no series: _full was set at the start
            return self.full[rows]
        return column_texts(self.series.iloc[rows], len(rows), self.dtype)

    def __getitem__(self, row: int | np.integer) -> str:
        if self._full is not None or self.series is None:  # no series: _full was set at the start
            return self.full[row]
        return column_texts(self.series.iloc[[int(row)]], 1, self.dtype)[0]


class LazyValues(dict):
    """Typed column values built on first use (most columns are only ever read as texts)."""

    def __init__(self, sources: dict[str, tuple[pd.Series | None, TextColumn, str | None]]) -> None:
        super().__init__()
        self.sources = sources

    def __missing__(self, path: str) -> TV:
        series, texts, dtype = self.sources[path]
        value = self[path] = column_typed(series, texts, dtype)
        return value


