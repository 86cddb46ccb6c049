"""Submissions -> tables: keys, types, duplicates, Central CSV exports, version merge, the DATA folder."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.conftest import ODK_FIXTURES, write_md_form
from toolkit import submissions as reader
from toolkit.cli import app
from toolkit.cli import ingest as cli_ingest
from toolkit.errors import Severity
from toolkit.ingest import ingest, iter_submission_xml, read_tables, write_tables
from toolkit.submissions import sources as ingest_sources
from toolkit.xform import load_form

FORM = """
| survey |
| | type | name | label | relevant | repeat_count |
| | start | start | | | |
| | select_one yn | consent | Consent? | | |
| | begin_group | g | Group | ${consent}='1' | |
| | integer | n | How many? | | |
| | begin_repeat | hl | Member | | ${n} |
| | text | hl_name | Name | | |
| | integer | hl_age | Age | | |
| | select_multiple fruit | fav | Fruits | | |
| | begin_repeat | trip | Trip | | |
| | date | trip_date | When | | |
| | end_repeat | | | | |
| | end_repeat | | | | |
| | end_group | | | | |
| | geopoint | gps | GPS | | |
| | decimal | income | Income | | |
| | note | nt | Note | | |
| choices |
| | list_name | name | label |
| | yn | 1 | Yes |
| | yn | 2 | No |
| | fruit | 1 | Apple |
| | fruit | 2 | Pear |
| settings |
| | form_id | version |
| | hh | 2 |
"""

# Two households as ODK Collect writes them (the first with namespaced meta, as Aggregate-era instances have).
SUB_A = """<?xml version='1.0' ?><data id="hh" version="2" xmlns:orx="http://openrosa.org/xforms">
<start>2026-11-27T10:00:00.000+06:00</start><consent>1</consent>
<g><n>2</n>
<hl><hl_name>Ана</hl_name><hl_age>34</hl_age><fav>1 2</fav>
<trip><trip_date>2025-01-02</trip_date></trip><trip><trip_date>2025-03-04</trip_date></trip></hl>
<hl><hl_name>Bo</hl_name><hl_age>7</hl_age><fav/></hl></g>
<gps>42.87 74.59 800 5</gps><income>12.5</income><nt/>
<orx:meta><orx:instanceID>uuid:aaaa</orx:instanceID></orx:meta></data>"""
SUB_B = """<data id="hh" version="2"><start>2026-11-27T11:00:00.000+06:00</start><consent>2</consent>
<g><n/></g><gps/><income/><nt/><meta><instanceID>uuid:bbbb</instanceID></meta></data>"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_form(write_md_form(tmp_path_factory.mktemp("form"), FORM))


def write_submissions(folder: Path, submissions: dict[str, str]) -> Path:
    """The `migkit decrypt` layout: <folder>/<instance>/submission.xml."""
    for name, xml in submissions.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "submission.xml").write_text(xml, encoding="utf-8")
    return folder


@pytest.fixture
def xml_result(tmp_path, model):
    return ingest([write_submissions(tmp_path / "subs", {"a": SUB_A, "b": SUB_B})], model)


