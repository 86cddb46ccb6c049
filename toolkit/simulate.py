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
"""

# ruff: noqa: S311 (synthetic answers, not secrets: a seeded generator is the point)
from __future__ import annotations

import concurrent.futures
import contextlib
import difflib
import math
import os
import random
import re
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from lxml import etree

from toolkit.crypto import encrypt_submission
from toolkit.errors import INPUT_UNREADABLE, OUTPUT_UNWRITABLE, Issue, ToolkitError, define, error, warning
from toolkit.files import write_bytes_atomic
from toolkit.settings import (
    CHOICE_DONT_KNOW,
    CHOICE_OTHER,
    CHOICE_REFUSED,
    NUMERIC_DONT_KNOW,
    NUMERIC_REFUSED,
)
from toolkit.validate import wrap_calculated
from toolkit.xform import XF, FormModel, Node, parse_xform
from toolkit.xml import parse_untrusted
from toolkit.xpath import (
    CompiledExpr,
    EvalEnv,
    XNode,
    XPathError,
    build_tree,
    compile_xpath,
    load_secondary_instance,
    to_boolean,
    to_number,
    to_string,
)

CONSTRAINT_UNMET = define(
    "simulate.constraint_unmet", "No value satisfying a constraint was found by sampling"
)
EXPRESSION_FAILED = define(
    "simulate.expression_failed", "An expression could not be evaluated while simulating"
)
ANSWERS_INVALID = define("simulate.answers_invalid", "The answers file asks for something the form cannot give")

# Rate of don't know / refused answers where the question offers them (questionnaire.md section 4).
SENTINEL_RATE = 0.03
# Draws per question before giving up on a constraint (the value is then left empty).
MAX_DRAWS = 25
# Repeat instances: a repeat_count is capped here; without one, a household-size-like draw between 1 and 12.
MAX_REPEAT = 30
ROSTER_MIN, ROSTER_MAX = 1, 12
# From this many instances on, instances are generated in a process pool.
POOL_MIN_INSTANCES = 400
_CHUNK = 100
# Fieldwork the synthetic interviews fall into, and the device time zone (Central Asia, UTC+6).
FIELDWORK_START = date(2026, 10, 1)
FIELDWORK_DAYS = 56
LOCAL_TZ = timezone(timedelta(hours=6))

_NAMES = (
    "Aigerim",
    "Bakyt",
    "Dilnoza",
    "Farrukh",
    "Gulnara",
    "Jamshid",
    "Kanat",
    "Madina",
    "Nurlan",
    "Olga",
    "Rustam",
    "Saule",
    "Timur",
    "Zarina",
    "Aziz",
    "Elena",
    "Murat",
    "Nigora",
    "Sanjar",
    "Ainura",
)
_WORDS = (
    "market",
    "construction",
    "cleaning",
    "taxi",
    "farm",
    "shop",
    "cafe",
    "warehouse",
    "school",
    "clinic",
)
# `. >= 1950`, `. <= /data/dw_year`, `. < ../hh_size`: a bound on the answer, a number or another answer.
_BOUND = re.compile(r"(?<![\w/.])\.\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?|(?:\.\./|/)[\w./-]*\w)")
_SENTINEL_CHOICES = (CHOICE_DONT_KNOW, CHOICE_REFUSED)
_SENTINELS = frozenset({*_SENTINEL_CHOICES, str(NUMERIC_DONT_KNOW), str(NUMERIC_REFUSED)})
# The context node `.` in the evaluator's syntax tree.
_SELF = ("path", False, (("self", "*node", ()),), None)
try:  # the evaluator's compiler of a syntax tree, for the right-hand sides of `. = X` (optional)
    from toolkit.xpath import _compile as _compile_ast
except ImportError:  # pragma: no cover
    _compile_ast = None


# --- How often answers are given (--answers)


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
        data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"Cannot read the answers file: {exc}.", file=str(path))
        ) from None
    by_name: dict[str, Node] = {}
    for node in form.nodes.values():
        if node.kind == "field":
            by_name.setdefault(node.name, node)
    rules: dict[str, AnswerRule] = {}

    def problem(name: str, message: str) -> ToolkitError:
        return ToolkitError(error(ANSWERS_INVALID, f"[{name}]: {message}", file=str(path), variable=name))

    refused: list[ToolkitError] = []  # every problem of the file at once, so that one run shows all fixes
    for name, spec in data.items():
        try:
            rules[name] = _rule(name, spec, by_name, form, problem)
        except ToolkitError as exc:
            refused.append(exc)
    if len(refused) > 1:
        first = refused[0].issue
        raise ToolkitError(
            error(
                ANSWERS_INVALID,
                f"{len(refused)} problems: " + "; ".join(exc.issue.message for exc in refused),
                file=str(path),
                variable=first.location.variable,
            )
        )
    if refused:
        raise refused[0]
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
    if node.choice_source not in (None, "list") or node.choice_list not in form.choice_lists:
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


def _ast_nodes(ast: Any) -> list[tuple]:
    """Every tuple node of an evaluator syntax tree."""
    out, stack = [], [ast]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            if item and isinstance(item[0], str):
                out.append(item)
            stack.extend(x for x in item if isinstance(x, tuple))
    return out


def _resolve(ref: str, anchor: str) -> str:
    """An absolute node path for a reference read at `anchor` (relative steps resolved)."""
    if ref.startswith("/"):
        return ref
    parts = anchor.split("/")
    for step in ref.split("/"):
        if step == "..":
            parts = parts[:-1]
        elif step not in {"", "."}:
            parts.append(step)
    return "/".join(parts)

# Passes of the final recomputation of calculations (values settle in two for the templates).
MAX_RECOMPUTE_PASSES = 4


@dataclass(frozen=True)
class SimulateResult:
    """What `simulate` wrote: one folder per instance under `out_dir`.

    `instance_ids` are in generation order; `stats` counts instances, repeat rows, redraws and seconds.
    """

    form_id: str
    out_dir: Path
    instance_ids: tuple[str, ...]
    encrypted: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    issues: tuple[Issue, ...] = ()


# ------------------------------------------------------------------------------------------------------------
# Generating one instance


class _Generator:
    """Fills instances of one form; holds what is computed once per form (expressions, choice lists)."""

    def __init__(
        self, form: FormModel, media_dir: Path | None = None, answers: Mapping[str, AnswerRule] | None = None
    ) -> None:
        self.form = form
        self.media_dir = media_dir
        self.answers = dict(answers or {})
        self.secondary = self._secondary_instances(form, media_dir)
        self.problems: dict[tuple[str, str], str] = {}
        self._presets: Mapping[str, str] = {}
        self.unmet: dict[str, int] = {}
        self._choices: dict[str, list[str]] = {}
        # Integer questions that size a repeat (directly or through calculations): the first repeat's count is
        # drawn like a household size, any other like a short list (0-3 entries).
        self.counts: dict[str, str] = {}
        for order, repeat in enumerate(form.repeats()):
            kind = "roster" if order == 0 else "list"
            pending = [(repeat.repeat_count, repeat.path)] if repeat.repeat_count else []
            seen: set[str] = set()
            while pending:
                expression, anchor = pending.pop()
                with contextlib.suppress(XPathError):
                    for ref in compile_xpath(expression).references():
                        path = _resolve(ref, anchor)
                        target = form.nodes.get(path)
                        if target is None or path in seen:
                            continue
                        seen.add(path)
                        if target.calculate:
                            pending.append((target.calculate, path))
                        else:
                            self.counts.setdefault(path, kind)
        self._equalities: dict[str, tuple[Any, ...]] = {}

    @staticmethod
    def _secondary_instances(form: FormModel, media_dir: Path | None) -> dict[str, XNode]:
        """Choice lists in the form, and external ones (select_one_from_file) found in the form's media."""
        html = parse_untrusted(form.xform)
        trees = {}
        for instance in html.iter(f"{{{XF}}}instance"):
            name, src = instance.get("id"), instance.get("src")
            if name and src is None and len(instance):
                trees[name] = build_tree(instance[0])
            elif name and src and media_dir is not None:
                attachment = media_dir / src.rsplit("/", 1)[-1]  # jr://file-csv/countries.csv
                if attachment.is_file():
                    with contextlib.suppress(XPathError, OSError, etree.XMLSyntaxError):
                        trees[name] = load_secondary_instance(attachment)
        return trees

    def choice_label(self, value: str, question: str) -> str:
        """jr:choice-name(): the label of a choice of a question, in the form's default language."""
        node = self.form.nodes.get(question)
        choices = self.form.choices_for(question) if node is not None else None
        choice = choices.get(value) if choices is not None else None
        return choice.label(self.form.default_language) if choice is not None else ""

    # -- expressions

    def _eval(self, expression: str, node: XNode, env: EvalEnv, path: str) -> Any:
        env.current = node
        try:
            return compile_xpath(expression).evaluate(node, env=env)
        except (XPathError, ValueError, TypeError, ZeroDivisionError) as exc:
            self.problems.setdefault((path, expression), f"{type(exc).__name__}: {exc}")
            return None

    def _eval_compiled(self, compiled: Any, node: XNode, env: EvalEnv, path: str) -> Any:
        env.current = node
        try:
            return compiled.evaluate(node, env=env)
        except (XPathError, ValueError, TypeError, ZeroDivisionError):
            return None

    def _equality_values(self, spec: Node) -> tuple[Any, ...]:
        """Compiled right-hand sides of `. = X` in the constraint (X not using the answer itself)."""
        cached = self._equalities.get(spec.path)
        if cached is not None:
            return cached
        found: list[Any] = []
        if spec.constraint and _compile_ast is not None:
            with contextlib.suppress(XPathError, ValueError):
                for node in _ast_nodes(compile_xpath(spec.constraint).ast):
                    if node[0] == "bin" and node[1] == "=":
                        for this, other in ((node[2], node[3]), (node[3], node[2])):
                            if this == _SELF and not any(n == _SELF for n in _ast_nodes(other)):
                                literal = other[0] in {"num", "str", "neg"}
                                compiled = CompiledExpr(source="", ast=other, fn=_compile_ast(other))
                                found.append((compiled, literal))
        self._equalities[spec.path] = tuple(found)
        return self._equalities[spec.path]

    def _true(self, expression: str | None, node: XNode, env: EvalEnv, path: str, *, default: bool) -> bool:
        if expression is None:
            return True
        value = self._eval(expression, node, env, path)
        return default if value is None else to_boolean(value)

    # -- values

    def _choice_values(self, spec: Node, node: XNode, env: EvalEnv) -> list[str]:
        if spec.itemset is None and spec.choice_list in self.form.choice_lists:
            cached = self._choices.get(spec.path)
            if cached is None:
                cached = self._choices[spec.path] = list(self.form.choice_lists[spec.choice_list].names)
            return cached
        if spec.itemset is None:
            return []
        if spec.choice_source == "list" and not spec.choice_filter:
            cached = self._choices.get(spec.path)
            if cached is not None:
                return cached
        items = self._eval(spec.itemset, node, env, spec.path)
        value_ref = (spec.choice_value_ref or "name").strip()
        values = []
        for item in items if isinstance(items, list) else []:
            target: XNode | None = item
            for step in value_ref.split("/"):
                target = target.child(step) if target is not None and step not in {"", "."} else target
            if target is not None and target.string:
                values.append(target.string)
        if spec.choice_source == "list" and not spec.choice_filter:
            self._choices[spec.path] = values
        return values

    def _bounds(self, spec: Node, node: XNode, env: EvalEnv) -> tuple[float | None, float | None]:
        """The bounds a constraint states for the answer; bounds that are other answers are evaluated."""
        low = high = None
        for op, operand in _BOUND.findall(spec.constraint or ""):
            if operand[0] in "./":
                raw = self._eval(operand, node, env, spec.path)
                value = to_number(raw) if raw is not None and raw != "" else float("nan")
                if math.isnan(value) or value < 0:
                    continue  # not answered, or a don't know / refused sentinel
            else:
                value = float(operand)
                if value in (NUMERIC_DONT_KNOW, NUMERIC_REFUSED):
                    continue
            if op in (">=", ">"):
                bound = value + (1 if op == ">" and spec.data_type == "int" else 0)
                low = bound if low is None else max(low, bound)
            else:
                bound = value - (1 if op == "<" and spec.data_type == "int" else 0)
                high = bound if high is None else min(high, bound)
        return low, high

    def _draw_by_rule(  # noqa: PLR0917 (the draw's state, as _draw has it)
        self, rule: AnswerRule, spec: Node, node: XNode, env: EvalEnv, rng: random.Random, when: datetime
    ) -> str | None:
        """A value drawn as the answers file says, or None when the rule has nothing for this node."""
        if isinstance(rule, DateRule):
            return (when.date() - timedelta(days=rng.randint(rule.fewest, rule.most))).isoformat()
        if isinstance(rule, ChoiceRule):
            return self._choice_by_rule(rule, spec, node, env, rng)
        return self._number_by_rule(rule, spec, node, env, rng)

    def _choice_by_rule(
        self, rule: ChoiceRule, spec: Node, node: XNode, env: EvalEnv, rng: random.Random
    ) -> str | None:
        """A choice (or choices) drawn with the rule's weights among what the list offers here."""
        values = self._choice_values(spec, node, env)  # what the choice filter leaves, in list order
        weights = [rule.weights.get(v, 0.0) for v in values]
        if not any(weights):
            return None
        if spec.question_type != "select_multiple":
            return rng.choices(values, weights=weights)[0]
        # An answer has at least one choice: a draw that ticks none is drawn again, so each chance is the
        # chance among answers, given that something is ticked.
        for _ in range(MAX_DRAWS):
            ticked = [v for v, w in zip(values, weights, strict=True) if rng.random() * 100 < w]
            if ticked:
                return " ".join(ticked)
        return rng.choices(values, weights=weights)[0]

    def _number_by_rule(self, rule: NumberRule, spec: Node, node: XNode, env: EvalEnv, rng: random.Random) -> str:
        """A number from the rule's distribution, truncated to the rule's and the constraint's bounds."""
        low, high = self._bounds(spec, node, env)
        lows = [b for b in (low, rule.minimum) if b is not None]
        highs = [b for b in (high, rule.maximum) if b is not None]
        low, high = (max(lows) if lows else None), (min(highs) if highs else None)
        floor, ceiling = (low if low is not None else -math.inf), (high if high is not None else math.inf)
        # Truncated, not clipped: a value outside the bounds is drawn again, so that the bounds do not collect
        # the distribution's tails (a bound is the last resort after TRUNCATION_DRAWS tries).
        value = math.nan
        for _ in range(TRUNCATION_DRAWS):
            if rule.distribution == "normal":
                value = rng.gauss(rule.centre, rule.spread)
            elif rule.distribution == "lognormal":
                value = rule.centre * math.exp(rng.gauss(0.0, rule.spread))
            else:
                value = rng.uniform(low if low is not None else 0.0, high if high is not None else 100.0)
            if floor <= value <= ceiling:
                break
        value = min(max(value, floor), ceiling)
        if spec.data_type == "int":
            rounded = round(value)
            if low is not None and rounded < low:
                rounded = math.ceil(low)
            if high is not None and rounded > high:
                rounded = math.floor(high)
            return str(rounded)
        return f"{value:.2f}"

    def _draw(  # noqa: PLR0911 (one return per question type reads as the table it is)
        self,
        spec: Node,
        node: XNode,
        env: EvalEnv,
        rng: random.Random,
        when: datetime,
        *,
        shrink: float = 0.0,
    ) -> str | None:
        qtype, dtype = spec.question_type, spec.data_type
        rule = self.answers.get(spec.name)
        if rule is not None and shrink < RULE_DRAW_SHARE:
            drawn = self._draw_by_rule(rule, spec, node, env, rng, when)
            if drawn is not None:
                return drawn
        if qtype in {"select_one", "select_multiple", "rank"}:
            filtered = spec.choice_filter and spec.choice_source == "list"
            if qtype == "select_one" and filtered and rng.random() >= SENTINEL_RATE:
                picked = self._filtered_pick(spec, node, env, rng)
                if picked is not None:
                    return picked
            values = self._choice_values(spec, node, env)
            if not values:
                return None
            sentinels = [v for v in values if v in _SENTINEL_CHOICES]
            plain = [v for v in values if v not in _SENTINEL_CHOICES and v != CHOICE_OTHER] or values
            if sentinels and rng.random() < SENTINEL_RATE:
                return rng.choice(sentinels)
            if qtype == "select_one":
                # Earlier choices are likelier (yes before no, head before others): weights 1, 1/2, 1/3, ...
                return rng.choices(plain, weights=[1 / (k + 1) for k in range(len(plain))])[0]
            if qtype == "rank":
                return " ".join(rng.sample(plain, len(plain)))
            picked = set(rng.sample(plain, rng.randint(1, min(3, len(plain)))))
            return " ".join(v for v in plain if v in picked)  # Collect stores choices in list order
        if dtype in {"int", "decimal"} or qtype == "range":
            if "-98" in (spec.constraint or "") and rng.random() < SENTINEL_RATE:
                return str(rng.choice((NUMERIC_DONT_KNOW, NUMERIC_REFUSED)))
            if qtype == "range":
                low, high = float(spec.parameters.get("start", 0)), float(spec.parameters.get("end", 10))
            else:
                low, high = self._bounds(spec, node, env)
            if spec.path in self.counts:
                roster = self.counts[spec.path] == "roster"
                size = self._household_size(rng) if roster else rng.choice((0, 0, 0, 1, 1, 2, 3))
                return str(
                    size if (low is None or size >= low) and (high is None or size <= high) else int(low or 0)
                )
            if low is None:
                low = 0.0 if high is None or high >= 0 else high - 100
            if high is None:
                # A year (1950..) runs to this year; other open ranges to a two-digit number above the bound.
                high = float(when.year) if 1900 <= low <= when.year else low + (99 if low < 100 else low)
            # Redraws narrow the range towards the lower bound, so that constraints on sums of answers
            # (hours in a day, days times hours) are met after a few draws.
            high = max(low, low + (high - low) * (1 - shrink))
            if dtype == "int" or qtype == "range":
                return str(rng.randint(math.ceil(low), max(math.ceil(low), math.floor(high))))
            return f"{rng.uniform(low, high):.2f}"
        if qtype in {"start", "end"}:
            moment = when if qtype == "start" else when + timedelta(minutes=rng.randint(20, 75))
            return moment.isoformat(timespec="milliseconds")
        if qtype == "today" or dtype == "date":
            if qtype == "today":
                return when.date().isoformat()
            # Up to ten years back; redraws come closer to the interview ("in the last 3 months").
            return (when.date() - timedelta(days=rng.randint(0, int(3650 * (1 - shrink)) + 1))).isoformat()
        if dtype == "dateTime":
            return (when - timedelta(minutes=rng.randint(0, 600))).isoformat(timespec="milliseconds")
        if dtype == "time":
            return f"{rng.randint(7, 20):02d}:{rng.choice((0, 15, 30, 45)):02d}:00.000+06:00"
        if dtype == "geopoint":
            return (
                f"{rng.uniform(38, 50):.6f} {rng.uniform(60, 80):.6f} {rng.uniform(300, 1500):.1f} "
                f"{rng.uniform(3, 15):.1f}"
            )
        if qtype in {"deviceid"}:
            return f"collect:{rng.getrandbits(64):016x}"
        if qtype in {"username", "email", "phonenumber", "subscriberid", "simserial"}:
            return f"enum{rng.randint(1, 40):02d}"
        if qtype in {"image", "audio", "video", "file"}:
            return f"{int(when.timestamp() * 1000) + rng.randint(0, 99999)}.jpg"
        if qtype == "acknowledge":
            return "OK"
        if qtype == "barcode":
            return str(rng.randint(10**11, 10**12 - 1))
        if qtype in {"audit", "hidden", "geotrace", "geoshape", "start-geopoint"} or dtype == "binary":
            return spec.default
        if dtype == "boolean":
            return rng.choice(("true", "false"))
        if "name" in spec.name.lower():
            return rng.choice(_NAMES)
        return rng.choice(_WORDS)

    # -- the walk

    def instance(
        self, index: int, seed: int, presets: Mapping[str, str] | None = None
    ) -> tuple[str, bytes, int]:
        """Instance `index` of a run with `seed`: (instanceID, XML bytes, repeat rows).

        `presets` fixes the answers of top-level questions by name (sample IDs, interview outcome); a preset
        question that the skip logic makes non-relevant stays empty, as it would in Collect.
        """
        self._presets = presets or {}
        rng = random.Random(f"{seed}:{index}")
        # The form's random() draws from the global generator: seed it for this instance, restore it after.
        saved = random.getstate()
        random.seed(rng.random())
        try:
            return self._instance(rng)
        finally:
            random.setstate(saved)

    def _instance(self, rng: random.Random) -> tuple[str, bytes, int]:
        instance_id = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        when = datetime.combine(
            FIELDWORK_START + timedelta(days=rng.randrange(FIELDWORK_DAYS)), datetime.min.time(), LOCAL_TZ
        ) + timedelta(minutes=rng.randint(480, 1140))
        form = self.form
        root = XNode(form.root[1:])
        root.attrs["id"] = form.form_id
        if form.version is not None:
            root.attrs["version"] = form.version
        env = EvalEnv(
            root=root,
            secondary=self.secondary,
            today=when.date(),
            now=when,
            tz=LOCAL_TZ,
            choice_name=self.choice_label,
            media_dir=self.media_dir,
        )
        calculations: list[tuple[XNode, Node]] = []
        rows = self._fill(
            form.nodes[form.root], root, env, rng, when, instance_id, calculations, relevant=True
        )
        # Collect recomputes every calculation when the form is saved, in dependency order; a few passes in
        # document order reach the same values (a calculation may read one that comes later in the form).
        for _ in range(MAX_RECOMPUTE_PASSES):
            changed = False
            for node, spec in calculations:
                value = self._eval(spec.calculate or "", node, env, spec.path)
                text, typed = self._stored(value, spec, env)
                if text != node.text:
                    node.set(text, typed)
                    changed = True
            if not changed:
                break
        return instance_id, _serialise(root), rows

    @staticmethod
    def _stored(value: Any, spec: Node, env: EvalEnv) -> tuple[str | None, Any]:
        """What JavaRosa writes into the node for a calculation's result (NaN and "" leave it empty), and the
        in-memory value later expressions read (a number stays a number, not its text)."""
        if value is None:
            return None, None
        text, typed = wrap_calculated(value, spec.data_type, env.tz)
        return (text, typed) if text else (None, None)

    def _fill(  # noqa: PLR0917 (recursive walk state)
        self,
        spec: Node,
        parent: XNode,
        env: EvalEnv,
        rng: random.Random,
        when: datetime,
        instance_id: str,
        calculations: list[tuple[XNode, Node]],
        *,
        relevant: bool,
    ) -> int:
        rows = 0
        for child_path in spec.children:
            child = self.form.nodes[child_path]
            if child.kind == "repeat":
                count = 0
                if relevant:
                    # jr:count and the repeat's relevant are evaluated at the repeat's own position, as in
                    # JavaRosa (pyxform writes references inside the repeat relative to it: ../hl_n_trips).
                    probe = parent.append(XNode(child.name))
                    if self._true(child.relevant, probe, env, child.path, default=True):
                        count = self._repeat_count(child, probe, env, rng)
                    parent.children.remove(probe)
                for _ in range(count):
                    node = parent.append(XNode(child.name))
                    rows += 1 + self._fill(
                        child, node, env, rng, when, instance_id, calculations, relevant=True
                    )
                continue
            node = parent.append(XNode(child.name, None, None, child.data_type))
            here = relevant and self._true(child.relevant, node, env, child.path, default=True)
            preset = self._presets.get(child.name) if child.kind == "field" and child.repeat is None else None
            if preset is not None:
                if here:
                    node.set(preset or None)
                continue
            if child.kind == "group":
                rows += self._fill(child, node, env, rng, when, instance_id, calculations, relevant=here)
                continue
            if not here:
                continue
            if child.question_type == "instance_id":
                node.set(instance_id)
            elif child.calculate is not None:
                calculations.append((node, child))
                value = self._eval(child.calculate, node, env, child.path)
                node.set(*self._stored(value, child, env))
            elif child.question_type != "note":
                self._answer(child, node, env, rng, when)
        return rows

    def _repeat_count(self, spec: Node, parent: XNode, env: EvalEnv, rng: random.Random) -> int:
        if spec.repeat_count:
            value = self._eval(spec.repeat_count, parent, env, spec.path)
            number = to_number(value) if value is not None else float("nan")
            return 0 if math.isnan(number) or number < 0 else min(int(number), MAX_REPEAT)
        if spec.repeat is None:
            return self._household_size(rng)
        return rng.randint(0, 3)  # a nested list (trips, jobs) without a count: a few entries at most

    def _filtered_pick(self, spec: Node, node: XNode, env: EvalEnv, rng: random.Random) -> str | None:
        """One choice of a filtered list, by testing random items against the filter (long lists such as
        countries or districts are not filtered whole for every question); None after a few misses."""
        tree = self.secondary.get(spec.choice_list or "")
        if tree is None or not tree.children:
            return None
        try:
            predicate = compile_xpath(spec.choice_filter or "true()")
        except XPathError:
            return None
        value_ref = (spec.choice_value_ref or "name").strip()
        env.current = node
        for _ in range(12):
            item = rng.choice(tree.children)
            try:
                keep = to_boolean(predicate.evaluate(item, env=env))
            except (XPathError, ValueError, TypeError, ZeroDivisionError):
                return None
            value = item.child(value_ref)
            if keep and value is not None and value.string and value.string not in _SENTINEL_CHOICES:
                return value.string
        return None

    @staticmethod
    def _household_size(rng: random.Random) -> int:
        # Most households have 2-6 members: a rounded normal draw, kept inside 1-12.
        return max(ROSTER_MIN, min(ROSTER_MAX, round(rng.gauss(4.2, 2.2))))

    def _answer(self, spec: Node, node: XNode, env: EvalEnv, rng: random.Random, when: datetime) -> None:
        if spec.default is not None and spec.preload is None and rng.random() < 0.5:
            node.set(spec.default)
            if self._true(spec.constraint, node, env, spec.path, default=True):
                return
        # A constraint `. = <expression>` names the value outright (a copy of a roster answer, a code allowed
        # in one case): those values are tried first, in random order.
        candidates = list(self._equality_values(spec))
        rng.shuffle(candidates)
        for candidate, literal in candidates:
            value = self._eval_compiled(candidate, node, env, spec.path)
            text = to_string(value, env.tz) if value is not None else ""
            # A literal DK/refused code stays at its small rate; a copied answer is copied whatever it is.
            if text and not (literal and text in _SENTINELS):
                node.set(text)
                if self._true(spec.constraint, node, env, spec.path, default=False):
                    return
        for attempt in range(MAX_DRAWS):
            node.set(self._draw(spec, node, env, rng, when, shrink=attempt / MAX_DRAWS))
            if node.text is None or self._true(spec.constraint, node, env, spec.path, default=True):
                return
        # Nothing drawn fits: an enumerator would record don't know where the question allows it.
        for sentinel in (str(NUMERIC_DONT_KNOW), CHOICE_DONT_KNOW):
            if spec.data_type in {"int", "decimal"} if sentinel.startswith("-") else spec.is_select:
                node.set(sentinel)
                if self._true(spec.constraint, node, env, spec.path, default=False):
                    return
        node.set(None)
        self.unmet[spec.path] = self.unmet.get(spec.path, 0) + 1


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _serialise(root: XNode) -> bytes:
    parts: list[str] = ["<?xml version='1.0' ?>"]

    def emit(node: XNode) -> None:
        attrs = "".join(f' {k}="{_escape(v).replace(chr(34), "&quot;")}"' for k, v in node.attrs.items())
        if node.children:
            parts.append(f"<{node.name}{attrs}>")
            for child in node.children:
                emit(child)
            parts.append(f"</{node.name}>")
        elif node.text:
            parts.append(f"<{node.name}{attrs}>{_escape(node.text)}</{node.name}>")
        else:
            parts.append(f"<{node.name}{attrs}/>")

    emit(root)
    return "".join(parts).encode("utf-8")


