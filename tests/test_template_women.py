"""The women's questionnaire (forms/women.xlsx, ncamig_women): build, lint, languages and skip logic.

Skip-logic paths are checked with migkit's own validator (toolkit.validate, JavaRosa's relevance and
calculation rules): an instance is built from a few answers, the form's relevance and calculations are
recomputed, and the test reads the relevance of groups and the recomputed indicator calculations. The helpers
here are reused by tests/test_template_domestic.py.
"""

from __future__ import annotations

import csv
import importlib.util
import itertools
import re
import sys
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from openpyxl import load_workbook

from tests.conftest import FORMS_DIR, require_tool
from toolkit import validate as form_validate
from toolkit.forms import compile_form
from toolkit.forms.lint import lint_form
from toolkit.xform import load_form
from toolkit.xpath import XNode, build_tree

TODAY = date(2026, 11, 27)
LANGUAGES = ("English (en)", "Russian (ru)", "Kazakh (kk)", "Kyrgyz (ky)", "Tajik (tg)", "Uzbek (uz)")
CYRILLIC = re.compile(r"[\u0400-\u04FF]")
# Offline exchange rates for the tests (the real forms/fx_rates.csv is attached as form media in the field).
# Current rates by iso; annual averages by key CUR-YYYY (the 2023 rouble at 0.016 USD).
FX_RATES = (
    "key,iso,period,usd_per_unit\nRUB,RUB,current,0.0125\nKZT,KZT,current,0.002\nTJS,TJS,current,0.1\n"
    "USD,USD,current,1\nRUB-2023,,2023,0.016\n"
)
# Findings the tests ignore: instances here store no calculated values (the validator recomputes them).
RECOMPUTED = {"calculate_mismatch"}


@dataclass(frozen=True)
class Template:
    """A compiled template ready for instance checks."""

    name: str
    form: Any  # toolkit.validate.CompiledForm
    paths: dict[str, str]  # question name -> generic path
    repeats: frozenset[str]


@cache
def template(name: str, media_dir: Path) -> Template:
    """Load forms/<name>.xlsx into the validator (compiled once per media folder, i.e. once per module)."""
    model = load_form(FORMS_DIR / f"{name}.xlsx")
    form = form_validate.compile_form(model, media_dir=media_dir)
    assert not form.problems, [p.message for p in form.problems]
    paths = {n.name: n.path for n in model.nodes.values() if n.path != model.root}
    return Template(name, form, paths, frozenset(n.name for n in model.repeats()))


def fx_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A media folder with the test exchange rates (pulldata('fx_rates', ...))."""
    folder = tmp_path_factory.mktemp("media")
    (folder / "fx_rates.csv").write_text(FX_RATES, encoding="utf-8")
    return folder


def _element_at(root: etree._Element, parts: list[str]) -> etree._Element:
    node = root
    for part in parts:
        child = node.find(part)
        node = child if child is not None else etree.SubElement(node, part)
    return node


def instance(tpl: Template, answers: dict[str, Any]) -> XNode:
    """An instance tree from answers {name: value}; a repeat's answers are a list of {name: value} per row."""
    root = etree.Element(tpl.form.model.root.strip("/"))
    for name, value in answers.items():
        parts = tpl.paths[name].strip("/").split("/")[1:]
        if name in tpl.repeats:
            parent = _element_at(root, parts[:-1])
            for row in value:
                element = etree.SubElement(parent, parts[-1])
                for child, text in row.items():
                    etree.SubElement(element, child).text = str(text)
            continue
        _element_at(root, parts).text = str(value)
    return build_tree(root, types=tpl.form.types, repeats=tpl.form.repeats)


