"""Check submissions against the questionnaire: skip logic, required answers, constraints, types, choices.

For every submission this answers "would ODK Collect accept this instance as it is?", with JavaRosa's rules:

- relevance is inherited: a node is relevant only when its own `relevant` holds and every enclosing group and
  repeat instance is relevant; an answer in a non-relevant node is `nonrelevant_answered` (Collect leaves
  non-relevant nodes out of a submission);
- calculations are recomputed from the answers in dependency order, as Collect does when it opens a saved instance; a
  stored value that differs is `calculate_mismatch`, and later expressions read the recomputed values; values the
  device drew (uuid(), random(), now(), once(...)) are taken from the instance and only their dependents recomputed;
- `required` and constraints apply only to relevant nodes; a constraint is checked only on a non-empty answer; a
  relevant required note is `hard_stop_reached` (Collect cannot get past it); a required node missing from the
  submission is reported with `absent` (docs/validation.md);
- values must parse as their bind type (`type_invalid`) and select answers must be in the choice list, or for a
  pick from a repeat (`select_one ${hl_pick}`) the value of a row its filter allows (`choice_unknown`: Collect checks
  neither, but data edited after collection break both); an instanceID seen twice is `duplicate_instance`.

Expressions that cannot be evaluated are findings too (`expression_unsupported`, `expression_error`), never a
crash.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lxml import etree

from toolkit import ingest
from toolkit.dataset import DataFolder
from toolkit.errors import (
    INPUT_MISSING,
    INPUT_UNREADABLE,
    Issue,
    Location,
    Severity,
    ToolkitError,
    define,
    error,
)
from toolkit.ingest import IngestResult
from toolkit.report import Report
from toolkit.xform import XF, FormModel, Node, load_form
from toolkit.xml import UntrustedXMLError, parse_untrusted
from toolkit.xpath import (
    CompiledExpr,
    EvalEnv,
    XNode,
    XPathError,
    XPathUnsupportedError,
    _parse_datetime,
    build_tree,
    compile_xpath,
    load_secondary_instance,
    to_boolean,
    wrap_calculated,
)

NONRELEVANT_ANSWERED = define(
    "nonrelevant_answered", "A question is answered although its skip logic makes it not relevant"
)
REQUIRED_MISSING = define("required_missing", "A required question is relevant but has no answer")
HARD_STOP_REACHED = define(
    "hard_stop_reached",
    "A required note is relevant: Collect stops there and the submission could not have been finalised",
)
CONSTRAINT_VIOLATED = define("constraint_violated", "An answer breaks the question's constraint")
TYPE_INVALID = define("type_invalid", "A value does not parse as the question's type")
CHOICE_UNKNOWN = define("choice_unknown", "A select answer is not in the question's choice list")
CALCULATE_MISMATCH = define(
    "calculate_mismatch", "A stored calculation differs from its value recomputed from the answers"
)
DUPLICATE_INSTANCE = define("duplicate_instance", "The same instanceID occurs in more than one submission")
EXPRESSION_UNSUPPORTED = define(
    "expression_unsupported", "An expression uses a function migkit cannot evaluate"
)
EXPRESSION_ERROR = define(
    "expression_error", "An expression fails on this submission (JavaRosa would fail too)"
)
INSTANCE_UNREADABLE = define(
    "instance_unreadable", "A submission file is not a readable instance of the form"
)
INSTANCE_OTHER_FORM = define(
    "instance_other_form", "A submission belongs to another form (root element differs)"
)

# Question types whose value the device fills in; they are never recomputed or required.
_PRELOADED = {
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
_NO_VALUE = {"note", "acknowledge"}

_INT_RE = re.compile(r"^\s*[-+]?\d+\s*$")
_DEC_RE = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")


@dataclass(frozen=True)
class Finding:
    """One violation in one submission.

    `path` is the node's absolute path with 1-based indexes on repeat instances (``/data/trips[2]/dest``, the
    notation of JavaRosa references); `value` the stored value; `expression` the rule that failed.
    """

    instance_id: str | None
    path: str
    code: str
    value: str | None
    expression: str | None
    message: str
    severity: str = "error"
    variable: str | None = None
    source: str | None = None
    enumerator: str | None = None
    absent: bool = False  # the node is missing from the submission (not merely empty)

    def to_issue(self) -> Issue:
        return Issue(
            self.code,
            Severity(self.severity),
            self.message,
            Location(
                file=self.source,
                variable=self.variable,
                instance=self.instance_id,
                path=self.path,
                expression=self.expression,
            ),
            self.value,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "path": self.path,
            "code": self.code,
            "value": self.value,
            "expression": self.expression,
            "message": self.message,
            "severity": self.severity,
            "variable": self.variable,
            "source": self.source,
            "enumerator": self.enumerator,
            "absent": self.absent,
        }


@dataclass(frozen=True)
class ValidationResult:
    """Findings of a validation run, statistics and whether every submission obeys the form."""

    valid: bool
    stats: dict[str, Any]
    findings: tuple[Finding, ...]
    issues: tuple[Issue, ...] = ()
    # Per question path, which rows of its table (in the DATA folder's order) skip logic asked it; filled by the
    # column path, for the codebook's "not asked" counts. Empty when validation ran per instance.
    asked: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_report(self) -> Report:
        return Report(valid=self.valid, stats=self.stats, issues=tuple(f.to_issue() for f in self.findings))

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "stats": self.stats, "findings": [f.to_dict() for f in self.findings]}


# ------------------------------------------------------------------------------------------------------------
# The compiled form: every bind expression compiled once
# ------------------------------------------------------------------------------------------------------------


@dataclass
class _Rule:
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


@dataclass
class CompiledForm:
    """A form model with its expressions compiled and its secondary instances loaded."""

    model: FormModel
    rules: dict[str, _Rule]
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
    try:
        return compile_xpath(expr)
    except XPathUnsupportedError as exc:
        problems.append(
            Finding(
                None,
                node.path,
                EXPRESSION_UNSUPPORTED,
                None,
                expr,
                f"{node.name}: the {kind} expression uses {exc.function}(), which migkit cannot evaluate; "
                "this rule is not checked.",
                "warning",
                node.name,
            )
        )
    except XPathError as exc:
        problems.append(
            Finding(
                None,
                node.path,
                EXPRESSION_UNSUPPORTED,
                None,
                expr,
                f"{node.name}: the {kind} expression does not parse ({exc}); this rule is not checked.",
                "warning",
                node.name,
            )
        )
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
        if found is None:
            problems.append(
                Finding(
                    None,
                    model.root,
                    EXPRESSION_UNSUPPORTED,
                    None,
                    f"instance('{ident}')",
                    f"The attachment {filename} (secondary instance '{ident}') was not found; pass its "
                    "folder "
                    "with "
                    "--media. Questions and expressions that read it are not checked.",
                    "warning",
                )
            )
            continue
        try:
            secondary[ident] = load_secondary_instance(found)
        except (OSError, XPathError, etree.XMLSyntaxError, csv.Error) as exc:
            problems.append(
                Finding(
                    None,
                    model.root,
                    EXPRESSION_UNSUPPORTED,
                    None,
                    f"instance('{ident}')",
                    f"The attachment {filename} cannot be read ({exc}).",
                    "warning",
                )
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
    rules: dict[str, _Rule] = {}
    secondary = _load_secondary(model, media_dir, problems)
    for node in model.nodes.values():
        if node.path == model.root:
            continue
        rule = _Rule(node=node)
        rule.relevant = _compile_bind(node.relevant, node, "relevant", problems)
        if node.kind == "field":
            rule.is_question = node.question_type not in _PRELOADED | {"calculate", "hidden"} | _NO_VALUE
            # Notes and acknowledgements have no answer of their own, but JavaRosa checks `required` on them too.
            rule.required = (
                _compile_bind(node.required, node, "required", problems)
                if rule.is_question or node.question_type in _NO_VALUE
                else None
            )
            rule.constraint = _compile_bind(node.constraint, node, "constraint", problems)
            if node.calculate is not None and node.question_type not in _PRELOADED:
                rule.calculate = _compile_bind(node.calculate, node, "calculation", problems)
            rule.choices = _static_choices(model, node, secondary)
            if rule.choices is not None and node.choice_filter and node.itemset:
                rule.itemset = _compile_bind(node.itemset, node, "choice filter", problems)
                rule.value_name = (node.choice_value_ref or "name").strip().split("/")[-1] or "name"
            rule.membership = _compile_bind(repeat_membership(node), node, "repeat choices", problems)
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


def repeat_choice_message(name: str, value: str, node: Node) -> str:
    return (
        f"{name}: {value!r} is not the value of any row of the repeat it is chosen from ({node.itemset}): the "
        "answer or that row was changed after the interview; check both against the paper or the enumerator."
    )


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


def _triggerable_order(model: FormModel, rules: Mapping[str, _Rule]) -> tuple[list[tuple[str, str]], bool]:
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


# ------------------------------------------------------------------------------------------------------------
# One submission
# ------------------------------------------------------------------------------------------------------------


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


def _iter_nodes(node: XNode, path: str) -> Iterator[tuple[XNode, str]]:
    for child in node.children:
        child_path = f"{path}/{child.name}"
        yield child, child_path
        if child.children:
            yield from _iter_nodes(child, child_path)


def _type_ok(text: str, node: Node) -> bool:  # noqa: PLR0911 (one return per JavaRosa type rule)
    dtype = node.data_type or "string"
    if dtype == "int":
        return bool(_INT_RE.match(text)) and -2147483648 <= int(text) <= 2147483647
    if dtype == "decimal":
        return bool(_DEC_RE.match(text))
    if dtype == "date":
        if not _DATE_RE.match(text.strip()):
            return False
        try:
            date.fromisoformat(text.strip())
        except ValueError:
            return False
        return True
    if dtype == "dateTime":
        return bool(_DATETIME_RE.match(text.strip()))
    if dtype == "time":
        return bool(_TIME_RE.match(text.strip()))
    if dtype == "boolean":
        return text.strip().lower() in ("true", "false", "1", "0")
    if dtype in ("geopoint", "geotrace", "geoshape"):
        points = [p for p in text.split(";") if p.strip()]
        for point in points:
            parts = point.split()
            if len(parts) not in (2, 3, 4) or not all(_DEC_RE.match(x) for x in parts):
                return False
            if not (-90 <= float(parts[0]) <= 90 and -180 <= float(parts[1]) <= 180):
                return False
        return bool(points)
    return True


def _same_value(stored: str, computed: str, dtype: str | None) -> bool:
    if stored == computed:
        return True
    a, b = stored.strip(), computed.strip()
    if a == b:
        return True
    if _DEC_RE.match(a) and _DEC_RE.match(b):
        x, y = float(a), float(b)
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
    truthy = {"true": True, "1": True, "false": False, "0": False}
    if dtype == "boolean" and a.lower() in truthy and b.lower() in truthy:
        return truthy[a.lower()] == truthy[b.lower()]
    if _DATETIME_RE.match(a) and _DATETIME_RE.match(b):
        pa, pb = _parse_datetime(a), _parse_datetime(b)
        return pa is not None and pa == pb
    return False


@dataclass
class _Context:
    form: CompiledForm
    env: EvalEnv
    instance_id: str | None
    source: str | None
    enumerator: str | None
    findings: list[Finding]
    errors_seen: set[tuple[str, str]]

    def add(  # noqa: PLR0917 (hot internal helper)
        self,
        code: str,
        xnode: XNode | None,
        node: Node,
        value: str | None,
        expr: str | None,
        message: str,
        severity: str = "error",
        path: str | None = None,
        *,
        absent: bool = False,
    ) -> None:
        self.findings.append(
            Finding(
                self.instance_id,
                path or (xnode.path() if xnode is not None else node.path),
                code,
                value,
                expr,
                message,
                severity,
                node.name,
                self.source,
                self.enumerator,
                absent,
            )
        )

    def evaluate(self, expr: CompiledExpr, xnode: XNode, node: Node, kind: str) -> Any:
        self.env.current = xnode
        try:
            return expr.evaluate(xnode, env=self.env)
        except XPathError as exc:
            key = (xnode.path(), kind)
            if key not in self.errors_seen:
                self.errors_seen.add(key)
                self.add(
                    EXPRESSION_ERROR,
                    xnode,
                    node,
                    xnode.text,
                    expr.source,
                    f"{node.name}: the {kind} expression fails on this submission: {exc}",
                    "warning",
                )
            raise


# Calculations whose value the device drew once and cannot be drawn again (an ID, a random draw, a timestamp):
# the stored value is taken as it is and the calculations that read it are recomputed from it. today() is not
# among them: it is recomputed as the interview day; nor is randomize() with a seed, which is deterministic.
_DRAWN_FUNCTIONS = frozenset({"now", "random", "uuid", "once", "property"})


def stored_volatile(expr: CompiledExpr) -> bool:
    """Whether a calculation is taken from the stored instance instead of being recomputed."""
    return bool(expr.functions & _DRAWN_FUNCTIONS) or _unseeded_randomize(expr.ast)


def _unseeded_randomize(ast: Any) -> bool:
    if not isinstance(ast, tuple):
        return False
    if ast[:2] == ("func", "randomize") and len(ast[2]) < 2:
        return True
    return any(_unseeded_randomize(part) for part in ast if isinstance(part, tuple))


def required_finding(node: Node, *, absent: bool) -> tuple[str, str]:
    """The code and message for a relevant, required node without a value.

    A required note never has a value: when it is relevant Collect stops there, so forms use it as a hard stop
    on inconsistent answers (`hard_stop_reached`). A node missing from the submission (`absent`) was left out
    by Collect because it was not relevant when the form was saved; JavaRosa reads it so and passes it, migkit
    reports it because the answers now make it relevant (typically after an edit).
    """
    if node.question_type == "note":
        return HARD_STOP_REACHED, (
            f"{node.name}: a required note is relevant here, so Collect could not have finalised this "
            f"submission (the form uses it as a hard stop when {node.relevant or 'it is shown'}); check the "
            "answers its condition reads."
        )
    what = "acknowledgement" if node.question_type == "acknowledge" else "question"
    if absent:
        return REQUIRED_MISSING, (
            f"{node.name}: required and relevant, but absent from the submission (Collect leaves out only "
            f"questions that are not relevant, so an answer its relevance reads was probably changed after "
            f"the interview); this {what} needs an answer or its relevance inputs need checking."
        )
    return REQUIRED_MISSING, f"{node.name}: required and relevant, but empty."


def _enumerator(root: XNode) -> str | None:
    for name in ("id_int", "deviceid"):
        for node in root.iter():
            if node.name == name and node.string:
                return node.string
    return None


def validate_tree(  # noqa: PLR0912, PLR0915
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
    instance_id = None
    meta = root.child("meta")
    instance_node = meta.child("instanceID") if meta is not None else None
    if instance_node is not None:
        instance_id = instance_node.string or None
    env = EvalEnv(
        root=root,
        secondary=form.secondary,
        today=today,
        now=now,
        tz=tz,
        choice_name=form.choice_name,
        media_dir=form.media_dir,
    )
    ctx = _Context(form, env, instance_id, source, _enumerator(root), [], set())
    absent: set[int] = set()
    _complete(form, root, model.root, absent)

    # 1. Types (before anything reads the values) and the stored calculations.
    stored: dict[int, str] = {}
    bad_type: set[int] = set()
    for xnode, path in _iter_nodes(root, model.root):
        rule = form.rules.get(path)
        if rule is None or rule.node.kind != "field":
            continue
        text = xnode.text
        if text is not None and text != "" and not _type_ok(text, rule.node):
            bad_type.add(id(xnode))
            ctx.add(
                TYPE_INVALID,
                xnode,
                rule.node,
                text,
                None,
                f"{rule.node.name}: {text!r} is not a valid {rule.node.data_type}; it is read as empty.",
            )
            # JavaRosa cannot load such a value; like ingest's typed tables, the rules see an empty answer.
            xnode.set(None)
        if rule.calculate is not None:
            stored[id(xnode)] = text or ""

    # 2. Relevance and calculations in JavaRosa's dependency order, over every instance of each node.
    by_path: dict[str, list[XNode]] = {}
    for xnode, path in _iter_nodes(root, model.root):
        by_path.setdefault(path, []).append(xnode)
    own: dict[int, bool] = {}
    computed_ok: set[int] = set()
    for _ in range(_MAX_PASSES):
        changed = False
        for kind, path in form.order:
            rule = form.rules[path]
            if kind == "relevant":
                assert rule.relevant is not None
                for xnode in by_path.get(path, ()):
                    try:
                        value = to_boolean(ctx.evaluate(rule.relevant, xnode, rule.node, "relevant"))
                    except XPathError:
                        value = True
                    if own.get(id(xnode), True) != value:
                        own[id(xnode)] = value
                        changed = True
                        _inherit(xnode, own)
            else:
                assert rule.calculate is not None
                if stored_volatile(rule.calculate):
                    continue  # the stored value is the one the device drew; its dependents read it
                for xnode in by_path.get(path, ()):
                    try:
                        result = ctx.evaluate(rule.calculate, xnode, rule.node, "calculation")
                    except XPathError:
                        continue
                    text, typed = wrap_calculated(result, rule.node.data_type, tz)
                    computed_ok.add(id(xnode))
                    if (text or None) != xnode.text or typed != xnode._value:
                        xnode.set(text or None, typed)
                        changed = True
        if not form.needs_fixpoint or not changed:
            break

    # 3. Required, constraints, choices and calculation mismatches, with the relevance found above.
    for xnode, path in _iter_nodes(root, model.root):
        rule = form.rules.get(path)
        if rule is None:
            continue
        node = rule.node
        relevant = xnode.relevant
        if verdicts is not None:
            verdicts.append(_verdict(ctx, rule, xnode))
        if node.kind != "field":
            continue
        text = stored.get(id(xnode), xnode.text) if rule.calculate is not None else xnode.text
        answered = text is not None and text != ""
        if not relevant:
            if answered:
                ctx.add(
                    NONRELEVANT_ANSWERED,
                    xnode,
                    node,
                    text,
                    _relevance_chain(model, node),
                    f"{node.name}: answered ({text!r}) but not relevant, so Collect would not have kept it.",
                )
            continue
        if rule.calculate is not None and id(xnode) in computed_ok and not rule.calculate.volatile:
            computed = xnode.text or ""
            if not _same_value(stored.get(id(xnode), ""), computed, node.data_type):
                ctx.add(
                    CALCULATE_MISMATCH,
                    xnode,
                    node,
                    stored.get(id(xnode), ""),
                    rule.calculate.source,
                    f"{node.name}: stored {stored.get(id(xnode), '')!r} but the calculation gives "
                    f"{computed!r}.",
                )
        if rule.required is not None and not answered and id(xnode) not in bad_type:
            try:
                required = to_boolean(ctx.evaluate(rule.required, xnode, node, "required"))
            except XPathError:
                required = False
            if required:
                missing = id(xnode) in absent and node.question_type != "note"
                code, message = required_finding(node, absent=missing)
                ctx.add(code, xnode, node, None, node.required, message, absent=missing)
        if not text or id(xnode) in bad_type:  # not answered
            continue
        if rule.choices is not None:
            values = text.split() if node.question_type in ("select_multiple", "rank") else [text.strip()]
            unknown = [v for v in values if v not in rule.choices]
            if unknown:
                ctx.add(
                    CHOICE_UNKNOWN,
                    xnode,
                    node,
                    text,
                    node.itemset,
                    f"{node.name}: {' '.join(unknown)!r} is not in the choice list {node.choice_list!r}.",
                )
            elif rule.itemset is not None:
                try:
                    items = ctx.evaluate(rule.itemset, xnode, node, "choice filter")
                except XPathError:
                    items = None
                if isinstance(items, list):
                    allowed = {_item_value(item, rule.value_name) for item in items}
                    outside = [v for v in values if v not in allowed]
                    if outside:
                        ctx.add(
                            CHOICE_UNKNOWN,
                            xnode,
                            node,
                            text,
                            node.choice_filter,
                            f"{node.name}: {' '.join(outside)!r} is in the list {node.choice_list!r} but not "
                            f"among the choices its filter ({node.choice_filter}) allows here.",
                        )
        elif rule.membership is not None:
            try:
                member = to_boolean(ctx.evaluate(rule.membership, xnode, node, "repeat choices"))
            except XPathError:
                member = True
            if not member:
                ctx.add(CHOICE_UNKNOWN, xnode, node, text, node.itemset, repeat_choice_message(node.name, text, node))
        if rule.constraint is not None:
            try:
                ok = to_boolean(ctx.evaluate(rule.constraint, xnode, node, "constraint"))
            except XPathError:
                ok = True
            if not ok:
                ctx.add(
                    CONSTRAINT_VIOLATED,
                    xnode,
                    node,
                    text,
                    node.constraint,
                    f"{node.name}: {text!r} breaks the constraint {node.constraint}.",
                )
    return ctx.findings


_MAX_PASSES = 12


def _item_value(item: XNode, value_name: str) -> str:
    child = item.child(value_name)
    return child.string if child is not None else ""


def _verdict(ctx: _Context, rule: _Rule, xnode: XNode) -> tuple[str, bool, bool, str, str]:
    required = False
    if rule.required is not None:
        try:
            required = to_boolean(ctx.evaluate(rule.required, xnode, rule.node, "required"))
        except XPathError:
            required = False
    constraint = "-"
    if rule.constraint is not None and xnode.text:
        saved = xnode.relevant
        xnode.relevant = True  # JavaRosa checks a constraint against the candidate value itself
        try:
            constraint = (
                "1" if to_boolean(ctx.evaluate(rule.constraint, xnode, rule.node, "constraint")) else "0"
            )
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


def _relevance_chain(model: FormModel, node: Node) -> str | None:
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


def _day_of(text: str | None, tz: tzinfo) -> date | None:
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
    return _day_of(node.text if node is not None else None, tz)


def instance_tree(form: CompiledForm, data: bytes) -> XNode:
    """Parse a submission (safely) into an instance tree typed by the form's binds."""
    element = _safe_parse(data)
    return build_tree(element, types=form.types, repeats=form.repeats)


