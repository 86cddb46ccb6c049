"""Column-wise validation: every rule evaluated once per column over all submissions, as JavaRosa does.

The per-instance validator (`toolkit.checks.instance.validate_tree`) walks one instance tree at a time. Here the
same rules (`toolkit.checks.fields.check_field`, through `_ColumnField`) run over the ingest tables (one row per
submission, one table per repeat): each bind expression is compiled by the column evaluator
(`toolkit.xpath.vector`) into one numpy computation over all rows of its level.

An expression the column evaluator does not take (a positional predicate, a node-set outside an aggregate), or
that cannot run column-wise on this data, is evaluated per instance by the scalar evaluator, which is the
reference (and is itself tested against JavaRosa), on instance trees rebuilt from the column state; the rest of
the form still runs by column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from toolkit.checks.compiled import BindRules, CompiledForm, day_of, interview_day_path, stored_volatile
from toolkit.checks.fields import MULTIPLE_SELECTS, check_field, same_value, unknown_values
from toolkit.checks.rules import EXPRESSION_FAILS, Finding, Rule, Where, finding
from toolkit.xform import FormModel, Node
from toolkit.xpath import EPOCH, EvalEnv, XNode, XPathError, compile_xpath, to_boolean, wrap_calculated
from toolkit.xpath.syntax import LocationPath, Step
from toolkit.xpath.vector import (
    DEVICE_TZ,
    TV,
    Ctx,
    LazyValues,
    Level,
    NotVectorizable,
    TextColumn,
    VCompiler,
    VFn,
    bool_tv,
    per_unique,
    reads_only_the_choice,
    scalar_at,
    to_bool,
    to_str,
    tv_of_scalars,
    wrap,
)

# The level a choice filter that reads only the choice's own columns is evaluated on: its verdict holds on every row.
_ONE_ROW = Level("", 1, None, None, np.ones(1, dtype=np.int64))

# A choice filter check: per row whether every chosen value is among the choices the filter allows there, and
# for the rows where some is not, those values (space-separated).
FilterCheck = Callable[[Ctx, Level, TV], tuple[np.ndarray, dict[int, str]]]


def _choice_filter(compiler: VCompiler, node: Node, form: CompiledForm) -> FilterCheck | None:
    """A vector check "every chosen value is among the choices the filter allows for this row".

    The filter is evaluated once per choice of the list (a handful) over all rows, with the choice's columns
    as constants; each row then looks up the verdicts of the values it holds.
    """
    if not node.choice_filter or node.choice_list not in form.secondary:
        return None
    match compile_xpath(f"x[{node.choice_filter}]").ast:
        case LocationPath(steps=(Step(predicates=(condition,)),)):
            pass
        case _:
            raise NotVectorizable("choice filter shape")
    item_compiler = VCompiler(compiler.level_of, compiler.node_kinds, compiler.root, item_mode=True)
    fn = item_compiler.compile_ast(condition, node.path)
    value_name = (node.choice_value_ref or "name").strip().split("/")[-1] or "name"
    items: list[dict[str, str]] = []
    for item in form.secondary[node.choice_list].children:
        items.append({child.name: child.string for child in item.children})
    multiple = node.question_type in MULTIPLE_SELECTS
    same_on_every_row = reads_only_the_choice(condition)

    def tokens(answer: str) -> list[str]:
        return answer.split() if multiple else [answer.strip()]

    def allowed(c: Ctx, lv: Level, answers: TV) -> tuple[np.ndarray, dict[int, str]]:
        codes, uniques = pd.factorize(to_str(answers), use_na_sentinel=False)
        # Only the answers of the rows checked matter, and only the choices they name need the filter's verdict
        # (a list of countries has hundreds, a column of answers a few dozen).
        chosen = np.unique(codes[c.rows]) if c.rows is not None else np.arange(len(uniques))
        wanted = {token for k in chosen.tolist() for token in tokens(uniques[k])}
        verdicts: dict[str, np.ndarray] = {}
        saved = c.item
        try:
            for item in items:
                value = item.get(value_name, "")
                if value not in wanted:
                    continue
                c.item = item
                if same_on_every_row:
                    verdict = np.broadcast_to(to_bool(fn(c, _ONE_ROW))[0], lv.size)
                else:
                    verdict = to_bool(fn(c, lv))
                # Lists with allow_choice_duplicates reuse a name under several parents (the same district
                # name in two regions): a value is allowed where any of its rows passes the filter.
                verdicts[value] = verdicts[value] | verdict if value in verdicts else verdict
        finally:
            c.item = saved
        out = np.ones(lv.size, dtype=bool)
        outside: dict[int, list[str]] = {}
        for k in chosen.tolist():
            rows = np.flatnonzero(codes == k)
            for token in tokens(uniques[k]):
                passes = verdicts.get(token)
                if passes is not None:
                    failing = rows[~passes[rows]]
                    out[failing] = False
                    for row in failing.tolist():
                        outside.setdefault(row, []).append(token)
        return out, {row: " ".join(found) for row, found in outside.items()}

    return allowed


# --- expressions evaluated per instance -------------------------------------------------------------------
#
# An expression the vector compiler does not take (a positional predicate, a node-set outside an aggregate) or
# that cannot run column-wise on this data (a date that does not parse, a key of mixed types) is evaluated per
# instance by the scalar evaluator, on instance trees rebuilt from the column state at that point of the
# evaluation order (stored answers, the calculations and relevance computed so far); every other expression of
# the form still runs by column.

_FAILED = object()  # the scalar evaluator raised for this row; the caller applies the per-instance default


@dataclass
class ExpressionError:
    """An expression that fails on one node of one submission (reported as `expression_error`)."""

    path: str  # generic path of the node the expression belongs to
    row: int  # row of the node's level
    kind: str  # "relevant", "calculation", "required", "constraint", "choice filter", "repeat choices"
    text: str | None  # the node's text when the expression was evaluated
    source: str
    error: str  # what the evaluator said


class InstanceTrees:
    """Instance trees mirroring the column state, built on first use and brought up to date before each use."""

    def __init__(  # noqa: PLR0917 (the column state it mirrors)
        self,
        model: Any,
        types: Mapping[str, str],
        ctx: Ctx,
        stored: Mapping[str, TextColumn],
        computed_text: Mapping[str, np.ndarray],
        labels: Mapping[tuple[str, str], str],
    ) -> None:
        self.model, self.types, self.ctx, self.stored = model, types, ctx, stored
        self.computed_text = computed_text
        self.labels = labels
        self.nodes: dict[str, list[XNode]] = {}
        self.envs: list[EvalEnv] = []
        self._relevance_seen: dict[str, np.ndarray] = {}
        self._values_seen: dict[str, np.ndarray] = {}

    def _build(self) -> None:
        model, levels = self.model, self.ctx.levels
        roots = [XNode(model.root[1:]) for _ in range(levels[model.root].size)]
        self.nodes[model.root] = roots

        def fill(path: str, containers: list[XNode]) -> None:
            for child_path in model.nodes[path].children:
                child = model.nodes[child_path]
                if child.kind == "repeat":
                    lv = levels[child_path]
                    for container in containers:
                        container._repeat_names = (container._repeat_names or frozenset()) | {child.name}
                    items: list[XNode] = [containers[0]] * lv.size if lv.size else []
                    assert lv.parent_index is not None
                    for row in np.lexsort((lv.position, lv.parent_index)).tolist():
                        parent = containers[int(lv.parent_index[row])]
                        items[row] = parent.append(XNode(child.name, None, parent))
                elif child.kind == "group":
                    items = [c.append(XNode(child.name, None, c)) for c in containers]
                else:
                    column = self.stored.get(child_path)
                    texts = column.full.tolist() if column is not None else [""] * len(containers)
                    dtype = self.types.get(child_path)
                    items = [
                        c.append(XNode(child.name, text or None, c, dtype))
                        for c, text in zip(containers, texts, strict=True)
                    ]
                self.nodes[child_path] = items
                if child.kind != "field":
                    fill(child_path, items)

        fill(model.root, roots)
        ctx = self.ctx
        days = ctx.today
        shared_cache: dict[str, list[dict[str, str]]] = {}
        labels = self.labels
        for row, root in enumerate(roots):
            day = days if isinstance(days, date) else EPOCH + timedelta(days=int(days[row]))
            self.envs.append(
                EvalEnv(
                    root=root,
                    secondary=ctx.secondary,
                    today=day,
                    tz=DEVICE_TZ.get(),
                    choice_name=lambda value, question: labels.get((question, value), ""),
                    media_dir=ctx.media.media_dir if ctx.media is not None else None,
                    _pulldata_cache=shared_cache,
                )
            )

    def sync(self) -> None:
        """Bring relevance and calculated values up to the column state."""
        if not self.envs and not self.nodes:
            self._build()
        for path, flags in self.ctx.relevance.items():
            if self._relevance_seen.get(path) is not flags:
                self._relevance_seen[path] = flags
                for node, flag in zip(self.nodes[path], flags.tolist(), strict=True):
                    node.relevant = flag
        for path, texts in self.computed_text.items():
            if self._values_seen.get(path) is not texts:
                self._values_seen[path] = texts
                typed = self.ctx.values[path]
                for row, (node, text) in enumerate(zip(self.nodes[path], texts.tolist(), strict=True)):
                    node.set(text or None, scalar_at(typed, row) if text else "")


class PerInstance:
    """One bind expression evaluated node by node with the scalar evaluator."""

    def __init__(
        self, trees: InstanceTrees, expr: Any, path: str, kind: str, errors: list[ExpressionError]
    ) -> None:
        self.trees, self.expr, self.path, self.kind, self.errors = trees, expr, path, kind, errors

    def results(self, c: Ctx, lv: Level) -> tuple[np.ndarray, list[Any]]:
        """(rows evaluated, their raw results or _FAILED): `c.rows` when set, else every row of the level."""
        trees = self.trees
        trees.sync()
        nodes = trees.nodes[self.path]
        root = c.levels[trees.model.root]
        main_rows = lv.index_to(root) if lv is not root else np.arange(lv.size)
        rows = np.flatnonzero(c.rows) if c.rows is not None else np.arange(lv.size)
        out: list[Any] = []
        for row in rows.tolist():
            node = nodes[row]
            env = trees.envs[int(main_rows[row])]
            env.current = node
            try:
                out.append(self.expr.evaluate(node, env=env))
            except XPathError as exc:
                self.errors.append(
                    ExpressionError(self.path, row, self.kind, node.text, self.expr.source, str(exc))
                )
                out.append(_FAILED)
        return rows, out

    def __call__(self, c: Ctx, lv: Level) -> TV:
        """A boolean per row; where the scalar evaluator fails, the per-instance path's default (a failing
        relevance or constraint holds, a failing required does not)."""
        default = self.kind != "required"
        flags = np.full(lv.size, default)
        rows, results = self.results(c, lv)
        if len(rows):
            flags[rows] = [default if r is _FAILED else to_boolean(r) for r in results]
        return bool_tv(flags)


@dataclass
class Expression:
    """A bind expression: its vector function when it has one, else (or once it fails on the data) per instance."""

    path: str
    kind: str
    vector: VFn | None
    per_instance: PerInstance
    reason: str | None = None  # why it runs per instance

    def __call__(self, c: Ctx, lv: Level) -> TV:
        if self.vector is not None:
            try:
                return self.vector(c, lv)
            except (NotVectorizable, RecursionError) as exc:
                self.vector, self.reason = None, str(exc) or type(exc).__name__
        return self.per_instance(c, lv)

    def calculated(self, c: Ctx, lv: Level, dtype: str | None) -> tuple[TV, np.ndarray, np.ndarray | None]:
        """A calculation's stored values and texts, and the rows where it could not be computed (or None)."""
        if self.vector is not None:
            try:
                return (*wrap(self.vector(c, lv), dtype), None)
            except (NotVectorizable, RecursionError) as exc:
                self.vector, self.reason = None, str(exc) or type(exc).__name__
        tz = DEVICE_TZ.get()
        texts = self.per_instance.trees.stored[self.path].full.copy()
        typed = c.values[self.path]  # the stored values, kept where the calculation fails
        failed = np.zeros(lv.size, dtype=bool)
        computed: list[Any] = []
        rows, results = self.per_instance.results(c, lv)
        for row, result in zip(rows.tolist(), results, strict=True):
            if result is _FAILED:
                failed[row] = True
                computed.append(scalar_at(typed, row) if texts[row] else "")
            else:
                texts[row], value = wrap_calculated(result, dtype, tz)
                computed.append(value)
        return tv_of_scalars(computed), texts, failed