def generate_instances(
    form: FormModel,
    n: int,
    *,
    seed: int = 0,
    start: int = 0,
    media_dir: Path | None = None,
    presets: Sequence[Mapping[str, str]] | None = None,
    answers: Mapping[str, AnswerRule] | None = None,
) -> list[tuple[str, bytes]]:
    """Instances `start`..`start+n-1` of a run with `seed`, in memory: (instanceID, XML bytes) each.

    Parameters:
        form: the form model.
        n: how many instances.
        seed: the run's seed; instance i is the same whatever n, start and the number of processes.
        start: index of the first instance.
        media_dir: the form's attachments (CSV files for pulldata()).
        presets: for the k-th instance made here, answers of top-level questions by name (e.g. the sample IDs
            and interview outcome of the k-th selected household); len(presets) must be n.
        answers: how often answers are given, by question name (see `load_answers`).
    """
    if presets is not None and len(presets) != n:
        raise ValueError(f"presets has {len(presets)} entries for {n} instances")
    generator = _Generator(form, media_dir, answers)
    return [
        generator.instance(i, seed, presets[i - start] if presets is not None else None)[:2]
        for i in range(start, start + n)
    ]


# ------------------------------------------------------------------------------------------------------------
# Writing


_WORKER: dict[str, Any] = {}


