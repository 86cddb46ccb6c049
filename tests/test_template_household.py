"""The household questionnaire (forms/household.xlsx, ncamig_household): the naming contract, consent gating,
sentinel handling and the indicator calculations (SDG 10.7.1 ratio, survey-based transfer-cost proxy).

Structure is read from the CSV sources the workbook is generated from (tests/test_templates.py checks that the
workbook matches them). Behaviour is checked with migkit's own validator (JavaRosa's relevance, constraint and
calculation rules): an instance is built from answers, the form's calculations are recomputed and the test
reads the recomputed values and the findings.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.conftest import FORMS_DIR, require_tool
from tests.java.jrcheck import javarosa_check
from toolkit import validate as form_validate
from toolkit.forms import compile_form
from toolkit.xform import load_form
from toolkit.xpath import XNode, build_tree

NAME = "household"
TODAY = date(2026, 11, 27)
# Test rates (the field copy of forms/fx_rates.csv is attached as media): 1 RUB = 0.0125 USD, 1 TJS = 0.1 USD
# now; the 2023 annual average of the rouble is 0.016 USD (key RUB-2023); a year without a row uses the current rate.
FX_RATES = (
    "key,iso,period,usd_per_unit\nRUB,RUB,current,0.0125\nTJS,TJS,current,0.1\nKZT,KZT,current,0.002\n"
    "USD,USD,current,1\nRUB-2023,,2023,0.016\nRUB-2024,,2024,\n"
)
RECOMPUTED = {"calculate_mismatch"}


@cache
def survey() -> dict[str, dict[str, str]]:
    with (FORMS_DIR / "src" / NAME / "survey.csv").open(encoding="utf-8", newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle) if row["name"]}


def settings() -> dict[str, str]:
    with (FORMS_DIR / "src" / NAME / "settings.csv").open(encoding="utf-8", newline="") as handle:
        return next(csv.DictReader(handle))


# ------------------------------------------------------------------------------------------------ structure

# The spec's module tables (specs/questionnaire.md section 3): variable name -> XLSForm type.
CONTRACT = {
    "start": "start",
    "end": "end",
    "today": "today",
    "deviceid": "deviceid",
    "audit": "audit",
    "id_country": "select_one countries",
    "id_stratum": "integer",
    "id_psu": "integer",
    "id_hh_no": "integer",
    "id_hh_uid": "calculate",
    "id_int": "select_one interviewer",
    "id_sup": "select_one supervisor",
    "id_gps_start": "start-geopoint",
    "id_gps": "geopoint",
    "id_lang": "select_one lang",
    "consent_hh": "select_one yesno",
    "hh_result": "select_one hh_result",
    "hl": "begin_repeat",
    "hl_line": "calculate",
    "hl_name": "text",
    "hl_sex": "select_one sex",
    "hl_age": "integer",
    "hl_rel": "select_one rel",
    "hl_marital": "select_one marital",
    "hl_usual": "select_one yesno",
    "hl_months_away": "integer",
    "hl_abroad_now": "select_one yesno",
    "hl_cob": "select_one countries",
    "hl_cit": "select_one countries",
    "hl_cit2": "select_one countries",
    "hl_arr_year": "integer",
    "hl_prev_ctry": "select_one countries",
    "hl_mig_reason": "select_one mig_reason",
    "hl_ever_abroad": "select_one yesno",
    "hl_educ": "select_one educ",
    "hl_lfs": "select_one yesno",
    "hl_immig": "calculate",
    "hl_ret": "calculate",
    "ab": "begin_repeat",
    "ab_src": "select_one ab_src",
    "ab_line": "select_one ${hl_pick}",
    "ab_name": "calculate",
    "ab_sex": "select_one sex",
    "ab_age": "integer",
    "ab_rel": "select_one rel",
    "ab_left_ym": "date",
    "ab_months": "calculate",
    "ab_dest": "select_one countries",
    "ab_reason": "select_one mig_reason",
    "ab_status": "select_one legal_status",
    "ab_work": "select_one yesno",
    "ab_isco": "select_one isco",
    "ab_emp": "select_one emp",
    "ab_dw": "select_one yesno",
    "ab_livein": "select_one yesno",
    "ab_remit12": "select_one yesno",
    "ab_remit_n": "integer",
    "ab_remit_amt": "decimal",
    "ab_remit_cur": "select_one currencies",
    "ab_channel": "select_one channel",
    "ab_fee_usual": "decimal",
    "ab_rc_total": "decimal",
    "ab_months_work": "integer",
    "ab_inkind_val": "decimal",
    "ab_return_int": "select_one ret_int",
    "rm": "begin_repeat",
    "rm_consent": "select_one yesno",
    "rm_ctry": "select_one countries",
    "rm_left_y": "integer",
    "rm_ret_y": "integer",
    "rm_months": "integer",
    "rm_worked": "select_one yesno",
    "rm_emp": "select_one emp",
    "rm_joboffer": "select_one yesno",
    "rm_channel": "select_one job_channel",
    "rc_items": "select_multiple rc_items",
    "rc": "begin_repeat",
    "rc_amt": "decimal",
    "rc_amt_cur": "select_one currencies",
    "rc_payee": "select_one payee",
    "rc_deduct": "select_one yesno",
    "rc_total_usd": "calculate",
    "rc_finance": "select_multiple finance",
    "rc_interest": "decimal",
    "rm_earn1": "decimal",
    "rm_earn_last1": "decimal",
    "rm_earn_usual": "decimal",
    "rm_earn1_usd": "calculate",
    "rm_rci": "calculate",
    "rm_contract": "select_one contract",
    "rm_docs_held": "select_one docs_kept",
    "rm_wage_withheld": "select_one withheld",
    "rm_ret_reason": "select_one ret_reason",
    "rm_remigrate": "select_one remig",
    "rr_any12": "select_one yesno",
    "rr_total12": "decimal",
    "rr_cur": "select_one currencies",
    "rr_freq": "select_one rr_freq",
    "rr_receiver": "select_one ${hl_pick}",
    "rs_sender": "select_one ${ab_pick}",
    "rs_date": "date",
    "rs_amt_sent": "decimal",
    "rs_sent_cur": "select_one currencies",
    "rs_amt_recv": "decimal",
    "rs_recv_cur": "select_one currencies",
    "rs_fee": "decimal",
    "rs_fee_cur": "select_one currencies",
    "rs_fee_payer": "select_one fee_payer",
    "rs_channel": "select_one channel",
    "rs_provider": "text",
    "rs_days": "integer",
    "rs_collect": "select_one collect",
    "rs_cost_pct": "calculate",
    "rs_le200": "calculate",
    "ru_use": "select_multiple ru_use",
    "ru_main": "select_one ru_use",
    "ru_dec_main": "select_one ${hl_pick}",
    "ru_dec_wdhs": "calculate",
    "ru_acct": "select_one yesno",
}


@pytest.mark.parametrize(("name", "type_"), sorted(CONTRACT.items()))
def test_contract_variable_exists_with_its_type(name: str, type_: str) -> None:
    assert name in survey(), f"{name} missing from forms/src/household/survey.csv"
    assert survey()[name]["type"] == type_


def test_settings_follow_spec_section_4_item_1() -> None:
    row = settings()
    assert row["form_id"] == "ncamig_household"
    assert re.fullmatch(r"20\d{6}\d{2}", row["version"])
    assert row["default_language"] == "English (en)"
    assert row["instance_name"] == "concat(${id_hh_uid},'-',${today})"
    assert "public_key" not in row  # added per deployment with `migkit keys attach`


def test_audit_tracks_changes_and_gps_has_an_accuracy_threshold() -> None:
    assert survey()["audit"]["parameters"] == "track-changes=true"
    assert "capture-accuracy=" in survey()["id_gps"]["parameters"]


@pytest.mark.parametrize("group", ["m1", "m2", "m3", "m4", "m7"])
def test_every_module_after_the_cover_hangs_on_household_consent(group: str) -> None:
    assert survey()[group]["relevant"].startswith("${consent_hh} = '1'")


def test_nothing_outside_a_consent_gated_group_but_the_cover_and_the_result() -> None:
    with (FORMS_DIR / "src" / NAME / "survey.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    depth, outside, ungated, after_cover = 0, [], [], False
    for row in rows:
        if row["type"] in ("begin_group", "begin_repeat"):
            if depth == 0 and after_cover and not row["relevant"].startswith("${consent_hh} = '1'"):
                ungated.append(row["name"])
            depth += 1
        elif row["type"] in ("end_group", "end_repeat"):
            depth -= 1
            after_cover = True  # the first top-level group is the cover (m0)
        elif depth == 0 and after_cover:
            outside.append(row["name"])
    assert ungated == []
    assert outside == ["hh_result", "hh_result_oth"]


def test_individual_consent_gates_the_return_migrant_interview() -> None:
    assert survey()["rm_consent"]["relevant"] == "${rm_present} = '1'"
    assert survey()["rm_g"]["relevant"] == "${rm_consent} = '1'"


def test_calculations_as_the_spec_defines_them() -> None:
    calc = {name: row["calculation"] for name, row in survey().items()}
    assert calc["hl_line"] == "position(..)"
    assert calc["id_hh_uid"] == "concat(${id_country},'-',${id_psu},'-',${id_hh_no})"
    assert calc["rc_item"] == "selected-at(${rc_items}, position(..) - 1)"
    assert survey()["rc"]["repeat_count"] == "${rc_n}"
    assert "count-selected(${rc_items})" in calc["rc_n"]
    assert "sum(${rc_amt_usd})" in calc["rc_total_usd"]
    # The spec's ratio, guarded so that a missing C_k gives an empty value rather than NaN.
    assert (
        calc["rm_rci"]
        == "if(${rm_earn1_usd}>0 and ${rc_total_usd} != '', ${rc_total_usd} div ${rm_earn1_usd}, '')"
    )
    assert "${rs_amt_sent} - (${rs_amt_recv} div ${rs_ref_rate})" in calc["rs_fx_margin"]
    assert "(${rs_fee_add} + ${rs_fx_margin}) div ${rs_amt_sent} * 100" in calc["rs_cost_pct"]


def test_hl_rel_constraint_puts_exactly_one_head_on_line_one() -> None:
    assert survey()["hl_rel"]["constraint"] == "if(position(..) = 1, . = '1', . != '1')"


def test_every_usd_conversion_treats_sentinels_as_missing() -> None:
    usd = {n: r["calculation"] for n, r in survey().items() if n.endswith("_usd") and "pulldata" in r["calculation"]}
    assert len(usd) >= 8
    for name, expression in usd.items():
        assert ">= 0" in expression and "pulldata('fx_rates', 'usd_per_unit', 'iso'," in expression, name
    # Amounts of the 10.7.1 block convert at the rate of the period they were paid or earned (a _fx calculate).
    period = {n: r["calculation"] for n, r in survey().items() if n.endswith("_usd") and "_fx}" in r["calculation"]}
    assert set(period) == {
        "rc_amt_usd", "rc_total_paid_usd", "rm_earn1_usd", "rm_earn_last1_usd", "rm_earn_usual_usd"
    }
    for name, expression in period.items():
        amount = name.removesuffix("_usd")
        assert f"${{{amount}}} > 0 and" in expression and f"if(${{{amount}}} = 0, 0," in expression, name


def test_every_amount_accepts_the_sentinels_and_has_a_currency() -> None:
    names = list(survey())
    for name, row in survey().items():
        if row["type"] != "decimal" or name == "id_selprob":
            continue
        assert row["constraint"] == "(. >= 0 and . <= 1000000000) or . = -98 or . = -99", name
        following = survey()[names[names.index(name) + 1]]
        assert following["type"] == "select_one currencies", name


def test_select_multiples_reject_dont_know_or_refused_with_other_answers() -> None:
    for name, row in survey().items():
        if row["type"].startswith("select_multiple"):
            assert "selected(.,'98') or selected(.,'99')" in row["constraint"], name
            assert "count-selected(.)>1" in row["constraint"], name


def test_other_codes_have_a_specify_field() -> None:
    choices = _choice_codes()
    for name, row in survey().items():
        match = re.match(r"select_(one|multiple) (\w+)$", row["type"])
        # a select filtered to an earlier answer's choices (ru_main from ru_use) reuses that answer's _oth
        if match and "96" in choices.get(match.group(2), set()) and "selected(" not in row["choice_filter"]:
            oth = survey().get(f"{name}_oth")
            assert oth is not None and oth["relevant"] == f"selected(${{{name}}}, '96')", name


def test_names_fit_stata() -> None:
    for name, row in survey().items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert len(name) <= 32, name
        if row["type"].startswith("select_one") or row["type"].startswith("select_multiple"):
            assert len(name) <= 28, f"{name}: coded questions keep 4 characters for label-set suffixes"


def _choice_codes() -> dict[str, set[str]]:
    codes: dict[str, set[str]] = {}
    paths = [FORMS_DIR / "src" / NAME / "choices.csv", *sorted((FORMS_DIR / "src" / "lists").glob("*.csv"))]
    for path in paths:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                codes.setdefault(row["list_name"], set()).add(row["name"])
    return codes


# ------------------------------------------------------------------------------------------------ behaviour


@pytest.fixture(scope="module")
def form(tmp_path_factory: pytest.TempPathFactory) -> Any:
    media = tmp_path_factory.mktemp("media")
    (media / "fx_rates.csv").write_text(FX_RATES, encoding="utf-8")
    model = load_form(FORMS_DIR / f"{NAME}.xlsx")
    compiled = form_validate.compile_form(model, media_dir=media)
    assert not compiled.problems, [p.message for p in compiled.problems]
    return compiled


def _paths(compiled: Any) -> tuple[dict[str, str], frozenset[str]]:
    model = compiled.model
    paths = {n.name: n.path for n in model.nodes.values() if n.path != model.root}
    return paths, frozenset(n.name for n in model.repeats())


def _element_at(root: etree._Element, parts: list[str]) -> etree._Element:
    node = root
    for part in parts:
        child = node.find(part)
        node = child if child is not None else etree.SubElement(node, part)
    return node


def _fill(compiled: Any, element: etree._Element, base: str, answers: dict[str, Any]) -> None:
    """Place answers {name: value} under element (at path base); a repeat's value is a list of row dicts."""
    paths, repeats = _paths(compiled)
    for name, value in answers.items():
        parts = paths[name][len(base) + 1 :].split("/")
        if name in repeats:
            parent = _element_at(element, parts[:-1])
            for row in value:
                instance = etree.SubElement(parent, parts[-1])
                _template_nodes(instance, paths[name], paths.values(), repeats={paths[r] for r in repeats})
                _fill(compiled, instance, paths[name], row)
        else:
            _element_at(element, parts).text = str(value)