def _compiled(
    compile_vector: Callable[[], VFn], per_instance: PerInstance, per_instance_list: list[Expression]
) -> Expression:
    try:
        return Expression(per_instance.path, per_instance.kind, compile_vector(), per_instance)
    except (NotVectorizable, RecursionError) as exc:
        expression = Expression(per_instance.path, per_instance.kind, None, per_instance, str(exc) or "recursion")
        per_instance_list.append(expression)
        return expression


class FilterPerInstance:
    """The choice filter check, per instance: every chosen value is among the items the itemset gives."""

    def __init__(self, per_instance: PerInstance, value_name: str, multiple: bool) -> None:
        self.per_instance, self.value_name, self.multiple = per_instance, value_name, multiple

    def __call__(self, c: Ctx, lv: Level, answers: TV) -> tuple[np.ndarray, dict[int, str]]:
        del answers  # the answers are read from the tree, as the per-instance path reads them
        out = np.ones(lv.size, dtype=bool)
        rejected: dict[int, str] = {}
        nodes = self.per_instance.trees.nodes[self.per_instance.path]
        rows, results = self.per_instance.results(c, lv)
        for row, items in zip(rows.tolist(), results, strict=True):
            if not isinstance(items, list):
                continue
            names = set()
            for item in items:
                child = item.child(self.value_name)
                names.add(child.string if child is not None else "")
            text = nodes[row].text or ""
            chosen = text.split() if self.multiple else [text.strip()]
            outside = [x for x in chosen if x not in names]
            if outside:
                out[row] = False
                rejected[row] = " ".join(outside)
        return out, rejected


