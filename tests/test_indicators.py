"""`migkit indicators` on small hand-made DATA folders: the universe and missing-value rules do what each entry
declares (not-asked never enters a denominator), catalogue errors are found before anything is computed, intervals
stay in [0, 1], and the outputs (XLSX, CSV, HTML, --json) are written. The numbers themselves are checked against
R in test_indicators_r.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from tests.conftest import write_md_form
from toolkit import estimate as est
from toolkit.cli import app
from toolkit.indicators import Catalogue, CatalogueError, analysis_frames, compute_indicators, parse_catalogue
from toolkit.indicators.filters import FilterSyntaxError, evaluate, parse_filter
from toolkit.pipeline import PipelineResult, StageOutcome, SurveyConfig, render_index
from toolkit.xform import load_form

FORM = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) |
| | integer | stratum | Stratum | Страта |
| | integer | psu | PSU | ПЕВ |
| | select_one yn | asked | Asked? | Спрашивали? |
| | select_one yn | q | Question | Вопрос |
| | select_multiple use | uses | Uses | Использование |
| | decimal | amount | Amount | Сумма |
| | select_one sex | sex | Sex | Пол |
| | begin_repeat | m | Member | Член |
| | integer | age | Age | Возраст |
| | end_repeat | | | |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) |
| | yn | 1 | Yes | Да |
| | yn | 2 | No | Нет |
| | yn | 98 | Don't know | Не знаю |
| | yn | 99 | Refused | Отказ |
| | use | 1 | Food | Еда |
| | use | 2 | School | Школа |
| | use | 98 | Don't know | Не знаю |
| | sex | 1 | Male | Мужской |
| | sex | 2 | Female | Женский |
| settings |
| | form_id | version | default_language |
| | mini | 1 | English (en) |
"""

# 12 households in 2 strata of 2 PSUs: q is asked only where asked = 1 (rows 0-8); rows 9-11 were not asked.
HOUSEHOLDS = pd.DataFrame(
    {
        "KEY": [f"uuid:{i}" for i in range(12)],
        "hh_id": range(1, 13),
        "stratum": [1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2],
        "psu": [11, 11, 11, 12, 12, 12, 21, 21, 21, 22, 22, 22],
        "w": [10.0, 12.0, 8.0, 9.0, 11.0, 10.0, 20.0, 18.0, 22.0, 19.0, 21.0, 20.0],
        "asked": ["1"] * 9 + ["2"] * 3,
        "q": ["1", "2", "98", "1", "99", "2", "1", "1", "2", None, None, None],
        "uses": ["1 2", "1", "98", "2", "1", None, "1 2", "2", "1", None, None, None],
        "amount": [100.0, -98.0, 50.0, 80.0, None, 60.0, 120.0, 90.0, -98.0, None, None, None],
        "sex": ["1", "2", "1", "2", "1", "2", "1", "2", "1", "2", "1", "2"],
    }
)


def write_data(folder: Path, form_path: Path, households: pd.DataFrame = HOUSEHOLDS) -> Path:
    """A DATA folder as ingest + weights write it: Parquet tables and tables.json with column paths and design."""
    form = load_form(form_path)
    folder.mkdir(parents=True, exist_ok=True)
    households.to_parquet(folder / "mini.parquet", index=False)
    members = pd.DataFrame(
        {
            "KEY": ["uuid:0/m[1]", "uuid:1/m[1]"],
            "PARENT_KEY": ["uuid:0", "uuid:1"],
            "hh_id": [1, 2],
            "m_no": [1, 1],
            "age": [30, 40],
        }
    )
    members.to_parquet(folder / "mini-m.parquet", index=False)

    def columns(frame: pd.DataFrame) -> list[dict]:
        out = []
        for name in frame.columns:
            try:
                path = form.by_name(name).path
            except KeyError:
                path = ""
            out.append({"name": name, "path": path, "question_type": "", "dtype": str(frame[name].dtype)})
        return out

    manifest = {
        "form_id": "mini",
        "tables": {
            "mini": {"file": "mini.parquet", "columns": columns(households), "rows": len(households)},
            "mini-m": {"file": "mini-m.parquet", "columns": columns(members), "rows": 2},
        },
        "design": {"weight": "w", "strata": "stratum", "psu": "psu", "replicates": None},
    }
    (folder / "tables.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


BASE = """
[levels.household]
table = "mini"
weight = "w"
universe = "asked = '1'"

[levels.member]
table = "mini-m"
weight = "w"
join = [{ table = "mini", on = { hh_id = "hh_id" }, columns = ["w"] }]

[domains.sex]
variable = "sex"
"""


def entry(**fields: object) -> str:
    defaults = {"id": "x", "title": {"en": "X"}, "definition": {"en": "d"}, "source": "s", "level": "household"}
    defaults.update(fields)

    def toml(value: object) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {toml(v)}" for k, v in value.items()) + " }"
        if isinstance(value, list):
            return "[" + ", ".join(toml(v) for v in value) + "]"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        return json.dumps(value)

    return "[[indicator]]\n" + "\n".join(f"{k} = {toml(v)}" for k, v in defaults.items()) + "\n"


