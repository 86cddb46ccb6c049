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

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from toolkit.xpath.columns import (
    DEVICE_TZ,
    DT,
    TV,
    B,
    Ctx,
    D,
    LazyValues,
    Level,
    N,
    NotVectorizable,
    S,
    TextColumn,
    VFn,
    bool_tv,
    no_texts,
    num_tv,
    on_values,
    per_unique,
    scalar_at,
    str_tv,
    to_bool,
    to_num,
    to_str,
    tv_of_scalars,
    where,
    wrap,
)
from toolkit.xpath.functions import FUNCTIONS, value_function
from toolkit.xpath.instance import EvalEnv, XNode, pulldata_rows
from toolkit.xpath.scalar import compile_xpath
from toolkit.xpath.syntax import (
    NODE_TEST,
    Binary,
    Call,
    Expr,
    LocationPath,
    Negate,
    Number,
    Step,
    String,
    XPathError,
    walk,
)

_VOLATILE = frozenset({"now", "random", "uuid", "once", "randomize", "property"})

# What the column evaluator offers its callers (validate), its tagged vectors and levels included.
__all__ = [
    "DEVICE_TZ",
    "DT",
    "TV",
    "B",
    "Ctx",
    "D",
    "LazyValues",
    "Level",
    "N",
    "NotVectorizable",
    "S",
    "TextColumn",
    "VCompiler",
    "VFn",
    "bool_tv",
    "per_unique",
    "reads_only_the_choice",
    "scalar_at",
    "to_bool",
    "to_str",
    "tv_of_scalars",
    "wrap",
]


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


def reads_only_the_choice(ast: Expr) -> bool:
    """Whether a choice filter's condition reads nothing but the choice's own columns (`name != 'XXA'`,
    `nca = '1'`): its verdict is then the same on every row, and one evaluation per choice serves them all."""
    for node in walk(ast):
        match node:
            case LocationPath(absolute=False, base=None, steps=(Step(axis="child", predicates=()) as step,)):
                if step.name.startswith("*"):
                    return False
            case LocationPath():
                return False
            case Call(name=name):
                function = FUNCTIONS.get(name)
                if name not in ("if", "coalesce") and (
                    function is None or function.scalar is None or not function.on_values
                ):
                    return False
            case Number() | String() | Negate() | Binary() | Step():
                pass
            case _:
                return False
    return True


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
                return TV(np.full(lv.size, D, np.int8), no_texts(lv.size), days)

            return today_of
        if name == "current" and not args:
            return self._reference(_SELF, context, context_path)
        if name in ("string-length", "normalize-space") and not args:
            args = (_SELF,)
        compiled = [self._arg(a, context, context_path) for a in args]
        if name == "if":
            cond, yes, no = compiled
            return lambda c, lv: where(to_bool(cond(c, lv)), yes(c, lv), no(c, lv))
        function = FUNCTIONS.get(name)
        body = function.vector if function is not None else None
        if body is None:
            # Any other function of plain values (trigonometry, digest, geo on a single trace ...): the scalar
            # implementation, once per distinct tuple of arguments.
            scalar = value_function(name)
            if scalar is None:
                raise NotVectorizable(name)
            if not compiled:
                return lambda c, lv: TV.const(scalar(EvalEnv(root=XNode("x"))), lv.size)
            body = on_values(name, scalar)
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
                rows = pulldata_rows(c.media, name)
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
                    best = (np.fmax if name == "max" else np.fmin).reduce(np.vstack([np.full(lv.size, start), xs]))
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
    return isinstance(ast, Number | Negate) or (isinstance(ast, Binary) and ast.op in ("+", "-", "*", "div", "mod"))


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
