"""The form compiled for checking: every bind expression compiled once, secondary instances loaded, relevance and
calculations in the order JavaRosa's triggerable graph runs them.

Both evaluators read it: the per-instance one (`toolkit.checks.instance`, which simulate uses to check every
drawn interview) and the column one (`toolkit.validate.columns`).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path

from lxml import etree

from toolkit.checks.rules import (
    ATTACHMENT_MISSING,
    ATTACHMENT_UNREADABLE,
    EXPRESSION_UNPARSED,
    FUNCTION_UNSUPPORTED,
    Finding,
    Where,
    finding,
)
from toolkit.xform import XF, FormModel, Node
from toolkit.xml import parse_untrusted
from toolkit.xpath import (
    CompiledExpr,
    XNode,
    XPathError,
    XPathUnsupportedError,
    build_tree,
    compile_xpath,
    load_secondary_instance,
)
from toolkit.xpath.syntax import Call, Expr, walk

# Question types whose value the device fills in; they are never recomputed or required.
PRELOADED = {
    "start",
    "end",
    "today",
    "deviceid",
    "subscriberid",
    "simserial",
    "phonenumber",
    "username",
    "email",
    "instance_id",
    "audit",
    "start-geopoint",
}
# Body controls without a value of their own.
NO_VALUE = {"note", "acknowledge"}


@dataclass
class BindRules:
    """A node's compiled bind expressions and what its checks need (`toolkit.checks.fields.check_field`)."""

    node: Node
    relevant: CompiledExpr | None = None
    required: CompiledExpr | None = None
    constraint: CompiledExpr | None = None
    calculate: CompiledExpr | None = None
    choices: frozenset[str] | None = None
    is_question: bool = False
    itemset: CompiledExpr | None = None  # the filtered choices (itemset nodeset with a choice_filter)
    value_name: str = "name"
    membership: CompiledExpr | None = None  # a select_one from a repeat: the answer is one of its rows' values
    relevance_chain: str | None = None  # its relevance and that of its groups, for nonrelevant_answered

    @property
    def compares_calculation(self) -> bool:
        """The stored value is compared with the recomputed one (not for values drawn on the device)."""
        return self.calculate is not None and not self.calculate.volatile


@dataclass
class CompiledForm:
    """A form model with its expressions compiled and its secondary instances loaded."""

    model: FormModel
    rules: dict[str, BindRules]
    order: list[tuple[str, str]]
    needs_fixpoint: bool
    types: dict[str, str]
    repeats: frozenset[str]
    secondary: dict[str, XNode]
    media_dir: Path | None
    problems: list[Finding] = field(default_factory=list)
    labels: dict[tuple[str, str], str] = field(default_factory=dict)
    interview_day_path: str | None = None  # the `today` (else `start`) field that dates each submission

    def choice_name(self, value: str, question: str) -> str:
        return self.labels.get((question, value), "")


def _compile_bind(expr: str | None, node: Node, kind: str, problems: list[Finding]) -> CompiledExpr | None:
    if expr is None:
        return None
    where = Where(None, node.path, node.name)
    try:
        return compile_xpath(expr)
    except XPathUnsupportedError as exc:
        problems.append(finding(FUNCTION_UNSUPPORTED, where, None, expression=expr, kind=kind, function=exc.function))
    except XPathError as exc:
        problems.append(finding(EXPRESSION_UNPARSED, where, None, expression=expr, kind=kind, error=exc))
    return None


def _media_candidates(model: FormModel, media_dir: Path | None) -> list[Path]:
    dirs = []
    if media_dir is not None:
        dirs.append(Path(media_dir))
    if model.source:
        src = Path(model.source)
        dirs.extend([src.parent / f"{src.stem}-media", src.parent])
    return [d for d in dirs if d.is_dir()]


def _load_secondary(model: FormModel, media_dir: Path | None, problems: list[Finding]) -> dict[str, XNode]:
    """Inline secondary instances from the XForm, plus external ones (CSV/XML attachments) from media."""
    secondary: dict[str, XNode] = {}
    if model.xform:
        html = parse_untrusted(model.xform)
        for inst in html.iter(f"{{{XF}}}instance"):
            ident = inst.get("id")
            if ident and inst.get("src") is None and len(inst):
                secondary[ident] = build_tree(inst[0])
    folders = _media_candidates(model, media_dir)
    for ident, src in model.secondary_instances.items():
        if src is None or ident in secondary:
            continue
        filename = src.rsplit("/", 1)[-1]
        found = next((d / filename for d in folders if (d / filename).is_file()), None)
        where, expression = Where(None, model.root), f"instance('{ident}')"
        if found is None:
            problems.append(
                finding(ATTACHMENT_MISSING, where, None, expression=expression, filename=filename, instance=ident)
            )
            continue
        try:
            secondary[ident] = load_secondary_instance(found)
        except (OSError, XPathError, etree.XMLSyntaxError, csv.Error) as exc:
            problems.append(
                finding(ATTACHMENT_UNREADABLE, where, None, expression=expression, filename=filename, error=exc)
            )
    return secondary


