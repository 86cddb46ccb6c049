"""Filling one instance the way an enumerator moves through ODK Collect (see the package docstring)."""

# ruff: noqa: S311 (synthetic answers, not secrets: a seeded generator is the point)
from __future__ import annotations

import contextlib
import math
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from lxml import etree

from toolkit.checks import CompiledForm, Finding, compile_form, validate_submissions
from toolkit.checks.rules import DUPLICATE_INSTANCE, EXPRESSION_ERROR, EXPRESSION_UNSUPPORTED
from toolkit.settings import (
    CHOICE_DONT_KNOW,
    CHOICE_OTHER,
    CHOICE_REFUSED,
    NUMERIC_DONT_KNOW,
    NUMERIC_REFUSED,
)
from toolkit.simulate.answers import RULE_DRAW_SHARE, TRUNCATION_DRAWS, AnswerRule, ChoiceRule, DateRule, NumberRule
from toolkit.simulate.faults import PlantedFault, candidates, unread_fields
from toolkit.simulate.regex import RegexUnsupported, check_pattern, matching_string
from toolkit.xform import XF, FormModel, Node
from toolkit.xml import parse_untrusted
from toolkit.xpath import (
    CompiledExpr,
    EvalEnv,
    XNode,
    XPathError,
    build_tree,
    compile_tree,
    compile_xpath,
    load_secondary_instance,
    to_boolean,
    to_number,
    to_string,
    wrap_calculated,
)
from toolkit.xpath.syntax import NODE_TEST, Binary, Call, Expr, LocationPath, Negate, Number, Step, String, children
from toolkit.xpath.syntax import Node as SyntaxNode

# Rate of don't know / refused answers where the question offers them (questionnaire.md section 4).
SENTINEL_RATE = 0.03
# Draws per question before giving up on a constraint (the value is then left empty).
MAX_DRAWS = 25
# Repeat instances: a repeat_count is capped here; without one, a household-size-like draw between 1 and 12.
MAX_REPEAT = 30
ROSTER_MIN, ROSTER_MAX = 1, 12
# From this many instances on, instances are generated in a process pool.
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
# `. >= 1950`, `. <= /data/dw_year`, `. >= /data/id_year - ../hl_age - 1`, `0 < .`: a bound on the answer, a
# number or an expression of other answers; the operator as seen from the answer (`0 < .` is `. > 0`).
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_SENTINEL_CHOICES = (CHOICE_DONT_KNOW, CHOICE_REFUSED)
_SENTINELS = frozenset({*_SENTINEL_CHOICES, str(NUMERIC_DONT_KNOW), str(NUMERIC_REFUSED)})
# The context node `.` in the evaluator's syntax tree.
_SELF = LocationPath(False, (Step("self", NODE_TEST),))


def _ast_nodes(ast: Expr) -> list[SyntaxNode]:
    """Every node of a syntax tree, each before its sub-nodes, the last sub-node first."""
    out: list[SyntaxNode] = []
    stack: list[SyntaxNode] = [ast]
    while stack:
        item = stack.pop()
        out.append(item)
        stack.extend(children(item))
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


# Attempts at an interview Collect could finalise (see Generator.instance).
MAX_INSTANCE_ATTEMPTS = 30
# Findings another draw cannot change (an expression the evaluator cannot run, an attachment that is missing):
# they are the form's, reported by validate whatever the answers, and do not make a draw be drawn again.
_NOT_REDRAWN = frozenset({EXPRESSION_ERROR, EXPRESSION_UNSUPPORTED})
# Beside a regex() constraint, the share of answers that try the values named by `. = X` first.
NAMED_VALUE_SHARE = 0.2
# Candidate places tried per fault kind before another kind is tried.
MAX_PLANT_TRIES = 6
_INDEX = re.compile(r"\[\d+\]")


def media_folder(form: FormModel) -> Path | None:
    """Where ODK tools look for a form's attachments: `<form>-media/`, else the form's own folder."""
    if not form.source:
        return None
    source = Path(form.source)
    return next((d for d in (source.with_name(f"{source.stem}-media"), source.parent) if d.is_dir()), None)