def catalogue(*entries: str, base: str = BASE) -> Catalogue:
    import tomllib

    return parse_catalogue(tomllib.loads(base + "\n".join(entries)), where="test.toml")


@pytest.fixture
def mini(tmp_path: Path) -> tuple[Path, Path]:
    form_path = write_md_form(tmp_path, FORM, "mini.md")
    return write_data(tmp_path / "data", form_path), form_path


# --- the missing-value rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "expected_y", "dk_row"),
    [
        # rows 0-8 are in the universe; 98 (row 2) and 99 (row 4) are the don't-knows
        ("exclude", [1, 0, None, 1, None, 0, 1, 1, 0], None),
        ("as_no", [1, 0, 0, 1, 0, 0, 1, 1, 0], None),
        ("category", [1, 0, 0, 1, 0, 0, 1, 1, 0], [0, 0, 1, 0, 1, 0, 0, 0, 0]),
    ],
)
def test_missing_rule_is_applied_as_declared(mini, missing, expected_y, dk_row) -> None:
    data, form_path = mini
    cat = catalogue(entry(statistic="proportion", variable="q", yes=["1"], missing=missing))
    frame = analysis_frames(data, cat, form=load_form(form_path))["x"]
    y = frame["y" if dk_row is None else "y:"]
    expected = [np.nan if v is None else float(v) for v in expected_y] + [np.nan] * 3
    np.testing.assert_array_equal(y.to_numpy(), np.array(expected))
    if dk_row is not None:
        np.testing.assert_array_equal(frame["y:dk"].to_numpy()[:9], np.array(dk_row, dtype=float))
    result = compute_indicators(data, cat, form=load_form(form_path), variance="taylor")
    row = next(r for r in result.rows if r.category == "" and r.domain == "all")
    used = ~np.isnan(np.array(expected))
    w = HOUSEHOLDS["w"].to_numpy()
    assert row.n == int(used.sum())
    assert row.estimate == pytest.approx(np.nansum(w * np.array(expected)) / w[used].sum(), rel=1e-12)
    assert row.weighted_n == pytest.approx(w[used].sum())
    assert row.flags[0] == "suppressed"  # fewer than 25 cases (the DHS default)
    summary = result.indicators[0]
    assert summary.not_asked == 0 and summary.dont_know == 2 and summary.in_universe == 9


def test_not_asked_never_enters_a_denominator(mini) -> None:
    """Without the universe, rows 9-11 (q not asked) are in scope but still never counted, under every rule."""
    data, _ = mini
    base = BASE.replace("universe = \"asked = '1'\"\n", "")
    for missing in ("exclude", "as_no", "category"):
        cat = catalogue(entry(statistic="proportion", variable="q", yes=["1"], missing=missing), base=base)
        frame = analysis_frames(data, cat)["x"]
        for column in (c for c in frame.columns if c.startswith("y")):
            assert frame[column].iloc[9:].isna().all(), (missing, column)
        result = compute_indicators(data, cat, variance="taylor")
        assert result.indicators[0].not_asked == 3
        assert all(r.n <= 9 for r in result.rows)


@pytest.mark.parametrize(
    ("fields", "column", "expected"),
    [
        # numbers: -98 is a don't-know and leaves; missing (row 4, not answered) leaves too
        ({"statistic": "mean", "variable": "amount"}, "y", [100, None, 50, 80, None, 60, 120, 90, None]),
        # shares of a multi-response question: the 98-only answer (row 2) leaves under exclude
        ({"statistic": "shares", "variable": "uses"}, "y:1", [1, 1, None, 0, 1, None, 1, 0, 1]),
        ({"statistic": "shares", "variable": "uses"}, "y:2", [1, 0, None, 1, 0, None, 1, 1, 0]),
        # a condition on another variable: the denominator is who answered `variable`
        (
            {"statistic": "proportion", "variable": "q", "condition": "amount >= 80"},
            "y",
            [1, 0, None, 1, None, 0, 1, 1, 0],
        ),
    ],
)
def test_rules_for_numbers_shares_and_conditions(mini, fields, column, expected) -> None:
    data, _ = mini
    cat = catalogue(entry(missing="exclude", **fields))
    frame = analysis_frames(data, cat)["x"]
    np.testing.assert_array_equal(
        frame[column].to_numpy()[:9], np.array([np.nan if v is None else float(v) for v in expected])
    )