def test_tables_keys_and_ids(xml_result) -> None:
    assert list(xml_result.tables) == ["hh", "hh-hl", "hh-trip"]
    assert xml_result.table_paths == {"hh": "/data", "hh-hl": "/data/g/hl", "hh-trip": "/data/g/hl/trip"}
    assert xml_result.parents == {"hh": None, "hh-hl": "hh", "hh-trip": "hh-hl"}
    main, hl, trip = (xml_result.tables[n] for n in ("hh", "hh-hl", "hh-trip"))
    assert list(main.columns) == [
        "KEY",
        "hh_id",
        "FormVersion",
        "start",
        "consent",
        "n",
        "gps",
        "income",
        "instanceID",
    ]
    assert main["KEY"].tolist() == ["uuid:aaaa", "uuid:bbbb"] and main["hh_id"].tolist() == [1, 2]
    # Central keys: group names in the path, repeat positions 1-based (getodk/central-backend briefcase.js).
    assert hl["KEY"].tolist() == ["uuid:aaaa/g/hl[1]", "uuid:aaaa/g/hl[2]"]
    assert hl["PARENT_KEY"].tolist() == ["uuid:aaaa", "uuid:aaaa"]
    assert hl["hl_no"].tolist() == [1, 2] and hl["hh_id"].tolist() == [1, 1]
    assert trip["KEY"].tolist() == ["uuid:aaaa/g/hl[1]/trip[1]", "uuid:aaaa/g/hl[1]/trip[2]"]
    assert trip["PARENT_KEY"].tolist() == ["uuid:aaaa/g/hl[1]"] * 2
    assert (trip["hl_no"].tolist(), trip["trip_no"].tolist()) == ([1, 1], [1, 2])
    for child, parent in (("hh-hl", "hh"), ("hh-trip", "hh-hl")):
        assert set(xml_result.tables[child]["PARENT_KEY"]) <= set(xml_result.tables[parent]["KEY"])
    assert xml_result.issues == ()


@pytest.mark.parametrize(
    ("table", "column", "dtype", "values"),
    [
        ("hh", "n", "Int64", [2, pd.NA]),
        ("hh", "income", "Float64", [12.5, pd.NA]),
        ("hh", "gps", "string", ["42.87 74.59 800 5", pd.NA]),
        ("hh", "start", "string", ["2026-11-27T10:00:00.000+06:00", "2026-11-27T11:00:00.000+06:00"]),
        ("hh-hl", "fav", "string", ["1 2", pd.NA]),
        ("hh-hl", "hl_name", "string", ["Ана", "Bo"]),
        ("hh-trip", "trip_date", "datetime64[s]", [pd.Timestamp("2025-01-02"), pd.Timestamp("2025-03-04")]),
    ],
)
def test_typed_columns(xml_result, table, column, dtype, values) -> None:
    series = xml_result.tables[table][column]
    assert (str(series.dtype) if dtype != "string" else "string") == (
        "string" if isinstance(series.dtype, pd.StringDtype) else str(series.dtype)
    )
    assert [v if not pd.isna(v) else pd.NA for v in series.tolist()] == values


@pytest.mark.parametrize(
    ("element", "bad", "path"),
    [
        ("<hl_age>7</hl_age>", "<hl_age>seven</hl_age>", "/data/g/hl[2]/hl_age"),
        (
            "<trip_date>2025-03-04</trip_date>",
            "<trip_date>2025-13-04</trip_date>",
            "/data/g/hl[1]/trip[2]/trip_date",
        ),
        ("<income>12.5</income>", "<income>12,5</income>", "/data/income"),
        ("<gps>42.87 74.59 800 5</gps>", "<gps>142.87 74.59 800 5</gps>", "/data/gps"),
        ("<start>2026-11-27T10:00:00.000+06:00</start>", "<start>yesterday</start>", "/data/start"),
    ],
)
def test_type_invalid_is_reported_with_the_indexed_path(tmp_path, model, element, bad, path) -> None:
    result = ingest([write_submissions(tmp_path, {"a": SUB_A.replace(element, bad)})], model)
    (issue,) = result.issues
    assert (issue.code, issue.severity, issue.location.instance, issue.location.path) == (
        "type_invalid",
        Severity.ERROR,
        "uuid:aaaa",
        path,
    )
    assert issue.value in bad
    assert not result.valid


def test_duplicates_same_content_kept_once_other_content_kept_with_suffix(tmp_path, model) -> None:
    changed = SUB_B.replace("<consent>2</consent>", "<consent>1</consent>")
    folder = write_submissions(tmp_path, {"a": SUB_A, "a-copy": SUB_A, "b": SUB_B, "b-other": changed})
    result = ingest([folder], model)
    assert result.tables["hh"]["KEY"].tolist() == ["uuid:aaaa", "uuid:bbbb", "uuid:bbbb~dup2"]
    assert len(result.tables["hh-hl"]) == 2
    found = sorted(
        (i.code, str(i.severity), i.location.instance, Path(i.location.file).parent.name)
        for i in result.issues
    )
    assert found == [
        ("duplicate_instance", "error", "uuid:bbbb", "b-other"),
        ("duplicate_instance", "warning", "uuid:aaaa", "a-copy"),
    ]
    # The first in path order keeps the instanceID: b/ (consent 2) before b-other/ (consent 1).
    assert result.tables["hh"]["consent"].tolist() == ["1", "2", "1"]


