"""Absolute paths inside repeats read the current repeat instance, as JavaRosa contextualizes them.

JavaRosa's RepeatTest.absoluteSingleNodePaths_areQualified_forLegacyPurposes: `/data/outer/outerq1 + 1` computed
in `/data/outer[2]` reads `/data/outer[2]/outerq1` (24 when outerq1 is 23), not every outer's outerq1. Both the
per-instance and the column validator must agree with that (tests/fixtures/javarosa-xpath has the scenario too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.conftest import write_md_form
from toolkit.validate import compile_form, validate_input
from toolkit.xform import load_form
from toolkit.xpath import EvalEnv, build_tree, compile_xpath

NESTED = """
| survey |
| | type | name | label | calculation |
| | begin_repeat | outer | Outer | |
| | integer | outerq1 | Q1 | |
| | calculate | outercalcabs | | /data/outer/outerq1 + 1 |
| | begin_repeat | inner | Inner | |
| | integer | innerq1 | Q | |
| | calculate | innercalcabs | | /data/outer/inner/innerq1 + /data/outer/outerq1 |
| | calculate | inner_count | | count(/data/outer/inner) |
| | end_repeat | | | |
| | end_repeat | | | |
| | calculate | total | | sum(/data/outer/outerq1) |
"""


def _submission(form_id: str, uid: str, outers: list[tuple[int, int, list[tuple[int, int, int]]]], total: int) -> str:
    parts = []
    for q1, calc, inners in outers:
        inner_xml = "".join(
            f"<inner><innerq1>{q}</innerq1><innercalcabs>{c}</innercalcabs><inner_count>{n}</inner_count></inner>"
            for q, c, n in inners
        )
        parts.append(f"<outer><outerq1>{q1}</outerq1><outercalcabs>{calc}</outercalcabs>{inner_xml}</outer>")
    return (
        f'<data id="{form_id}">{"".join(parts)}<total>{total}</total>'
        f"<meta><instanceID>uuid:{uid}</instanceID></meta></data>"
    )


@pytest.mark.parametrize("method", ["instances", "columns"])
def test_absolute_paths_in_repeats_read_the_current_instance_on_both_paths(tmp_path: Path, method: str) -> None:
    form = compile_form(load_form(write_md_form(tmp_path, NESTED)))
    subs = tmp_path / "subs"
    subs.mkdir()
    # As Collect stores them: each calculation from its own repeat instance; count(/data/outer/inner) inside an
    # inner counts that inner only (both levels pinned), sum() outside the repeats adds every outer.
    good = [(5, 6, [(18, 23, 1), (19, 24, 1)]), (23, 24, [(1, 24, 1)])]
    (subs / "good.xml").write_text(_submission(form.model.form_id, "good", good, 28), encoding="utf-8")
    # Computed as a standards XPath engine would (always the first outer): wrong for Collect.
    first = [(5, 6, [(18, 23, 2)]), (23, 6, [(1, 6, 1)])]
    (subs / "first.xml").write_text(_submission(form.model.form_id, "first", first, 28), encoding="utf-8")
    result = validate_input(form, subs, method=method)
    assert result.stats["method"] == method
    found = sorted((f.instance_id, f.path, f.code) for f in result.findings)
    assert found == [
        ("uuid:first", "/data/outer[1]/inner[1]/inner_count", "calculate_mismatch"),
        ("uuid:first", "/data/outer[2]/inner[1]/innercalcabs", "calculate_mismatch"),
        ("uuid:first", "/data/outer[2]/outercalcabs", "calculate_mismatch"),
    ]


@pytest.mark.parametrize(
    ("expr", "context", "expected"),
    [
        ("/data/outer/q + 1", "/data/outer[2]/calc", 24.0),
        ("/data/outer/q + 1", "/data/outer[1]/calc", 6.0),
        ("count(/data/outer)", "/data/outer[2]/calc", 1.0),  # JavaRosa pins the repeat itself too
        ("count(/data/outer)", "/data/top", 2.0),
        ("sum(/data/outer/inner/x)", "/data/outer[2]/calc", 7.0),
        ("number(/data/outer/inner/x)", "/data/outer[2]/inner[2]/y", 4.0),
        ("sum(/data/outer[1]/inner/x)", "/data/outer[2]/calc", 1.0),  # a predicate: that step is not pinned
        ("count(/data/outer[q > 0]/inner)", "/data/outer[1]/calc", 3.0),
        ("sum(../inner/x)", "/data/outer[2]/calc", 7.0),  # relative paths were already right
    ],
)
def test_absolute_path_pinning(expr: str, context: str, expected: float) -> None:
    root = build_tree(
        etree.fromstring(
            "<data><top/><outer><q>5</q><calc/><inner><x>1</x><y/></inner></outer>"
            "<outer><q>23</q><calc/><inner><x>3</x><y/></inner><inner><x>4</x><y/></inner></outer></data>"
        ),
        types={"/data/outer/q": "int", "/data/outer/inner/x": "int"},
        repeats=["/data/outer", "/data/outer/inner"],
    )
    node = root
    for step in context.split("/")[2:]:
        name, _, index = step.partition("[")
        node = [c for c in node.children if c.name == name][int(index.rstrip("]") or 1) - 1]
    assert compile_xpath(expr).evaluate(node, env=EvalEnv(root=root)) == expected