def _filter_verdicts(  # noqa: PLR0917 (hot internal helper)
    entry: dict[str, Any], path: str, ctx: Ctx, lv: Level, answers: TV, per_instance: list[Expression]
) -> tuple[np.ndarray, dict[int, str]]:
    """Per row, whether the chosen values are among those the choice filter allows (by column when it can)."""
    check = entry.get("filter")
    if check is not None:
        try:
            return check(ctx, lv, answers)
        except (NotVectorizable, RecursionError) as exc:
            entry["filter"] = None
            fallback = entry["filter_by_instance"]
            per_instance.append(Expression(path, "choice filter", None, fallback.per_instance, str(exc)))
    return entry["filter_by_instance"](ctx, lv, answers)


def _per_instance_in_use(
    compiled: Mapping[tuple[str, str], Expression],
    checks: Mapping[str, Mapping[str, Any]],
    listed: list[Expression],
) -> list[Expression]:
    """The expressions that ran per instance: those listed at compile time or later, and those that fell back
    while running."""
    found = {id(e): e for e in listed}
    everything = [*compiled.values(), *(v for entry in checks.values() for v in entry.values())]
    for item in everything:
        if isinstance(item, Expression) and item.vector is None:
            found.setdefault(id(item), item)
    return list(found.values())


def _interview_days(model: Any, main: pd.DataFrame, columns: Mapping[str, str], fallback: date) -> np.ndarray:
    """Per submission, the interview day (`today` or `start` field) in days since EPOCH; else `fallback`."""
    days = np.full(len(main), float((fallback - EPOCH).days))
    path = interview_day_path(model)
    column = columns.get(path) if path is not None else None
    if column is None or column not in main.columns:
        return days
    # pandas-stubs reject na_value=None, which pandas documents and accepts
    texts = main[column].astype("string").to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    for row, value in enumerate(texts):
        day = day_of(value, DEVICE_TZ.get())
        if day is not None:
            days[row] = float((day - EPOCH).days)
    return days