# ------------------------------------------------------------------------------------------------------------
# Many submissions
# ------------------------------------------------------------------------------------------------------------


def iter_instance_files(input_path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, XML bytes) of every submission in a folder (recursively), a zip of instance XMLs, or one XML."""
    yield from ingest.iter_submission_xml(input_path)


def _text_of(value: Any, data_type: str | None) -> str | None:  # noqa: PLR0911 (one return per JavaRosa type rule)
    """A typed table cell back to the text of an instance node (docs/tables.md types)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        if pd.isna(value):
            return None  # type: ignore[unreachable]  # NaT is a datetime, which pandas-stubs do not know
        return value.date().isoformat() if data_type == "date" else value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if data_type == "int" and value.is_integer() else repr(value)
    text = str(value)
    return text if text != "" else None


# One row of a DATA table as pandas gives it (`to_dict("records")`), keyed by column name.
_TableRow = dict[Hashable, Any]


def _row_position(column: str, row: _TableRow) -> tuple[bool, Any]:
    """Sort key of a repeat row by its position column; rows without a position go last."""
    position = row.get(column)
    return (position is pd.NA, position if position is not pd.NA else 0)


def trees_from_tables(form: CompiledForm, tables: IngestResult) -> Iterator[tuple[str, XNode]]:
    """Instance trees rebuilt from ingest tables (an `IngestResult`): one per row of the main table.

    Repeat rows hang under the row whose KEY is their PARENT_KEY, in the order of their `<repeat>_no`.
    """
    model = form.model
    by_path: dict[str, str] = {path: name for name, path in tables.table_paths.items()}
    column_of: dict[str, dict[str, str]] = {
        name: {c.path: c.name for c in cols if c.path} for name, cols in tables.columns.items()
    }
    children_rows: dict[str, dict[str, list[_TableRow]]] = {}
    for repeat in model.repeats():
        name = by_path.get(repeat.path)
        if name is None:
            continue
        frame = tables.tables[name]
        grouped: dict[str, list[_TableRow]] = {}
        order_col = f"{repeat.name}_no"
        for row in frame.to_dict("records"):
            grouped.setdefault(str(row.get("PARENT_KEY")), []).append(row)
        if order_col in frame.columns:
            for rows in grouped.values():
                rows.sort(key=partial(_row_position, order_col))
        children_rows[repeat.path] = grouped

    def level(parent: XNode, path: str, row: _TableRow, table: str) -> None:
        for child_path in model.nodes[path].children:
            child = model.nodes[child_path]
            if child.kind == "field":
                column = column_of.get(table, {}).get(child_path)
                text = _text_of(row.get(column), child.data_type) if column is not None else None
                parent.append(XNode(child.name, text, parent, form.types.get(child_path)))
            elif child.kind == "group":
                group = parent.append(XNode(child.name, None, parent))
                level(group, child_path, row, table)
            else:
                repeat_table = by_path.get(child_path)
                parent._repeat_names = (parent._repeat_names or frozenset()) | {child.name}
                for child_row in children_rows.get(child_path, {}).get(str(row.get("KEY")), []):
                    instance = parent.append(XNode(child.name, None, parent))
                    level(instance, child_path, child_row, repeat_table or "")

    main_name = by_path.get(model.root) or next(iter(tables.tables))
    for row in tables.tables[main_name].to_dict("records"):
        root = XNode(model.root[1:])
        level(root, model.root, row, main_name)
        yield str(row.get("KEY") or ""), root


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
    root_name = form.model.root[1:]
    for source, data in submissions:
        count += 1
        if isinstance(data, XNode):
            root = data
            digest = None
        else:
            try:
                element = _safe_parse(data)
            except (etree.XMLSyntaxError, ValueError) as exc:
                findings.append(
                    Finding(
                        None,
                        "",
                        INSTANCE_UNREADABLE,
                        None,
                        None,
                        f"{source}: not a readable instance ({exc}).",
                        "error",
                        None,
                        source,
                    )
                )
                continue
            if etree.QName(element).localname != root_name:
                findings.append(
                    Finding(
                        None,
                        "/" + etree.QName(element).localname,
                        INSTANCE_OTHER_FORM,
                        None,
                        None,
                        f"{source}: the root element is <{etree.QName(element).localname}>, the form's is "
                        f"<{root_name}>; use the matching form.",
                        "error",
                        None,
                        source,
                    )
                )
                continue
            root = build_tree(element, types=form.types, repeats=form.repeats)
            digest = hashlib.sha256(data).hexdigest()
        day = today if today is not None else interview_day(form, root, tz)
        instance_findings = validate_tree(form, root, source=source, today=day, now=now, tz=tz)
        instance_id = next((f.instance_id for f in instance_findings if f.instance_id), None) or _instance_id(
            root
        )
        if instance_id and check_duplicates:
            if instance_id in seen:
                first_source, first_digest = seen[instance_id]
                same = "identical to" if digest == first_digest and digest else "different from"
                findings.append(
                    Finding(
                        instance_id,
                        form.model.root + "/meta/instanceID",
                        DUPLICATE_INSTANCE,
                        instance_id,
                        None,
                        f"{source}: instanceID {instance_id} was already seen in {first_source} ({same} it); "
                        "keep one.",
                        "error",
                        "instanceID",
                        source,
                        _enumerator(root),
                    )
                )
            else:
                seen[instance_id] = (source, digest)
        findings.extend(instance_findings)
        if progress is not None:
            progress(count)
    return _result(findings, count, time.perf_counter() - started)


