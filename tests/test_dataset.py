"""The DATA folder contract: `DataFolder` against docs/tables.md, write -> read round trips, and broken or hostile
manifests refused with a message naming the folder and the fix."""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from toolkit.dataset import (
    MANIFEST,
    SCHEMA_VERSION,
    Column,
    DataFolder,
    Design,
    Replicates,
    Table,
    TableWeights,
)
from toolkit.errors import INPUT_MISSING, INPUT_UNREADABLE, Issue, Location, Severity, ToolkitError

DOC = REPO / "docs" / "tables.md"

# The keys of each documented JSON object, and the dataclass it is read into; fields that are not keys of the
# object: the folder (where it was read from) and a table's name (the key it is listed under).
DOCUMENTED = {
    "The manifest (`DataFolder`)": (DataFolder, {"folder"}),
    "A table entry (`Table`)": (Table, {"name"}),
    "A column entry (`Column`)": (Column, set()),
    "The design (`Design`)": (Design, set()),
    "The replicates (`Replicates`)": (Replicates, set()),
}


def _documented_keys() -> dict[str, list[str]]:
    """Heading -> the backquoted keys of the first column of the table under it (section `## tables.json`)."""
    section = DOC.read_text(encoding="utf-8").split("## tables.json", 1)[1].split("\n## ", 1)[0]
    keys: dict[str, list[str]] = {}
    heading = ""
    for line in section.splitlines():
        if line.startswith("### "):
            heading = line.removeprefix("### ").strip()
            keys[heading] = []
        elif heading and (match := re.match(r"\| `([a-z_]+)` \|", line)):
            keys[heading].append(match.group(1))
    return keys


def test_docs_list_the_fields_of_the_dataclasses() -> None:
    documented = _documented_keys()
    assert sorted(documented) == sorted(DOCUMENTED)
    for heading, (cls, not_keys) in DOCUMENTED.items():
        fields = {f.name for f in dataclasses.fields(cls)} - not_keys
        assert sorted(documented[heading]) == sorted(fields), heading


def _weighted(folder: Path) -> DataFolder:
    main = Table(
        "hh",
        "hh.parquet",
        "/data",
        None,
        2,
        (Column("KEY", "", "", "string"), Column("age", "/data/age", "integer", "Int64")),
    )
    roster = Table("hh-hl", "hh-hl.parquet", "/data/hl", "hh", 3, (Column("KEY", "", "", "string"),))
    issue = Issue("ingest.unknown_field", Severity.WARNING, "Пример", Location(file="a.xml", path="/data/x"))
    data = DataFolder(folder, "hh", (main, roster), ("1",), {"files": 2}, (issue,))
    weight = Column("w", None, None, "float64")
    return data.with_weights(
        [TableWeights("hh", ("w",), ("r1",), (weight, Column("r1", None, None, "float64")))],
        Design("w", "s", "p", Replicates("r", "jkn", 1)),
    )


def _frames(data: DataFolder) -> dict[str, pd.DataFrame]:
    return {t.name: pd.DataFrame({"KEY": [f"uuid:{i}" for i in range(t.rows)]}) for t in data.tables}


def test_written_keys_are_the_documented_ones(tmp_path: Path) -> None:
    data = _weighted(tmp_path)
    data.write(_frames(data))
    manifest = json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8"))
    documented = _documented_keys()
    assert list(manifest) == documented["The manifest (`DataFolder`)"]
    assert list(manifest["tables"]["hh"]) == documented["A table entry (`Table`)"]
    assert list(manifest["tables"]["hh"]["columns"][0]) == documented["A column entry (`Column`)"]
    assert list(manifest["design"]) == documented["The design (`Design`)"]
    assert list(manifest["design"]["replicates"]) == documented["The replicates (`Replicates`)"]
    assert "weights" not in manifest["tables"]["hh-hl"]  # absent on a table weights did not touch
    assert "Пример" in (tmp_path / MANIFEST).read_text(encoding="utf-8")  # Cyrillic as it is


