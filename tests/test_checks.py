"""The rule catalogue (toolkit.checks): each rule on a submission's answers gives the same findings, message
included, through the per-instance evaluator and the column evaluator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import write_md_form
from toolkit.checks import rules
from toolkit.checks.rules import Finding, Rule
from toolkit.validate import compile_form, validate_input
from toolkit.xform import load_form

AGE_FORM = """
| survey |
| | type | name | label | relevant | required | constraint |
| | integer | age | Age | | yes | . <= 110 |
| | text | job | Job | ${age} >= 15 | | |
| | text | name | Name | | yes | |
| | note | stop | Too old to be true | ${age} > 100 | yes | |
| | acknowledge | seen | Seen? | ${age} > 105 | yes | |
"""
CALCULATION_FORM = """
| survey |
| | type | name | label | calculation |
| | integer | a | A | |
| | calculate | double | | ${a} * 2 |
| | text | when | When | |
| | calculate | year | | format-date(date(${when}), '%Y') |
"""
CHOICES_FORM = """
| survey |
| | type | name | label | choice_filter |
| | select_one yn | q | Q | |
| | select_multiple yn | many | Many | |
| | select_one region | region | Region | |
| | select_one district | district | District | region = ${region} |
| | select_multiple district | visited | Visited | region = ${region} |

| choices |
| | list_name | name | label | region |
| | yn | 1 | Yes | |
| | yn | 0 | No | |
| | region | r1 | North | |
| | region | r2 | South | |
| | district | d1 | Upper | r1 |
| | district | d2 | Lower | r1 |
| | district | d3 | Coast | r2 |
"""
PICK_FORM = """
| survey |
| | type | name | label | calculation |
| | begin_repeat | roster | Member | |
| | text | member | Name | |
| | calculate | line | | concat(position(..), '-', ${member}) |
| | end_repeat | | | |
| | select_one ${line} | head | Head of household | |
"""
ROSTER = (
    "<roster><member>Aziz</member><line>1-Aziz</line></roster>"
    "<roster><member>Olga</member><line>2-Olga</line></roster>"
)
FINE_AGE = "<age>30</age><job>baker</job><name>A</name><stop/><seen/>"

# rule -> (form, submissions as uid -> the elements under the root); each breaks the rule at least once, next to
# submissions that do not.
CASES: dict[str, tuple[str, dict[str, str]]] = {
    "NONRELEVANT": (AGE_FORM, {"ok": FINE_AGE, "child": "<age>10</age><job>herder</job><name>B</name><stop/><seen/>"}),
    "REQUIRED_EMPTY": (AGE_FORM, {"ok": FINE_AGE, "blank": "<age/><job/><name/><stop/><seen/>"}),
    "REQUIRED_ABSENT": (AGE_FORM, {"ok": FINE_AGE, "gone": "<age>40</age><job>smith</job><stop/><seen/>"}),
    "HARD_STOP": (AGE_FORM, {"ok": FINE_AGE, "old": "<age>104</age><job>retired</job><name>C</name><stop/><seen/>"}),
    "CONSTRAINT": (AGE_FORM, {"ok": FINE_AGE, "older": "<age>140</age><job>x</job><name>D</name><stop/><seen>OK</seen>"}),
    "CALCULATION_EDITED": (
        CALCULATION_FORM,
        {
            "ok": "<a>3</a><double>6</double><when>2024-05-01</when><year>2024</year>",
            "edited": "<a>3</a><double>7</double><when>2024-05-01</when><year>2023</year>",
            "blank": "<a>4</a><double/><when>2024-05-01</when><year>2024</year>",
        },
    ),
    "EXPRESSION_FAILS": (
        CALCULATION_FORM,
        {
            "ok": "<a>3</a><double>6</double><when>2024-05-01</when><year>2024</year>",
            "bad": "<a>3</a><double>6</double><when>not a date</when><year/>",
        },
    ),
    "NOT_IN_LIST": (
        CHOICES_FORM,
        {
            "ok": "<q>1</q><many>1 0</many><region>r1</region><district>d1</district><visited>d1 d2</visited>",
            "one": "<q>7</q><many>1</many><region>r1</region><district>d1</district><visited/>",
            "many": "<q>0</q><many>1 zz 0 yy</many><region>r3</region><district/><visited/>",
        },
    ),
    "FILTERED_OUT": (
        CHOICES_FORM,
        {
            "ok": "<q>1</q><many/><region>r2</region><district>d3</district><visited>d3</visited>",
            "one": "<q>1</q><many/><region>r1</region><district>d3</district><visited>d1</visited>",
            "many": "<q>1</q><many/><region>r2</region><district>d3</district><visited>d1 d3 d2</visited>",
        },
    ),
    "NOT_A_ROW": (
        PICK_FORM,
        {"ok": f"{ROSTER}<head>2-Olga</head>", "edited": f"{ROSTER}<head>2-Olgaa</head>", "gone": f"{ROSTER}<head>3-X</head>"},
    ),
}


def _made_by(rule: Rule, finding: Finding) -> bool:
    """Whether a finding's code and message are the rule's (its template with any text in the fields)."""
    pattern = ".*".join(re.escape(part) for part in re.split(r"\{[^}]*\}", rule.template))
    return finding.code == rule.code and re.fullmatch(pattern, finding.message, re.DOTALL) is not None


def _seen(findings: tuple[Finding, ...]) -> list[tuple[object, ...]]:
    # `source` is the file on the per-instance path and the KEY on the column path; the rest is the same.
    return sorted(
        (f.instance_id, f.path, f.code, f.value, f.expression, f.message, f.severity, f.variable, f.enumerator, f.absent)
        for f in findings
    )


def test_every_rule_on_the_answers_has_a_case() -> None:
    assert sorted(CASES) == sorted(name for name, rule in vars(rules).items() if rule in rules.ANSWER_RULES)


@pytest.mark.parametrize(("rule_name", "md", "bodies"), [(k, *v) for k, v in CASES.items()], ids=list(CASES))
def test_each_rule_gives_the_same_findings_through_both_evaluators(
    tmp_path: Path, rule_name: str, md: str, bodies: dict[str, str]
) -> None:
    form = compile_form(load_form(write_md_form(tmp_path, md)))
    subs = tmp_path / "subs"
    subs.mkdir()
    for uid, body in bodies.items():
        xml = f'<data id="{form.model.form_id}">{body}<meta><instanceID>uuid:{uid}</instanceID></meta></data>'
        (subs / f"{uid}.xml").write_text(xml, encoding="utf-8")
    by_instances = validate_input(form, subs, method="instances")
    by_columns = validate_input(form, subs, method="columns")
    assert by_columns.stats["method"] == "columns"
    assert _seen(by_columns.findings) == _seen(by_instances.findings)
    rule = getattr(rules, rule_name)
    made = [f for f in by_instances.findings if _made_by(rule, f)]
    assert made, f"no finding of {rule_name}: {[f.message for f in by_instances.findings]}"
    assert all(f.instance_id != "uuid:ok" for f in made)