def test_distribution_shows_dk_as_a_category_and_domains(mini) -> None:
    data, form_path = mini
    cat = catalogue(entry(statistic="distribution", variable="q", missing="category", domains=["sex"]))
    result = compute_indicators(data, cat, form=load_form(form_path), language="ru", variance="taylor")
    overall = {r.category: r for r in result.rows if r.domain == "all"}
    assert list(overall) == ["1", "2", "dk"]
    assert overall["1"].category_label == "Да" and overall["dk"].category_label == "Не знаю / отказ"
    assert sum(r.estimate for r in overall.values()) == pytest.approx(1.0)
    assert {r.domain_label for r in result.rows if r.domain == "sex"} == {"Мужской", "Женский"}
    assert all(0 <= r.ci_low <= r.estimate <= r.ci_high <= 1 for r in result.rows)


def test_tables_are_read_with_only_the_columns_the_catalogue_names(mini, monkeypatch) -> None:
    """Wide tables are read with the columns the levels and indicators name (at 100,000 households reading every
    roster column cost most of a gigabyte), and the estimates are those of the whole tables."""
    from toolkit.dataset import DataFolder

    data, form_path = mini
    cat = catalogue(entry(statistic="proportion", variable="q", yes=["1"], missing="exclude", domains=["sex"]))
    whole = compute_indicators(data, cat, form=load_form(form_path), variance="taylor")
    read: dict[str, list[str] | None] = {}
    load = DataFolder.load

    def spying_load(self, name, *, columns=None, recorded_dtypes=False):  # type: ignore[no-untyped-def]
        read[name] = None if columns is None else list(columns)
        return load(self, name, columns=columns, recorded_dtypes=recorded_dtypes)

    monkeypatch.setattr(DataFolder, "load", spying_load)
    result = compute_indicators(data, cat, form=load_form(form_path), variance="taylor")
    assert read == {"mini": ["stratum", "psu", "w", "asked", "q", "sex"]}
    assert [(r.domain, r.category, r.estimate, r.se) for r in result.rows] == [
        (r.domain, r.category, r.estimate, r.se) for r in whole.rows
    ]


def test_empty_universe_is_reported_and_the_others_go_on(mini) -> None:
    data, _ = mini
    cat = catalogue(
        entry(
            id="nobody", statistic="proportion", variable="q", yes=["1"], missing="exclude", universe="amount > 1000000"
        ),
        entry(id="somebody", statistic="mean", variable="amount", missing="exclude"),
    )
    result = compute_indicators(data, cat, variance="taylor")
    status = {s.id: s.status for s in result.indicators}
    assert status == {"nobody": "empty", "somebody": "ok"}
    assert any(i.code == "indicators.empty_universe" for i in result.issues)


# --- catalogue errors, all found before anything is computed ----------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code", "words"),
    [
        (
            {"statistic": "proportion", "variable": "qq", "yes": ["1"], "missing": "exclude"},
            "indicators.unknown_variable",
            ["indicator x, variable", "'qq'", "did you mean q"],
        ),
        (
            {"statistic": "proportion", "variable": "q", "yes": ["3"], "missing": "exclude"},
            "indicators.unknown_code",
            ["indicator x, yes", "'3'", "choice list of q"],
        ),
        (
            {"statistic": "proportion", "variable": "q", "yes": ["1"], "missing": "exclude", "universe": "sex = '3'"},
            "indicators.unknown_code",
            ["indicator x, universe", "'3'"],
        ),
        (
            {"statistic": "mean", "variable": "amount", "missing": "exclude", "domains": ["sexx"]},
            "indicators.unknown_variable",
            ["domains (sexx)", "did you mean sex"],
        ),
        (
            {"statistic": "mean", "variable": "age", "missing": "exclude", "level": "member", "universe": "agee > 1"},
            "indicators.unknown_variable",
            ["universe", "'agee'", "did you mean age"],
        ),
    ],
)
def test_entry_errors_name_the_entry_and_field(mini, fields, code, words) -> None:
    data, form_path = mini
    cat = catalogue(entry(**fields))
    with pytest.raises(CatalogueError) as caught:
        compute_indicators(data, cat, form=load_form(form_path))
    assert caught.value.issues[0].code == code
    for word in words:
        assert word in caught.value.issues[0].message