def _has_unknown_choice(allowed: frozenset[str], answer: str) -> bool:
    return any(token not in allowed for token in answer.split())


class _ColumnFindings:
    """The findings of the column path, made with the catalogue's `finding()`, in the order the per-instance path
    gives them (submission, then the node's place in the form, then the repeat row)."""

    def __init__(
        self,
        model: FormModel,
        levels: Mapping[str, Level],
        level_of: Mapping[str, str],
        main: pd.DataFrame,
        columns: Mapping[str, str],
    ) -> None:
        self.model, self.levels, self.level_of = model, levels, level_of
        id_col = columns.get(f"{model.root}/meta/instanceID")
        self.ids = (main[id_col] if id_col in main.columns else main["KEY"]).astype(object).to_numpy()
        self.keys = main["KEY"].astype(object).to_numpy()
        enum_col = next(
            (columns.get(p) for p in (f"{model.root}/id_int", f"{model.root}/deviceid") if columns.get(p)), None
        )
        for node in model.fields():
            if node.name == "id_int" and node.repeat is None:
                enum_col = columns.get(node.path) or enum_col
        self.enumerators = main[enum_col].astype(object).to_numpy() if enum_col in main.columns else None
        self.row_paths: dict[str, dict[int, str]] = {}
        self.records: list[tuple[int, int, int, Finding]] = []

    def row_path(self, level_path: str, row: int) -> str:
        """The absolute path of a row of a level, with 1-based repeat indexes (/data/hl[2])."""
        if level_path == self.model.root:
            return self.model.root
        cache = self.row_paths.setdefault(level_path, {})
        text = cache.get(row)
        if text is None:
            lv = self.levels[level_path]
            parent = lv.parent
            assert parent is not None and lv.parent_index is not None
            parent_text = self.row_path(parent.path, int(lv.parent_index[row]))
            text = parent_text + level_path[len(parent.path) :] + f"[{int(lv.position[row])}]"
            cache[row] = text
        return text

    def emit(  # noqa: PLR0917 (hot internal helper)
        self,
        rule: Rule,
        path: str,
        rows: np.ndarray,
        value: np.ndarray | TextColumn | None,
        expression: str | None,
        fields: Mapping[str, Any],
        *,
        absent: bool = False,
    ) -> None:
        """Findings of `rule` for `rows` of `path`; a field given as an array holds one value per row of the level."""
        node = self.model.nodes[path]
        lv_path = self.level_of[path]
        main_level = self.levels[self.model.root]
        main_rows = self.levels[lv_path].index_to(main_level)[rows] if lv_path != self.model.root else rows
        batch = value.take(rows) if isinstance(value, TextColumn) else (value[rows] if value is not None else None)
        per_row = {key: item for key, item in fields.items() if isinstance(item, np.ndarray)}
        same = {key: item for key, item in fields.items() if key not in per_row}
        ids, enumerators = self.ids, self.enumerators
        for k, (r, m) in enumerate(zip(rows.tolist(), main_rows.tolist(), strict=True)):
            instance = ids[m] if isinstance(ids[m], str) and ids[m] else None
            enumerator = enumerators[m] if enumerators is not None and isinstance(enumerators[m], str) else None
            node_path = self.row_path(lv_path, r) + path[len(lv_path) :]
            where = Where(instance, node_path, node.name, str(self.keys[m]), enumerator)
            detail = {key: item[r] for key, item in per_row.items()}
            made = finding(
                rule,
                where,
                None if batch is None else batch[k],
                expression=expression,
                absent=absent,
                **same,
                **detail,
            )
            self.records.append((m, node.order, r, made))

    def expression_errors(self, errors: list[ExpressionError]) -> None:
        """Expressions that failed on a node, as the per-instance path reports them (once per node and kind)."""
        failures: dict[tuple[str, str], list[ExpressionError]] = {}
        for failure in errors:
            failures.setdefault((failure.path, failure.kind), []).append(failure)
        for (path, kind), group in failures.items():
            size = self.levels[self.level_of[path]].size
            rows = np.array([f.row for f in group], dtype=np.int64)
            texts = np.empty(size, dtype=object)
            texts[rows] = [f.text or "" for f in group]
            messages = np.empty(size, dtype=object)
            messages[rows] = [f.error for f in group]
            self.emit(EXPRESSION_FAILS, path, rows, texts, group[0].source, {"kind": kind, "error": messages})

    def in_order(self) -> list[Finding]:
        self.records.sort(key=lambda rec: (rec[0], rec[1], rec[2]))
        return [rec[3] for rec in self.records]


