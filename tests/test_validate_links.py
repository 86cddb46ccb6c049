"""Cross-form link check (toolkit/validate/links.py): every women's questionnaire names an existing household and
the woman that household's random pick selected (`migkit validate --link FORM=DATA`, survey.toml [validate] link)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import FORMS_DIR
from toolkit.cli import app
from toolkit.errors import ToolkitError
from toolkit.pipeline import SurveyConfig
from toolkit.validate.links import LINK_MISMATCH, LINK_MISSING, LinkSpec, check_links, load_tables

HOUSEHOLD = FORMS_DIR / "household.xlsx"
WOMEN = FORMS_DIR / "women.xlsx"


def _household_xml(uid: str, psu: int, number: int, line: int, n_elig: int) -> str:
    return (
        '<data id="ncamig_household" version="2026120701"><m0><id_country>TJK</id_country>'
        f"<id_psu>{psu}</id_psu><id_hh_no>{number}</id_hh_no><id_hh_uid>{uid}</id_hh_uid></m0>"
        f"<m1><wg_n_elig>{n_elig}</wg_n_elig><wg_sel_line>{line}</wg_sel_line></m1>"
        f"<meta><instanceID>uuid:hh-{uid}</instanceID></meta></data>"
    )


def _women_xml(key: str, uid: str, line: int, n_elig: int) -> str:
    psu, number = uid.split("-")[1:]
    return (
        '<data id="ncamig_women" version="2026120701"><id_country>TJK</id_country>'
        f"<id_psu>{psu}</id_psu><id_hh_no>{number}</id_hh_no><id_hh_uid>{uid}</id_hh_uid>"
        f"<wg_line>{line}</wg_line><wg_n_elig>{n_elig}</wg_n_elig>"
        f"<meta><instanceID>uuid:{key}</instanceID></meta></data>"
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    households = tmp_path / "households"
    women = tmp_path / "women"
    households.mkdir()
    women.mkdir()
    for uid, line, n_elig in (("TJK-101-7", 2, 2), ("TJK-101-8", 1, 1)):
        psu, number = uid.split("-")[1:]
        (households / f"{uid}.xml").write_text(_household_xml(uid, int(psu), int(number), line, n_elig))
    for key, uid, line, n_elig in (
        ("w-ok", "TJK-101-7", 2, 2),  # the selected woman
        ("w-other", "TJK-101-8", 3, 1),  # another woman than the one selected
        ("w-count", "TJK-101-7", 2, 3),  # eligible women miscounted (the weight would be wrong)
        ("w-orphan", "TJK-101-9", 1, 1),  # no such household
    ):
        (women / f"{key}.xml").write_text(_women_xml(key, uid, line, n_elig))
    return women, households


def test_each_women_submission_is_checked_against_its_household(inputs: tuple[Path, Path]) -> None:
    women, households = inputs
    findings = check_links(load_tables(women, WOMEN), load_tables(households, HOUSEHOLD))
    got = sorted((f.instance_id, f.code, f.variable, f.value) for f in findings)
    assert got == [
        ("uuid:w-count", LINK_MISMATCH, "wg_n_elig", "3"),
        ("uuid:w-orphan", LINK_MISSING, "id_hh_uid", "TJK-101-9"),
        ("uuid:w-other", LINK_MISMATCH, "wg_line", "3"),
    ]
    mismatch = next(f for f in findings if f.instance_id == "uuid:w-other")
    assert "'1'" in mismatch.message and mismatch.path.endswith("/wg_line")


def test_cli_merges_link_findings_into_the_validation(inputs: tuple[Path, Path]) -> None:
    women, households = inputs
    result = CliRunner().invoke(
        app, ["validate", str(women), "--form", str(WOMEN), "--link", f"{HOUSEHOLD}={households}", "--json"]
    )
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    codes = [f["code"] for f in payload["issues"]]
    assert codes.count(LINK_MISMATCH) == 2 and codes.count(LINK_MISSING) == 1
    assert payload["stats"]["link_findings"] == 3
    assert payload["valid"] is False


@pytest.mark.parametrize("text", ["household.xlsx", "=data", "household.xlsx="])
def test_link_option_needs_form_and_data(text: str) -> None:
    with pytest.raises(ToolkitError):
        LinkSpec.parse(text)


def test_the_wrong_pair_of_forms_is_a_usage_error(inputs: tuple[Path, Path]) -> None:
    women, households = inputs
    with pytest.raises(ToolkitError, match="No link is defined"):
        check_links(load_tables(households, HOUSEHOLD), load_tables(women, WOMEN))


def test_survey_toml_link_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "survey.toml").write_text(
        '[survey]\nform = "women.xlsx"\n[ingest]\ninputs = ["w"]\n'
        '[validate]\nlink = "../hh/household.xlsx=../hh/out/data"\n',
        encoding="utf-8",
    )
    config = SurveyConfig.from_file(tmp_path / "survey.toml")
    (link,) = config.links
    spec = LinkSpec.parse(link)
    assert spec.form == (tmp_path / "../hh/household.xlsx").resolve()
    assert spec.data == (tmp_path / "../hh/out/data").resolve()
