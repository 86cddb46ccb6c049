"""The per-instance evaluator: one submission's instance tree at a time, as JavaRosa loads a saved instance.

The reference evaluator (the JavaRosa differential tests compare its verdicts with JavaRosa's), the one simulate
checks every drawn interview with, and the one `migkit validate` takes for forms whose dependencies cannot be
ordered statically. The checks on each field are `toolkit.checks.fields.check_field`; this module completes the
tree, recomputes its relevance and calculations, and evaluates expressions on one node at a time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from lxml import etree

from toolkit.checks.compiled import BindRules, CompiledForm, interview_day, stored_volatile
from toolkit.checks.fields import MULTIPLE_SELECTS, check_field, same_value, type_ok
from toolkit.checks.rules import (
    DUPLICATE,
    EXPRESSION_FAILS,
    OTHER_FORM,
    TYPE,
    UNREADABLE,
    Finding,
    Rule,
    ValidationResult,
    Where,
    finding,
    summarise,
)
from toolkit.xml import UntrustedXMLError, parse_untrusted
from toolkit.xpath import (
    CompiledExpr,
    EvalEnv,
    XNode,
    XPathError,
    build_tree,
    to_boolean,
    wrap_calculated,
)

# Passes over relevance and calculations for forms whose dependencies cannot be ordered statically.
_MAX_PASSES = 12
# The name a bind expression goes by in messages, by the key `check_field` asks for it.
_KIND_LABEL = {"required": "required", "constraint": "constraint", "membership": "repeat choices"}


def _safe_parse(data: bytes) -> etree._Element:
    try:
        return parse_untrusted(data)
    except UntrustedXMLError as exc:
        if exc.reason == "doctype":
            raise ValueError("the file declares a DOCTYPE or entities; refusing it") from None
        raise


def _complete(form: CompiledForm, node: XNode, path: str, absent: set[int]) -> None:
    """Add the form's nodes missing from a submission as empty (JavaRosa fills a saved instance likewise);
    the ids of the added nodes go into `absent`."""
    fnode = form.model.nodes.get(path)
    if fnode is None:
        return
    present = {c.name for c in node.children}
    for child_path in fnode.children:
        cnode = form.model.nodes[child_path]
        if cnode.name not in present and cnode.kind != "repeat":
            absent.add(id(node.append(XNode(cnode.name, None, node, form.types.get(child_path)))))
    for child in node.children:
        if child.children or form.model.nodes.get(f"{path}/{child.name}", None) is not None:
            child_path = f"{path}/{child.name}"
            if child_path in form.model.nodes and form.model.nodes[child_path].kind != "field":
                _complete(form, child, child_path, absent)


def iter_nodes(node: XNode, path: str) -> Iterator[tuple[XNode, str]]:
    """Every node under `node` in document order, with its generic path (no repeat indexes)."""
    for child in node.children:
        child_path = f"{path}/{child.name}"
        yield child, child_path
        if child.children:
            yield from iter_nodes(child, child_path)


@dataclass
class _Context:
    form: CompiledForm
    env: EvalEnv
    instance_id: str | None
    source: str | None
    enumerator: str | None
    findings: list[Finding]
    errors_seen: set[tuple[str, str]]

    def where(self, xnode: XNode, node_name: str) -> Where:
        return Where(self.instance_id, xnode.path(), node_name, self.source, self.enumerator)

    def evaluate(self, expr: CompiledExpr, xnode: XNode, rule: BindRules, kind: str) -> Any:
        self.env.current = xnode
        try:
            return expr.evaluate(xnode, env=self.env)
        except XPathError as exc:
            key = (xnode.path(), kind)
            if key not in self.errors_seen:
                self.errors_seen.add(key)
                self.findings.append(
                    finding(
                        EXPRESSION_FAILS,
                        self.where(xnode, rule.node.name),
                        xnode.text,
                        expression=expr.source,
                        kind=kind,
                        error=exc,
                    )
                )
            raise


class _InstanceField:
    """`FieldBackend` over one node of one submission: every mask is a bool."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.xnode = XNode("")
        self.rule: BindRules | None = None
        self.text: str | None = None  # the stored value (of a calculation: before it was recomputed)
        self.bad = False
        self.missing = False
        self.computed = False  # the calculation was recomputed

    def at(  # noqa: PLR0917 (one node's state)
        self, xnode: XNode, rule: BindRules, text: str | None, bad: bool, missing: bool, computed: bool
    ) -> _InstanceField:
        self.xnode, self.rule, self.text, self.bad, self.missing, self.computed = (
            xnode,
            rule,
            text,
            bad,
            missing,
            computed,
        )
        return self

    def relevant(self) -> bool:
        return self.xnode.relevant

    def answered(self) -> bool:
        return self.text is not None and self.text != ""

    def unreadable(self) -> bool:
        return self.bad

    def absent(self) -> bool:
        return self.missing

    def both(self, first: bool, second: bool) -> bool:
        return first and second

    def without(self, first: bool, second: bool) -> bool:
        return first and not second

    def none(self, mask: bool) -> bool:
        return not mask

    def holds(self, kind: str, where: bool) -> bool:
        default = kind != "required"
        rule = self.rule
        assert rule is not None
        expr = rule.required if kind == "required" else rule.constraint if kind == "constraint" else rule.membership
        if not where or expr is None:
            return default
        try:
            return to_boolean(self.ctx.evaluate(expr, self.xnode, rule, _KIND_LABEL[kind]))
        except XPathError:
            return default

    def calculation_differs(self, where: bool) -> tuple[bool, str]:
        if not where or not self.computed:
            return False, ""
        assert self.rule is not None
        computed = self.xnode.text or ""
        return not same_value(self.text or "", computed, self.rule.node.data_type), computed

    def _values(self) -> list[str]:
        assert self.rule is not None
        text = self.text or ""
        return text.split() if self.rule.node.question_type in MULTIPLE_SELECTS else [text.strip()]

    def unknown_choices(self, where: bool, allowed: frozenset[str]) -> tuple[bool, str]:
        if not where:
            return False, ""
        unknown = [v for v in self._values() if v not in allowed]
        return bool(unknown), " ".join(unknown)

    def filter_rejects(self, where: bool) -> tuple[bool, str]:
        rule = self.rule
        if not where or rule is None or rule.itemset is None:
            return False, ""
        try:
            items = self.ctx.evaluate(rule.itemset, self.xnode, rule, "choice filter")
        except XPathError:
            return False, ""
        if not isinstance(items, list):
            return False, ""
        allowed = {_item_value(item, rule.value_name) for item in items}
        outside = [v for v in self._values() if v not in allowed]
        return bool(outside), " ".join(outside)

    def report(
        self,
        rule: Rule,
        where: bool,
        *,
        expression: str | None,
        stored: bool = True,
        absent: bool = False,
        **fields: Any,
    ) -> None:
        if where:
            assert self.rule is not None
            self.ctx.findings.append(
                finding(
                    rule,
                    self.ctx.where(self.xnode, self.rule.node.name),
                    self.text if stored else None,
                    expression=expression,
                    absent=absent,
                    **fields,
                )
            )


