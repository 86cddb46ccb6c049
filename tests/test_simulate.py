"""Synthetic submissions: skip logic, constraints, calculations, repeat counts, determinism, encryption."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from lxml import etree
from typer.testing import CliRunner

from tests.conftest import ODK_FIXTURES, write_md_form
from toolkit import simulate as simulate_stage
from toolkit.cli import app
from toolkit.crypto import decrypt, load_private_key
from toolkit.errors import ToolkitError
from toolkit.ingest import ingest
from toolkit.simulate import generate_instances, simulate
from toolkit.simulate import write as simulate_write
from toolkit.xform import load_form

FORM = """
| survey |
| | type | name | label | relevant | constraint | calculation | repeat_count | choice_filter |
| | select_one region | region | Region | | | | | |
| | select_one district | district | District | | | | | region=${region} |
| | select_one yn | consent | Consent | | | | | |
| | begin_group | hh | Household | ${consent}='1' | | | | |
| | integer | hh_size | Members | | . >= 1 and . <= 8 | | | |
| | begin_repeat | hl | Member | | | | ${hh_size} | |
| | integer | hl_age | Age | | (. >= 0 and . <= 110) or . = -98 | | | |
| | select_one yndk | hl_school | At school | ${hl_age} >= 5 and ${hl_age} <= 24 | | | | |
| | select_multiple reason | hl_reason | Reasons | ${hl_age} >= 15 | not((selected(.,'98') or selected(.,'99')) and count-selected(.)>1) | | | |
| | calculate | hl_adult | | | | if(${hl_age} >= 18, 1, 0) | | |
| | integer | hl_left_at | Age when left | ${hl_age} >= 15 | . >= 0 and . <= ${hl_age} | | | |
| | integer | hl_h_work | Hours work | ${hl_age} >= 15 | . >= 0 and . <= 24 | | | |
| | integer | hl_h_care | Hours care | ${hl_age} >= 15 | . >= 0 and . <= 24 and . + ${hl_h_work} <= 24 | | | |
| | integer | hl_trips | Trips | ${hl_age} >= 15 | . >= 0 and . <= 3 | | | |
| | begin_repeat | trip | Trip | ${hl_age} >= 15 | | | ${hl_trips} | |
| | text | trip_where | Where | | | | | |
| | end_repeat | | | | | | | |
| | end_repeat | | | | | | | |
| | calculate | n_adults | | | | sum(${hl_adult}) | | |
| | integer | n_away | Members away | | . >= 0 and . <= 20 | | | |
| | calculate | n_ab | | | | ${n_away} | | |
| | begin_repeat | ab | Away member | | | | ${n_ab} | |
| | integer | ab_line | Roster line | | . >= 1 and . <= ${hh_size} | | | |
| | integer | ab_age | Age | | . = indexed-repeat(${hl_age}, ${hl}, ${ab_line}) | | | |
| | end_repeat | | | | | | | |
| | decimal | income | Income | | (. >= 100 and . <= 5000) or . = -98 or . = -99 | | | |
| | end_group | | | | | | | |
| | text | comments | Comments | ${consent}!='1' | | | | |
| choices |
| | list_name | name | label | region |
| | region | 1 | North | |
| | region | 2 | South | |
| | district | 11 | N-a | 1 |
| | district | 12 | N-b | 1 |
| | district | 21 | S-a | 2 |
| | yn | 1 | Yes | |
| | yn | 2 | No | |
| | yndk | 1 | Yes | |
| | yndk | 2 | No | |
| | yndk | 98 | DK | |
| | reason | 1 | Work | |
| | reason | 2 | Study | |
| | reason | 3 | Family | |
| | reason | 98 | DK | |
| | reason | 99 | Refused | |
| settings |
| | form_id | version |
| | sim | 3 |
"""
N = 150


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_form(write_md_form(tmp_path_factory.mktemp("form"), FORM))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, model):
    out = tmp_path_factory.mktemp("sim")
    result = simulate(model, N, out, seed=7, workers=1)
    return result, ingest([out], model)


def test_writes_the_decrypt_layout_and_ingests_back(simulated) -> None:
    result, tables = simulated
    assert result.stats["instances"] == N and len(set(result.instance_ids)) == N
    folders = sorted(p.name for p in result.out_dir.iterdir())
    assert folders == sorted(i.removeprefix("uuid:") for i in result.instance_ids)
    assert result.issues == () and tables.issues == () and len(tables.tables["sim"]) == N
    repeat_tables = ("sim-hl", "sim-trip", "sim-ab")
    assert sum(len(tables.tables[t]) for t in repeat_tables) == result.stats["repeat_rows"]
    root = etree.parse(str(result.out_dir / folders[0] / "submission.xml")).getroot()
    assert (root.tag, root.get("id"), root.get("version")) == ("data", "sim", "3")


def test_relevance_non_relevant_nodes_are_empty(simulated) -> None:
    main, hl = simulated[1].tables["sim"], simulated[1].tables["sim-hl"]
    consented = main["consent"] == "1"
    assert 0 < consented.sum() < N
    assert main.loc[~consented, ["hh_size", "income", "n_adults"]].isna().all().all()
    assert main.loc[consented, "comments"].isna().all() and main.loc[~consented, "comments"].notna().all()
    assert set(hl["hh_id"]) == set(main.loc[consented, "hh_id"])
    age = hl["hl_age"].astype("Float64")
    school_relevant = (age >= 5) & (age <= 24)
    assert hl.loc[school_relevant, "hl_school"].notna().all()
    assert hl.loc[~school_relevant, "hl_school"].isna().all()
    assert hl.loc[age < 15, "hl_reason"].isna().all()


def test_constraints_choice_filters_and_sentinels(simulated) -> None:
    main, hl = simulated[1].tables["sim"], simulated[1].tables["sim-hl"]
    age = hl["hl_age"].dropna()
    assert age.between(0, 110).sum() + (age == -98).sum() == len(age)
    assert (main["district"].str[0] == main["region"]).all()
    income = main["income"].dropna()
    assert (income.between(100, 5000) | income.isin([-98, -99])).all()
    reasons = hl["hl_reason"].dropna().str.split(" ")
    assert not reasons.map(lambda r: len(r) > 1 and bool({"98", "99"} & set(r))).any()
    assert reasons.map(lambda r: r == sorted(r)).all()  # stored in list order, as Collect does
    assert main["hh_size"].dropna().between(1, 8).all()
    # Bounds that are other answers, and sums of answers, hold too.
    adults = hl.dropna(subset=["hl_left_at"])
    assert len(adults) and (adults["hl_left_at"] <= adults["hl_age"]).all()
    assert ((adults["hl_h_work"] + adults["hl_h_care"]) <= 24).all()


def test_repeat_counts_and_calculations(simulated) -> None:
    main, hl = simulated[1].tables["sim"], simulated[1].tables["sim-hl"]
    members = hl.groupby("hh_id").size()
    sized = main.dropna(subset=["hh_size"]).set_index("hh_id")["hh_size"]
    assert (members.reindex(sized.index) == sized).all()
    adults = (hl["hl_age"] >= 18).fillna(False).groupby(hl["hh_id"]).sum()
    stored = main.dropna(subset=["n_adults"]).set_index("hh_id")["n_adults"].astype(int)
    assert (adults.reindex(stored.index) == stored).all()
    assert (hl["hl_adult"] == (hl["hl_age"] >= 18).astype(int).astype(str)).all()
    # A count that sizes a later list through a calculation is drawn small (0-3); `. = X` constraints are met.
    ab = simulated[1].tables["sim-ab"]
    assert main["n_away"].dropna().between(0, 3).all() and len(ab) > 0
    roster_age = hl.set_index(["hh_id", "hl_no"])["hl_age"]
    looked_up = [roster_age.get((h, line)) for h, line in zip(ab["hh_id"], ab["ab_line"], strict=True)]
    assert ab["ab_age"].tolist() == looked_up
    # A nested repeat sized by a question of its own member (pyxform writes the count relative: ../hl_trips).
    trips = simulated[1].tables["sim-trip"].groupby("PARENT_KEY").size()
    wanted = hl.dropna(subset=["hl_trips"]).set_index("KEY")["hl_trips"]
    assert wanted.sum() > 0 and (trips.reindex(wanted.index, fill_value=0) == wanted).all()


def test_deterministic_for_a_seed_whatever_the_processes(tmp_path, model, monkeypatch) -> None:
    first = generate_instances(model, 6, seed=11)
    assert generate_instances(model, 6, seed=11) == first
    assert generate_instances(model, 3, seed=11, start=3) == first[3:]
    assert generate_instances(model, 6, seed=12) != first
    monkeypatch.setattr(simulate_write, "POOL_MIN_INSTANCES", 2)
    monkeypatch.setattr(simulate_write, "_CHUNK", 2)
    pooled = simulate(model, 6, tmp_path, seed=11, workers=2)
    assert pooled.instance_ids == tuple(i for i, _ in first)
    for instance_id, xml in first:
        assert (tmp_path / instance_id.removeprefix("uuid:") / "submission.xml").read_bytes() == xml


def test_encrypted_output_decrypts_to_the_plain_instances(tmp_path, model) -> None:
    keys = ODK_FIXTURES / "central"
    result = simulate(model, 4, tmp_path / "enc", seed=5, encrypt_with=keys / "pub.pem", workers=1)
    assert result.encrypted
    skipped = ingest([tmp_path / "enc"], model)
    assert [i.code for i in skipped.issues][:1] == ["ingest.encrypted"]
    decrypt([tmp_path / "enc"], key=load_private_key(keys / "priv.pem"), out_dir=tmp_path / "dec")
    plain = dict(generate_instances(model, 4, seed=5))
    for instance_id, xml in plain.items():
        assert (tmp_path / "dec" / instance_id.removeprefix("uuid:") / "submission.xml").read_bytes() == xml


def test_cli_simulate_then_ingest(tmp_path) -> None:
    form = write_md_form(tmp_path, FORM)
    runner = CliRunner()
    run = runner.invoke(
        app, ["simulate", str(form), "--n", "20", "--out", str(tmp_path / "s"), "--seed", "1", "--json"]
    )
    assert run.exit_code == 0, run.output
    stats = json.loads(run.stdout)["stats"]
    run = runner.invoke(
        app, ["ingest", str(tmp_path / "s"), "--form", str(form), "--out", str(tmp_path / "d"), "--json"]
    )
    assert run.exit_code == 0, run.output
    rows = json.loads(run.stdout)["tables"]
    repeat_rows = rows["sim-hl"]["rows"] + rows["sim-trip"]["rows"] + rows["sim-ab"]["rows"]
    assert (rows["sim"]["rows"], repeat_rows) == (20, stats["repeat_rows"])
    assert pd.read_parquet(tmp_path / "d" / "sim.parquet")["FormVersion"].eq("3").all()


LOOKUPS = """
| survey |
| | type | name | label | calculation |
| | select_one cur | cur | Currency | |
| | calculate | cur_label | | jr:choice-name(${cur}, '${cur}') |
| | calculate | usd | | pulldata('rates', 'usd', 'code', ${cur}) |
| | select_one_from_file banks.csv | bank | Bank | |
| choices |
| | list_name | name | label |
| | cur | 643 | Rouble |
| | cur | 398 | Tenge |
| settings |
| | form_id |
| | lookups |
"""


def test_choice_names_pulldata_and_external_lists_from_the_form_media(tmp_path) -> None:
    form = write_md_form(tmp_path, LOOKUPS, "lookups.md")
    (tmp_path / "lookups-media").mkdir()
    (tmp_path / "lookups-media" / "rates.csv").write_text("code,usd\n643,0.011\n398,0.002\n", encoding="utf-8")
    (tmp_path / "lookups-media" / "banks.csv").write_text("name,label\nb1,One\nb2,Two\n", encoding="utf-8")
    model = load_form(form)
    result = simulate(model, 8, tmp_path / "out", seed=3, workers=1)
    assert result.issues == ()
    main = ingest([tmp_path / "out"], model).tables["lookups"]
    expected = {"643": ("Rouble", "0.011"), "398": ("Tenge", "0.002")}
    assert [expected[c] for c in main["cur"]] == list(zip(main["cur_label"], main["usd"], strict=True))
    assert set(main["bank"]) == {"b1", "b2"}  # select_one_from_file: the list is read from the form's media


def test_presets_fix_top_level_answers_and_respect_skip_logic(tmp_path: Path) -> None:
    md = """
    | survey |
    | | type | name | label | relevant |
    | | integer | id_psu | PSU | |
    | | select_one yn | contact | Contact? | |
    | | select_one yn | consent | Consent? | ${contact} = '1' |
    | | integer | size | Size | ${consent} = '1' |
    | choices |
    | | list_name | name | label |
    | | yn | 1 | Yes |
    | | yn | 2 | No |
    """
    form = load_form(write_md_form(tmp_path, md))
    presets = [
        {"id_psu": "1001", "contact": "1", "consent": "1"},
        {"id_psu": "1002", "contact": "2", "consent": "1"},
    ]
    (first, second) = generate_instances(form, 2, seed=3, presets=presets)
    assert b"<id_psu>1001</id_psu>" in first[1] and b"<consent>1</consent>" in first[1]
    assert b"<size>" in first[1]
    # contact = 2 makes consent non-relevant: the preset is not written, and size is not asked.
    assert b"<id_psu>1002</id_psu>" in second[1] and b"<consent/>" in second[1] and b"<size/>" in second[1]
    with pytest.raises(ValueError, match="presets"):
        generate_instances(form, 3, presets=presets)


def test_calculations_are_stored_as_javarosa_stores_them(tmp_path: Path) -> None:
    """Large results (written 4.3E11) and NaN (written empty) feed later calculations as Collect does, so the
    validator recomputes exactly what was stored: no calculate_mismatch on simulated data."""
    from toolkit.validate import compile_form, instance_tree, validate_tree

    md = """
    | survey |
    | | type | name | label | constraint | calculation |
    | | decimal | amount | Amount | . >= 100000000 and . <= 900000000 | |
    | | calculate | big | | | ${amount} * 1000 |
    | | calculate | share | | | if(${big} != '', ${amount} div ${big} * 100, '') |
    | | calculate | not_a_number | | | number('x') |
    | | calculate | uses_later | | | ${tail} + 1 |
    | | calculate | tail | | | ${share} * 2 |
    """
    form = load_form(write_md_form(tmp_path, md))
    rules = compile_form(form)
    for instance_id, xml in generate_instances(form, 20, seed=11):
        findings = validate_tree(rules, instance_tree(rules, xml))
        assert not findings, (instance_id, [(f.code, f.path, f.value) for f in findings])


def test_month_year_and_year_dates_are_stored_as_collect_stores_them(tmp_path: Path) -> None:
    """Collect's month-year widget records the first of the month, the year widget the first of January; the
    simulator gives the same, also under an answers-file date rule."""
    md = """
    | survey |
    | | type | name | label | appearance |
    | | date | arrived | Month of arrival | month-year |
    | | date | born | Year of birth | year |
    | | date | visit | Day of visit | |
    """
    form = load_form(write_md_form(tmp_path, md))
    rules = tmp_path / "answers.toml"
    rules.write_text("[arrived]\ndays_before = [40, 400]\n", encoding="utf-8")
    answers = simulate_stage.load_answers(rules, form)
    days = set()
    for _, xml in generate_instances(form, 40, seed=5, answers=answers):
        text = xml.decode()
        arrived = re.search(r"<arrived>(\d{4}-\d{2}-\d{2})</arrived>", text)
        born = re.search(r"<born>(\d{4}-\d{2}-\d{2})</born>", text)
        visit = re.search(r"<visit>(\d{4}-\d{2}-\d{2})</visit>", text)
        assert arrived and arrived[1].endswith("-01"), text
        assert born and born[1].endswith("-01-01"), text
        assert visit
        days.add(visit[1][-2:])
    assert len(days) > 5  # a plain date keeps its day


# --- answers files (how often each answer is given) ----------------------------------------------------------

ANSWERS = """
[consent]
choices = { "1" = 90, "2" = 10 }
[hl_reason]                       # select_multiple: chance in % of each choice
choices = { "1" = 70, "3" = 20 }
[hh_size]
distribution = "normal"
mean = 5.5
sd = 1.0
[income]
distribution = "lognormal"
median = 900
spread = 0.5
[district]                        # a filtered list: weights apply to what the filter leaves
choices = { "11" = 1, "12" = 3, "21" = 1 }
[hl_trips]                        # most mass near the lower bound: truncated, not piled up on it
distribution = "normal"
mean = 0.3
sd = 0.8
min = 0
"""


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, model):
    folder = tmp_path_factory.mktemp("profiled")
    (folder / "answers.toml").write_text(ANSWERS, encoding="utf-8")
    rules = simulate_stage.load_answers(folder / "answers.toml", model)
    out = folder / "sim"
    simulate(model, 600, out, seed=11, workers=1, answers=rules)
    return ingest([out], model)


def test_answers_file_sets_how_often_answers_are_given(profiled) -> None:
    top = profiled.tables["sim"]
    assert top["consent"].astype(str).eq("1").mean() == pytest.approx(0.90, abs=0.04)
    consented = top[top["consent"].astype(str) == "1"]
    assert consented["hh_size"].mean() == pytest.approx(5.5, abs=0.15)
    assert consented["hh_size"].between(1, 8).all()  # the constraint's bounds still hold
    income = pd.to_numeric(consented["income"], errors="coerce")
    assert income.median() == pytest.approx(900, rel=0.1)
    assert income.between(100, 5000).all()
    north = top[top["region"].astype(str) == "1"]["district"].astype(str)
    assert set(north) <= {"11", "12"} and north.eq("12").mean() == pytest.approx(0.75, abs=0.07)
    south = top[top["region"].astype(str) == "2"]["district"].astype(str)
    assert set(south) == {"21"}


def test_number_rules_are_truncated_to_the_bounds_not_clipped(profiled) -> None:
    trips = pd.to_numeric(profiled.tables["sim-hl"]["hl_trips"], errors="coerce").dropna()
    assert len(trips) > 500 and trips.between(0, 3).all()
    # Normal(0.3, 0.8) kept at 0 and above, rounded: P(0 ≤ X < 0.5 | X ≥ 0) = 0.379 (clipping would give 0.599).
    assert (trips == 0).mean() == pytest.approx(0.379, abs=0.05)


def test_select_multiple_chances_are_per_choice(profiled) -> None:
    members = profiled.tables["sim-hl"]
    ticked = members["hl_reason"].dropna().astype(str).str.split()
    assert len(ticked) > 300
    # Each choice ticked on its own chance; a draw that ticks nothing (0.3 × 0.8 of them) is drawn again, so the
    # shares among answers are the chances divided by 1 − 0.24.
    assert ticked.map(lambda v: "1" in v).mean() == pytest.approx(0.70 / 0.76, abs=0.04)
    assert ticked.map(lambda v: "3" in v).mean() == pytest.approx(0.20 / 0.76, abs=0.05)
    assert not ticked.map(lambda v: "2" in v or "98" in v).any()  # choices not named are never drawn


ANSWER_PROBLEMS = [
    ("unknown question", '[consnt]\nchoices = { "1" = 1 }', "did you mean consent"),
    ("unknown choice", '[consent]\nchoices = { "3" = 1 }', "'3' is not a choice of list yn"),
    ("all zero", '[consent]\nchoices = { "1" = 0, "2" = 0 }', "every weight is 0"),
    ("percent above 100", '[hl_reason]\nchoices = { "1" = 120 }', "above 100"),
    ("distribution for a select", '[consent]\ndistribution = "normal"\nmean = 1\nsd = 1', "choices ="),
    ("missing parameter", '[income]\ndistribution = "lognormal"\nmedian = 5', "missing: spread"),
    ("unknown parameter", '[income]\ndistribution = "normal"\nmean = 5\nsd = 1\nmode = 3', "unknown: mode"),
    ("bad sd", '[income]\ndistribution = "normal"\nmean = 5\nsd = 0', "sd must be above 0"),
    ("text question", '[comments]\nchoices = { "1" = 1 }', "select_one, select_multiple, integer, decimal and date"),
    ("nan parameter", '[income]\ndistribution = "normal"\nmean = nan\nsd = 1', "finite numbers"),
    ("infinite max", '[income]\ndistribution = "normal"\nmean = 5\nsd = 1\nmax = inf', "finite numbers"),
    ("infinite weight", '[consent]\nchoices = { "1" = inf }', "finite number"),
    ("huge spread", '[income]\ndistribution = "lognormal"\nmedian = 5\nspread = 400', "spread between 0 and 3"),
    ("not TOML", "[consent\n", "Cannot read the answers file"),
]


@pytest.mark.parametrize(("text", "message"), [p[1:] for p in ANSWER_PROBLEMS], ids=[p[0] for p in ANSWER_PROBLEMS])
def test_answers_file_problems_name_the_question_and_the_fix(tmp_path, model, text: str, message: str) -> None:
    path = tmp_path / "answers.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ToolkitError) as caught:
        simulate_stage.load_answers(path, model)
    assert message in caught.value.issue.message


def test_cli_answers_option(tmp_path, model) -> None:
    form = write_md_form(tmp_path, FORM)
    (tmp_path / "answers.toml").write_text('[consent]\nchoices = { "2" = 1 }\n', encoding="utf-8")
    out = tmp_path / "sim"
    result = CliRunner().invoke(
        app, ["simulate", str(form), "-n", "20", "--out", str(out), "--answers", str(tmp_path / "answers.toml")]
    )
    assert result.exit_code == 0, result.output
    table = ingest([out], model).tables["sim"]
    assert set(table["consent"].astype(str)) == {"2"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[nope]\nchoices = { "1" = 1 }\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["simulate", str(form), "-n", "2", "--out", str(out), "--answers", str(bad)])
    assert result.exit_code == 2 and "nope" in result.output


RANK_RANGE_FORM = """
| survey |
| | type | name | label | parameters |
| | rank colours | order | Order the colours | |
| | range | score | Score | start=1 end=10 step=1 |
| choices |
| | list_name | name | label |
| | colours | r | Red |
| | colours | g | Green |
| settings |
| | form_id | version |
| | rr | 1 |
"""


@pytest.mark.parametrize("question", ["order", "score"])
def test_rank_and_range_questions_take_no_answer_rules(tmp_path, question: str) -> None:
    # A rank answer lists every choice and a range answer lies on its own scale: neither fits a weight or a
    # distribution, so a rule for them is refused rather than giving answers Collect could not produce.
    form = load_form(write_md_form(tmp_path, RANK_RANGE_FORM))
    path = tmp_path / "answers.toml"
    rule = 'choices = { "r" = 1 }' if question == "order" else 'distribution = "normal"\nmean = 50\nsd = 1'
    path.write_text(f"[{question}]\n{rule}\n", encoding="utf-8")
    with pytest.raises(ToolkitError) as caught:
        simulate_stage.load_answers(path, form)
    assert "integer, decimal and date questions" in caught.value.issue.message


DATE_FORM = """
| survey |
| | type | name | label | constraint |
| | date | sent_on | When was the money last sent? | . <= today() and decimal-date-time(.) >= decimal-date-time(today()) - 93 |
| | today | today | | |
| settings |
| | form_id | version |
| | dt | 1 |
"""


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("days_before = [10, 2]", "days_before = [fewest, most]"),
        ("days_before = [-1, 5]", "whole days from 0"),
        ("days_before = 30", "days_before = [fewest, most]"),
        ('distribution = "normal"\nmean = 1\nsd = 1', "days_before = [fewest, most]"),
    ],
)
def test_date_rule_problems(tmp_path, rule: str, message: str) -> None:
    form = load_form(write_md_form(tmp_path, DATE_FORM))
    (tmp_path / "answers.toml").write_text(f"[sent_on]\n{rule}\n", encoding="utf-8")
    with pytest.raises(ToolkitError) as caught:
        simulate_stage.load_answers(tmp_path / "answers.toml", form)
    assert message in caught.value.issue.message


def test_date_rule_draws_days_before_the_interview(tmp_path) -> None:
    form = load_form(write_md_form(tmp_path, DATE_FORM))
    (tmp_path / "answers.toml").write_text("[sent_on]\ndays_before = [0, 92]\n", encoding="utf-8")
    rules = simulate_stage.load_answers(tmp_path / "answers.toml", form)
    out = tmp_path / "sim"
    result = simulate(form, 200, out, seed=3, workers=1, answers=rules)
    assert not result.issues  # every date meets "in the last 3 months" on the first draws
    table = ingest([out], form).tables["dt"]
    days = (pd.to_datetime(table["today"]) - pd.to_datetime(table["sent_on"])).dt.days
    assert days.between(0, 92).all() and days.nunique() > 30


def test_every_problem_of_an_answers_file_is_reported_at_once(tmp_path, model) -> None:
    path = tmp_path / "answers.toml"
    path.write_text('[consnt]\nchoices = { "1" = 1 }\n[consent]\nchoices = { "3" = 1 }\n', encoding="utf-8")
    with pytest.raises(ToolkitError) as caught:
        simulate_stage.load_answers(path, model)
    assert caught.value.exit_code == 2  # a mistake in a configuration file is a usage error, as in survey.toml
    assert [(i.location.variable, i.location.line) for i in caught.value.issues] == [("consnt", 1), ("consent", 3)]
    assert "did you mean consent" in caught.value.issues[0].message


# --- regex() constraints ----------------------------------------------------------------------------------------

REGEX_FORM = r"""
| survey |
| | type | name | label | required | constraint | relevant |
| | text | phone | Phone | yes | regex(., '^\+?996[0-9]{9}$') | |
| | text | hh_code | Household code | yes | regex(., '^[A-Z]{2}-\d{4}$') | |
| | text | email | E-mail | | regex(., '^[a-z0-9._]+@[a-z]{3,8}\.(com)$') | |
| | text | initials | Initials | yes | regex(., '^\p{Lu}{2,3}$') or . = 'none' | |
| | integer | pin | PIN | yes | regex(., '^[1-9][0-9]{3}$') | |
| | text | passport | Passport | yes | regex(., '^[A-Z]{2}[0-9]{7}$') | ${pin} != '' |
| settings |
| | form_id |
| | regexes |
"""


def test_regex_constraints_are_met_on_required_text(tmp_path) -> None:
    """Today's draws (words, names) never match an ID pattern: required text was left empty."""
    from toolkit.validate import validate

    form = write_md_form(tmp_path, REGEX_FORM)
    model = load_form(form)
    result = simulate(model, 60, tmp_path / "out", seed=4, workers=1)
    assert result.issues == ()
    main = ingest([tmp_path / "out"], model).tables["regexes"]
    assert main["phone"].str.fullmatch(r"\+?996[0-9]{9}").all()
    assert main["hh_code"].str.fullmatch(r"[A-Z]{2}-\d{4}").all()
    assert main["passport"].str.fullmatch(r"[A-Z]{2}[0-9]{7}").all()
    assert main["pin"].between(1000, 9999).all()
    assert main["initials"].str.fullmatch(r"[^\W\d_]{2,3}").mean() > 0.5  # the pattern, not only 'none'
    assert main["email"].dropna().str.fullmatch(r"[a-z0-9._]+@[a-z]{3,8}\.com").all()
    assert validate(tmp_path / "out", form).stats["findings"] == 0