def test_finds_instances_and_skips_manifests_xforms_and_logs(tmp_path, model) -> None:
    folder = write_submissions(tmp_path / "in", {"a": SUB_A})
    (folder / "b.xml").write_text(SUB_B, encoding="utf-8")  # a loose instance file
    manifest = ODK_FIXTURES / "briefcase" / "encrypted-form-submission.xml"
    (folder / "enc").mkdir()
    (folder / "enc" / "submission.xml").write_bytes(manifest.read_bytes())
    (folder / "form.xml").write_text(model.xform, encoding="utf-8")
    (folder / "decrypt-log.xml").write_text("<log><entry>ok</entry></log>", encoding="utf-8")
    (folder / "other.xml").write_text(SUB_B.replace('id="hh"', 'id="other"'), encoding="utf-8")
    names = [Path(name).relative_to(folder).as_posix() for name, _ in iter_submission_xml(folder)]
    assert names == ["a/submission.xml", "b.xml", "other.xml"]
    assert [Path(n).name for n, _ in iter_submission_xml(folder, form_id="hh")] == ["submission.xml", "b.xml"]
    result = ingest([folder], model)
    assert len(result.tables["hh"]) == 2
    assert sorted(i.code for i in result.issues) == ["ingest.encrypted", "ingest.other_form"]
    assert result.valid


def test_xml_files_are_listed_folder_by_folder_in_name_order(tmp_path) -> None:
    folder = tmp_path / "in"
    for name in ("a/1.xml", "a/b/2.XML", "a/b.xml", "a-b/4.xml", "a.b/3.xml", "a0.xml", "9.xml", "x/y/z/6.xml",
                 ".work/5.xml", ".h.xml", "a/notes.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("<x/>", encoding="utf-8")
    (folder / "linked").symlink_to(folder / "a", target_is_directory=True)  # not entered
    (folder / "l.xml").symlink_to(folder / "a" / "1.xml")  # listed: reading it refuses the link
    names = [Path(source.name).relative_to(folder).as_posix() for source in ingest_sources.xml_sources(folder)]
    assert names == ["9.xml", "a/1.xml", "a/b/2.XML", "a/b.xml", "a-b/4.xml", "a.b/3.xml", "a0.xml", "l.xml",
                     "x/y/z/6.xml"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><data id="hh"><n>&x;</n></data>', "DOCTYPE"),
        ('<data id="hh"><consent>1</consent>', "not well-formed"),
    ],
)
def test_unsafe_or_broken_xml_is_reported_by_file(tmp_path, model, content, needle) -> None:
    folder = write_submissions(tmp_path, {"a": SUB_A})
    (folder / "bad.xml").write_text(content, encoding="utf-8")
    result = ingest([folder], model)
    (issue,) = result.issues
    assert (
        issue.code == "input.unreadable"
        and issue.location.file.endswith("bad.xml")
        and needle in issue.message
    )
    assert len(result.tables["hh"]) == 1


def test_zip_of_instances_ignores_path_traversal(tmp_path, model) -> None:
    archive = tmp_path / "subs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/submission.xml", SUB_A)
        zf.writestr("../evil/submission.xml", SUB_B)
    result = ingest([archive], model)
    assert result.tables["hh"]["KEY"].tolist() == ["uuid:aaaa"]


