"""What lint, validate and simulate do with expressions JavaRosa refuses, nested too deep, or in a calculate loop.

One parser in two dialects (toolkit.xpath.syntax: parse for the evaluator, parse_xlsform for lint): the messages and
the depth limit are the same, so that every command says the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_tool, write_md_form
from toolkit.forms import compile_form as compile_xlsform
from toolkit.forms.lint import LINT_CALCULATION_CYCLE, LINT_EXPRESSION_INVALID, lint_form
from toolkit.simulate import simulate
from toolkit.validate import compile_form
from toolkit.xform import load_form
from toolkit.xpath import (
    MAX_EXPRESSION_DEPTH,
    EvalEnv,
    XNode,
    XPathRejectedError,
    compile_xpath,
    parse,
)
from toolkit.xpath.syntax import Binary, Call, XPathSyntaxError, parse_xlsform

DEEP = "(" * 3000 + "1" + ")" * 3000


@pytest.mark.parametrize(
    "expr",
    [
        DEEP,
        "if(true(), " * 3000 + "1" + ", 0)" * 3000,
        "-" * 3000 + "1",
        "/data/x[" * 500 + "1" + "]" * 500,
    ],
    ids=["parentheses", "nested-if", "minus", "predicates"],
)
def test_deep_nesting_is_a_clear_error_in_both_parsers(expr: str) -> None:
    with pytest.raises(XPathRejectedError, match=f"more than {MAX_EXPRESSION_DEPTH} levels"):
        compile_xpath(expr)
    with pytest.raises(XPathSyntaxError, match=f"more than {MAX_EXPRESSION_DEPTH} levels"):
        parse_xlsform(expr.replace("/data/x", "${x}"))


def test_nesting_up_to_the_limit_parses_and_evaluates() -> None:
    depth = MAX_EXPRESSION_DEPTH
    nested_if = "if(1 > 0, " * (depth - 1) + "7" + ", 0)" * (depth - 1)
    parens = "(" * depth + "1 + 2 * 3 - 4 div 2 mod 3 = 5 or 6 < 7 and 8" + ")" * depth
    env = EvalEnv(root=XNode("data"))
    assert compile_xpath(nested_if).evaluate(env=env) == 7.0
    assert compile_xpath(parens).evaluate(env=env) is True
    assert compile_xpath("-" * depth + "3").evaluate(env=env) == 3.0
    assert isinstance(parse_xlsform(nested_if.replace("1 > 0", "${a} > 0")), Call)


@pytest.mark.parametrize(
    ("text", "xpath_text", "construct"),
    [
        ("count(${a} | ${b})", "count(/data/a | /data/b)", "union operator"),
        ("count(//item)", "count(//item)", "'//'"),
        ("count(${g}//x)", "count(/data/g//x)", "'//'"),
        ("ancestor::x = 1", "ancestor::x = 1", "ancestor:: axis"),
        ("${a}/text() = 'x'", "/data/a/text() = 'x'", "node test text()"),
        ("(${a})[1]", "(/data/a)[1]", "predicate on a parenthesised"),
        ("concat(${a}, 'x')/y", "concat(/data/a, 'x')/y", "path after an expression"),
        ("${g}/@* = ''", "/data/g/@* = ''", "wildcard"),
    ],
)
def test_what_javarosa_refuses_is_refused_with_the_same_message(text: str, xpath_text: str, construct: str) -> None:
    with pytest.raises(XPathSyntaxError) as lint_error:
        parse_xlsform(text)
    with pytest.raises(XPathRejectedError) as compile_error:
        parse(xpath_text)
    assert construct in str(lint_error.value) and "ODK Collect (JavaRosa) cannot evaluate" in str(lint_error.value)
    assert str(compile_error.value) == str(lint_error.value)


@pytest.mark.parametrize(
    ("text", "shape"),
    [("3mod4", "mod"), ("6and${a}", "and"), ("${a} div2", "div"), ("(5or2)", "or")],
)
def test_glued_operators_parse_as_javarosa_parses_them(text: str, shape: str) -> None:
    tree = parse_xlsform(text)
    assert isinstance(tree, Binary) and tree.op == shape
    evaluated = parse(text.replace("${a}", "/data/a"))
    assert isinstance(evaluated, Binary) and evaluated.op == shape


SURVEY = """
| survey |
| | type | name | label | calculation | relevant |
| | integer | age | Age | | |
| | calculate | deep | | {deep} | |
| | note | n | Note | | {deep} |
| | calculate | a | | ${{b}} + 1 | |
| | calculate | b | | ${{c}} * 2 | |
| | calculate | c | | ${{a}} - ${{age}} | |
| | calculate | self | | ${{self}} + 1 | |
| | calculate | fine | | ${{age}} + 1 | |
"""
# A calculation with a trigger is a setvalue action, not a calculate bind: reading itself is no loop.
TRIGGERED = """
| survey |
| | type | name | label | calculation | trigger |
| | integer | amount | Amount | | |
| | text | currency | Currency | if(${currency} = '', 'KZT', ${currency}) | ${amount} |
"""


def test_lint_reports_deep_nesting_and_calculation_loops_where_they_are(tmp_path: Path) -> None:
    path = write_md_form(tmp_path, SURVEY.format(deep=DEEP))
    report = lint_form(path, structure=False)
    deep = [i for i in report.issues if i.code == LINT_EXPRESSION_INVALID]
    assert [(i.location.row, i.location.column) for i in deep] == [(3, "calculation"), (4, "relevant")]
    assert all(f"more than {MAX_EXPRESSION_DEPTH} levels" in i.message for i in deep)
    loops = sorted(
        (i.location.row, i.location.variable, i.message) for i in report.issues if i.code == LINT_CALCULATION_CYCLE
    )
    assert [(row, name) for row, name, _ in loops] == [(5, "a"), (8, "self")]
    assert "${a} (row 5) -> ${b} (row 6) -> ${c} (row 7) -> ${a} (row 5)" in loops[0][2]
    assert "${self} (row 8) -> ${self} (row 8)" in loops[1][2]


@pytest.mark.parametrize(
    ("md", "loops"),
    [
        (SURVEY.format(deep="1"), {"a", "self"}),
        (SURVEY.format(deep="1").replace("${a} - ", ""), {"self"}),
        (TRIGGERED, set()),
    ],
    ids=["loop-and-self", "self", "trigger"],
)
def test_build_and_lint_agree_on_loops(tmp_path: Path, md: str, loops: set[str]) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    path = write_md_form(tmp_path, md)
    built = compile_xlsform(path, validate=True)
    assert ("Cycle detected" in " ".join(i.message for i in built.issues)) == bool(loops)
    assert {i.location.variable for i in lint_form(path).issues if i.code == LINT_CALCULATION_CYCLE} == loops


DEEP_FORM = """
| survey |
| | type | name | label | calculation | constraint |
| | integer | age | Age | | {deep} |
| | calculate | deep | | {deep} | |
"""


def test_validate_and_simulate_report_deep_nesting_on_the_bind(tmp_path: Path) -> None:
    model = load_form(write_md_form(tmp_path, DEEP_FORM.format(deep=DEEP.replace("1", "${age}"))))
    form = compile_form(model)
    problems = sorted((f.path, f.code) for f in form.problems)
    assert problems == [("/data/age", "expression_unsupported"), ("/data/deep", "expression_unsupported")]
    assert all(f"more than {MAX_EXPRESSION_DEPTH} levels" in f.message for f in form.problems)
    result = simulate(model, 3, tmp_path / "out", seed=1, workers=1)
    failed = {(i.location.path, i.code) for i in result.issues if "levels" in i.message}
    assert failed == {("/data/age", "simulate.expression_failed"), ("/data/deep", "simulate.expression_failed")}