# Patterns seen in real XLSForms (phone numbers, IDs, names, dates typed as text, codes), and Java forms of them.
REAL_PATTERNS = [
    r"^[0-9]{10}$",
    r"^\d{3}-\d{3}-\d{4}$",
    r"^[A-Za-z ]+$",
    r"^(\+996)?[0-9]{9}$",
    r"^\p{L}+( \p{L}+)*$",
    r"^\p{Lu}[a-z]+$",
    r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$",
    r"[A-Z]{3}[0-9]{2}",
    r"^.{3,20}$",
    r"(?i)^[a-z]+$",
    r"^[^0-9]+$",
    r"^\w+@\w+\.\w{2,3}$",
    r"^(0[1-9]|1[0-2])$",
    r"^(?:KG|KZ|TJ|UZ)-[0-9]{3,5}$",
    r"^\S+\s\S+$",
    r"^[0-9]{1,3}(\.[0-9]{1,2})?$",
    r"^[A-Z][a-z]*\b",
    r"^\u0410[\u0430-\u044f]+$",
    r"^[\w\-\.]+$",
    r"^[^\W\d_]{2,}$",
    r"^[a-z]+?[0-9]*?$",
]


@pytest.mark.parametrize("pattern", REAL_PATTERNS)
def test_regex_strings_match_as_the_evaluator_matches(pattern: str) -> None:
    import random

    from toolkit.simulate.regex import matching_string
    from toolkit.xpath import EvalEnv, XNode, compile_xpath

    quote = '"' if "'" in pattern else "'"
    check = compile_xpath(f"regex(., {quote}{pattern}{quote})")
    rng = random.Random(pattern)
    for _ in range(40):
        node = XNode("x", matching_string(pattern, rng))
        assert check.evaluate_boolean(node, env=EvalEnv(root=node)), (pattern, node.text)