def _instance_id(root: XNode) -> str | None:
    meta = root.child("meta")
    node = meta.child("instanceID") if meta is not None else None
    return node.string or None if node is not None else None


def _result(findings: list[Finding], count: int, elapsed: float) -> ValidationResult:
    by_code = Counter(f.code for f in findings)
    by_variable = Counter(f.variable for f in findings if f.variable and f.instance_id is not None)
    instances_with = len(
        {f.instance_id for f in findings if f.instance_id is not None and f.severity == "error"}
    )
    stats = {
        "instances": count,
        "instances_with_findings": instances_with,
        "findings": len(findings),
        "by_code": dict(sorted(by_code.items())),
        "by_variable": dict(by_variable.most_common()),
        "seconds": round(elapsed, 3),
        "instances_per_second": round(count / elapsed, 1) if elapsed > 0 else None,
    }
    valid = not any(f.severity == "error" for f in findings)
    return ValidationResult(valid=valid, stats=stats, findings=tuple(findings))


def validate(
    input_path: Path,
    form_path: Path,
    *,
    media_dir: Path | None = None,
    today: date | None = None,
    tz: tzinfo = UTC,
    progress: Callable[[int], None] | None = None,
    method: str = "auto",
) -> ValidationResult:
    """Validate the submissions in `input_path` against the form in `form_path`.

    Parameters:
        input_path: a folder of instance XMLs (e.g. `migkit decrypt` output), a zip of them, one XML, an ODK
            Central CSV export (zip or unpacked folder), or a DATA folder written by `migkit ingest`.
        form_path: the XLSForm (.xlsx/.xls/.md) or compiled XForm (.xml).
        media_dir: folder of the form's attachments; default the form's `<form>-media/` folder or its own
            folder.
        today: the date today() returns (default: each submission's interview day, from its `today` or
            `start` field; the current date for submissions without either).
        tz: the devices' time zone.
        progress: called with the number of submissions done so far.
        method: "auto", "columns" or "instances" (see `validate_input`).
    """
    if not input_path.exists():
        raise ToolkitError(
            error(
                INPUT_MISSING, "The submissions input does not exist; check the path.", file=str(input_path)
            )
        )
    model = load_form(form_path)
    form = compile_form(model, media_dir=media_dir)
    return validate_input(form, input_path, today=today, tz=tz, progress=progress, method=method)