def enumerator_of(root: XNode) -> str | None:
    """The enumerator of a submission: its `id_int` (the questionnaires' interviewer code), else its device."""
    for name in ("id_int", "deviceid"):
        for node in root.iter():
            if node.name == name and node.string:
                return node.string
    return None


def instance_id_of(root: XNode) -> str | None:
    """A submission's meta/instanceID (None when it has none)."""
    meta = root.child("meta")
    node = meta.child("instanceID") if meta is not None else None
    return node.string or None if node is not None else None


def validate_tree(
    form: CompiledForm,
    root: XNode,
    *,
    source: str | None = None,
    today: date | None = None,
    now: datetime | None = None,
    tz: tzinfo = UTC,
    verdicts: list[tuple[str, bool, bool, str, str]] | None = None,
) -> list[Finding]:
    """Findings for one submission (an instance tree built with the form's types), in document order.

    Parameters:
        form: the compiled form (`compile_form`).
        root: the submission's root node; it is completed with missing nodes and its calculations recomputed.
        source: where the submission came from, for messages.
        today, now: the dates today() and now() return (default: the current ones).
        tz: the time zone of the devices (dates without offset are read in it).
        verdicts: when given, receives per node (path, relevant, required, constraint "1"/"0"/"-", value) in
            document order: the same view JavaRosa gives (tests compare the two).
    """
    model = form.model
    env = EvalEnv(
        root=root,
        secondary=form.secondary,
        today=today,
        now=now,
        tz=tz,
        choice_name=form.choice_name,
        media_dir=form.media_dir,
    )
    ctx = _Context(form, env, instance_id_of(root), source, enumerator_of(root), [], set())
    absent: set[int] = set()
    _complete(form, root, model.root, absent)
    stored, bad_type = _read_types(ctx, root)
    computed_ok = _recompute(ctx, root, tz)

    # Required, constraints, choices and calculation mismatches, with the relevance found above.
    field = _InstanceField(ctx)
    for xnode, path in iter_nodes(root, model.root):
        rule = form.rules.get(path)
        if rule is None:
            continue
        if verdicts is not None:
            verdicts.append(_verdict(ctx, rule, xnode))
        node = rule.node
        if node.kind != "field":
            continue
        key = id(xnode)
        text = stored.get(key, xnode.text) if rule.calculate is not None else xnode.text
        check_field(
            rule,
            field.at(
                xnode, rule, text, key in bad_type, key in absent and node.question_type != "note", key in computed_ok
            ),
        )
    return ctx.findings


