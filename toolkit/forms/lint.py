"""`migkit forms lint`: static checks of skip logic and export readiness that pyxform does not make.

The XLSForm is read by `toolkit.forms.sheets` (pyxform's own sheet readers and header parser, spreadsheet row
numbers kept). Expressions are parsed into typed syntax trees (toolkit.xpath.syntax.parse_xlsform) and the rules
walk those trees.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Required, TypedDict

from pyxform import aliases, constants
from pyxform.errors import PyXFormError
from pyxform.xls2xform import convert

from toolkit import settings
from toolkit.errors import (
    Issue,
    Location,
    Severity,
    define,
)
from toolkit.forms.sheets import Choice, Element, SheetForm, read_form
from toolkit.report import Report
from toolkit.xlsform import PYXFORM_VERSION, issue_from_pyxform
from toolkit.xpath.syntax import (
    Binary,
    Call,
    Expr,
    Filter,
    Negate,
    Number,
    Reference,
    Step,
    String,
    XPathSyntaxError,
    children,
    is_context,
    parse_xlsform,
    unparse,
    walk,
)
from toolkit.xpath.syntax import Node as SyntaxNode

LINT_SELECT_MULTIPLE_EQUALS = define(
    "lint.select_multiple_equals", "A select_multiple is compared with = or != instead of selected()"
)
LINT_CHOICE_UNKNOWN = define("lint.choice_unknown", "A literal compared with a select is not a choice name of its list")
LINT_FORWARD_REFERENCE = define(
    "lint.forward_reference", "A relevant or constraint refers to a question that comes later in the form"
)
LINT_TYPE_MISMATCH = define(
    "lint.type_mismatch", "A numeric question is compared with text, or a text question with a number"
)
LINT_REPEAT_REFERENCE = define(
    "lint.repeat_reference",
    "A reference to a field of a repeat the row is not inside, without indexed-repeat()",
)
LINT_NAME_TOO_LONG = define("lint.name_too_long", "An exported variable name is longer than Stata allows")
LINT_NAME_TOO_LONG_WIDE = define(
    "lint.name_too_long_wide", "A variable name is too long for Stata once wide repeat suffixes are added"
)
LINT_NAME_INVALID = define(
    "lint.name_invalid",
    "An exported variable name is not a plain ASCII letter followed by letters, digits or _",
)
LINT_NAME_CASE_COLLISION = define(
    "lint.name_case_collision", "Two exported variables of one table have the same name ignoring case (SPSS)"
)
LINT_RESERVED_WORD = define("lint.reserved_word", "A variable name is an SPSS or Stata reserved word")
LINT_CHOICE_NOT_INTEGER = define(
    "lint.choice_not_integer",
    "A choice name of a coded list is not an integer (value labels need integer codes)",
)
LINT_CHOICE_DUPLICATE_NAME = define("lint.choice_duplicate_name", "Two choices of one list have the same name/code")
LINT_CHOICE_DUPLICATE_LABEL = define("lint.choice_duplicate_label", "Two choices of one list have the same label")
LINT_LIST_UNUSED = define("lint.list_unused", "A choice list is not used by any question")
LINT_TRANSLATION_MISSING = define("lint.translation_missing", "A text is missing in one of the form's languages")
LINT_NO_PUBLIC_KEY = define(
    "lint.no_public_key", "The form has no public_key: submissions are not encrypted on the device"
)
LINT_EXPRESSION_INVALID = define("lint.expression_invalid", "An expression cannot be parsed")
LINT_FORM_INVALID = define("lint.form_invalid", "pyxform rejects the form structure (e.g. unbalanced groups)")
LINT_CALCULATION_CYCLE = define(
    "lint.calculation_cycle", "Calculations depend on each other in a loop (ODK Collect refuses the form)"
)

# pyxform's canonical header tokens for the columns lint reads (after its alias handling).
_EXPRESSION_COLUMNS: dict[tuple[str, ...], str] = {
    ("bind", "relevant"): "relevant",
    ("bind", "constraint"): "constraint",
    ("bind", "required"): "required",
    ("bind", "calculate"): "calculation",
    ("choice_filter",): "choice_filter",
    ("control", "jr:count"): "repeat_count",
}
# The survey columns of the two messages, named as the XLSForm spec names them.
_MESSAGE_COLUMNS: dict[tuple[str, ...], str] = {
    ("bind", "jr:constraintMsg"): "constraint_message",
    ("bind", "jr:requiredMsg"): "required_message",
}
# Families of translatable columns: pyxform tokens without the language part.
_TRANSLATABLE_FAMILIES: dict[str, frozenset[tuple[str, ...]]] = {
    "survey": frozenset(
        {
            ("label",),
            ("hint",),
            ("guidance_hint",),
            ("media", "image"),
            ("media", "big-image"),
            ("media", "audio"),
            ("media", "video"),
            ("bind", "jr:constraintMsg"),
            ("bind", "jr:requiredMsg"),
        }
    ),
    "choices": frozenset(
        {("label",), ("media", "image"), ("media", "big-image"), ("media", "audio"), ("media", "video")}
    ),
}
# Functions that take a whole node-set, so a reference to every instance of a repeated field is meant.
_NODESET_FUNCTIONS = frozenset({"count", "sum", "min", "max", "join", "count-non-empty", "distinct-values"})
_INTEGER_NAME = re.compile(r"-?[0-9]+")
_EXPORT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Stata accepts a leading underscore (its own temporary names use it); SPSS does not.
_STATA_ONLY_NAME = re.compile(r"_[A-Za-z0-9_]*[A-Za-z0-9][A-Za-z0-9_]*")
# In the body of a `begin loop`, pyxform replaces %(name)s, %(label)s ... with each choice's columns before
# anything reads the expression: they are neither choice names nor references.
_LOOP_PLACEHOLDER = re.compile(r"%\([A-Za-z_][A-Za-z0-9_:]*\)s")
# Rules of export readiness that `migkit export` resolves by itself (renaming, recoding text codes): warnings
# for any form, errors under the house rules of migkit's own templates (`--profile ncamig`) or `--strict`.
POLICY_CODES = frozenset(
    {
        "lint.choice_not_integer",
        "lint.name_too_long",
        "lint.name_too_long_wide",
        "lint.name_invalid",
        "lint.name_case_collision",
        "lint.reserved_word",
    }
)
PROFILES = ("ncamig",)


# --- Rules on expressions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expression:
    element: Element
    column: str  # the header as written in the sheet
    role: str  # relevant, constraint, required, calculation, choice_filter, repeat_count
    text: str
    tree: Expr
    # '.' inside a predicate is the node the predicate filters: the question of ${q}[...] or an unknown node.
    in_predicates: dict[int, Element | None] = field(default_factory=dict)


def _predicate_contexts(
    node: SyntaxNode,
    by_name: dict[str, Element],
    out: dict[int, Element | None],
    owner: tuple[Element | None] | None = None,
) -> dict[int, Element | None]:
    """Map each '.' that sits inside a predicate (by node id) to the element the predicate filters."""
    if is_context(node) and owner is not None:
        out[id(node)] = owner[0]
    match node:
        case Filter(base=base, predicates=predicates):
            _predicate_contexts(base, by_name, out, owner)
            filtered = by_name.get(base.name) if isinstance(base, Reference) else None
            for predicate in predicates:
                _predicate_contexts(predicate, by_name, out, (filtered,))
        case Step(predicates=predicates):
            for predicate in predicates:
                _predicate_contexts(predicate, by_name, out, (None,))
        case _:
            for child in children(node):
                _predicate_contexts(child, by_name, out, owner)
    return out


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value else None  # noqa: PLR0124 - NaN is not a number here


class _Where(TypedDict, total=False):
    """Where a finding points: the location keywords of `_Linter.add`."""

    sheet: Required[str]
    row: Required[int | None]
    column: str | None
    variable: str | None
    expression: str | None


def _at(expr: _Expression, variable: str | None) -> _Where:
    """Location fields of a finding about an expression."""
    return {
        "sheet": "survey",
        "row": expr.element.row,
        "column": expr.column,
        "variable": variable,
        "expression": expr.text,
    }


def _walk_with_calls(
    node: SyntaxNode, calls: tuple[tuple[str, int], ...] = ()
) -> Iterable[tuple[SyntaxNode, tuple[tuple[str, int], ...]]]:
    """Every node with the (function, argument index) pairs it sits inside, innermost last."""
    yield node, calls
    for index, child in enumerate(children(node)):
        inner = (*calls, (node.name, index)) if isinstance(node, Call) else calls
        yield from _walk_with_calls(child, inner)


class _Linter:
    def __init__(self, form: SheetForm, *, per_choice: bool = True) -> None:
        self.form = form
        self.per_choice = per_choice  # one choice_not_integer per choice (house rules) or one per list
        self.issues: list[Issue] = []
        self.expressions: list[_Expression] = []
        self.calculations: dict[str | None, Expr] | None = None  # calculation tree by question name, built lazily
        self.answers: dict[str, Element | None] = {}  # answered_by() of each calculation

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        *,
        sheet: str,
        row: int | None,
        column: str | None = None,
        variable: str | None = None,
        expression: str | None = None,
    ) -> None:

        self.issues.append(
            Issue(
                code,
                severity,
                message,
                Location(
                    file=self.form.source,
                    sheet=sheet,
                    row=row,
                    column=column,
                    variable=variable,
                    expression=expression,
                ),
            )
        )

    # -- parsing --------------------------------------------------------------------------------------------

    def parse_expressions(self) -> None:
        for element in self.form.elements:
            for header, tokens in self.form.survey.columns.items():
                role = _EXPRESSION_COLUMNS.get(tokens)
                text = element.cells.get(header)
                if role is None or not text:
                    continue
                if role == "required" and text in aliases.yes_no:
                    continue
                try:
                    tree = parse_xlsform(text)
                except XPathSyntaxError as exc:
                    if _LOOP_PLACEHOLDER.search(text):
                        continue  # a loop body: the expression only exists once pyxform fills it in
                    self.add(
                        LINT_EXPRESSION_INVALID,
                        Severity.ERROR,
                        f"The {role} of {element.name or 'this row'} does not parse at character "
                        f"{exc.position + 1}: {exc}. Fix the XPath syntax (quotes, parentheses, ${{name}}).",
                        sheet="survey",
                        row=element.row,
                        column=header,
                        variable=element.name,
                        expression=text,
                    )
                    continue
                contexts = _predicate_contexts(tree, self.form.by_name, {})
                self.expressions.append(_Expression(element, header, role, text, tree, contexts))

    # -- helpers --------------------------------------------------------------------------------------------

    def resolve(self, node: SyntaxNode, expr: _Expression) -> Element | None:
        if isinstance(node, Reference) and not node.name.startswith("last-saved#"):
            return self.form.by_name.get(node.name)
        if is_context(node):
            if id(node) in expr.in_predicates:
                return expr.in_predicates[id(node)]
            if expr.role not in {"choice_filter", "repeat_count"} and expr.element.kind == "question":
                return expr.element
        return None

    @staticmethod
    def literal(node: SyntaxNode) -> str | float | None:
        match node:
            case String(value=text):
                return text
            case Number(value=number):
                return number
            case Negate(operand=Number(value=number)):
                return -number
        return None

    def choice_names(self, element: Element) -> set[str]:
        names = {c.name for c in self.form.lists.get(element.list_name or "", []) if c.name}
        if element.or_other:
            names.add("other")
        return names

    @staticmethod
    def show(node: SyntaxNode, element: Element | None) -> str:
        if is_context(node):
            return f". ({element.name})" if element is not None else "."
        if element is not None:
            return f"${{{element.name}}}"
        return node.name if isinstance(node, Reference) else unparse(node)

    def comparisons(self, expr: _Expression) -> Iterable[tuple[Binary, SyntaxNode, SyntaxNode]]:
        """(comparison, question side, other side) for every comparison with a question on one side."""
        for node in walk(expr.tree):
            if isinstance(node, Binary) and node.op in {"=", "!=", "<", ">", "<=", ">="}:
                left, right = node.left, node.right
                if self.resolve(left, expr) is not None:
                    yield node, left, right
                if self.resolve(right, expr) is not None:
                    yield node, right, left

    # -- the rules ------------------------------------------------------------------------------------------

    def check_comparisons(self, expr: _Expression) -> None:
        for comparison, side, other in self.comparisons(expr):
            question = self.resolve(side, expr)
            assert question is not None
            literal = self.literal(other)
            if literal is None or literal == "":
                continue  # `!= ''` asks whether the question was answered; fine for every type
            shown = self.show(side, question)
            lit_text = f"'{literal}'" if isinstance(literal, str) else f"{literal:g}"
            where = _at(expr, question.name)
            if comparison.op in {"=", "!="} and question.value_type == "select_multiple":
                code = literal if isinstance(literal, str) else f"{literal:g}"
                ref = "." if is_context(side) else f"${{{question.name}}}"
                fix = f"selected({ref}, '{code}')"
                if comparison.op == "!=":
                    fix = f"not({fix})"
                self.add(
                    LINT_SELECT_MULTIPLE_EQUALS,
                    Severity.ERROR,
                    f"{shown} is a select_multiple, so '{comparison.op}' compares the whole "
                    "space-separated "
                    f"answer with {lit_text} and is wrong once two choices are ticked. Use {fix} instead.",
                    **where,
                )
                if question.coded:  # the fix compares choice names as text, so check the name as text
                    self.check_choice(expr, question, shown, code.strip(), where)
                continue
            if comparison.op in {"=", "!="} and question.coded:
                self.check_choice(expr, question, shown, literal, where)
            if expr.role in {"relevant", "constraint"}:
                self.check_type(expr, question, shown, literal, where)

    def check_choice(
        self, expr: _Expression, question: Element, shown: str, literal: str | float, where: _Where
    ) -> None:
        names = self.choice_names(question)
        if question.list_name not in self.form.lists:
            return  # pyxform reports the missing list (lint.form_invalid)
        if isinstance(literal, str) and _LOOP_PLACEHOLDER.search(literal):
            return
        # XPath compares a number with the answer converted to a number, a string with the answer as text
        known = literal in names if isinstance(literal, str) else any(_number(n) == literal for n in names)
        if not known:
            lit_text = f"'{literal}'" if isinstance(literal, str) else f"{literal:g}"
            listed = ", ".join(sorted(names, key=lambda n: (_number(n) is None, _number(n) or 0, n))[:12])
            self.add(
                LINT_CHOICE_UNKNOWN,
                Severity.ERROR,
                f"The {expr.role} compares {shown} with {lit_text}, which is not a choice name of list "
                f"'{question.list_name}' (names: {listed}{', ...' if len(names) > 12 else ''}), so it can "
                "never match. Use one of the list's names, or add the choice.",
                **where,
            )

    def check_type(self, expr: _Expression, question: Element, shown: str, literal: str | float, where: _Where) -> None:
        if question.value_type == "numeric" and isinstance(literal, str) and _number(literal) is None:
            self.add(
                LINT_TYPE_MISMATCH,
                Severity.ERROR,
                f"{shown} is a number question but the {expr.role} compares it with the text '{literal}', "
                "which XPath turns into NaN, so the comparison is always false (or always true with !=). "
                "Compare with a number.",
                **where,
            )
        elif question.value_type == "text" and not isinstance(literal, str):
            self.add(
                LINT_TYPE_MISMATCH,
                Severity.ERROR,
                f"{shown} is a text question but the {expr.role} compares it with the number {literal:g}, "
                "which converts the answer to a number (NaN for anything but digits). Quote the value: "
                f"'{literal:g}'.",
                **where,
            )

    def check_selected_calls(self, expr: _Expression) -> None:
        for node in walk(expr.tree):
            if not isinstance(node, Call) or node.name not in {"selected", "selected-at"} or not node.args:
                continue
            question = self.resolve(node.args[0], expr)
            if question is None or not question.coded:
                continue
            shown = self.show(node.args[0], question)
            where = _at(expr, question.name)
            if node.name == "selected" and len(node.args) == 2:
                literal = self.literal(node.args[1])
                if isinstance(literal, float):
                    literal = f"{literal:g}"
                if literal and literal.strip():
                    self.check_choice(expr, question, shown, literal.strip(), where)

    def check_selected_at_comparisons(self, expr: _Expression) -> None:
        for node in walk(expr.tree):
            if not isinstance(node, Binary) or node.op not in {"=", "!="}:
                continue
            for side, other in ((node.left, node.right), (node.right, node.left)):
                if isinstance(side, Call) and side.name == "selected-at" and side.args:
                    question = self.resolve(side.args[0], expr)
                    literal = self.literal(other)
                    if question is not None and question.coded and literal not in (None, ""):
                        where = _at(expr, question.name)
                        self.check_choice(expr, question, self.show(side.args[0], question), literal, where)

    def check_references(self, expr: _Expression) -> None:
        element = expr.element
        context_repeats = element.repeats
        if expr.role == "repeat_count" and element.kind == "begin_repeat":
            context_repeats = element.repeats[:-1]  # the count is evaluated outside the repeat it sizes
        source_repeats: tuple[str, ...] | None = None
        if expr.role == "choice_filter" and element.list_source == "repeat":
            source = self.form.by_name.get((element.list_name or "")[2:-1])
            source_repeats = source.repeats if source else None
        reported: set[tuple[str, str]] = set()
        for node, calls in _walk_with_calls(expr.tree):
            if not isinstance(node, Reference) or node.name.startswith("last-saved#"):
                continue
            target = self.form.by_name.get(node.name)
            if target is None:
                continue  # pyxform reports unknown names (lint.form_invalid)
            where = _at(expr, node.name)
            answer = self.answered_by(target)
            if (
                expr.role in {"relevant", "constraint"}
                and answer is not None
                and answer.row > element.row
                and element not in (target, answer)
                and ("forward", node.name) not in reported
            ):
                reported.add(("forward", node.name))
                what = (
                    f"which is asked later (row {answer.row})"
                    if answer is target
                    else f"a calculation that uses ${{{answer.name}}}, asked later (row {answer.row})"
                )
                self.add(
                    LINT_FORWARD_REFERENCE,
                    Severity.ERROR,
                    f"The {expr.role} of {element.name or 'this row'} (row {element.row}) refers to "
                    f"${{{node.name}}}, {what}, so it is still empty when this is evaluated. Move the "
                    "question "
                    "before this row, or change the logic.",
                    **where,
                )
            target_repeats = target.repeats
            if context_repeats[: len(target_repeats)] == target_repeats:
                continue  # same repeat instance or an ancestor: one value
            if target_repeats == source_repeats:
                continue  # a choice_filter over a repeat-sourced list filters that repeat's own rows
            if any(f in _NODESET_FUNCTIONS or (f == "indexed-repeat" and (i == 0 or i % 2 == 1)) for f, i in calls):
                continue
            if ("repeat", node.name) in reported:
                continue
            reported.add(("repeat", node.name))
            outer = next(
                r for i, r in enumerate(target_repeats) if i >= len(context_repeats) or context_repeats[i] != r
            )
            inside = f"inside repeat {context_repeats[-1]}" if context_repeats else "outside every repeat"
            self.add(
                LINT_REPEAT_REFERENCE,
                Severity.ERROR,
                f"The {expr.role} of {element.name or 'this row'} ({inside}) refers to ${{{node.name}}} in "
                f"repeat {outer}, which has one value per {outer} entry: ODK Collect stops with 'This field "
                "is "
                f"repeated' once there are two. Use indexed-repeat(${{{node.name}}}, ${{{outer}}}, n) to "
                "pick "
                "one entry, or an aggregate such as count() or sum().",
                **where,
            )

    def check_calculation_cycles(self) -> None:
        """Calculations that depend on themselves, directly or through other calculations. JavaRosa refuses
        such a form when it loads it ("Cycle detected"), which is how `migkit forms build` (ODK Validate)
        reports it; lint names the loop."""
        uses: dict[str, list[str]] = {}
        where: dict[str, _Expression] = {}
        # With a trigger, pyxform writes the calculation as a setvalue action run when the trigger changes, not as
        # a calculate bind: it may read its own question (the usual "default unless answered" pattern).
        triggers = [header for header, tokens in self.form.survey.columns.items() if tokens == ("trigger",)]
        for expr in self.expressions:
            name = expr.element.name
            if expr.role != "calculation" or not name or any(expr.element.cells.get(h) for h in triggers):
                continue
            refs = (
                n.name for n in walk(expr.tree) if isinstance(n, Reference) and not n.name.startswith("last-saved#")
            )
            uses[name] = list(dict.fromkeys(refs))
            where[name] = expr
        state: dict[str, bool] = {}  # True while on the current path, False when finished
        reported: set[frozenset[str]] = set()
        for start, inputs in uses.items():
            if start in state:
                continue
            state[start] = True
            path = [start]
            stack = [iter(inputs)]
            while stack:
                following = next((r for r in stack[-1] if r in uses), None)
                if following is None:
                    state[path.pop()] = False
                    stack.pop()
                elif state.get(following) is True:
                    loop = path[path.index(following) :]
                    if frozenset(loop) not in reported:
                        reported.add(frozenset(loop))
                        self.report_cycle([*loop, following], where)
                elif following not in state:
                    state[following] = True
                    path.append(following)
                    stack.append(iter(uses[following]))

    def report_cycle(self, loop: list[str], where: dict[str, _Expression]) -> None:
        first = min(loop[:-1], key=lambda name: where[name].element.row)
        turn = loop.index(first)
        ordered = [*loop[turn:-1], *loop[:turn], first]
        expr = where[first]
        chain = " -> ".join(f"${{{name}}} (row {where[name].element.row})" for name in ordered)
        self.add(
            LINT_CALCULATION_CYCLE,
            Severity.ERROR,
            f"The calculation of {first} depends on itself: {chain}. ODK Collect refuses the form ('Cycle "
            "detected'); compute one of them from answered questions instead.",
            **_at(expr, first),
        )

    def answered_by(self, target: Element, seen: frozenset[str] = frozenset()) -> Element | None:
        """The last-asked question a value depends on.

        That is the question itself, or for a calculation the latest question among its inputs (ODK recomputes
        calculations wherever they sit); None for preloaded metadata such as today.
        """
        if target.answered or target.kind != "question":
            return target
        if target.name is None or target.name in seen:
            return None
        if target.name in self.answers:
            return self.answers[target.name]
        latest: Element | None = None
        if self.calculations is None:
            self.calculations = {e.element.name: e.tree for e in self.expressions if e.role == "calculation"}
        tree = self.calculations.get(target.name)
        if tree is not None:
            for node in walk(tree):
                dependency = self.form.by_name.get(node.name) if isinstance(node, Reference) else None
                if dependency is None or dependency is target:
                    continue
                answer = self.answered_by(dependency, seen | {target.name})
                if answer is not None and (latest is None or answer.row > latest.row):
                    latest = answer
        self.answers[target.name] = latest
        return latest

    def lists_named_in_expressions(self) -> set[str]:
        named: set[str] = set()
        for expr in self.expressions:
            for node in walk(expr.tree):
                match node:
                    case Call(name="instance", args=(String(value=name), *_)):
                        named.add(name)
        return named

    # -- export names ---------------------------------------------------------------------------------------

    def export_variables(self, element: Element) -> list[tuple[str, bool]]:
        """The columns an export makes of a question: (name, carries value labels)."""

        name = element.name
        if element.kind != "question" or not name:
            return []
        if element.value_type == "select_multiple":
            dummies = (
                [
                    (f"{name}{settings.SELECT_MULTIPLE_DUMMY_SEPARATOR}{c.name}", True)
                    for c in self.form.lists.get(element.list_name or "", [])
                    if c.name
                ]
                if element.coded
                else []
            )
            return [(name, False), *dummies]
        if element.value_type == "geopoint":
            return [(name, False), *((name + suffix, False) for suffix in settings.GEOPOINT_EXPORT_SUFFIXES)]
        return [(name, element.coded)]

    def check_names(self) -> None:  # noqa: PLR0912
        name_col = self.form.survey.header("name")
        by_table: dict[str, dict[str, list[tuple[str, Element]]]] = {}
        for element in self.form.elements:
            variables = self.export_variables(element)
            if not variables:
                continue
            where: _Where = {"sheet": "survey", "row": element.row, "column": name_col, "variable": element.name}
            for variable, _ in variables:
                if not _EXPORT_NAME.fullmatch(variable):
                    what = "" if variable == element.name else f" (the export column {variable})"
                    where_invalid = (
                        "in SPSS, which needs a letter first (Stata accepts a leading _)"
                        if _STATA_ONLY_NAME.fullmatch(variable)
                        else "in SPSS and Stata"
                    )
                    self.add(
                        LINT_NAME_INVALID,
                        Severity.ERROR,
                        f"The name {variable!r}{what} is not valid {where_invalid}: use ASCII letters, "
                        "digits and _, starting with a letter.",
                        **where,
                    )
                    break
            for variable, _ in variables:
                spss = variable.upper() in settings.SPSS_RESERVED_WORDS
                stata = variable in settings.STATA_RESERVED_NAMES
                if spss or stata:
                    system = " and ".join(s for s, hit in (("SPSS", spss), ("Stata", stata)) if hit)
                    self.add(
                        LINT_RESERVED_WORD,
                        Severity.ERROR,
                        f"{variable!r} is a reserved word in {system}; the export cannot use it as a "
                        "variable "
                        "name. Rename the question (e.g. with its module prefix).",
                        **where,
                    )
            too_long = [(v, lab) for v, lab in variables if len(v) > _name_limit(lab)]
            if too_long:
                variable, labelled = max(too_long, key=lambda item: len(item[0]))
                limit = _name_limit(labelled)
                why = (
                    f"a labelled variable may have at most {limit} characters (pyreadstat adds a label-set number)"
                    if labelled
                    else f"Stata allows {limit} characters"
                )
                more = f" and {len(too_long) - 1} more" if len(too_long) > 1 else ""
                self.add(
                    LINT_NAME_TOO_LONG,
                    Severity.ERROR,
                    f"The export variable {variable} ({len(variable)} characters){more} is too long: {why}. "
                    f"Shorten {element.name} by at least {len(variable) - limit} characters.",
                    **where,
                )
            elif element.repeats:
                extra = settings.WIDE_REPEAT_SUFFIX_CHARS * len(element.repeats)
                wide = [(v, lab) for v, lab in variables if len(v) + extra > _name_limit(lab)]
                if wide:
                    variable, labelled = max(wide, key=lambda item: len(item[0]))
                    self.add(
                        LINT_NAME_TOO_LONG_WIDE,
                        Severity.WARNING,
                        f"{variable} is inside {len(element.repeats)} repeat(s); a wide export adds up to "
                        f"{extra} characters (_<entry> per repeat, entries up to 99), giving "
                        f"{len(variable) + extra} > {_name_limit(labelled)}. The long (KEY/PARENT_KEY) "
                        "export "
                        f"is fine; shorten {element.name} if you need wide files.",
                        **where,
                    )
            table = by_table.setdefault(element.repeats[-1] if element.repeats else "", {})
            for variable, _ in variables:
                table.setdefault(variable.lower(), []).append((variable, element))
        for table_name, names in by_table.items():
            for entries in names.values():
                first_variable, first = entries[0]
                for variable, element in entries[1:]:
                    if element is first:
                        continue  # two dummies of one select_multiple: its duplicate choice is reported
                    rule = (
                        "the same name as {first}; a table cannot hold two variables of one name"
                        if variable == first_variable
                        else "a name that differs only in case from {first}; SPSS names are unique without "
                        "regard to case"
                    ).format(first=f"{first_variable} (from {first.name}, row {first.row})")
                    in_table = f"repeat {table_name}" if table_name else "the main table"
                    self.add(
                        LINT_NAME_CASE_COLLISION,
                        Severity.ERROR,
                        f"The export variable {variable} (from {element.name}) in {in_table} has {rule}. "
                        "Rename one of them (export otherwise renames the second).",
                        sheet="survey",
                        row=element.row,
                        column=self.form.survey.header("name"),
                        variable=element.name,
                    )

    # -- choice lists ---------------------------------------------------------------------------------------

    def check_choices(self) -> None:  # noqa: PLR0912
        choices = self.form.choices
        if choices is None:
            return
        name_col = choices.header("name")
        list_col = choices.header(constants.LIST_NAME_S)
        code_col = choices.header(settings.CHOICE_NUMERIC_CODE_COLUMN)
        users: dict[str, list[Element]] = {}
        for element in self.form.elements:
            if element.list_source == "choices" and element.list_name:
                users.setdefault(element.list_name, []).append(element)
        named = self.lists_named_in_expressions()
        allow_duplicates = aliases.yes_no.get(self.setting("allow_choice_duplicates") or "no", False)
        label_cols = [h for h, t in choices.columns.items() if t[0] == "label"]
        filter_columns = self.filter_columns(users)
        for list_name, items in self.form.lists.items():
            coded = [e for e in users.get(list_name, []) if e.coded]
            if list_name not in users and list_name not in named:
                self.add(
                    LINT_LIST_UNUSED,
                    Severity.WARNING,
                    f"The choice list '{list_name}' ({len(items)} choices) is not used by any question or "
                    "instance() expression. Delete it or use it.",
                    sheet="choices",
                    row=items[0].row,
                    column=list_col,
                )
            if coded:
                self.check_codes(list_name, items, coded[0], name_col, code_col)
            seen: dict[str, Choice] = {}
            for item in items:
                if item.name is None:
                    continue
                first = seen.get(item.name)
                if first is None:
                    seen[item.name] = item
                elif not allow_duplicates:
                    self.add(
                        LINT_CHOICE_DUPLICATE_NAME,
                        Severity.ERROR,
                        f"The choice name '{item.name}' appears twice in list '{list_name}' (rows "
                        f"{first.row} "
                        f"and {item.row}); answers and value labels cannot tell them apart. Give each choice "
                        "its own name.",
                        sheet="choices",
                        row=item.row,
                        column=name_col,
                    )
            columns = filter_columns.get(list_name)
            for header in label_cols:
                labels: dict[tuple[str, ...], Choice] = {}
                for item in items:
                    text = item.cells.get(header)
                    if not text or columns == ():
                        continue
                    # A filtered list shows only the choices of one parent at a time: the same label under
                    # two parents (a district name in two regions) is never on one screen.
                    parent = tuple(item.cells.get(c) or "" for c in columns or ())
                    key = (" ".join(text.casefold().split()), *parent)
                    first = labels.setdefault(key, item)
                    if first is not item:
                        self.add(
                            LINT_CHOICE_DUPLICATE_LABEL,
                            Severity.WARNING,
                            f"Choices '{first.name}' (row {first.row}) and '{item.name}' of list "
                            f"'{list_name}' "
                            f"have the same {header} {text!r}; enumerators and tables cannot tell them "
                            "apart. "
                            "Reword one of the labels.",
                            sheet="choices",
                            row=item.row,
                            column=header,
                        )

    def filter_columns(self, users: dict[str, list[Element]]) -> dict[str, tuple[str, ...]]:
        """Per list shown through a choice_filter, the choices columns its filters read (empty tuple when
        they read none that lint can tell, e.g. a filter on the position)."""
        choices = self.form.choices
        assert choices is not None
        filter_col = self.form.survey.header("choice_filter")
        candidates = [
            h for h, t in choices.columns.items() if t[0] not in {"label", "media", "name", constants.LIST_NAME_S}
        ]
        found: dict[str, tuple[str, ...]] = {}
        for list_name, elements in users.items():
            filters = [e.cells.get(filter_col or "") or "" for e in elements]
            if not filters or not all(filters):
                continue  # some question shows the whole list
            read = sorted({c for c in candidates for f in filters if re.search(rf"(?<![$\w{{]){re.escape(c)}\b", f)})
            found[list_name] = tuple(read)
        return found

    def check_codes(
        self, list_name: str, items: list[Choice], user: Element, name_col: str | None, code_col: str | None
    ) -> None:
        """Value labels need integer codes: the choice names, or the numeric-code column if names are not."""

        def as_code(text: str | None) -> int | None:
            if text is None or not _INTEGER_NAME.fullmatch(text):
                return None
            value = int(text)
            return value if abs(value) <= settings.STATA_VALUE_LABEL_KEY_MAX else None

        names_are_codes = all(as_code(item.name) is not None for item in items if item.name is not None)
        use_code_col = not names_are_codes and code_col is not None
        codes: dict[int, Choice] = {}
        not_integer: list[Choice] = []
        for item in items:
            if item.name is None:
                continue
            # With a code column, a choice without a code there (98 don't know) keeps its integer name.
            text = item.cells.get(code_col or "") if use_code_col else None
            column = code_col if text else name_col
            code = as_code(text or item.name)
            if code is None and not self.per_choice:
                not_integer.append(item)
                continue
            if code is None:
                where_code = (
                    f"its {code_col} value {text!r} is not"
                    if text
                    else (f"it has no {code_col} value, and its name is not" if use_code_col else "it is not")
                )
                self.add(
                    LINT_CHOICE_NOT_INTEGER,
                    Severity.ERROR,
                    f"Choice '{item.name}' of list '{list_name}' (used by {user.value_type} {user.name}, "
                    f"row {user.row}): {where_code} an integer, and SPSS/Stata value labels need integer "
                    f"codes. Use numeric names (1..n, {settings.CHOICE_OTHER} other, "
                    f"{settings.CHOICE_DONT_KNOW} "
                    f"don't know, {settings.CHOICE_REFUSED} refused) or give every choice an integer "
                    f"{settings.CHOICE_NUMERIC_CODE_COLUMN} column.",
                    sheet="choices",
                    row=item.row,
                    column=code_col if use_code_col else name_col,
                )
                continue
            first = codes.setdefault(code, item)
            if first is not item and first.name != item.name:
                self.add(
                    LINT_CHOICE_DUPLICATE_NAME,
                    Severity.ERROR,
                    f"Choices '{first.name}' (row {first.row}) and '{item.name}' of list '{list_name}' both "
                    f"become the value-label code {code}. Give each choice its own code.",
                    sheet="choices",
                    row=item.row,
                    column=column,
                )
        if not_integer:
            shown = ", ".join(f"'{item.name}'" for item in not_integer[:3])
            more = f" and {len(not_integer) - 3} more" if len(not_integer) > 3 else ""
            self.add(
                LINT_CHOICE_NOT_INTEGER,
                Severity.WARNING,
                f"List '{list_name}' (used by {user.value_type} {user.name}, row {user.row}) has choice names "
                f"that are not integers ({shown}{more}); export gives them codes 1..n in list order for the "
                f"SPSS/Stata value labels. For codes of your own, give every choice an integer "
                f"{settings.CHOICE_NUMERIC_CODE_COLUMN} column.",
                sheet="choices",
                row=not_integer[0].row,
                column=code_col if use_code_col else name_col,
            )
        if user.or_other:
            self.add(
                LINT_CHOICE_NOT_INTEGER,
                Severity.ERROR,
                f"{user.name} uses 'or_other', which adds the choice name 'other' (not an integer code). "
                f"Add a choice {settings.CHOICE_OTHER} and a {user.name}_oth text question instead.",
                sheet="survey",
                row=user.row,
                column=self.form.survey.header("type"),
                variable=user.name,
            )

    # -- translations, settings -----------------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        sheet = self.form.settings
        if sheet is None or not sheet.rows:
            return None
        header = sheet.header(key)
        return sheet.rows[0][1].get(header) if header else None

    def languages(self) -> list[str]:
        found: set[str] = set()
        for sheet in (self.form.survey, self.form.choices):
            if sheet is None:
                continue
            for tokens in sheet.columns.values():
                if tokens[:-1] in _TRANSLATABLE_FAMILIES[sheet.name]:
                    found.add(tokens[-1])
        return sorted(found)

    def check_translations(self, languages: list[str]) -> None:  # noqa: PLR0912
        if not languages:
            return
        default = self.setting("default_language")
        for sheet in (self.form.survey, self.form.choices):
            if sheet is None:
                continue
            for family in sorted(_TRANSLATABLE_FAMILIES[sheet.name]):
                by_language: dict[str | None, str] = {}
                for header, tokens in sheet.columns.items():
                    if tokens[:-1] == family:
                        by_language[tokens[-1]] = header
                    elif tokens == family:  # no language: pyxform files it under default_language or "default"
                        by_language[default if default in languages else None] = header
                if not by_language:
                    continue
                shown = _MESSAGE_COLUMNS.get(family, family[-1])
                absent_rows: dict[str, list[int]] = {}
                for row_no, cells in sheet.rows:
                    present = [lang for lang, h in by_language.items() if cells.get(h)]
                    if not present:
                        continue
                    have = ", ".join(lang or "the column without a language" for lang in present)
                    for lang in languages:
                        if lang in present:
                            continue
                        if lang not in by_language:
                            absent_rows.setdefault(lang, []).append(row_no)
                            continue
                        self.add(
                            LINT_TRANSLATION_MISSING,
                            Severity.WARNING,
                            f"This row has a {shown} in {have} but none in {lang}; ODK Collect shows nothing "
                            f"(or '-') in {lang}. Add the {lang} text.",
                            sheet=sheet.name,
                            row=row_no,
                            column=by_language[lang],
                            variable=cells.get(sheet.header("name") or ""),
                        )
                for lang, rows in absent_rows.items():
                    self.add(
                        LINT_TRANSLATION_MISSING,
                        Severity.WARNING,
                        f"The {sheet.name} sheet has no column {shown}::{lang}, but {len(rows)} row(s) have "
                        "a "
                        f"{shown} in other languages (first: row {rows[0]}). Add the column and translate "
                        "them.",
                        sheet=sheet.name,
                        row=1,
                        column=f"{shown}::{lang}",
                    )

    def check_public_key(self) -> None:
        if not self.setting("public_key"):
            self.add(
                LINT_NO_PUBLIC_KEY,
                Severity.WARNING,
                "The settings sheet has no public_key, so ODK Collect stores and sends submissions "
                "unencrypted. Before fieldwork, create a key pair with `migkit keys new` and set the public "
                "key with `migkit keys attach` (or paste its one-line base64 into a public_key column).",
                sheet="settings",
                row=2 if self.form.settings is not None else None,
                column="public_key",
            )


def _name_limit(labelled: bool) -> int:
    return settings.STATA_LABELLED_NAME_MAX_CHARS if labelled else settings.STATA_NAME_MAX_CHARS


_COLUMN_IN_MESSAGE = re.compile(r"the '([^']+)' (?:value|column)", re.IGNORECASE)


# pyxform's error for duplicate choice names; lint reports them itself, with rows (choice_duplicate_name).
_PYXFORM_DUPLICATE_CHOICES = "Choice names must be unique"


def _structure_issues(form: SheetForm, data: Any) -> list[Issue]:
    """Compile with pyxform (no ODK Validate) and turn its error into lint.form_invalid.

    pyxform stops at its first error. When that is the duplicate-choice check, which lint reports row by row,
    the compile is repeated with allow_choice_duplicates so that structure errors behind it still show.
    """
    workbook = {f.name: getattr(data, f.name) for f in dataclass_fields(data)}
    for attempt in range(2):
        try:
            convert(xlsform=copy.deepcopy(workbook), warnings=[], validate=False)
        except Exception as exc:  # PyXFormError, and plain exceptions on malformed input
            if _PYXFORM_DUPLICATE_CHOICES in str(exc) and attempt == 0:
                settings_row = {**(workbook.get("settings") or [{}])[0], "allow_choice_duplicates": "yes"}
                workbook["settings"] = [settings_row]
                workbook["settings_header"] = [dict.fromkeys(settings_row)]
                continue
            issue = issue_from_pyxform(str(exc), form.source, Severity.ERROR, LINT_FORM_INVALID)
            column = _COLUMN_IN_MESSAGE.search(str(exc))
            text = issue.message if isinstance(exc, PyXFormError) else f"{type(exc).__name__}: {exc}"
            where = Location(
                file=form.source,
                sheet=issue.location.sheet,
                row=issue.location.row,
                column=column.group(1) if column else None,
            )
            return [Issue(LINT_FORM_INVALID, Severity.ERROR, f"pyxform rejects the form: {text}", where)]
        return []
    return []


_SHEET_ORDER = {"survey": 0, "choices": 1, "settings": 2}


def _with_policy(issue: Issue, *, profile: str | None, strict: bool) -> Issue:
    """The issue with the severity the profile gives it (see `lint_form`)."""
    if strict:
        severity = Severity.ERROR
    elif issue.code in POLICY_CODES:
        severity = Severity.ERROR if profile == "ncamig" else Severity.WARNING
    else:
        return issue
    return issue if issue.severity == severity else replace(issue, severity=severity)


def lint_form(
    path: str | os.PathLike[str], *, structure: bool = True, profile: str | None = None, strict: bool = False
) -> Report:
    """Check an XLSForm's skip logic and export readiness beyond what pyxform checks.

    Parameters:
        path: the XLSForm (.xlsx, .xls, .md or .csv).
        structure: also compile with pyxform (no ODK Validate) and report its error as lint.form_invalid.
        profile: "ncamig" applies the house rules of migkit's templates: the export-readiness rules that export
            otherwise resolves itself (POLICY_CODES) are errors. Without a profile they are warnings, so that
            a sound form written elsewhere passes.
        strict: every finding is an error.

    Returns a Report whose issues carry file, sheet, spreadsheet row (header = row 1), column, variable and
    expression. Raises ToolkitError (exit 3) when the file is missing or is not an XLSForm at all.
    """
    form, data = read_form(Path(path))
    linter = _Linter(form, per_choice=strict or profile == "ncamig")
    linter.parse_expressions()
    for expr in linter.expressions:
        linter.check_comparisons(expr)
        linter.check_selected_calls(expr)
        linter.check_selected_at_comparisons(expr)
        linter.check_references(expr)
    linter.check_calculation_cycles()
    linter.check_names()
    linter.check_choices()
    languages = linter.languages()
    linter.check_translations(languages)
    linter.check_public_key()
    issues = sorted(linter.issues, key=lambda i: (_SHEET_ORDER.get(i.location.sheet or "", 3), i.location.row or 0))
    if structure:
        issues = _structure_issues(form, data) + issues
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown lint profile {profile!r}; known: {', '.join(PROFILES)}")
    issues = [_with_policy(issue, profile=profile, strict=strict) for issue in issues]
    stats = {
        "file": form.source,
        "questions": sum(e.kind == "question" for e in form.elements),
        "groups": sum(e.kind == "begin_group" for e in form.elements),
        "repeats": sum(e.kind == "begin_repeat" for e in form.elements),
        "choice_lists": len(form.lists),
        "languages": languages,
        "expressions": len(linter.expressions),
        "errors": sum(i.severity == Severity.ERROR for i in issues),
        "warnings": sum(i.severity == Severity.WARNING for i in issues),
        "pyxform_version": PYXFORM_VERSION,
    }
    return Report.from_issues(issues, stats)
