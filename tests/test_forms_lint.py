"""`migkit forms lint`: one failing and one passing markdown form per rule, the expression parser, the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from pyxform.xls2json_backends import md_table_to_workbook
from typer.testing import CliRunner

from tests.conftest import write_md_form
from toolkit import forms
from toolkit.cli import app
from toolkit.errors import CATALOGUE
from toolkit.report import Report
from toolkit.xpath.syntax import Binary, XPathSyntaxError, parse_xlsform, walk

runner = CliRunner()

# Every form below gets this settings sheet (a public_key, so only the rule under test speaks).
SETTINGS = """
| settings |
| | form_id | version | public_key |
| | t_lint | 2026112701 | MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA |
"""
CHOICES = """
| choices |
| | list_name | name | label |
| | sex | 1 | Male |
| | sex | 2 | Female |
| | uses | 1 | Food |
| | uses | 2 | School |
| | uses | 98 | Don't know |
"""
# The questions every survey below starts with (rows 2-4), using both lists.
HEAD = """
| survey |
| | type | name | label | relevant | constraint | required | calculation | choice_filter |
| | select_one sex | sex | Sex | | | | | |
| | select_multiple uses | uses | Uses | | | | | |
| | integer | age | Age | | | | | |
"""


def form(rows: str = "", choices: str = CHOICES, settings: str = SETTINGS, head: str = HEAD) -> str:
    """A markdown XLSForm: HEAD's survey rows, then `rows` (row 5 onwards), then the choices and settings."""
    parts = [
        textwrap.dedent(head).strip(),
        textwrap.dedent(rows).strip(),
        textwrap.dedent(choices).strip(),
        textwrap.dedent(settings).strip(),
    ]
    return "\n".join(p for p in parts if p)


def lint(tmp_path: Path, md: str, name: str = "form.md") -> Report:
    return forms.lint_form(write_md_form(tmp_path, md, name))


def found(report: Report, code: str) -> list[tuple[str | None, int | None, str | None]]:
    return [(i.location.sheet, i.location.row, i.location.column) for i in report.issues if i.code == code]


def test_clean_form_has_no_findings(tmp_path: Path) -> None:
    report = lint(
        tmp_path,
        form("""
        | | text | name_first | First name | ${age} >= 0 and ${sex} = '1' | | | | |
        | | integer | hours | Hours | selected(${uses}, '2') | (. >= 0 and . <= 24) or . = -98 | yes | | |
        | | calculate | hours_wk | | | | | if(${hours} >= 0, ${hours} * 7, '') | |
    """),
    )
    assert report.issues == ()
    assert report.valid
    assert report.stats["questions"] == 6 and report.stats["choice_lists"] == 2


# (rule, failing rows, passing rows, expected (code, sheet, row, column) of the failing form's finding)
RULES = [
    (
        "select_multiple with =",
        "| | text | u_oth | Other | ${uses} = '2' | | | | |",
        "| | text | u_oth | Other | selected(${uses}, '2') | | | | |",
        (forms.LINT_SELECT_MULTIPLE_EQUALS, "survey", 5, "relevant"),
    ),
    (
        "select_multiple with != on the right",
        "| | text | u_oth | Other | '98' != ${uses} | | | | |",
        "| | text | u_oth | Other | not(selected(${uses}, '98')) and ${uses} != '' | | | | |",
        (forms.LINT_SELECT_MULTIPLE_EQUALS, "survey", 5, "relevant"),
    ),
    (
        "selected() on a select_one is fine, = on it too",
        "| | text | s_oth | Other | selected(${sex}, '3') | | | | |",
        "| | text | s_oth | Other | selected(${sex}, '2') or ${sex} = '1' | | | | |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "relevant"),
    ),
    (
        "typo in a relevant",
        "| | text | s_oth | Other | ${sex} = '3' | | | | |",
        "| | text | s_oth | Other | ${sex} = '2' | | | | |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "relevant"),
    ),
    (
        "typo as a number",
        "| | text | s_oth | Other | ${sex} = 3 | | | | |",
        "| | text | s_oth | Other | ${sex} = 2 | | | | |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "relevant"),
    ),
    (
        "typo in a constraint on the select itself",
        "| | select_multiple uses | u2 | Uses | | not(selected(., '99') and count-selected(.) > 1) | | | |",
        "| | select_multiple uses | u2 | Uses | | not(selected(., '98') and count-selected(.) > 1) | | | |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "constraint"),
    ),
    (
        "typo in required",
        "| | text | s_oth | Other | | | ${sex} = '0' | | |",
        "| | text | s_oth | Other | | | ${sex} = '1' | | |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "required"),
    ),
    (
        "typo in a calculation",
        "| | calculate | female | | | | | if(${sex} = 'f', 1, 0) | |",
        "| | calculate | female | | | | | if(${sex} = '2', 1, 0) | |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "calculation"),
    ),
    (
        "typo in a choice_filter",
        "| | select_one uses | u1 | Main use | | | | | ${sex} = 'M' or name != '98' |",
        "| | select_one uses | u1 | Main use | | | | | ${sex} = '1' or name != '98' |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "choice_filter"),
    ),
    (
        "typo compared with selected-at()",
        "| | calculate | first | | | | | selected-at(${uses}, 0) = '3' | |",
        "| | calculate | first | | | | | selected-at(${uses}, 0) = '2' | |",
        (forms.LINT_CHOICE_UNKNOWN, "survey", 5, "calculation"),
    ),
    (
        "forward reference in a relevant",
        "| | integer | before | Before | ${after} > 1 | | | | |\n| | integer | after | After | | | | | |",
        "| | integer | after | After | | | | | |\n| | integer | before | Before | ${after} > 1 | | | | |",
        (forms.LINT_FORWARD_REFERENCE, "survey", 5, "relevant"),
    ),
    (
        "forward reference in a constraint (a calculation may look ahead)",
        "| | integer | before | Before | | . <= ${after} | | | |\n| | integer | after | After | | | | | |",
        "| | calculate | before | | | | | ${after} + 1 | |\n| | integer | after | After | | . >= 0 | | | |",
        (forms.LINT_FORWARD_REFERENCE, "survey", 5, "constraint"),
    ),
    (
        "integer compared with text",
        "| | integer | kids | Kids | ${age} > 'ten' | | | | |",
        "| | integer | kids | Kids | ${age} > '10' or ${age} = -98 or ${age} != '' | | | | |",
        (forms.LINT_TYPE_MISMATCH, "survey", 5, "relevant"),
    ),
    (
        "text compared with a number",
        "| | text | city | City | | | | | |\n| | integer | dist | Distance | ${city} = 1 | | | | |",
        "| | text | city | City | | | | | |\n| | integer | dist | Distance | ${city} = '1' | | | | |",
        (forms.LINT_TYPE_MISMATCH, "survey", 6, "relevant"),
    ),
    (
        "constraint on . with text",
        "| | decimal | amount | Amount | | . >= 0 or . = 'DK' | | | |",
        "| | decimal | amount | Amount | | . >= 0 or . = -98 | | | |",
        (forms.LINT_TYPE_MISMATCH, "survey", 5, "constraint"),
    ),
]

