"""Faults planted on purpose (`migkit simulate --errors RATE`), with the answer key validation is scored against.

Each planted fault makes exactly one finding of `migkit validate`, so that the key (instance_id, path, code)
is what a correct validator reports, no more and no fewer. The rules that make it so:

- a fault is planted only in a field that no other expression of the form reads (relevance, constraints,
  calculations, choice filters, repeat counts, required): changing it cannot change any other node's verdict;
- `nonrelevant_answered`: a value valid for the question's type (a choice of its list) in a field the skip
  logic made non-relevant (its constraint is not checked there, as in Collect);
- `required_missing`: the answer of a relevant, required question removed;
- `constraint_violated`: a number one past a literal bound of its constraint (`. <= 110` gives 111; the
  don't know / refused codes are never used);
- `choice_unknown`: a code that is not in the select_one's list (one above its largest numeric code);
- `calculate_mismatch`: a stored calculation changed (a number plus one, a text with `_edited`); calculations
  with volatile functions (uuid(), now(), random(), once()) are never edited;
- `duplicate_instance`: the whole submission written a second time (folder `<uuid>-copy`), plain output only.

At most one fault per submission; a submission gets one with probability RATE, of a kind drawn evenly among
those its answers allow. Each planted value is confirmed with the validator's per-instance path before it is
kept (a candidate that would make another finding is not used).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from toolkit.checks.rules import (
    CALCULATE_MISMATCH,
    CHOICE_UNKNOWN,
    CONSTRAINT_VIOLATED,
    DUPLICATE_INSTANCE,
    NONRELEVANT_ANSWERED,
    REQUIRED_MISSING,
)
from toolkit.settings import NUMERIC_DONT_KNOW, NUMERIC_REFUSED
from toolkit.xform import FormModel, Node
from toolkit.xpath import VOLATILE_FUNCTIONS, XNode, XPathError, compile_xpath

FAULT_CODES = (
    NONRELEVANT_ANSWERED,
    REQUIRED_MISSING,
    CONSTRAINT_VIOLATED,
    CHOICE_UNKNOWN,
    CALCULATE_MISMATCH,
    DUPLICATE_INSTANCE,
)
# Question types whose answers can be planted or removed (metadata such as start/end/deviceid are not).
_ANSWER_TYPES = frozenset({"text", "integer", "decimal", "select_one", "select_multiple", "date"})
# `. <= 110`, `. > 0`: a literal bound of the answer.
_LITERAL_BOUND = re.compile(r"(?<![\w/.])\.\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)(?![\w.])")
_WORD = re.compile(r"[A-Za-z_][\w.-]*")


@dataclass(frozen=True)
class PlantedFault:
    """One row of the answer key: the finding `migkit validate` must report."""

    instance_id: str
    path: str
    code: str


@dataclass(frozen=True)
class Candidate:
    """A planted value: `text` (None to remove the answer) written into `node`, expected to give `code`."""

    code: str
    node: XNode
    spec: Node
    text: str | None


def unread_fields(form: FormModel) -> frozenset[str]:
    """Paths of the form's fields that no expression of another node reads (safe places for a fault)."""
    read: set[str] = set()
    names = {node.name: path for path, node in form.nodes.items()}
    for path, node in form.nodes.items():
        for expression in (
            node.relevant,
            node.required,
            node.constraint,
            node.calculate,
            node.readonly,
            node.repeat_count,
            node.choice_filter,
            node.itemset,
        ):
            if not expression:
                continue
            try:
                found = compile_xpath(expression).dependencies(path)
            except (XPathError, ValueError):
                found = None
            if found is None:  # not known statically: every name the text mentions counts as read
                found = frozenset(names[w] for w in _WORD.findall(expression) if w in names)
            read |= found - {path}
    return frozenset(p for p, n in form.nodes.items() if n.kind == "field" and p not in read)


def _volatile(spec: Node) -> bool:
    try:
        return bool(compile_xpath(spec.calculate or "").functions & VOLATILE_FUNCTIONS)
    except (XPathError, ValueError):
        return True


