"""Labelled .sav/.dta/.csv export: name rules, labels, missing values, dates, companion syntax.

Every .sav is read back by GNU PSPP (an independent reader; no warnings allowed) and every .dta by pandas'
pure-Python Stata reader; pyreadstat is only the writer.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import REPO, require_tool, write_md_form
from toolkit.cli import app
from toolkit.errors import ToolkitError
from toolkit.export import (
    MissingCodes,
    assign_names,
    export_tables,
    spss_ghost_conflicts,
    spss_name,
    stata_name,
    transliterate,
    truncate_bytes,
    truncate_chars,
)
from toolkit.xform import load_form

LONG_LABEL = "Сколько денег " + "очень " * 60 + "конец?"

FORM = f"""
| survey |
| | type | name | label::English (en) | label::Russian (ru) | relevant | calculation | constraint |
| | start | start | | | | | |
| | end | end | | | | | |
| | select_one yn | consent | Consent? | Согласие? | | | |
| | integer | n | How many? | Сколько? | ${{consent}}='1' | | . >= 0 or . = -98 |
| | decimal | income | {LONG_LABEL} | {LONG_LABEL} | | | |
| | begin_repeat | hl | Member | Член | | | |
| | text | hl_name | Name | Имя | | | |
| | select_multiple fruit | fav | Fruits | Фрукты | | | |
| | select_one country | by | Country | Страна | | | |
| | select_one rel | hl_relationship_to_the_head_of_household | Relationship | Отношение | | | |
| | end_repeat | | | | | | |
| | geopoint | gps | GPS | GPS | | | |
| | date | d | Date | Дата | | | |
| | note | nt | Note | Заметка | | | |
| | calculate | calc | | | | ${{n}} * 2 | |
| | text | comment | Comment with $x and `y` /* z */ | Комментарий $x `y` /* z */ | | | |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) | iso_num |
| | yn | 1 | Yes | Да | |
| | yn | 2 | No | Нет | |
| | yn | 98 | Don't know | Не знаю | |
| | yn | 99 | Refused | Отказ | |
| | fruit | 1 | Apple | Яблоко | |
| | fruit | 2 | Pear | Груша | |
| | fruit | 3 | Plum | Слива | |
| | country | RUS | Russia | Россия | 643 |
| | country | KAZ | Kazakhstan | Казахстан | 398 |
| | country | 98 | Don't know | Не знаю | |
| | rel | 01 | Head | Глава | |
| | rel | 02 | Spouse | Супруг(а) | |
| settings |
| | form_id | version | default_language | title |
| | exp | 2026112701 | English (en) | Export test |
"""


def _tables() -> dict[str, pd.DataFrame]:
    main = pd.DataFrame(
        {
            "KEY": ["uuid:a", "uuid:b", "uuid:c"],
            "hh_id": pd.array([1, 2, 3], dtype="Int64"),
            "FormVersion": ["2026112701"] * 3,
            "start": ["2026-11-27T10:15:00.000+03:00", None, "2026-11-27T23:30:05.5-05:30"],
            "end": ["2026-11-27T11:00:00.000+03:00", None, None],
            "consent": ["1", "98", None],
            "n": pd.array([2, -98, None], dtype="Int64"),
            "income": pd.array([1.5, -99.0, None], dtype="Float64"),
            "gps": ["41.3 69.2 400 5", None, "1 2"],
            "d": pd.to_datetime(["2026-01-02", None, "2026-03-04"]).astype("datetime64[s]"),
            "calc": ["4", "-196", None],
            "comment": ["Київ " * 80, None, "ok"],
            "instanceID": ["uuid:a", "uuid:b", "uuid:c"],
            "w_final": [1.5, 2.0, 3.0],
        }
    )
    hl = pd.DataFrame(
        {
            "KEY": ["uuid:a/hl[1]", "uuid:a/hl[2]", "uuid:c/hl[1]"],
            "PARENT_KEY": ["uuid:a", "uuid:a", "uuid:c"],
            "hh_id": pd.array([1, 1, 3], dtype="Int64"),
            "hl_no": pd.array([1, 2, 1], dtype="Int64"),
            "hl_name": ["Иван", "Мария", None],
            "fav": ["1 3", "2", None],
            "by": ["RUS", "KAZ", "XXX"],
            "hl_relationship_to_the_head_of_household": ["01", "02", None],
        }
    )
    return {"exp": main, "exp-hl": hl}


@pytest.fixture(scope="module")
def form(tmp_path_factory):
    return load_form(write_md_form(tmp_path_factory.mktemp("form"), FORM))


@pytest.fixture(scope="module")
def exported(form, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    # codes_from=None: lists whose names are not numbers are recoded 1..n (the path without an iso_num column).
    return export_tables(_tables(), form, out_dir=out, language="ru", codes_from=None), out


def _data_folder(tmp_path: Path, tables: dict[str, pd.DataFrame], form_id: str = "exp") -> Path:
    """A DATA folder in the docs/tables.md format (parquet + tables.json)."""
    manifest = {"form_id": form_id, "form_versions": ["2026112701"], "tables": {}}
    for name, frame in tables.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
        manifest["tables"][name] = {
            "file": f"{name}.parquet",
            "rows": len(frame),
            "path": "/data" if name == form_id else "/data/hl",
            "parent": None if name == form_id else form_id,
            "columns": [
                {"name": c, "path": "", "question_type": "", "dtype": str(frame[c].dtype)} for c in frame
            ],
        }
    (tmp_path / "tables.json").write_text(json.dumps(manifest), encoding="utf-8")
    return tmp_path


# --- PSPP and pandas readers ------------------------------------------------------------------------------


def pspp_dictionary(sav: Path) -> tuple[str, str]:
    """(stdout, stderr) of PSPP's DISPLAY DICTIONARY/DOCUMENTS and LIST on a .sav, in CSV output format."""
    pspp = require_tool("pspp", "pspp")
    script = sav.with_suffix(".check.sps")
    script.write_text(
        f"GET FILE='{sav.name}'.\nDISPLAY FILE LABEL.\nDISPLAY DOCUMENTS.\nDISPLAY DICTIONARY.\nLIST.\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [pspp, "-O", "format=csv", script.name], capture_output=True, text=True, cwd=sav.parent, check=False
    )
    script.unlink()
    return run.stdout, run.stderr