def _read_types(ctx: _Context, root: XNode) -> tuple[dict[int, str], set[int]]:
    """Values that do not parse as their type (`type_invalid`, then read as empty) and the stored calculations,
    before anything reads the values."""
    stored: dict[int, str] = {}
    bad_type: set[int] = set()
    for xnode, path in iter_nodes(root, ctx.form.model.root):
        rule = ctx.form.rules.get(path)
        if rule is None or rule.node.kind != "field":
            continue
        text = xnode.text
        if text is not None and text != "" and not type_ok(text, rule.node):
            bad_type.add(id(xnode))
            ctx.findings.append(finding(TYPE, ctx.where(xnode, rule.node.name), text, type=rule.node.data_type))
            # JavaRosa cannot load such a value; like ingest's typed tables, the rules see an empty answer.
            xnode.set(None)
        if rule.calculate is not None:
            stored[id(xnode)] = text or ""
    return stored, bad_type


def _recompute(ctx: _Context, root: XNode, tz: tzinfo) -> set[int]:
    """Relevance and calculations in JavaRosa's dependency order, over every instance of each node; returns the
    ids of the calculations recomputed."""
    form = ctx.form
    by_path: dict[str, list[XNode]] = {}
    for xnode, path in iter_nodes(root, form.model.root):
        by_path.setdefault(path, []).append(xnode)
    own: dict[int, bool] = {}
    computed_ok: set[int] = set()
    for _ in range(_MAX_PASSES):
        changed = False
        for kind, path in form.order:
            rule, nodes = form.rules[path], by_path.get(path, [])
            if kind == "relevant":
                changed |= _relevance_pass(ctx, rule, nodes, own)
            elif rule.calculate is not None and not stored_volatile(rule.calculate):  # else: as the device drew it
                changed |= _calculation_pass(ctx, rule, nodes, tz, computed_ok)
        if not form.needs_fixpoint or not changed:
            break
    return computed_ok


def _relevance_pass(ctx: _Context, rule: BindRules, nodes: list[XNode], own: dict[int, bool]) -> bool:
    """Evaluate a node's relevance on each of its instances; whether one changed."""
    assert rule.relevant is not None
    changed = False
    for xnode in nodes:
        try:
            value = to_boolean(ctx.evaluate(rule.relevant, xnode, rule, "relevant"))
        except XPathError:
            value = True
        if own.get(id(xnode), True) != value:
            own[id(xnode)] = value
            changed = True
            _inherit(xnode, own)
    return changed


def _calculation_pass(
    ctx: _Context, rule: BindRules, nodes: list[XNode], tz: tzinfo, computed_ok: set[int]
) -> bool:
    """Recompute a calculation on each of its instances (its dependents read the new value); whether one changed."""
    assert rule.calculate is not None
    changed = False
    for xnode in nodes:
        try:
            result = ctx.evaluate(rule.calculate, xnode, rule, "calculation")
        except XPathError:
            continue
        text, typed = wrap_calculated(result, rule.node.data_type, tz)
        computed_ok.add(id(xnode))
        if (text or None) != xnode.text or typed != xnode._value:
            xnode.set(text or None, typed)
            changed = True
    return changed


