"""The domestic workers' questionnaire (forms/domestic_workers.xlsx, ncamig_domestic): build, lint, languages,
skip logic and the indicator calculations (forced labour, SDG 10.7.1, transfer cost), checked with migkit's
validator.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.test_template_household import javarosa_run
from tests.test_template_women import (
    CONSENT_CODES,
    FL_COERC,
    FL_INVOL,
    FL_ITEMS,
    FX_RATES,
    LANGUAGES,
    PRIVACY_CODES,
    Template,
    TemplateChecks,
    check,
    fx_media,
    sheet_rows,
    survey_csv,
    template,
)

NAME = "domestic_workers"

# A Tajik woman back from Russia, where she was a live-in nanny employed by a family; she paid recruitment
# costs, sent money home and answers M6b. Rates in the test media: RUB 0.0125, TJS 0.1 USD per unit.
BASE: dict[str, Any] = dict(
    id_country="TJK",
    id_stratum="2",
    id_psu="17",
    id_resp_no=4,
    id_sample=3,
    id_coupon="A-0042",
    dw_netsize=12,
    dw_coupons=3,
    id_int="102",
    id_sup="12",
    id_lang="5",
    dw_consent=1,
    dw_age=29,
    dw_privacy=2,
    dw_scr=1,
    dw_scr_abroad=1,
    dw_scr_12m=1,
    dw_scr_now=2,
    dw_ctry="RUS",
    dw_isco=5311,
    dw_type=1,
    dw_sex=2,
    dw_cob="TJK",
    dw_cit="TJK",
    dw_marital=2,
    dw_educ=4,
    dw_children=2,
    dw_start_y=2024,
    dw_current=2,
    dw_end_y=2026,
    dw_livein=1,
    dw_tasks="3 1",
    dw_hours_day=14,
    dw_days_wk=6,
    dw_rest24=2,
    dw_leave_out=2,
    dw_contract=1,
    dw_contract_lang=2,
    dw_contract_prior=2,
    dw_pay_amt=48000,
    dw_pay_cur="RUB",
    dw_pay_freq=4,
    dw_pay_cash=1,
    dw_docs_kept=2,
    dw_healthins=2,
    dw_paid_leave=2,
    dw_minwage=1,
    dw_socins=2,
    fl_int_samesex=1,
    fl_consent=1,
    fl_privacy=1,
    **dict.fromkeys(FL_ITEMS, 2),
    fl_interrupt=2,
    rm_left_y=2024,
    rm_emp=1,
    rm_job1_y=2024,
    rm_job1_m=2,
    rm_joboffer=2,
    rm_channel=3,
    rc_items="1 13 2",
    rc=[
        {"rc_amt": 20000, "rc_amt_cur": "RUB", "rc_paid_ym": "2024-01-01", "rc_payee": 6, "rc_deduct": 1},
        {"rc_amt": 30000, "rc_amt_cur": "RUB", "rc_paid_ym": "2024-01-01", "rc_payee": 5, "rc_deduct": 2},
        {"rc_amt": 500, "rc_amt_cur": "TJS", "rc_paid_ym": "2024-01-01", "rc_payee": 2, "rc_deduct": 2},
    ],
    rc_finance="3",
    rc_interest=0,
    rm_earn1=40000,
    rm_earn1_cur="RUB",
    rm_earn1_ym="2024-03-01",
    rm_earn_last1=48000,
    rm_earn_last1_cur="RUB",
    rm_earn_last1_ym="2025-06-01",
    rm_earn_usual=45000,
    rm_earn_usual_cur="RUB",
    rs_sent=1,
    rs_freq=2,
    rs_amt=16000,
    rs_amt_cur="RUB",
    rs_channel=3,
    rs_fee=160,
    rs_fee_cur="RUB",
    rs_dm=2,
    dw_result=1,
)


@pytest.fixture(scope="module")
def dw(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return template(NAME, fx_media(tmp_path_factory))


class TestDomesticTemplate(TemplateChecks):
    name = NAME
    form_id = "ncamig_domestic"
    instance_name_parts = ("id_uid",)


def _block(rows: list[dict[str, str]], first: str, last: str) -> list[dict[str, str]]:
    names = [r["name"] for r in rows]
    # Compare filled cells only: each form's CSV keeps just the columns it uses.
    return [{k: v for k, v in r.items() if v} for r in rows[names.index(first) : names.index(last) + 1]]


@pytest.mark.parametrize(
    ("first", "last"), [("dw_year", "dw_elig"), ("dw", "dw_socins"), ("fl_mod", "fl_referral")]
)
def test_screening_m6_and_m6b_are_the_same_in_both_forms(first: str, last: str) -> None:
    # The same variables feed the same indicators whichever form collected them.
    women_rows, dw_rows = survey_csv("women"), survey_csv(NAME)
    assert _block(women_rows, first, last) == _block(dw_rows, first, last)


def test_complete_interview_obeys_the_form(dw: Template) -> None:
    checked = check(dw, BASE)
    assert checked.findings == ()
    assert checked.value("id_uid") == "TJK-17-4"
    assert checked.relevant("dw_netsize") and not checked.relevant(
        "id_selprob"
    )  # referral sample: degree, no p
    assert (checked.value("dw_migrant"), checked.value("dw_mig_job"), checked.value("rm_ctry")) == (
        "0",
        "1",
        "RUS",
    )
    assert checked.value("rm_1071") == "1"
    assert [c.string for c in checked.root.iter() if c.name == "rc_item"] == ["1", "13", "2"]
    # C_k = (20,000 + 30,000) RUB x 0.0125 + 500 TJS x 0.1 = 625 + 50 USD;
    # E_k = 40,000 RUB x 0.0125 = 500 USD.
    assert checked.value("rc_total_usd") == "675"
    assert checked.value("rm_earn1_usd") == "500"
    assert checked.value("rm_rci") == "1.35"
    assert (checked.value("rs_amt_usd"), checked.value("rs_fee_usd")) == ("200", "2")
    assert (checked.value("rs_fee_pct"), checked.value("rs_le200")) == ("1", "1")
    assert checked.value("fl_flag") == "0"


@pytest.mark.parametrize(
    ("changes", "total", "rci"),
    [
        (
            {"rc": [{"rc_amt": -98, "rc_payee": 98, "rc_deduct": 98}, *BASE["rc"][1:]], "rc_total_paid": -99},
            "",
            "",
        ),  # one amount unknown and the total refused
        (
            {
                "rc": [{"rc_amt": -98, "rc_payee": 98, "rc_deduct": 98}, *BASE["rc"][1:]],
                "rc_total_paid": 50000,
                "rc_total_paid_cur": "RUB",
                "rc_total_paid_y": 2023,
            },
            "800",
            "1.6",
        ),  # one amount unknown: the reported total at the 2023 average (50,000 x 0.016) replaces the sum
        (
            {"rc_items": "0", "rc": [], "rc_finance": None, "rc_interest": None},
            "0",
            "0",
        ),  # nothing paid: C_k = 0
        ({"rc_items": "98", "rc": [], "rc_total_paid": -98, "rc_tot_brk_a": 2, "rc_tot_brk_c": 1}, "", ""),
        ({"rm_earn1": -98, "rm_earn1_cur": None, "rm_earn1_ym": None, "rm_earn1_brk": 2}, "675", ""),  # first-month pay unknown
    ],
)
def test_recruitment_cost_indicator(dw: Template, changes: dict[str, Any], total: str, rci: str) -> None:
    answers = {k: v for k, v in dict(BASE, **changes).items() if v is not None}
    checked = check(dw, answers)
    assert checked.findings == ()
    assert (checked.value("rc_total_usd"), checked.value("rm_rci")) == (total, rci)


COST_BLOCK = ("rc_items", "rc", "rc_finance", "rc_interest")


@pytest.mark.parametrize(
    ("changes", "costs_asked", "earnings_asked"),
    [
        ({}, True, True),
        (
            {"rm_left_y": 2020, "rm_job1_y": 2021, "rm_job1_m": 4},
            False,
            True,
        ),  # first job started > 3 years ago: outside 10.7.1
        ({"rm_job1_y": -98, "rm_job1_m": None}, False, True),  # start year unknown: the window cannot be checked
        ({"rm_emp": 2}, False, False),  # own-account workers are outside the 10.7.1 population
    ],
)
def test_cost_items_only_for_the_10_7_1_population(
    dw: Template, changes: dict[str, Any], costs_asked: bool, earnings_asked: bool
) -> None:
    answers = {k: v for k, v in dict(BASE, **changes).items() if v is not None}
    if not costs_asked:
        answers = {k: v for k, v in answers.items() if not k.startswith(COST_BLOCK)}
    if not earnings_asked:
        answers = {k: v for k, v in answers.items() if not k.startswith("rm_earn")}
    checked = check(dw, answers)
    assert checked.findings == ()
    assert checked.relevant("rc_g") is costs_asked
    assert checked.relevant("rm_earn") is earnings_asked
    assert (checked.value("rm_rci") != "") is costs_asked


@pytest.mark.parametrize(
    ("ours", "household"), [("rc_item", "rc_items"), ("rc_payee", "payee"), ("rc_fin", "finance")]
)
def test_cost_lists_are_the_household_lists(ours: str, household: str) -> None:
    # Same codes and texts as household M3, so indicator code pools rc_item, rc_payee, rc_finance.
    def rows(form: str, list_name: str) -> list[tuple[str, ...]]:
        columns = ("name", *(f"label::{language}" for language in LANGUAGES))
        return [
            tuple(r[c] for c in columns) for r in sheet_rows(form, "choices") if r["list_name"] == list_name
        ]

    assert rows(NAME, ours) == rows("household", household) != []


@pytest.mark.parametrize(
    ("dw_consent", "dw_privacy", "fl_consent", "fl_privacy", "runs"),
    [
        (*combo, combo[0] == 1 and combo[1] in (1, 2) and combo[2] == 1 and combo[3] == 1)
        for combo in itertools.product(CONSENT_CODES, PRIVACY_CODES, CONSENT_CODES, PRIVACY_CODES)
    ],
)
def test_m6b_runs_only_with_both_consents_and_privacy(
    dw: Template, dw_consent: int, dw_privacy: int, fl_consent: int, fl_privacy: int | None, runs: bool
) -> None:
    answers = dict(
        BASE,
        dw_consent=dw_consent,
        dw_privacy=dw_privacy,
        fl_consent=fl_consent,
        fl_privacy=fl_privacy,
        fl_hit=1,
    )
    checked = check(dw, {k: v for k, v in answers.items() if v is not None})
    assert checked.relevant("fl") is runs
    assert ("nonrelevant_answered" in checked.codes("fl_hit")) is not runs


@pytest.mark.parametrize(
    ("yes", "docs_kept", "flag"),
    [
        ((), 1, "0"),
        (("fl_deceived",), 1, "1"),
        (("fl_deceived",), 2, "0"),
        (FL_INVOL[1:2] + FL_COERC[-1:], 3, "1"),
    ],
)
def test_forced_labour_flag(dw: Template, yes: tuple[str, ...], docs_kept: int, flag: str) -> None:
    checked = check(dw, dict(BASE, dw_docs_kept=docs_kept, **dict.fromkeys(yes, 1)))
    assert checked.findings == ()
    assert checked.value("fl_flag") == flag


def test_screened_out_respondent_gets_no_modules(dw: Template) -> None:
    keep = {
        k: v for k, v in BASE.items() if k.startswith("id_") or k in ("dw_consent", "dw_age", "dw_privacy")
    }
    checked = check(dw, dict(keep, dw_scr=1, dw_scr_abroad=2, dw_scr_12m=2, dw_result=7))
    assert checked.findings == ()
    assert checked.relevant("dw_not_dw")
    assert not any(checked.relevant(group) for group in ("dd", "dw", "rm", "rs", "fl_mod"))


def test_under_15_is_not_interviewed(dw: Template) -> None:
    keep = {k: v for k, v in BASE.items() if k.startswith("id_")}
    checked = check(dw, dict(keep, dw_consent=1, dw_age=14, dw_result=7))
    assert checked.findings == ()
    assert (
        checked.relevant("dw_age_out") and not checked.relevant("dw_privacy") and not checked.relevant("dwq")
    )


@pytest.mark.parametrize(
    ("changes", "migrant_job"),
    [
        ({}, True),  # returnee: the job was abroad
        ({"dw_scr_abroad": 2, "dw_ctry": None, "dw_contract_prior": None}, False),  # local worker at home
        (
            {
                "dw_scr_abroad": 2,
                "dw_ctry": None,
                "dw_cob": "UZB",
                "dw_cit": "UZB",
                "dw_arr_y": 2022,
            },
            True,
        ),  # immigrant working in this country
    ],
)
def test_cost_and_remittance_blocks_follow_migrant_jobs(
    dw: Template, changes: dict[str, Any], migrant_job: bool
) -> None:
    answers = {k: v for k, v in dict(BASE, **changes).items() if v is not None}
    if not migrant_job:
        answers = {k: v for k, v in answers.items() if not k.startswith(("rm_", "rc", "rs_"))}
    checked = check(dw, answers)
    # C189 Art. 8 (offer or contract before crossing the border) follows the migrant job, immigrants included.
    assert checked.relevant("dw_contract_prior") is migrant_job
    assert checked.findings == ()
    assert checked.relevant("rm") is migrant_job and checked.relevant("rs") is migrant_job


def test_fee_above_20_percent_shows_a_soft_check(dw: Template) -> None:
    checked = check(dw, dict(BASE, rs_fee=4000))
    assert checked.findings == ()  # a note, not a constraint
    assert checked.value("rs_fee_pct") == "25"
    assert checked.relevant("rs_fee_chk")


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [("dw_pay_amt", -98, True), ("dw_pay_amt", -5, False), ("rs_amt", -99, True), ("dw_arr_y", 1990, False)],
)
def test_amounts_accept_only_the_dk_and_refused_sentinels(
    dw: Template, field: str, value: int, ok: bool
) -> None:
    answers = dict(BASE, **{field: value})
    if field == "dw_pay_amt":
        answers = {k: v for k, v in answers.items() if k not in ("dw_pay_cur", "dw_pay_freq")}
    if field == "rs_amt":
        answers.pop("rs_amt_cur")
    if field == "dw_arr_y":  # asked only of immigrants; born 1997, so arriving in 1990 is impossible
        answers.update(dw_cob="UZB", dw_cit="UZB", dw_scr_abroad=2)
        answers.pop("dw_ctry")
    checked = check(dw, answers)
    assert ("constraint_violated" in checked.codes(field)) is not ok


@pytest.mark.parametrize(
    ("changes", "asked", "low", "high"),
    [
        (
            {"rm_earn1": -98, "rm_earn1_cur": None, "rm_earn1_ym": None, "rm_earn1_brk": 3},
            True,
            "20000",
            "40000",
        ),  # USD 250/500 in RUB
        ({"rm_earn1": -99, "rm_earn1_cur": None, "rm_earn1_ym": None}, False, "20000", "40000"),  # refused
        ({"rm_earn1": 30000}, False, "20000", "40000"),
        (  # a job in Kazakhstan: the bracket is in tenge
            {"dw_ctry": "KAZ", "rm_earn1": -98, "rm_earn1_cur": None, "rm_earn1_ym": None, "rm_earn1_brk": 1},
            True,
            "125000",
            "250000",
        ),
    ],
)
def test_unfolding_bracket_for_unknown_first_month_pay(
    dw: Template, changes: dict[str, Any], asked: bool, low: str, high: str
) -> None:
    checked = check(dw, {k: v for k, v in dict(BASE, **changes).items() if v is not None})
    assert checked.findings == ()
    assert checked.relevant("rm_earn1_brk") is asked
    assert (checked.value("dw_brk_lo"), checked.value("dw_brk_hi")) == (low, high)


def test_bracket_is_required_when_the_amount_is_unknown(dw: Template) -> None:
    answers = {k: v for k, v in BASE.items() if k not in ("dw_pay_cur", "dw_pay_freq")}
    checked = check(dw, dict(answers, dw_pay_amt=-98))
    assert checked.codes() == ["required_missing"]
    assert checked.findings[0].variable == "dw_pay_brk"


@pytest.mark.parametrize(
    ("age", "guardian", "assent", "asked"),
    [
        (29, None, None, True),  # adults: own consent only
        (16, 1, 1, True),  # 15-17: guardian's permission and the young person's assent
        (16, 1, 2, False),
        (16, 2, None, False),
        (17, None, None, False),  # permission not recorded: the module is not asked
    ],
)
def test_m6b_for_15_to_17_needs_guardian_permission_and_assent(
    dw: Template, age: int, guardian: int | None, assent: int | None, asked: bool
) -> None:
    """Issue 12 item 6 (UNICEF/WHO practice for adolescents): permission of a parent or guardian, never the
    employer, and the young person's own assent."""
    answers = dict(BASE, dw_age=age, fl_guardian=guardian, fl_assent=assent)
    if not asked:
        answers = {k: v for k, v in answers.items() if k not in (*FL_ITEMS, "fl_privacy", "fl_interrupt")}
    checked = check(dw, {k: v for k, v in answers.items() if v is not None})
    assert checked.relevant("fl") is asked
    assert checked.relevant("fl_guardian") is (15 <= age <= 17)
    missing = [f.variable for f in checked.findings if f.code == "required_missing"]
    assert missing == ([] if guardian is not None or age > 17 else ["fl_guardian"])
    assert checked.relevant("fl_minor_stop") is (guardian == 2 or assent == 2)