REPEATS = """
| | begin_repeat | hl | Roster | | | | | |
| | text | hl_name | Name | | | | | |
| | select_one sex | hl_sex | Sex | | | | | |
| | end_repeat | | | | | | | |
| | begin_repeat | ab | Abroad | | | | | |
{ab}
| | end_repeat | | | | | | | |
"""
RULES += [
    (
        "repeat field from a sibling repeat",
        REPEATS.format(ab="| | calculate | ab_name | | | | | ${hl_name} | |"),
        REPEATS.format(
            ab="| | calculate | ab_name | | | | | indexed-repeat(${hl_name}, ${hl}, position(..)) | |"
        ),
        (forms.LINT_REPEAT_REFERENCE, "survey", 10, "calculation"),
    ),
    (
        "repeat field from outside any repeat (aggregates are fine)",
        REPEATS.format(ab="") + "| | integer | n_f | Women | ${hl_sex} = '2' | | | | |",
        REPEATS.format(ab="")
        + "| | integer | n_f | Women | count(${hl_name}) > 0 and sum(${hl_sex}) > 1 | | | | |",
        (forms.LINT_REPEAT_REFERENCE, "survey", 11, "relevant"),
    ),
    (
        "a choice_filter over a repeat-sourced list filters that repeat",
        REPEATS.format(
            ab="| | select_one ${hl_name} | ab_line | Who | | | | | ${hl_sex} = '2' and ${age} > 1 |"
            "\n| | integer | ab_x | X | ${hl_sex} = '2' | | | | |"
        ),
        REPEATS.format(
            ab="| | select_one ${hl_name} | ab_line | Who | | | | | ${hl_sex} = '2' and ${age} > 1 |"
        ),
        (forms.LINT_REPEAT_REFERENCE, "survey", 11, "relevant"),
    ),
]


def assert_rule(tmp_path: Path, bad: str, good: str, expected: tuple) -> None:
    """The failing form has the expected finding, and the passing form has no finding at all."""
    code, sheet, row, column = expected
    failing = lint(tmp_path, bad, "bad.md")
    assert (sheet, row, column) in found(failing, code), failing.flatten()
    passing = lint(tmp_path, good, "good.md")
    assert passing.issues == (), passing.flatten()


@pytest.mark.parametrize(("rule", "bad", "good", "expected"), RULES, ids=[r[0] for r in RULES])
def test_expression_rules(tmp_path: Path, rule: str, bad: str, good: str, expected: tuple) -> None:
    assert_rule(tmp_path, form(bad), form(good), expected)


def test_finding_carries_expression_variable_and_fix(tmp_path: Path) -> None:
    report = lint(tmp_path, form("| | text | u_oth | Other | ${uses} != '2' | | | | |"))
    (issue,) = report.issues
    assert issue.location.expression == "${uses} != '2'" and issue.location.variable == "uses"
    assert issue.location.file.endswith("form.md")
    assert "not(selected(${uses}, '2'))" in issue.message