# ---- ODK Central CSV export ----------------------------------------------------------------------------
# Format checked in getodk/central-backend lib/data/briefcase.js (streamBriefcaseCsvs): the root table is
# `<xmlFormId>.csv` with SubmissionDate first, then fields named by their group path joined by '-',
# geopoints as -Latitude/-Longitude/-Altitude/-Accuracy, then KEY, SubmitterID, SubmitterName,
# AttachmentsPresent, AttachmentsExpected, Status, ReviewState, DeviceID, Edits, FormVersion. Each repeat
# is `<xmlFormId>-<repeat>.csv` with its fields (paths relative to the repeat) then PARENT_KEY and KEY;
# nested repeats get their own file. KEY = instanceID/group/repeat[n] (keyForStacks). select_multiple
# stays space-separated.

CENTRAL_ROOT = [
    [
        "SubmissionDate",
        "start",
        "consent",
        "g-n",
        "gps-Latitude",
        "gps-Longitude",
        "gps-Altitude",
        "gps-Accuracy",
        "income",
        "nt",
        "meta-instanceID",
        "KEY",
        "SubmitterID",
        "SubmitterName",
        "AttachmentsPresent",
        "AttachmentsExpected",
        "Status",
        "ReviewState",
        "DeviceID",
        "Edits",
        "FormVersion",
    ],
    [
        "2026-11-27T05:01:02.345Z",
        "2026-11-27T10:00:00.000+06:00",
        "1",
        "2",
        "42.87",
        "74.59",
        "800",
        "5",
        "12.5",
        "",
        "uuid:aaaa",
        "uuid:aaaa",
        "5",
        "enum1",
        "0",
        "0",
        "",
        "",
        "collect:x1",
        "0",
        "2",
    ],
    [
        "2026-11-27T06:01:02.345Z",
        "2026-11-27T11:00:00.000+06:00",
        "2",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "uuid:bbbb",
        "uuid:bbbb",
        "5",
        "enum1",
        "0",
        "0",
        "",
        "approved",
        "collect:x1",
        "0",
        "2",
    ],
]
CENTRAL_HL = [
    ["hl_name", "hl_age", "fav", "PARENT_KEY", "KEY"],
    ["Ана", "34", "1 2", "uuid:aaaa", "uuid:aaaa/g/hl[1]"],
    ["Bo", "7", "", "uuid:aaaa", "uuid:aaaa/g/hl[2]"],
]
CENTRAL_TRIP = [
    ["trip_date", "PARENT_KEY", "KEY"],
    ["2025-01-02", "uuid:aaaa/g/hl[1]", "uuid:aaaa/g/hl[1]/trip[1]"],
    ["2025-03-04", "uuid:aaaa/g/hl[1]", "uuid:aaaa/g/hl[1]/trip[2]"],
]


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


@pytest.mark.parametrize("group_paths", [True, False], ids=["group-paths", "bare-names"])
def test_central_csv_zip_gives_the_tables_xml_gives(tmp_path, model, xml_result, group_paths) -> None:
    root = [list(row) for row in CENTRAL_ROOT]
    if not group_paths:  # Central's "remove group names" export option
        root[0] = [name.split("-", 1)[1] if name.startswith(("g-", "meta-")) else name for name in root[0]]
    archive = tmp_path / "hh.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hh.csv", csv_bytes(root))
        zf.writestr("hh-hl.csv", csv_bytes(CENTRAL_HL))
        zf.writestr("hh-trip.csv", csv_bytes(CENTRAL_TRIP))
        zf.writestr("media/1561432532482.jpg", b"\xff\xd8jpeg")
    result = ingest([archive], model, attachments_dir=tmp_path / "media")
    assert result.issues == ()
    main = result.tables["hh"]
    assert main["SubmissionDate"].tolist() == ["2026-11-27T05:01:02.345Z", "2026-11-27T06:01:02.345Z"]
    for name, frame in xml_result.tables.items():
        got = result.tables[name].drop(columns=["SubmissionDate"], errors="ignore")
        pd.testing.assert_frame_equal(got, frame)
    assert (tmp_path / "media" / "1561432532482.jpg").read_bytes() == b"\xff\xd8jpeg"


