"""How often simulated answers are given: the answers file (`migkit simulate --answers`) and its rules."""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.config import line_numbers
from toolkit.errors import EXIT_USAGE, INPUT_UNREADABLE, ToolkitError, define, error
from toolkit.xform import FormModel, Node

ANSWERS_INVALID = define("simulate.answers_invalid", "The answers file asks for something the form cannot give")



@dataclass(frozen=True)
class ChoiceRule:
    """For a select_one: relative weights of its choices; for a select_multiple: the chance (0-100 %) that each
    choice is ticked (an answer that would tick none is drawn again). Choices not named are not drawn while the rule
    applies (see RULE_DRAW_SHARE)."""

    weights: Mapping[str, float]


@dataclass(frozen=True)
class NumberRule:
    """A distribution for an integer or decimal question, truncated to [minimum, maximum] and to the bounds its
    constraint states (values outside are drawn again): "normal" (mean, sd), "lognormal" (median, spread = sd of
    the logarithm; amounts of money) or "uniform" (minimum..maximum)."""

    distribution: str
    centre: float = 0.0  # mean (normal) or median (lognormal)
    spread: float = 0.0  # sd (normal) or sd of the logarithm (lognormal)
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class DateRule:
    """For a date question: a day drawn evenly from `fewest` to `most` days before the interview ("in the last 3
    months": days_before = [0, 92])."""

    fewest: int
    most: int


AnswerRule = ChoiceRule | NumberRule | DateRule
# A rule is tried for the first half of a question's draws; if its values keep failing the constraint (it depends
# on other answers), the usual draw takes over, so that a profile can never leave a question unanswerable.
RULE_DRAW_SHARE = 0.5
# A lognormal spread (sd of the logarithm) of 3 already puts 1 draw in 1,000 at e^9 times the median.
MAX_LOG_SPREAD = 3.0
MAX_DAYS_BEFORE = 36_500  # a date rule reaches back at most a century
TRUNCATION_DRAWS = 20
_NUMBER_KEYS = {
    "normal": {"mean", "sd"},
    "lognormal": {"median", "spread"},
    "uniform": {"min", "max"},
}