NAME_RULES = [
    (
        "name over 32 characters",
        "| | integer | q_" + "x" * 31 + " | Q | | | | | |",
        "| | integer | q_" + "x" * 30 + " | Q | | | | | |",
        (forms.LINT_NAME_TOO_LONG, "survey", 5, "name"),
    ),
    (
        "labelled select_one over 28 characters",
        "| | select_one sex | s_" + "x" * 27 + " | Q | | | | | |",
        "| | select_one sex | s_" + "x" * 26 + " | Q | | | | | |",
        (forms.LINT_NAME_TOO_LONG, "survey", 5, "name"),
    ),
    (
        "select_multiple dummy <name>_<choice> over 28",
        "| | select_multiple uses | m_" + "x" * 24 + " | Q | | | | | |",  # m_xx..._98 has 29 characters
        "| | select_multiple uses | m_" + "x" * 23 + " | Q | | | | | |",
        (forms.LINT_NAME_TOO_LONG, "survey", 5, "name"),
    ),
    (
        "geopoint _longitude suffix",
        "| | geopoint | g_" + "x" * 21 + " | Q | | | | | |",
        "| | geopoint | g_" + "x" * 20 + " | Q | | | | | |",
        (forms.LINT_NAME_TOO_LONG, "survey", 5, "name"),
    ),
    (
        "same name ignoring case in two groups",
        "| | begin_group | g1 | G | | | | | |\n| | integer | Age | Age | | | | | |\n| | end_group |",
        "| | begin_group | g1 | G | | | | | |\n| | integer | age2 | Age | | | | | |\n| | end_group |",
        (forms.LINT_NAME_CASE_COLLISION, "survey", 6, "name"),
    ),
    (
        "a question named like a select_multiple dummy",
        "| | integer | USES_2 | Q | | | | | |",
        "| | integer | uses_n | Q | | | | | |",
        (forms.LINT_NAME_CASE_COLLISION, "survey", 5, "name"),
    ),
    (
        "SPSS reserved word in any case",
        "| | integer | With | Q | | | | | |",
        "| | integer | with_kids | Q | | | | | |",
        (forms.LINT_RESERVED_WORD, "survey", 5, "name"),
    ),
    (
        "Stata reserved word (case-sensitive)",
        "| | integer | long | Q | | | | | |",
        "| | integer | LONG | Q | | | | | |",
        (forms.LINT_RESERVED_WORD, "survey", 5, "name"),
    ),
    (
        "name not valid for SPSS/Stata",
        "| | integer | a-b | Q | | | | | |",
        "| | integer | a_b | Q | | | | | |",
        (forms.LINT_NAME_INVALID, "survey", 5, "name"),
    ),
]


@pytest.mark.parametrize(("rule", "bad", "good", "expected"), NAME_RULES, ids=[r[0] for r in NAME_RULES])
def test_name_rules(tmp_path: Path, rule: str, bad: str, good: str, expected: tuple) -> None:
    assert_rule(tmp_path, form(bad), form(good), expected)


def test_repeat_suffix_makes_a_warning_not_an_error(tmp_path: Path) -> None:
    rows = REPEATS.format(ab="| | integer | ab_" + "x" * 27 + " | Q | | | | | |")
    report = lint(tmp_path, form(rows))
    assert found(report, forms.LINT_NAME_TOO_LONG_WIDE) == [("survey", 10, "name")]
    assert report.valid
    short = lint(
        tmp_path, form(REPEATS.format(ab="| | integer | ab_" + "x" * 26 + " | Q | | | | | |")), "ok.md"
    )
    assert short.issues == ()


def test_same_name_in_two_repeats_is_two_tables(tmp_path: Path) -> None:
    # Each repeat is its own long table (KEY/PARENT_KEY), so names only clash inside one table.
    rows = REPEATS.format(ab="| | text | Hl_Name | Name | | | | | |")
    assert lint(tmp_path, form(rows)).issues == ()


CHOICE_RULES = [
    (
        "non-integer choice name in a coded list",
        "| | sex | 1 | Male |\n| | sex | f | Female |",
        "| | sex | 1 | Male |\n| | sex | 2 | Female |",
        (forms.LINT_CHOICE_NOT_INTEGER, "choices", 3, "name"),
    ),
    (
        "duplicate choice name",
        "| | sex | 1 | Male |\n| | sex | 1 | Female |",
        "| | sex | 1 | Male |\n| | sex | 2 | Female |",
        (forms.LINT_CHOICE_DUPLICATE_NAME, "choices", 3, "name"),
    ),
    (
        "two names that are one integer code",
        "| | sex | 1 | Male |\n| | sex | 01 | Female |",
        "| | sex | 01 | Male |\n| | sex | 02 | Female |",
        (forms.LINT_CHOICE_DUPLICATE_NAME, "choices", 3, "name"),
    ),
    (
        "duplicate label",
        "| | sex | 1 | Male |\n| | sex | 2 | male |",
        "| | sex | 1 | Male |\n| | sex | 2 | Female |",
        (forms.LINT_CHOICE_DUPLICATE_LABEL, "choices", 3, "label"),
    ),
    (
        "unused list",
        "| | sex | 1 | Male |\n| | sex | 2 | Female |\n| | yn | 1 | Yes |",
        "| | sex | 1 | Male |\n| | sex | 2 | Female |",
        (forms.LINT_LIST_UNUSED, "choices", 4, "list_name"),
    ),
]