def test_central_not_decrypted_rows_are_warned(tmp_path, model) -> None:
    root = [list(r) for r in CENTRAL_ROOT[:2]]
    root[1] = ["" if i not in (0, 11, 16) else v for i, v in enumerate(root[1])]
    root[1][16] = "not decrypted"
    archive = tmp_path / "hh.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hh.csv", csv_bytes(root))
    result = ingest([archive], model)
    assert [i.code for i in result.issues] == ["ingest.not_decrypted"]
    assert len(result.tables["hh"]) == 1 and len(result.tables["hh-hl"]) == 0


# ---- form versions --------------------------------------------------------------------------------------

V1 = """
| survey |
| | type | name | label |
| | text | old_q | Old |
| | begin_repeat | hl | Member |
| | integer | hl_age | Age |
| | end_repeat | | |
| settings |
| | form_id | version |
| | hh | 1 |
"""
V2 = """
| survey |
| | type | name | label |
| | integer | new_q | New |
| | begin_repeat | hl | Member |
| | integer | hl_age | Age |
| | text | hl_job | Job |
| | end_repeat | | |
| settings |
| | form_id | version |
| | hh | 2 |
"""
V1_SUB = (
    '<data id="hh" version="1"><old_q>x</old_q><hl><hl_age>5</hl_age></hl>'
    "<meta><instanceID>uuid:v1</instanceID></meta></data>"
)
V2_SUB = (
    '<data id="hh" version="2"><new_q>3</new_q><hl><hl_age>6</hl_age><hl_job>cook</hl_job></hl>'
    "<hl><hl_age>7</hl_age><hl_job/></hl><meta><instanceID>uuid:v2</instanceID></meta></data>"
)


def test_form_versions_merge_into_one_set_of_tables(tmp_path) -> None:
    v1 = load_form(write_md_form(tmp_path, V1, "v1.md"))
    v2 = load_form(write_md_form(tmp_path, V2, "v2.md"))
    folder = write_submissions(tmp_path / "subs", {"one": V1_SUB, "two": V2_SUB})
    result = ingest([folder], [v2, v1])
    main, hl = result.tables["hh"], result.tables["hh-hl"]
    assert list(main.columns) == ["KEY", "hh_id", "FormVersion", "new_q", "instanceID", "old_q"]
    assert main["FormVersion"].tolist() == ["1", "2"]
    assert main["new_q"].tolist()[1] == 3 and pd.isna(main["new_q"].tolist()[0])
    assert main["old_q"].tolist()[0] == "x" and pd.isna(main["old_q"].tolist()[1])
    assert hl["hl_age"].tolist() == [5, 6, 7] and hl["hh_id"].tolist() == [1, 2, 2]
    assert result.form_versions == ("1", "2") and result.issues == ()
    # With the newest form only, the old field still comes through, as text, with a warning.
    alone = ingest([folder], v2)
    assert alone.tables["hh"]["old_q"].tolist()[0] == "x"
    assert [i.code for i in alone.issues] == ["ingest.unknown_field"]


# ---- DATA folder and CLI --------------------------------------------------------------------------------


def test_write_and_read_tables_round_trip(tmp_path, xml_result) -> None:
    written = write_tables(xml_result, tmp_path / "data", csv=True)
    assert [p.name for p in written][-1] == "tables.json"
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]
    back = read_tables(tmp_path / "data")
    for name, frame in xml_result.tables.items():
        pd.testing.assert_frame_equal(back.tables[name], frame)
    manifest = json.loads((tmp_path / "data" / "tables.json").read_text(encoding="utf-8"))
    assert manifest["tables"]["hh-trip"]["parent"] == "hh-hl"
    assert {
        "name": "trip_date",
        "path": "/data/g/hl/trip/trip_date",
        "question_type": "date",
        "dtype": "datetime64[s]",
    } in manifest["tables"]["hh-trip"]["columns"]
    assert (tmp_path / "data" / "hh-hl.csv").read_bytes().startswith(b"\xef\xbb\xbfKEY,PARENT_KEY")


