"""Differential tests: migkit's verdicts equal JavaRosa's on the same forms and instances.

Small markdown forms exercise the ODK function library, relevance inheritance, repeats (nested too), relative
paths and secondary instances. Instances are filled at random (seeded) with faults injected on purpose:
answers in non-relevant nodes, blanks in required ones, out-of-range values, wrong stored calculations.
JavaRosa (the engine of ODK Collect, inside pyxform's ODK_Validate.jar) loads each instance the way Collect
opens a saved form; we compare, node by node, relevance, required, constraint verdicts and recomputed
calculations, and then the findings.
"""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.conftest import FORMS_DIR, require_tool, write_md_form
from tests.java.jrcheck import JrNode, javarosa_check
from toolkit.forms import compile_form as compile_xlsform
from toolkit.validate import compile_form, instance_tree, validate_tree
from toolkit.xform import FormModel, parse_xform

pytestmark = pytest.mark.java

FUNCTIONS_FORM = """
| survey |
| | type | name | label | relevant | required | constraint | calculation | repeat_count |
| | integer | age | Age | | yes | . >= 0 and . <= 110 | | |
| | select_one yn | consent | Consent | | yes | | | |
| | begin_group | g | G | ${consent} = '1' | | | | |
| | text | name | Name | | yes | regex(., '[A-Za-z ]+') | | |
| | date | dob | Born | | | . <= today() | | |
| | calculate | age_calc | | | | | int((today() - ${dob}) div 365.25) | |
| | select_multiple lang | langs | Langs | | | count-selected(.) <= 2 | | |
| | text | other_lang | Other | selected(${langs}, 'other') | yes | | | |
| | integer | n_members | Members | | | . >= 1 and . <= 12 | | |
| | begin_repeat | hl | Member | | | | | ${n_members} |
| | text | hl_name | Name | | yes | | | |
| | integer | hl_age | Age | | | . < ${age} + 50 | | |
| | select_one sex | hl_sex | Sex | | yes | | | |
| | calculate | hl_pos | | | | | position(..) | |
| | calculate | hl_label | | | | | concat(${hl_name}, ' (', jr:choice-name(${hl_sex}, '${hl_sex}'), ')') | |
| | integer | hl_kids | Kids | ${hl_sex} = '2' and ${hl_age} >= 15 | yes | . <= 15 | | |
| | end_repeat | | | | | | | |
| | calculate | n_f | | | | | count(${hl}[hl_sex = '2']) | |
| | calculate | total_age | | | | | sum(${hl_age}) | |
| | calculate | max_age | | | | | max(${hl_age}) | |
| | calculate | first_name | | | | | indexed-repeat(${hl_name}, ${hl}, 1) | |
| | end_group | | | | | | | |
| | decimal | income | Income | ${age} >= 15 | | . >= 0 | | |
| | calculate | inc_r | | | | | round(${income} div 3, 2) | |
| | calculate | inc_str | | | | | if(${income} > 1000, 'high', coalesce(${name}, 'none')) | |
| | text | phone | Phone | | | regex(., '[0-9]{9}') and string-length(.) = 9 | | |
| | calculate | s1 | | | | | substr(${phone}, 0, 3) | |
| | calculate | s2 | | | | | concat(substring-before(${name}, ' '), '/', substring-after(${name}, ' ')) | |
| | calculate | ym | | | | | format-date(${dob}, '%Y-%m %b %e') | |
| | calculate | dd | | | | | decimal-date-time(${dob}) | |
| | calculate | num | | | | | number(${phone}) div 7 | |
| | calculate | cs | | | | | count-selected(${langs}) | |
| | calculate | sa | | | | | selected-at(${langs}, 1) | |
| | calculate | bool_calc | | | | | ${age} > 18 and not(${consent} = '2') | |
| | calculate | tr | | | | | translate(${name}, 'abc', 'AB') | |
| | calculate | mn | | | | | min(${age}, ${income}) | |
| | calculate | ms | | | | | contains(${name}, 'a') or starts-with(${name}, 'B') | |
| | calculate | ew | | | | | ends-with(${name}, 'z') or ends-with(${name}, 'ol') | |
| | calculate | nn | | | | | normalize-space(concat(' ', ${name}, '  x ')) | |
| | calculate | powr | | | | | pow(${age}, 2) + abs(-1) + ${age} mod 7 + sqrt(${age}) + log10(${age} + 1) | |
| | calculate | dt | | | | | date(${age} * 100) | |
| | calculate | empty_num | | | | | ${income} + 1 | |
| | integer | even | Even | ${age} > 30 | yes | . mod 2 = 0 | | |
| choices |
| | list_name | name | label |
| | yn | 1 | Yes |
| | yn | 2 | No |
| | lang | en | English |
| | lang | ru | Russian |
| | lang | kk | Kazakh |
| | lang | other | Other |
| | sex | 1 | Male |
| | sex | 2 | Female |
| settings |
| | form_id |
| | functions |
"""