@pytest.mark.parametrize("pattern", [r"^(?=.*\d).{8,}$", r"^(a)\1$", r"^a*+a$", r"^[a-z&&[^x]]$", r"^(?!x).$", r"a(b"])
def test_regex_constructs_that_are_not_generated_are_refused(pattern: str) -> None:
    from toolkit.simulate.regex import RegexUnsupported, check_pattern

    with pytest.raises(RegexUnsupported):
        check_pattern(pattern)


def _regexes() -> object:
    """Patterns over the subset forms use, built from atoms, quantifiers, groups and alternation."""
    from hypothesis import strategies as st

    literal = st.sampled_from(list("abcXYZ019 -_@#")).map(lambda c: "\\" + c if c in "-#" else c)
    escaped = st.sampled_from(["\\.", "\\+", "\\(", "\\)", "\\?", "\\*", "\\$", "\\^", "\\/", "\\[", "\\{"])
    shorthand = st.sampled_from(["\\d", "\\w", "\\s", "\\D", "\\W", "\\S", "."])
    ranges = st.sampled_from(["a-z", "A-Z", "0-9", "a-f", "xyz", "_\\-.", "\\d", "\\w ", "\\s"])
    klass = st.tuples(st.booleans(), st.lists(ranges, min_size=1, max_size=3)).map(
        lambda t: "[" + ("^" if t[0] else "") + "".join(t[1]) + "]"
    )
    atom = st.one_of(literal, escaped, shorthand, klass)
    quantifier = st.sampled_from(["", "", "?", "*", "+", "{2}", "{1,3}", "{0,2}", "{2,}", "+?", "??"])

    def pieces(inner: object) -> object:
        return st.lists(st.tuples(inner, quantifier).map("".join), min_size=1, max_size=4).map("".join)

    def grouped(inner: object) -> object:
        branches = st.lists(pieces(inner), min_size=1, max_size=3).map("|".join)
        return st.tuples(st.sampled_from(["(", "(?:"]), branches).map(lambda t: t[0] + t[1] + ")")

    tree = st.recursive(atom, grouped, max_leaves=8)
    return st.tuples(st.booleans(), pieces(tree), st.booleans()).map(
        lambda t: ("^" if t[0] else "") + t[1] + ("$" if t[2] else "")
    )