def _choice_labels(model: FormModel, secondary: Mapping[str, XNode]) -> dict[tuple[str, str], str]:
    """(question path, choice value) -> label in the default language, for jr:choice-name().

    As JavaRosa's ChoiceNameFunctionHandler: the value is the itemset's value element (`name` or another, such
    as `code`), the first choice with that value wins, and lists from attachments take the label element the
    itemset names.
    """
    labels: dict[tuple[str, str], str] = {}
    language = model.default_language
    for node in model.fields():
        if not node.choice_list:
            continue
        value_name = (node.choice_value_ref or "name").strip().split("/")[-1] or "name"
        lst = model.choices_for(node.path)
        if lst is not None:
            for choice in lst.choices:
                value = choice.name if value_name == "name" else choice.extra.get(value_name)
                if value is not None:
                    labels.setdefault((node.path, value), choice.label(language))
            continue
        items = secondary.get(node.choice_list)
        label_name = (node.choice_label_ref or "label").strip().split("/")[-1] or "label"
        for item in items.children if items is not None else ():
            value_node, label_node = item.child(value_name), item.child(label_name)
            if value_node is not None:
                labels.setdefault((node.path, value_node.string), label_node.string if label_node is not None else "")
    return labels


def compile_form(model: FormModel, *, media_dir: Path | None = None) -> CompiledForm:
    """Compile every bind of the form once and load its secondary instances.

    Parameters:
        model: the form model.
        media_dir: folder of the form's attachments (CSV/XML for select_one_from_file, pulldata()).
    """
    problems: list[Finding] = []
    rules: dict[str, BindRules] = {}
    secondary = _load_secondary(model, media_dir, problems)
    for node in model.nodes.values():
        if node.path == model.root:
            continue
        rule = BindRules(node=node)
        rule.relevant = _compile_bind(node.relevant, node, "relevant", problems)
        if node.kind == "field":
            rule.is_question = node.question_type not in PRELOADED | {"calculate", "hidden"} | NO_VALUE
            # Notes and acknowledgements have no answer of their own, but JavaRosa checks `required` on them too.
            rule.required = (
                _compile_bind(node.required, node, "required", problems)
                if rule.is_question or node.question_type in NO_VALUE
                else None
            )
            rule.constraint = _compile_bind(node.constraint, node, "constraint", problems)
            if node.calculate is not None and node.question_type not in PRELOADED:
                rule.calculate = _compile_bind(node.calculate, node, "calculation", problems)
            rule.choices = _static_choices(model, node, secondary)
            if rule.choices is not None and node.choice_filter and node.itemset:
                rule.itemset = _compile_bind(node.itemset, node, "choice filter", problems)
                rule.value_name = (node.choice_value_ref or "name").strip().split("/")[-1] or "name"
            rule.membership = _compile_bind(repeat_membership(node), node, "repeat choices", problems)
            rule.relevance_chain = relevance_chain(model, node)
        rules[node.path] = rule
    order, unresolved = _triggerable_order(model, rules)
    types = {n.path: n.data_type for n in model.fields() if n.data_type}
    return CompiledForm(
        model=model,
        rules=rules,
        order=order,
        needs_fixpoint=unresolved,
        types=types,
        repeats=frozenset(n.path for n in model.repeats()),
        secondary=secondary,
        media_dir=next(iter(_media_candidates(model, media_dir)), None),
        problems=problems,
        labels=_choice_labels(model, secondary),
        interview_day_path=interview_day_path(model),
    )


def repeat_membership(node: Node) -> str | None:
    """For a select_one whose choices are the rows of a repeat (`select_one ${hl_pick}`), an expression that is
    true when the answer is the value of one of the rows its filter allows: `count(/data/hl[(filter) and
    hl_pick = current()/.]) > 0`. Collect only offers those rows; an answer outside them was edited or its row
    deleted after the interview, and would point to nobody."""
    if node.question_type != "select_one" or node.choice_source != "repeat" or not node.itemset:
        return None
    base = node.itemset.split("[", 1)[0].strip()
    value = (node.choice_value_ref or "").strip()
    if not base.startswith("/") or not value or ("[" in node.itemset and not node.choice_filter):
        return None
    value = value.removeprefix("./")
    test = f"({node.choice_filter}) and {value} = current()/." if node.choice_filter else f"{value} = current()/."
    return f"count({base}[{test}]) > 0"