def _item_value(item: XNode, value_name: str) -> str:
    child = item.child(value_name)
    return child.string if child is not None else ""


def _verdict(ctx: _Context, rule: BindRules, xnode: XNode) -> tuple[str, bool, bool, str, str]:
    required = False
    if rule.required is not None:
        try:
            required = to_boolean(ctx.evaluate(rule.required, xnode, rule, "required"))
        except XPathError:
            required = False
    constraint = "-"
    if rule.constraint is not None and xnode.text:
        saved = xnode.relevant
        xnode.relevant = True  # JavaRosa checks a constraint against the candidate value itself
        try:
            constraint = "1" if to_boolean(ctx.evaluate(rule.constraint, xnode, rule, "constraint")) else "0"
        except XPathError:
            constraint = "E"
        finally:
            xnode.relevant = saved
    return (xnode.path(), xnode.relevant, required, constraint, xnode.text or "")


def _inherit(xnode: XNode, own: Mapping[int, bool]) -> None:
    """Set the inherited relevance of a node and its descendants from their own relevance flags."""
    parent = xnode.parent
    xnode.relevant = (parent.relevant if parent is not None else True) and own.get(id(xnode), True)
    for child in xnode.children:
        _inherit(child, own)


def instance_tree(form: CompiledForm, data: bytes) -> XNode:
    """Parse a submission (safely) into an instance tree typed by the form's binds."""
    element = _safe_parse(data)
    return build_tree(element, types=form.types, repeats=form.repeats)


def _parsed(form: CompiledForm, source: str, data: bytes, findings: list[Finding]) -> XNode | None:
    """A submission's tree, or None with its finding when it is not a readable instance of the form."""
    root_name = form.model.root[1:]
    try:
        element = _safe_parse(data)
    except (etree.XMLSyntaxError, ValueError) as exc:
        findings.append(finding(UNREADABLE, Where(None, "", None, source), None, source=source, error=exc))
        return None
    found = etree.QName(element).localname
    if found != root_name:
        where = Where(None, "/" + found, None, source)
        findings.append(finding(OTHER_FORM, where, None, source=source, found=found, root=root_name))
        return None
    return build_tree(element, types=form.types, repeats=form.repeats)


def validate_submissions(
    form: CompiledForm,
    submissions: Iterable[tuple[str, bytes | XNode]],
    *,
    today: date | None = None,
    now: datetime | None = None,
    tz: tzinfo = UTC,
    progress: Callable[[int], None] | None = None,
    check_duplicates: bool = True,
) -> ValidationResult:
    """Validate submissions given as (source name, instance XML bytes).

    Parameters:
        form: the compiled form.
        submissions: (source name, instance XML bytes or an already built tree); their order decides which
            copy of a duplicate is reported.
        today, now: fixed dates for today() and now(); without `today`, each submission's interview day
            (its `today` or `start` field) is today(), as it was for Collect when the form was filled.
        tz: the devices' time zone.
        progress: called with the number of submissions done so far.
        check_duplicates: report instanceIDs seen twice (off when ingest has reported them already).
    """
    started = time.perf_counter()
    findings: list[Finding] = list(form.problems)
    seen: dict[str, tuple[str, str | None]] = {}
    count = 0
    for source, data in submissions:
        count += 1
        digest = None
        if isinstance(data, XNode):
            root = data
        else:
            parsed = _parsed(form, source, data, findings)
            if parsed is None:
                continue
            root, digest = parsed, hashlib.sha256(data).hexdigest()
        day = today if today is not None else interview_day(form, root, tz)
        instance_findings = validate_tree(form, root, source=source, today=day, now=now, tz=tz)
        instance_id = next((f.instance_id for f in instance_findings if f.instance_id), None) or instance_id_of(
            root
        )
        if instance_id and check_duplicates:
            if instance_id in seen:
                first_source, first_digest = seen[instance_id]
                where = Where(
                    instance_id, form.model.root + "/meta/instanceID", "instanceID", source, enumerator_of(root)
                )
                same = "identical to" if digest == first_digest and digest else "different from"
                findings.append(finding(DUPLICATE, where, instance_id, source=source, first=first_source, same=same))
            else:
                seen[instance_id] = (source, digest)
        findings.extend(instance_findings)
        if progress is not None:
            progress(count)
    return summarise(findings, count, time.perf_counter() - started)