def test_regex_generator_against_python_fullmatch() -> None:
    """Random patterns of the subset: every generated string matches whole (Java and Python agree here)."""
    import random

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from toolkit.simulate.regex import matching_string

    @settings(max_examples=120, deadline=None)
    @given(_regexes(), st.integers(0, 2**32))
    def check(pattern: str, seed: int) -> None:
        text = matching_string(pattern, random.Random(seed))
        assert re.fullmatch(pattern, text), (pattern, text)

    check()


# --- only what Collect could finalise ---------------------------------------------------------------------------

FINALISABLE = """
| survey |
| | type | name | label | relevant | required | constraint | calculation | repeat_count | choice_filter |
| | integer | n | Members | | yes | . >= 1 and . <= 2 | | | |
| | begin_repeat | hl | Member | | | | | ${n} | |
| | text | hl_name | Name | | yes | | | | |
| | select_one yn | hl_abroad | Abroad now? | | yes | | | | |
| | integer | hl_age | Age | | yes | . >= 0 and . <= 99 | | | |
| | integer | hl_married | Years married | ${hl_age} >= 15 | yes | . >= 0 and . <= 99 | | | |
| | note | hl_stop | Married longer than possible: correct the age | ${hl_married} > ${hl_age} - 12 | yes | | | | |
| | end_repeat | | | | | | | | |
| | select_one ${hl_name} | resp | Respondent (at home) | | yes | | | | ${hl_abroad} = '2' |
| | select_one yndk | own | Owns the dwelling | | yes | . != '98' | | | |
| choices |
| | list_name | name | label |
| | yn | 1 | Yes |
| | yn | 2 | No |
| | yndk | 1 | Yes |
| | yndk | 2 | No |
| | yndk | 98 | Don't know |
| settings |
| | form_id |
| | fin |
"""