def test_level_without_weight_and_every_problem_at_once(mini) -> None:
    data, form_path = mini
    base = BASE.replace('columns = ["w"]', 'columns = ["sex"]')
    cat = catalogue(
        entry(id="a", statistic="mean", variable="age", missing="exclude", level="member"),
        entry(id="b", statistic="mean", variable="amountt", missing="exclude"),
        base=base,
    )
    with pytest.raises(CatalogueError) as caught:
        compute_indicators(data, cat, form=load_form(form_path))
    codes = [i.code for i in caught.value.issues]
    assert codes == ["indicators.no_weight", "indicators.unknown_variable"]
    assert "[levels.member] weight" in caught.value.issues[0].message


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"statistic": "average", "variable": "q", "missing": "exclude"}, "statistic 'average'"),
        ({"statistic": "proportion", "variable": "q", "yes": ["1"]}, "state the missing-value rule"),
        ({"statistic": "mean", "variable": "amount", "missing": "as_no"}, 'takes missing = "exclude"'),
        ({"statistic": "proportion", "variable": "q", "missing": "exclude"}, "needs yes"),
        ({"statistic": "mean", "variable": "amount", "missing": "exclude", "level": "people"}, "level 'people'"),
        ({"statistic": "quantile", "variable": "amount", "missing": "exclude", "quantile": 80}, "quantile must be"),
        ({"statistic": "mean", "variable": "amount", "missing": "exclude", "universe": "amount >"}, "does not parse"),
        ({"statistic": "mean", "variable": "amount", "missing": "exclude", "colour": "red"}, "unknown key 'colour'"),
    ],
)
def test_catalogue_shape_errors(fields, words) -> None:
    with pytest.raises(CatalogueError) as caught:
        catalogue(entry(**fields))
    assert words in caught.value.issue.message


def test_the_shipped_catalogue_names_variables_of_the_current_forms() -> None:
    root = Path(__file__).resolve().parent.parent
    cat = Catalogue.from_file(root / "indicators" / "ncamig.toml")
    import csv

    names = set()
    for survey in (root / "forms" / "src").glob("*/survey.csv"):
        with survey.open(encoding="utf-8") as handle:
            names |= {row["name"] for row in csv.DictReader(handle) if row.get("name")}
    derived = {"rr_resp_sex"}  # joined from the roster by the respondent_hh level
    for item in cat.indicators:
        for name in (item.variable, item.denominator):
            assert name is None or name in names | derived, (item.id, name)
        for domain in item.domains:
            assert cat.domains[domain].variable in names | derived, (item.id, domain)
    checklist = {
        "hh_member_abroad",
        "emigrants_by_destination",
        "return_migrant_workers",
        "rci_mean",
        "rci_median",
        "rci_p80",
        "paid_recruitment_cost",
        "remit_incidence",
        "remit_per_capita_usd",
        "remit_channel_mix",
        "remit_formal_share",
        "remit_uses",
        "transfer_cost_pct",
        "women_decide_remit",
        "own_account",
        "dw_livein",
        "dw_written_contract",
        "dw_weekly_rest",
        "dw_documents_kept",
        "dw_wages_withheld",
        "dw_hours_over_48",
        "forced_labour",
        "women_unpaid_care_hours",
        "immigrant_share",
    }
    assert checklist <= {i.id for i in cat.indicators}
    assert all(i.missing in ("exclude", "as_no", "category") for i in cat.indicators)
    assert all(i.title.get("ru") and i.definition.get("ru") for i in cat.indicators)


# --- filters, intervals, quantiles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("q = '1'", [True, False, False, False]),
        ("q != '1'", [False, True, True, False]),  # missing compares false
        ("missing(q) or q != '1'", [False, True, True, True]),
        ("amount >= 50 and amount < 100", [False, True, False, False]),
        ("${q} in ('1', '98')", [True, False, True, False]),
        ("selected(uses, '2')", [True, False, False, False]),
        ("not(answered(amount))", [False, False, True, True]),
    ],
)
def test_filters(text, expected) -> None:
    table = pd.DataFrame(
        {"q": ["1", "2", "98", None], "amount": [100.0, 50.0, None, None], "uses": ["1 2", "1", "98", None]}
    )
    assert evaluate(parse_filter(text), table).tolist() == expected


