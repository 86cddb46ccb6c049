"""Geo functions, seeded randomize() and absolute paths in repeats: migkit's values equal JavaRosa's.

JavaRosa itself (pyxform's ODK_Validate.jar, through tests/java/jrcheck) computes every calculation of a form on
random instances. Texts must be equal; numbers may differ in the last bits only (1e-12 relative), because Java's
Math.sin/cos/acos and the C library's may round the last digit differently.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.java.jrcheck import javarosa_check
from tests.test_validate_javarosa import _model_from_md, _ours
from toolkit.validate import compile_form
from toolkit.xform import parse_xform

pytestmark = pytest.mark.java

GEO_FORM = """
| survey |
| | type | name | label | calculation |
| | geopoint | p1 | P1 | |
| | geopoint | p2 | P2 | |
| | geoshape | shape | Shape | |
| | geotrace | trace | Trace | |
| | calculate | d_text | | distance(concat(${p1}, ';', ${p2})) |
| | calculate | d_args | | distance(${p1}, ${p2}, '12.5 -3.25 0 0') |
| | calculate | d_trace | | distance(${trace}) |
| | calculate | d_shape | | distance(${shape}) |
| | calculate | a_shape | | area(${shape}) |
| | calculate | inside | | geofence(${p1}, ${shape}) |
| | integer | seed_num | Seed | |
| | text | seed_text | Seed | |
| | calculate | order_num | | join(' ', randomize(instance('fruits')/root/item/name, ${seed_num})) |
| | calculate | order_text | | join(' ', randomize(instance('fruits')/root/item/name, ${seed_text})) |
| | begin_repeat | outer | Outer | |
| | integer | q | Q | |
| | calculate | q_abs | | /data/outer/q * 2 |
| | begin_repeat | inner | Inner | |
| | geopoint | stop | Stop | |
| | calculate | pinned | | /data/outer/q + count(/data/outer/inner) |
| | end_repeat | | | |
| | calculate | route | | distance(../inner/stop) |
| | end_repeat | | | |
| choices |
| | list_name | name | label |
| | fruits | apple | Apple |
| | fruits | banana | Banana |
| | fruits | cherry | Cherry |
| | fruits | date | Date |
| | fruits | elder | Elder |
| | fruits | fig | Fig |
| | fruits | grape | Grape |
| settings |
| | form_id | |
| | data | |
"""


def _point(rng: random.Random) -> str:
    return f"{rng.uniform(-60, 60):.6f} {rng.uniform(-170, 170):.6f} {rng.uniform(0, 900):.1f} 5"


def _shape(rng: random.Random) -> str:
    lat, lon = rng.uniform(-50, 50), rng.uniform(-150, 150)
    points = [f"{lat + rng.uniform(-0.2, 0.2):.7f} {lon + rng.uniform(-0.2, 0.2):.7f} 0 0" for _ in range(rng.randint(3, 6))]
    return ";".join([*points, points[0]])


def _instance(rng: random.Random, root: str, form_id: str) -> str:
    outers = []
    for _ in range(rng.randint(1, 3)):
        stops = "".join(f"<inner><stop>{_point(rng)}</stop><pinned/></inner>" for _ in range(rng.randint(1, 3)))
        outers.append(f"<outer><q>{rng.randint(-5, 40)}</q><q_abs/>{stops}<route/></outer>")
    seed_num = rng.choice([str(rng.randint(-10**6, 10**9)), "0", "", "2147483647"])
    # Text seeds that are not numbers are hashed with SHA-256 by JavaRosa; the ODK_Validate.jar build lacks the
    # BouncyCastle class it uses for that, so only numeric and empty texts are compared here.
    seed_text = rng.choice(["", "12.7", "-3", " 42 "])
    shape = _shape(rng)
    # p1 close to the shape half the time, so that geofence() gives both answers
    p1 = _point(rng) if rng.random() < 0.5 else " ".join(shape.split(";")[0].split()[:2]) + " 0 0"
    blanks = "<d_text/><d_args/><d_trace/><d_shape/><a_shape/><inside/>"
    return (
        f'<{root} id="{form_id}"><p1>{p1}</p1><p2>{_point(rng)}</p2><shape>{shape}</shape>'
        f"<trace>{_shape(rng).rsplit(';', 1)[0]}</trace>{blanks}<seed_num>{seed_num}</seed_num>"
        f"<seed_text>{seed_text}</seed_text><order_num/><order_text/>{''.join(outers)}"
        f"<meta><instanceID>uuid:{uuid.UUID(int=rng.getrandbits(128))}</instanceID></meta></{root}>"
    )


def _same(ours: str, theirs: str) -> bool:
    if ours == theirs:
        return True
    try:
        x, y = float(ours), float(theirs)
    except ValueError:
        return False
    return abs(x - y) <= 1e-12 * max(abs(x), abs(y))


def test_geo_randomize_and_repeat_paths_equal_javarosa(tmp_path: Path) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    require_tool("javac", "openjdk-17-jdk-headless")
    model, xform = _model_from_md(tmp_path, GEO_FORM)
    (tmp_path / "form.xml").write_text(xform, encoding="utf-8")
    rng = random.Random(7)
    files = []
    for i in range(40):
        path = tmp_path / f"i{i:03d}.xml"
        path.write_text(_instance(rng, model.root[1:], model.form_id), encoding="utf-8")
        files.append(path)
    theirs = javarosa_check(tmp_path / "form.xml", files)
    form = compile_form(model)
    problems, compared = [], 0
    for path in files:
        jr = theirs[str(path)]
        assert not isinstance(jr, str), f"{path.name}: JavaRosa failed: {jr}"
        values = {node.path: node.value for node in jr}
        ours, _ = _ours(form, path.read_bytes())
        for node_path, _relevant, _required, _constraint, value in ours:
            node = model.nodes.get(_generic(node_path))
            if node is None or node.calculate is None:
                continue
            compared += 1
            if not _same(value, values[node_path]):
                problems.append(f"{path.name} {node_path}: ours={value!r} javarosa={values[node_path]!r}")
    assert not problems, "\n".join(problems[:30])
    assert compared > 400
    orders = {n.value for nodes in theirs.values() for n in nodes if n.path.endswith("order_num")}
    assert len(orders) > 5  # the seeds do shuffle


def _generic(path: str) -> str:
    return "/".join(part.split("[")[0] for part in path.split("/"))


CHOICE_NAME_FORM = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | calculation |
| | select_one yn | q | Q | В | |
| | calculate | qn | | | jr:choice-name(${q}, '${q}') |
| choices |
| | list_name | name | code | label::English (en) | label::Russian (ru) |
| | yn | 1 | y | Yes | Да |
| | yn | 2 | n | No | Нет |
| | yn | 3 | n | Never | Никогда |
| settings |
| | form_id | default_language |
| | data | Russian (ru) |
"""


