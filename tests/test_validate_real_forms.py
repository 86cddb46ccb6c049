"""validate on patterns of real-world forms (issue 15): cascading lists that reuse a choice name, values drawn on
the device (uuid() person IDs read through indexed-repeat()), required notes and acknowledgements, and nodes
absent from a submission. Each rule is checked on both paths (columns over tables, per instance over XML trees)
and, where JavaRosa has a verdict, against JavaRosa itself."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import require_tool, write_md_form
from tests.java.jrcheck import javarosa_check
from tests.test_validate_javarosa import _model_from_md, _run
from toolkit import ingest
from toolkit.cli import app
from toolkit.validate import compile_form, validate_input
from toolkit.xform import load_form

METHODS = ["columns", "instances"]

CASCADE_FORM = """
| survey |
| | type | name | label | choice_filter |
| | select_one region | region | Region | |
| | select_one district | district | District | region = ${region} |
| choices |
| | list_name | name | label | region |
| | region | n | North | |
| | region | s | South | |
| | district | centre | Centre (north) | n |
| | district | hills | Hills | n |
| | district | centre | Centre (south) | s |
| | district | coast | Coast | s |
| settings |
| | form_id | allow_choice_duplicates |
| | cascade | yes |
"""

ROSTER_FORM = """
| survey |
| | type | name | label | calculation | repeat_count |
| | integer | n | Members | | |
| | begin_repeat | roster | Member | | ${n} |
| | text | name | Name | | |
| | calculate | person_id | | uuid() | |
| | end_repeat | | | | |
| | begin_repeat | edu | Education | | ${n} |
| | calculate | edu_pos | | position(..) | |
| | calculate | edu_person | | indexed-repeat(${person_id}, ${roster}, ${edu_pos}) | |
| | calculate | edu_key | | concat(${edu_person}, '-', ${edu_pos}) | |
| | integer | grade | Grade | | |
| | end_repeat | | | | |
| | calculate | first_id | | indexed-repeat(${person_id}, ${roster}, 1) | |
| settings |
| | form_id |
| | roster |
"""

NOTES_FORM = """
| survey |
| | type | name | label | relevant | required |
| | integer | age | Age | | yes |
| | select_one yn | married | Married? | | yes |
| | note | stop_child_married | A child cannot be married: go back and correct age or status. | ${age} < 12 and ${married} = '1' | yes |
| | acknowledge | consent_read | I have read the consent text to the respondent. | ${age} >= 18 | yes |
| | note | info | Thank you. | | |
| | text | spouse | Spouse's name | ${married} = '1' | yes |
| choices |
| | list_name | name | label |
| | yn | 1 | Yes |
| | yn | 2 | No |
| settings |
| | form_id |
| | notes |
"""


def _instance(form_id: str, body: str, uid: str) -> str:
    return f'<data id="{form_id}">{body}<meta><instanceID>{uid}</instanceID></meta></data>'


def _validate(tmp_path: Path, md: str, instances: dict[str, str], method: str):
    form_path = write_md_form(tmp_path, md)
    folder = tmp_path / "subs"
    folder.mkdir(exist_ok=True)
    for name, text in instances.items():
        (folder / f"{name}.xml").write_text(text, encoding="utf-8")
    return validate_input(compile_form(load_form(form_path)), folder, method=method)


def _found(result) -> set[tuple[str | None, str, str]]:
    return {(f.instance_id, f.path, f.code) for f in result.findings if f.instance_id}


# --- 1. cascading lists with allow_choice_duplicates ----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_choice_name_reused_under_two_parents_is_allowed_under_each(tmp_path: Path, method: str) -> None:
    instances = {
        "north": _instance("cascade", "<region>n</region><district>centre</district>", "uuid:north"),
        "south": _instance("cascade", "<region>s</region><district>centre</district>", "uuid:south"),
        "wrong": _instance("cascade", "<region>n</region><district>coast</district>", "uuid:wrong"),
    }
    result = _validate(tmp_path, CASCADE_FORM, instances, method)
    assert result.stats["method"] == method
    assert _found(result) == {("uuid:wrong", "/data/district", "choice_unknown")}


@pytest.mark.java
def test_choices_of_a_cascade_reusing_names_equal_javarosa(tmp_path: Path) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    _, xform = _model_from_md(tmp_path, CASCADE_FORM)
    (tmp_path / "form.xml").write_text(xform, encoding="utf-8")
    answers = [(region, district) for region in ("n", "s") for district in ("centre", "hills", "coast")]
    instances = {
        f"i{k}": _instance("cascade", f"<region>{r}</region><district>{d}</district>", f"uuid:{k}")
        for k, (r, d) in enumerate(answers)
    }
    files = []
    for name, text in instances.items():
        files.append(tmp_path / f"{name}.xml")
        files[-1].write_text(text, encoding="utf-8")
    theirs = javarosa_check(tmp_path / "form.xml", files)
    refused = set()
    for path in files:
        nodes = theirs[str(path)]
        assert not isinstance(nodes, str), nodes
        verdict = next(node.choices for node in nodes if node.path == "/data/district")
        assert verdict in {"0", "1"}
        if verdict == "0":
            refused.add(f"uuid:{path.stem[1:]}")
    assert refused == {"uuid:2", "uuid:4"}  # coast in the north, hills in the south
    for method in METHODS:
        (tmp_path / method).mkdir()
        found = _found(_validate(tmp_path / method, CASCADE_FORM, instances, method))
        assert found == {(uid, "/data/district", "choice_unknown") for uid in refused}, method


# --- 2. values drawn on the device ---------------------------------------------------------------------------

PEOPLE = ("3f1c2d9e-0000-4000-8000-000000000001", "3f1c2d9e-0000-4000-8000-000000000002")


def _roster(uid: str, edu_key_2: str | None = None) -> str:
    roster = "".join(f"<roster><name>P{k}</name><person_id>{p}</person_id></roster>" for k, p in enumerate(PEOPLE))
    edu = "".join(
        f"<edu><edu_pos>{k}</edu_pos><edu_person>{p}</edu_person>"
        f"<edu_key>{edu_key_2 if (k == 2 and edu_key_2) else f'{p}-{k}'}</edu_key><grade>3</grade></edu>"
        for k, p in enumerate(PEOPLE, start=1)
    )
    return _instance("roster", f"<n>2</n>{roster}{edu}<first_id>{PEOPLE[0]}</first_id>", uid)


@pytest.mark.parametrize("method", METHODS)
def test_uuid_values_are_read_from_the_instance_and_their_dependents_recomputed(
    tmp_path: Path, method: str
) -> None:
    instances = {"clean": _roster("uuid:clean"), "edited": _roster("uuid:edited", edu_key_2="someone-else-2")}
    result = _validate(tmp_path, ROSTER_FORM, instances, method)
    assert _found(result) == {("uuid:edited", "/data/edu[2]/edu_key", "calculate_mismatch")}
    mismatch = next(f for f in result.findings if f.code == "calculate_mismatch")
    assert mismatch.message.endswith(f"gives '{PEOPLE[1]}-2'.")


# --- 3. required notes and acknowledgements ------------------------------------------------------------------


def _person(uid: str, age: str, married: str, consent: str = "", spouse: str = "") -> str:
    body = (
        f"<age>{age}</age><married>{married}</married><stop_child_married/>"
        f"<consent_read>{consent}</consent_read><info/><spouse>{spouse}</spouse>"
    )
    return _instance("notes", body, uid)


@pytest.mark.parametrize("method", METHODS)
def test_required_notes_stop_and_acknowledgements_are_required(tmp_path: Path, method: str) -> None:
    instances = {
        "adult": _person("uuid:adult", "30", "1", consent="OK", spouse="A"),
        "unread": _person("uuid:unread", "30", "2"),
        "child": _person("uuid:child", "10", "1", spouse="B"),
        "teen": _person("uuid:teen", "14", "2"),
    }
    result = _validate(tmp_path, NOTES_FORM, instances, method)
    assert _found(result) == {
        ("uuid:unread", "/data/consent_read", "required_missing"),
        ("uuid:child", "/data/stop_child_married", "hard_stop_reached"),
    }
    stop = next(f for f in result.findings if f.code == "hard_stop_reached")
    assert "could not have finalised" in stop.message and stop.severity == "error"


@pytest.mark.java
def test_required_notes_and_acknowledgements_equal_javarosa(tmp_path: Path) -> None:
    model, xform = _model_from_md(tmp_path, NOTES_FORM)
    instances = [
        _person(f"uuid:{k}", age, married, consent, spouse)
        for k, (age, married, consent, spouse) in enumerate(
            [("30", "1", "OK", "A"), ("30", "2", "", ""), ("10", "1", "", "B"), ("14", "2", "", ""), ("9", "2", "OK", "")]
        )
    ]
    _run(tmp_path, model, xform, instances)


# --- 4. nodes absent from the submission ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_a_required_node_absent_from_the_submission_says_so(tmp_path: Path, method: str) -> None:
    absent = _instance("notes", "<age>30</age><married>1</married><consent_read>OK</consent_read>", "uuid:absent")
    instances = {"absent": absent, "empty": _person("uuid:empty", "30", "1", consent="OK")}
    result = _validate(tmp_path, NOTES_FORM, instances, method)
    spouse = {f.instance_id: f for f in result.findings if f.variable == "spouse"}
    assert set(spouse) == {"uuid:absent", "uuid:empty"}
    assert spouse["uuid:absent"].code == spouse["uuid:empty"].code == "required_missing"
    assert spouse["uuid:absent"].absent and "absent" in spouse["uuid:absent"].message
    assert not spouse["uuid:empty"].absent and "absent" not in spouse["uuid:empty"].message


def test_absent_is_in_the_json_of_the_cli(tmp_path: Path) -> None:
    form_path = write_md_form(tmp_path, NOTES_FORM)
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "a.xml").write_text(
        _instance("notes", "<age>30</age><married>1</married><consent_read>OK</consent_read>", "uuid:a"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["validate", str(folder), "--form", str(form_path), "--json"])
    assert result.exit_code == 1, result.output
    findings = json.loads(result.stdout)["issues"]
    assert [(f["variable"], f["qualified_code"], f["absent"]) for f in findings] == [
        ("spouse", "validate.required_missing", True)
    ]


# --- also seen on real forms ---------------------------------------------------------------------------------


def test_central_deprecated_id_is_a_known_field(tmp_path: Path) -> None:
    edited = _person("uuid:edited", "30", "1", consent="OK", spouse="A").replace(
        "</instanceID>", "</instanceID><deprecatedID>uuid:original</deprecatedID>"
    )
    result = _validate(tmp_path, NOTES_FORM, {"edited": edited}, "columns")
    assert result.valid and not result.findings
    assert [i.code for i in result.issues] == []
    tables = ingest.ingest([tmp_path / "subs"], load_form(tmp_path / "form.md"))
    assert tables.tables["notes"]["deprecatedID"].tolist() == ["uuid:original"]


TIMES_FORM = """
| survey |
| | type | name | label | constraint | calculation |
| | start | start | | | |
| | dateTime | when | When | | |
| | date | dob | Born | . <= today() | |
| | calculate | when_day | | | date(${when}) |
| | calculate | age_days | | | int(today() - ${dob}) |
| | calculate | dob_dt | | | decimal-date-time(${dob}) |
| | calculate | same_day | | | if(date(${when}) = today(), 'yes', 'no') |
| | date | moved | Moved | . < date(${when}) | |
| settings |
| | form_id |
| | times |
"""


@pytest.mark.parametrize("zone", ["Asia/Almaty", "Asia/Tashkent", "Europe/Moscow"])
def test_other_time_zones_stay_on_the_column_path_and_agree(tmp_path: Path, zone: str) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    # Shortly after local midnight: the device's day is one later than the UTC day.
    cases = [
        ("2024-03-02T01:30:00.000+05:00", "2024-03-02T00:15:00.000+05:00", "2024-03-02", "2024-03-01"),
        ("2024-03-02T01:30:00.000+05:00", "2024-03-01T23:50:00.000+05:00", "2024-03-03", "2024-03-02"),
        ("2024-06-10T00:20:00.000+03:00", "2024-06-09T22:10:00.000Z", "2000-01-31", "2024-06-10"),
    ]
    instances = {}
    for k, (start, when, dob, moved) in enumerate(cases):
        body = (
            f"<start>{start}</start><when>{when}</when><dob>{dob}</dob><when_day/><age_days/><dob_dt/>"
            f"<same_day/><moved>{moved}</moved>"
        )
        instances[f"i{k}"] = _instance("times", body, f"uuid:{k}")
    form_path = write_md_form(tmp_path, TIMES_FORM)
    folder = tmp_path / "subs"
    folder.mkdir()
    for name, text in instances.items():
        (folder / f"{name}.xml").write_text(text, encoding="utf-8")
    form = compile_form(load_form(form_path))
    columns = validate_input(form, folder, tz=tz)
    instances_result = validate_input(form, folder, tz=tz, method="instances")
    assert columns.stats["method"] == "columns"

    def key(result) -> list[tuple[str | None, str, str, str | None]]:
        return sorted((f.instance_id, f.path, f.code, f.message) for f in result.findings)

    assert key(columns) == key(instances_result)
    # 00:15 at +05:00 is the previous day in UTC (and in Moscow): moved (1 March) < date(when) only holds where the
    # device's day is 2 March.
    local_day = datetime(2024, 3, 1, 19, 15, tzinfo=UTC).astimezone(tz).date()
    violated = ("uuid:0", "/data/moved", "constraint_violated") in {k[:3] for k in key(columns)}
    assert violated == (local_day <= date(2024, 3, 1))