def _template_nodes(element: etree._Element, base: str, all_paths: Any, repeats: set[str]) -> None:
    """Create the empty nodes of a new repeat instance, as Collect does (nested repeats excepted)."""
    for path in all_paths:
        if not path.startswith(base + "/"):
            continue
        if any((path == r or path.startswith(r + "/")) and r.startswith(base + "/") for r in repeats):
            continue
        _element_at(element, path[len(base) + 1 :].split("/"))


def _in_form_order(element: etree._Element, path: str, order: dict[str, int]) -> None:
    """Sort children into the form's document order (JavaRosa reads a saved instance by position)."""
    children = sorted(element, key=lambda child: order.get(f"{path}/{child.tag}", len(order)))
    for child in children:
        element.remove(child)
        element.append(child)
        _in_form_order(child, f"{path}/{child.tag}", order)


def instance_xml(compiled: Any, answers: dict[str, Any]) -> etree._Element:
    """A saved instance as Collect writes it: all nodes of the form (nested repeats as answered), in order."""
    model = compiled.model
    root = etree.Element(model.root.strip("/"), id=model.form_id or "", version=model.version or "")
    paths, repeats = _paths(compiled)
    _template_nodes(root, model.root, paths.values(), repeats={paths[r] for r in repeats})
    _fill(compiled, root, model.root, answers)
    _in_form_order(root, model.root, {n.path: i for i, n in enumerate(model.nodes.values())})
    return root


def javarosa_run(name: str, compiled: Any, answers: dict[str, Any], folder: Path, fx_rates: str) -> list[Any]:
    """JavaRosa's view (relevance and values of every node) of one instance of forms/<name>.xlsx built from
    answers as Collect saves it; fx_rates is the pulldata media."""
    require_tool("javac", "openjdk-17-jdk-headless")
    compiled_xform = compile_form(FORMS_DIR / f"{name}.xlsx", validate=False)
    assert compiled_xform.xform is not None
    (folder / "form.xml").write_text(compiled_xform.xform, encoding="utf-8")
    (folder / "fx_rates.csv").write_text(fx_rates, encoding="utf-8")
    root = instance_xml(compiled, answers)
    etree.SubElement(etree.SubElement(root, "meta"), "instanceID").text = f"uuid:{name}-{folder.name}"
    (folder / "instance.xml").write_bytes(etree.tostring(root))
    (nodes,) = javarosa_check(folder / "form.xml", [folder / "instance.xml"], media=folder).values()
    assert not isinstance(nodes, str), nodes
    return list(nodes)


class Checked:
    def __init__(self, compiled: Any, answers: dict[str, Any]) -> None:
        root = instance_xml(compiled, answers)
        self.tree: XNode = build_tree(root, types=compiled.types, repeats=compiled.repeats)
        findings = form_validate.validate_tree(compiled, self.tree, today=TODAY)
        self.findings = [f for f in findings if f.code not in RECOMPUTED]

    def node(self, path: str) -> XNode:
        """The node at a plain path; in a repeat, its first instance."""
        found = self.tree.find(path)
        assert found is not None, path
        return found

    def value(self, path: str) -> str:
        node = self.node(path)
        return node.string if node.relevant else ""