def _generic(path: str) -> str:
    """A finding's path without repeat indexes: /data/hl[2]/age -> /data/hl/age."""
    return _INDEX.sub("", path)


# Passes of the final recomputation of calculations (values settle in two for the templates).
MAX_RECOMPUTE_PASSES = 4


# ------------------------------------------------------------------------------------------------------------
# Generating one instance


class Generator:
    """Fills instances of one form; holds what is computed once per form (expressions, choice lists).

    Parameters:
        form: the form model.
        media_dir: the form's attachments; default as `media_folder`.
        answers: how often answers are given, by question name.
        check: check every drawn instance with the validator and draw again until it is clean (off only to
            measure what the check costs, in bench/simulate.py).
    """

    def __init__(
        self,
        form: FormModel,
        media_dir: Path | None = None,
        answers: Mapping[str, AnswerRule] | None = None,
        *,
        check: bool = True,
    ) -> None:
        self.form = form
        self.media_dir = media_dir = media_dir if media_dir is not None else media_folder(form)
        self.answers = dict(answers or {})
        self.secondary = self._secondary_instances(form, media_dir)
        self.problems: dict[tuple[str, str], str] = {}
        # Why drawn instances were not finalisable ("hard_stop /data/x"), and how many were drawn again.
        self._blocked: list[str] = []
        self.unfinalisable: dict[str, int] = {}
        self.redrawn = 0
        self._checker: CompiledForm | None = compile_form(form, media_dir=media_dir) if check else None
        self._patterns: dict[str, tuple[str, ...]] = {}
        # Planted faults (errors > 0): the fields of the last instance with their relevance, fields no other
        # expression reads, and the fault planted in the last instance.
        self._visited: list[tuple[XNode, Node, bool]] = []
        self._unread: frozenset[str] | None = None
        self._day: date | None = None
        self.planted: list[PlantedFault] = []
        self.duplicate = False
        self.allow_duplicates = True
        self._presets: Mapping[str, str] = {}
        self.unmet: dict[str, int] = {}
        self._unmet_now: list[str] = []
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
        self._compared: dict[str, tuple[tuple[str, Any, Expr], ...]] = {}

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

    def _comparisons(self, spec: Node) -> tuple[tuple[str, Any, Expr], ...]:
        """The comparisons of the answer with something that does not read it, in the constraint: (operator seen
        from the answer, `=` or a bound; the other side compiled; its syntax tree)."""
        cached = self._compared.get(spec.path)
        if cached is not None:
            return cached
        found: list[tuple[str, Any, Expr]] = []
        if spec.constraint:
            with contextlib.suppress(XPathError, ValueError):
                for node in _ast_nodes(compile_xpath(spec.constraint).ast):
                    if not (isinstance(node, Binary) and (node.op == "=" or node.op in _FLIPPED)):
                        continue
                    flipped = _FLIPPED.get(node.op, node.op)
                    for this, other, op in ((node.left, node.right, node.op), (node.right, node.left, flipped)):
                        if this == _SELF and not any(n == _SELF for n in _ast_nodes(other)):
                            found.append((op, CompiledExpr(source="", ast=other, fn=compile_tree(other)), other))
        self._compared[spec.path] = tuple(found)
        return self._compared[spec.path]

    def _equality_values(self, spec: Node) -> tuple[tuple[Any, bool], ...]:
        """Compiled right-hand sides of `. = X` in the constraint, and whether X is a literal."""
        return tuple(
            (compiled, isinstance(other, Number | String | Negate))
            for op, compiled, other in self._comparisons(spec)
            if op == "="
        )

    def _regex_patterns(self, spec: Node) -> tuple[str, ...]:
        """The patterns of `regex(., 'pattern')` calls in the constraint that the generator can produce."""
        cached = self._patterns.get(spec.path)
        if cached is not None:
            return cached
        found: list[str] = []
        if spec.constraint and "regex" in spec.constraint:
            with contextlib.suppress(XPathError, ValueError):
                for node in _ast_nodes(compile_xpath(spec.constraint).ast):
                    match node:
                        case Call(name="regex", args=(subject, String(value=pattern))) if subject == _SELF:
                            with contextlib.suppress(RegexUnsupported):
                                check_pattern(pattern)
                                found.append(pattern)
        self._patterns[spec.path] = tuple(found)
        return self._patterns[spec.path]

    def _true(self, expression: str | None, node: XNode, env: EvalEnv, path: str, *, default: bool) -> bool:
        if expression is None:
            return True
        value = self._eval(expression, node, env, path)
        return default if value is None else to_boolean(value)

    # -- values

    def _choice_values(self, spec: Node, node: XNode, env: EvalEnv) -> list[str]:
        if spec.itemset is None and spec.choice_list is not None and spec.choice_list in self.form.choice_lists:
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
        for op, compiled, other in self._comparisons(spec):
            if op == "=":
                continue
            literal = isinstance(other, Number) or (isinstance(other, Negate) and isinstance(other.operand, Number))
            raw = self._eval_compiled(compiled, node, env, spec.path)
            value = to_number(raw) if raw is not None and raw != "" else float("nan")
            if math.isnan(value):
                continue  # not answered
            if (value in (NUMERIC_DONT_KNOW, NUMERIC_REFUSED)) if literal else value < 0:
                continue  # a don't know / refused sentinel, or computed from one
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

    def _draw(  # noqa: PLR0911, PLR0912, PLR0915
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
        patterns = self._regex_patterns(spec)
        if patterns and qtype not in {"select_one", "select_multiple", "rank"}:
            with contextlib.suppress(RegexUnsupported):
                return matching_string(rng.choice(patterns), rng) or None
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
            ticked = set(rng.sample(plain, rng.randint(1, min(3, len(plain)))))
            return " ".join(v for v in plain if v in ticked)  # Collect stores choices in list order
        if dtype in {"int", "decimal"} or qtype == "range":
            if "-98" in (spec.constraint or "") and rng.random() < SENTINEL_RATE:
                return str(rng.choice((NUMERIC_DONT_KNOW, NUMERIC_REFUSED)))
            low: float | None
            high: float | None
            if qtype == "range":
                low, high = float(spec.parameters.get("start", 0)), float(spec.parameters.get("end", 10))
            else:
                low, high = self._bounds(spec, node, env)
            if spec.path in self.counts:
                roster = self.counts[spec.path] == "roster"
                size = self._household_size(rng) if roster else rng.choice((0, 0, 0, 1, 1, 2, 3))
                return str(size if (low is None or size >= low) and (high is None or size <= high) else int(low or 0))
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
            # Up to ten years back; redraws come closer to the interview ("in the last 3 months"), and half of
            # them go ahead of it, for constraints such as `. >= today()` (an appointment, a planned return).
            days = rng.randint(0, int(3650 * (1 - shrink)) + 1)
            ahead = shrink > 0 and rng.random() < 0.5
            return (when.date() + timedelta(days=days if ahead else -days)).isoformat()
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
        self, index: int, seed: int, presets: Mapping[str, str] | None = None, *, errors: float = 0.0
    ) -> tuple[str, bytes, int]:
        """Instance `index` of a run with `seed`: (instanceID, XML bytes, repeat rows).

        `presets` fixes the answers of top-level questions by name (sample IDs, interview outcome); a preset
        question that the skip logic makes non-relevant stays empty, as it would in Collect.

        Only an interview Collect could finalise is kept: one that reaches a relevant required note (a hard
        stop), leaves a relevant required question empty (a pick from a roster with no eligible member, a
        constraint no draw met) or that the validator would find anything in is drawn again from the next
        stream of the same seed, up to MAX_INSTANCE_ATTEMPTS times (the last attempt is kept and counted in
        `unfinalisable`).

        With `errors` > 0, a fault is planted with that probability (see `faults`); it is drawn from its own
        stream, so the instance is otherwise the one drawn without errors. The fault (if any) is in `planted`,
        and `duplicate` says whether the submission is to be written twice.
        """
        self._presets = presets or {}
        self.planted = []
        self.duplicate = False
        blocked: list[str] = []
        for attempt in range(MAX_INSTANCE_ATTEMPTS):
            rng = random.Random(f"{seed}:{index}" if attempt == 0 else f"{seed}:{index}:{attempt}")
            # The form's random() draws from the global generator: seed it for this instance, restore it after.
            saved = random.getstate()
            random.seed(rng.random())
            self._blocked = []
            self._visited = []
            self._unmet_now = []
            try:
                instance_id, root, rows = self._instance(rng)
            finally:
                random.setstate(saved)
            xml = _serialise(root)
            blocked = self._blocked or self._check(instance_id, xml)
            if not blocked:
                self._count_unmet()
                if attempt:
                    self.redrawn += 1
                if errors > 0:
                    faulty = random.Random(f"{seed}:{index}:errors")
                    if faulty.random() < errors:
                        xml = self._plant(instance_id, root, faulty) or xml
                return instance_id, xml, rows
        for reason in blocked:
            self.unfinalisable[reason] = self.unfinalisable.get(reason, 0) + 1
        self._count_unmet()
        return instance_id, xml, rows

    def _count_unmet(self) -> None:
        """Questions left empty in the kept draw because no value met their constraint."""
        for path in self._unmet_now:
            self.unmet[path] = self.unmet.get(path, 0) + 1

    def _plant(self, instance_id: str, root: XNode, rng: random.Random) -> bytes | None:
        """Plant one fault of a kind drawn evenly among those this instance allows; the XML with it, or
        None when nothing could be planted (or for a duplicate, which the writer makes)."""
        if self._unread is None:
            self._unread = unread_fields(self.form)
        if self._checker is None:
            self._checker = compile_form(self.form, media_dir=self.media_dir)
        day = self._day or FIELDWORK_START
        options = candidates(self.form, self._unread, self._visited, day)
        kinds = sorted(options)
        if self.allow_duplicates:
            kinds.append(DUPLICATE_INSTANCE)
        rng.shuffle(kinds)
        for kind in kinds:
            if kind == DUPLICATE_INSTANCE:
                self.duplicate = True
                self.planted = [PlantedFault(instance_id, f"{self.form.root}/meta/instanceID", kind)]
                return None
            tries = options[kind]
            rng.shuffle(tries)
            for candidate in tries[:MAX_PLANT_TRIES]:
                before = candidate.node.text
                candidate.node.text = candidate.text
                xml = _serialise(root)
                findings = self._findings(self._checker, instance_id, xml)
                if (
                    len(findings) == 1
                    and findings[0].code == kind
                    and _generic(findings[0].path) == candidate.spec.path
                ):
                    self.planted = [PlantedFault(instance_id, findings[0].path, kind)]
                    return xml
                candidate.node.text = before
        return None

    def _check(self, instance_id: str, xml: bytes) -> list[str]:
        """What the validator finds in a drawn instance, as `code path` strings (empty when it is clean)."""
        if self._checker is None:
            return []
        return [f"{f.code} {_generic(f.path)}" for f in self._findings(self._checker, instance_id, xml)]

    @staticmethod
    def _findings(checker: CompiledForm, instance_id: str, xml: bytes) -> list[Finding]:
        """The validator's findings in one instance that its answers cause (not the form's own problems)."""
        result = validate_submissions(checker, [(instance_id, xml)], check_duplicates=False)
        form_level = set(checker.problems)
        return [f for f in result.findings if f not in form_level and f.code not in _NOT_REDRAWN]

    def _instance(self, rng: random.Random) -> tuple[str, XNode, int]:
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
        rows = self._fill(form.nodes[form.root], root, env, rng, when, instance_id, calculations, relevant=True)
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
        self._day = when.date()
        return instance_id, root, rows

    @staticmethod
    def _stored(value: Any, spec: Node, env: EvalEnv) -> tuple[str | None, Any]:
        """What JavaRosa writes into the node for a calculation's result (NaN and "" leave it empty), and the
        in-memory value later expressions read (a number stays a number, not its text)."""
        if value is None:
            return None, None
        text, typed = wrap_calculated(value, spec.data_type, env.tz)
        return (text, typed) if text else (None, None)

    def _fill(  # noqa: PLR0912, PLR0917
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
                    rows += 1 + self._fill(child, node, env, rng, when, instance_id, calculations, relevant=True)
                continue
            node = parent.append(XNode(child.name, None, None, child.data_type))
            here = relevant and self._true(child.relevant, node, env, child.path, default=True)
            if child.kind == "field":
                self._visited.append((node, child, here))
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
            elif child.question_type == "note":
                # A relevant required note is a hard stop: Collect cannot finalise the interview.
                if child.required and self._true(child.required, node, env, child.path, default=False):
                    self._blocked.append(f"hard_stop {child.path}")
            else:
                self._answer(child, node, env, rng, when)
                if (
                    node.text is None
                    and child.required
                    and self._true(child.required, node, env, child.path, default=False)
                ):
                    self._blocked.append(f"required_missing {child.path}")
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
        # in one case): those values are tried first, in random order. Beside a regex() the pattern is the rule
        # and a named value (`regex(., '^[A-Z]{2}$') or . = 'none'`) the exception, tried first in 1 of 5.
        candidates = list(self._equality_values(spec))
        rng.shuffle(candidates)
        if candidates and self._regex_patterns(spec) and rng.random() >= NAMED_VALUE_SHARE:
            candidates = []
        for candidate, literal in candidates:
            value = self._eval_compiled(candidate, node, env, spec.path)
            text = to_string(value, env.tz) if value is not None else ""
            # A literal DK/refused code stays at its small rate; a copied answer is copied whatever it is.
            if text and not (literal and text in _SENTINELS):
                node.set(text)
                if self._true(spec.constraint, node, env, spec.path, default=False):
                    return
        for attempt in range(MAX_DRAWS):
            node.set(_as_collect_stores(spec, self._draw(spec, node, env, rng, when, shrink=attempt / MAX_DRAWS)))
            if node.text is None or self._true(spec.constraint, node, env, spec.path, default=True):
                return
        # Nothing drawn fits: an enumerator would record don't know where the question allows it.
        for sentinel in (str(NUMERIC_DONT_KNOW), CHOICE_DONT_KNOW):
            offered = (
                spec.data_type in {"int", "decimal"}
                if sentinel.startswith("-")
                else spec.is_select and sentinel in self._choice_values(spec, node, env)
            )
            if offered:
                node.set(sentinel)
                if self._true(spec.constraint, node, env, spec.path, default=False):
                    return
        node.set(None)
        self._unmet_now.append(spec.path)


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
        media_dir: the form's attachments (CSV files for pulldata()); default `<form>-media/` next to the form
            file when it exists, else the form's own folder (where validate looks too).
        presets: for the k-th instance made here, answers of top-level questions by name (e.g. the sample IDs
            and interview outcome of the k-th selected household); len(presets) must be n.
        answers: how often answers are given, by question name (see `load_answers`).
    """
    if presets is not None and len(presets) != n:
        raise ValueError(f"presets has {len(presets)} entries for {n} instances")
    generator = Generator(form, media_dir, answers)
    return [
        generator.instance(i, seed, presets[i - start] if presets is not None else None)[:2]
        for i in range(start, start + n)
    ]


def _as_collect_stores(spec: Node, value: str | None) -> str | None:
    """A date as Collect stores it for the question's appearance.

    A `month-year` widget has no day, so Collect records the first of the month; a `year` widget records the first
    of January. Simulated answers follow, so that exports (SPSS MOYR, Stata %tm) and constraints see real values.
    """
    if value is None or spec.data_type != "date" or len(value) != len("2026-12-07"):
        return value
    appearance = (spec.appearance or "").split()
    if "month-year" in appearance:
        return value[:8] + "01"
    if "year" in appearance:
        return value[:5] + "01-01"
    return value