def assert_no_pspp_warnings(stdout: str, stderr: str) -> None:
    # PSPP prints warnings such as "Renaming variable with invalid name" on stdout or stderr.
    assert "warning" not in stdout.lower() and "error" not in stdout.lower(), stdout
    assert stderr.strip() == "", stderr


def stata_read(path: Path):
    reader = pd.io.stata.StataReader(path)
    data = reader.read(convert_categoricals=False, convert_missing=True, convert_dates=False)
    return (
        data,
        reader.variable_labels(),
        reader.value_labels(),
        dict(zip(data.columns, reader._lbllist, strict=True)),
    )


# --- name and label rules (pure functions) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "labelled", "expected"),
    [
        ("hl_sex", False, "hl_sex"),
        ("доход", False, "dokhod"),
        ("Қала_ұлы", False, "Qala_uly"),
        ("_geo_latitude", False, "v_geo_latitude"),
        ("1st", False, "v_1st"),
        ("a-b.c", False, "a_b_c"),
        ("in", False, "in_v"),
        ("IF", False, "IF"),
        ("strL", False, "strL_v"),
        ("str12", False, "str12_v"),
        ("x" * 40, False, "x" * 32),
        ("x" * 40, True, "x" * 28),
        ("€", False, "v"),
    ],
)
def test_stata_name(name, labelled, expected) -> None:
    assert stata_name(name, labelled=labelled) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hl_sex", "hl_sex"),
        ("by", "by_v"),
        ("With", "With_v"),
        ("TO", "TO_v"),
        ("q_", "q"),
        ("_x", "v_x"),
        ("имя", "imya"),
        ("y" * 70, "y" * 64),
        ("a&b", "a_b"),
    ],
)
def test_spss_name(name, expected) -> None:
    assert spss_name(name) == expected


@pytest.mark.parametrize(
    ("names", "candidates", "limit", "expected"),
    [
        (["a", "A"], ["a", "A"], 32, ["a", "A_2"]),
        (
            ["x" * 40, "x" * 33, "x" * 32],
            ["x" * 32, "x" * 32, "x" * 32],
            32,
            ["x" * 30 + "_2", "x" * 30 + "_3", "x" * 32],
        ),
        (["q", "q_2", "Q"], ["q", "q_2", "Q"], 32, ["q", "q_2", "Q_3"]),
        (["a-b", "a_b"], ["a_b", "a_b"], 32, ["a_b_2", "a_b"]),
    ],
)
def test_assign_names_is_deterministic_and_case_insensitive(names, candidates, limit, expected) -> None:
    assert assign_names(names, candidates, [limit] * len(names)) == expected
    assert assign_names(names, candidates, [limit] * len(names)) == expected


@pytest.mark.parametrize(
    ("names", "widths", "expected"),
    [
        (["t"], [32_767], [0]),  # segment 24 is named TO
        (["comment"], [32_767], []),
        (["short"], [200], []),
        (["abcde", "ABCDE1"], [600, 0], [0]),  # ghost ABCDE1 equals the other variable's short name
    ],
)
def test_spss_ghost_conflicts(names, widths, expected) -> None:
    assert spss_ghost_conflicts(names, widths) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected", "cut"),
    [
        ("abc", 3, "abc", False),
        ("абв", 6, "абв", False),
        ("абвг", 6, "а…", True),  # 8 bytes; the ellipsis takes 3 and the cut falls on a character boundary
        ("abcdef", 5, "ab…", True),
    ],
)
def test_truncate_bytes(text, limit, expected, cut) -> None:
    assert truncate_bytes(text, limit) == (expected, cut)
    assert len(truncate_bytes(text, limit)[0].encode("utf-8")) <= limit


def test_truncate_chars_and_transliterate() -> None:
    assert truncate_chars("д" * 81, 80) == ("д" * 79 + "…", True)
    assert transliterate("Щука Ёж Ҳа") == "Shchuka Yozh Ha"


# --- SPSS through PSPP --------------------------------------------------------------------------------------