@pytest.mark.parametrize("text", ["q =", "q == '1'", "(q = '1'", "q = '1' and", "selected(q)", "q"])
def test_filter_syntax_errors(text) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_filter(text)


def test_intervals_stay_in_the_unit_interval() -> None:
    # R: qbeta(0.025, 2, 5) = 0.043271868..., and Clopper-Pearson for 0 of 30: [0, 1 - 0.025^(1/30)]
    assert est.beta_quantile(0.025, 2, 5) == pytest.approx(0.04327187, abs=1e-8)
    low, high = est.proportion_interval(0.0, 0.0, df=20, method="korn-graubard", n=30)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 30), rel=1e-10)
    for p, se in [(0.01, 0.02), (0.99, 0.05), (0.5, 0.4)]:
        for method in ("logit", "korn-graubard", "wald"):
            low, high = est.proportion_interval(p, se, df=10, method=method, n=40, domain_df=8)
            assert 0 <= low <= p <= high <= 1, (p, se, method)


def test_weighted_quantile_follows_r_math_rule() -> None:
    values = np.array([3.0, 1.0, 2.0, 4.0])
    weights = np.array([1.0, 1.0, 1.0, 1.0])
    assert est.weighted_quantile(values, weights, 0.5) == 2.0  # F(2) = 0.5 exactly: the lower value
    assert est.weighted_quantile(values, weights, 0.51) == 3.0
    assert est.weighted_quantile(values, np.array([1.0, 0.0, 1.0, 1.0]), 0.5) == 3.0  # weight 0 left out


# --- outputs, CLI, pipeline ----------------------------------------------------------------------------------------