def test_only_interviews_collect_could_finalise(tmp_path) -> None:
    """No hard stop reached (a relevant required note), no respondent picked from a roster with nobody at home
    left empty or given a don't-know code, nothing validate would find (today: all three happen)."""
    from toolkit.validate import validate

    form = write_md_form(tmp_path, FINALISABLE)
    model = load_form(form)
    result = simulate(model, 120, tmp_path / "out", seed=2, workers=1)
    assert result.issues == () and result.stats["redrawn"] > 0
    tables = ingest([tmp_path / "out"], model).tables
    main, hl = tables["fin"], tables["fin-hl"]
    married = hl.dropna(subset=["hl_married"])
    assert (married["hl_married"] <= married["hl_age"] - 12).all()  # the hard stop is never relevant
    at_home = hl[hl["hl_abroad"] == "2"].groupby("PARENT_KEY")["hl_name"].agg(set)
    picked = main.set_index("KEY")["resp"]
    assert picked.notna().all() and all(picked[key] in names for key, names in at_home.items())
    assert set(picked.index) == set(at_home.index)  # households with everybody abroad are not finalisable
    assert set(main["own"]) <= {"1", "2"}
    assert validate(tmp_path / "out", form).stats["findings"] == 0


TEMPLATES = ["household", "women", "domestic_workers"]


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_validate_clean_at_scale(tmp_path, template: str) -> None:
    """A few thousand households of each template: 0 findings from validate (the issue measured 555 on 3,000
    households of household.xlsx before)."""
    from toolkit.validate import validate

    form = Path(__file__).resolve().parent.parent / "forms" / f"{template}.xlsx"
    result = simulate(load_form(form), 2000, tmp_path / "out", seed=15, workers=2)
    assert not [i for i in result.issues if i.code == "simulate.unfinalisable"]
    checked = validate(tmp_path / "out", form)
    assert (checked.stats["instances"], checked.stats["by_code"]) == (2000, {})