NESTED_FORM = """
| survey |
| | type | name | label | relevant | required | constraint | calculation |
| | integer | n | N | | yes | . >= 0 | |
| | begin_repeat | trip | Trip | | | | |
| | text | dest | Destination | | yes | string-length(.) > 1 | |
| | integer | days | Days | | | . > 0 and . < 400 | |
| | begin_repeat | leg | Leg | ../days > 3 | | | |
| | integer | km | Km | | yes | . <= ../../days * 100 | |
| | calculate | leg_no | | | | | position(..) |
| | calculate | trip_no | | | | | position(../..) |
| | end_repeat | | | | | | |
| | calculate | km_sum | | | | | sum(${km}) |
| | calculate | legs | | | | | count(${leg}) |
| | end_repeat | | | | | | |
| | calculate | n_trips | | | | | count(${trip}) |
| | calculate | total_days | | | | | sum(${days}) |
| | begin_group | more | More | ${n_trips} > 1 and ${n} != 0 | | | |
| | text | why | Why | | yes | | |
| | integer | second_days | Days | | | . = indexed-repeat(${days}, ${trip}, 2) | |
| | end_group | | | | | | |
| | calculate | last_dest | | | | | ${trip}[position() = ${n_trips}]/dest |
| settings |
| | form_id |
| | nested |
"""

CHOICES_FORM = """
| survey |
| | type | name | label | relevant | required | constraint | calculation | choice_filter |
| | select_one region | region | Region | | yes | | | |
| | select_one district | district | District | | yes | | | region = ${region} |
| | calculate | pop | | | | | instance('district')/root/item[name = ${district}]/pop | |
| | calculate | big | | | | | if(${pop} > 500, 'big', 'small') | |
| | integer | hh | Households | ${pop} > 100 | yes | . <= ${pop} | | |
| | calculate | rlabel | | | | | jr:choice-name(${region}, '${region}') | |
| choices |
| | list_name | name | label | region | pop |
| | region | 1 | North | | |
| | region | 2 | South | | |
| | district | 11 | N1 | 1 | 900 |
| | district | 12 | N2 | 1 | 80 |
| | district | 21 | S1 | 2 | 300 |
| settings |
| | form_id |
| | choices |
"""