@pytest.mark.parametrize(("rule", "bad", "good", "expected"), CHOICE_RULES, ids=[r[0] for r in CHOICE_RULES])
def test_choice_rules(tmp_path: Path, rule: str, bad: str, good: str, expected: tuple) -> None:
    head = "| survey |\n| | type | name | label |\n| | select_one sex | sex | Sex |"
    header = "| choices |\n| | list_name | name | label |\n"
    assert_rule(
        tmp_path, form(head=head, choices=header + bad), form(head=head, choices=header + good), expected
    )


def test_duplicate_choice_is_reported_once_not_again_by_pyxform(tmp_path: Path) -> None:
    head = "| survey |\n| | type | name | label |\n| | select_one sex | sex | Sex |"
    report = lint(
        tmp_path,
        form(
            head=head,
            choices="| choices |\n| | list_name | name | label |\n| | sex | 1 | M |\n| | sex | 1 | F |",
        ),
    )
    assert [i.code for i in report.issues] == [forms.LINT_CHOICE_DUPLICATE_NAME]


def test_numeric_code_column_makes_alpha_names_exportable(tmp_path: Path) -> None:
    head = "| survey |\n| | type | name | label |\n| | select_one countries | cob | Born in |"
    good = (
        "| choices |\n| | list_name | name | label | iso_num |\n"
        "| | countries | KAZ | Kazakhstan | 398 |\n| | countries | RUS | Russia | 643 |"
    )
    assert lint(tmp_path, form(head=head, choices=good)).issues == ()
    bad = good.replace("| 643 |", "| |")
    assert found(lint(tmp_path, form(head=head, choices=bad), "bad.md"), forms.LINT_CHOICE_NOT_INTEGER) == [
        ("choices", 3, "iso_num")
    ]


def test_list_used_only_through_instance_is_used(tmp_path: Path) -> None:
    head = (
        "| survey |\n| | type | name | label | calculation |\n| | select_one sex | sex | Sex | |\n"
        "| | calculate | rate | | instance('fx')/root/item[name = ${sex}]/label |"
    )
    choices = CHOICES + "| | fx | 1 | 1.5 |\n"
    assert found(lint(tmp_path, form(head=head, choices=choices)), forms.LINT_LIST_UNUSED) == [
        ("choices", 4, "list_name")  # 'uses' is unused here; 'fx' is used by instance('fx')
    ]


def test_string_coded_list_of_rank_or_file_is_not_coded(tmp_path: Path) -> None:
    head = "| survey |\n| | type | name | label |\n| | rank opts | order | Order |"
    choices = "| choices |\n| | list_name | name | label |\n| | opts | a | A |\n| | opts | b | B |"
    assert lint(tmp_path, form(head=head, choices=choices)).issues == ()


TRANSLATED = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | hint::English (en) | hint::Russian (ru) |
| | integer | age | Age | Возраст | years | {hint_ru} |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) |
| | yn | 1 | Yes | Да |
| | yn | 2 | No | {no_ru} |
"""


def test_missing_translation_per_row(tmp_path: Path) -> None:
    bad = lint(tmp_path, form(head="", choices="", rows=TRANSLATED.format(hint_ru="", no_ru="")), "bad.md")
    assert found(bad, forms.LINT_TRANSLATION_MISSING) == [
        ("survey", 2, "hint::Russian (ru)"),
        ("choices", 3, "label::Russian (ru)"),
    ]
    assert bad.valid  # warnings only (and the unused list)
    good = lint(
        tmp_path, form(head="", choices="", rows=TRANSLATED.format(hint_ru="лет", no_ru="Нет")), "ok.md"
    )
    assert found(good, forms.LINT_TRANSLATION_MISSING) == []


def test_missing_translation_column_is_one_finding(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label::English (en) | label::Russian (ru) | hint::English (en) |
    | | integer | age | Age | Возраст | years |
    | | integer | kids | Kids | Дети | number |
    """
    report = lint(tmp_path, form(head="", choices="", rows=md))
    (issue,) = report.issues
    assert (issue.code, issue.location.row, issue.location.column) == (
        forms.LINT_TRANSLATION_MISSING,
        1,
        "hint::Russian (ru)",
    )
    assert "2 row(s)" in issue.message


def test_no_public_key_is_a_warning(tmp_path: Path) -> None:
    report = lint(tmp_path, form(settings="| settings |\n| | form_id |\n| | t |"))
    assert found(report, forms.LINT_NO_PUBLIC_KEY) == [("settings", 2, "public_key")]
    assert report.valid