# --- planted faults (--errors) ----------------------------------------------------------------------------------


def _key(path: Path) -> set[tuple[str, str, str]]:
    frame = pd.read_csv(path, dtype=str)
    assert list(frame.columns) == ["instance_id", "path", "code"]
    return set(frame.itertuples(index=False, name=None))


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_validate_finds_exactly_the_planted_faults_on_the_templates(tmp_path, template: str) -> None:
    from toolkit.validate import validate

    form = Path(__file__).resolve().parent.parent / "forms" / f"{template}.xlsx"
    result = simulate(load_form(form), 300, tmp_path / "out", seed=8, workers=2, errors=0.3)
    key = _key(tmp_path / "out-errors.csv")
    assert result.errors_key == tmp_path / "out-errors.csv" and len(key) == result.stats["planted"] > 50
    codes = {code for _, _, code in key}
    assert {"nonrelevant_answered", "calculate_mismatch", "duplicate_instance"} <= codes
    assert len(codes) >= 4
    for method in ("auto", "instances"):
        found = validate(tmp_path / "out", form, method=method).findings
        assert {(f.instance_id, f.path, f.code) for f in found} == key and len(found) == len(key), method


def test_planted_faults_leave_the_rest_of_each_submission_as_drawn(tmp_path, model) -> None:
    clean = simulate(model, 40, tmp_path / "clean", seed=9, workers=1)
    faulty = simulate(model, 40, tmp_path / "faulty", seed=9, workers=1, errors=0.5)
    assert clean.instance_ids == faulty.instance_ids and clean.planted == ()
    touched = {fault.instance_id for fault in faulty.planted}
    assert 10 < len(touched) < 35
    for instance_id in clean.instance_ids:
        folder = instance_id.removeprefix("uuid:")
        same = (tmp_path / "clean" / folder / "submission.xml").read_bytes() == (
            tmp_path / "faulty" / folder / "submission.xml"
        ).read_bytes()
        duplicated = (tmp_path / "faulty" / f"{folder}-copy").exists()
        assert same == (instance_id not in touched or duplicated)