def test_sav_opens_in_pspp_with_labels_and_missing_values(exported) -> None:
    result, out = exported
    stdout, stderr = pspp_dictionary(out / "exp.sav")
    assert_no_pspp_warnings(stdout, stderr)
    assert "Export test - exp" in stdout  # file label
    assert "Form exp version 2026112701: Export test" in stdout  # documents
    rows = {line.split(",")[0]: line for line in stdout.splitlines() if line.count(",") >= 8}
    assert rows["consent"].split(",")[2] == "Согласие?"
    assert rows["consent"].endswith("98; 99")
    assert "-99; -98" in rows["n"] and "Scale" in rows["n"]
    assert "DATETIME20" in rows["start"] and "DATE11" in rows["d"]
    assert ",Не знаю" in stdout and ",Отказ" in stdout and "98[a]" in stdout
    # Local wall-clock time of the device and its offset, not UTC.
    assert "27-NOV-2026 10:15:00,180" in stdout
    assert "27-NOV-2026 23:30:05,-330" in stdout
    # The long Cyrillic label was cut at a character boundary with a warning.
    assert any(i.code == "export.label_truncated" and i.location.variable == "income" for i in result.issues)
    assert "Київ Київ" in stdout
    assert "notes" not in {r.split(",")[0] for r in rows.values()}
    assert "nt" not in rows  # notes are dropped


def test_sav_repeat_table_dummies_and_renames(exported) -> None:
    _, out = exported
    stdout, stderr = pspp_dictionary(out / "exp-hl.sav")
    assert_no_pspp_warnings(stdout, stderr)
    assert "fav_3,9,Фрукты: Слива" in stdout
    assert "by_v," in stdout  # `by` is reserved in SPSS in any case
    lines = stdout.splitlines()
    data = lines[lines.index("Table: Data List") + 1 :]
    header = data[0].split(",")
    first = dict(zip(header, data[1].split(","), strict=True))
    assert (first["fav"], first["fav_1"], first["fav_2"], first["fav_3"]) == ("1 3", "1", "0", "1")
    third = dict(zip(header, data[3].split(","), strict=True))
    assert third["fav_1"].strip() == "."  # not asked: system-missing, not 0
    assert first["hl_relationship_to_the_head_of_household"] == "1"