MORE_FORM = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | relevant | required | constraint | calculation |
| | start | start | | | | | | |
| | dateTime | when | When | Когда | | | . >= ${start} or . < date('2030-01-01') | |
| | time | at | At | В | | | | |
| | decimal | w | Weight | Вес | | yes | . > 0.5 and . < 300 | |
| | select_multiple fruit | fr | Fruits | Фрукты | | yes | not(selected(., 'n') and count-selected(.) > 1) | |
| | begin_repeat | p | Person | Человек | | | | |
| | text | nm | Name | Имя | | yes | string-length(normalize-space(.)) > 1 | |
| | integer | ag | Age | Возраст | | | . >= 0 | |
| | begin_group | adult | Adult | Взрослый | ../ag >= 18 | | | |
| | select_one fruit | fav | Favourite | Любимый | | yes | | |
| | integer | kids | Kids | Дети | ../../ag > 20 | | . < ../../ag div 2 | |
| | end_group | | | | | | | |
| | calculate | lbl | | | | | | jr:choice-name(${fav}, '${fav}') |
| | calculate | first | | | | | | if(position(..) = 1, 'yes', 'no') |
| | end_repeat | | | | | | | |
| | calculate | names | | | | | | join(', ', ${nm}) |
| | calculate | n_named | | | | | | count-non-empty(${nm}) |
| | calculate | kids_total | | | | | | sum(${kids}) |
| | calculate | oldest | | | | | | max(${ag}) |
| | calculate | youngest | | | | | | min(${ag}) |
| | calculate | first_p | | | | | | ${p}[position() = 1]/nm |
| | calculate | adults | | | | | | count(${p}[ag >= 18]) |
| | calculate | second_fr | | | | | | selected-at(${fr}, 1) |
| | calculate | bfs | | | | | | boolean-from-string(${second_fr}) |
| | calculate | w_round | | | | | | round(${w} * 1.005, 1) |
| | calculate | w_int | | | | | | int(${w}) mod 3 |
| | calculate | d_days | | | | | | decimal-date-time(${when}) - decimal-date-time(${start}) |
| | calculate | day | | | | | | format-date-time(${when}, '%Y-%m-%d %H:%M') |
| | calculate | nn | | | | | | coalesce(${oldest}, -1) + 0 |
| | calculate | cc | | | | | | concat(${p}/nm) |
| | text | note_txt | Comment | Комментарий | ${adults} > 1 and count(${p}) > ${adults} | yes | | |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) |
| | fruit | a | Apple | Яблоко |
| | fruit | b | Pear | Груша |
| | fruit | n | None | Нет |
| settings |
| | form_id | default_language |
| | more | English (en) |
"""

NAMES = ["Aigul", "Bek Bolot", "anna", "Dilnoza az", "", "Farrukh", "x"]


def _value(node, model: FormModel, rng: random.Random) -> str | None:
    qt = node.question_type
    if qt in ("integer",):
        return str(rng.choice([rng.randint(0, 40), rng.randint(-3, 130), rng.randint(1, 12), 0]))
    if qt == "decimal":
        return rng.choice(["0", "12.5", "1500", "-3", "333.333", "2.50"])
    if qt == "text":
        return rng.choice([*NAMES, "123456789", "12345"])
    if qt == "date":
        return (date(1935, 1, 1) + timedelta(days=rng.randint(0, 36500))).isoformat()
    if qt in ("datetime", "start", "end"):
        day = date(2024, 1, 1) + timedelta(days=rng.randint(0, 2500))
        hour, minute, zone = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 6)
        return f"{day.isoformat()}T{hour:02d}:{minute:02d}:00.000+0{zone}:00"
    if qt == "time":
        return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00.000+05:00"
    if qt in ("select_one", "select_multiple"):
        lst = model.choices_for(node.path)
        names = list(lst.names) if lst else ["a", "b"]
        if qt == "select_one":
            return rng.choice(names)
        return " ".join(rng.sample(names, rng.randint(1, min(3, len(names)))))
    if qt == "calculate":
        return rng.choice(["", "1", "x", "0.5"])
    return None


def _fill(model: FormModel, rng: random.Random, blank_rate: float) -> str:
    """A random instance: every field answered (also where not relevant), some blanks, 0-4 repeats."""

    def element(path: str, depth: int) -> str:
        node = model.nodes[path]
        if node.kind == "field":
            if node.question_type == "instance_id":
                return f"<{node.name}>uuid:{uuid.UUID(int=rng.getrandbits(128))}</{node.name}>"
            value = None if rng.random() < blank_rate else _value(node, model, rng)
            return f"<{node.name}/>" if not value else f"<{node.name}>{value}</{node.name}>"
        inner = "".join(element(child, depth + 1) for child in node.children)
        if node.kind == "repeat":
            return "".join(
                f"<{node.name}>{inner if k == 0 else ''.join(element(c, depth + 1) for c in node.children)}"
                f"</{node.name}>"
                for k in range(rng.randint(0, 4 if depth < 2 else 3))
            )
        return f"<{node.name}>{inner}</{node.name}>"

    root = model.root[1:]
    body = "".join(element(child, 1) for child in model.nodes[model.root].children)
    return f'<{root} id="{model.form_id}">{body}</{root}>'


def _ours(form, data: bytes) -> tuple[list[tuple[str, bool, bool, str, str]], list]:
    verdicts: list[tuple[str, bool, bool, str, str]] = []
    findings = validate_tree(form, instance_tree(form, data), verdicts=verdicts)
    return verdicts, findings


def _compare(
    model: FormModel, ours: list[tuple[str, bool, bool, str, str]], theirs: list[JrNode]
) -> list[str]:
    """Differences between our and JavaRosa's per-node verdicts (empty when they agree)."""
    diffs = []
    jr = {n.path: n for n in theirs}
    for path, relevant, required, constraint, value in ours:
        node_jr = jr.get(path)
        if node_jr is None:
            diffs.append(f"{path}: missing in JavaRosa's view")
            continue
        if relevant != node_jr.relevant:
            diffs.append(f"{path}: relevant ours={relevant} javarosa={node_jr.relevant}")
            continue
        if not relevant:
            continue
        generic = "/".join(part.split("[")[0] for part in path.split("/"))
        node = model.nodes.get(generic)
        if node is not None and node.kind == "field":
            if required != node_jr.required and node.question_type not in ("calculate",):
                diffs.append(f"{path}: required ours={required} javarosa={node_jr.required}")
            if constraint != node_jr.constraint and node_jr.constraint != "-":
                diffs.append(
                    f"{path}: constraint ours={constraint} javarosa={node_jr.constraint} value={value!r}"
                )
            if node.calculate is not None and value != node_jr.value:
                diffs.append(f"{path}: calculated ours={value!r} javarosa={node_jr.value!r}")
    return diffs