def test_unparseable_expression_names_sheet_row_column(tmp_path: Path) -> None:
    report = lint(tmp_path, form("| | integer | kids | Kids | ${age} > 1 and (${sex} = '1' | | | | |"))
    (issue,) = report.issues
    assert issue.code == forms.LINT_EXPRESSION_INVALID
    assert (issue.location.sheet, issue.location.row, issue.location.column) == ("survey", 5, "relevant")
    assert "character" in issue.message


def test_unbalanced_group_is_form_invalid_with_row(tmp_path: Path) -> None:
    report = lint(
        tmp_path, form("| | begin_group | g | G | | | | | |\n| | integer | kids | Kids | | | | | |")
    )
    (issue,) = report.issues
    assert issue.code == forms.LINT_FORM_INVALID and issue.location.row == 5
    assert "begin_group" in issue.message


def test_xlsx_rows_are_spreadsheet_rows(tmp_path: Path) -> None:
    # A blank row in the sheet still counts: the finding points at the row Excel shows.
    md = form("| | text | u_oth | Other | ${uses} = '2' | | | | |")
    workbook = md_table_to_workbook(textwrap.dedent(md))
    path = tmp_path / "form.xlsx"
    workbook.save(path)
    book = load_workbook(path)
    book["survey"].insert_rows(3)
    book.save(path)
    report = forms.lint_form(path)
    assert found(report, forms.LINT_SELECT_MULTIPLE_EQUALS) == [("survey", 6, "relevant")]


