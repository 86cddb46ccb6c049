"""The column-wise validator gives the per-instance validator's findings (itself checked against JavaRosa)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.conftest import FORMS_DIR, write_md_form
from tests.test_validate import FORM as CRAFTED_FORM
from tests.test_validate_javarosa import CHOICES_FORM, FUNCTIONS_FORM, MORE_FORM, NESTED_FORM, _fill
from toolkit import ingest
from toolkit.simulate import simulate
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
        (MORE_FORM, 17),
        (NESTED_FORM, 18),
    ],
    ids=["functions", "nested", "choices", "crafted", "bench", "more", "more-per-instance", "nested-per-instance"],
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


ONE_PER_INSTANCE_FORM = """
| survey |
| | type | name | label | relevant | constraint | calculation |
| | begin_repeat | r | R | | | |
| | integer | x | X | | . < 50 | |
| | end_repeat | | | | | |
| | integer | y | Y | ${r}[2]/x > 1 | . != 7 | |
| | integer | z | Z | ${y} > 2 | . <= ${y} | |
| | calculate | total | | | | sum(${x}) |
| | text | when | When | | | |
| | calculate | year | | | | format-date(date(${when}), '%Y') |
"""


def _one_per_instance_input(tmp_path: Path, form_id: str, *, bad_date: bool) -> Path:
    subs = tmp_path / "subs"
    subs.mkdir()
    rows = [
        ("a", [1, 5], 3, 4, 6, "2024-05-01", "2024"),  # z breaks its constraint
        ("b", [1, 1], 3, None, 2, "2024-05-01", "2024"),  # y answered but not relevant
        ("c", [9, 60], 7, 2, 69, "2023-01-02", "2022"),  # x and y constraints, a wrong stored year
        ("d", [4], 5, None, 4, "not a date" if bad_date else "2021-03-04", "" if bad_date else "2021"),
    ]  # d: y not relevant (no second r); with bad_date, date() fails
    for uid, xs, y, z, total, when, year in rows:
        body = "".join(f"<r><x>{x}</x></r>" for x in xs)
        body += f"<y>{y}</y>" + (f"<z>{z}</z>" if z is not None else "<z/>")
        body += f"<total>{total}</total><when>{when}</when><year>{year}</year>"
        (subs / f"{uid}.xml").write_text(
            f'<data id="{form_id}">{body}<meta><instanceID>uuid:{uid}</instanceID></meta></data>', encoding="utf-8"
        )
    return subs


def test_one_expression_per_instance_the_others_by_column(tmp_path: Path) -> None:
    """A positional predicate (not vectorised) runs per instance; every other expression still runs by column."""
    form = compile_form(load_form(write_md_form(tmp_path, ONE_PER_INSTANCE_FORM)))
    subs = _one_per_instance_input(tmp_path, form.model.form_id, bad_date=False)
    _findings, count, per_instance, _asked = validate_columns(form, ingest.ingest([subs], form.model))
    assert count == 4
    assert [(kind, path) for kind, path, _why in per_instance] == [("relevant", "/data/y")]
    by_columns = validate_input(form, subs)
    by_instances = validate_input(form, subs, method="instances")
    assert by_columns.stats["method"] == "columns"
    assert len(by_columns.stats["per_instance"]) == 1
    assert sorted((f.instance_id, f.path, f.code, f.value, f.message) for f in by_columns.findings) == sorted(
        (f.instance_id, f.path, f.code, f.value, f.message) for f in by_instances.findings
    )
    assert _key(by_columns) == [
        ("uuid:a", "/data/z", "constraint_violated"),
        ("uuid:b", "/data/y", "nonrelevant_answered"),
        ("uuid:c", "/data/r[2]/x", "constraint_violated"),
        ("uuid:c", "/data/y", "constraint_violated"),
        ("uuid:c", "/data/year", "calculate_mismatch"),
        ("uuid:d", "/data/y", "nonrelevant_answered"),
    ]


def test_an_expression_that_fails_on_the_data_runs_per_instance(tmp_path: Path) -> None:
    """date() of a text that is no date vectorises, but not on this data: that calculation alone goes per
    instance and reports the failing submission as the per-instance path does."""
    md = ONE_PER_INSTANCE_FORM.replace("${r}[2]/x > 1", "count(${r}) > 1")
    form = compile_form(load_form(write_md_form(tmp_path, md)))
    subs = _one_per_instance_input(tmp_path, form.model.form_id, bad_date=True)
    _findings, _count, per_instance, _asked = validate_columns(form, ingest.ingest([subs], form.model))
    assert [(kind, path) for kind, path, _why in per_instance] == [("calculation", "/data/year")]
    by_columns = validate_input(form, subs)
    by_instances = validate_input(form, subs, method="instances")
    assert sorted((f.instance_id, f.path, f.code, f.value, f.message) for f in by_columns.findings) == sorted(
        (f.instance_id, f.path, f.code, f.value, f.message) for f in by_instances.findings
    )
    assert ("uuid:d", "/data/year", "expression_error") in _key(by_columns)


def test_forms_that_need_a_fixpoint_take_the_instance_path(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | calculation |
    | | calculate | a | | ${b} + 1 |
    | | calculate | b | | if(${a} > 3, 0, 1) |
    """
    form = compile_form(load_form(write_md_form(tmp_path, md)))
    assert form.needs_fixpoint  # a cycle: no order of the calculations holds beforehand
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "a.xml").write_text(f'<data id="{form.model.form_id}"><a/><b/><meta><instanceID>uuid:a</instanceID></meta></data>')
    with pytest.raises(NotVectorizable):
        validate_columns(form, ingest.ingest([subs], form.model))
    assert validate_input(form, subs).stats["method"] == "instances"


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


