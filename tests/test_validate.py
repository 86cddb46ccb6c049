"""validate: each finding code on a crafted instance, relevance, inputs (XML, DATA folder), the CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import write_md_form
from toolkit import ingest
from toolkit.cli import app
from toolkit.validate import (
    compile_form,
    instance_tree,
    validate,
    validate_submissions,
    validate_tree,
    wrap_calculated,
)
from toolkit.xform import load_form

FORM = """
| survey |
| | type | name | label | relevant | required | constraint | calculation | choice_filter |
| | integer | age | Age | | yes | . >= 0 and . <= 110 | | |
| | select_one yn | married | Married? | ${age} >= 15 | yes | | | |
| | text | spouse | Spouse | ${married} = '1' | yes | | | |
| | begin_group | work | Work | ${age} >= 15 | | | | |
| | select_one yn | employed | Employed? | | yes | | | |
| | decimal | wage | Wage | ${employed} = '1' | | . > 0 | | |
| | end_group | | | | | | | |
| | begin_repeat | hl | Member | | | | | |
| | text | hl_name | Name | | yes | | | |
| | integer | hl_age | Age | | | . <= ${age} + 60 | | |
| | date | hl_dob | Born | | | | | |
| | calculate | hl_pos | | | | | position(..) | |
| | end_repeat | | | | | | | |
| | calculate | n | | | | | count(${hl}) | |
| | select_multiple fruit | fruits | Fruits | | | | | |
| | select_one city | city | City | | | | | region = ${married} |
| | text | id_int | Interviewer | | | | | |
| choices |
| | list_name | name | label | region |
| | yn | 1 | Yes | |
| | yn | 2 | No | |
| | fruit | a | Apple | |
| | fruit | b | Pear | |
| | city | c1 | Osh | 1 |
| | city | c2 | Bishkek | 2 |
| settings |
| | form_id |
| | vt |
"""

GOOD = {
    "age": "30",
    "married": "1",
    "spouse": "Aida",
    "work": "<employed>1</employed><wage>100.5</wage>",
    "hl": "<hl><hl_name>A</hl_name><hl_age>30</hl_age><hl_dob>1996-01-02</hl_dob><hl_pos>1</hl_pos></hl>"
    "<hl><hl_name>B</hl_name><hl_age>5</hl_age><hl_dob/><hl_pos>2</hl_pos></hl>",
    "n": "2",
    "fruits": "a b",
    "city": "c1",
    "id_int": "E7",
}


def _instance(uid: str = "uuid:1", **changes: str) -> bytes:
    values = {**GOOD, **changes}
    parts = []
    for key in ("age", "married", "spouse"):
        parts.append(f"<{key}>{values[key]}</{key}>")
    parts.append(f"<work>{values['work']}</work>{values['hl']}")
    for key in ("n", "fruits", "city", "id_int"):
        parts.append(f"<{key}>{values[key]}</{key}>")
    return f'<data id="vt">{"".join(parts)}<meta><instanceID>{uid}</instanceID></meta></data>'.encode()


@pytest.fixture(scope="module")
def form(tmp_path_factory):
    return compile_form(load_form(write_md_form(tmp_path_factory.mktemp("validate"), FORM)))


def _findings(form, data: bytes) -> set[tuple[str, str]]:
    return {(f.code, f.path) for f in validate_tree(form, instance_tree(form, data))}


def test_clean_instance_has_no_findings(form) -> None:
    assert _findings(form, _instance()) == set()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"age": "10"},
            {
                ("nonrelevant_answered", "/data/married"),
                ("nonrelevant_answered", "/data/spouse"),
                ("nonrelevant_answered", "/data/work/employed"),
                ("nonrelevant_answered", "/data/work/wage"),
                ("choice_unknown", "/data/city"),
            },
        ),
        ({"married": "2"}, {("nonrelevant_answered", "/data/spouse"), ("choice_unknown", "/data/city")}),
        ({"spouse": ""}, {("required_missing", "/data/spouse")}),
        ({"age": "130"}, {("constraint_violated", "/data/age")}),
        ({"work": "<employed>1</employed><wage>-5</wage>"}, {("constraint_violated", "/data/work/wage")}),
        ({"work": "<employed>2</employed><wage>5</wage>"}, {("nonrelevant_answered", "/data/work/wage")}),
        ({"work": "<employed></employed><wage/>"}, {("required_missing", "/data/work/employed")}),
        ({"work": "<employed>1</employed><wage>12,5x</wage>"}, {("type_invalid", "/data/work/wage")}),
        ({"fruits": "a kiwi"}, {("choice_unknown", "/data/fruits")}),
        (
            {"married": "3"},
            {
                ("choice_unknown", "/data/married"),
                ("nonrelevant_answered", "/data/spouse"),
                ("choice_unknown", "/data/city"),
            },
        ),
        ({"n": "5"}, {("calculate_mismatch", "/data/n")}),
        (
            {"hl": "<hl><hl_name/><hl_age>1</hl_age><hl_dob>2020-13-01</hl_dob><hl_pos>3</hl_pos></hl>"},
            {
                ("required_missing", "/data/hl[1]/hl_name"),
                ("type_invalid", "/data/hl[1]/hl_dob"),
                ("calculate_mismatch", "/data/hl[1]/hl_pos"),
                ("calculate_mismatch", "/data/n"),
            },
        ),
    ],
)
def test_each_code_on_a_crafted_instance(
    form, changes: dict[str, str], expected: set[tuple[str, str]]
) -> None:
    assert _findings(form, _instance(**changes)) == expected


def test_finding_fields_follow_the_contract(form) -> None:
    (finding,) = validate_tree(form, instance_tree(form, _instance(age="130")))
    assert (finding.instance_id, finding.path, finding.code, finding.value) == (
        "uuid:1",
        "/data/age",
        "constraint_violated",
        "130",
    )
    assert finding.expression == ". >= 0 and . <= 110"
    assert "age" in finding.message and finding.enumerator == "E7"


def test_duplicates_and_unreadable(form) -> None:
    result = validate_submissions(
        form,
        [
            ("a.xml", _instance("uuid:1")),
            ("b.xml", _instance("uuid:1")),
            ("c.xml", _instance("uuid:1", age="31")),
            ("d.xml", b"<data><unclosed></data>"),
            ("e.xml", b"<other/>"),
        ],
    )
    codes = [(f.code, f.source) for f in result.findings]
    assert ("duplicate_instance", "b.xml") in codes and ("duplicate_instance", "c.xml") in codes
    assert ("instance_unreadable", "d.xml") in codes and ("instance_other_form", "e.xml") in codes
    assert "identical" in next(f.message for f in result.findings if f.source == "b.xml")
    assert not result.valid and result.stats["instances"] == 5


def test_doctype_is_refused(form) -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><data>&a;</data>'
    result = validate_submissions(form, [("bomb.xml", bomb)])
    assert [f.code for f in result.findings] == ["instance_unreadable"]


def test_unsupported_function_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | constraint |
    | | integer | a | A | floor(.) = . |
    """
    form = compile_form(load_form(write_md_form(tmp_path, md)))
    result = validate_submissions(
        form, [("x.xml", b'<data id="data"><a>3</a><meta><instanceID>u</instanceID></meta></data>')]
    )
    (finding,) = result.findings
    assert (
        finding.code == "expression_unsupported"
        and "floor" in finding.message
        and finding.severity == "warning"
    )
    assert result.valid