@pytest.mark.java
@pytest.mark.parametrize(
    ("age", "yes", "flag"),
    [(16, ("fl_threat",), "1"), (30, ("fl_threat",), "0"), (30, ("fl_threat", "fl_hours_more"), "1")],
)
def test_javarosa_agrees_on_the_forced_labour_flag_and_the_minor_path(
    dw: Template, tmp_path: Path, age: int, yes: tuple[str, ...], flag: str
) -> None:
    """JavaRosa differential for issue 12 items 4 and 6: the children's rule, the new items, the 15-17 path."""
    answers = dict(BASE, dw_age=age, **dict.fromkeys(yes, 1))
    if age < 18:
        answers.update(fl_guardian=1, fl_assent=1)
    ours = check(dw, answers)
    assert ours.findings == ()
    nodes = javarosa_run(NAME, dw.form, {k: v for k, v in answers.items() if v is not None}, tmp_path, FX_RATES)
    values = {n.path.rsplit("/", 1)[-1]: n.value for n in nodes if n.relevant}
    for name in ("fl_minor", "fl_may_ask", "fl_invol", "fl_coerc", "fl_flag", "fl_ref", "rc_total_src"):
        assert values[name] == ours.value(name), name
    assert values["fl_flag"] == flag


@pytest.mark.parametrize(("sample", "asked"), [(2, {"dw_venue_freq"}), (3, {"dw_coupons", "dw_netsize"}), (1, set())])
def test_sampling_design_items_follow_the_sampling_method(dw: Template, sample: int, asked: set[str]) -> None:
    """Issue 12 item 9: RDS records coupons given and network size; venue sampling the frequency of attendance."""
    checked = check(dw, dict(BASE, id_sample=sample))
    for name in ("dw_venue_freq", "dw_coupons", "dw_netsize"):
        assert checked.relevant(name) is (name in asked), name