def test_pspp_convert_labels_match(exported) -> None:
    result, out = exported
    convert = require_tool("pspp-convert", "pspp")
    target = out / "hl-labels.csv"
    run = subprocess.run(
        [convert, "--labels", str(out / "exp-hl.sav"), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr
    labelled = pd.read_csv(target, dtype=str)
    assert labelled["fav_1"].tolist()[:2] == ["Да", "Нет"]
    assert labelled["by_v"].tolist() == ["Россия", "Казахстан", "XXX"]
    ours = pd.read_csv(out / "exp-hl-labelled.csv", dtype=str, encoding="utf-8-sig")
    assert ours["by"].tolist() == labelled["by_v"].tolist()
    # Every labelled variable of both tables reads the same in PSPP's labelled output and in our labelled CSV
    # (PSPP writes a blank for system-missing).
    for table in ("exp", "exp-hl"):
        run = subprocess.run(
            [convert, "--labels", str(out / f"{table}.sav"), str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        theirs = pd.read_csv(target, dtype=str, keep_default_na=False)
        ours = pd.read_csv(
            out / f"{table}-labelled.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig"
        )
        checked = [
            r
            for r in result.renames
            if r.table == table and (r.name in {"consent", "n", "income", "by"} or r.name.startswith("fav_"))
        ]
        assert checked
        for entry in checked:
            assert [v.strip() for v in theirs[entry.spss_name]] == ours[entry.name].tolist(), entry.name


def test_document_lines_never_end_a_command_early(form, tmp_path) -> None:
    # A wrapped document line ending with a period would end DOCUMENT and run the rest as commands.
    titled = form.__class__(**{**form.__dict__, "title": "Survey round 1. " * 6})
    export_tables(_tables(), titled, formats=["sav"], out_dir=tmp_path)
    script = (tmp_path / "exp.sps").read_text(encoding="utf-8")
    document = script.split("DOCUMENT\n", 1)[1].split("\n* SAVE", 1)[0].splitlines()
    assert all(not line.endswith(".") for line in document[:-1]) and document[-1].endswith(".")
    pspp = require_tool("pspp", "pspp")
    check = tmp_path / "doc.sps"
    check.write_text(script + "DISPLAY DOCUMENTS.\n", encoding="utf-8")
    run = subprocess.run(
        [pspp, "-O", "format=csv", check.name], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert_no_pspp_warnings(run.stdout, run.stderr)
    assert "Survey round 1" in run.stdout


def test_sps_companion_runs_in_pspp(exported) -> None:
    _, out = exported
    pspp = require_tool("pspp", "pspp")
    script = out / "exp-hl.sps"
    text = script.read_text(encoding="utf-8")
    assert "MRSETS" in text and "$fav" in text and "VARIABLES=fav_1 fav_2 fav_3" in text
    check = out / "mr.sps"
    check.write_text(text + "MRSETS /DISPLAY NAME=ALL.\nSHOW WEIGHT.\n", encoding="utf-8")
    run = subprocess.run(
        [pspp, "-O", "format=csv", check.name], capture_output=True, text=True, cwd=out, check=False
    )
    assert_no_pspp_warnings(run.stdout, run.stderr)
    assert "$fav" in run.stdout and "Фрукты" in run.stdout
    main = (out / "exp.sps").read_text(encoding="utf-8")
    assert "WEIGHT BY w_final." in main and "DOCUMENT" in main
    run = subprocess.run([pspp, "exp.sps"], capture_output=True, text=True, cwd=out, check=False)
    assert_no_pspp_warnings(run.stdout, run.stderr)


# --- Stata through pandas -----------------------------------------------------------------------------------


def test_dta_release_118_labels_and_extended_missing(exported) -> None:
    _, out = exported
    assert (out / "exp.dta").read_bytes()[:28] == b"<stata_dta><header><release>"
    assert (out / "exp.dta").read_bytes()[28:31] == b"118"
    data, var_labels, value_labels, label_sets = stata_read(out / "exp.dta")
    assert var_labels["consent"] == "Согласие?"
    assert len(var_labels["income"]) == 80 and var_labels["income"].endswith("…")
    assert value_labels[label_sets["consent"]][1] == "Да"
    assert str(data["consent"][1]) == ".d"
    assert str(data["n"][1]) == ".d" and str(data["income"][1]) == ".r"
    assert str(data["n"][2]) == "."  # skipped: plain system missing
    converted = pd.read_stata(out / "exp.dta")
    assert converted["consent"][0] == "Да"
    assert converted["start"][0] == pd.Timestamp("2026-11-27 10:15:00")
    assert converted["d"][2] == pd.Timestamp("2026-03-04")
    assert converted["comment"][0].startswith("Київ")


def test_dta_repeat_names_fit_pyreadstat_label_sets(exported) -> None:
    result, out = exported
    _, var_labels, value_labels, label_sets = stata_read(out / "exp-hl.dta")
    long = "hl_relationship_to_the_head_of_household"
    entry = next(r for r in result.renames if r.name == long)
    assert len(entry.stata_name) <= 28 and entry.spss_name == long
    assert var_labels[entry.stata_name] == "Отношение"
    assert value_labels[label_sets[entry.stata_name]] == {1: "Глава", 2: "Супруг(а)"}
    assert var_labels["fav_2"] == "Фрукты: Груша"
    assert value_labels[label_sets["by"]][4] == "XXX"


def test_do_companion_has_notes_chars_and_svyset(exported) -> None:
    _, out = exported
    do = (out / "exp.do").read_text(encoding="utf-8")
    assert f"notes income: {LONG_LABEL}" in do  # full text, not the 80-character label
    assert "char n[Odk_relevant] \\${consent} ='1'" in do
    assert "char n[Odk_constraint] . >= 0 or . = -98" in do
    assert "char calc[Odk_calculate] \\${n} * 2" in do
    assert "svyset _n [pweight=w_final]" in do
    assert "\\$x" in do and "\\`y\\`" in do and "/*" not in do.split("use ", 1)[1]


# --- rename map, recodes, CSV -------------------------------------------------------------------------------


def test_rename_map_and_value_map(exported) -> None:
    result, out = exported
    assert (out / "exp-rename-map.csv").read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads the BOM
    rename = pd.read_csv(out / "exp-rename-map.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(rename.columns) == [
        "table",
        "original_name",
        "xlsform_path",
        "spss_name",
        "stata_name",
        "reason",
    ]
    row = rename[(rename.table == "exp-hl") & (rename.original_name == "by")].iloc[0]
    assert (row.spss_name, row.stata_name, row.reason) == ("by_v", "by", "SPSS: reserved word")
    assert len(rename) == sum(1 for _ in result.renames)
    values = pd.read_csv(out / "exp-value-map.csv", dtype=str, encoding="utf-8-sig")
    assert values[values.choice_list == "country"][["choice_name", "code"]].values.tolist() == [
        ["RUS", "1"],
        ["KAZ", "2"],
        ["98", "3"],
    ]
    codes = {i.code for i in result.issues}
    assert {"export.choices_recoded", "export.unknown_choice", "export.renamed"} <= codes


def test_csv_and_labelled_csv(exported) -> None:
    _, out = exported
    raw = (out / "exp.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    plain = pd.read_csv(out / "exp.csv", dtype=str, encoding="utf-8-sig")
    labelled = pd.read_csv(out / "exp-labelled.csv", dtype=str, encoding="utf-8-sig")
    assert plain["consent"].tolist()[:2] == ["1", "98"]
    assert labelled["consent"].tolist()[:2] == ["Да", "Не знаю"]
    assert plain["start"][0] == "2026-11-27 10:15:00" and plain["d"][0] == "2026-01-02"
    assert plain["gps_latitude"][0] == "41.3" and pd.isna(plain["gps_altitude"][2])


# --- configuration, languages, inputs ----------------------------------------------------------------------


def test_configured_not_applicable_code_becomes_dot_n(form, tmp_path) -> None:
    tables = _tables()
    codes = MissingCodes.parse("98=d,99=r,2=n", "-98=d,-99=r")
    calls = []
    export_tables(
        tables,
        form,
        formats=["dta", "sav"],
        out_dir=tmp_path,
        missing_codes=codes,
        progress=lambda *args: calls.append(args),
    )
    assert calls == [(1, 4, 3), (2, 4, 3), (3, 4, 3), (4, 4, 3)]  # done, total, rows of the largest table
    data, *_ = stata_read(tmp_path / "exp-hl.dta")
    relationship = next(c for c in data.columns if c.startswith("hl_relationship"))
    assert str(data[relationship][1]) == ".n"
    stdout, stderr = pspp_dictionary(tmp_path / "exp.sav")
    assert_no_pspp_warnings(stdout, stderr)
    assert "2; 98; 99" in stdout


def test_default_language_and_unknown_language(form, tmp_path) -> None:
    result = export_tables(_tables(), form, formats=["dta"], out_dir=tmp_path)
    assert result.language == "English (en)"
    _, var_labels, *_ = stata_read(tmp_path / "exp.dta")
    assert var_labels["consent"] == "Consent?"
    with pytest.raises(ToolkitError, match="no language 'German'"):
        export_tables(_tables(), form, formats=["dta"], out_dir=tmp_path, language="German")
    with pytest.raises(ToolkitError, match="Unknown export format"):
        export_tables(_tables(), form, formats=["xpt"], out_dir=tmp_path)


def test_reads_a_data_folder_and_cli_json(form, tmp_path) -> None:
    (tmp_path / "DATA").mkdir()
    data = _data_folder(tmp_path / "DATA", _tables())
    form_file = write_md_form(tmp_path, FORM)
    runner = CliRunner()
    outcome = runner.invoke(
        app,
        [
            "export",
            str(data),
            "--form",
            str(form_file),
            "--format",
            "sav,dta",
            "--lang",
            "ru",
            "--out",
            str(tmp_path / "OUT"),
            "--codes-from",
            "iso_num",
            "--json",
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    payload = json.loads(outcome.stdout)
    kinds = sorted({f["kind"] for f in payload["files"]})
    assert kinds == ["do", "dta", "rename-map", "sav", "sps", "value-map"]
    assert payload["language"] == "Russian (ru)"
    assert {"choice_list": "country", "choice": "RUS", "code": 643, "label": "Россия"} in payload["recodes"]
    assert any(r["name"] == "by" for r in payload["renamed"])
    stdout, stderr = pspp_dictionary(tmp_path / "OUT" / "exp.sav")
    assert_no_pspp_warnings(stdout, stderr)
    table = runner.invoke(
        app,
        ["export", str(data), "--form", str(form_file), "--format", "csv", "--out", str(tmp_path / "OUT2")],
    )
    assert table.exit_code == 0 and "exp-labelled.csv" in table.stdout
    bad = runner.invoke(app, ["export", str(data), "--form", str(form_file), "--format", "xls"])
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["export", str(tmp_path / "nope"), "--form", str(form_file)])
    assert missing.exit_code == 3
    for option in (["--choice-missing", "98=dk"], ["--number-missing", "-98"], ["--lang", "German"]):
        usage = runner.invoke(
            app, ["export", str(data), "--form", str(form_file), "--format", "csv", *option]
        )
        assert usage.exit_code == 2, option


def test_long_text_with_a_short_name_is_renamed_for_spss(tmp_path) -> None:
    md = """
    | survey |
    | | type | name | label |
    | | text | t | Long text |
    | | text | by | Reserved |
    | | text | ALL | Reserved too |
    | | integer | a | A |
    | | integer | A_ | Case twin |
    """
    form = load_form(write_md_form(tmp_path, md))
    root = form.form_id
    # A strL column with a missing value: pyreadstat 1.3.7 fails on it unless we write "" (Stata's
    # missing string).
    frame = pd.DataFrame(
        {
            "KEY": ["uuid:1", "uuid:2"],
            "t": ["ж" * 20_000, None],
            "by": ["x", None],
            "ALL": ["y", "z"],
            "a": pd.array([1, None], dtype="Int64"),
            "A_": pd.array([2, 3], dtype="Int64"),
        }
    )
    result = export_tables({root: frame}, form, formats=["sav", "dta"], out_dir=tmp_path / "out")
    names = {r.name: r.spss_name for r in result.renames}
    assert names["t"] == "t_txt" and names["by"] == "by_v" and names["ALL"] == "ALL_v"
    assert names["a"] == "a" and names["A_"].lower() != "a"
    stdout, stderr = pspp_dictionary(tmp_path / "out" / f"{root}.sav")
    assert_no_pspp_warnings(stdout, stderr)
    assert "ж" * 100 in stdout
    data = pd.read_stata(tmp_path / "out" / f"{root}.dta")
    assert data["t"].tolist() == ["ж" * 20_000, ""]


def test_orphan_repeat_rows_are_reported(form, tmp_path) -> None:
    tables = _tables()
    tables["exp-hl"].loc[2, "PARENT_KEY"] = "uuid:zzz"
    result = export_tables(tables, form, formats=["csv"], out_dir=tmp_path)
    assert any(i.code == "export.orphan_rows" for i in result.issues)
    assert not result.ok  # a data problem: the files are written, the command exits with 1
    data = tmp_path / "DATA"
    data.mkdir()
    _data_folder(data, tables)
    outcome = CliRunner().invoke(
        app, ["export", str(data), "--form", str(write_md_form(tmp_path, FORM)), "--format", "csv"]
    )
    assert outcome.exit_code == 1
    assert (tmp_path / "export" / "exp-hl.csv").is_file()  # default --out: `export` next to DATA


def test_derived_names_never_replace_a_column(tmp_path) -> None:
    md = """
    | survey |
    | | type | name | label |
    | | geopoint | gps | Where |
    | | decimal | gps_latitude | Typed latitude |
    | | select_multiple ab | pick | Pick |
    | | text | pick_a | Other text |
    | choices |
    | | list_name | name | label |
    | | ab | a | A |
    | | ab | b | B |
    """
    form = load_form(write_md_form(tmp_path, md))
    frame = pd.DataFrame(
        {"KEY": ["uuid:1"], "gps": ["1 2 3 4"], "gps_latitude": [9.5], "pick": ["a"], "pick_a": ["typed"]}
    )
    result = export_tables({form.form_id: frame}, form, formats=["csv", "sav"], out_dir=tmp_path / "out")
    csv = pd.read_csv(tmp_path / "out" / f"{form.form_id}.csv", encoding="utf-8-sig")
    assert csv["gps_latitude"][0] == 9.5 and csv["gps_latitude_2"][0] == 1.0
    assert csv["pick_a"][0] == "typed" and csv["pick_a_2"][0] == 1
    renamed = {r.name: r.reason for r in result.renames}
    assert "already a column" in renamed["gps_latitude_2"]
    stdout, stderr = pspp_dictionary(tmp_path / "out" / f"{form.form_id}.sav")
    assert_no_pspp_warnings(stdout, stderr)


def test_select_multiple_dummies_come_from_the_form_not_the_data(form, tmp_path) -> None:
    tables = _tables()
    tables["exp-hl"]["fav"] = [None, None, None]  # nobody chose anything: the dummies still exist
    result = export_tables(tables, form, formats=["csv"], out_dir=tmp_path)
    columns = pd.read_csv(tmp_path / "exp-hl.csv", encoding="utf-8-sig").columns
    assert {"fav_1", "fav_2", "fav_3"} <= set(columns)
    assert result.ok
    assert np.isnan(pd.read_csv(tmp_path / "exp-hl.csv", encoding="utf-8-sig")["fav_1"]).all()


WEIGHTED_FORM = """
| survey |
| | type | name | label |
| | text | id_stratum | Stratum |
| | text | id_psu | Enumeration area |
| | integer | id_hh_no | Household number |
| | select_one result | hh_result | Result of the interview |
| | text | listing_group | Listing group |
| | begin_repeat | hl | Member |
| | select_one sex | hl_sex | Sex |
| | integer | hl_age | Age |
| | end_repeat | | |
| choices |
| | list_name | name | label |
| | result | 1 | Completed |
| | result | 2 | Refused |
| | result | 3 | Nobody home |
| | result | 4 | Vacant |
| | sex | 1 | Male |
| | sex | 2 | Female |
| settings |
| | form_id | name |
| | household | household |
"""


def test_weights_from_migkit_weights_become_weight_by_and_svyset(tmp_path) -> None:
    """The example survey of docs/weights.md, weighted by `migkit weights`, then exported."""
    example = REPO / "examples" / "weights"
    runner = CliRunner()
    weighted = runner.invoke(
        app,
        [
            "weights",
            str(example / "DATA"),
            "--design",
            str(example / "design.toml"),
            "--out",
            str(tmp_path / "DATA"),
            "--json",
        ],
    )
    assert weighted.exit_code == 0, weighted.output
    form = load_form(write_md_form(tmp_path, WEIGHTED_FORM))
    result = export_tables(tmp_path / "DATA", form, formats=["sav", "dta"], out_dir=tmp_path / "OUT")
    assert result.ok, [i.format() for i in result.issues if i.severity == "error"]
    roster_sps = (tmp_path / "OUT" / "household-hl.sps").read_text(encoding="utf-8")
    assert "WEIGHT BY weight_person." in roster_sps
    assert "WEIGHT BY weight_hh." in (tmp_path / "OUT" / "household.sps").read_text(encoding="utf-8")
    roster_do = (tmp_path / "OUT" / "household-hl.do").read_text(encoding="utf-8")
    assert "svyset var_psu [pweight=weight_person], strata(var_stratum)" in roster_do
    assert "jkrweight(repw_1-repw_44) vce(jackknife)\n" in roster_do
    pspp = require_tool("pspp", "pspp")
    run = subprocess.run(
        [pspp, "household-hl.sps"], capture_output=True, text=True, cwd=tmp_path / "OUT", check=False
    )
    assert_no_pspp_warnings(run.stdout, run.stderr)
    _, var_labels, *_ = stata_read(tmp_path / "OUT" / "household-hl.dta")
    assert var_labels["weight_person"] == "Survey weight (weight_person)"
    assert var_labels["repw_44"] == "Replicate weight (repw_44)"
    assert var_labels["hl_sex"] == "Sex"


def test_long_multiple_response_label_survives_the_sps(tmp_path) -> None:
    label = "Какие источники дохода были у домохозяйства за последние 12 месяцев, включая переводы? " * 2
    md = f"""
    | survey |
    | | type | name | label |
    | | select_multiple src | src | {label} |
    | choices |
    | | list_name | name | label |
    | | src | 1 | Зарплата |
    | | src | 2 | Переводы |
    """
    form = load_form(write_md_form(tmp_path, md))
    frame = pd.DataFrame({"KEY": ["uuid:1", "uuid:2"], "src": ["1 2", "2"]})
    export_tables({form.form_id: frame}, form, formats=["sav", "dta"], out_dir=tmp_path / "out")
    _, var_labels, *_ = stata_read(tmp_path / "out" / f"{form.form_id}.dta")
    assert len(var_labels["src_1"]) <= 80 and var_labels["src_1"].endswith("…: Зарплата")
    script = (tmp_path / "out" / f"{form.form_id}.sps").read_text(encoding="utf-8")
    assert max(len(line.encode("utf-8")) for line in script.splitlines()) <= 251
    check = tmp_path / "out" / "mr.sps"
    check.write_text(script + "MRSETS /DISPLAY NAME=ALL.\n", encoding="utf-8")
    pspp = require_tool("pspp", "pspp")
    run = subprocess.run(
        [pspp, "-O", "format=csv", check.name],
        capture_output=True,
        text=True,
        cwd=tmp_path / "out",
        check=False,
    )
    assert_no_pspp_warnings(run.stdout, run.stderr)
    # The set label is cut to SPSS's 256 bytes; the dummies keep their choice after the cut question text.
    assert truncate_bytes(" ".join(label.split()), 256)[0] in run.stdout
    stdout, _ = pspp_dictionary(tmp_path / "out" / f"{form.form_id}.sav")
    assert "…: Зарплата" in stdout and "…: Переводы" in stdout


def test_mostly_skipped_questions_still_write_extended_missing(form, tmp_path) -> None:
    """pyreadstat (through narwhals) takes an object column for text when its first 100 values hold no number;
    the tagged columns are categorical with the numbers first, so a mostly skipped question still works."""
    rows = 150
    main = pd.DataFrame(
        {
            "KEY": [f"uuid:{i:03d}" for i in range(rows)],
            # skipped for 120 rows, then a DK and ordinary answers
            "consent": [None] * 120 + ["98"] + ["1"] * 28 + ["99"],
            # skipped for 140 rows, then ordinary answers only: a float column, letter-keyed labels kept
            "n": pd.array([None] * 140 + [3] * 10, dtype="Int64"),
            # only DK answers
            "income": pd.array([None] * 130 + [-98.0] * 20, dtype="Float64"),
        }
    )
    export_tables({"exp": main}, form, formats=["dta", "sav"], out_dir=tmp_path)
    data, _, value_labels, label_sets = stata_read(tmp_path / "exp.dta")
    assert [str(v) for v in data["consent"][119:122]] == [".", ".d", "1.0"] and str(
        data["consent"][149]
    ) == ".r"
    assert value_labels[label_sets["consent"]][1] == "Yes"
    assert str(data["income"][140]) == ".d" and data["n"][145] == 3
    assert sorted(value_labels[label_sets["n"]].values()) == ["Don't know", "Refused"]  # keyed .d and .r
    stdout, stderr = pspp_dictionary(tmp_path / "exp.sav")
    assert_no_pspp_warnings(stdout, stderr)


def test_codes_from_a_choices_column(form, tmp_path) -> None:
    """By default (as `migkit forms lint` reads them) countries keep their ISO numbers from `iso_num`; a choice
    without one keeps its integer name."""
    tables = _tables()
    tables["exp-hl"]["by"] = ["RUS", "98", "XXX"]
    result = export_tables(tables, form, formats=["dta", "sav"], out_dir=tmp_path)
    data, _, value_labels, label_sets = stata_read(tmp_path / "exp-hl.dta")
    assert [str(v) for v in data["by"]] == ["643.0", ".d", "644.0"]  # 98 is DK, XXX gets the next free code
    assert value_labels[label_sets["by"]][398] == "Kazakhstan"
    assert not any(i.code == "export.choices_recoded" for i in result.issues)
    assert [(r.choice, r.code) for r in result.recodes if r.choice_list == "country"] == [
        ("RUS", 643),
        ("KAZ", 398),
        ("98", 98),
    ]
    stdout, stderr = pspp_dictionary(tmp_path / "exp-hl.sav")
    assert_no_pspp_warnings(stdout, stderr)
    assert "643,Russia" in stdout


# --- #16 item 11: start-geopoint, month-year dates, roster picks, numeric design columns --------------------

SHAPES_FORM = """
| survey |
| | type | name | label | appearance | calculation |
| | start-geopoint | sgp | | | |
| | begin_repeat | hl | Member | | |
| | text | hl_name | Name | | |
| | calculate | hl_pick | | | concat(position(..), ': ', ${hl_name}) |
| | end_repeat | | | | |
| | select_one ${hl_pick} | resp | Who answers? | | |
| | date | arr | Month of arrival | month-year | |
| settings |
| | form_id | version |
| | shapes | 1 |
"""


def _shapes_tables() -> dict[str, pd.DataFrame]:
    main = pd.DataFrame(
        {
            "KEY": ["uuid:a", "uuid:b", "uuid:c"],
            "hh_id": pd.array([1, 2, 3], dtype="Int64"),
            "sgp": ["38.5598 68.7870 812.0 4.5", None, "42.8746 74.5698 760.5 12.0"],
            "resp": ["2: Malika", "1: Aziz", None],
            "arr": pd.to_datetime(["2024-03-01", None, "2019-12-01"]),
            "var_stratum": ["5", "2", None],
            "var_psu": ["5016", "2052", "1025"],
            "weight_hh": [10.0, 20.0, 30.0],
        }
    )
    return {"shapes": main}


def test_start_geopoint_month_year_roster_picks_and_design_columns(tmp_path: Path) -> None:
    form = load_form(write_md_form(tmp_path, SHAPES_FORM))
    assert form.node("/data/sgp").question_type == "start-geopoint"
    (tmp_path / "DATA").mkdir()
    data = _data_folder(tmp_path / "DATA", _shapes_tables(), form_id="shapes")
    manifest = json.loads((data / "tables.json").read_text(encoding="utf-8"))
    manifest["tables"]["shapes"]["weights"] = ["weight_hh"]
    manifest["design"] = {"weight": "weight_hh", "strata": "var_stratum", "psu": "var_psu"}
    (data / "tables.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = export_tables(data, form, formats=["sav", "dta", "csv"], out_dir=tmp_path / "OUT")
    assert result.ok, [i.format() for i in result.issues]

    dta, _, _, _ = stata_read(tmp_path / "OUT" / "shapes.dta")
    assert dta["sgp_latitude"].tolist()[0] == pytest.approx(38.5598) and dta["sgp_accuracy"].tolist()[2] == 12.0
    assert dta["resp"].tolist()[:2] == [2, 1] and dta["resp_text"].tolist()[:2] == ["2: Malika", "1: Aziz"]
    assert dta["var_psu"].dtype.kind == "f" and dta["var_psu"].tolist() == [5016, 2052, 1025]
    months = pd.read_stata(tmp_path / "OUT" / "shapes.dta")["arr"]  # pandas converts %tm itself
    assert months.tolist()[0] == pd.Timestamp("2024-03-01") and months.tolist()[2] == pd.Timestamp("2019-12-01")
    import pyreadstat

    _, meta = pyreadstat.read_dta(tmp_path / "OUT" / "shapes.dta", metadataonly=True)
    assert meta.original_variable_types["arr"] == "%tm"

    stdout, stderr = pspp_dictionary(tmp_path / "OUT" / "shapes.sav")
    assert_no_pspp_warnings(stdout, stderr)
    assert "MOYR" in stdout and "MAR 2024" in stdout.upper()
    assert "svyset var_psu [pweight=weight_hh], strata(var_stratum)" in (tmp_path / "OUT" / "shapes.do").read_text()
    csv = pd.read_csv(tmp_path / "OUT" / "shapes.csv", dtype=str, encoding="utf-8-sig")
    assert csv["arr"].tolist()[0] == "2024-03" and csv["resp"].tolist()[0] == "2"


def test_ids_with_leading_zeros_stay_text_in_design_columns(tmp_path: Path) -> None:
    form = load_form(write_md_form(tmp_path, SHAPES_FORM))
    tables = _shapes_tables()
    tables["shapes"]["var_psu"] = ["05016", "02052", "01025"]
    (tmp_path / "DATA").mkdir()
    data = _data_folder(tmp_path / "DATA", tables, form_id="shapes")
    manifest = json.loads((data / "tables.json").read_text(encoding="utf-8"))
    manifest["design"] = {"weight": "weight_hh", "strata": "var_stratum", "psu": "var_psu"}
    (data / "tables.json").write_text(json.dumps(manifest), encoding="utf-8")
    export_tables(data, form, formats=["dta"], out_dir=tmp_path / "OUT")
    dta, *_ = stata_read(tmp_path / "OUT" / "shapes.dta")
    assert dta["var_psu"].tolist() == ["05016", "02052", "01025"]


def _without_timestamps(path: Path) -> bytes:
    """The file's bytes without the creation time the .sav header and the .dta <timestamp> carry."""
    data = path.read_bytes()
    if path.suffix == ".sav":
        return data[:92] + data[109:]  # creation date (9 bytes) and time (8 bytes) of the header
    if path.suffix == ".dta":
        import re

        return re.sub(rb"<timestamp>.*?</timestamp>", b"", data, count=1)
    return data


def test_writer_processes_write_the_same_files_in_the_same_order(form, tmp_path, monkeypatch) -> None:
    from toolkit.export import write

    monkeypatch.setattr(write, "PARALLEL_MIN_CELLS", 0)  # the tables are small: force the process pool
    steps: dict[int, list[tuple[int, int, int]]] = {1: [], 2: []}
    results = {
        workers: export_tables(
            _tables(),
            form,
            out_dir=tmp_path / str(workers),
            language="ru",
            codes_from=None,
            workers=workers,
            progress=lambda *step, w=workers: steps[w].append(step),
        )
        for workers in (1, 2)
    }
    assert [(Path(f.path).name, f.kind, f.rows) for f in results[1].files] == [
        (Path(f.path).name, f.kind, f.rows) for f in results[2].files
    ]
    assert results[1].issues == results[2].issues
    assert steps[1] == steps[2]
    for file in results[1].files:
        assert _without_timestamps(Path(file.path)) == _without_timestamps(tmp_path / "2" / Path(file.path).name)


@pytest.mark.parametrize("rows_per_part", [1, 2, 50_000])
def test_csv_written_in_parts_is_the_csv_of_the_whole_table(form, tmp_path, rows_per_part) -> None:
    """A large table's CSV pair is formatted a part of its rows at a time; whether a column is written as integers
    is still decided on the whole column (income is 1.5 in the first row and -99 in the second: -99.0 in both)."""
    from toolkit.export import prepare_export
    from toolkit.export.csvfile import write_csv_parts
    from toolkit.spreadsheet import write_csv_pair

    prepared = prepare_export(_tables(), form, language="ru", codes_from=None)
    written = {}
    for plan in prepared.plans:
        write_csv_pair(tmp_path / "whole.csv", plan.csv_frame(labelled=False), tmp_path / "whole-l.csv", plan.csv_labels())
        write_csv_parts(tmp_path / "parts.csv", tmp_path / "parts-l.csv", plan.csv_parts(rows_per_part))
        assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes(), plan.name
        assert (tmp_path / "parts-l.csv").read_bytes() == (tmp_path / "whole-l.csv").read_bytes(), plan.name
        written[plan.name] = (tmp_path / "parts.csv").read_text(encoding="utf-8-sig")
    assert ",1.5," in written["exp"] and ",-99.0," in written["exp"]