ROSTER = [
    # head, abroad in Russia
    {
        "hl_name": "Rustam",
        "hl_wg_rand": 0.11,  # set by Collect when the name is entered
        "hl_sex": 1,
        "hl_age": 45,
        "hl_rel": 1,
        "hl_marital": 2,
        "hl_usual": 1,
        "hl_months_away": 12,
        "hl_abroad_now": 1,
        "hl_away12": 3,
        "hl_cob": "TJK",
        "hl_cit": "TJK",
        "hl_dual": 2,
        "hl_ever_abroad": 1,
        "hl_abr_longest": 14,
        "hl_ever_worked": 1,
        "hl_res1y": 3,
        "hl_res1y_ctry": "RUS",
        "hl_educ": 3,
    },
    {
        "hl_name": "Zarina",
        "hl_wg_rand": 0.52,  # set by Collect when the name is entered
        "hl_sex": 2,
        "hl_age": 40,
        "hl_rel": 2,
        "hl_marital": 2,
        "hl_usual": 1,
        "hl_months_away": 0,
        "hl_abroad_now": 2,
        "hl_cob": "TJK",
        "hl_cit": "TJK",
        "hl_dual": 2,
        "hl_ever_abroad": 2,
        "hl_res1y": 1,
        "hl_educ": 3,
        "hl_lfs": 2,
        "hl_lfs_abs": 2,
        "hl_lfs_look": 3,
        "hl_lfs_avail": 2,
    },
    # son, came back from Russia in 2025
    {
        "hl_name": "Firuz",
        "hl_wg_rand": 0.33,  # set by Collect when the name is entered
        "hl_sex": 1,
        "hl_age": 20,
        "hl_rel": 3,
        "hl_marital": 1,
        "hl_usual": 1,
        "hl_months_away": 0,
        "hl_abroad_now": 2,
        "hl_cob": "TJK",
        "hl_cit": "TJK",
        "hl_dual": 2,
        "hl_ever_abroad": 1,
        "hl_abr_longest": 20,
        "hl_ever_worked": 1,
        "hl_ret10": 1,
        "hl_arr_year": 2025,
        "hl_arr_month": 6,
        "hl_prev_ctry": "RUS",
        "hl_mig_reason": 7,
        "hl_res1y": 1,
        "hl_educ": 3,
        "hl_lfs": 1,
    },
    {
        "hl_name": "Madina",
        "hl_wg_rand": 0.74,  # set by Collect when the name is entered
        "hl_sex": 2,
        "hl_age": 10,
        "hl_rel": 3,
        "hl_usual": 1,
        "hl_months_away": 0,
        "hl_abroad_now": 2,
        "hl_cob": "TJK",
        "hl_cit": "TJK",
        "hl_dual": 2,
        "hl_res1y": 1,
        "hl_mother_st": 1,
        "hl_mother": "2: Zarina",
        "hl_father_st": 1,
        "hl_father": "1: Rustam",
    },
]
ABROAD = {
    "ab_line": "1: Rustam",
    "ab_sex": 1,
    "ab_age": 45,
    "ab_rel": 1,
    "ab_left_ym": "2024-03-01",
    "ab_dest": "RUS",
    "ab_reason": 1,
    "ab_status": 3,
    "ab_work": 1,
    "ab_isco": 7,
    "ab_emp": 1,
    "ab_dw": 2,
    "ab_months_work": 10,
    "ab_rc_total": 30000,
    "ab_rc_total_cur": "RUB",
    "ab_remit12": 1,
    "ab_remit_n": 10,
    "ab_remit_amt": 200000,
    "ab_remit_cur": "RUB",
    "ab_channel": 3,
    "ab_fee_usual": 0,
    "ab_inkind_val": 0,
    "ab_return_int": 2,
}
COSTS = [  # agency fee and work permit in roubles, the ticket bought at home in somoni
    {"rc_amt": 5000, "rc_amt_cur": "RUB", "rc_paid_ym": "2024-01-01", "rc_payee": 6, "rc_deduct": 2},
    {"rc_amt": 20000, "rc_amt_cur": "RUB", "rc_paid_ym": "2024-02-01", "rc_payee": 2, "rc_deduct": 2},
    {"rc_amt": 3000, "rc_amt_cur": "TJS", "rc_paid_ym": "2024-01-01", "rc_payee": 5, "rc_deduct": 2},
]
RETURNEE = {
    "rm_who": "3: Firuz",
    "rm_present": 1,
    "rm_consent": 1,
    "rm_ctry": "RUS",
    "rm_left_y": 2023,
    "rm_ret_y": 2025,
    "rm_months": 20,
    "rm_worked": 1,
    "rm_emp": 1,
    "rm_emp_oth": None,
    "rm_isco": 7,
    "rm_dw": 2,
    "rm_joboffer": 2,
    "rm_channel": 3,
    "rm_job1_y": 2024,
    "rm_job1_m": 3,
    "rc_items": "1 4 13",
    "rc": COSTS,
    "rc_finance": "3",
    "rc_interest": 0,
    "rm_earn1": 40000,
    "rm_earn1_cur": "RUB",
    "rm_earn1_ym": "2024-04-01",
    "rm_earn_last1": 60000,
    "rm_earn_last1_cur": "RUB",
    "rm_earn_last1_ym": "2025-05-01",
    "rm_earn_usual": 55000,
    "rm_earn_usual_cur": "RUB",
    "rm_contract": 2,
    "rm_docs_held": 3,
    "rm_wage_withheld": 2,
    "rm_ret_reason": 4,
    "rm_remigrate": 1,
    "rm_remig_dest": "RUS",
    "rm_remig_offer": 2,
    "rm_remig_chan": 4,
}
BASE: dict[str, Any] = {
    "id_country": "TJK",
    "id_admin1": 1,
    "id_admin2": 5,
    "id_stratum": 2,
    "id_psu": 101,
    "id_hh_no": 7,
    "id_selprob": 0.01,
    "id_int": 101,
    "id_sup": 11,
    "id_lang": 5,
    "id_gps_ok": 2,
    "hh_contact": 1,
    "consent_hh": 1,
    "hh_size": 4,
    "hl": ROSTER,
    "id_resp": "2: Zarina",
    "ab_former_n": 0,
    "ab": [ABROAD],
    "rm": [RETURNEE],
    "rr_resp": "2: Zarina",
    "rr_any12": 1,
    "rr_total12": -98,
    "rr_brk_a": 1,
    "rr_brk_b": 2,
    "rr_freq": 2,
    "rr_receiver": "2: Zarina",
    "rs_any3": 1,
    "rs_date": "2026-10-15",
    "rs_from_ab": 1,
    "rs_sender": "1: Rustam",
    "rs_amt_sent": 20000,
    "rs_sent_cur": "RUB",
    "rs_amt_recv": 2400,
    "rs_recv_cur": "TJS",
    "rs_fee": 200,
    "rs_fee_cur": "RUB",
    "rs_fee_payer": 1,
    "rs_channel": 2,
    "rs_provider": "Zolotaya Korona",
    "rs_days": 0,
    "rs_collect": 1,
    "ru_use": "1 3 11",
    "ru_main": 1,
    "ru_dec_main": "2: Zarina",
    "ru_dec_joint": 1,
    "ru_dec_with": "1: Rustam",
    "ru_dec_out": 2,
    "ru_acct": 2,
    "mi_plan": 1,
    "hh_result": 1,
}