def validate_input(
    form: CompiledForm,
    input_path: Path,
    *,
    today: date | None = None,
    tz: tzinfo = UTC,
    progress: Callable[[int], None] | None = None,
    method: str = "auto",
) -> ValidationResult:
    """Validate one input (see `validate`) against a compiled form.

    Parameters:
        method: "columns" evaluates each rule once per column over all submissions (the ingest tables; raises
            when the form has an expression that needs the per-instance path), "instances" walks one instance
            tree at a time, "auto" takes columns when the form allows and falls back to instances otherwise.
    """
    from toolkit.validate.columns import NotVectorizable, validate_columns

    started = time.perf_counter()
    model = form.model
    tables = _tables_input(input_path, model)
    from_xml = tables is None
    if method != "instances" and not _needs_instances(form):
        if tables is None:
            tables = ingest.ingest([input_path], model)
        try:
            findings, count, per_instance, asked = validate_columns(form, tables, today=today, tz=tz)
        except NotVectorizable:
            if method == "columns":
                raise
        else:
            carried = [
                _finding_from_issue(model, i)
                for i in tables.issues
                if i.code in _CARRIED
            ]
            invalid = {(f.instance_id, f.path) for f in carried if f.code == TYPE_INVALID}
            kept = [
                f
                for f in findings
                if not (
                    f.code == REQUIRED_MISSING
                    and ((f.instance_id, f.path) in invalid or (f.source, f.path) in invalid)
                )
            ]
            if from_xml:
                kept = _mark_absent(form, kept, input_path)
            if progress is not None:
                progress(count)
            result = _result([*form.problems, *carried, *kept], count, time.perf_counter() - started)
            result.stats["method"] = "columns"
            # The expressions evaluated per instance (kind, node path, why), the others ran by column.
            result.stats["per_instance"] = [f"{kind} of {path}: {reason}" for kind, path, reason in per_instance]
            return replace(_with_input_issues(result, tables.issues), asked=asked)
    if tables is None:
        result = validate_submissions(
            form, iter_instance_files(input_path), today=today, tz=tz, progress=progress
        )
    else:
        carried = [
            _finding_from_issue(model, i)
            for i in tables.issues
            if i.code in _CARRIED
        ]
        inner = validate_submissions(
            form,
            trees_from_tables(form, tables),
            today=today,
            tz=tz,
            progress=progress,
            check_duplicates=False,
        )
        result = _result([*carried, *inner.findings], inner.stats["instances"], time.perf_counter() - started)
        result = _with_input_issues(result, tables.issues)
    result.stats["method"] = "instances"
    return result


