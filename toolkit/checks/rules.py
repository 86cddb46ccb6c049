"""The rule catalogue: every check `migkit validate` makes, once, with its code, severity and message.

A `Rule` names the code a finding carries, its severity and the message template; the comment above each rule
says which behaviour of JavaRosa (the engine of ODK Collect) it mirrors. Findings are made in one place,
`finding()`, from a rule, where it happened and the value found there, whichever evaluator found it (the
per-instance one in `toolkit.checks.instance`, the column one in `toolkit.validate.columns`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolkit.errors import Issue, Location, Severity, define
from toolkit.report import Report

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


@dataclass(frozen=True)
class Rule:
    """One check: the code of its findings, their severity and the message template.

    The template's fields are `{name}` (the question), `{value}` (the value found, "" when there is none) and
    the fields the evaluator passes for that rule (named in the rule's comment).
    """

    code: str
    template: str
    severity: str = "error"

    def message(self, **fields: Any) -> str:
        return self.template.format(**fields)


# --- the answers of one submission -------------------------------------------------------------------------

# Collect leaves non-relevant nodes out of a submission (FormEntryModel skips them, the serialiser drops them),
# so an answer there was entered or edited after the interview.
NONRELEVANT = Rule(
    NONRELEVANT_ANSWERED, "{name}: answered ({value!r}) but not relevant, so Collect would not have kept it."
)
# Collect recomputes every calculation when it opens and saves an instance; a stored value that differs was
# edited. Field: `computed`, the value recomputed from the answers.
CALCULATION_EDITED = Rule(CALCULATE_MISMATCH, "{name}: stored {value!r} but the calculation gives {computed!r}.")
# JavaRosa refuses to finalise an instance with a relevant, required, empty question.
REQUIRED_EMPTY = Rule(REQUIRED_MISSING, "{name}: required and relevant, but empty.")
# A node missing from the submission was left out by Collect because it was not relevant when the form was
# saved; JavaRosa reads it so and passes it, migkit reports it because the answers now make it relevant
# (typically after an edit). Field: `what`, "question" or "acknowledgement".
REQUIRED_ABSENT = Rule(
    REQUIRED_MISSING,
    "{name}: required and relevant, but absent from the submission (Collect leaves out only questions that are "
    "not relevant, so an answer its relevance reads was probably changed after the interview); this {what} "
    "needs an answer or its relevance inputs need checking.",
)
# A required note never has a value: when it is relevant Collect stops there, so forms use it as a hard stop on
# inconsistent answers. Field: `condition`, the note's relevance.
HARD_STOP = Rule(
    HARD_STOP_REACHED,
    "{name}: a required note is relevant here, so Collect could not have finalised this submission (the form "
    "uses it as a hard stop when {condition}); check the answers its condition reads.",
)
# JavaRosa checks a constraint on relevant, non-empty answers only. Field: `constraint`.
CONSTRAINT = Rule(CONSTRAINT_VIOLATED, "{name}: {value!r} breaks the constraint {constraint}.")
# JavaRosa cannot load a value that does not parse as its bind type; the rules then see an empty answer.
# Field: `type`.
TYPE = Rule(TYPE_INVALID, "{name}: {value!r} is not a valid {type}; it is read as empty.")
# Collect offers only the list's choices; a value outside it was edited after the interview. Fields: `unknown`
# (the values not in the list), `choice_list`.
NOT_IN_LIST = Rule(CHOICE_UNKNOWN, "{name}: {unknown!r} is not in the choice list {choice_list!r}.")
# Collect offers only the choices the choice_filter lets through for the answers given. Fields: `outside`,
# `choice_list`, `choice_filter`.
FILTERED_OUT = Rule(
    CHOICE_UNKNOWN,
    "{name}: {outside!r} is in the list {choice_list!r} but not among the choices its filter ({choice_filter}) "
    "allows here.",
)
# A select_one from a repeat (`select_one ${hl_pick}`): Collect offers the values of the rows its filter allows.
# Field: `itemset`.
NOT_A_ROW = Rule(
    CHOICE_UNKNOWN,
    "{name}: {value!r} is not the value of any row of the repeat it is chosen from ({itemset}): the answer or "
    "that row was changed after the interview; check both against the paper or the enumerator.",
)
# An expression JavaRosa would fail on too (a date that does not parse, a division of strings): reported once
# per node and kind, and the rule is taken as holding. Fields: `kind`, `error`.
EXPRESSION_FAILS = Rule(
    EXPRESSION_ERROR, "{name}: the {kind} expression fails on this submission: {error}", "warning"
)

# The rules on the answers that both evaluators run (`toolkit.checks.fields.check_field`, the expression failures
# of both); TYPE is checked by the per-instance evaluator itself and by ingest for the column one.
ANSWER_RULES = (
    NONRELEVANT,
    CALCULATION_EDITED,
    REQUIRED_EMPTY,
    REQUIRED_ABSENT,
    HARD_STOP,
    CONSTRAINT,
    NOT_IN_LIST,
    FILTERED_OUT,
    NOT_A_ROW,
    EXPRESSION_FAILS,
)

# --- the form itself ----------------------------------------------------------------------------------------

# Fields of both: `kind` (relevant, required, constraint, calculation, choice filter, repeat choices).
FUNCTION_UNSUPPORTED = Rule(
    EXPRESSION_UNSUPPORTED,
    "{name}: the {kind} expression uses {function}(), which migkit cannot evaluate; this rule is not checked.",
    "warning",
)
EXPRESSION_UNPARSED = Rule(
    EXPRESSION_UNSUPPORTED,
    "{name}: the {kind} expression does not parse ({error}); this rule is not checked.",
    "warning",
)
ATTACHMENT_MISSING = Rule(
    EXPRESSION_UNSUPPORTED,
    "The attachment {filename} (secondary instance '{instance}') was not found; pass its folder with --media. "
    "Questions and expressions that read it are not checked.",
    "warning",
)
ATTACHMENT_UNREADABLE = Rule(EXPRESSION_UNSUPPORTED, "The attachment {filename} cannot be read ({error}).", "warning")

# --- the submission files -----------------------------------------------------------------------------------

# Fields of the three: `source` (the file).
UNREADABLE = Rule(INSTANCE_UNREADABLE, "{source}: not a readable instance ({error}).")
OTHER_FORM = Rule(
    INSTANCE_OTHER_FORM, "{source}: the root element is <{found}>, the form's is <{root}>; use the matching form."
)
# ODK Central keeps one submission per instanceID. Fields: `first` (the file seen first), `same` ("identical to"
# or "different from").
DUPLICATE = Rule(
    DUPLICATE_INSTANCE, "{source}: instanceID {value} was already seen in {first} ({same} it); keep one."
)


def required_rule(question_type: str | None, *, absent: bool) -> Rule:
    """The rule a relevant, required node without a value breaks: a note is a hard stop, a node missing from the
    submission is reported apart from an empty one."""
    if question_type == "note":
        return HARD_STOP
    return REQUIRED_ABSENT if absent else REQUIRED_EMPTY


# --- findings -------------------------------------------------------------------------------------------------


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
class Where:
    """Where a finding is: the submission (instanceID, source file, enumerator), the node and its question."""

    instance_id: str | None
    path: str
    variable: str | None = None
    source: str | None = None
    enumerator: str | None = None


def finding(
    rule: Rule, where: Where, value: str | None, *, expression: str | None = None, absent: bool = False, **fields: Any
) -> Finding:
    """The finding of `rule` at `where` on `value` (None or "" when there is none); `fields` fill the message.

    Parameters:
        rule: the rule broken.
        where: the submission and node.
        value: the value found there.
        expression: the form's expression that decided (relevance, constraint, calculation...).
        absent: the node is missing from the submission.
        fields: the message template's own fields (see the rule).
    """
    return Finding(
        where.instance_id,
        where.path,
        rule.code,
        value or None,
        expression,
        rule.message(name=where.variable, value=value or "", **fields),
        rule.severity,
        where.variable,
        where.source,
        where.enumerator,
        absent,
    )


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


def summarise(findings: list[Finding], count: int, elapsed: float) -> ValidationResult:
    """The result of a run over `count` submissions that took `elapsed` seconds."""
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