def test_c189_items_and_split_insurance_are_asked_of_every_domestic_worker(dw: Template) -> None:
    checked = check(dw, BASE)
    assert checked.findings == ()
    for name in ("dw_socins", "dw_healthins", "dw_paid_leave", "dw_minwage"):
        assert checked.relevant(name), name
    rows = {r["name"]: r for r in survey_csv(NAME)}
    assert "112" not in rows["dw_days_wk"]["constraint"]  # long live-in hours are a soft check, not rejected


@pytest.mark.java
@pytest.mark.parametrize(("now", "where", "migrant_job"), [(1, "1", "0"), (2, "2", "1")])
def test_javarosa_agrees_that_a_current_job_here_comes_before_the_last_job_abroad(
    dw: Template, tmp_path: Path, now: int, where: str, migrant_job: str
) -> None:
    """JavaRosa differential for issue 12 item 9: dw_where describes the current job in this country when there is
    one (a returnee now working here), else the last job abroad."""
    answers = dict(BASE, dw_scr_now=now)
    if now == 1:  # the job described is here: no job-abroad questions
        for name in ("dw_ctry", "dw_contract_prior"):
            answers.pop(name, None)
    ours = check(dw, answers)
    assert [f.variable for f in ours.findings if f.code != "nonrelevant_answered"] == []
    nodes = javarosa_run(NAME, dw.form, {k: v for k, v in answers.items() if v is not None}, tmp_path, FX_RATES)
    values = {n.path.rsplit("/", 1)[-1]: n.value for n in nodes if n.relevant}
    relevant = {n.path.rsplit("/", 1)[-1] for n in nodes if n.relevant}
    assert values["dw_where"] == ours.value("dw_where") == where
    assert values["dw_mig_job"] == ours.value("dw_mig_job") == migrant_job
    assert ("dw_ctry" in relevant) is ours.relevant("dw_ctry") is (where == "2")