@dataclass
class _FieldState:
    """The column state one field's checks read."""

    ctx: Ctx
    lv: Level
    texts: TextColumn  # the stored values
    entry: dict[str, Any]  # its compiled required, constraint, membership and filter checks
    computed_text: Mapping[str, np.ndarray]
    computed_failed: Mapping[str, np.ndarray]
    per_instance: list[Expression]


class _ColumnField:
    """`FieldBackend` over one column of every submission: masks are numpy arrays, one row per node."""

    def __init__(self, path: str, rule: BindRules, state: _FieldState, found: _ColumnFindings) -> None:
        self.path, self.rule, self.state, self.found = path, rule, state, found
        self.size = state.lv.size

    def relevant(self) -> np.ndarray:
        return self.state.ctx.relevance[self.path]

    def answered(self) -> np.ndarray:
        return self.state.texts.present

    def unreadable(self) -> np.ndarray:
        return np.zeros(self.size, dtype=bool)  # ingest read such values as empty and reported them

    def absent(self) -> np.ndarray:
        return np.zeros(self.size, dtype=bool)  # the tables do not keep it; validate_input marks them after

    def both(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return first & second

    def without(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return first & ~second

    def none(self, mask: np.ndarray) -> bool:
        return not mask.any()

    def holds(self, kind: str, where: np.ndarray) -> np.ndarray:
        ctx, lv = self.state.ctx, self.state.lv
        ctx.candidate = None if kind == "required" else self.state.ctx.values[self.path]
        ctx.rows = where
        try:
            return to_bool(self.state.entry[kind](ctx, lv))
        finally:
            ctx.candidate, ctx.rows = None, None

    def calculation_differs(self, where: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        computed = self.state.computed_text.get(self.path)
        differ = np.zeros(self.size, dtype=bool)
        if computed is None:
            return differ, None
        texts = self.state.texts
        candidates = where & (computed != texts.full)
        failed = self.state.computed_failed.get(self.path)
        if failed is not None:  # the per-instance path does not compare what it could not compute
            candidates &= ~failed
        dtype = self.rule.node.data_type
        for r in np.flatnonzero(candidates).tolist():
            differ[r] = not same_value(texts[r], computed[r], dtype)
        return differ, computed

    def unknown_choices(self, where: np.ndarray, allowed: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        full = self.state.texts.full
        question_type = self.rule.node.question_type
        if question_type in MULTIPLE_SELECTS:
            unknown = np.zeros(self.size, dtype=bool)
            rows = np.flatnonzero(where)
            unknown[rows] = per_unique(partial(_has_unknown_choice, allowed), full[rows], bool)
        else:
            unknown = where & ~pd.Series(full, dtype=object).isin(allowed).to_numpy()
            if unknown.any():  # surrounding blanks are not part of the value
                unknown[unknown] = [x.strip() not in allowed for x in full[unknown]]
        values = np.empty(self.size, dtype=object)
        for r in np.flatnonzero(unknown).tolist():
            values[r] = unknown_values(full[r], allowed, question_type)
        return unknown, values

    def filter_rejects(self, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        state = self.state
        ctx = state.ctx
        values = np.empty(self.size, dtype=object)
        if not where.any():
            return where, values
        ctx.candidate, ctx.rows = None, where
        try:
            ok, outside = _filter_verdicts(
                state.entry, self.path, ctx, state.lv, ctx.values[self.path], state.per_instance
            )
        finally:
            ctx.rows = None
        rejected = where & ~ok
        for r in np.flatnonzero(rejected).tolist():
            values[r] = outside.get(r, "")
        return rejected, values

    def report(
        self,
        rule: Rule,
        where: np.ndarray,
        *,
        expression: str | None,
        stored: bool = True,
        absent: bool = False,
        **fields: Any,
    ) -> None:
        if where.any():
            value = self.state.texts if stored else None
            self.found.emit(rule, self.path, np.flatnonzero(where), value, expression, fields, absent=absent)


# From this many rows in a level, a column's texts and typed values are freed after the last step that reads them.
# Below it they stay cached: small data costs nothing to keep, and freeing it would only cost time.
FREE_COLUMNS_FROM_ROWS = 50_000


class _ColumnRelease:
    """Frees each large column's cached texts and typed values after the last step that reads it.

    At 100,000 households a roster level has 600,000 rows, and each column read as texts and as typed values holds
    about 15 MB; kept to the end, the columns a form reads add up to more than a gigabyte. The steps are the
    relevance conditions and calculations in their order, then each field's checks in the form's order; what a step
    reads comes from its expressions' static dependencies (`CompiledExpr.dependencies`). When some dependency
    cannot be known statically, nothing is freed.

    A stored column freed too early would only be read again from its table. A calculation's values cannot be
    recomputed from the table, so reading one after it was freed raises instead of silently reading the stored
    answers (`LazyValues.retired`).
    """

    def __init__(self, due: dict[int, list[str]], release: Callable[[str], None]) -> None:
        self.due, self.release = due, release

    @classmethod
    def plan(  # noqa: PLR0917 (the column state it frees)
        cls,
        form: Any,
        compiled: Mapping[tuple[str, str], Expression],
        levels: Mapping[str, Level],
        level_of: Mapping[str, str],
        values: LazyValues,
        stored: Mapping[str, TextColumn],
        computed_text: dict[str, np.ndarray],
        computed_failed: dict[str, np.ndarray],
    ) -> _ColumnRelease:
        steps: list[set[str]] = []
        for kind, path in form.order:
            if (kind, path) in compiled:
                rule = form.rules[path]
                steps.append({path, *_dependencies(rule.relevant if kind == "relevant" else rule.calculate, path)})
        for path, rule in form.rules.items():
            if rule.node.kind == "field" and levels[level_of[path]].size:
                reads = {path}
                for expr in (rule.required, rule.constraint, rule.itemset, rule.membership):
                    reads |= _dependencies(expr, path)
                steps.append(reads)
        if any(_UNKNOWN in reads for reads in steps):
            return cls({}, lambda path: None)
        last: dict[str, int] = {}
        for index, reads in enumerate(steps):
            for path in reads:
                last[path] = index
        due: dict[int, list[str]] = {}
        for path, index in last.items():
            level = level_of.get(path)
            if path in stored and level is not None and levels[level].size >= FREE_COLUMNS_FROM_ROWS:
                due.setdefault(index, []).append(path)
        calculated = {path for kind, path in compiled if kind == "calculate"}

        def release(path: str) -> None:
            stored[path].forget()
            if path in calculated:
                values.retire(path)
                computed_text.pop(path, None)
                computed_failed.pop(path, None)
            else:
                values.pop(path, None)

        return cls(due, release)

    def after(self, step: int) -> None:
        for path in self.due.get(step, ()):
            self.release(path)


_UNKNOWN = "?"  # a step that reads something its expressions' static dependencies do not name


def _dependencies(expr: Any, path: str) -> set[str]:
    if expr is None:
        return set()
    found = expr.dependencies(path)
    return {_UNKNOWN} if found is None else set(found)


def validate_columns(form: Any, tables: Any, *, today: date | None = None, tz: tzinfo = UTC) -> Any:
    """Validate ingest tables column-wise; returns (findings, submissions, expressions run per instance, asked),
    where `asked` holds, per question path, which rows of its table the form's skip logic asked it.

    Every expression runs by column where the vector compiler takes it; the others (and those that cannot run
    column-wise on this data) run per instance on trees rebuilt from the column state, so one such expression
    does not take the rest of the form off the column path. Raises NotVectorizable only for forms whose
    dependencies need the per-instance path's fixpoint iteration, or tables without a main table.

    Parameters:
        form: the compiled form (`toolkit.validate.compile_form`).
        tables: an `IngestResult` (from `ingest` or `read_tables`).
        today: the date today() returns (default: each submission's interview day).
        tz: the devices' time zone (calendar days of dateTime values, midnight of dates).
    """
    token = DEVICE_TZ.set(tz)
    try:
        return _validate_columns(form, tables, today=today)
    finally:
        DEVICE_TZ.reset(token)


def _validate_columns(form: Any, tables: Any, *, today: date | None) -> Any:  # noqa: PLR0912, PLR0915
    if form.needs_fixpoint:
        raise NotVectorizable("dependencies that cannot be ordered statically")
    model = form.model
    fallback_today = datetime.now(UTC).date()
    table_of = {path: name for name, path in tables.table_paths.items()}
    columns_of = {name: {c.path: c.name for c in cols if c.path} for name, cols in tables.columns.items()}

    # Levels: the submissions, then each repeat (parents first, as the form lists them).
    levels: dict[str, Level] = {}
    main_name = table_of.get(model.root)
    if main_name is None:
        raise NotVectorizable("no main table")
    main = tables.tables[main_name]
    levels[model.root] = Level(model.root, len(main), None, None, np.ones(len(main), dtype=np.int64))
    frames: dict[str, pd.DataFrame] = {model.root: main}
    for repeat in model.repeats():
        parent_path = repeat.repeat or model.root
        parent_level = levels[parent_path]
        name = table_of.get(repeat.path)
        frame = tables.tables[name] if name is not None else pd.DataFrame({"KEY": [], "PARENT_KEY": []})
        parent_frame = frames[parent_path]
        parent_keys = pd.Index(parent_frame["KEY"].astype(object).to_numpy())
        index = (
            parent_keys.get_indexer(frame["PARENT_KEY"].astype(object).to_numpy())
            if len(frame)
            else np.zeros(0, dtype=np.int64)
        )
        if (index < 0).any():
            keep = index >= 0
            frame, index = frame[keep].reset_index(drop=True), index[keep]
        order_col = f"{repeat.name}_no"
        if order_col in frame.columns:
            position = frame[order_col].to_numpy(dtype=float, na_value=0).astype(np.int64)
        else:
            position = frame.groupby(index).cumcount().to_numpy() + 1 if len(frame) else np.zeros(0, np.int64)
        levels[repeat.path] = Level(repeat.path, len(frame), parent_level, index.astype(np.int64), position)
        frames[repeat.path] = frame

    level_of: dict[str, str] = {}
    node_kinds: dict[str, str] = {}
    for path, node in model.nodes.items():
        node_kinds[path] = node.kind
        level_of[path] = path if node.kind == "repeat" else (node.repeat or model.root)
    compiler = VCompiler(level_of, node_kinds, model.root)

    stored: dict[str, TextColumn] = {}
    sources: dict[str, tuple[pd.Series | None, TextColumn, str | None]] = {}
    for node in model.fields():
        lv_path = level_of[node.path]
        frame = frames[lv_path]
        table_name = table_of.get(lv_path)
        column = columns_of.get(table_name or "", {}).get(node.path)
        series = frame[column] if column is not None and column in frame.columns else None
        stored[node.path] = TextColumn(series, len(frame), node.data_type)
        sources[node.path] = (series, stored[node.path], node.data_type)
    values = LazyValues(sources)

    ctx = Ctx(
        levels=levels,
        level_of=level_of,
        values=values,
        relevance={},
        secondary=form.secondary,
        today=today
        if today is not None
        else _interview_days(model, main, columns_of.get(main_name, {}), fallback_today),
        labels=form.labels,
        node_kinds=node_kinds,
        media=EvalEnv(root=XNode(model.root[1:]), media_dir=form.media_dir),
    )
    order = [p for p in model.nodes if p != model.root]
    own: dict[str, np.ndarray] = {}

    subtree: dict[str, list[str]] = {}  # node path -> it and its descendants, in document order
    for path in order:
        for ancestor in [path, *(a.path for a in model.ancestors(path))]:
            subtree.setdefault(ancestor, []).append(path)
    subtree[model.root] = order

    def refresh(start: str) -> None:
        for path in subtree.get(start, ()):
            node = model.nodes[path]
            lv = levels[level_of[path]]
            parent = node.parent or model.root
            if parent == model.root:
                inherited = np.ones(lv.size, dtype=bool)
            elif node.kind == "repeat":
                parent_rel = ctx.relevance[parent]
                inherited = (
                    parent_rel[lv.index_to(levels[level_of[parent]])] if lv.size else np.zeros(0, bool)
                )
            else:
                inherited = ctx.relevance[parent]
            mine = own.get(path)
            ctx.relevance[path] = inherited & mine if mine is not None else inherited.copy()

    refresh(model.root)
    for path in order:
        if path not in ctx.relevance:
            refresh(path)

    computed_text: dict[str, np.ndarray] = {}
    computed_failed: dict[str, np.ndarray] = {}
    errors: list[ExpressionError] = []
    per_instance: list[Expression] = []
    trees = InstanceTrees(model, form.types, ctx, stored, computed_text, form.labels)

    def expression(kind: str, path: str, expr: Any, label: str) -> Expression:
        fallback = PerInstance(trees, expr, path, label, errors)
        return _compiled(lambda: compiler.compile(expr.source, path), fallback, per_instance)

    compiled: dict[tuple[str, str], Expression] = {}
    for kind, path in form.order:
        rule = form.rules[path]
        expr = rule.relevant if kind == "relevant" else rule.calculate
        if kind == "calculate" and stored_volatile(expr):
            continue  # read from the stored column, as the per-instance path does
        compiled[(kind, path)] = expression(kind, path, expr, "relevant" if kind == "relevant" else "calculation")
    checks: dict[str, dict[str, Any]] = {}
    for path, rule in form.rules.items():
        if rule.node.kind != "field":
            continue
        entry: dict[str, Any] = {}
        if rule.required is not None:
            entry["required"] = expression("required", path, rule.required, "required")
        if rule.constraint is not None:
            entry["constraint"] = expression("constraint", path, rule.constraint, "constraint")
        if rule.itemset is not None:
            items = PerInstance(trees, rule.itemset, path, "choice filter", errors)
            multiple = rule.node.question_type in MULTIPLE_SELECTS
            entry["filter_by_instance"] = FilterPerInstance(items, rule.value_name, multiple)
            try:
                entry["filter"] = _choice_filter(compiler, rule.node, form)
            except (NotVectorizable, RecursionError) as exc:
                entry["filter"] = None
                per_instance.append(Expression(path, "choice filter", None, items, str(exc) or "recursion"))
        if rule.membership is not None:
            entry["membership"] = expression("membership", path, rule.membership, "repeat choices")
        checks[path] = entry

    release = _ColumnRelease.plan(form, compiled, levels, level_of, values, stored, computed_text, computed_failed)
    step = 0
    for kind, path in form.order:
        if (kind, path) not in compiled:
            continue
        lv = levels[level_of[path]]
        fn = compiled[(kind, path)]
        if kind == "relevant":
            own[path] = to_bool(fn(ctx, lv))
            refresh(path)
        else:
            typed, as_text, failed = fn.calculated(ctx, lv, form.rules[path].node.data_type)
            values[path] = typed
            computed_text[path] = as_text
            if failed is not None:
                computed_failed[path] = failed
        release.after(step)
        step += 1

    found = _ColumnFindings(model, levels, level_of, main, columns_of.get(main_name, {}))
    for path, rule in form.rules.items():
        lv = levels[level_of[path]]
        if rule.node.kind != "field" or lv.size == 0:
            continue
        state = _FieldState(ctx, lv, stored[path], checks.get(path, {}), computed_text, computed_failed, per_instance)
        check_field(rule, _ColumnField(path, rule, state, found))
        release.after(step)
        step += 1
    found.expression_errors(errors)
    for item in per_instance:
        if item.reason is None:
            item.reason = "not vectorised"
    asked = {node.path: ctx.relevance[node.path] for node in model.fields() if node.path in ctx.relevance}
    return (
        found.in_order(),
        len(main),
        [(e.kind, e.path, e.reason or "") for e in _per_instance_in_use(compiled, checks, per_instance)],
        asked,
    )
