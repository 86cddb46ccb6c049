"""Checks every XLSForm template in forms/ must pass: generated from its sources without drift, compiles with
zero pyxform warnings, passes ODK Validate (JavaRosa) and migkit's lint, and has every user-facing text in all
six languages (specs/questionnaire.md section 4 item 2). Also the template builder (forms/build_templates.py).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from tests.conftest import FORMS_DIR, require_tool
from toolkit.forms import compile_form
from toolkit.forms.lint import lint_form

LANGUAGES = ("English (en)", "Russian (ru)", "Kazakh (kk)", "Kyrgyz (ky)", "Tajik (tg)", "Uzbek (uz)")
CYRILLIC_LANGUAGES = ("Russian (ru)", "Kazakh (kk)", "Kyrgyz (ky)", "Tajik (tg)")
TEXT_COLUMNS = ("label", "hint", "constraint_message", "required_message", "guidance_hint")
CYRILLIC = re.compile(r"[\u0400-\u04FF]")
# Latin words that stay Latin in every language: codes, brands, the SDG/ISCO/ISCED names, XPath references.
NEUTRAL = re.compile(
    r"\$\{[^}]*\}|\b(ISCO|ISCED|PhD|COVID|EPS|UK|Western Union|WhatsApp|Telegram|IMO|GPS|M6|[A-Z]{3})\b"
)
TEMPLATES = sorted(p.stem for p in FORMS_DIR.glob("*.xlsx") if not p.name.startswith(("~$", ".")))


@cache
def builder() -> Any:
    """forms/build_templates.py is a script: load it by path."""
    spec = importlib.util.spec_from_file_location("migkit_forms_builder", FORMS_DIR / "build_templates.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@cache
def sheet(name: str, sheet_name: str) -> tuple[tuple[str, ...], tuple[dict[str, str], ...]]:
    workbook = load_workbook(FORMS_DIR / f"{name}.xlsx", read_only=True)
    try:
        rows = [
            ["" if v is None else str(v) for v in r] for r in workbook[sheet_name].iter_rows(values_only=True)
        ]
    finally:
        workbook.close()
    header = tuple(rows[0])
    return header, tuple(dict(zip(header, r, strict=False)) for r in rows[1:] if any(r))


def test_the_three_templates_are_present() -> None:
    assert {"household", "women", "domestic_workers"} <= set(TEMPLATES)


# ------------------------------------------------------------------------------------------------ builder


def test_workbooks_match_their_sources() -> None:
    proc = subprocess.run(
        [sys.executable, str(FORMS_DIR / "build_templates.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def _copy_sources(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for path in (FORMS_DIR / "src").rglob("*.csv"):
        target = src / path.relative_to(FORMS_DIR / "src")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return src


def test_build_is_deterministic_and_check_finds_drift(tmp_path: Path) -> None:
    src = _copy_sources(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    written = builder().build(src=src, out_dir=out)
    assert sorted(Path(p).stem for p in written) == sorted(p.name for p in builder().form_dirs(src))
    first = {p.name: p.read_bytes() for p in out.glob("*.xlsx")}
    assert builder().build(src=src, out_dir=out) == []  # nothing changed, nothing rewritten
    assert builder().build(check=True, src=src, out_dir=out) == []
    survey = src / "household" / "survey.csv"
    survey.write_text(
        survey.read_text(encoding="utf-8").replace("hl_name", "hl_name", 1) + "\n", encoding="utf-8"
    )
    assert builder().build(check=True, src=src, out_dir=out) == []  # blank lines are not content
    yesno = src / "lists" / "yesno.csv"
    yesno.write_text(yesno.read_text(encoding="utf-8").replace(",Yes,", ",Yes!,"), encoding="utf-8")
    drifted = {Path(p).stem for p in builder().build(check=True, src=src, out_dir=out)}
    assert "household" in drifted
    builder().build(src=src, out_dir=out)
    assert (out / "household.xlsx").read_bytes() != first["household.xlsx"]


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["select_one yesno", "select_multiple ru_use", "select_one yesno"], ["yesno", "ru_use"]),
        (["select_one ${hl_pick}", "integer", "select_one_from_file a.csv"], []),
        (["  select_one   countries  ", "begin_group"], ["countries"]),
    ],
)
def test_referenced_lists(types: list[str], expected: list[str]) -> None:
    assert builder().referenced_lists([{"type": t} for t in types]) == expected


def _tiny_form(tmp_path: Path, choices: str | None, survey_type: str = "select_one yn") -> Path:
    form = tmp_path / "src" / "tiny"
    (tmp_path / "src" / "lists").mkdir(parents=True)
    form.mkdir()
    (form / "survey.csv").write_text(f"type,name,label::English (en)\n{survey_type},q,Q\n", encoding="utf-8")
    (form / "settings.csv").write_text("form_id,version\ntiny,2026112701\n", encoding="utf-8")
    if choices is not None:
        (form / "choices.csv").write_text(choices, encoding="utf-8")
    return form


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        (None, "neither in choices.csv nor in"),
        ("list_name,name,label::English (en)\nyn,1,Yes\nyn,1,Yes again\n", "appears twice"),
    ],
)
def test_bad_sources_are_reported_with_the_file(tmp_path: Path, choices: str | None, message: str) -> None:
    form = _tiny_form(tmp_path, choices)
    with pytest.raises(builder().SourceError, match=message):
        builder().form_sheets(form, tmp_path / "src" / "lists")


def test_choices_sheet_is_own_lists_then_referenced_shared_lists(tmp_path: Path) -> None:
    form = _tiny_form(tmp_path, "list_name,name,label::English (en)\nown,1,One\n", "select_one yesno")
    (tmp_path / "src" / "lists" / "yesno.csv").write_text(
        "list_name,name,label::English (en),extra\nyesno,1,Yes,x\n", encoding="utf-8"
    )
    (tmp_path / "src" / "lists" / "unused.csv").write_text("list_name,name\nunused,1\n", encoding="utf-8")
    choices = builder().form_sheets(form, tmp_path / "src" / "lists")[1]
    assert choices.header == ("list_name", "name", "label::English (en)", "extra")
    assert choices.rows == (("own", "1", "One", ""), ("yesno", "1", "Yes", "x"))


# ---------------------------------------------------------------------------------------------- compile, lint


@pytest.mark.parametrize("name", TEMPLATES)
def test_compiles_with_zero_pyxform_warnings_and_passes_odk_validate(name: str) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    compiled = compile_form(FORMS_DIR / f"{name}.xlsx", validate=True, strict=True)
    assert compiled.issues == (), [i.message for i in compiled.issues]
    assert compiled.validated is True


@pytest.mark.parametrize("name", TEMPLATES)
def test_lint_finds_no_errors(name: str) -> None:
    report = lint_form(FORMS_DIR / f"{name}.xlsx", profile="ncamig")
    assert [i.message for i in report.issues if i.severity == "error"] == []
    # Templates carry no public_key on purpose (migkit keys attach adds it per deployment).
    assert "lint.no_public_key" in {i.code for i in report.issues}


@pytest.mark.parametrize("name", TEMPLATES)
def test_settings(name: str) -> None:
    (row,) = sheet(name, "settings")[1]
    assert row["form_id"].startswith("ncamig_")
    assert re.fullmatch(r"20\d{6}\d{2}", row["version"])
    assert row["default_language"] == "English (en)"
    assert re.search(r"\$\{id_\w*uid\}", row["instance_name"])  # the household key starts every instance name
    assert not row.get("public_key")


# ------------------------------------------------------------------------------------------------ languages


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("sheet_name", ["survey", "choices"])
def test_every_text_column_exists_in_all_six_languages(name: str, sheet_name: str) -> None:
    header, _ = sheet(name, sheet_name)
    assert all(f"label::{language}" in header for language in LANGUAGES)
    for column in header:
        base = column.split("::")[0]
        assert base not in TEXT_COLUMNS or "::" in column, f"{column}: a text column without a language"
        if "::" in column:
            assert column.split("::")[1] in LANGUAGES, column
            assert all(f"{base}::{language}" in header for language in LANGUAGES), column


def _language_problems(name: str, sheet_name: str) -> list[str]:
    problems = []
    for row in sheet(name, sheet_name)[1]:
        for column in TEXT_COLUMNS:
            texts = {language: row.get(f"{column}::{language}", "") for language in LANGUAGES}
            if not any(texts.values()):
                continue
            where = f"{name} {sheet_name} {row.get('list_name', '')} {row.get('name')} {column}"
            english = texts["English (en)"]
            for language, text in texts.items():
                if not text.strip():
                    problems.append(f"{where}: no {language}")
                    continue
                latin_words = re.search(r"[A-Za-z]{4,}", NEUTRAL.sub("", text))
                if language == "Uzbek (uz)" and CYRILLIC.search(text):
                    problems.append(f"{where}: Uzbek must be in Latin script")
                elif language in CYRILLIC_LANGUAGES and latin_words and not CYRILLIC.search(text):
                    problems.append(f"{where}: {language} looks untranslated: {text!r}")
                elif language != "English (en)" and text == english and len(english.split()) > 3:
                    problems.append(f"{where}: {language} is a copy of the English text")
    return problems


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("sheet_name", ["survey", "choices"])
def test_every_label_hint_and_message_is_in_all_six_languages(name: str, sheet_name: str) -> None:
    problems = _language_problems(name, sheet_name)
    assert problems == [], problems[:20]


def test_language_check_catches_gaps_copies_and_wrong_script(monkeypatch: pytest.MonkeyPatch) -> None:
    header = ("type", "name", *(f"label::{language}" for language in LANGUAGES))
    good = ("note", "n1", "Hello there, how are you", "Здравствуйте", "Сәлем", "Салам", "Салом", "Salom")
    rows = [
        dict(zip(header, good, strict=True)),
        dict(
            zip(
                header,
                ("note", "n2", "Hello there, how are you", "", "Сәлем", "Салам", "Салом", "Salom"),
                strict=True,
            )
        ),
        dict(
            zip(
                header,
                ("note", "n3", "Hello there, how are you", *(["Hello there, how are you"] * 5)),
                strict=True,
            )
        ),
        dict(zip(header, ("note", "n4", "Hello", "Привет", "Сәлем", "Салам", "Салом", "Салом"), strict=True)),
    ]
    monkeypatch.setattr(sys.modules[__name__], "sheet", lambda name, sheet_name: (header, tuple(rows)))
    problems = _language_problems("x", "survey")
    assert not any(" n1 " in p for p in problems)
    assert any(" n2 " in p and "no Russian" in p for p in problems)
    assert any(" n3 " in p and "untranslated" in p for p in problems)
    assert any(" n3 " in p and "Uzbek (uz) is a copy" in p for p in problems)
    assert any(" n4 " in p and "Latin script" in p for p in problems)


# ---------------------------------------------------------------------------------------------- shared lists


def _shared_lists() -> list[Path]:
    return sorted((FORMS_DIR / "src" / "lists").glob("*.csv"))


@pytest.mark.parametrize("path", _shared_lists(), ids=lambda p: p.stem)
def test_shared_list_is_one_list_with_unique_codes(path: Path) -> None:
    header, rows = builder().read_csv(path)
    assert header[:2] == ["list_name", "name"]
    assert {r["list_name"] for r in rows} == {path.stem}
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    if path.stem == "countries":
        assert all(re.fullmatch(r"[A-Z]{3}|9[89]", n) for n in names)
    elif path.stem == "currencies":
        assert all(re.fullmatch(r"[A-Z]{3}|96", n) for n in names)
    else:
        assert all(re.fullmatch(r"\d+", n) for n in names), "choice codes are numeric (spec 4.3)"


def test_yesno_and_the_dont_know_refused_codes() -> None:
    _, rows = builder().read_csv(FORMS_DIR / "src" / "lists" / "yesno.csv")
    assert [(r["name"], r["label::English (en)"]) for r in rows] == [
        ("1", "Yes"),
        ("2", "No"),
        ("98", "Don't know"),
        ("99", "Refused"),
    ]


def test_countries_start_with_the_spec_priority_list_and_carry_iso_numbers() -> None:
    _, rows = builder().read_csv(FORMS_DIR / "src" / "lists" / "countries.csv")
    priority = (
        "RUS KAZ KGZ TJK UZB TKM ARM AZE GEO MNG TUR KOR ARE DEU POL "
        "GBR USA CHN JPN BLR UKR ISR CZE LTU ITA GRC ESP FRA SAU QAT"
    )
    assert [r["name"] for r in rows[:30]] == priority.split()
    by_code = {r["name"]: r for r in rows}
    assert len(by_code) > 240
    assert (by_code["TJK"]["iso_num"], by_code["ARM"]["iso_num"], by_code["KOR"]["iso_num"]) == (
        "762",
        "051",
        "410",
    )
    assert {n for n, r in by_code.items() if r["nca"] == "1"} == {
        "ARM",
        "AZE",
        "GEO",
        "KAZ",
        "KGZ",
        "MNG",
        "RUS",
        "TJK",
        "TKM",
        "UZB",
    }


def test_currencies_follow_spec_section_4_item_6() -> None:
    _, rows = builder().read_csv(FORMS_DIR / "src" / "lists" / "currencies.csv")
    codes = {r["name"]: r["iso_num"] for r in rows}
    assert codes == {
        "RUB": "643",
        "KZT": "398",
        "KGS": "417",
        "TJS": "972",
        "UZS": "860",
        "TMT": "934",
        "AMD": "051",
        "AZN": "944",
        "GEL": "981",
        "MNT": "496",
        "BYN": "933",
        "USD": "840",
        "EUR": "978",
        "TRY": "949",
        "KRW": "410",
        "AED": "784",
        "GBP": "826",
        "PLN": "985",
        "CNY": "156",
        "JPY": "392",
        "96": "",
    }


def test_text_that_looks_like_a_formula_stays_text(tmp_path: Path) -> None:
    sheets = [builder().Sheet("survey", ("type", "name", "label"), (("note", "n", "= 5 means five"),))]
    path = tmp_path / "f.xlsx"
    path.write_bytes(builder().workbook_bytes(sheets))
    assert builder().workbook_content(path) == [
        ("survey", [("type", "name", "label"), ("note", "n", "= 5 means five")])
    ]
    assert builder().workbook_bytes(sheets) == path.read_bytes()  # same sheets, same bytes


# ------------------------------------------------------------------------------- wording (issue 12 item 10)

# The Russian spelling each form keeps for "abroad" and for the polite "you" (one per form, never both).
RUSSIAN_STYLE = {
    "household": ("рубеж", "вы"),  # за рубежом / за рубеж / из-за рубежа; «вы» in lower case
    "women": ("границ", "Вы"),  # за границей / за границу / из-за границы; «Вы» capitalised
    "domestic_workers": ("границ", "Вы"),
}
ABROAD = {"рубеж": r"(?<![а-яё])(?:из-)?за рубеж", "границ": r"(?<![а-яё])(?:из-)?за границ"}
LOWER_YOU = r"(?<![А-Яа-яЁё])(?:вы|вас|вам|ваш\w*)(?![а-яё])"


def _russian_texts(form: str) -> list[str]:
    texts = []
    for sheet in ("survey", "choices"):
        path = FORMS_DIR / "src" / form / f"{sheet}.csv"
        if path.exists():
            _, rows = builder().read_csv(path)
            texts += [v for row in rows for k, v in row.items() if "Russian" in k and v]
    return texts


@pytest.mark.parametrize(("form", "style"), sorted(RUSSIAN_STYLE.items()))
def test_russian_uses_one_word_for_abroad_and_one_form_of_you_per_form(form: str, style: tuple[str, str]) -> None:
    abroad, you = style
    other = next(k for k in ABROAD if k != abroad)
    texts = _russian_texts(form)
    assert [t for t in texts if re.search(ABROAD[other], t)] == []
    if you == "Вы":
        assert [t for t in texts if re.search(LOWER_YOU, t)] == []
    else:  # lower case except at the start of a sentence
        capital = r"(?<![.!?:»\"] )(?<!^)(?<![А-Яа-яЁё])(?:Вы|Вас|Вам|Ваш\w*)(?![а-яё])"
        assert [t for t in texts if re.search(capital, t)] == []


@pytest.mark.parametrize("form", sorted(RUSSIAN_STYLE))
def test_every_number_that_accepts_the_sentinels_teaches_them_in_its_hint(form: str) -> None:
    _, rows = builder().read_csv(FORMS_DIR / "src" / form / "survey.csv")
    for row in rows:
        if row["type"] in ("integer", "decimal") and "-98" in row["constraint"]:
            for column in (k for k in row if k.startswith("hint::")):
                assert "-98" in row[column], (row["name"], column)


@pytest.mark.parametrize("form", sorted(RUSSIAN_STYLE))
def test_specify_items_name_the_question_they_belong_to(form: str) -> None:
    """Issue 12 item 10: exports and codebooks tell the many 'Specify' items apart by their labels."""
    _, rows = builder().read_csv(FORMS_DIR / "src" / form / "survey.csv")
    specify = [r for r in rows if r["type"] == "text" and r["name"].endswith("_oth")]
    for column in (k for k in rows[0] if k.startswith("label::")):
        labels = [r[column] for r in specify]
        assert len(set(labels)) == len(labels), (form, column)


@pytest.mark.parametrize(
    ("form", "group", "members"),
    [
        ("women", "wg_hrs", ("wg_time_intro", "wg_hrs_chores", "wg_hrs_care", "wg_hrs_farm", "wg_hrs_paid")),
        ("women", "dw_time", ("dw_hours_day", "dw_days_wk")),
        ("domestic_workers", "dw_time", ("dw_hours_day", "dw_days_wk")),
    ],
)
def test_short_related_items_share_one_screen(form: str, group: str, members: tuple[str, ...]) -> None:
    """Issue 12 item 10: the hours of yesterday (whose sum is checked) and hours x days go on one field-list screen."""
    _, rows = builder().read_csv(FORMS_DIR / "src" / form / "survey.csv")
    names = [r["name"] for r in rows]
    start = names.index(group)
    assert rows[start]["appearance"] == "field-list"
    end = next(i for i in range(start + 1, len(rows)) if rows[i]["type"].replace("_", " ") == "end group")
    assert tuple(names[start + 1 : end]) == members