def test_with_weights_appends_new_columns_only_and_keeps_the_rest(tmp_path: Path) -> None:
    data = _weighted(tmp_path)
    again = data.with_weights(
        [TableWeights("hh", ("w", "w2"), (), (Column("w", None, None, "float64"), Column("w2", None, None, "x")))],
        Design("w2"),
    )
    assert [c.name for c in again.table("hh").columns] == ["KEY", "age", "w", "r1", "w2"]
    assert again.table("hh").weights == ("w", "w2") and again.table("hh").replicate_weights == ()
    assert again.table("hh-hl") == data.table("hh-hl") and again.issues == data.issues
    assert again.design == Design("w2")


def test_load_reads_selected_columns_and_recorded_dtypes(tmp_path: Path) -> None:
    data = _weighted(tmp_path)
    frame = pd.DataFrame({"KEY": ["a", "b"], "age": [1, None], "other": [1.0, 2.0]})
    data.write({"hh": frame, "hh-hl": pd.DataFrame({"KEY": ["a/hl[1]", "a/hl[2]", "b/hl[1]"]})})
    assert list(data.load("hh", columns=["age"]).columns) == ["age"]
    typed = DataFolder.read(tmp_path).load("hh", recorded_dtypes=True)
    assert str(typed["age"].dtype) == "Int64" and typed["KEY"].dtype == pd.StringDtype("pyarrow")
    with pytest.raises(ToolkitError) as caught:
        data.load("hh", columns=["nope"])
    assert caught.value.issue.code == INPUT_UNREADABLE and caught.value.issue.location.file == str(tmp_path / "hh.parquet")


def test_a_failed_write_leaves_the_previous_set(tmp_path: Path) -> None:
    data = _weighted(tmp_path)
    data.write(_frames(data))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    broken = {"hh": pd.DataFrame({"KEY": [object(), "b"]})}  # pyarrow cannot write an arbitrary object
    with pytest.raises(pa.ArrowException):
        dataclasses.replace(data, form_versions=("2",)).write(broken)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary folder either
    assert all(p.stat().st_mode & 0o077 == 0 for p in tmp_path.iterdir())  # private: the tables hold answers


def test_a_version_1_manifest_is_read_and_written_back_as_version_2(tmp_path: Path) -> None:
    pd.DataFrame({"KEY": ["uuid:1"]}).to_parquet(tmp_path / "hh.parquet")
    columns = [{"name": "KEY", "path": "", "question_type": "", "dtype": "string"}]
    entry = {"file": "hh.parquet", "path": "/data", "parent": None, "rows": 1, "columns": columns}
    old = {"form_id": "hh", "form_versions": ["1"], "tables": {"hh": entry}, "stats": {}, "issues": []}
    (tmp_path / MANIFEST).write_text(json.dumps(old, ensure_ascii=False, indent=2), encoding="utf-8")
    data = DataFolder.read(tmp_path)
    assert data.schema_version == 1 and data.table("hh").columns == (Column("KEY", "", "", "string"),)
    data.with_weights([], Design()).write()
    assert json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8")) == {
        "schema_version": SCHEMA_VERSION,
        **old,
        "design": {"weight": None, "strata": None, "psu": None, "replicates": None},
    }


