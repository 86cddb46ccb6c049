"""Synthetic submissions that follow a form's skip logic, for benchmarks, tests and the example survey.

Each instance is filled the way an enumerator moves through ODK Collect: nodes in document order; a node
whose `relevant` is false (or that sits in a non-relevant group) stays empty; every relevant question gets a
plausible value for its type (a choice of its list, honouring choice filters; numbers inside the bounds its
constraint states; don't know / refused sentinels at a small rate), checked against its constraint with the
shared XPath evaluator and redrawn when the constraint fails; repeats get `repeat_count` instances, or 1-12
(household-size-like) without one; calculations are computed with the evaluator, once in order and again at
the end (Collect recomputes on save). Instances are written as `<out>/<uuid>/submission.xml`, the layout
`migkit decrypt` writes, or encrypted the way Collect does (`toolkit.crypto.encrypt_submission`). A seed makes
the output reproducible: instance i draws from its own generator seeded by (seed, i), whatever the number of
worker processes. An answers file (`load_answers`) sets how often chosen questions get each answer, so that
training data can look like a real survey (about one person in eight abroad, not one in two).

Only interviews ODK Collect could finalise are written: an instance that reaches a relevant required note (a
hard stop), leaves a relevant required question empty, or in which the validator finds anything, is drawn again
(`generator.Generator.instance`). Text questions with a `regex()` constraint get strings that match it
(`regex.matching_string`). With `errors`, faults are planted on purpose with an answer key (`faults`).

Modules: `answers` (the answers file), `generator` (one instance), `regex` (strings for regex() constraints),
`faults` (planted errors and their key), `write` (folders, encryption, the process pool).
"""

from toolkit.simulate.answers import AnswerRule, ChoiceRule, DateRule, NumberRule, load_answers
from toolkit.simulate.generator import generate_instances
from toolkit.simulate.write import SimulateResult, simulate

__all__ = [
    "AnswerRule",
    "ChoiceRule",
    "DateRule",
    "NumberRule",
    "SimulateResult",
    "generate_instances",
    "load_answers",
    "simulate",
]