def _mark_absent(form: CompiledForm, findings: list[Finding], input_path: Path) -> list[Finding]:
    """Mark the `required_missing` findings of the column path whose node is missing from the submission XML.

    The tables do not keep whether an empty answer was an empty element or no element at all, so the few
    submissions with such findings are read again.
    """
    wanted = {f.instance_id for f in findings if f.code == REQUIRED_MISSING and f.instance_id}
    if not wanted:
        return findings
    present: dict[str, set[str]] = {}
    for _, data in iter_instance_files(input_path):
        if not any(instance_id.encode() in data for instance_id in wanted):
            continue
        try:
            root = instance_tree(form, data)
        except (etree.XMLSyntaxError, ValueError):
            continue
        instance_id = _instance_id(root)
        if instance_id in wanted:
            present[instance_id] = {xnode.path() for xnode, _ in _iter_nodes(root, form.model.root)}
    marked = []
    for finding in findings:
        paths = present.get(finding.instance_id or "")
        if finding.code == REQUIRED_MISSING and paths is not None and finding.path not in paths:
            node = form.model.nodes[re.sub(r"\[\d+\]", "", finding.path)]
            marked.append(replace(finding, message=required_finding(node, absent=True)[1], absent=True))
        else:
            marked.append(finding)
    return marked