def _static_choices(model: FormModel, node: Node, secondary: Mapping[str, XNode]) -> frozenset[str] | None:
    """The allowed values of a select whose list does not depend on the answers (None when unknown)."""
    if not node.is_select:
        return None
    if node.choice_source == "list" and node.choice_list is not None and node.choice_list in model.choice_lists:
        return frozenset(model.choice_lists[node.choice_list].names)
    if node.choice_source == "file" and node.choice_list is not None and node.choice_list in secondary:
        value_name = (node.choice_value_ref or "name").strip().split("/")[-1] or "name"
        items = list(secondary[node.choice_list].children)
        return frozenset(
            value.string for item in items if (value := item.child(value_name)) is not None
        )
    return None


def _triggerable_order(model: FormModel, rules: Mapping[str, BindRules]) -> tuple[list[tuple[str, str]], bool]:
    """Relevance conditions and calculations in dependency order, as JavaRosa's triggerable DAG runs them.

    Returns the (kind, path) items, kind "relevant" or "calculate", and whether some dependency could not be
    resolved statically (then the evaluation repeats until nothing changes).
    """
    items: list[tuple[str, str]] = []
    for path, rule in rules.items():
        if rule.relevant is not None:
            items.append(("relevant", path))
        if rule.calculate is not None:
            items.append(("calculate", path))
    present = set(items)
    unresolved = False
    deps: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for item in items:
        kind, path = item
        expr = rules[path].relevant if kind == "relevant" else rules[path].calculate
        assert expr is not None
        refs = expr.dependencies(path)
        needs: set[tuple[str, str]] = set()
        if refs is None:
            unresolved = True
            refs = frozenset()
        for ref in refs:
            if ("calculate", ref) in present:
                needs.add(("calculate", ref))
            cursor = ref
            while cursor.count("/") > 1:
                if ("relevant", cursor) in present:
                    needs.add(("relevant", cursor))
                cursor = cursor.rsplit("/", 1)[0]
        needs.discard(item)
        deps[item] = needs
    ordered: list[tuple[str, str]] = []
    state: dict[tuple[str, str], int] = {}

    def visit(item: tuple[str, str]) -> None:
        nonlocal unresolved
        if state.get(item) == 2:
            return
        if state.get(item) == 1:
            unresolved = True  # a cycle (JavaRosa refuses such forms): fall back to repeating until stable
            return
        state[item] = 1
        for dep in sorted(deps[item], key=lambda x: (model.nodes[x[1]].order, x[0])):
            visit(dep)
        state[item] = 2
        ordered.append(item)

    for item in items:
        visit(item)
    return ordered, unresolved


# Calculations whose value the device drew once and cannot be drawn again (an ID, a random draw, a timestamp):
# the stored value is taken as it is and the calculations that read it are recomputed from it. today() is not
# among them: it is recomputed as the interview day; nor is randomize() with a seed, which is deterministic.
_DRAWN_FUNCTIONS = frozenset({"now", "random", "uuid", "once", "property"})


def stored_volatile(expr: CompiledExpr) -> bool:
    """Whether a calculation is taken from the stored instance instead of being recomputed."""
    return bool(expr.functions & _DRAWN_FUNCTIONS) or _unseeded_randomize(expr.ast)


def _unseeded_randomize(ast: Expr) -> bool:
    return any(isinstance(node, Call) and node.name == "randomize" and len(node.args) < 2 for node in walk(ast))


def relevance_chain(model: FormModel, node: Node) -> str | None:
    """The relevance of a node and of the groups and repeats around it, as one expression (None when none has
    one): the skip logic an answer in a non-relevant question breaks."""
    exprs = [a.relevant for a in model.ancestors(node.path) if a.relevant] + (
        [node.relevant] if node.relevant else []
    )
    return " and ".join(f"({e})" for e in exprs) if exprs else None


def interview_day_path(model: FormModel) -> str | None:
    """The field that dates the interview: the `today` preload, else `start` (None without either)."""
    for kind in ("today", "start"):
        for node in model.fields():
            if node.question_type == kind and node.repeat is None:
                return node.path
    return None


def day_of(text: str | None, tz: tzinfo) -> date | None:
    """The calendar day of a `today` (YYYY-MM-DD) or `start` (ISO dateTime) value, as the device saw it."""
    if not text:
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # The offset in the value is the device's own: its local date is the day the enumerator saw.
    return moment.date() if moment.tzinfo is not None else moment.replace(tzinfo=tz).date()


def interview_day(form: CompiledForm, root: XNode, tz: tzinfo = UTC) -> date | None:
    """The day a submission was filled in (its `today` or `start` field), for today() in its checks.

    Constraints such as "date of the last transfer within 93 days of today()" were checked by Collect on the
    interview day; checking them against the day of validation would flag every interview older than the
    window.
    """
    path = form.interview_day_path
    if path is None:
        return None
    node: XNode | None = root
    for step in path.strip("/").split("/")[1:]:
        node = node.child(step) if node is not None else None
    return day_of(node.text if node is not None else None, tz)