def test_repeated_field_used_as_a_value_is_an_expression_error(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | relevant |
    | | begin_repeat | r | R | |
    | | integer | x | X | |
    | | end_repeat | | | |
    | | text | t | T | ${x} > 1 |
    """
    form = compile_form(load_form(write_md_form(tmp_path, md)))
    data = (
        b'<data id="data"><r><x>1</x></r><r><x>2</x></r><t>a</t>'
        b"<meta><instanceID>u</instanceID></meta></data>"
    )
    codes = {f.code for f in validate_tree(form, instance_tree(form, data))}
    assert codes == {"expression_error"}


@pytest.mark.parametrize(
    ("result", "dtype", "text"),
    [
        (5.0, "string", "5"),
        (2.5, "string", "2.5"),
        (2.7, "int", "2"),
        (True, "string", "1"),
        ("", "string", ""),
        (float("nan"), "decimal", ""),
        ("  ", "string", ""),
        (1.0e7 + 0.5, "string", "1.00000005E7"),
    ],
)
def test_calculated_values_are_stored_like_javarosa(result, dtype: str, text: str) -> None:
    assert wrap_calculated(result, dtype)[0] == text


def _write_submissions(folder: Path, instances: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in instances.items():
        (folder / name).write_bytes(data)
    return folder


def test_validate_folder_and_data_folder_agree(tmp_path: Path) -> None:
    form_path = write_md_form(tmp_path, FORM)
    subs = _write_submissions(
        tmp_path / "subs",
        {
            "a.xml": _instance("uuid:a"),
            "b.xml": _instance("uuid:b", age="10"),
            "c.xml": _instance("uuid:c", n="9"),
        },
    )
    from_xml = validate(subs, form_path)
    tables = ingest.ingest([subs], load_form(form_path))
    ingest.write_tables(tables, tmp_path / "DATA")
    from_tables = validate(tmp_path / "DATA", form_path)
    key = lambda r: sorted((f.instance_id, f.path, f.code) for f in r.findings)  # noqa: E731
    assert key(from_xml) == key(from_tables)
    assert from_xml.stats["by_code"]["nonrelevant_answered"] == 4


def test_cli_json_csv_and_report(tmp_path: Path) -> None:
    form_path = write_md_form(tmp_path, FORM)
    subs = _write_submissions(
        tmp_path / "subs", {"a.xml": _instance("uuid:a"), "b.xml": _instance("uuid:b", age="130")}
    )
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "validate",
            str(subs),
            "--form",
            str(form_path),
            "--json",
            "--csv",
            str(tmp_path / "f.csv"),
            "--report",
            str(tmp_path / "r.html"),
        ],
    )
    assert done.exit_code == 1, done.output
    payload = json.loads(done.stdout)
    assert payload["valid"] is False and payload["stats"]["instances"] == 2
    assert (payload["command"], payload["ok"], payload["exit_code"]) == ("validate", False, 1)
    (finding,) = payload["issues"]
    assert {k: finding[k] for k in ("instance", "path", "code", "qualified_code", "value", "enumerator")} == {
        "instance": "uuid:b",
        "path": "/data/age",
        "code": "constraint_violated",
        "qualified_code": "validate.constraint_violated",
        "value": "130",
        "enumerator": "E7",
    }
    assert set(finding) >= {"instance", "path", "code", "value", "expression", "message", "absent"}
    assert "constraint_violated" in (tmp_path / "f.csv").read_text(encoding="utf-8-sig")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Findings by enumerator" in page and "E7" in page and "http" not in page.replace("http-equiv", "")
    clean = runner.invoke(
        app,
        [
            "validate",
            str(_write_submissions(tmp_path / "ok", {"a.xml": _instance()})),
            "--form",
            str(form_path),
        ],
    )
    assert clean.exit_code == 0, clean.output
    assert "valid" in clean.stdout
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["validate", str(tmp_path / "empty"), "--form", str(form_path)])
    assert empty.exit_code == 1 and "No submission" in empty.output


def test_select_from_file_and_pulldata_read_the_media_folder(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | calculation | constraint |
    | | select_one_from_file towns.csv | town | Town | | |
    | | calculate | pop | | pulldata('towns', 'pop', 'name', ${town}) | |
    | | integer | hh | Households | | . <= ${pop} |
    """
    form_path = write_md_form(tmp_path, md)
    media = tmp_path / "form-media"
    media.mkdir()
    (media / "towns.csv").write_text("name,label,pop\nt1,Town 1,50\nt2,Town 2,900\n", encoding="utf-8")
    form = compile_form(load_form(form_path))
    assert not form.problems

    def instance(town: str, pop: str, hh: str) -> bytes:
        return (
            f'<data id="data"><town>{town}</town><pop>{pop}</pop><hh>{hh}</hh>'
            "<meta><instanceID>uuid:x</instanceID></meta></data>"
        ).encode()

    assert _findings(form, instance("t2", "900", "100")) == set()
    assert _findings(form, instance("t1", "50", "100")) == {("constraint_violated", "/data/hh")}
    # an unknown town finds no population, so the constraint (. <= '') fails too, as in Collect
    assert _findings(form, instance("t9", "", "1")) == {
        ("choice_unknown", "/data/town"),
        ("constraint_violated", "/data/hh"),
    }
    assert _findings(form, instance("t2", "50", "1")) == {("calculate_mismatch", "/data/pop")}
    (tmp_path / "other").mkdir()
    media_less = compile_form(load_form(write_md_form(tmp_path / "other", md)))
    assert {p.code for p in media_less.problems} == {"expression_unsupported"}


TODAY_FORM = """
| survey |
| | type | name | label | constraint |
| | today | today | | |
| | date | last_transfer | Date of the last transfer | . <= today() and decimal-date-time(.) >= decimal-date-time(today()) - 93 |
"""


@pytest.mark.parametrize("method", ["instances", "columns"])
def test_today_is_the_interview_day_unless_fixed(tmp_path: Path, method: str) -> None:
    """A window relative to today() is checked as Collect checked it: on the day the form was filled in."""
    from toolkit.ingest import ingest, write_tables
    from toolkit.validate import compile_form as compile_rules
    from toolkit.validate import validate_input

    model = load_form(write_md_form(tmp_path, TODAY_FORM))
    folder = tmp_path / "subs"
    for name, interviewed, transfer in (("a", "2026-10-02", "2026-07-15"), ("b", "2026-10-02", "2026-05-01")):
        (folder / name).mkdir(parents=True)
        (folder / name / "submission.xml").write_text(
            f'<data id="{model.form_id}"><today>{interviewed}</today><last_transfer>{transfer}</last_transfer>'
            f"<meta><instanceID>uuid:{name}</instanceID></meta></data>",
            encoding="utf-8",
        )
    data = tmp_path / "DATA"
    write_tables(ingest([folder], model), data)
    rules = compile_rules(model)
    source = data if method == "columns" else folder
    per_interview = validate_input(rules, source, method=method)
    assert [(f.instance_id, f.code) for f in per_interview.findings] == [("uuid:b", "constraint_violated")]
    # Checked against a later day, the July transfer is outside the 93-day window too.
    fixed = validate_input(rules, source, method=method, today=date(2026, 11, 20))
    assert sorted(f.instance_id for f in fixed.findings) == ["uuid:a", "uuid:b"]


GROUPED_FORM = """
| survey |
| | type | name | label | relevant | constraint |
| | select_one yn | any12 | Received money? | | |
| | begin_group | rr | Remittances | ${any12} = '1' | |
| | integer | rr_n | How many times? | | |
| | integer | rr_amt | Amount | | |
| | text | rr_who | Who sent it? | | |
| | begin_group | rr_more | More | ${rr_n} > 1 | |
| | text | rr_extra | Why twice? | | |
| | end_group | | | | |
| | end_group | | | | |
| | decimal | share | Share | | . < 100 |
| choices |
| | list_name | name | label |
| | yn | 1 | Yes |
| | yn | 2 | No |
| settings |
| | form_id | version |
| | grouped | 1 |
"""


def test_html_report_groups_findings_of_one_cause_and_shows_numbers_plainly(tmp_path: Path) -> None:
    from toolkit.validate.report import render_html

    form = write_md_form(tmp_path, GROUPED_FORM)
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "a.xml").write_text(
        '<data id="grouped" version="1"><any12>7</any12><rr><rr_n>2</rr_n><rr_amt>300</rr_amt><rr_who>Ali</rr_who>'
        "<rr_more><rr_extra>twice</rr_extra></rr_more></rr><share>118.42000000000002</share><meta><instanceID>uuid:a</instanceID></meta></data>",
        encoding="utf-8",
    )
    result = validate(subs, form)
    codes = sorted(f.code for f in result.findings)
    assert codes == ["choice_unknown", "constraint_violated", *["nonrelevant_answered"] * 4]
    # rr_extra's relevance extends its group's, which is false: one cause for the four answers
    assert len({f.expression for f in result.findings if f.code == "nonrelevant_answered"}) == 2
    page = render_html(result)
    assert "4 variables" in page and "4 answers kept although this condition is false" in page
    assert page.count("<tr><td>uuid:a</td>") == 3  # choice, constraint and one row for the skipped section
    assert "118.42" in page and "118.42000000000002" not in page
    chart = page.split("Submissions affected, by cause")[1].split("</table>")[0]
    assert chart.count("<tr>") == 3  # one bar per cause, not one per variable of the section