def _init_worker(
    xform: str,
    out_dir: str,
    public_pem: bytes | None,
    media_dir: str | None = None,
    answers: Mapping[str, AnswerRule] | None = None,
) -> None:
    _WORKER["generator"] = _Generator(parse_xform(xform), Path(media_dir) if media_dir else None, answers)
    _WORKER["out_dir"] = Path(out_dir)
    _WORKER["public_key"] = _load_public(public_pem) if public_pem else None


def _load_public(pem: bytes) -> Any:
    return serialization.load_pem_public_key(pem)


def _run_chunk(task: tuple[int, int, int]) -> tuple[list[str], int, dict, dict]:
    start, count, seed = task
    generator: _Generator = _WORKER["generator"]
    out_dir: Path = _WORKER["out_dir"]
    public_key = _WORKER["public_key"]
    generator.problems.clear()
    generator.unmet.clear()
    ids, rows = [], 0
    for index in range(start, start + count):
        instance_id, xml, repeat_rows = generator.instance(index, seed)
        folder = out_dir / instance_id.removeprefix("uuid:")
        if public_key is None:
            write_bytes_atomic(folder / "submission.xml", xml)
        else:
            encrypt_submission(
                xml,
                public_key=public_key,
                form_id=generator.form.form_id,
                instance_id=instance_id,
                out_dir=folder,
                version=generator.form.version,
            )
        ids.append(instance_id)
        rows += repeat_rows
    return ids, rows, dict(generator.problems), dict(generator.unmet)