def test_cli_writes_xlsx_csv_html_and_json(mini, tmp_path: Path) -> None:
    data, form_path = mini
    path = tmp_path / "cat.toml"
    path.write_text(
        "[quality]\nsuppress_below = 5\nparentheses_below = 8\n"
        + BASE
        + entry(id="yes_share", statistic="proportion", variable="q", yes=["1"], missing="exclude", domains=["sex"])
        + entry(id="mean_amount", statistic="mean", variable="amount", missing="exclude", title={"en": "=cmd|x"}),
        encoding="utf-8",
    )
    runner = CliRunner()
    done = runner.invoke(
        app,
        [
            "indicators",
            str(data),
            "--catalogue",
            str(path),
            "--form",
            str(form_path),
            "--out",
            str(tmp_path / "out"),
            "--json",
            "--variance",
            "taylor",
        ],
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    for row in result["rows"]:
        assert {row["table"], row["weight"], row["universe"]} == {"mini", "w", "(asked = '1')"}
        assert row["variables"] and row["domain"]
    book = load_workbook(tmp_path / "out" / "indicators.xlsx")
    assert book.sheetnames[1:] == ["yes_share", "mean_amount"]
    assert book["mean_amount"]["A1"].value.startswith("'=cmd")
    notes = [c.value for c in book["yes_share"]["A"] if c.value]
    assert any(str(n).startswith("Definition") for n in notes) and any("Universe" in str(n) for n in notes)
    page = (tmp_path / "out" / "indicators.html").read_text(encoding="utf-8")
    assert "<svg" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    csv_text = (tmp_path / "out" / "indicators.csv").read_text(encoding="utf-8-sig")
    assert csv_text.splitlines()[0].startswith("title,indicator,statistic")
    # 7 cases: between the thresholds 5 and 8 of this catalogue, so in parentheses; the 3-4 case domains suppressed
    flags = {(row["indicator"], row["domain_value"]): row["flags"] for row in result["rows"]}
    assert flags[("yes_share", "all")] == ["parentheses"] and "suppressed" in flags[("yes_share", "1")]
    bad = runner.invoke(app, ["indicators", str(data), "--catalogue", str(path), "--lang", "de"])
    assert bad.exit_code == 2


def test_survey_toml_indicators_section_and_index(tmp_path: Path) -> None:
    config = tmp_path / "survey.toml"
    config.write_text(
        '[survey]\nform = "f.xlsx"\n[ingest]\ninputs = ["x"]\n[indicators]\ncatalogue = "c.toml"\nlanguage = "ru"\n',
        encoding="utf-8",
    )
    parsed = SurveyConfig.from_file(config)
    assert parsed.indicators_catalogue == (tmp_path / "c.toml").resolve() and parsed.indicators_language == "ru"
    config.write_text(
        '[survey]\nform = "f.xlsx"\n[ingest]\ninputs = ["x"]\n[indicators]\nlanguage = "ru"\n', encoding="utf-8"
    )
    with pytest.raises(Exception, match="catalogue"):
        SurveyConfig.from_file(config)
    (tmp_path / "indicators").mkdir()
    (tmp_path / "indicators" / "indicators.html").write_text("x", encoding="utf-8")
    result = PipelineResult(
        "demo",
        str(tmp_path),
        (
            StageOutcome("indicators", "ok", "2 rows", outputs=(str(tmp_path / "indicators" / "indicators.html"),)),
            StageOutcome("export", "skipped", "not configured"),
        ),
    )
    page = render_index(result)
    assert 'href="indicators/indicators.html"' in page and "skipped" in page


@pytest.mark.parametrize(("rows", "columns", "rank"), [(50, 12, 12), (50, 12, 7), (7, 20, 6), (300, 40, 25), (5, 5, 1)])
def test_replicate_rank_is_rs_qr_rank(rows: int, columns: int, rank: int) -> None:
    """The df of Korn–Graubard under replicate weights is R's qr()$rank - 1: columns that are combinations of
    earlier ones (up to noise far below R's 1e-5 tolerance) do not count, a zero column does not count."""
    from toolkit.indicators.compute import _rank_as_r

    rng = np.random.default_rng(rows * columns + rank)
    matrix = rng.uniform(200, 600, (rows, rank)) @ rng.uniform(0, 1, (rank, columns))
    matrix += rng.normal(0, 1e-9, matrix.shape)  # rounding noise, as calibrated replicates carry
    assert _rank_as_r(matrix) == rank
    assert _rank_as_r(np.hstack([np.zeros((rows, 1)), matrix])) == rank  # a zero column never counts
    assert _rank_as_r(np.zeros((rows, columns))) == 0


@pytest.mark.parametrize(("households", "columns", "rank"), [(40, 12, 12), (40, 12, 7), (6, 20, 5), (300, 40, 25)])
def test_replicate_rank_on_distinct_rows_is_the_rank_on_every_row(households: int, columns: int, rank: int) -> None:
    """Members of a household share their replicate weights; the rank is taken on each distinct row once, scaled by
    the square root of its count (the same Gram matrix), and equals the rank over every row, for any subset."""
    from toolkit.indicators.compute import _DistinctRows, _rank_as_r

    rng = np.random.default_rng(households * columns + rank)
    per_household = rng.uniform(200, 600, (households, rank)) @ rng.uniform(0, 1, (rank, columns))
    per_household += rng.normal(0, 1e-9, per_household.shape)
    matrix = np.repeat(per_household, rng.integers(1, 9, households), axis=0)
    distinct = _DistinctRows.of(matrix)
    assert len(distinct.rows) == households
    for selected in (np.ones(len(matrix), dtype=bool), rng.random(len(matrix)) < 0.3):
        assert _rank_as_r(distinct.gram_equivalent(selected)) == _rank_as_r(matrix[selected])
        assert np.allclose(
            distinct.gram_equivalent(selected).T @ distinct.gram_equivalent(selected),
            matrix[selected].T @ matrix[selected],
        )


@pytest.mark.parametrize(
    ("values", "dtype", "texts"),
    [
        ([1.0, 2.0, None, 1.0], "Float64", ["1", "2", None, "1"]),
        ([1.0, 2.5, None, 1.0], "Float64", ["1.0", "2.5", None, "1.0"]),
        ([0.0, -0.0, 1.5], "Float64", ["0.0", "-0.0", "1.5"]),  # hashing takes -0.0 for 0.0: kept apart
        ([0.0, -0.0, 1.0], "float64", ["0", "0", "1"]),
        ([3, None, 3, 7], "Int64", ["3", None, "3", "7"]),
        ([" 2", "", None, "x "], "string", ["2", None, None, "x"]),
    ],
)
def test_codes_as_text(values: list, dtype: str, texts: list) -> None:
    """Codes compare as text: numbers written once per distinct value, each row as its own value would be."""
    from toolkit.indicators.compute import as_text

    found = as_text(pd.Series(values, dtype=dtype)).tolist()
    assert [None if pd.isna(v) else v for v in found] == texts
