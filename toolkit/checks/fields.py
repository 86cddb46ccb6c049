"""The checks on one field of the form, written once and run by two evaluators.

`check_field` decides, for a field's nodes, which rules of the catalogue (`toolkit.checks.rules`) they break and in
what order, as JavaRosa does when it finalises an instance: relevance first (an answer where the question is not
relevant), then the stored calculation, the required answer, the choice list, the choice filter or the pick from
a repeat, and the constraint, each only on relevant nodes, and the last three only on answers that are there.

An evaluator is a `FieldBackend`: the per-instance one looks at one node of one submission (its masks are
`bool`), the column one at one column of every submission (its masks are numpy arrays, a row per node). The
backend evaluates the form's expressions and reports the findings; what is checked where is decided here.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from toolkit.checks.rules import (
    CALCULATION_EDITED,
    CONSTRAINT,
    FILTERED_OUT,
    HARD_STOP,
    NONRELEVANT,
    NOT_A_ROW,
    NOT_IN_LIST,
    REQUIRED_ABSENT,
    REQUIRED_EMPTY,
    Rule,
)
from toolkit.xform import Node
from toolkit.xpath import parse_datetime
from toolkit.xpath.values import DATE_TEXT, DATETIME_TEXT, DECIMAL_RE, INT_TEXT, TIME_TEXT

if TYPE_CHECKING:
    from toolkit.checks.compiled import BindRules

Mask = TypeVar("Mask")

# JavaRosa's lexical forms of the bind types (IntegerData, DecimalData, DateData, TimeData, DateTimeData).
_INT_RE = re.compile(rf"^\s*{INT_TEXT}\s*$")
_DEC_RE = DECIMAL_RE
_DATE_RE = re.compile(rf"^{DATE_TEXT}$")
_TIME_RE = re.compile(rf"^{TIME_TEXT}$")
_DATETIME_RE = re.compile(rf"^{DATETIME_TEXT}$")
# Select types whose value is a space-separated list of choices.
MULTIPLE_SELECTS = frozenset({"select_multiple", "rank"})


class FieldBackend(Protocol[Mask]):
    """One field of the form over the nodes an evaluator looks at together (one node, or one column)."""

    def relevant(self) -> Mask:
        """Nodes whose relevance holds, inherited from their groups and repeat instances."""

    def answered(self) -> Mask:
        """Nodes with a stored value (for a calculation, the value as stored, before it is recomputed)."""

    def unreadable(self) -> Mask:
        """Nodes whose value does not parse as the field's type (checked neither as required nor further)."""

    def absent(self) -> Mask:
        """Nodes missing from the submission (Collect left them out), not merely empty."""

    def both(self, first: Mask, second: Mask) -> Mask: ...

    def without(self, first: Mask, second: Mask) -> Mask: ...

    def none(self, mask: Mask) -> bool: ...

    def holds(self, kind: str, where: Mask) -> Mask:
        """Where the field's `kind` expression ("required", "constraint", "membership") holds, evaluated on the
        nodes of `where` (elsewhere: unspecified). A constraint and a membership read the answer as `.`. Where the
        expression fails, a required does not hold and the others do, as in JavaRosa."""

    def calculation_differs(self, where: Mask) -> tuple[Mask, Any]:
        """Nodes of `where` whose stored value differs from the recomputed one, and the recomputed values."""

    def unknown_choices(self, where: Mask, allowed: frozenset[str]) -> tuple[Mask, Any]:
        """Nodes of `where` with a value not in `allowed`, and those values."""

    def filter_rejects(self, where: Mask) -> tuple[Mask, Any]:
        """Nodes of `where` with a value the choice filter does not offer there, and those values."""

    def report(
        self,
        rule: Rule,
        where: Mask,
        *,
        expression: str | None,
        stored: bool = True,
        absent: bool = False,
        **fields: Any,
    ) -> None:
        """A finding of `rule` on each node of `where`, with the stored value (unless `stored` is false), marked
        `absent` or not, and the message fields; a field may hold one value per node, as the methods above return
        them."""


def check_field(rules: BindRules, field: FieldBackend[Mask]) -> None:
    """Report what the field's nodes break, in the order JavaRosa checks it (see the module's docstring)."""
    node = rules.node
    relevant, answered = field.relevant(), field.answered()
    field.report(NONRELEVANT, field.without(answered, relevant), expression=rules.relevance_chain)
    if field.none(relevant):
        return
    if rules.compares_calculation:
        edited, computed = field.calculation_differs(relevant)
        field.report(CALCULATION_EDITED, edited, expression=node.calculate, computed=computed)
    checkable = field.without(relevant, field.unreadable())
    if rules.required is not None:
        empty = field.without(checkable, answered)
        if not field.none(empty):
            _report_required(rules, field, field.both(empty, field.holds("required", empty)))
    live = field.both(checkable, answered)
    if field.none(live):
        return
    if rules.choices is not None:
        unknown, values = field.unknown_choices(live, rules.choices)
        field.report(
            NOT_IN_LIST, unknown, expression=node.itemset, unknown=values, choice_list=node.choice_list
        )
        if rules.itemset is not None:
            outside, values = field.filter_rejects(field.without(live, unknown))
            field.report(
                FILTERED_OUT,
                outside,
                expression=node.choice_filter,
                outside=values,
                choice_list=node.choice_list,
                choice_filter=node.choice_filter,
            )
    elif rules.membership is not None:
        outside = field.without(live, field.holds("membership", live))
        field.report(NOT_A_ROW, outside, expression=node.itemset, itemset=node.itemset)
    if rules.constraint is not None:
        broken = field.without(live, field.holds("constraint", live))
        field.report(CONSTRAINT, broken, expression=node.constraint, constraint=node.constraint)


def _report_required(rules: BindRules, field: FieldBackend[Mask], missing: Mask) -> None:
    node = rules.node
    expression = node.required
    if node.question_type == "note":
        field.report(
            HARD_STOP,
            missing,
            expression=expression,
            stored=False,
            condition=node.relevant or "it is shown",
        )
        return
    absent = field.absent()
    what = "acknowledgement" if node.question_type == "acknowledge" else "question"
    field.report(
        REQUIRED_ABSENT, field.both(missing, absent), expression=expression, stored=False, absent=True, what=what
    )
    field.report(REQUIRED_EMPTY, field.without(missing, absent), expression=expression, stored=False)


def unknown_values(text: str, allowed: frozenset[str], question_type: str | None) -> str:
    """The values of a select answer that are not in `allowed`, space-separated ("" when all are)."""
    values = text.split() if question_type in MULTIPLE_SELECTS else [text.strip()]
    return " ".join(v for v in values if v not in allowed)


def type_ok(text: str, node: Node) -> bool:  # noqa: PLR0911 (one return per JavaRosa type rule)
    """Whether a non-empty value parses as the node's bind type, as JavaRosa loads it."""
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


def same_value(stored: str, computed: str, dtype: str | None) -> bool:
    """Whether a stored calculation is the recomputed value (numbers, booleans and dateTimes compared as such)."""
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
        pa, pb = parse_datetime(a), parse_datetime(b)
        return pa is not None and pa == pb
    return False