@dataclass(frozen=True)
class Checked:
    """One instance after validation: its non-calculation findings and the recomputed tree."""

    tpl: Template
    root: XNode
    findings: tuple[Any, ...]

    def value(self, name: str) -> str:
        """The value as submitted: Collect leaves non-relevant nodes (and their calculations) out, so ''."""
        node = self.root.find(self.tpl.paths[name])
        assert node is not None, name
        return node.string if node.relevant else ""

    def relevant(self, name: str) -> bool:
        node = self.root.find(self.tpl.paths[name])
        assert node is not None, name
        return node.relevant

    def codes(self, variable: str | None = None) -> list[str]:
        return [f.code for f in self.findings if variable is None or f.variable == variable]


def check(tpl: Template, answers: dict[str, Any]) -> Checked:
    """Validate one instance as ODK Collect would judge it (today fixed)."""
    root = instance(tpl, answers)
    findings = form_validate.validate_tree(tpl.form, root, today=TODAY)
    return Checked(tpl, root, tuple(f for f in findings if f.code not in RECOMPUTED))


# ----------------------------------------------------------------------------------------------------------
# Checks shared by both templates (called from each template's test module)
# ----------------------------------------------------------------------------------------------------------


def survey_csv(name: str) -> list[dict[str, str]]:
    with (FORMS_DIR / "src" / name / "survey.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_builds_clean(name: str) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    compiled = compile_form(FORMS_DIR / f"{name}.xlsx", validate=True, strict=True)
    assert compiled.issues == (), [i.message for i in compiled.issues]
    assert compiled.validated is True


def assert_lint_clean(name: str) -> None:
    report = lint_form(FORMS_DIR / f"{name}.xlsx", profile="ncamig")
    errors = [i for i in report.issues if i.severity == "error"]
    assert errors == [], [i.message for i in errors]
    # The only expected warning: no public_key in the template (each survey adds its own key before
    # fieldwork).
    assert {i.code for i in report.issues} <= {"lint.no_public_key"}


@cache
def _build_templates_module() -> Any:
    """forms/build_templates.py is a script, not a package module: load it by path."""
    spec = importlib.util.spec_from_file_location("migkit_build_templates", FORMS_DIR / "build_templates.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def assert_workbook_matches_sources(name: str) -> None:
    builder = _build_templates_module()
    sheets = builder.form_sheets(FORMS_DIR / "src" / name, FORMS_DIR / "src" / "lists")
    assert builder.workbook_content(FORMS_DIR / f"{name}.xlsx") == builder.sheets_content(sheets), (
        f"forms/{name}.xlsx is out of date: run python forms/build_templates.py"
    )


def sheet_rows(name: str, sheet: str) -> list[dict[str, str]]:
    workbook = load_workbook(FORMS_DIR / f"{name}.xlsx", read_only=True)
    try:
        rows = [
            ["" if v is None else str(v) for v in row] for row in workbook[sheet].iter_rows(values_only=True)
        ]
    finally:
        workbook.close()
    header = rows[0]
    return [dict(zip(header, row, strict=False)) for row in rows[1:] if any(row)]


def assert_translations_complete(name: str) -> None:
    """Every user-facing text given in English is given in all six languages, in the right script."""
    missing: list[str] = []
    script: list[str] = []
    for sheet in ("survey", "choices"):
        for row in sheet_rows(name, sheet):
            for column in ("label", "hint", "constraint_message"):
                if not row.get(f"{column}::English (en)"):
                    continue
                where = f"{sheet} {row.get('name')} {column}"
                for language in LANGUAGES:
                    text = row.get(f"{column}::{language}", "")
                    if not text:
                        missing.append(f"{where} {language}")
                    elif language == "Uzbek (uz)" and CYRILLIC.search(text):
                        script.append(f"{where}: Uzbek must be Latin")
                    elif (
                        language[-3:-1] in ("ru", "kk", "ky", "tg")
                        and not CYRILLIC.search(text)
                        and re.search(
                            r"[A-Za-z]{4}",
                            re.sub(r"\$\{[^}]*\}|ISCO|WhatsApp|Telegram|IMO|[A-Z]{3}\b", "", text),
                        )
                    ):
                        script.append(f"{where}: {language} looks untranslated: {text!r}")
    assert missing == [], missing[:20]
    assert script == [], script[:20]


def assert_settings(name: str, form_id: str, instance_name_parts: tuple[str, ...]) -> None:
    settings = sheet_rows(name, "settings")[0]
    assert settings["form_id"] == form_id
    assert re.fullmatch(r"20\d{6}\d{2}", settings["version"])
    assert settings["default_language"] == "English (en)"
    assert "public_key" not in settings
    for part in instance_name_parts:
        assert "${" + part + "}" in settings["instance_name"]


class TemplateChecks:
    """Checks every template must pass; a test class per template sets the attributes (not collected)."""

    name: str
    form_id: str
    instance_name_parts: tuple[str, ...]

    def test_builds_with_zero_pyxform_warnings_and_passes_odk_validate(self) -> None:
        assert_builds_clean(self.name)

    def test_lint_has_no_errors(self) -> None:
        assert_lint_clean(self.name)

    def test_workbook_is_generated_from_the_sources(self) -> None:
        assert_workbook_matches_sources(self.name)

    def test_settings(self) -> None:
        assert_settings(self.name, self.form_id, self.instance_name_parts)

    def test_every_text_is_in_six_languages(self) -> None:
        assert_translations_complete(self.name)

    def test_every_other_code_has_its_specify_text(self) -> None:
        # Spec 4.3: code 96 "other" + a `<name>_oth` text asked only when 96 is chosen.
        lists_with_96 = {r["list_name"] for r in sheet_rows(self.name, "choices") if r["name"] == "96"}
        survey = {r["name"]: r for r in sheet_rows(self.name, "survey")}
        missing = []
        for name, row in survey.items():
            match = re.fullmatch(r"select_(one|multiple) (\w+)", row["type"])
            if match and match.group(2) in lists_with_96:
                oth = survey.get(f"{name}_oth")
                if (
                    oth is None
                    or "'96'" not in oth.get("relevant", "")
                    or f"${{{name}}}" not in oth["relevant"]
                ):
                    missing.append(name)
        assert missing == []


# ----------------------------------------------------------------------------------------------------------
# The women's form
# ----------------------------------------------------------------------------------------------------------

NAME = "women"

# A woman whose husband works abroad, who did live-in domestic work in Russia, and who answers M6b.
BASE: dict[str, Any] = {
    "id_country": "TJK",
    "id_stratum": "1",
    "id_psu": "101",
    "id_hh_no": 5,
    "wg_line": 2,
    "wg_n_elig": 2,
    "id_int": "101",
    "id_sup": "11",
    "id_lang": "5",
    "wg_consent": 1,
    "wg_age": 34,
    "wg_privacy": 1,
    "wg_partner": 1,
    "wg_abr_rel": "1 2",
    "wg_contact_freq": 2,
    "wg_contact_chan": "2",
    "wg_rr12": 1,
    "wg_paid12": 2,
    "wg_child18": 1,
    "wg_dm_remit": 2,
    "wg_dm_purch": 2,
    "wg_dm_health": 1,
    "wg_dm_school": 2,
    "wg_dm_work": 3,
    "wg_dm_migr": 5,
    "wg_phone": 1,
    "wg_acct": 1,
    "wg_acct_type": "3",
    "wg_hrs_chores": 5,
    "wg_hrs_care": 4,
    "wg_hrs_farm": 2,
    "wg_hrs_paid": 0,
    "wg_yday_typ": 1,
    "wg_load_chg": 1,
    "wg_ever_abr": 1,
    "wg_abr_ctry": "RUS",
    "wg_abr_ret_y": 2024,
    "wg_abr_work": 1,
    "wg_intend": 2,
    "wg_intend_ctry": "RUS",
    "wg_barrier": "2 4",
    "wg_safe_info": 2,
    "dw_scr": 1,
    "dw_scr_abroad": 1,
    "dw_scr_12m": 2,
    "dw_ctry": "RUS",
    "dw_isco": 9111,
    "dw_type": 1,
    "dw_start_y": 2021,
    "dw_current": 2,
    "dw_end_y": 2024,
    "dw_livein": 1,
    "dw_tasks": "1 2 3",
    "dw_hours_day": 12,
    "dw_days_wk": 6,
    "dw_rest24": 2,
    "dw_leave_out": 2,
    "dw_contract": 2,
    "dw_contract_prior": 2,
    "dw_pay_amt": 40000,
    "dw_pay_cur": "RUB",
    "dw_pay_freq": 4,
    "dw_pay_cash": 1,
    "dw_docs_kept": 3,
    "dw_healthins": 2,
    "dw_paid_leave": 2,
    "dw_minwage": 1,
    "dw_socins": 2,
    "fl_int_samesex": 1,
    "fl_consent": 1,
    "fl_privacy": 1,
    "fl_deceived": 2,
    "fl_other_empl": 2,
    "fl_overtime": 2,
    "fl_hours_more": 2,
    "fl_lowpay": 2,
    "fl_cant_quit": 2,
    "fl_degrading": 2,
    "fl_wage_withheld": 2,
    "fl_confined": 2,
    "fl_threat": 2,
    "fl_threat_police": 2,
    "fl_threat_dism": 2,
    "fl_debt": 2,
    "fl_hit": 2,
    "fl_sexual": 2,
    "fl_insult": 2,
    "fl_interrupt": 2,
    "wg_result": 1,
}
FL_INVOL = (
    "fl_deceived",
    "fl_other_empl",
    "fl_overtime",
    "fl_hours_more",
    "fl_lowpay",
    "fl_cant_quit",
    "fl_degrading",
)
FL_COERC = (
    "fl_wage_withheld",
    "fl_confined",
    "fl_threat",
    "fl_threat_police",
    "fl_threat_dism",
    "fl_debt",
    "fl_hit",
    "fl_sexual",
)
FL_ITEMS = (*FL_INVOL, *FL_COERC, "fl_insult")


@pytest.fixture(scope="module")
def women(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return template(NAME, fx_media(tmp_path_factory))


def without(answers: dict[str, Any], *prefixes: str) -> dict[str, Any]:
    return {k: v for k, v in answers.items() if not k.startswith(prefixes)}


class TestWomenTemplate(TemplateChecks):
    name = NAME
    form_id = "ncamig_women"
    instance_name_parts = ("id_hh_uid", "wg_line")


def test_complete_interview_obeys_the_form(women: Template) -> None:
    checked = check(women, BASE)
    assert checked.findings == ()
    assert checked.value("id_hh_uid") == "TJK-101-5"
    assert checked.value("wg_sel_prob") == "0.5"  # one of two eligible women
    assert (checked.value("dw_where"), checked.value("dw_elig")) == ("2", "1")
    assert checked.value("wg_leftbehind") == "1"
    assert checked.value("wg_hrs_ownuse") == "9"
    assert (checked.value("dw_hours_wk"), checked.value("dw_hours_gt48")) == ("72", "1")
    assert checked.value("dw_cur_def") == "RUB"
    assert checked.value("dw_pay_usd_m") == "500"  # 40,000 RUB a month x 0.0125
    assert (checked.value("fl_invol"), checked.value("fl_coerc"), checked.value("fl_flag")) == ("0", "0", "0")


CONSENT_CODES = (1, 2, 98, 99, None)  # yesno codes, or never answered
PRIVACY_CODES = (1, 2, 3, None)


@pytest.mark.parametrize(
    ("wg_consent", "wg_privacy", "fl_consent", "fl_privacy", "runs"),
    [
        (*combo, combo[0] == 1 and combo[1] in (1, 2) and combo[2] == 1 and combo[3] == 1)
        for combo in itertools.product(CONSENT_CODES, PRIVACY_CODES, CONSENT_CODES, PRIVACY_CODES)
    ],
)
def test_m6b_runs_only_with_both_consents_and_privacy(
    women: Template,
    wg_consent: int,
    wg_privacy: int | None,
    fl_consent: int,
    fl_privacy: int | None,
    runs: bool,
) -> None:
    answers = dict(
        BASE,
        wg_consent=wg_consent,
        wg_privacy=wg_privacy,
        fl_consent=fl_consent,
        fl_privacy=fl_privacy,
        fl_deceived=1,
    )
    answers = {k: v for k, v in answers.items() if v is not None}
    checked = check(women, answers)
    assert checked.relevant("fl") is runs
    assert ("nonrelevant_answered" in checked.codes("fl_deceived")) is not runs
    assert checked.value("fl_flag") == ("0" if runs else "")


@pytest.mark.parametrize("privacy", [2, 3])
def test_m6b_postpone_note_shows_unless_fully_private(women: Template, privacy: int) -> None:
    """Issue 12 item 6: M6b needs full privacy; 'others present but cannot hear' postpones it too."""
    answers = {k: v for k, v in BASE.items() if k not in (*FL_ITEMS, "fl_interrupt")}
    checked = check(women, dict(answers, fl_privacy=privacy))
    assert checked.findings == ()
    assert checked.relevant("fl_postpone") and not checked.relevant("fl")
    assert checked.relevant("fl_referral")  # the referral note is read to every domestic worker offered M6b


@pytest.mark.parametrize(
    ("yes", "docs_kept", "expected"),
    [
        ((), 3, ("0", "0", "0")),
        (("fl_deceived",), 3, ("1", "0", "0")),
        (("fl_threat",), 3, ("0", "1", "0")),
        (("fl_overtime", "fl_debt"), 3, ("1", "1", "1")),
        (("fl_cant_quit",), 1, ("1", "1", "1")),  # document retention against her will is coercion
        (("fl_lowpay",), 2, ("1", "0", "0")),  # documents kept "for safekeeping" with her agreement is not
        (("fl_degrading", "fl_wage_withheld"), 3, ("1", "1", "1")),
        (("fl_insult",), 1, ("0", "1", "0")),  # insults are a C189 abuse item, in neither composite
        (FL_INVOL, 3, ("1", "0", "0")),
        (FL_COERC, 3, ("0", "1", "0")),
    ],
)
def test_forced_labour_flag_is_involuntary_and_coerced(
    women: Template, yes: tuple[str, ...], docs_kept: int, expected: tuple[str, str, str]
) -> None:
    answers = dict(BASE, dw_docs_kept=docs_kept, **dict.fromkeys(yes, 1))
    if "fl_cant_quit" in yes:
        answers["fl_quit_why"] = 1  # kept there by threats or a penalty, not by money reasons only
    checked = check(women, answers)
    assert checked.findings == ()
    assert (checked.value("fl_invol"), checked.value("fl_coerc"), checked.value("fl_flag")) == expected


@pytest.mark.parametrize(
    ("item", "expected"),
    [(item, ("1", "0", "0")) for item in FL_INVOL]
    + [(item, ("0", "1", "0")) for item in FL_COERC]
    + [("fl_insult", ("0", "0", "0"))],
)
def test_each_item_feeds_its_own_dimension(
    women: Template, item: str, expected: tuple[str, str, str]
) -> None:
    checked = check(women, dict(BASE, **{item: 1}))
    assert (checked.value("fl_invol"), checked.value("fl_coerc"), checked.value("fl_flag")) == expected


def test_refused_items_count_as_not_yes(women: Template) -> None:
    checked = check(women, dict(BASE, **dict.fromkeys(FL_ITEMS, 99)))
    assert checked.findings == ()
    assert (checked.value("fl_invol"), checked.value("fl_coerc"), checked.value("fl_flag")) == ("0", "0", "0")
    assert checked.value("fl_n_refused") == str(len(FL_ITEMS))


SCREEN_KEYS = ("dw_scr", "dw_scr_abroad", "dw_scr_12m", "dw_scr_now", "dw_ctry", "dw_isco", "dw_type")


@pytest.mark.parametrize(
    ("screening", "eligible"),
    [
        ({"dw_scr": 2}, False),  # never did paid work for a household
        ({"dw_scr": 1, "dw_scr_abroad": 2, "dw_scr_12m": 2}, False),  # only at home, more than 12 months ago
        (
            {
                "dw_scr": 1,
                "dw_scr_abroad": 1,
                "dw_scr_12m": 2,
                "dw_ctry": "KAZ",
                "dw_isco": 5311,
                "dw_type": 2,
            },
            True,
        ),
        ({"dw_scr": 1, "dw_scr_abroad": 2, "dw_scr_12m": 1, "dw_scr_now": 1, "dw_isco": 5322, "dw_type": 3}, True),
        (
            {"dw_scr": 1, "dw_scr_abroad": 2, "dw_scr_12m": 1, "dw_scr_now": 1, "dw_isco": 2, "dw_type": 1},
            True,
        ),  # household is the employer
        (
            {"dw_scr": 1, "dw_scr_abroad": 2, "dw_scr_12m": 1, "dw_scr_now": 1, "dw_isco": 2, "dw_type": 2},
            False,
        ),  # e.g. agency nurse
        (
            {
                "dw_scr": 1,
                "dw_scr_abroad": 2,
                "dw_scr_12m": 1,
                "dw_scr_now": 1,
                "dw_isco": 9,
                "dw_type": 96,
                "dw_type_oth": "hotel",
            },
            False,
        ),
    ],
)
def test_m6_only_for_paid_domestic_workers(
    women: Template, screening: dict[str, Any], eligible: bool
) -> None:
    answers = dict(without(BASE, "dw_", "fl_"), **screening)
    if eligible:
        answers.update(
            {k: v for k, v in BASE.items() if k.startswith(("dw_", "fl_")) and k not in SCREEN_KEYS}
        )
        if screening.get("dw_scr_abroad") != 1:
            answers.pop("dw_contract_prior")  # asked only about jobs abroad (C189 Art. 8)
    checked = check(women, answers)
    assert checked.findings == ()
    assert checked.value("dw_elig") == ("1" if eligible else "0")
    assert checked.relevant("dw") is eligible
    assert checked.relevant("fl_consent") is eligible


def test_m6_answers_without_eligibility_are_reported(women: Template) -> None:
    checked = check(women, dict(BASE, dw_scr=2))
    assert "nonrelevant_answered" in checked.codes("dw_livein")
    assert "nonrelevant_answered" in checked.codes("fl_deceived")


@pytest.mark.parametrize(("age", "runs"), [(14, False), (15, True), (64, True), (65, False)])
def test_only_women_aged_15_to_64(women: Template, age: int, runs: bool) -> None:
    answers = dict(BASE, wg_age=age)
    if age < 18:  # M6b at 15-17: a guardian's permission and her own assent (issue 12 item 6)
        answers.update(fl_guardian=1, fl_assent=1)
    if not runs:
        answers = {
            k: v
            for k, v in answers.items()
            if k.startswith("id_") or k in ("wg_line", "wg_n_elig", "wg_consent", "wg_age")
        }
        answers["wg_result"] = 7
    checked = check(women, answers)
    assert checked.findings == ()
    assert checked.relevant("wg") is runs
    assert checked.relevant("wg_age_out") is not runs


def test_privacy_code_3_postpones_the_whole_interview(women: Template) -> None:
    keep = ("id_", "wg_line", "wg_n_elig", "wg_consent", "wg_age", "wg_privacy")
    checked = check(
        women, {**{k: v for k, v in BASE.items() if k.startswith(keep)}, "wg_privacy": 3, "wg_result": 3}
    )
    assert checked.findings == ()
    assert checked.relevant("wg_postpone") and not checked.relevant("wg")


@pytest.mark.parametrize(
    ("hours", "days", "ok", "weekly", "over48"),
    [
        (16, 7, True, "112", "1"),
        (17, 7, True, "119", "1"),  # live-in on-call hours: a soft check since v2, no longer rejected
        (8, 6, True, "48", "0"),
        (10, 5, True, "50", "1"),
        (-98, 6, True, "", ""),  # don't know: missing, never a number
        (12, -99, True, "", ""),
    ],
)
def test_domestic_hours(
    women: Template, hours: int, days: int, ok: bool, weekly: str | None, over48: str | None
) -> None:
    answers = dict(BASE, dw_hours_day=hours, dw_days_wk=days)
    if hours * days > 84:
        answers["dw_hours_chk"] = "OK"  # confirmed with the respondent
    checked = check(women, answers)
    assert ("constraint_violated" in checked.codes("dw_days_wk")) is not ok
    if ok:
        assert checked.findings == ()
        assert (checked.value("dw_hours_wk"), checked.value("dw_hours_gt48")) == (weekly, over48)


@pytest.mark.parametrize(
    ("chores", "care", "farm", "paid", "ok", "own_use"),
    [
        (5, 4, 2, 0, True, "9"),
        (10, 10, 4, 0, True, "20"),
        (10, 10, 4, 1, False, None),  # more than 24 hours yesterday
        (-98, 10, 10, 4, True, ""),  # a sentinel is missing, not -98 hours
        (25, 0, 0, 0, False, None),
    ],
)
def test_time_use_yesterday(
    women: Template, chores: int, care: int, farm: int, paid: int, ok: bool, own_use: str | None
) -> None:
    checked = check(
        women, dict(BASE, wg_hrs_chores=chores, wg_hrs_care=care, wg_hrs_farm=farm, wg_hrs_paid=paid)
    )
    assert (checked.codes() == []) is ok
    if ok:
        assert checked.value("wg_hrs_ownuse") == own_use


def test_husband_abroad_needs_a_husband(women: Template) -> None:
    checked = check(women, dict(BASE, wg_partner=2))
    assert "constraint_violated" in checked.codes("wg_abr_rel")


@pytest.mark.parametrize(
    ("code", "alone_or_jointly"), [(1, "1"), (2, "1"), (4, "1"), (3, "0"), (5, "0"), (6, "0"), (98, "0")]
)
def test_decision_codes_do_not_assume_the_sex_and_give_the_dhs_indicator(
    women: Template, code: int, alone_or_jointly: str
) -> None:
    """Issue 12 item 3: 'respondent alone', 'jointly with spouse/partner', 'spouse/partner alone', 'jointly with
    another member', 'another member', 'someone outside' (no 'husband', no in-law codes); wg_dm_*_aj is the
    DHS-style 'decides alone or jointly' (don't know counts as not participating)."""
    checked = check(women, dict(BASE, wg_dm_remit=code))
    assert checked.findings == ()
    assert checked.value("wg_dm_remit_aj") == alone_or_jointly
    assert checked.value("wg_dm_earn_aj") == ""  # not asked: she had no earnings


def test_spouse_codes_only_for_women_with_a_spouse_or_partner(women: Template) -> None:
    # wg_abr_rel "husband abroad" also needs a partner, so the unmarried woman here has only a son abroad.
    single = dict(BASE, wg_partner=2, wg_abr_rel="2", wg_dm_purch=5, wg_dm_school=1, wg_dm_work=4, wg_dm_remit=6)
    assert check(women, single).findings == ()
    assert check(women, dict(single, wg_dm_health=3)).codes("wg_dm_health") == ["choice_unknown"]
    assert check(women, dict(single, wg_dm_remit=2)).codes("wg_dm_remit") == ["choice_unknown"]
    with (FORMS_DIR / "src" / "lists" / "dec_who.csv").open(encoding="utf-8", newline="") as handle:
        labels = " ".join(r["label::English (en)"] for r in csv.DictReader(handle)).lower()
    assert "husband" not in labels and "in-law" not in labels


@pytest.mark.parametrize(("reason", "invol"), [(1, "1"), (2, "0"), (99, "1")])
def test_only_threats_not_money_make_staying_involuntary(women: Template, reason: int, invol: str) -> None:
    """Issue 12 item 4 (ICLS 2018): staying for purely economic reasons is not involuntary work."""
    checked = check(women, dict(BASE, fl_cant_quit=1, fl_quit_why=reason))
    assert checked.findings == ()
    assert checked.value("fl_invol") == invol


def test_non_payment_is_not_counted_twice(women: Template) -> None:
    """v1 counted 'not paid at all' as involuntariness and 'wages held back' as coercion: one event, a flag."""
    low = check(women, dict(BASE, fl_lowpay=1))
    assert (low.value("fl_invol"), low.value("fl_coerc"), low.value("fl_flag")) == ("1", "0", "0")
    labels = {r["name"]: r["label::English (en)"] for r in survey_csv(NAME)}
    assert "not paid at all" not in labels["fl_lowpay"]
    assert "so that you would not leave" in labels["fl_wage_withheld"]


@pytest.mark.parametrize(
    ("age", "yes", "flag"),
    [
        (16, ("fl_threat",), "1"),  # a child under coercion by a third party: forced labour of children
        (16, (), "0"),
        (16, ("fl_deceived",), "0"),
        (30, ("fl_threat",), "0"),  # an adult needs involuntariness too
        (30, ("fl_threat", "fl_deceived"), "1"),
    ],
)
def test_forced_labour_of_children_needs_coercion_only(
    women: Template, age: int, yes: tuple[str, ...], flag: str
) -> None:
    """ICLS 2018 / ILO 2012 operational definition: work of a child (15-17) under coercion applied by a third
    party is forced labour of children; involuntariness need not be shown."""
    answers = dict(BASE, wg_age=age, **dict.fromkeys(yes, 1))
    if age < 18:
        answers.update(fl_guardian=1, fl_assent=1)
    checked = check(women, answers)
    assert checked.findings == ()
    assert checked.value("fl_flag") == flag


@pytest.mark.parametrize(("current", "end", "asked"), [(1, None, True), (2, 2022, True), (2, 2020, False)])
def test_m6b_reference_period_is_the_last_5_years(
    women: Template, current: int, end: int | None, asked: bool
) -> None:
    answers = dict(BASE, dw_current=current, dw_end_y=end)
    if not asked:
        answers = {k: v for k, v in answers.items() if not k.startswith("fl_")}
    checked = check(women, {k: v for k, v in answers.items() if v is not None})
    assert checked.value("fl_ref") == ("1" if asked else "0")
    assert checked.relevant("fl_mod") is asked


@pytest.mark.parametrize(
    ("now", "abroad", "where"),
    [(1, 1, "1"), (2, 1, "2"), (2, 2, "1")],
)
def test_m6_describes_the_current_job_when_there_is_one(women: Template, now: int, abroad: int, where: str) -> None:
    """Issue 12 item 9: a current domestic job here comes first, else the last job abroad, else the last job here."""
    answers = dict(BASE, dw_scr_abroad=abroad, dw_scr_12m=1, dw_scr_now=now)
    if where == "1":
        answers.pop("dw_ctry", None)
        answers.pop("dw_contract_prior", None)
    checked = check(women, answers)
    assert checked.findings == ()
    assert checked.value("dw_where") == where
    assert checked.relevant("dw_ctry") is (where == "2")