def test_the_early_list_layout_is_read(tmp_path: Path) -> None:
    pd.DataFrame({"KEY": ["uuid:1", "uuid:2"]}).to_parquet(tmp_path / "hh.parquet")
    pd.DataFrame({"KEY": ["uuid:1/hl[1]"]}).to_parquet(tmp_path / "hh-hl.parquet")
    manifest = {
        "form_id": "hh",
        "versions": ["7"],
        "tables": [
            {"file": "hh.parquet", "path": "/hh", "parent": None},
            {"file": "hh-hl.parquet", "path": "/hh/hl", "parent": "hh.parquet", "rows": 1},
        ],
    }
    (tmp_path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    data = DataFolder.read(tmp_path)
    assert data.names == ("hh", "hh-hl") and data.form_versions == ("7",)
    assert data.table("hh").rows == 2  # counted from the file when the entry has no rows
    assert data.table("hh-hl").parent == "hh"


# --- hypothesis: write -> read gives the same DataFolder ----------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
OPTIONAL_TEXT = st.none() | TEXT


@st.composite
def data_folders(draw: st.DrawFn) -> DataFolder:
    form_id = draw(NAMES)
    repeats = draw(st.lists(NAMES.map(lambda n: f"{form_id}-{n}"), unique=True, max_size=3))
    tables = []
    for name in [form_id, *repeats]:
        columns = draw(
            st.lists(
                st.builds(Column, NAMES, OPTIONAL_TEXT, OPTIONAL_TEXT, TEXT), unique_by=lambda c: c.name, max_size=4
            )
        )
        weights = tuple(draw(st.lists(NAMES, max_size=2)))
        tables.append(
            Table(
                name,
                f"{name}.parquet",
                draw(TEXT),
                None if name == form_id else form_id,
                draw(st.integers(0, 3)),
                tuple(columns),
                weights,
                tuple(draw(st.lists(NAMES, max_size=2))) if weights else (),
            )
        )
    issues = st.builds(
        Issue,
        st.sampled_from(["type_invalid", "ingest.unknown_field"]),
        st.sampled_from(list(Severity)),
        TEXT,
        st.builds(Location, file=OPTIONAL_TEXT, row=st.none() | st.integers(1, 10**6), path=OPTIONAL_TEXT),
        st.none() | TEXT | st.integers(-(10**9), 10**9),
    )
    replicates = st.none() | st.builds(Replicates, NAMES, st.sampled_from(["jkn", "brr"]), st.integers(0, 500))
    design = st.none() | st.builds(Design, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, replicates)
    return DataFolder(
        Path("."),
        form_id,
        tuple(tables),
        tuple(draw(st.lists(TEXT, max_size=3))),
        draw(st.dictionaries(NAMES, st.integers(0, 10**6) | TEXT, max_size=3)),
        tuple(draw(st.lists(issues, max_size=3))),
        draw(design),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_folders())
def test_write_then_read_gives_the_same_data_folder(data: DataFolder) -> None:
    with tempfile.TemporaryDirectory() as temp:
        data = dataclasses.replace(data, folder=Path(temp))
        written = data.write(_frames(data))
        assert [p.name for p in written][-1] == MANIFEST
        assert DataFolder.read(temp) == data


# --- broken and hostile manifests ---------------------------------------------------------------------------


def _good() -> dict[str, Any]:
    column = {"name": "KEY", "path": "", "question_type": "", "dtype": "string"}
    entry = {"file": "hh.parquet", "path": "/data", "parent": None, "rows": 1, "columns": [column]}
    return {"schema_version": 2, "form_id": "hh", "form_versions": [], "tables": {"hh": entry}}


def _edit(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    manifest = _good()
    change(manifest)
    return manifest


def _entry(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["tables"]["hh"]


BROKEN: list[tuple[str, object, str, str]] = [
    # (case, tables.json content (text as it is, else JSON), code, words of the message)
    ("not JSON", "{tables", INPUT_UNREADABLE, "Cannot read tables.json"),
    ("a JSON list", [], INPUT_UNREADABLE, "not a JSON object"),
    ("newer schema", _edit(lambda m: m.update(schema_version=3)), INPUT_UNREADABLE, "schema version 3"),
    ("schema as text", _edit(lambda m: m.update(schema_version="2")), INPUT_UNREADABLE, "schema version '2'"),
    ("no form_id", _edit(lambda m: m.pop("form_id")), INPUT_UNREADABLE, "no form_id"),
    ("no tables", _edit(lambda m: m.update(tables={})), INPUT_UNREADABLE, "lists no tables"),
    ("a list of tables in version 2", _edit(lambda m: m.update(tables=[])), INPUT_UNREADABLE, "lists no tables"),
    ("entry not an object", _edit(lambda m: m.update(tables={"hh": 1})), INPUT_UNREADABLE, "not an object"),
    ("rows as text", _edit(lambda m: _entry(m).update(rows="many")), INPUT_UNREADABLE, "rows must be a count"),
    ("negative rows", _edit(lambda m: _entry(m).update(rows=-1)), INPUT_UNREADABLE, "rows must be a count"),
    ("column without name", _edit(lambda m: _entry(m).update(columns=[{"path": ""}])), INPUT_UNREADABLE, "column"),
    ("weights not a list", _edit(lambda m: _entry(m).update(weights="w")), INPUT_UNREADABLE, "weights"),
    ("design not an object", _edit(lambda m: m.update(design=[])), INPUT_UNREADABLE, "design"),
    (
        "replicates without n",
        _edit(lambda m: m.update(design={"replicates": {"prefix": "r", "method": "jkn"}})),
        INPUT_UNREADABLE,
        "replicates",
    ),
    ("an issue without code", _edit(lambda m: m.update(issues=[{"severity": "error"}])), INPUT_UNREADABLE, "issue"),
    ("missing Parquet file", _edit(lambda m: _entry(m).update(file="gone.parquet")), INPUT_MISSING, "gone.parquet"),
]


def _hostile(name: str, file: str) -> dict[str, Any]:
    manifest = _good()
    manifest["tables"] = {name: {**_entry(manifest), "file": file}}
    return manifest


HOSTILE = [
    ("../hh", "hh.parquet"),
    ("sub/hh", "hh.parquet"),
    ("sub\\hh", "hh.parquet"),
    ("..", "hh.parquet"),
    ("", "hh.parquet"),
    ("hh", "../hh.parquet"),
    ("hh", "/etc/passwd"),
    ("hh", "C:hh.parquet"),
    ("hh", "sub\\..\\hh.parquet"),
    ("hh", "hh\x00.parquet"),
]


def _folder_with(tmp_path: Path, manifest: object) -> Path:
    pd.DataFrame({"KEY": ["uuid:1"]}).to_parquet(tmp_path / "hh.parquet")
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (tmp_path / MANIFEST).write_text(text, encoding="utf-8")
    return tmp_path


def test_the_good_manifest_of_these_cases_is_read(tmp_path: Path) -> None:
    assert DataFolder.read(_folder_with(tmp_path, _good())).names == ("hh",)


@pytest.mark.parametrize(("case", "manifest", "code", "words"), BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_manifests_are_refused_naming_the_folder_and_the_fix(
    tmp_path: Path, case: str, manifest: object, code: str, words: str
) -> None:
    with pytest.raises(ToolkitError) as caught:
        DataFolder.read(_folder_with(tmp_path, manifest))
    issue = caught.value.issue
    assert issue.code == code and words in issue.message, issue.format()
    assert str(tmp_path) in (issue.location.file or "")
    if code == INPUT_MISSING or "schema" in case or "column" in case:
        assert "migkit" in issue.message  # the fix: which command makes it right


@pytest.mark.parametrize(("name", "file"), HOSTILE)
def test_table_names_and_files_that_leave_the_folder_are_refused(tmp_path: Path, name: str, file: str) -> None:
    with pytest.raises(ToolkitError) as caught:
        DataFolder.read(_folder_with(tmp_path, _hostile(name, file)))
    issue = caught.value.issue
    assert issue.code == INPUT_UNREADABLE and "plain file name" in issue.message, issue.format()
    assert issue.location.file == str(tmp_path / MANIFEST)


def test_every_problem_of_a_manifest_is_reported_at_once(tmp_path: Path) -> None:
    manifest = _hostile("../a", "../b")
    manifest.pop("form_id")
    with pytest.raises(ToolkitError) as caught:
        DataFolder.read(_folder_with(tmp_path, manifest))
    assert len(caught.value.issues) == 3  # no form_id, the name, the file


def test_no_manifest_is_a_missing_input(tmp_path: Path) -> None:
    assert not DataFolder.exists(tmp_path)
    with pytest.raises(ToolkitError) as caught:
        DataFolder.read(tmp_path)
    assert caught.value.issue.code == INPUT_MISSING and "migkit ingest" in caught.value.issue.message
