"""The column-wise validator gives the per-instance validator's findings (itself checked against JavaRosa)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.conftest import FORMS_DIR, write_md_form
from tests.test_validate import FORM as CRAFTED_FORM
from tests.test_validate_javarosa import CHOICES_FORM, FUNCTIONS_FORM, MORE_FORM, NESTED_FORM, _fill
from toolkit import ingest
from toolkit.validate import compile_form, validate_input
from toolkit.validate.columns import NotVectorizable, validate_columns
from toolkit.xform import load_form

BENCH_FORM = Path(__file__).resolve().parent.parent / "bench" / "validate_form.md"


def _key(result) -> list[tuple[str | None, str, str]]:
    return sorted(
        (f.instance_id, f.path, f.code) for f in result.findings if f.code != "expression_unsupported"
    )


# The same form without the expressions that need the per-instance path (node-sets from a repeat outside an
# aggregate, positional predicates, format-date-time).
MORE_VECTOR = (
    MORE_FORM.replace("join(', ', ${nm})", "count(${nm})")
    .replace("${p}[position() = 1]/nm", "indexed-repeat(${nm}, ${p}, 1)")
    .replace("format-date-time(${when}, '%Y-%m-%d %H:%M')", "string(${w})")
    .replace("concat(${p}/nm)", "concat(${oldest}, '-', ${youngest})")
)
NESTED_VECTOR = NESTED_FORM.replace(
    "${trip}[position() = ${n_trips}]/dest", "indexed-repeat(${dest}, ${trip}, ${n_trips})"
)


@pytest.mark.parametrize(
    ("md", "seed"),
    [
        (FUNCTIONS_FORM, 11),
        (NESTED_VECTOR, 12),
        (CHOICES_FORM, 13),
        (CRAFTED_FORM, 14),
        (None, 15),
        (MORE_VECTOR, 16),
    ],
    ids=["functions", "nested", "choices", "crafted", "bench", "more"],
)
def test_columns_equal_instances(tmp_path: Path, md: str | None, seed: int) -> None:
    form_path = BENCH_FORM if md is None else write_md_form(tmp_path, md)
    model = load_form(form_path)
    form = compile_form(model)
    rng = random.Random(seed)
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(80):
        (subs / f"{i:03d}.xml").write_text(_fill(model, rng, blank_rate=0.15), encoding="utf-8")
    by_instances = validate_input(form, subs, method="instances")
    by_columns = validate_input(form, subs, method="columns")
    assert by_columns.stats["method"] == "columns"
    assert _key(by_columns) == _key(by_instances)
    assert by_instances.stats["findings"] > 0


def test_forms_that_need_the_instance_path_fall_back(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | relevant |
    | | begin_repeat | r | R | |
    | | integer | x | X | |
    | | end_repeat | | | |
    | | integer | y | Y | ${r}[2]/x > 1 |
    """
    form_path = write_md_form(tmp_path, md)
    form = compile_form(load_form(form_path))
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "a.xml").write_text(
        '<data id="data"><r><x>1</x></r><r><x>5</x></r><y>3</y>'
        "<meta><instanceID>uuid:a</instanceID></meta></data>"
    )
    with pytest.raises(NotVectorizable):
        validate_columns(form, ingest.ingest([subs], form.model))
    result = validate_input(form, subs)
    assert result.stats["method"] == "instances" and result.valid


@pytest.mark.parametrize("template", sorted(FORMS_DIR.glob("*.xlsx")), ids=lambda p: p.stem)
def test_templates_columns_equal_instances(tmp_path: Path, template: Path) -> None:
    """The project's XLSForm templates (pulldata, choice filters, uniqueness counts) vectorise and agree."""
    model = load_form(template)
    form = compile_form(model)
    rng = random.Random(21)
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(30):
        (subs / f"{i:03d}.xml").write_text(_fill(model, rng, blank_rate=0.1), encoding="utf-8")
    by_instances = validate_input(form, subs, method="instances")
    by_columns = validate_input(form, subs, method="columns")
    assert _key(by_columns) == _key(by_instances)
    assert by_instances.stats["findings"] > 0


PICK_FORM = """
| survey |
| | type | name | label | calculation | choice_filter |
| | begin_repeat | hl | Member | | |
| | text | hl_name | Name | | |
| | integer | hl_adult | Adult (1/0) | | |
| | calculate | hl_pick | | concat(position(..), ': ', ${hl_name}) | |
| | end_repeat | | | | |
| | select_one ${hl_pick} | resp | Respondent | | ${hl_adult} = 1 |
| | begin_repeat | ab | Away | | |
| | select_one ${hl_pick} | ab_line | Who | | |
| | end_repeat | | | | |
"""


def _pick_instance(form_id: str, uid: str, resp: str, ab_lines: list[str], names: tuple[str, ...] = ("Aziz", "Olga")) -> str:
    members = "".join(
        f"<hl><hl_name>{name}</hl_name><hl_adult>{1 if k == 0 else 0}</hl_adult><hl_pick>{k + 1}: {name}</hl_pick></hl>"
        for k, name in enumerate(names)
    )
    away = "".join(f"<ab><ab_line>{line}</ab_line></ab>" for line in ab_lines)
    return (
        f'<data id="{form_id}">{members}<resp>{resp}</resp>{away}'
        f"<meta><instanceID>uuid:{uid}</instanceID></meta></data>"
    )


@pytest.mark.parametrize("method", ["columns", "instances"])
def test_a_pick_from_a_repeat_must_name_one_of_its_rows(tmp_path: Path, method: str) -> None:
    """`select_one ${hl_pick}`: the answer is the value of a roster row its filter allows. An answer edited after
    the interview, or whose row changed, points to nobody: choice_unknown, the same on both paths."""
    form = compile_form(load_form(write_md_form(tmp_path, PICK_FORM)))
    subs = tmp_path / "subs"
    subs.mkdir()
    cases = {
        "ok": ("1: Aziz", ["2: Olga"]),
        "filtered": ("2: Olga", []),  # Olga is not an adult: the filter never offered her
        "nobody": ("1: Aziz", ["2: Olga", "5: Nobody"]),  # a pick from another repeat, to a row that is not there
        "edited": ("1: Azizz", []),
    }
    for uid, (resp, lines) in cases.items():
        (subs / f"{uid}.xml").write_text(_pick_instance(form.model.form_id, uid, resp, lines), encoding="utf-8")
    result = validate_input(form, subs, method=method)
    assert result.stats["method"] == method
    found = sorted((f.instance_id, f.path.rsplit("/", 1)[-1], f.value) for f in result.findings)
    assert found == [
        ("uuid:edited", "resp", "1: Azizz"),
        ("uuid:filtered", "resp", "2: Olga"),
        ("uuid:nobody", "ab_line", "5: Nobody"),
    ]
    assert {f.code for f in result.findings} == {"choice_unknown"}
    assert "not the value of any row of the repeat" in result.findings[0].message