def _run(
    tmp_path: Path, model: FormModel, xform: str, instances: list[str], media: Path | None = None
) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    require_tool("javac", "openjdk-17-jdk-headless")
    form_xml = tmp_path / "form.xml"
    form_xml.write_text(xform, encoding="utf-8")
    files = []
    for i, text in enumerate(instances):
        path = tmp_path / f"i{i:03d}.xml"
        path.write_text(text, encoding="utf-8")
        files.append(path)
    theirs = javarosa_check(
        form_xml, files, media=media or (Path(model.source).parent if model.source else None)
    )
    form = compile_form(model, media_dir=media)
    problems = []
    compared = 0
    for path in files:
        jr = theirs[str(path)]
        if isinstance(jr, str):
            problems.append(f"{path.name}: JavaRosa failed: {jr}")
            continue
        ours, _ = _ours(form, path.read_bytes())
        diffs = _compare(model, ours, jr)
        compared += len(ours)
        problems.extend(f"{path.name} {d}" for d in diffs)
    assert not problems, "\n".join(problems[:40])
    assert compared > 0


def _model_from_md(tmp_path: Path, md: str) -> tuple[FormModel, str]:
    compiled = compile_xlsform(write_md_form(tmp_path, md), validate=False)
    assert compiled.xform is not None, compiled.issues
    return parse_xform(compiled.xform, source=str(tmp_path / "form.md")), compiled.xform


@pytest.mark.parametrize(
    ("md", "seed"),
    [(FUNCTIONS_FORM, 1), (NESTED_FORM, 2), (MORE_FORM, 5)],
    ids=["functions", "nested", "more"],
)
def test_verdicts_equal_javarosa(tmp_path: Path, md: str, seed: int) -> None:
    model, xform = _model_from_md(tmp_path, md)
    rng = random.Random(seed)
    instances = [_fill(model, rng, blank_rate=0.15) for _ in range(60)]
    _run(tmp_path, model, xform, instances)


def test_secondary_instances_equal_javarosa(tmp_path: Path) -> None:
    model, xform = _model_from_md(tmp_path, CHOICES_FORM)
    rng = random.Random(3)
    _run(tmp_path, model, xform, [_fill(model, rng, blank_rate=0.1) for _ in range(40)])


@pytest.mark.slow
def test_templates_equal_javarosa(tmp_path: Path) -> None:
    """The project's XLSForm templates (forms/*.xlsx), filled at random with faults."""
    templates = sorted(FORMS_DIR.glob("*.xlsx"))
    if not templates:
        pytest.fail(f"no XLSForm templates in {FORMS_DIR}")
    rng = random.Random(4)
    for template in templates:
        compiled = compile_xlsform(template, validate=False)
        assert compiled.xform is not None, compiled.issues
        model = parse_xform(compiled.xform, source=str(template))
        folder = tmp_path / template.stem
        folder.mkdir()
        _run(folder, model, compiled.xform, [_fill(model, rng, blank_rate=0.2) for _ in range(15)])
