"""Codebooks: HTML, XLSX and DDI 2.5 (validated against the official schema), with and without data."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree
from openpyxl import load_workbook
from typer.testing import CliRunner

from tests.conftest import DDI_SCHEMA, write_md_form
from toolkit.cli import app
from toolkit.codebook import DDI_NS, build_codebook, render_ddi, render_html, write_codebook
from toolkit.errors import ToolkitError
from toolkit.xform import load_form

FORM = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | hint::English (en) | hint::Russian (ru) | relevant | constraint | calculation |
| | select_one yn | consent | Consent? | Согласие? | Read the text | Прочтите текст | | | |
| | begin_repeat | hl | Member | Член семьи | | | ${consent}='1' | | |
| | select_one sex | hl_sex | Sex | Пол | | | | | |
| | integer | hl_age | Age | Возраст | | | | (. >= 0 and . <= 120) or . = -98 | |
| | select_multiple fruit | fav | Fruits & veg | Фрукты | | | ${hl_age} >= 5 | | |
| | calculate | adult | | | | | | | if(${hl_age} >= 18, 1, 0) |
| | note | nt | Thank you | Спасибо | | | | | |
| | end_repeat | | | | | | | | |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) |
| | yn | 1 | Yes | Да |
| | yn | 2 | No | Нет |
| | yn | 99 | Refused | Отказ |
| | sex | 1 | Male | Мужской |
| | sex | 2 | Female | Женский |
| | fruit | 1 | Apple | Яблоко |
| | fruit | 2 | Pear | Груша |
| settings |
| | form_id | version | default_language |
| | cb | 2026112701 | English (en) |
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_form(write_md_form(tmp_path_factory.mktemp("cb"), FORM))


@pytest.fixture(scope="module")
def tables():
    main = pd.DataFrame({"KEY": ["uuid:a", "uuid:b", "uuid:c"], "consent": ["1", "1", "99"]})
    roster = pd.DataFrame(
        {
            "KEY": ["uuid:a/hl[1]", "uuid:a/hl[2]", "uuid:b/hl[1]"],
            "PARENT_KEY": ["uuid:a", "uuid:a", "uuid:b"],
            "hl_sex": ["1", "2", "2"],
            "hl_age": pd.array([34, 3, -98], dtype="Int64"),
            "fav": ["1 2", pd.NA, pd.NA],
            "adult": ["1", "0", "0"],
        }
    )
    return {"cb": main, "cb-hl": roster}


def _ddi_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(DDI_SCHEMA)))


def test_structure_without_data(model) -> None:
    codebook, issues = build_codebook(model)
    assert not issues
    assert [t.name for t in codebook.tables] == ["cb", "cb-hl"]
    roster = {v.name: v for v in codebook.tables[1].variables}
    assert list(roster) == ["hl_sex", "hl_age", "fav", "adult"]  # the note holds no data
    assert roster["hl_age"].constraint == "(. >= 0 and . <= 120) or . = -98"
    assert roster["fav"].universe == "(${consent}='1') and (${hl_age} >= 5)"
    assert roster["adult"].derivation == "if(${hl_age} >= 18, 1, 0)"
    assert [c.missing for c in codebook.tables[0].variables[0].categories] == [False, False, True]


def test_statistics_from_tables(model, tables) -> None:
    codebook, _ = build_codebook(model, tables=tables)
    roster = {v.name: v for v in codebook.tables[1].variables}
    age = roster["hl_age"]
    assert (age.valid, age.missing, age.dont_know_refused) == (2, 0, 1)
    assert (age.minimum, age.maximum, age.mean) == (3.0, 34.0, 18.5)
    assert [(c.code, c.frequency) for c in roster["hl_sex"].categories] == [("1", 1), ("2", 2)]
    assert [(c.code, c.frequency) for c in roster["fav"].categories] == [("1", 1), ("2", 1)]
    consent = codebook.tables[0].variables[0]
    assert (consent.valid, consent.dont_know_refused) == (2, 1)


def test_ddi_validates_against_the_official_schema(model, tables) -> None:
    codebook, _ = build_codebook(model, tables=tables)
    document = etree.fromstring(render_ddi(codebook))
    schema = _ddi_schema()
    assert schema.validate(document), schema.error_log
    ns = {"d": DDI_NS}
    age = document.find(".//d:var[@name='hl_age']", ns)
    langs = {
        el.get("{http://www.w3.org/XML/1998/namespace}lang"): el.text for el in age.findall("d:labl", ns)
    }
    assert langs == {"en": "Age", "ru": "Возраст"}
    assert document.find(".//d:varGrp[@type='multipleResp']", ns).get("name") == "fav"
    refused = document.find(".//d:var[@name='consent']/d:catgry[@missing='Y']/d:catValu", ns)
    assert refused.text == "99"
    assert document.find(".//d:fileDscr/d:fileTxt/d:dimensns/d:caseQnty", ns).text == "3"


def test_html_is_self_contained_and_escaped(model) -> None:
    codebook, _ = build_codebook(model, language="Russian (ru)")
    page = render_html(codebook)
    assert "Возраст" in page and "Fruits &amp; veg" not in page  # Russian chosen
    assert "<script" not in page and "http" not in page.split("</style>")[1]
    english = render_html(build_codebook(model)[0])
    assert "Fruits &amp; veg" in english


def test_write_all_formats_with_rename_map(model, tmp_path: Path) -> None:
    rename = tmp_path / "cb-rename-map.csv"
    rename.write_text(
        "table,original_name,xlsform_path,spss_name,stata_name,reason\n"
        "cb-hl,hl_age,/data/hl/hl_age,hl_age,hl_age,\n",
        encoding="utf-8",
    )
    result = write_codebook(model, out_dir=tmp_path / "out", rename_map=rename)
    assert sorted(Path(f).name for f in result.files) == [
        "cb-codebook.html",
        "cb-codebook.xlsx",
        "cb-ddi.xml",
    ]
    sheet = load_workbook(tmp_path / "out" / "cb-codebook.xlsx")["variables"]
    rows = {r[1]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["hl_age"][2:4] == ("hl_age", "hl_age")
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind
    umask = os.umask(0)
    os.umask(umask)
    assert {Path(f).stat().st_mode & 0o777 for f in result.files} == {0o666 & ~umask}  # shareable, not 0600


def test_unknown_format_and_missing_rename_map(model, tmp_path: Path) -> None:
    with pytest.raises(ToolkitError, match="Unknown codebook format"):
        write_codebook(model, out_dir=tmp_path, formats=["pdf"])
    with pytest.raises(ToolkitError, match="rename map does not exist"):
        write_codebook(model, out_dir=tmp_path, rename_map=tmp_path / "none.csv")


def test_cli(model, tmp_path: Path) -> None:
    form = write_md_form(tmp_path, FORM)
    result = CliRunner().invoke(
        app, ["codebook", str(form), "--out", str(tmp_path / "o"), "--format", "html,ddi", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "cb-ddi.xml").is_file() and (tmp_path / "o" / "cb-codebook.html").is_file()


@pytest.mark.parametrize(("asked", "chosen"), [("ru", "Russian (ru)"), ("Russian", "Russian (ru)"), (None, "English (en)")])
def test_language_by_code_or_name(model, asked, chosen) -> None:
    codebook, _ = build_codebook(model, language=asked)
    assert codebook.language == chosen


def test_unknown_language_is_a_usage_error_not_a_silent_fallback(model) -> None:
    with pytest.raises(ToolkitError, match="no language 'kk'") as caught:
        build_codebook(model, language="kk")
    assert caught.value.exit_code == 2


# Who is asked, in words: (relevance, language, wording) on the module's form; None = shown as XPath only.
UNIVERSE_WORDS = [
    ("/data/consent = '1'", "English (en)", "Consent? = Yes"),
    ("/data/consent = '1'", "Russian (ru)", "Согласие? = Да"),
    ("/data/consent = '1' and /data/hl/hl_age >= 15", "English (en)", "Consent? = Yes; Age ≥ 15"),
    ("15 <= /data/hl/hl_age", "English (en)", "Age ≥ 15"),
    ("/data/hl/hl_sex = '2' or /data/hl/hl_age < 5", "English (en)", "Sex = Female or Age < 5"),
    ("selected(/data/hl/fav, '2')", "Russian (ru)", "Фрукты включает Груша"),
    ("not(selected(/data/hl/fav, '1'))", "English (en)", "Fruits & veg does not include Apple"),
    ("count(/data/hl) > 2", "English (en)", "number of «Member» > 2"),
    ("/data/hl/hl_age != ''", "English (en)", "Age is answered"),
    ("string-length(/data/hl/hl_sex) > 0", "English (en)", None),  # a function with no wording
    ("/data/hl[1]/hl_age > 3", "English (en)", None),  # a predicate
]


@pytest.mark.parametrize(("expression", "language", "words"), UNIVERSE_WORDS)
def test_universe_in_words(model, expression: str, language: str, words: str | None) -> None:
    from toolkit.wording import in_words

    assert in_words(model, expression, "/data/hl/hl_age", language) == words


def test_codebook_shows_universe_words_exported_codes_and_an_index(tmp_path: Path) -> None:
    form_md = """
    | survey |
    | | type | name | label | relevant |
    | | select_one yn | contact | Contact made | |
    | | integer | age | Age | ${contact} = '1' |
    | | select_one country | dest | Destination | ${contact} = '1' and ${age} >= 15 |
    | choices |
    | | list_name | name | label | iso_num |
    | | yn | 1 | Yes | |
    | | yn | 2 | No | |
    | | country | RUS | Russia | 643 |
    | | country | TJK | Tajikistan | 762 |
    | settings |
    | | form_id | version |
    | | words | 1 |
    """
    form = load_form(write_md_form(tmp_path, form_md))
    from toolkit.export import export_tables

    frame = pd.DataFrame({"KEY": ["uuid:a"], "contact": ["1"], "age": [30], "dest": ["RUS"]})
    export_tables({"words": frame}, form, out_dir=tmp_path / "export", formats=["dta"])
    rename_map = tmp_path / "export" / "words-rename-map.csv"
    result = write_codebook(form, out_dir=tmp_path / "cb", tables={"words": frame}, rename_map=rename_map)
    dest = next(v for t in result.codebook.tables for v in t.variables if v.name == "dest")
    assert dest.universe_words == "Contact made = Yes; Age ≥ 15"
    assert dest.universe == "${contact} = '1' and ${age} >= 15"
    assert [(c.code, c.exported, c.frequency) for c in dest.categories] == [("RUS", "643", 1), ("TJK", "762", 0)]
    page = (tmp_path / "cb" / "words-codebook.html").read_text(encoding="utf-8")
    assert "Contact made = Yes; Age ≥ 15" in page and "643 (RUS)" in page
    assert 'Variable index' in page and 'href="#v-words-dest"' in page
    ddi = etree.parse(str(tmp_path / "cb" / "words-ddi.xml"))
    values = ddi.xpath("//d:var[@name='dest']/d:catgry/d:catValu/text()", namespaces={"d": DDI_NS})
    assert values == ["643", "762"]
    sheet = load_workbook(tmp_path / "cb" / "words-codebook.xlsx")["categories"]
    assert [row[2:4] for row in sheet.iter_rows(min_row=2, values_only=True) if row[1] == "dest"] == [
        ("643", "RUS"),
        ("762", "TJK"),
    ]


def test_not_asked_is_counted_apart_from_missing(model, tables, tmp_path) -> None:
    """A blank where skip logic did not ask the question is "not asked", not "missing"; without relevance the
    codebook cannot tell them apart and says only "missing"."""
    import numpy as np

    fav = next(n for n in model.nodes.values() if n.name == "fav")
    age = next(n for n in model.nodes.values() if n.name == "hl_age")
    asked = {fav.path: np.array([True, False, False]), age.path: np.array([True, True, True])}
    codebook, _ = build_codebook(model, tables=tables, asked=asked)
    by_name = {v.name: v for t in codebook.tables for v in t.variables}
    assert (by_name["fav"].valid, by_name["fav"].missing, by_name["fav"].not_asked) == (1, 0, 2)
    assert by_name["hl_age"].not_asked == 0
    assert by_name["hl_sex"].not_asked is None  # no relevance given for it
    plain, _ = build_codebook(model, tables=tables)
    assert {v.name: (v.missing, v.not_asked) for t in plain.tables for v in t.variables}["fav"] == (2, None)
    assert "1 valid, 0 missing, 2 not asked" in render_html(codebook)
    document = etree.fromstring(render_ddi(codebook))
    assert _ddi_schema().validate(document), _ddi_schema().error_log
    result = write_codebook(model, out_dir=tmp_path, formats=["xlsx"], tables=tables, asked=asked)
    sheet = load_workbook(result.files[0])["variables"]
    header = [c.value for c in sheet[1]]
    row = next(r for r in sheet.iter_rows(values_only=True) if r[1] == "fav")
    assert (row[header.index("missing")], row[header.index("not_asked")]) == (0, 2)


def test_codebook_with_data_counts_not_asked_from_the_forms_skip_logic(tmp_path) -> None:
    """`migkit codebook --data` evaluates relevance on the DATA folder (through validate's column path): the
    "not asked" count of a question is the number of rows where its relevance (and its group's) is false,
    recomputed here from the data by hand."""
    form = write_md_form(tmp_path, FORM)
    runner = CliRunner()
    made = runner.invoke(app, ["simulate", str(form), "--n", "60", "--out", str(tmp_path / "s"), "--seed", "4"])
    assert made.exit_code == 0, made.output
    ingested = runner.invoke(app, ["ingest", str(tmp_path / "s"), "--form", str(form), "--out", str(tmp_path / "d")])
    assert ingested.exit_code == 0, ingested.output
    done = runner.invoke(
        app, ["codebook", str(form), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "cb"), "--format", "xlsx"]
    )
    assert done.exit_code == 0, done.output
    sheet = load_workbook(tmp_path / "cb" / "cb-codebook.xlsx")["variables"]
    header = [c.value for c in sheet[1]]
    rows = {r[header.index("name")]: dict(zip(header, r, strict=True)) for r in sheet.iter_rows(min_row=2, values_only=True)}
    roster = pd.read_parquet(tmp_path / "d" / "cb-hl.parquet")
    age = pd.to_numeric(roster["hl_age"], errors="coerce")
    not_asked = int((~(age >= 5)).sum())  # blank or below 5: fav's relevance is false
    answered = roster["fav"].fillna("").str.strip() != ""
    assert rows["fav"]["not_asked"] == not_asked > 0
    assert rows["fav"]["missing"] == int(((age >= 5) & ~answered).sum())
    assert rows["fav"]["valid"] == int(answered.sum())
    assert rows["consent"]["not_asked"] == 0