def test_choice_name_follows_any_default_attribute_and_the_itemset_value_element(tmp_path: Path) -> None:
    """`default=""` on a translation makes it the default (JavaRosa reads the attribute's presence), and an
    itemset whose value element is `code` answers with codes: jr:choice-name() finds the first choice by code."""
    require_tool("java", "openjdk-17-jre-headless")
    require_tool("javac", "openjdk-17-jdk-headless")
    model, xform = _model_from_md(tmp_path, CHOICE_NAME_FORM)
    assert 'default="true()"' in xform and '<value ref="name"/>' in xform
    xform = xform.replace('default="true()"', 'default=""').replace('<value ref="name"/>', '<value ref="code"/>')
    (tmp_path / "form.xml").write_text(xform, encoding="utf-8")
    model = parse_xform(xform, source=str(tmp_path / "form.md"))
    files = []
    for k, answer in enumerate(["y", "n", "1", ""]):
        path = tmp_path / f"i{k}.xml"
        path.write_text(
            f'<data id="{model.form_id}"><q>{answer}</q><qn/><meta><instanceID>uuid:{k}</instanceID></meta></data>',
            encoding="utf-8",
        )
        files.append(path)
    theirs = javarosa_check(tmp_path / "form.xml", files)
    form = compile_form(model)
    ours = {path.name: {p: v for p, *_, v in _ours(form, path.read_bytes())[0]} for path in files}
    jr = {path.name: {n.path: n.value for n in theirs[str(path)]} for path in files}
    assert [jr[p.name]["/data/qn"] for p in files] == ["Да", "Нет", "", ""]
    assert [ours[p.name]["/data/qn"] for p in files] == [jr[p.name]["/data/qn"] for p in files]