def _valid_answer(form: FormModel, spec: Node, day: date) -> str | None:
    """A value of the question's type that its list accepts (for a field that must stay unanswered)."""
    qtype = spec.question_type
    if qtype in {"select_one", "select_multiple"}:
        if (
            spec.choice_source not in (None, "list")
            or spec.choice_filter
            or spec.choice_list is None
            or spec.choice_list not in form.choice_lists
        ):
            return None
        names = [n for n in form.choice_lists[spec.choice_list].names if n]
        return names[0] if names else None
    return {"text": "planted", "integer": "1", "decimal": "1.5", "date": day.isoformat()}.get(qtype)


def _out_of_range(spec: Node) -> list[str]:
    """Numbers just past the literal bounds of the constraint, never a don't know / refused code."""
    values = []
    sentinels = {float(NUMERIC_DONT_KNOW), float(NUMERIC_REFUSED)}
    for op, literal in _LITERAL_BOUND.findall(spec.constraint or ""):
        bound = float(literal)
        # Just outside: `. <= b` gives b + 1, `. < b` gives b, `. >= b` gives b - 1, `. > b` gives b.
        value = {"<=": bound + 1, "<": bound, ">=": bound - 1, ">": bound}[op]
        if bound in sentinels or value in sentinels:
            continue
        values.append(str(int(value)) if spec.data_type == "int" or value.is_integer() else repr(value))
    return values


def _unknown_choice(form: FormModel, spec: Node) -> str | None:
    if (
        spec.choice_source not in (None, "list")
        or spec.choice_list is None
        or spec.choice_list not in form.choice_lists
    ):
        return None
    names = [n for n in form.choice_lists[spec.choice_list].names if n]
    numeric = [int(n) for n in names if n.lstrip("-").isdigit()]
    return str(max(numeric) + 1) if numeric else "planted_unknown"


def _edited(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return text + "_edited"
    return str(int(number) + 1) if number.is_integer() else repr(number + 1)


def candidates(  # noqa: PLR0912
    form: FormModel,
    unread: frozenset[str],
    visited: Iterable[tuple[XNode, Node, bool]],
    day: date,
) -> dict[str, list[Candidate]]:
    """Faults that could be planted in one instance, by finding code.

    Parameters:
        form: the form model.
        unread: `unread_fields(form)`.
        visited: every field of the instance with its spec and whether it was relevant.
        day: the interview day (a planted date).
    """
    found: dict[str, list[Candidate]] = {}

    def add(code: str, node: XNode, spec: Node, text: str | None) -> None:
        found.setdefault(code, []).append(Candidate(code, node, spec, text))

    for node, spec, relevant in visited:
        if spec.path not in unread or spec.readonly:
            continue
        if spec.calculate is not None:
            if relevant and node.text and not _volatile(spec):
                add(CALCULATE_MISMATCH, node, spec, _edited(node.text))
            continue
        if spec.question_type not in _ANSWER_TYPES:
            continue
        if not relevant:
            if not node.text:
                value = _valid_answer(form, spec, day)
                if value is not None:
                    add(NONRELEVANT_ANSWERED, node, spec, value)
            continue
        if not node.text:
            continue
        if spec.required:
            add(REQUIRED_MISSING, node, spec, None)
        if spec.question_type in {"integer", "decimal"} and spec.constraint:
            for value in _out_of_range(spec):
                add(CONSTRAINT_VIOLATED, node, spec, value)
        if spec.question_type == "select_one" and not spec.constraint:
            value = _unknown_choice(form, spec)
            if value is not None:
                add(CHOICE_UNKNOWN, node, spec, value)
    return found


def key_rows(faults: Iterable[PlantedFault]) -> list[Mapping[str, str]]:
    """The answer key as CSV rows (instance_id, path, code), sorted."""
    return [
        {"instance_id": f.instance_id, "path": f.path, "code": f.code}
        for f in sorted(faults, key=lambda f: (f.instance_id, f.path, f.code))
    ]


__all__ = ["FAULT_CODES", "Candidate", "PlantedFault", "candidates", "key_rows", "unread_fields"]