@pytest.mark.parametrize("template", sorted(FORMS_DIR.glob("*.xlsx")), ids=lambda p: p.stem)
def test_templates_simulated_run_by_column_with_the_instance_findings(tmp_path: Path, template: Path) -> None:
    """Submissions as `migkit simulate` writes them (repeats left empty in some, planted faults): every
    expression of the template runs by column, with the per-instance path's findings."""
    model = load_form(template)
    form = compile_form(model, media_dir=template.parent)
    subs = tmp_path / "subs"
    simulate(model, 24, subs, seed=5, workers=1, media_dir=template.parent, errors=0.5)
    by_instances = validate_input(form, subs, method="instances")
    by_columns = validate_input(form, subs, method="columns")
    assert by_columns.stats["per_instance"] == []
    # (A decimal answer's text is the typed column's: `0.0` where the submission had `0`.)
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


@pytest.mark.parametrize("template", sorted(FORMS_DIR.glob("*.xlsx")), ids=lambda p: p.stem)
def test_templates_free_each_column_after_its_last_use(
    tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large levels free a column's texts and values after the last step that reads it (the suite frees from the
    first row, tests/conftest.py): on each template most columns are freed, and the findings stay the instance
    path's (the test above)."""
    from toolkit.validate import columns

    freed: list[str] = []
    plan = columns._ColumnRelease.plan.__func__  # type: ignore[attr-defined]

    def spying_plan(cls, *args):  # type: ignore[no-untyped-def]
        release = plan(cls, *args)
        freed.extend(path for paths in release.due.values() for path in paths)
        return release

    monkeypatch.setattr(columns._ColumnRelease, "plan", classmethod(spying_plan))
    model = load_form(template)
    form = compile_form(model, media_dir=template.parent)
    subs = tmp_path / "subs"
    simulate(model, 12, subs, seed=9, workers=1, media_dir=template.parent, errors=0.5)
    validate_input(form, subs, method="columns")
    fields = list(model.fields())
    assert len(set(freed)) == len(freed)
    assert len(freed) > len(fields) // 2


def test_calculated_values_read_after_they_were_freed_fail_loudly() -> None:
    """A calculation's values cannot be read again from the table: a read after the planned last use is a bug."""
    import numpy as np

    from toolkit.xpath.vector import TV, LazyValues, TextColumn

    values = LazyValues({"/data/x": (None, TextColumn(None, 2, "int"), "int")})
    values["/data/x"] = TV(np.zeros(2, np.int8), np.array(["1", "2"], dtype=object), np.zeros(2))
    values.retire("/data/x")
    with pytest.raises(RuntimeError, match="after their last use"):
        values["/data/x"]
    values["/data/x"] = TV.const("", 2)  # a new calculation of it may be read again
    assert values["/data/x"].s.tolist() == ["", ""]
