"""JavaRosa's own XPath test cases, run through migkit's evaluators.

tests/fixtures/javarosa-xpath/cases.json holds the cases of getodk/javarosa's XPathEvalTest, XPathParseTest,
DateUtilsFormatTests (%W) and the geo, repeat and randomize scenario tests as data (expression, instance, expected value or error;
extract.py rebuilds it from a javarosa checkout). Each evaluable case runs through the per-instance evaluator,
and the instance-free ones also through the column evaluator when it vectorises them. The cases that need
Java objects (or no context node at all) are listed, with the reason, in the fixture's README; a test checks that list against the data.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lxml import etree

from toolkit.xpath import (
    EvalEnv,
    XNode,
    XPathError,
    XPathRejectedError,
    XPathSyntaxError,
    build_tree,
    compile_xpath,
    java_double_str,
    parse,
    to_string,
)
from toolkit.xpath.syntax import Binary, Call, Expr, LocationPath, Negate, Number, String
from toolkit.xpath.vector import DT, B, Ctx, D, Level, N, NotVectorizable, S, VCompiler

FIXTURE = Path(__file__).parent / "fixtures" / "javarosa-xpath"
DOCUMENT = json.loads((FIXTURE / "cases.json").read_text(encoding="utf-8"))
CASES = [c for c in DOCUMENT["cases"] if "not_run" not in c]
EVAL_CASES = [c for c in CASES if c["kind"] == "eval"]
PARSE_CASES = [c for c in CASES if c["kind"] == "parse"]
CALC_CASES = [c for c in CASES if c["kind"] == "calc"]
TODAY = date(2026, 12, 7)


def _number(value: Any) -> float:
    return float(value) if not isinstance(value, str) else float(value.replace("Infinity", "inf"))


def _agrees(actual: Any, expected: dict[str, Any]) -> bool:
    kind, want = expected["type"], expected["value"]
    if kind == "number":
        if not isinstance(actual, float):
            return False
        target = _number(want)
        if math.isnan(target):
            return math.isnan(actual)
        if math.isinf(target):
            return actual == target
        # JUnit's assertEquals(double, double, 1e-12), as XPathEvalTest uses (-0.0 equals 0.0)
        return abs(actual - target) <= max(expected.get("tolerance", 1e-12), 1e-12)
    if kind == "string":
        return isinstance(actual, str) and actual == want
    if kind == "boolean":
        return isinstance(actual, bool) and actual == want
    if kind == "date":
        return type(actual) is date and actual.isoformat() == want
    if kind == "dateTime":
        expected_moment = datetime.fromisoformat(want).replace(tzinfo=UTC)
        return isinstance(actual, datetime) and actual == expected_moment
    if kind == "nodeset":
        return isinstance(actual, list) and [n.path() for n in actual] == want
    raise AssertionError(f"unknown expected type {kind}")


def _tree(instance: str | None) -> XNode:
    return build_tree(etree.fromstring(instance if instance is not None else "<data/>"))


def _scalar(case: dict[str, Any]) -> tuple[bool, str]:
    root = _tree(case["instance"])
    env = EvalEnv(root=root, today=TODAY, tz=UTC)
    expected = case["expected"]
    try:
        actual = compile_xpath(case["expression"]).evaluate(root, env=env)
    except XPathError as exc:
        return expected["type"] == "error", f"raised {type(exc).__name__}: {exc}"
    if expected["type"] == "error":
        return False, f"gave {actual!r}, JavaRosa raises {expected['value']}"
    return _agrees(actual, expected), f"gave {actual!r}, JavaRosa gives {expected['value']!r}"


@pytest.mark.parametrize("case", EVAL_CASES, ids=[c["id"] for c in EVAL_CASES])
def test_per_instance_evaluator_agrees_with_javarosa(case: dict[str, Any]) -> None:
    agrees, detail = _scalar(case)
    assert agrees, f"{case['expression']!r}: {detail}"


# --- the column evaluator, on one row -------------------------------------------------------------------------

_TAG_TYPES = {S: "string", N: "number", B: "boolean", D: "date", DT: "dateTime"}


def _column_value(expression: str) -> tuple[str, Any]:
    compiler = VCompiler({"/data": "/data"}, {"/data": "group"}, "/data")
    fn = compiler.compile(expression, "/data")
    level = Level("/data", 1, None, None, np.ones(1, dtype=np.int64))
    ctx = Ctx(
        levels={"/data": level},
        level_of={"/data": "/data"},
        values={},
        relevance={"/data": np.ones(1, dtype=bool)},
        secondary={},
        today=TODAY,
        labels={},
        node_kinds={"/data": "group"},
    )
    tv = fn(ctx, level)
    tag = int(tv.t[0])
    if tag == S:
        return "string", str(tv.s[0])
    if tag == B:
        return "boolean", bool(tv.n[0])
    if tag == D:
        return "date", date.fromordinal(date(1970, 1, 1).toordinal() + int(tv.n[0]))
    return _TAG_TYPES[tag], float(tv.n[0])


COLUMN_CASES = [c for c in EVAL_CASES if c["instance"] is None and c["expected"]["type"] != "dateTime"]


@pytest.mark.parametrize("case", COLUMN_CASES, ids=[c["id"] for c in COLUMN_CASES])
def test_column_evaluator_agrees_with_javarosa_where_it_vectorises(case: dict[str, Any]) -> None:
    expected = case["expected"]
    try:
        kind, value = _column_value(case["expression"])
    except NotVectorizable:
        return  # the column path hands this expression to the per-instance evaluator, tested above
    except XPathError as exc:
        assert expected["type"] == "error", f"{case['expression']!r} raised {exc}"
        return
    if expected["type"] == "error":
        # A vectorised run cannot raise per row: the column path must then not vectorise it at all.
        pytest.fail(f"{case['expression']!r} gave {value!r}; JavaRosa raises {expected['value']}")
    if kind == "date":
        assert expected["type"] == "date" and value.isoformat() == expected["value"], case["expression"]
        return
    assert _agrees(value, expected), f"{case['expression']!r}: column path gave {value!r}"


# --- parse trees in JavaRosa's toString notation ---------------------------------------------------------------

_JR_OPERATORS = {"=": "==", "div": "/", "mod": "%", "|": "union"}


def _jr_tree(ast: Expr) -> str:
    match ast:
        case Number(value=value):
            return "{num:" + java_double_str(value) + "}"
        case String(value=value):
            return "{str:'" + value + "'}"
        case Negate(operand=operand):
            return "{unop-expr:num-neg," + _jr_tree(operand) + "}"
        case Binary(op=op, left=left, right=right) if op in ("and", "or"):
            # JavaRosa nests and/or chains to the right (same value)
            chain: list[Expr] = [right]
            while isinstance(left, Binary) and left.op == op:
                chain.insert(0, left.right)
                left = left.left
            chain.insert(0, left)
            text = _jr_tree(chain[-1])
            for item in reversed(chain[:-1]):
                text = "{binop-expr:" + op + "," + _jr_tree(item) + "," + text + "}"
            return text
        case Binary(op=op, left=left, right=right):
            return "{binop-expr:" + _JR_OPERATORS.get(op, op) + "," + _jr_tree(left) + "," + _jr_tree(right) + "}"
        case Call(name=name, args=args):
            return "{func-expr:" + name + ",{" + ",".join(_jr_tree(a) for a in args) + "}}"
        case LocationPath(absolute=absolute, steps=steps, base=base):
            head = "abs" if absolute else "rel"
            if base is not None:
                head = "{filt-expr:" + _jr_tree(base) + ",{}}"
            parts = []
            for step in steps:
                text = "{step:" + step.axis + "," + step.name
                if step.predicates:
                    text += ",{" + ",".join(_jr_tree(p) for p in step.predicates) + "}"
                parts.append(text + "}")
            return "{path-expr:" + head + ",{" + ",".join(parts) + "}}"
    raise TypeError(ast)


@pytest.mark.parametrize("case", PARSE_CASES, ids=[c["id"] for c in PARSE_CASES])
def test_parser_agrees_with_javarosa(case: dict[str, Any]) -> None:
    expected = case["expected"]["value"]
    try:
        tree = parse(case["expression"])
    except XPathRejectedError:
        # JavaRosa parses these but can never evaluate them (unions, axes, //, node tests): refused up front.
        assert expected is not None, f"{case['expression']!r} is a syntax error in JavaRosa"
        return
    except XPathSyntaxError:
        assert expected is None, f"{case['expression']!r} parses in JavaRosa as {expected}"
        return
    assert expected is not None, f"{case['expression']!r} is a syntax error in JavaRosa"
    assert _jr_tree(tree) == expected


# --- scenario tests: a calculate bind evaluated over a small main instance ---------------------------------------


def _node_at(root: XNode, path: str) -> XNode:
    node = root
    for step in [x for x in path.split("/") if x][1:]:
        name, _, index = step.partition("[")
        node = [c for c in node.children if c.name == name][int(index.rstrip("]") or 1) - 1]
    return node


def _calculated(case: dict[str, Any]) -> Any:
    """The target's value after every calculate bind ran at each of its nodes (twice, so chains settle)."""
    types = {path: props["type"] for path, props in case["binds"].items() if "type" in props}
    root = build_tree(etree.fromstring(case["instance"]), types=types)
    secondary = {name: build_tree(etree.fromstring(xml)) for name, xml in case["secondary"].items()}
    env = EvalEnv(root=root, secondary=secondary, today=TODAY, tz=UTC)
    values: dict[int, Any] = {}
    for _ in range(2):
        for path, props in case["binds"].items():
            if "calculate" not in props:
                continue
            for node in [n for n in root.iter() if n.generic_path() == path]:
                try:
                    values[id(node)] = compile_xpath(props["calculate"]).evaluate(node, env=env)
                except XPathError as exc:
                    values[id(node)] = exc
                    continue
                node.set(to_string(values[id(node)], UTC))
    result = values[id(_node_at(root, case["target"]))]
    if isinstance(result, XPathError):
        raise result
    return result


@pytest.mark.parametrize("case", CALC_CASES, ids=[c["id"] for c in CALC_CASES])
def test_calculations_agree_with_javarosa_scenarios(case: dict[str, Any]) -> None:
    expected = case["expected"]
    if expected["type"] == "error":
        with pytest.raises(XPathError):
            _calculated(case)
        return
    assert _agrees(_calculated(case), expected)


def test_every_case_not_run_is_listed_with_its_reason_in_the_readme() -> None:
    readme = (FIXTURE / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([^`]+#\d+)` \|", readme, flags=re.MULTILINE))
    not_run = {c["id"] for c in DOCUMENT["cases"] if "not_run" in c}
    assert not_run == listed
    assert DOCUMENT["licence"] == "Apache-2.0" and len(DOCUMENT["commit"]) == 40