def test_process_pool_gives_the_same_tables(tmp_path, model, monkeypatch) -> None:
    subs = {f"s{i}": SUB_A.replace("uuid:aaaa", f"uuid:{i:04d}") for i in range(12)}
    # copies in other batches than their originals: one identical (dropped), one with other answers (kept under
    # KEY ~dup2, its repeat rows too), and a submission without instanceID (keyed by its file, rows included)
    subs["z_same"] = subs["s1"]
    subs["z_other"] = subs["s2"].replace(">34<", ">35<")
    subs["z_no_id"] = SUB_A.replace("<orx:instanceID>uuid:aaaa</orx:instanceID>", "")
    folder = write_submissions(tmp_path, subs)
    serial = ingest([folder], model, workers=1)
    monkeypatch.setattr(reader, "POOL_MIN_FILES", 4)
    monkeypatch.setattr(reader, "_CHUNK", 5)
    pooled = ingest([folder], model, workers=2)
    for name, frame in serial.tables.items():
        pd.testing.assert_frame_equal(pooled.tables[name], frame)
    assert pooled.counts_by_code() == serial.counts_by_code() == {"duplicate_instance": 2, "ingest.instance_id_missing": 1}
    trips = pooled.tables["hh-trip"]
    assert len(trips) == 2 * 14
    assert trips["KEY"].str.startswith("uuid:0002~dup2/").sum() == 2
    assert (trips["PARENT_KEY"] == "uuid:0002~dup2/g/hl[1]").sum() == 2
    no_id = pooled.tables["hh"]["KEY"].str.startswith("file:")
    assert no_id.sum() == 1
    file_key = pooled.tables["hh"].loc[no_id, "KEY"].iloc[0]
    assert (pooled.tables["hh-hl"]["PARENT_KEY"] == file_key).sum() == 2


@pytest.mark.parametrize(
    ("extra", "code", "tables"),
    [({}, 0, {"hh": 2, "hh-hl": 2, "hh-trip": 2}), ({"c": SUB_A.replace(">34<", ">x<")}, 1, None)],
)
def test_cli_json_and_exit_codes(tmp_path, extra, code, tables) -> None:
    form = write_md_form(tmp_path, FORM)
    folder = write_submissions(tmp_path / "subs", {"a": SUB_A, "b": SUB_B, **extra})
    run = CliRunner().invoke(
        app, ["ingest", str(folder), "--form", str(form), "--out", str(tmp_path / "d"), "--json"]
    )
    assert run.exit_code == code, run.output
    report = json.loads(run.stdout)
    if tables is not None:
        assert {k: v["rows"] for k, v in report["tables"].items()} == tables
    else:
        assert report["issues_by_code"] == {"duplicate_instance": 1, "type_invalid": 1}
    assert (tmp_path / "d" / "hh.parquet").is_file()


def test_cli_missing_input_cannot_run(tmp_path) -> None:
    form = write_md_form(tmp_path, FORM)
    run = CliRunner().invoke(
        app, ["ingest", str(tmp_path / "nope"), "--form", str(form), "--out", str(tmp_path)]
    )
    assert run.exit_code == 3


def test_repeat_template_in_an_instance_is_not_a_row(tmp_path, model, xml_result) -> None:
    template = '<hl xmlns:jr="http://openrosa.org/javarosa" jr:template=""><hl_name/><hl_age/><fav/></hl>'
    with_template = SUB_A.replace("<g><n>2</n>", "<g><n>2</n>" + template)
    result = ingest([write_submissions(tmp_path, {"a": with_template, "b": SUB_B})], model)
    pd.testing.assert_frame_equal(result.tables["hh-hl"], xml_result.tables["hh-hl"])


# Text answers survive XML and Central CSV alike: any characters XML 1.0 allows (no CR, which XML normalises).
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r")
    | st.sampled_from("\n\t"),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_TEXT, min_size=1, max_size=4))