def test_cli_errors_writes_the_key_that_validate_finds(tmp_path) -> None:
    form = write_md_form(tmp_path, FORM)
    runner = CliRunner()
    out, key = tmp_path / "s", tmp_path / "key.csv"
    args = ["simulate", str(form), "--n", "60", "--out", str(out), "--seed", "3", "--errors", "0.4"]
    run = runner.invoke(app, [*args, "--errors-key", str(key), "--json"])
    assert run.exit_code == 0, run.output
    reported = json.loads(run.stdout)
    assert reported["errors_key"] == str(key) and reported["stats"]["planted"] == len(_key(key)) > 10
    run = runner.invoke(app, ["validate", str(out), "--form", str(form), "--json"])
    assert run.exit_code == 1, run.output
    found = {(f["instance"], f["path"], f["code"]) for f in json.loads(run.stdout)["issues"]}
    assert found == _key(key)
    assert runner.invoke(app, [*args[:-1], "1.5"]).exit_code == 2


def test_docs_answers_reference_loads_against_the_household_form() -> None:
    """The reference block of docs/answers-toml.md is a valid answers file for forms/household.xlsx."""
    import re

    repo = Path(__file__).resolve().parent.parent
    block = re.search(r"```toml\n(.*?)```", (repo / "docs" / "answers-toml.md").read_text(encoding="utf-8"), re.S)
    assert block is not None
    answers = Path(tempfile.mkdtemp()) / "answers.toml"
    answers.write_text(block.group(1), encoding="utf-8")
    rules = simulate_stage.load_answers(answers, load_form(repo / "forms" / "household.xlsx"))
    assert set(rules) == {"hl_abroad_now", "ru_use", "ab_remit_amt", "hl_age", "rs_date"}