def test_aliased_headers_are_understood(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | relevance |
    | | select_multiple uses | uses | Uses | |
    | | text | u_oth | Other | ${uses} = '2' |
    """
    report = lint(tmp_path, form(head="", rows=md))
    assert found(report, forms.LINT_SELECT_MULTIPLE_EQUALS) == [("survey", 3, "relevance")]


PARSES = [
    "${a} = '1' and ${b}!=2",
    "(. >= 0 and . <= 1000000000) or . = -98 or . = -99",
    "${a}-1",
    "count(${hl})  and  1",
    "instance('c')/root/item[name = ${x}]/iso_num",
    "position(..) - 1",
    "10div 2",
    "jr:choice-name(${q}, '${q}')",
    "current()/../x = 1",
    "not((selected(.,'98') or selected(.,'99')) and count-selected(.)>1)",
    "${x} = \u2018a\u2019",
    "@x or ../@y",
    "-${x} * 2 div /data/y",
]
FAILS = [
    ("${a", 0, "malformed reference"),
    ("'abc", 0, "no closing"),
    ("(${a} = 1", 9, "')'"),
    ("${a} = 1)", 8, "without a matching"),
    ("${a} = = 1", 7, "expected a value"),
    ("${a} > 1 and", 12, "end of the expression"),
    ("${a} # 1", 5, "unexpected character"),
    ("${a} ${b}", 5, "missing operator"),
    ("", 0, "empty"),
]


@pytest.mark.parametrize("text", PARSES)
def test_parser_accepts(text: str) -> None:
    assert parse_xlsform(text)


@pytest.mark.parametrize(("text", "position", "words"), FAILS)
def test_parser_rejects_with_position(text: str, position: int, words: str) -> None:
    with pytest.raises(XPathSyntaxError) as caught:
        parse_xlsform(text)
    assert caught.value.position == position and words in str(caught.value)


def test_parser_precedence() -> None:
    tree = parse_xlsform("${a} = 1 or ${b} > 2 and ${c} + 1 * 2 != 3")
    assert isinstance(tree, Binary) and tree.op == "or"
    right = tree.right
    assert isinstance(right, Binary) and right.op == "and"
    assert isinstance(right.right, Binary) and right.right.op == "!="
    assert isinstance(right.right.left, Binary) and isinstance(right.right.left.right, Binary)
    assert right.right.left.right.op == "*"


# --- CLI ----------------------------------------------------------------------------------------------------

BROKEN = form(
    """
| | text | u_oth | Other | ${uses} = '2' | | | | |
| | text | s_oth | Other | ${sex} = '3' and ${later} > 1 | | | | |
| | integer | later | Later | | . = 'x' | | | |
| | text | w | Q | (${age} | | | | |
| | begin_repeat | hl | Roster | | | | | |
| | text | hl_name | Name | | | | | |
| | integer | hl_xxxxxxxxxxxxxxxxxxxxxxxxxxxx | Name | | | | | |
| | end_repeat | | | | | | | |
| | integer | n | N | ${hl_name} != '' | | | | |
| | integer | q_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx | Q | | | | | |
| | integer | AGE | Q | | | | | |
| | integer | to | Q | | | | | |
| | integer | a.b | Q | | | | | |
| | calculate | loop | | | | | ${loop} + 1 | |
| | end_group | | | | | | | |
""",
    choices="""
| choices |
| | list_name | name | label | label::Russian (ru) |
| | sex | 1 | Male | Мужской |
| | sex | x | Female | |
| | sex | 2 | female | Женский |
| | uses | 1 | Food | Еда |
| | uses | 1 | School | Школа |
| | none | 1 | A | А |
""",
    settings="| settings |\n| | form_id |\n| | t |",
)


def test_cli_flags_every_rule_on_a_broken_form(tmp_path: Path) -> None:
    path = write_md_form(tmp_path, BROKEN)
    result = runner.invoke(app, ["forms", "lint", str(path), "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert (payload["command"], payload["ok"], payload["exit_code"], payload["valid"]) == ("forms lint", False, 1, False)
    codes = {f["code"] for f in payload["issues"]}
    every_rule = {code for code in CATALOGUE if code.startswith("lint.")}
    assert codes == every_rule, every_rule - codes
    first = payload["issues"][0]
    assert set(first) >= {"code", "severity", "message", "sheet", "row", "column", "expression", "variable"}
    assert first["topic"] == "lint" and first["qualified_code"] == first["code"]
    assert first["severity"] in {"error", "warning"}


def test_cli_clean_form_exits_0(tmp_path: Path) -> None:
    path = write_md_form(tmp_path, form("| | text | s_oth | Other | ${sex} = '2' | | | | |"))
    result = runner.invoke(app, ["forms", "lint", str(path)])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


def test_cli_warnings_only_exit_0_and_table(tmp_path: Path) -> None:
    path = write_md_form(tmp_path, form(settings="| settings |\n| | form_id |\n| | t |"))
    result = runner.invoke(app, ["forms", "lint", str(path)])
    assert result.exit_code == 0
    assert "lint.no_public_key" in result.output


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("missing.xlsx", None, "does not exist"),
        ("notes.txt", "hello", "must end in"),
        ("broken.xlsx", "not a zip file", "cannot be read"),
        ("plain.md", "no tables here", "cannot be read"),
    ],
)
def test_cli_unreadable_input_exits_3_in_one_line(
    tmp_path: Path, name: str, content: str | None, words: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = runner.invoke(app, ["forms", "lint", str(path)])
    assert result.exit_code == 3
    assert words in " ".join(result.output.split()) and name in result.output
    assert "Traceback" not in result.output


def test_cli_workbook_that_is_not_an_xlsform_exits_3(tmp_path: Path) -> None:
    book = Workbook()
    book.active.title = "Data"
    book.active.append(["household", "income"])
    book.active.append([1, 200])
    book.create_sheet("Notes").append(["fieldwork notes"])
    path = tmp_path / "data.xlsx"
    book.save(path)
    result = runner.invoke(app, ["forms", "lint", str(path)])
    assert result.exit_code == 3
    assert "no sheet named survey" in " ".join(result.output.split())


def test_cli_unbalanced_group_exits_1_naming_row(tmp_path: Path) -> None:
    path = write_md_form(tmp_path, form("| | end_group | | | | | | | |"))
    result = runner.invoke(app, ["forms", "lint", str(path), "--json"])
    assert result.exit_code == 1
    (finding,) = json.loads(result.stdout)["issues"]
    assert (finding["code"], finding["sheet"], finding["row"]) == (forms.LINT_FORM_INVALID, "survey", 5)


def test_forward_reference_looks_through_calculations(tmp_path: Path) -> None:
    # A calculate computes wherever it sits; what counts is when its inputs are answered.
    fine = form("""
    | | integer | kids | Kids | ${n_adults} > 0 and ${today} != '' | | | | |
    | | calculate | n_adults | | | | | ${age} - 1 | |
    | | today | today | | | | | | |
    """)
    assert lint(tmp_path, fine).issues == ()
    late = form("""
    | | calculate | n_adults | | | | | ${later} + 1 | |
    | | integer | kids | Kids | ${n_adults} > 0 | | | | |
    | | integer | later | Later | | | | | |
    """)
    report = lint(tmp_path, late, "late.md")
    assert found(report, forms.LINT_FORWARD_REFERENCE) == [("survey", 6, "relevant")]
    assert "${later}" in report.issues[0].message


def test_numeric_code_column_falls_back_to_integer_names_and_catches_clashes(tmp_path: Path) -> None:
    head = "| survey |\n| | type | name | label |\n| | select_one countries | cob | Born in |"
    good = (
        "| choices |\n| | list_name | name | label | iso_num |\n"
        "| | countries | KAZ | Kazakhstan | 398 |\n| | countries | 98 | Don't know | |"
    )
    assert lint(tmp_path, form(head=head, choices=good)).issues == ()
    clash = (
        good + "\n| | countries | BRN | Brunei | 098 |"
    )  # not Brunei's real code: a clash with 98 don't know
    assert found(
        lint(tmp_path, form(head=head, choices=clash), "bad.md"), forms.LINT_CHOICE_DUPLICATE_NAME
    ) == [("choices", 4, "iso_num")]


def test_csv_form_rows_count_within_each_sheet(tmp_path: Path) -> None:
    path = tmp_path / "form.csv"
    path.write_text(
        "survey,,,,\n,type,name,label,relevant\n,select_multiple uses,uses,Uses,\n"
        ",text,u_oth,Other,${uses} = '2'\n"
        "choices,,,,\n,list_name,name,label,\n,uses,1,A,\n,uses,2,B,\n"
        "settings,,,,\n,form_id,public_key,,\n,t,abc,,\n",
        encoding="utf-8",
    )
    report = forms.lint_form(path)
    assert [(i.code, i.location.sheet, i.location.row) for i in report.issues] == [
        (forms.LINT_SELECT_MULTIPLE_EQUALS, "survey", 3)
    ]


def test_single_sheet_workbook_without_type_column_exits_3(tmp_path: Path) -> None:
    book = Workbook()
    book.active.append(["household", "income"])
    book.active.append([1, 200])
    path = tmp_path / "export.xlsx"
    book.save(path)
    result = runner.invoke(app, ["forms", "lint", str(path)])
    assert result.exit_code == 3
    assert "no 'type' and 'name' columns" in " ".join(result.output.split())


def test_select_multiple_compared_with_an_unknown_choice_gets_both_findings(tmp_path: Path) -> None:
    report = lint(tmp_path, form("| | select_multiple uses | u2 | Uses | | . != '7' | | | |"))
    assert [i.code for i in report.issues] == [forms.LINT_SELECT_MULTIPLE_EQUALS, forms.LINT_CHOICE_UNKNOWN]
    assert "not(selected(., '7'))" in report.issues[0].message


NESTED = """
| survey |
| | type | name | label | relevant | calculation | repeat_count |
| | begin_repeat | rm | Returnee | | | |
| | select_multiple uses | rc_items | Costs | | | |
| | begin_repeat | rc | Cost | | | count-selected(${{rc_items}}) |
| | calculate | rc_item | | | selected-at(${{rc_items}}, position(..) - 1) | |
| | decimal | rc_amt | Amount | ${{rc_item}} != '' | | |
| | end_repeat | | | | | |
| | calculate | rc_total | | | {total} | |
| | end_repeat | | | | | |
"""


def test_nested_repeats_sum_their_children_and_see_their_parents(tmp_path: Path) -> None:
    fine = lint(tmp_path, form(head="", rows=NESTED.format(total="sum(${rc_amt})")))
    assert found(fine, forms.LINT_REPEAT_REFERENCE) == []
    bad = lint(tmp_path, form(head="", rows=NESTED.format(total="${rc_amt} * 2")), "bad.md")
    assert found(bad, forms.LINT_REPEAT_REFERENCE) == [("survey", 8, "calculation")]
    assert "repeat rc" in bad.issues[0].message


PIECES = [*"${}()[]'\"./@*=!<>+-|, \n:", " and ", "or", "div", "x", "1", "q9", "${q}", "sum("]


@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
@settings(max_examples=300, deadline=None)
def test_parser_never_fails_with_anything_but_expression_error(text: str) -> None:
    try:
        tree = parse_xlsform(text)
    except XPathSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
    else:
        assert all(0 <= node.pos <= len(text) for node in walk(tree))


def test_dot_in_a_predicate_is_the_filtered_node(tmp_path: Path) -> None:
    # In ${sex}[. = '3'] the '.' is sex, not the row's own question.
    bad = form("| | select_multiple uses | u2 | Uses | | count(${sex}[. = '3']) < 2 | | | |")
    assert found(lint(tmp_path, bad, "bad.md"), forms.LINT_CHOICE_UNKNOWN) == [("survey", 5, "constraint")]
    good = form("| | select_multiple uses | u2 | U | | count(${sex}[. = '2']) + count(/d[. = 'a']) < 2 |")
    assert lint(tmp_path, good, "good.md").issues == ()


# --- forms written elsewhere (issue 15): cascades, policy rules, messages ----------------------------------------

CASCADE_HEAD = """
| survey |
| | type | name | label | choice_filter |
| | select_one region | region | Region | |
| | select_one district | district | District | region = ${region} |
"""
CASCADE_CHOICES = """
| choices |
| | list_name | name | label | region |
| | region | 1 | North | |
| | region | 2 | South | |
| | district | 11 | Centre | 1 |
| | district | 12 | Hills | 1 |
| | district | 21 | Centre | 2 |
| | district | 22 | {last} | 2 |
"""


@pytest.mark.parametrize(
    ("last", "expected"),
    [("Coast", []), ("centre", [("choices", 7, "label")])],
    ids=["same label under two parents", "same label under one parent"],
)
def test_duplicate_labels_in_a_cascade_count_per_parent(tmp_path: Path, last: str, expected: list) -> None:
    report = lint(tmp_path, form(head=CASCADE_HEAD, choices=CASCADE_CHOICES.format(last=last)))
    assert found(report, forms.LINT_CHOICE_DUPLICATE_LABEL) == expected


def test_duplicate_names_under_allow_choice_duplicates_are_no_finding(tmp_path: Path) -> None:
    choices = CASCADE_CHOICES.format(last="Coast").replace("| 21 | Centre | 2 |", "| 11 | Centre | 2 |")
    allowed = "| settings |\n| | form_id | allow_choice_duplicates | public_key |\n| | t | yes | MIIBIjANBg |"
    report = lint(tmp_path, form(head=CASCADE_HEAD, choices=choices, settings=allowed))
    assert report.issues == (), report.flatten()
    refused = lint(tmp_path, form(head=CASCADE_HEAD, choices=choices), "refused.md")
    assert found(refused, forms.LINT_CHOICE_DUPLICATE_NAME) == [("choices", 6, "name")]


THIRD_PARTY = """
| survey |
| | type | name | label |
| | select_one yes_no | has_water_source_within_thirty_minutes_walk | Water within 30 minutes? |
| | text | Name | Name |
| | text | name | Name again |
| choices |
| | list_name | name | label |
| | yes_no | yes | Yes |
| | yes_no | no | No |
| settings |
| | form_id | public_key |
| | wash | MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA |
"""
POLICY_FOUND = {forms.LINT_CHOICE_NOT_INTEGER, forms.LINT_NAME_TOO_LONG, forms.LINT_NAME_CASE_COLLISION}


@pytest.mark.parametrize(
    ("options", "exit_code", "severity"),
    [([], 0, "warning"), (["--profile", "ncamig"], 1, "error"), (["--strict"], 1, "error")],
    ids=["default", "house-profile", "strict"],
)
def test_policy_rules_are_warnings_unless_house_profile_or_strict(
    tmp_path: Path, options: list[str], exit_code: int, severity: str
) -> None:
    path = write_md_form(tmp_path, THIRD_PARTY)
    result = runner.invoke(app, ["forms", "lint", str(path), *options, "--json"])
    assert result.exit_code == exit_code, result.output
    findings = json.loads(result.stdout)["issues"]
    assert {f["code"] for f in findings} == POLICY_FOUND
    assert {f["severity"] for f in findings} == {severity}


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    path = write_md_form(tmp_path, THIRD_PARTY)
    result = runner.invoke(app, ["forms", "lint", str(path), "--profile", "kobo"])
    assert result.exit_code == 2


def test_exact_collision_does_not_speak_of_case(tmp_path: Path) -> None:
    rows = "| | begin_group | g1 | G | | | | | |\n| | integer | {name} | Age | | | | | |\n| | end_group |"
    exact = lint(tmp_path, form(rows.format(name="age")))
    (issue,) = [i for i in exact.issues if i.code == forms.LINT_NAME_CASE_COLLISION]
    assert "same name as age" in issue.message and "case" not in issue.message
    cased = lint(tmp_path, form(rows.format(name="AGE")), "cased.md")
    (issue,) = [i for i in cased.issues if i.code == forms.LINT_NAME_CASE_COLLISION]
    assert "without regard to case" in issue.message


def test_leading_underscore_is_only_invalid_in_spss(tmp_path: Path) -> None:
    report = lint(tmp_path, form("| | integer | _1 | Q | | | | | |"))
    (issue,) = [i for i in report.issues if i.code == forms.LINT_NAME_INVALID]
    assert "in SPSS, which needs a letter first (Stata accepts a leading _)" in issue.message
    plain = lint(tmp_path, form("| | integer | a-b | Q | | | | | |"), "plain.md")
    (issue,) = [i for i in plain.issues if i.code == forms.LINT_NAME_INVALID]
    assert "in SPSS and Stata" in issue.message


def test_begin_loop_placeholders_are_not_references(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | relevant |
    | | select_multiple toilet | toilets | Toilets | |
    | | begin loop over toilet | per_toilet | | |
    | | integer | number | How many %(label)s? | selected(${toilets}, '%(name)s') |
    | | end loop | | | |
    | choices |
    | | list_name | name | label |
    | | toilet | pit | Pit |
    | | toilet | flush | Flush |
    | settings |
    | | form_id | public_key |
    | | loops | MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA |
    """
    report = lint(tmp_path, md)
    assert {i.code for i in report.issues} == {forms.LINT_CHOICE_NOT_INTEGER}, report.flatten()


@pytest.mark.parametrize(
    ("profile", "expected"),
    [(None, [("choices", 2)]), ("ncamig", [("choices", 2), ("choices", 3), ("choices", 4), ("choices", 5)])],
)
def test_text_codes_are_one_warning_per_list_unless_house_rules(
    tmp_path: Path, profile: str | None, expected: list
) -> None:
    md = """
    | survey |
    | | type | name | label |
    | | select_one water | water | Main water source |
    | choices |
    | | list_name | name | label |
    | | water | piped | Piped |
    | | water | well | Well |
    | | water | river | River |
    | | water | truck | Truck |
    | settings |
    | | form_id | public_key |
    | | water | MIIBIjANBg |
    """
    report = forms.lint_form(write_md_form(tmp_path, md), profile=profile)
    assert [(sheet, row) for sheet, row, _ in found(report, forms.LINT_CHOICE_NOT_INTEGER)] == expected
    if profile is None:
        (issue,) = report.issues
        assert "'piped', 'well', 'river' and 1 more" in issue.message and "1..n" in issue.message