def test_text_answers_round_trip_through_xml_and_central_csv(tmp_path_factory, model, names) -> None:
    folder = tmp_path_factory.mktemp("xml")
    members = "".join(
        f"<hl><hl_name>{xml_escape(name)}</hl_name><hl_age>1</hl_age><fav/></hl>" for name in names
    )
    xml = f'<data id="hh"><consent>1</consent><g><n>{len(names)}</n>{members}</g>' + (
        "<meta><instanceID>uuid:t</instanceID></meta></data>"
    )
    (folder / "t.xml").write_text(xml, encoding="utf-8")
    from_xml = ingest([folder], model).tables["hh-hl"]["hl_name"].tolist()
    archive = tmp_path_factory.mktemp("csv") / "hh.zip"
    rows = [["hl_name", "hl_age", "fav", "PARENT_KEY", "KEY"]]
    rows += [[name, "1", "", "uuid:t", f"uuid:t/g/hl[{i}]"] for i, name in enumerate(names, start=1)]
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("hh.csv", csv_bytes([["consent", "KEY"], ["1", "uuid:t"]]))
        zf.writestr("hh-hl.csv", csv_bytes(rows))
    from_csv = ingest([archive], model).tables["hh-hl"]["hl_name"].tolist()
    assert from_xml == from_csv == names


def test_zip_entries_over_the_size_cap_are_refused(tmp_path, model, monkeypatch) -> None:
    monkeypatch.setattr(ingest_sources, "ZIP_MAX_XML_BYTES", len(SUB_B.encode()) + 10)
    archive = tmp_path / "subs.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/submission.xml", SUB_A)  # larger than the cap
        zf.writestr("b/submission.xml", SUB_B)
    result = ingest([archive], model)
    assert result.tables["hh"]["KEY"].tolist() == ["uuid:bbbb"]
    (issue,) = result.issues
    assert issue.code == "input.unreadable" and "a/submission.xml" in issue.location.file


def test_cli_summary_table_with_progress(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cli_ingest, "_PROGRESS_MIN_FILES", 1)
    form = write_md_form(tmp_path, FORM)
    folder = write_submissions(
        tmp_path / "subs", {"a": SUB_A, "b": SUB_B.replace("<income/>", "<income>x</income>")}
    )
    run = CliRunner().invoke(
        app, ["ingest", str(folder), "--form", str(form), "--out", str(tmp_path / "d"), "--csv"]
    )
    assert run.exit_code == 1, run.output
    assert "hh-trip" in run.stdout and "type_invalid" in run.stdout
    assert (tmp_path / "d" / "hh.csv").is_file()


def test_links_are_never_followed_for_submissions_or_attachments(tmp_path, model) -> None:
    """A linked "photo" (to a private key) is not copied, and a linked submission.xml outside the input is refused,
    each with a message; ingest opens inputs without following links, as decrypt does."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----")
    (outside / "submission.xml").write_text(SUB_B, encoding="utf-8")
    folder = write_submissions(tmp_path / "subs", {"a": SUB_A})
    (folder / "a" / "photo.jpg").symlink_to(outside / "private.pem")
    (folder / "a" / "real.jpg").write_bytes(b"jpeg")
    (folder / "b").mkdir()
    (folder / "b" / "submission.xml").symlink_to(outside / "submission.xml")
    (folder / "media").symlink_to(outside, target_is_directory=True)
    result = ingest([folder], model, attachments_dir=tmp_path / "media")
    assert result.tables["hh"]["KEY"].tolist() == ["uuid:aaaa"]
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["real.jpg"]
    messages = {issue.location.file: (issue.code, issue.message) for issue in result.issues}
    assert messages[str(folder / "b" / "submission.xml")][0] == "input.unreadable"
    assert "symbolic link" in messages[str(folder / "b" / "submission.xml")][1]
    assert messages[str(folder / "a" / "photo.jpg")][0] == "ingest.link_refused"


def test_a_zip_bomb_among_the_inputs_is_refused(tmp_path, model) -> None:
    archive = tmp_path / "subs.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/submission.xml", SUB_A)
        zf.writestr("b/submission.xml", SUB_B.replace("</data>", " " * (8 << 20) + "</data>"))
    result = ingest([archive], model)
    assert result.tables["hh"]["KEY"].tolist() == ["uuid:aaaa"]
    (issue,) = result.issues
    assert issue.code == "input.unreadable" and "zip bomb" in issue.message