def test_bounds_are_whole_expressions_of_other_answers_on_either_side(tmp_path: Path) -> None:
    """`. >= ${year} - ${age} - 1` bounds the answer by the whole expression (the birth year), not by `${year}`
    alone; `0 < .` bounds it as `. > 0` does."""
    md = """
    | survey |
    | | type | name | label | constraint |
    | | integer | year | Interview year | . >= 2020 and . <= 2026 |
    | | integer | age | Age | . >= 0 and . <= 90 |
    | | integer | arrived | Year of arrival | . >= ${year} - ${age} - 1 and . <= ${year} |
    | | integer | rooms | Rooms | 0 < . and 6 >= . |
    """
    form = load_form(write_md_form(tmp_path, md))
    arrivals, rooms = [], []
    for _, xml in generate_instances(form, 60, seed=4):
        values = {
            name: int(re.search(rf"<{name}>(-?\d+)</{name}>".encode(), xml).group(1))
            for name in ("year", "age", "arrived", "rooms")
        }
        assert values["year"] - values["age"] - 1 <= values["arrived"] <= values["year"]
        assert 1 <= values["rooms"] <= 6
        arrivals.append(values["arrived"] < values["year"])
        rooms.append(values["rooms"])
    # drawn between the bounds, not pinned to the upper one (arrival in the interview year every time)
    assert sum(arrivals) > 30 and len(set(rooms)) > 3