def load_answers(path: Path, form: FormModel) -> dict[str, AnswerRule]:
    """Read an answers file (TOML): how often the simulated enumerators give each answer, per question name.

        [hl_abroad_now]                 # select_one: relative weights of the choices (names from the form)
        choices = { "1" = 12, "2" = 88 }
        [ru_use]                        # select_multiple: chance in % that each choice is ticked
        choices = { "1" = 80, "3" = 35, "5" = 20 }
        [ab_remit_amt]                  # numbers: normal (mean, sd), lognormal (median, spread) or uniform
        distribution = "lognormal"
        median = 2500
        spread = 0.8
        min = 0
        [rs_date]                       # dates: a day between these many days before the interview
        days_before = [0, 92]

    Questions without a rule keep the default draws. Every problem of the file is reported at once, each with its
    question and the fix.

    Parameters:
        path: the TOML file.
        form: the form the answers are for (names and choice lists are checked against it).
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"Cannot read the answers file: {exc}.", file=str(path)), EXIT_USAGE
        ) from None
    lines = line_numbers(text)
    by_name: dict[str, Node] = {}
    for node in form.nodes.values():
        if node.kind == "field":
            by_name.setdefault(node.name, node)
    rules: dict[str, AnswerRule] = {}

    def problem(name: str, message: str) -> ToolkitError:
        where = {"file": str(path), "variable": name, "line": lines.get((name,))}
        return ToolkitError(error(ANSWERS_INVALID, f"[{name}]: {message}", **where), EXIT_USAGE)

    refused: list[ToolkitError] = []  # every problem of the file at once, so that one run shows all fixes
    for name, spec in data.items():
        try:
            rules[name] = _rule(name, spec, by_name, form, problem)
        except ToolkitError as exc:
            refused.append(exc)
    if refused:
        # every problem with its own line, as the other configuration files (toolkit.config)
        raise ToolkitError.of([exc.issue for exc in refused], EXIT_USAGE)
    return rules


def _rule(name: str, spec: Any, by_name: Mapping[str, Node], form: FormModel, problem: Callable) -> AnswerRule:
    node = by_name.get(name)
    if node is None:
        close = difflib.get_close_matches(name, list(by_name), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise problem(name, f"the form has no question {name!r}{hint}")
    if not isinstance(spec, dict):
        raise problem(name, "give a table: choices = {...} or distribution = ...")
    if node.question_type in {"select_one", "select_multiple"}:
        return _choice_rule(name, spec, node, form, problem)
    if node.data_type in {"int", "decimal"} and node.question_type != "range":
        return _number_rule(name, spec, problem)
    if node.data_type == "date" and node.question_type == "date":
        return _date_rule(name, spec, problem)
    raise problem(
        name,
        "answers can be set for select_one, select_multiple, integer, decimal and date questions; "
        f"{name} is {node.question_type}",
    )


def _date_rule(name: str, spec: dict[str, Any], problem: Callable) -> DateRule:
    days = spec.get("days_before")
    if (
        set(spec) != {"days_before"}
        or not isinstance(days, list)
        or len(days) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DAYS_BEFORE for d in days)
        or days[0] > days[1]
    ):
        raise problem(
            name, f"a date takes days_before = [fewest, most], whole days from 0 to {MAX_DAYS_BEFORE}, e.g. [0, 92]"
        )
    return DateRule(days[0], days[1])


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _choice_rule(name: str, spec: dict[str, Any], node: Node, form: FormModel, problem: Callable) -> ChoiceRule:
    if set(spec) != {"choices"} or not isinstance(spec["choices"], dict) or not spec["choices"]:
        raise problem(name, 'a select takes one key, choices = { "<choice name>" = <weight>, ... }')
    if (
        node.choice_source not in (None, "list")
        or node.choice_list is None
        or node.choice_list not in form.choice_lists
    ):
        raise problem(
            name,
            "its choices come from a repeat or an external file, not from the form's choices sheet; they are "
            "drawn from what the interview holds and cannot be weighted here",
        )
    known = set(form.choice_lists[node.choice_list].names)
    weights: dict[str, float] = {}
    for choice, weight in spec["choices"].items():
        if str(choice) not in known:
            shown = sorted(known)
            listing = ", ".join(shown[:12]) + ("…" if len(shown) > 12 else "")
            raise problem(name, f"{choice!r} is not a choice of list {node.choice_list} ({listing})")
        if not _finite(weight) or weight < 0:
            raise problem(name, f"the weight of {choice!r} must be a finite number ≥ 0")
        if node.question_type == "select_multiple" and weight > 100:
            raise problem(name, f"select_multiple weights are chances in %: {choice!r} = {weight} is above 100")
        weights[str(choice)] = float(weight)
    if not any(weights.values()):
        raise problem(name, "every weight is 0: nothing could be drawn")
    return ChoiceRule(weights)


def _number_rule(name: str, spec: dict[str, Any], problem: Callable) -> NumberRule:
    kind = spec.get("distribution")
    if kind not in _NUMBER_KEYS:
        raise problem(name, "a number takes distribution = \"normal\", \"lognormal\" or \"uniform\"")
    allowed = _NUMBER_KEYS[kind] | {"distribution", "min", "max"}
    unknown = set(spec) - allowed
    missing = _NUMBER_KEYS[kind] - set(spec)
    if unknown or missing:
        raise problem(
            name, f"a {kind} distribution takes {', '.join(sorted(allowed - {'distribution'}))}"
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
            + (f"; missing: {', '.join(sorted(missing))}" if missing else "")
        )
    values = {key: spec[key] for key in spec if key != "distribution"}
    if not all(_finite(v) for v in values.values()):
        raise problem(name, "the parameters must be finite numbers")
    low, high = values.get("min"), values.get("max")
    if low is not None and high is not None and low > high:
        raise problem(name, f"min {low} is above max {high}")
    if kind == "normal":
        if values["sd"] <= 0:
            raise problem(name, "sd must be above 0")
        return NumberRule("normal", values["mean"], values["sd"], low, high)
    if kind == "lognormal":
        if values["median"] <= 0 or not 0 < values["spread"] <= MAX_LOG_SPREAD:
            raise problem(name, f"median must be above 0 and spread between 0 and {MAX_LOG_SPREAD} (log scale)")
        return NumberRule("lognormal", values["median"], values["spread"], low, high)
    return NumberRule("uniform", 0.0, 0.0, low, high)


__all__ = ["ANSWERS_INVALID", "AnswerRule", "ChoiceRule", "DateRule", "NumberRule", "load_answers"]