def _clean(answers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in answers.items():
        if value is None:
            continue
        out[key] = [_clean(row) for row in value] if isinstance(value, list) else value
    return out


def run(compiled: Any, **changes: Any) -> Checked:
    return Checked(compiled, _clean(dict(BASE, **changes)))


def test_complete_household_obeys_the_form(form: Any) -> None:
    checked = run(form)
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert checked.value("/data/m0/id_hh_uid") == "TJK-101-7"
    assert checked.value("/data/m0/id_cur_default") == "TJS"
    assert checked.value("/data/m1/hh_n_abroad") == "1"
    assert checked.value("/data/m1/hh_n_rm") == "1"
    assert checked.value("/data/m2/hh_mig") == "1"
    assert checked.value("/data/m2/ab/ab_name") == "Rustam"
    assert checked.value("/data/m2/ab/ab_line_no") == "1"
    assert checked.value("/data/m2/ab/ab_remit_usd") == "2500"


def test_sdg_10_7_1_ratio_from_itemised_costs_and_first_month_pay(form: Any) -> None:
    checked = run(form)
    rm = "/data/m3/rm/rm_g"
    assert checked.value(f"{rm}/rm_job/rm_1071") == "1"
    # C_k = (5000 + 20000) RUB x 0.0125 + 3000 TJS x 0.1 = 612.5 USD; E_k = 40000 RUB x 0.0125 = 500 USD
    assert float(checked.value(f"{rm}/rm_job/rc_g/rc_total_usd")) == pytest.approx(612.5)
    assert float(checked.value(f"{rm}/rm_job/rm_earn/rm_earn1_usd")) == pytest.approx(500)
    assert float(checked.value(f"{rm}/rm_job/rm_rci")) == pytest.approx(1.225)


@pytest.mark.parametrize(
    ("changes", "rci"),
    [
        ({"rc_items": "0", "rc": [], "rc_finance": None, "rc_interest": None}, "0"),  # paid nothing
        ({"rm_earn1": -98}, ""),  # first-month pay not known
        ({"rm_job1_y": 2021, "rm_job1_m": 5}, ""),  # first job started more than 3 years ago: outside 10.7.1
        ({"rm_emp": 2}, ""),  # own-account worker: outside the 10.7.1 population
    ],
)
def test_sdg_10_7_1_ratio_is_missing_outside_its_population_or_with_sentinels(
    form: Any, changes: dict[str, Any], rci: str
) -> None:
    returnee = dict(RETURNEE, **changes)
    checked = run(form, rm=[returnee])
    value = checked.value("/data/m3/rm/rm_g/rm_job/rm_rci")
    assert (value if value in ("", "NaN") else str(round(float(value), 6)).rstrip("0").rstrip(".")) == rci


JOB = "/data/m3/rm/rm_g/rm_job"
UNKNOWN_ITEM = [dict(COSTS[0], rc_amt=-98, rc_amt_cur=None, rc_paid_ym=None, rc_payee=None, rc_deduct=None), *COSTS[1:]]


def test_one_unknown_cost_item_asks_for_the_total_paid(form: Any) -> None:
    """Issue 12 item 2: a 'don't know' item no longer leaves C_k missing; the reported total replaces the sum."""
    returnee = dict(RETURNEE, rc=UNKNOWN_ITEM, rc_total_paid=30000, rc_total_paid_cur="RUB", rc_total_paid_y=2023)
    checked = run(form, rm=[returnee])
    assert checked.findings == []
    assert checked.value(f"{JOB}/rc_g/rc/rc_amt_usd") == ""
    assert checked.value(f"{JOB}/rc_g/rc_n_dk") == "1"
    assert float(checked.value(f"{JOB}/rc_g/rc_total_usd")) == pytest.approx(480)  # 30000 x 0.016 (2023 rate)
    assert checked.value(f"{JOB}/rc_g/rc_total_src") == "2"
    assert float(checked.value(f"{JOB}/rm_rci")) == pytest.approx(0.96)  # 480 / 500
    assert run(form).value(f"{JOB}/rc_g/rc_total_src") == "1"  # all items known: their sum
    assert not run(form).node(f"{JOB}/rc_g/rc_total_paid").relevant


@pytest.mark.parametrize(
    ("answers", "bracket"),
    [
        ({"rc_tot_brk_a": 1, "rc_tot_brk_b": 1}, "4"),  # more than USD 2000 (160000 RUB at 0.0125)
        ({"rc_tot_brk_a": 1, "rc_tot_brk_b": 2}, "3"),
        ({"rc_tot_brk_a": 2, "rc_tot_brk_c": 1}, "2"),
        ({"rc_tot_brk_a": 2, "rc_tot_brk_c": 2}, "1"),
    ],
)
def test_unknown_total_cost_gets_unfolding_brackets_in_the_job_currency(
    form: Any, answers: dict[str, int], bracket: str
) -> None:
    checked = run(form, rm=[dict(RETURNEE, rc=UNKNOWN_ITEM, rc_total_paid=-98, **answers)])
    assert checked.findings == []
    assert checked.value(f"{JOB}/rc_g/rc_total_brk") == bracket
    assert checked.value("/data/m3/rm/rm_g/rm_brk_mid") == "40000"  # USD 500 in roubles, the job currency
    assert checked.value(f"{JOB}/rc_g/rc_total_usd") == ""
    assert checked.value(f"{JOB}/rm_rci") == ""


def test_costs_and_earnings_convert_at_the_rate_of_their_year(form: Any) -> None:
    costs = [dict(COSTS[0], rc_paid_ym="2023-11-01"), *COSTS[1:]]
    returnee = dict(RETURNEE, rc=costs, rm_earn1_ym="2023-12-01", rm_job1_y=2023, rm_job1_m=11, rm_left_y=2023)
    checked = run(form, rm=[returnee])
    assert checked.findings == []
    assert float(checked.value(f"{JOB}/rc_g/rc/rc_amt_usd")) == pytest.approx(80)  # 5000 x 0.016 (2023)
    # 5000 RUB at 0.016 + 20000 RUB at the current 0.0125 (2024 has no annual average yet) + 3000 TJS x 0.1
    assert float(checked.value(f"{JOB}/rc_g/rc_total_usd")) == pytest.approx(80 + 250 + 300)
    assert float(checked.value(f"{JOB}/rm_earn/rm_earn1_usd")) == pytest.approx(640)  # 40000 x 0.016


@pytest.mark.parametrize(
    ("year", "month", "in_period"),
    [
        (2023, 11, 1),  # 36 months before November 2026
        (2023, 10, 0),  # 37 months
        (2023, -98, 1),  # month not known: calendar-year rule (year >= 2026 - 3)
        (2022, -98, 0),
        (2026, 11, 1),
    ],
)
def test_reference_period_of_10_7_1_is_36_months_before_the_interview(
    form: Any, year: int, month: int, in_period: int
) -> None:
    """SDG 10.7.1 metadata (rev. 2022-05-18): the first job in the last destination, started within 3 years."""
    returnee = dict(RETURNEE, rm_job1_y=year, rm_job1_m=month, rm_left_y=min(year, 2023), rm_ret_y=2026)
    if not in_period:
        returnee = {k: v for k, v in returnee.items() if not k.startswith("rc")}
    checked = run(form, rm=[returnee])
    assert checked.value(f"{JOB}/rm_1071_ref") == str(in_period)
    assert checked.value(f"{JOB}/rm_1071") == str(in_period)
    assert checked.node(f"{JOB}/rc_g").relevant is bool(in_period)


def test_returnee_not_present_gets_a_result_code_and_a_revisit(form: Any) -> None:
    absent = {"rm_who": "3: Firuz", "rm_present": 2, "rm_result": 2, "rm_callback": "2026-11-28T18:00:00"}
    checked = run(form, rm=[absent])
    assert checked.findings == []
    assert checked.value("/data/m3/rm/rm_status") == "2"
    assert not checked.node("/data/m3/rm/rm_g").relevant
    missing = run(form, rm=[{"rm_who": "3: Firuz", "rm_present": 2}])
    assert ("required_missing", "rm_result") in {(f.code, f.variable) for f in missing.findings}
    refused_code_when_absent = run(form, rm=[{"rm_who": "3: Firuz", "rm_present": 2, "rm_result": 4}])
    assert ("constraint_violated", "rm_result") in {(f.code, f.variable) for f in refused_code_when_absent.findings}
    assert run(form).value("/data/m3/rm/rm_status") == "1"
    assert not run(form).node("/data/m3/rm/rm_result").relevant


def test_cost_items_follow_the_ilo_2019_definition() -> None:
    items = {code for (lst, code) in _choice_pairs() if lst == "rc_items"}
    assert {"17", "18", "19"} <= items  # equipment; deposits, bonds or guarantees; travel to the workplace
    labels = _choice_labels("rc_items")
    assert "bribe" not in labels["16"].lower()
    # deductions: the full cost is recorded as a cost, earnings are asked after the deduction (no double count)
    assert "full amount" in survey()["rc_items"]["hint::English (en)"]
    for name in ("rm_earn1", "rm_earn_last1", "rm_earn_usual"):
        assert "after the deduction" in survey()[name]["hint::English (en)"], name


def _choice_pairs() -> set[tuple[str, str]]:
    return {(lst, code) for lst, codes in _choice_codes().items() for code in codes}


def _choice_labels(list_name: str) -> dict[str, str]:
    with (FORMS_DIR / "src" / NAME / "choices.csv").open(encoding="utf-8", newline="") as handle:
        return {r["name"]: r["label::English (en)"] for r in csv.DictReader(handle) if r["list_name"] == list_name}


def test_transfer_cost_proxy_from_fee_and_exchange_margin(form: Any) -> None:
    checked = run(form)
    rs = "/data/m4/rr/rs"
    # reference 0.0125 / 0.1 = 0.125 TJS per RUB; 2400 TJS = 19200 RUB, margin 800 RUB; (200 + 800) / 20000
    assert float(checked.value(f"{rs}/rs_ref_rate")) == pytest.approx(0.125)
    assert float(checked.value(f"{rs}/rs_fx_margin")) == pytest.approx(800)
    assert float(checked.value(f"{rs}/rs_cost_pct")) == pytest.approx(5.0)
    assert checked.value(f"{rs}/rs_le200") == "0"  # 20000 RUB = 250 USD
    assert checked.value(f"{rs}/rs_sender_line") == "1"


@pytest.mark.parametrize(
    ("payer", "cost"),
    [
        (1, 5.0),  # sender paid 200 RUB on top of the 20000 sent: fee + margin of 800 RUB
        (2, 4.0),  # receiver paid: the fee is already inside the 2400 TJS paid out, so only the margin counts
        (3, None),  # both paid: the split is not known, no proxy
        (98, None),
    ],
)
def test_transfer_cost_adds_the_fee_only_when_the_sender_paid_it(form: Any, payer: int, cost: float | None) -> None:
    """Issue 12 item 7: v1 added a receiver-paid fee on top of an exchange margin that already contained it."""
    checked = run(form, rs_fee_payer=payer)
    value = checked.value("/data/m4/rr/rs/rs_cost_pct")
    assert (value == "") if cost is None else float(value) == pytest.approx(cost)
    hint = survey()["rs_cost_pct"]["hint::English (en)"]
    assert "not SDG 10.c.1" in hint  # the codebook carries the hint as the variable's description


def test_transfer_cost_is_missing_when_an_amount_is_unknown(form: Any) -> None:
    checked = run(form, rs_amt_recv=-98, rs_recv_cur=None)
    assert checked.value("/data/m4/rr/rs/rs_cost_pct") == ""
    assert checked.value("/data/m4/rr/rs/rs_recv_usd") == ""


def test_unknown_total_gets_an_unfolding_bracket(form: Any) -> None:
    checked = run(form)
    assert checked.value("/data/m4/rr/rr_total12_usd") == ""
    assert checked.value("/data/m4/rr/rr_brk") == "3"  # more than USD 500, not more than USD 2000
    assert checked.value("/data/m0/id_brk_mid") == "5000"  # USD 500 in somoni at 0.1


def test_no_consent_switches_every_module_off(form: Any) -> None:
    answers = {k: v for k, v in BASE.items() if k.startswith(("id_", "hh_contact")) and k != "id_resp"}
    checked = Checked(form, dict(answers, consent_hh=2, hh_result=5))
    assert checked.findings == []
    for group in ("m1", "m2", "m3", "m4", "m7"):
        assert not checked.node(f"/data/{group}").relevant, group


def test_result_code_must_match_consent(form: Any) -> None:
    checked = run(form, hh_result=5)
    assert ("constraint_violated", "hh_result") in {(f.code, f.variable) for f in checked.findings}


@pytest.mark.parametrize(
    ("line", "rel", "ok"),
    [(0, 2, False), (1, 1, False), (1, 2, True)],  # head must be on line 1; no second head
)
def test_one_head_on_line_one(form: Any, line: int, rel: int, ok: bool) -> None:
    roster = [dict(r) for r in ROSTER]
    roster[line]["hl_rel"] = rel
    checked = run(form, hl=roster)
    failed = {f.variable for f in checked.findings if f.code == "constraint_violated"}
    assert ("hl_rel" not in failed) is ok


@pytest.mark.parametrize(("age", "ok"), [(-98, True), (120, True), (121, False), (-1, False), (-99, False)])
def test_age_accepts_0_to_120_or_dont_know(form: Any, age: int, ok: bool) -> None:
    roster = [dict(r) for r in ROSTER]
    roster[3]["hl_age"] = age
    if age == -98:
        roster[3]["hl_adult_q"] = 2
    checked = run(form, hl=roster)
    failed = {f.variable for f in checked.findings if f.code == "constraint_violated"}
    assert ("hl_age" not in failed) is ok


def test_select_multiple_dont_know_is_exclusive(form: Any) -> None:
    checked = run(form, ru_use="1 98", ru_main=None)
    assert ("constraint_violated", "ru_use") in {(f.code, f.variable) for f in checked.findings}


def test_same_roster_member_cannot_have_two_abroad_records(form: Any) -> None:
    roster = [dict(r) for r in ROSTER]
    roster[1].update(hl_abroad_now=1, hl_lfs=None)
    second = dict(ABROAD)  # Rustam again instead of Zarina
    checked = run(form, hl=[_clean(r) for r in roster], ab=[ABROAD, second])
    assert ("constraint_violated", "ab_line") in {(f.code, f.variable) for f in checked.findings}


def test_media_file_lists_every_currency() -> None:
    with (FORMS_DIR / "fx_rates.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    current = {row["iso"]: row for row in rows if row["period"] == "current"}
    currencies = _choice_codes()["currencies"] - {"96"}
    assert set(current) == currencies
    for iso, row in current.items():
        assert row["key"] == iso and float(row["usd_per_unit"]) > 0, iso
        assert row["source"] and re.fullmatch(r"\d{4}-\d{2}", row["date"]), iso
    # The current rows come first: pulldata returns the first row whose iso matches.
    assert [row["period"] for row in rows[: len(current)]] == ["current"] * len(current)


def test_media_file_has_ten_annual_averages_per_currency_each_sourced_or_marked_missing() -> None:
    with (FORMS_DIR / "fx_rates.csv").open(encoding="utf-8", newline="") as handle:
        annual = [row for row in csv.DictReader(handle) if row["period"] != "current"]
    currencies = _choice_codes()["currencies"] - {"96"}
    keys = {row["key"] for row in annual}
    assert keys == {f"{iso}-{year}" for iso in currencies for year in range(2016, 2026)}
    for row in annual:
        assert row["iso"] == "", row["key"]  # so that an iso lookup never lands on an annual row
        if row["usd_per_unit"]:
            assert float(row["usd_per_unit"]) * float(row["lcu_per_usd"]) == pytest.approx(1, rel=1e-4)
            assert row["source"], row["key"]
        else:
            assert "not available" in row["source"] or "NOT FOUND" in row["source"], row["key"]


def test_readme_names_the_proxy_never_as_10c1() -> None:
    text = Path(FORMS_DIR / "README.md").read_text(encoding="utf-8")
    assert "transfer-cost proxy" in text
    assert "it is not SDG 10.c.1" in text
    for row in survey().values():
        for column, value in row.items():
            if column.startswith("label::"):
                assert "10.c.1" not in value


@pytest.mark.java
def test_javarosa_itself_accepts_the_household_and_computes_the_indicators(form: Any, tmp_path: Path) -> None:
    """The reference engine (JavaRosa from ODK Validate, as in ODK Collect) on the complete household."""
    require_tool("javac", "openjdk-17-jdk-headless")
    compiled_xform = compile_form(FORMS_DIR / f"{NAME}.xlsx", validate=False)
    assert compiled_xform.xform is not None
    (tmp_path / "form.xml").write_text(compiled_xform.xform, encoding="utf-8")
    (tmp_path / "fx_rates.csv").write_text(FX_RATES, encoding="utf-8")
    root = instance_xml(form, _clean(dict(BASE)))
    etree.SubElement(etree.SubElement(root, "meta"), "instanceID").text = "uuid:household-1"
    (tmp_path / "instance.xml").write_bytes(etree.tostring(root))
    (nodes,) = javarosa_check(tmp_path / "form.xml", [tmp_path / "instance.xml"], media=tmp_path).values()
    assert not isinstance(nodes, str), nodes
    broken = [
        n for n in nodes if n.relevant and (n.constraint in ("0", "E") or (n.required and n.value == ""))
    ]
    assert broken == []
    values = {re.sub(r"\[1\]", "", n.path): n.value for n in nodes if n.relevant}
    job = "/data/m3/rm/rm_g/rm_job"
    assert float(values[f"{job}/rc_g/rc_total_usd"]) == pytest.approx(612.5)
    assert float(values[f"{job}/rm_rci"]) == pytest.approx(1.225)
    assert float(values["/data/m4/rr/rs/rs_cost_pct"]) == pytest.approx(5.0)
    assert values["/data/m4/rr/rr_brk"] == "3"
    assert values["/data/m2/ab/ab_name"] == "Rustam"
    assert values["/data/m3/rm/rm_g/rm_cur_job"] == "RUB"  # issue 12 item 1: currency of the job country
    assert values["/data/m4/rr/rs/rs_cur_snd"] == "RUB"
    assert (values["/data/m4/rr/ru_dec_wdhs"], values["/data/m4/rr/ru_dec_nf"]) == ("1", "1")  # issue 12 item 3


def test_soft_check_on_a_high_fee_asks_for_confirmation_and_keeps_the_value(form: Any) -> None:
    assert survey()["rs_chk_fee"]["type"] == "acknowledge" and survey()["rs_chk_fee"]["required"] == "yes"
    assert not run(form).node("/data/m4/rr/rs/rs_chk_fee").relevant
    high = run(form, rs_fee=5000, rs_chk_fee="OK")  # 25% of the 20000 RUB sent
    assert high.node("/data/m4/rr/rs/rs_chk_fee").relevant
    assert high.findings == []
    assert float(high.value("/data/m4/rr/rs/rs_cost_pct")) == pytest.approx(29.0)


# ------------------------------------------------------------------------------------------------ v2 items


PRESETS = {  # currency question -> the calculate holding the currency of the country of the job or payment
    "rm_earn1_cur": "rm_cur_job",
    "rm_earn_last1_cur": "rm_cur_job",
    "rm_earn_usual_cur": "rm_cur_job",
    "rc_amt_cur": "rm_cur_job",
    "ab_remit_cur": "ab_cur_dest",
    "ab_rc_total_cur": "ab_cur_dest",
    "ab_fee_usual_cur": "ab_cur_dest",
    "rs_sent_cur": "rs_cur_snd",
}


@pytest.mark.parametrize(("name", "source"), sorted(PRESETS.items()))
def test_money_earned_or_paid_abroad_is_preset_to_the_currency_of_the_job_country(name: str, source: str) -> None:
    """Issue 12 item 1: a TJS preset for pay earned in Russia would overstate E_k about eightfold. The preset is
    a trigger calculation (Collect runs it when the amount is first entered), so its expression is checked here
    and the value of the source calculate below."""
    row = survey()[name]
    assert row["calculation"] == f"if(${{{name}}} = '', ${{{source}}}, ${{{name}}})"
    assert "id_cur_default" not in row["calculation"]
    assert f"${{{source}}}" in row["label::English (en)"] and "(preset" in row["label::English (en)"]
    assert "по умолчанию" in row["label::Russian (ru)"]


def test_the_currency_sources_follow_the_destination_and_the_sender(form: Any) -> None:
    checked = run(form)
    assert checked.value("/data/m3/rm/rm_g/rm_cur_job") == "RUB"
    assert checked.value("/data/m2/ab/ab_cur_dest") == "RUB"
    assert checked.value("/data/m4/rr/rs/rs_cur_snd") == "RUB"  # sent by Rustam, who is in Russia
    assert checked.value("/data/m0/id_cur_default") == "TJS"


@pytest.mark.parametrize(
    ("country", "currency"), [("RUS", "RUB"), ("KAZ", "KZT"), ("DEU", "EUR"), ("KOR", "KRW"), ("SAU", "")]
)
def test_job_currency_follows_the_country_never_the_interview_country(
    form: Any, country: str, currency: str
) -> None:
    checked = run(form, rm=[dict(RETURNEE, rm_ctry=country)])
    assert checked.value("/data/m3/rm/rm_g/rm_cur_job") == currency
    # an unlisted country leaves the currency for the interviewer to choose, it never falls back to TJS
    assert "id_cur_default" not in survey()["rm_earn1_cur"]["calculation"]


@pytest.mark.java
def test_javarosa_computes_the_10_7_1_fallback_period_rates_and_reference_period(form: Any, tmp_path: Path) -> None:
    """JavaRosa differential for issue 12 item 2: total-cost fallback, annual-average rates, 36-month window.
    (JavaRosa's today() is the real date, so the job is chosen to stay inside the window until 2027.)"""
    returnee = dict(
        RETURNEE,
        rc=UNKNOWN_ITEM,
        rc_total_paid=30000,
        rc_total_paid_cur="RUB",
        rc_total_paid_y=2023,  # paid before leaving, at the 2023 average; the job starts in March 2024
    )
    answers = _clean(dict(BASE, rm=[returnee]))
    ours = Checked(form, answers)
    assert ours.findings == []
    nodes = javarosa_run(NAME, form, answers, tmp_path, FX_RATES)
    values = {re.sub(r"\[1\]", "", n.path): n.value for n in nodes if n.relevant}
    relevant = {re.sub(r"\[1\]", "", n.path) for n in nodes if n.relevant}
    for name in ("rc_g/rc_n_dk", "rc_g/rc_total_src", "rm_1071_ref", "rm_1071"):
        assert values[f"{JOB}/{name}"] == ours.value(f"{JOB}/{name}"), name
    for name in ("rc_g/rc_total_usd", "rm_earn/rm_earn1_usd", "rm_rci"):
        assert float(values[f"{JOB}/{name}"]) == pytest.approx(float(ours.value(f"{JOB}/{name}"))), name
    assert float(values[f"{JOB}/rc_g/rc_total_usd"]) == pytest.approx(480)
    assert (f"{JOB}/rc_g/rc_total_paid" in relevant) is ours.node(f"{JOB}/rc_g/rc_total_paid").relevant is True
    assert f"{JOB}/rc_g/rc_tot_brk_a" not in relevant


def _nth(checked: Checked, repeat: str, n: int, rest: str) -> XNode:
    """The node at `rest` below the n-th (1-based) instance of the repeat at the plain path `repeat`."""
    parent_path, name = repeat.rsplit("/", 1)
    instances = [c for c in checked.node(parent_path).children if c.name == name]
    node: XNode | None = instances[n - 1]
    for part in rest.split("/"):
        node = node.child(part) if node is not None else None
    assert node is not None, (repeat, n, rest)
    return node


def _nth_value(checked: Checked, repeat: str, n: int, rest: str) -> str:
    node = _nth(checked, repeat, n, rest)
    return node.string if node.relevant else ""


def _two_women(first_draw: float, second_draw: float) -> list[dict[str, Any]]:
    """Zarina (line 2) and a daughter-in-law Gulnora (line 4, 19, returned from domestic work abroad)."""
    roster = [dict(r) for r in ROSTER]
    roster[1]["hl_wg_rand"] = first_draw
    roster[3] = dict(
        roster[1], hl_name="Gulnora", hl_age=19, hl_rel=4, hl_ever_abroad=1, hl_abr_longest=24, hl_ever_worked=1,
        hl_ret10=1, hl_arr_year=2026, hl_arr_month=2, hl_prev_ctry="RUS", hl_mig_reason=7, hl_res1y=3,
        hl_res1y_ctry="RUS", hl_lfs=2, hl_wg_rand=second_draw,
    )
    return roster


def test_the_woman_is_selected_in_the_household_form(form: Any) -> None:
    """Issue 12 item 5: eligible women come from the roster; the pick is fixed once (a triggered random draw)."""
    checked = run(form)
    assert checked.value("/data/m1/wg_n_elig") == "1"  # Zarina; Madina (10) is too young, Rustam is a man
    assert checked.value("/data/m1/wg_sel_line") == "2"
    assert checked.value("/data/m1/wg_sel_name") == "Zarina"
    assert checked.value("/data/m1/wg_sel_prob") == "1"
    assert checked.node("/data/m1/n_wg_sel").relevant
    # drawn once, when the member's name is entered (a setvalue: Collect never re-draws on recalculation)
    assert (survey()["hl_wg_rand"]["calculation"], survey()["hl_wg_rand"]["trigger"]) == ("random()", "${hl_name}")


@pytest.mark.parametrize(("draws", "line"), [((0.9, 0.2), "2"), ((0.1, 0.7), "4")])
def test_the_highest_draw_among_eligible_women_is_selected(form: Any, draws: tuple[float, float], line: str) -> None:
    roster = _two_women(*draws)
    returnee = {"rm_who": "4: Gulnora", "rm_present": 2, "rm_result": 3}
    checked = run(form, hl=roster, rm=[dict(RETURNEE), returnee])
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert checked.value("/data/m1/wg_n_elig") == "2"
    assert checked.value("/data/m1/wg_sel_line") == line
    assert checked.value("/data/m1/wg_sel_prob") == "0.5"
    # the draw is kept (once): recomputing never re-draws
    assert _nth_value(checked, "/data/m1/hl", 1, "hl_wg_key") == "-1"  # a man is never drawn
    assert float(_nth_value(checked, "/data/m1/hl", 2, "hl_wg_rand")) == draws[0]


@pytest.mark.parametrize(("draws", "route"), [((0.9, 0.2), "2"), ((0.1, 0.7), "1")])
def test_a_female_returnee_in_domestic_work_gets_m6b_only_when_she_is_the_selected_woman(
    form: Any, draws: tuple[float, float], route: str
) -> None:
    roster = _two_women(*draws)
    gulnora = dict(RETURNEE, rm_who="4: Gulnora", rm_dw=1, rm_isco=9111)
    checked = run(form, hl=roster, rm=[dict(RETURNEE), gulnora])
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert _nth_value(checked, "/data/m3/rm", 2, "rm_g/rm_job/rm_to_m6") == "1"
    assert _nth_value(checked, "/data/m3/rm", 2, "rm_g/rm_job/rm_dw_route") == route
    assert _nth(checked, "/data/m3/rm", 2, "rm_g/rm_job/n_rm_m6").relevant is (route == "2")  # DW form, no M6b
    assert _nth(checked, "/data/m3/rm", 2, "rm_g/rm_job/n_rm_m6_sel").relevant is (route == "1")  # women's form


@pytest.mark.java
@pytest.mark.parametrize(("draws", "line", "route"), [((0.9, 0.2), "2", "2"), ((0.1, 0.7), "4", "1")])
def test_javarosa_selects_the_same_woman_and_route(
    form: Any, tmp_path: Path, draws: tuple[float, float], line: str, route: str
) -> None:
    """JavaRosa keeps the stored draws (once) and picks the same line as migkit's evaluator."""
    gulnora = dict(RETURNEE, rm_who="4: Gulnora", rm_dw=1, rm_isco=9111)
    answers = _clean(dict(BASE, hl=_two_women(*draws), rm=[dict(RETURNEE), gulnora]))
    nodes = javarosa_run(NAME, form, answers, tmp_path, FX_RATES)
    values = {n.path: n.value for n in nodes if n.relevant}
    assert values["/data/m1/wg_sel_line"] == line
    assert values["/data/m1/wg_n_elig"] == "2"
    assert values["/data/m3/rm[2]/rm_g/rm_job/rm_dw_route"] == route


@pytest.mark.parametrize(
    ("answers", "resp", "alone", "wdhs", "women"),
    [
        ({}, "1", "0", "1", "1"),  # Zarina (the respondent) with her husband abroad: jointly
        ({"ru_dec_joint": 2, "ru_dec_with": None}, "1", "1", "1", "1"),  # she alone
        ({"ru_dec_main": "1: Rustam", "ru_dec_joint": 2, "ru_dec_with": None}, "0", "0", "0", "0"),
        ({"ru_dec_joint": 2, "ru_dec_with": None, "ru_dec_out": 1}, "1", "0", "1", "1"),  # with an outsider
        ({"rr_resp": "3: Firuz", "rr_receiver": "3: Firuz"}, "0", "0", "", "1"),  # a man answers: no DHS value
    ],
)
def test_decision_makers_are_roster_lines_and_the_indicator_is_derived(
    form: Any, answers: dict[str, Any], resp: str, alone: str, wdhs: str, women: str
) -> None:
    """Issue 12 item 3: sex and relationship of decision-makers come from the roster, not from codes written
    from a woman's point of view; ru_dec_wdhs is the DHS-style 'woman decides alone or jointly'."""
    checked = run(form, **answers)
    assert [(f.code, f.variable) for f in checked.findings] == []
    m4 = "/data/m4/rr"
    assert checked.value(f"{m4}/ru_dec_resp") == resp
    assert checked.value(f"{m4}/ru_dec_alone") == alone
    assert checked.value(f"{m4}/ru_dec_wdhs") == wdhs
    assert checked.value(f"{m4}/ru_dec_nf") == women
    assert "DHS" in survey()["ru_dec_wdhs"]["hint::English (en)"]


def test_the_joint_decision_maker_cannot_be_the_main_one(form: Any) -> None:
    checked = run(form, ru_dec_with="2: Zarina")
    assert any(f.variable == "ru_dec_with" for f in checked.findings)


@pytest.mark.parametrize(
    ("answers", "bracket"),
    [
        ({"rr_brk_a": 1, "rr_brk_b": 1, "rr_brk_d": 1}, "5"),  # more than USD 5000 a year
        ({"rr_brk_a": 1, "rr_brk_b": 1, "rr_brk_d": 2}, "4"),  # USD 2000-5000
        ({"rr_brk_a": 1, "rr_brk_b": 2}, "3"),
        ({"rr_brk_a": 2, "rr_brk_b": None, "rr_brk_c": 2}, "1"),
    ],
)
def test_annual_remittance_brackets_reach_above_usd_2000(
    form: Any, answers: dict[str, int | None], bracket: str
) -> None:
    """Issue 12 item 10: most annual totals fall above USD 2000, so the top bracket is split at USD 5000."""
    checked = run(form, **answers)
    assert checked.findings == []
    assert checked.value("/data/m4/rr/rr_brk") == bracket
    assert checked.value("/data/m0/id_brk_top") == "50000"  # USD 5000 in somoni at 0.1


def test_russian_marital_code_2_is_not_read_as_cohabitation() -> None:
    with (FORMS_DIR / "src" / "lists" / "marital.csv").open(encoding="utf-8", newline="") as handle:
        labels = {r["name"]: r["label::Russian (ru)"] for r in csv.DictReader(handle)}
    assert "гражданск" not in labels["2"]  # "гражданский брак" is colloquial Russian for cohabitation
    assert "зарегистрированном" in labels["2"] and "незарегистрированном" in labels["3"]
    assert "ДМС" in _choice_labels_ru("rc_items")["6"]


def _choice_labels_ru(list_name: str) -> dict[str, str]:
    with (FORMS_DIR / "src" / NAME / "choices.csv").open(encoding="utf-8", newline="") as handle:
        return {r["name"]: r["label::Russian (ru)"] for r in csv.DictReader(handle) if r["list_name"] == list_name}


# ------------------------------------------------------------------------------- issue 12 item 8: roster and labour

M1 = "/data/m1"


def _member(name: str, **answers: Any) -> dict[str, Any]:
    """An adult son or daughter, born here, at home, with the labour answers given (Zarina's row otherwise)."""
    row = dict(ROSTER[1], hl_name=name, hl_rel=3, hl_marital=1, hl_age=30, hl_lfs=None, hl_lfs_abs=None,
               hl_lfs_look=None, hl_lfs_avail=None)
    row.update(answers)
    return row


# (answers, hl_lfs_emp, hl_lf_status; which of abs3 / look / avail are asked)
LABOUR = [
    ({"hl_lfs": 1}, "1", "1", ()),
    ({"hl_lfs": 2, "hl_lfs_abs": 1, "hl_lfs_absr": 2}, "1", "1", ()),  # sick leave: employed whatever its length
    ({"hl_lfs": 2, "hl_lfs_abs": 1, "hl_lfs_absr": 7, "hl_lfs_abs3": 1}, "1", "1", ("abs3",)),  # lay-off <= 3 months
    (
        {"hl_lfs": 2, "hl_lfs_abs": 1, "hl_lfs_absr": 6, "hl_lfs_abs3": 2, "hl_lfs_look": 1, "hl_lfs_avail": 1},
        "0", "2", ("abs3", "look", "avail"),
    ),  # off-season longer than 3 months, looking and available: unemployed
    ({"hl_lfs": 2, "hl_lfs_abs": 2, "hl_lfs_look": 2, "hl_lfs_avail": 1}, "0", "2", ("look", "avail")),  # starter
    ({"hl_lfs": 2, "hl_lfs_abs": 2, "hl_lfs_look": 1, "hl_lfs_avail": 2}, "0", "3", ("look", "avail")),
    ({"hl_lfs": 2, "hl_lfs_abs": 2, "hl_lfs_look": 3, "hl_lfs_avail": 1}, "0", "3", ("look", "avail")),
    ({"hl_lfs": 2, "hl_lfs_abs": 2, "hl_lfs_look": 98, "hl_lfs_avail": 1}, "0", "", ("look", "avail")),
    ({"hl_lfs": 98}, "", "", ()),
]


@pytest.mark.parametrize(("answers", "employed", "status", "asked"), LABOUR)
def test_labour_force_status_follows_the_19th_icls(
    form: Any, answers: dict[str, int], employed: str, status: str, asked: tuple[str, ...]
) -> None:
    """Employed (1 hour, or temporarily absent: leave, illness, maternity/paternity, job training, or any other
    absence of at most 3 months), unemployed (looked in 4 weeks or starts within 3 months, and available within
    2 weeks), otherwise outside the labour force."""
    roster = [dict(r) for r in ROSTER]
    roster[1] = _member("Zarina", hl_rel=2, hl_marital=2, hl_age=40, **answers)
    checked = run(form, hl=roster)
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_lfs_emp") == employed
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_lf_status") == status
    for short in ("abs3", "look", "avail"):
        assert _nth(checked, f"{M1}/hl", 2, f"hl_lfs_{short}").relevant is (short in asked), short
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_imw") == ("0" if status else "")  # born here, a citizen
    assert not _nth(checked, f"{M1}/hl", 1, "hl_lfs").relevant  # the head is abroad: no labour questions


def _immigrant(**answers: Any) -> dict[str, Any]:
    """Zarina, born in Afghanistan, came in March 2020."""
    defaults = {"hl_cob": "AFG", "hl_arr_year": 2020, "hl_arr_month": 3, "hl_prev_ctry": "AFG", "hl_mig_reason": 6}
    return {**ROSTER[1], **defaults, **answers}


@pytest.mark.parametrize(("lfs", "imw"), [({"hl_lfs": 1}, "1"), ({"hl_lfs_avail": 2}, "0")])
def test_an_immigrant_in_the_labour_force_is_an_international_migrant_worker(
    form: Any, lfs: dict[str, int], imw: str
) -> None:
    """20th ICLS (2018): international migrant workers are international migrants in the labour force."""
    roster = [dict(r) for r in ROSTER]
    roster[1] = _immigrant(**dict({"hl_lfs": 2, "hl_lfs_abs": 2, "hl_lfs_look": 1, "hl_lfs_avail": 1}, **lfs))
    if lfs == {"hl_lfs": 1}:
        roster[1].update(hl_lfs_abs=None, hl_lfs_look=None, hl_lfs_avail=None)
    checked = run(form, hl=roster)
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_immig") == "1"
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_imw") == imw
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_arr_dur") == str((2026 - 2020) * 12 + 11 - 3)


@pytest.mark.parametrize(
    ("longest", "worked", "lived", "ret_worker"),
    [(20, 1, "1", "1"), (5, 1, "0", "1"), (20, 2, "1", "0"), (-98, 1, "", "1")],
)
def test_ever_lived_abroad_and_ever_worked_abroad_are_separate(
    form: Any, longest: int, worked: int, lived: str, ret_worker: str
) -> None:
    """hl_ever_abroad (lived or worked 3 months or more) is split: lived = a stay of 12 months or more (UN 2021),
    worked = return migrant worker (20th ICLS 2018)."""
    roster = [dict(r) for r in ROSTER]
    roster[2] = dict(roster[2], hl_abr_longest=longest, hl_ever_worked=worked)
    checked = run(form, hl=roster)
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert _nth_value(checked, f"{M1}/hl", 3, "hl_ever_lived") == lived
    assert _nth_value(checked, f"{M1}/hl", 3, "hl_ret_worker") == ret_worker
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_ever_lived") == "0"  # never abroad 3 months
    assert _nth_value(checked, f"{M1}/hl", 4, "hl_ever_lived") == ""  # a child: not asked


@pytest.mark.parametrize(("longest", "ok"), [(3, True), (252, True), (253, False), (2, False), (-99, True)])
def test_longest_stay_abroad_is_3_months_to_the_age(form: Any, longest: int, ok: bool) -> None:
    roster = [dict(r) for r in ROSTER]
    roster[2] = dict(roster[2], hl_abr_longest=longest)  # Firuz is 20: at most 21 years of months
    checked = run(form, hl=roster)
    assert any(f.variable == "hl_abr_longest" for f in checked.findings) is not ok


@pytest.mark.parametrize(("away", "resid", "n_resid"), [(1, "0", "3"), (2, "0", "3"), (3, "1", "4"), (98, "1", "4")])
def test_members_abroad_12_months_or_more_are_not_usual_residents(
    form: Any, away: int, resid: str, n_resid: str
) -> None:
    """UN 2021 usual-residence rule: away, or intending to be away, 12 months or more."""
    roster = [dict(r) for r in ROSTER]
    roster[0] = dict(roster[0], hl_away12=away)
    checked = run(form, hl=roster)
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert _nth_value(checked, f"{M1}/hl", 1, "hl_resid") == resid
    assert checked.value(f"{M1}/hh_n_resid") == n_resid
    assert _nth(checked, f"{M1}/hl", 2, "hl_away12").relevant is False  # asked only of members abroad


@pytest.mark.parametrize(
    ("year", "month", "ok"), [(2026, 11, True), (2026, 12, False), (2025, 12, True), (2026, -98, True)]
)
def test_month_of_arrival_is_not_after_the_interview(form: Any, year: int, month: int, ok: bool) -> None:
    roster = [dict(r) for r in ROSTER]
    roster[2] = dict(roster[2], hl_arr_year=year, hl_arr_month=month)
    checked = run(form, hl=roster)
    assert any(f.variable == "hl_arr_month" for f in checked.findings) is not ok
    months_since = "" if month < 0 else str((2026 - year) * 12 + 11 - month)
    assert _nth_value(checked, f"{M1}/hl", 3, "hl_arr_dur") == months_since


def test_residence_one_year_ago_gives_the_arrivals_of_the_last_12_months(form: Any) -> None:
    """UN 2021 core topic: country of usual residence one year before; not asked of babies."""
    roster = [dict(r) for r in ROSTER]
    roster[2] = dict(roster[2], hl_res1y=3, hl_res1y_ctry="RUS")
    roster[3] = dict(roster[3], hl_age=0, hl_res1y=None)
    checked = run(form, hl=roster)
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert [_nth_value(checked, f"{M1}/hl", n, "hl_mig1y") for n in (1, 2, 3, 4)] == ["0", "0", "1", ""]
    assert _nth(checked, f"{M1}/hl", 4, "hl_res1y").relevant is False
    assert checked.value(f"{M0}/id_ym1y") == "11.2025"
    bad = run(form, hl=[dict(r) for r in ROSTER[:2]] + [dict(roster[2], hl_res1y_ctry="TJK")] + [ROSTER[3]])
    assert any(f.variable == "hl_res1y_ctry" for f in bad.findings)  # abroad is another country


M0 = "/data/m0"


def test_stateless_is_a_citizenship_code_only() -> None:
    """A 'stateless' code (ICAO XXA) in the citizenship question; every other country question filters it out."""
    with (FORMS_DIR / "src" / "lists" / "countries.csv").open(encoding="utf-8", newline="") as handle:
        codes = {r["name"]: r for r in csv.DictReader(handle)}
    assert codes["XXA"]["label::English (en)"].startswith("Stateless") and codes["XXA"]["iso_num"] == "900"
    for form_name in ("household", "women", "domestic_workers"):
        with (FORMS_DIR / "src" / form_name / "survey.csv").open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["type"] == "select_one countries" and row["name"] not in ("hl_cit", "dw_cit", "id_country"):
                    assert row["choice_filter"] == "name != 'XXA'", (form_name, row["name"])


def test_a_stateless_member_is_not_asked_a_second_citizenship_and_counts_as_non_citizen(form: Any) -> None:
    roster = [dict(r) for r in ROSTER]
    roster[1] = _immigrant(hl_cob="TJK", hl_cit="XXA", hl_dual=None, hl_lfs_abs=2, hl_lfs_look=3, hl_lfs_avail=2)
    checked = run(form, hl=roster)
    assert [(f.code, f.variable) for f in checked.findings] == []
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_stateless") == "1"
    assert _nth(checked, f"{M1}/hl", 2, "hl_dual").relevant is False
    assert _nth_value(checked, f"{M1}/hl", 2, "hl_immig") == "1"  # not a citizen: foreign population


def _children() -> list[dict[str, Any]]:
    """Madina (mother Zarina at home, father Rustam abroad), Bobur (mother abroad outside the household, father
    deceased), Nilufar (mother Zarina, father elsewhere in the country), Sitora (mother listed after her)."""
    base = dict(ROSTER[3], hl_mother_st=None, hl_mother=None, hl_father_st=None, hl_father=None)
    return [
        dict(base, hl_name="Madina", hl_mother_st=1, hl_mother="2: Zarina", hl_father_st=1, hl_father="1: Rustam"),
        dict(base, hl_name="Bobur", hl_sex=1, hl_mother_st=3, hl_father_st=4),
        dict(base, hl_name="Nilufar", hl_mother_st=1, hl_mother="2: Zarina", hl_father_st=2),
        dict(base, hl_name="Sitora", hl_age=2, hl_mother_st=1, hl_mother="8: Gulnora", hl_father_st=98),
    ]


CHILD_VALUES = [  # line: (mother line, mother abroad, father abroad, left behind)
    (4, ("2", "0", "1", "1")),
    (5, ("", "1", "0", "1")),
    (6, ("2", "0", "0", "0")),
    (7, ("8", "1", "", "1")),
]


def _household_with_children() -> dict[str, Any]:
    gulnora = dict(ROSTER[1], hl_name="Gulnora", hl_rel=4, hl_age=22, hl_abroad_now=1, hl_away12=3, hl_lfs=None,
                   hl_lfs_abs=None, hl_lfs_look=None, hl_lfs_avail=None, hl_res1y=3, hl_res1y_ctry="RUS")
    roster = [dict(r) for r in ROSTER[:3]] + _children() + [gulnora]
    abroad_gulnora = dict(ABROAD, ab_line="8: Gulnora", ab_sex=2, ab_age=22, ab_rel=4, ab_remit12=2)
    for key in ("ab_remit_n", "ab_remit_amt", "ab_remit_cur", "ab_channel", "ab_fee_usual", "ab_inkind_val"):
        abroad_gulnora.pop(key)
    return _clean(dict(BASE, hh_size=len(roster), hl=roster, ab=[dict(ABROAD), abroad_gulnora]))


def test_parents_are_roster_lines_and_children_left_behind_are_derived(form: Any) -> None:
    """MICS-style mother's and father's lines (or 'elsewhere', 'abroad', 'deceased') for members under 18; a
    child in the country with a parent abroad is a child left behind."""
    checked = Checked(form, _household_with_children())
    assert [(f.code, f.variable) for f in checked.findings] == []
    for line, (mother, mother_abr, father_abr, left_behind) in CHILD_VALUES:
        got = tuple(_nth_value(checked, f"{M1}/hl", line, n) for n in ("hl_mother_line", "hl_mother_abr",
                                                                        "hl_father_abr", "hl_lb_child"))
        assert got == (mother, mother_abr, father_abr, left_behind), line
    assert checked.value(f"{M1}/hh_n_lb_child") == "3"
    assert not _nth(checked, f"{M1}/hl", 2, "hl_mother_st").relevant  # adults are not asked


@pytest.mark.parametrize(("pick", "ok"), [("2: Zarina", True), ("4: Madina", False)])
def test_a_child_cannot_be_her_own_mother(form: Any, pick: str, ok: bool) -> None:
    answers = _household_with_children()
    answers["hl"][3]["hl_mother"] = pick
    checked = Checked(form, answers)
    assert any(f.variable == "hl_mother" for f in checked.findings) is not ok


def test_mothers_are_picked_among_women_and_fathers_among_men() -> None:
    """The parent picks are filtered on the picked row's sex. Neither migkit's check of repeat-sourced answers
    (it skips selects inside the repeat they pick from: their itemset is relative) nor the JavaRosa driver's
    choices flag (it does not evaluate repeat-sourced itemsets) checks the filter at run time, so it is checked
    here as written."""
    assert survey()["hl_mother"]["choice_filter"] == "${hl_sex} = '2'"
    assert survey()["hl_father"]["choice_filter"] == "${hl_sex} = '1'"
    assert {survey()[p]["constraint"] for p in ("hl_mother", "hl_father")} == {". != ${hl_pick}"}


@pytest.mark.java
def test_javarosa_derives_the_same_labour_status_residence_and_children_left_behind(
    form: Any, tmp_path: Path
) -> None:
    """JavaRosa differential for item 8: one household whose members cover the labour-force paths, the
    12-month residence rule, the lived/worked split and the children's parent lines."""
    answers = _household_with_children()
    extra = [_member(f"M{i}", **case[0]) for i, case in enumerate(LABOUR)]
    answers["hl"] += _clean({"x": extra})["x"]
    answers["hh_size"] = len(answers["hl"])
    ours = Checked(form, answers)
    assert [(f.code, f.variable) for f in ours.findings] == []
    nodes = javarosa_run(NAME, form, answers, tmp_path, FX_RATES)
    theirs = {n.path: (n.relevant, n.value if n.relevant else "") for n in nodes}
    names = ("hl_resid", "hl_ever_lived", "hl_ret_worker", "hl_mig1y", "hl_lfs_emp", "hl_lf_status", "hl_imw",
             "hl_lfs_abs3", "hl_lfs_look", "hl_lfs_avail", "hl_mother_line", "hl_mother_abr", "hl_father_abr",
             "hl_lb_child", "hl_stateless")
    compared = 0
    for line in range(1, len(answers["hl"]) + 1):
        for name in names:
            node = _nth(ours, f"{M1}/hl", line, name)
            mine = (node.relevant, node.string if node.relevant else "")
            assert theirs[f"{M1}/hl[{line}]/{name}"] == mine, (line, name)
            compared += 1
    for total in ("hh_n_resid", "hh_n_lb_child"):
        assert theirs[f"{M1}/{total}"] == (True, ours.value(f"{M1}/{total}"))
    statuses = [_nth_value(ours, f"{M1}/hl", 9 + i, "hl_lf_status") for i in range(len(LABOUR))]
    assert statuses == [case[2] for case in LABOUR] and compared > 200