def simulate(
    form: FormModel,
    n: int,
    out_dir: Path,
    *,
    seed: int = 0,
    encrypt_with: Path | None = None,
    media_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    answers: Mapping[str, AnswerRule] | None = None,
) -> SimulateResult:
    """Write `n` synthetic submissions of `form` into `out_dir` (one `<uuid>/submission.xml` folder each).

    Parameters:
        form: the form model.
        n: number of instances.
        out_dir: the folder to write into (created when missing).
        seed: makes the run reproducible.
        encrypt_with: a PEM public key; instances are then written encrypted, as Collect does.
        media_dir: the form's attachments (CSV files for pulldata()); default `<form>-media/` next to the
            form file when it exists, else the form's own folder.
        workers: generator processes; default one per core, used from POOL_MIN_INSTANCES instances on.
        progress: called as `progress(done, n)`.
        answers: how often answers are given, by question name (see `load_answers`); others keep the
            default draws.
    """
    started = time.perf_counter()
    public_pem = None
    if encrypt_with is not None:
        try:
            public_pem = Path(encrypt_with).read_bytes()
            _load_public(public_pem)
        except (OSError, ValueError) as exc:
            raise ToolkitError(
                error(
                    INPUT_UNREADABLE,
                    f"Cannot read the public key: {exc}. Give the PEM public key of the form.",
                    file=str(encrypt_with),
                )
            ) from None
    if media_dir is None and form.source:
        # Where ODK tools look for a form's attachments: `<form>-media/`, else the form's own folder.
        source = Path(form.source)
        media_dir = next(
            (d for d in (source.with_name(f"{source.stem}-media"), source.parent) if d.is_dir()), None
        )
    media = str(media_dir) if media_dir is not None else None
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot create the folder: {exc}.", file=str(out_dir))
        ) from None
    tasks = [(start, min(_CHUNK, n - start), seed) for start in range(0, n, _CHUNK)]
    workers = workers or os.cpu_count() or 1
    ids: list[str] = []
    rows = 0
    problems: dict[tuple[str, str], str] = {}
    unmet: dict[str, int] = {}

    def collect(result: tuple[list[str], int, dict, dict]) -> None:
        nonlocal rows
        ids.extend(result[0])
        rows += result[1]
        problems.update(result[2])
        for path, count in result[3].items():
            unmet[path] = unmet.get(path, 0) + count
        if progress is not None:
            progress(len(ids), n)

    if workers <= 1 or n < POOL_MIN_INSTANCES:
        _init_worker(form.xform, str(out_dir), public_pem, media, answers)
        for task in tasks:
            collect(_run_chunk(task))
    else:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            initializer=_init_worker,
            initargs=(form.xform, str(out_dir), public_pem, media, answers),
        ) as pool:
            for result in pool.map(_run_chunk, tasks):
                collect(result)
    issues: list[Issue] = [
        warning(
            EXPRESSION_FAILED,
            f"Evaluating {expression!r} failed ({message}); the node was treated as "
            "relevant/valid or left empty.",
            path=path,
            expression=expression,
        )
        for (path, expression), message in sorted(problems.items())
    ]
    issues += [
        warning(
            CONSTRAINT_UNMET,
            f"In {count} instance(s) no drawn value met the constraint; left empty.",
            path=path,
        )
        for path, count in sorted(unmet.items())
    ]
    seconds = time.perf_counter() - started
    return SimulateResult(
        form_id=form.form_id,
        out_dir=Path(out_dir),
        instance_ids=tuple(ids),
        encrypted=encrypt_with is not None,
        stats={
            "instances": len(ids),
            "repeat_rows": rows,
            "seconds": round(seconds, 3),
            "instances_per_second": round(len(ids) / seconds, 1) if seconds else None,
        },
        issues=tuple(issues),
    )


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