def _with_input_issues(result: ValidationResult, issues: Iterable[Issue]) -> ValidationResult:
    """Keep what ingest reported about the input (skipped files, other forms, unknown fields) in `issues`."""
    kept = tuple(i for i in issues if i.code not in _CARRIED)
    return ValidationResult(result.valid, result.stats, result.findings, (*result.issues, *kept))


def _needs_instances(form: CompiledForm) -> bool:
    return form.needs_fixpoint


def _tables_input(input_path: Path, model: FormModel) -> IngestResult | None:
    """The tables when the input is a DATA folder (tables.json) or an ODK Central CSV export; None for XML."""
    if input_path.is_dir() and DataFolder.exists(input_path):
        return ingest.read_tables(input_path)
    central = False
    if input_path.is_file() and zipfile.is_zipfile(input_path):
        with zipfile.ZipFile(input_path) as archive:
            central = any(n.rsplit("/", 1)[-1] == f"{model.form_id}.csv" for n in archive.namelist())
    elif input_path.is_dir():
        central = (input_path / f"{model.form_id}.csv").is_file()
    return ingest.ingest([input_path], model) if central else None


# What ingest reports about submissions that validate reports as findings: a file that cannot be read is a
# submission that was not checked, so the input is not valid.
_CARRIED = (TYPE_INVALID, DUPLICATE_INSTANCE, INPUT_UNREADABLE)


def _finding_from_issue(model: FormModel, issue: Issue) -> Finding:
    where = issue.location
    path = where.path or (f"{model.root}/meta/instanceID" if issue.code == DUPLICATE_INSTANCE else "")
    return Finding(
        where.instance,
        path,
        INSTANCE_UNREADABLE if issue.code == INPUT_UNREADABLE else issue.code,
        None if issue.value is None else str(issue.value),
        where.expression,
        issue.message,
        str(issue.severity),
        where.variable,
        where.file,
    )


__all__ = [
    "CompiledForm",
    "Finding",
    "ValidationResult",
    "compile_form",
    "instance_tree",
    "iter_instance_files",
    "validate",
    "validate_input",
    "validate_submissions",
    "validate_tree",
    "wrap_calculated",
]
