"""Design-based estimates: the §3.1 golden rows (NHANES II Taylor, bootstrap, BRR, JKn), lonely PSUs, the t
quantile and the `migkit estimate` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from typer.testing import CliRunner

from tests.test_weights import oracle_file, samplics_csv
from toolkit.cli import app
from toolkit.errors import ToolkitError
from toolkit.estimate import estimate, make_design, t_quantile, taylor_variance

runner = CliRunner()


@pytest.fixture(scope="module")
def nhanes() -> pd.DataFrame:
    return samplics_csv("nhanes2.csv")


def _row(res, domain: str = "all", variable: str | None = None):
    return next(r for r in res.rows if r.domain == domain and (variable is None or r.variable == variable))


def test_nhanes_mean_zinc(nhanes: pd.DataFrame) -> None:
    res = estimate(
        nhanes, weight="finalwgt", statistic="mean", variable="zinc", strata="stratid", psu="psuid"
    )
    row = res.rows[0]
    assert (round(row.estimate, 6), round(row.se, 6)) == (87.182067, 0.494483)
    assert (round(row.ci_low, 6), round(row.ci_high, 6)) == (86.173563, 88.190571)
    assert row.df == 31 and row.n == 9189


@pytest.mark.parametrize(
    ("race", "mean", "se"),
    [("1", 87.495389, 0.479196), ("2", 85.085744, 1.165209), ("3", 83.570910, 1.585463)],
)
def test_nhanes_domains_without_subsetting(nhanes: pd.DataFrame, race: str, mean: float, se: float) -> None:
    res = estimate(
        nhanes, weight="finalwgt", statistic="mean", variable="zinc", by="race", strata="stratid", psu="psuid"
    )
    row = _row(res, race)
    assert (round(row.estimate, 6), round(row.se, 6)) == (mean, se)
    assert row.df == 31  # the whole design, not the domain's PSUs


def test_nhanes_without_strata(nhanes: pd.DataFrame) -> None:
    row = estimate(nhanes, weight="finalwgt", statistic="mean", variable="zinc", psu="psuid").rows[0]
    assert (round(row.estimate, 6), round(row.se, 6), row.df) == (87.182067, 0.742622, 1)


def test_nhanes_proportion(nhanes: pd.DataFrame) -> None:
    res = estimate(
        nhanes, weight="finalwgt", statistic="proportion", variable="highbp", strata="stratid", psu="psuid"
    )
    row = _row(res, variable="highbp=1")
    assert (round(row.estimate, 6), round(row.se, 6)) == (0.368743, 0.014320)
    assert sum(r.estimate for r in res.rows) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mse", "scale", "se"),
    [
        # samplics divides by B (scale 1/50), R `svrepdesign(type = "bootstrap")` by B − 1 (our default).
        (False, 1 / 50, 31.053792),
        (True, 1 / 50, 31.127555),
        (False, None, round(31.053792 * (50 / 49) ** 0.5, 6)),
        (None, None, round(31.053792 * (50 / 49) ** 0.5, 6)),
    ],
)
def test_bootstrap_replicates(mse: bool | None, scale: float | None, se: float) -> None:
    data = samplics_csv("nmihs_subset.csv")
    row = estimate(
        data,
        weight="finalwgt",
        statistic="mean",
        variable="birth_weight",
        replicate_prefix="bsrw",
        method="bootstrap",
        mse=mse,
        scale=scale,
    ).rows[0]
    assert (round(row.estimate, 6), round(row.se, 6)) == pytest.approx((2679.127143, se), abs=1.5e-6)
    assert row.df == 49


@pytest.mark.parametrize(
    ("file", "prefix", "method", "expected"),
    [
        ("nhanes2brr_subset.csv", "brr_", "brr", (0.426082, 0.002730)),
        ("nhanes2jk_subset.csv", "jkw_", "jkn", (0.423502, 0.003464)),  # JKn coefficient (n_h − 1)/n_h = 0.5
    ],
)
def test_ratio_with_replicates(file: str, prefix: str, method: str, expected: tuple[float, float]) -> None:
    data = samplics_csv(file)
    row = estimate(
        data,
        weight="finalwgt",
        statistic="ratio",
        variable="weight",
        denominator="height",
        replicate_prefix=prefix,
        method=method,
    ).rows[0]  # type: ignore[arg-type]
    assert (round(row.estimate, 6), round(row.se, 6)) == expected


def test_total_is_sum_of_weighted_values(nhanes: pd.DataFrame) -> None:
    row = estimate(
        nhanes, weight="finalwgt", statistic="total", variable="highbp", strata="stratid", psu="psuid"
    ).rows[0]
    assert row.estimate == pytest.approx(float((nhanes["finalwgt"] * nhanes["highbp"]).sum()))
    assert row.se > 0


LONELY = pd.DataFrame(
    {"h": [1, 1, 1, 1, 2, 2], "p": [1, 1, 2, 2, 3, 3], "w": [1.0] * 6, "y": [1.0, 2.0, 3.0, 5.0, 4.0, 6.0]}
)


def test_lonely_psu_is_an_error_by_default() -> None:
    with pytest.raises(ToolkitError) as info:
        estimate(LONELY, weight="w", statistic="total", variable="y", strata="h", psu="p")
    assert info.value.issue.code == "estimate.lonely_psu" and "2" in info.value.issue.message


@pytest.mark.parametrize(
    ("option", "var_total", "var_mean"),
    [
        # Values from R survey 4.1 (options(survey.lonely.psu = ...); svytotal/svymean on this design).
        # Stratum 1: PSU totals 3 and 8, n_h = 2 → 2·((3−5.5)² + (8−5.5)²) = 25; stratum 2 has one PSU (total
        # 10).
        ("certainty", 25.0, 0.6944444),  # no contribution
        ("average", 50.0, 1.388889),  # the mean contribution of the other strata
        ("adjust", 125.0, 0.9444444),  # the single PSU centred at zero: 25 + 10²
    ],
)
def test_lonely_psu_options_match_r(option: str, var_total: float, var_mean: float) -> None:
    common = {"weight": "w", "variable": "y", "strata": "h", "psu": "p", "lonely_psu": option}
    total = estimate(LONELY, statistic="total", **common).rows[0]  # type: ignore[arg-type]
    mean = estimate(LONELY, statistic="mean", **common).rows[0]  # type: ignore[arg-type]
    assert total.se**2 == pytest.approx(var_total)
    assert mean.se**2 == pytest.approx(var_mean, rel=1e-6)


def test_taylor_variance_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1, 2], [4, 3, 5])
    psu = np.arange(12)
    design = make_design(12, strata, psu)
    z = rng.normal(size=12)
    v = taylor_variance(z, design)[0]
    expected = sum(
        len(z[strata == h])
        / (len(z[strata == h]) - 1)
        * ((z[strata == h] - z[strata == h].mean()) ** 2).sum()
        for h in range(3)
    )
    assert v == pytest.approx(expected)


@pytest.mark.parametrize(
    ("p", "df", "q"),
    [
        (0.975, 31, 2.0395134464),
        (0.975, 1, 12.7062047362),
        (0.95, 10, 1.8124611228),
        (0.025, 26, -2.0555294386),
    ],
)
def test_t_quantile(p: float, df: float, q: float) -> None:
    assert t_quantile(p, df) == pytest.approx(q, abs=1e-8)


# --- CLI ----------------------------------------------------------------------------------------------------


def _nhanes_path() -> Path:
    return oracle_file("samplics", "samplics/datasets/data/nhanes2.csv")


def _estimate_cli(path: Path, *args: str):
    design = ["--weight", "finalwgt", "--strata", "stratid", "--psu", "psuid"]
    return runner.invoke(app, ["estimate", str(path), *design, *args])


def test_cli_estimate_json_rows() -> None:
    result = _estimate_cli(_nhanes_path(), "--mean", "zinc", "--by", "race", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["command"], payload["ok"], payload["method"], payload["issues"]) == ("estimate", True, "taylor", [])
    rows = payload["rows"]
    assert [r["domain"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == {
        "domain",
        "statistic",
        "variable",
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "df",
        "n",
        "deff",
    }
    assert round(rows[1]["se"], 6) == 1.165209


def test_cli_estimate_table_and_formats(tmp_path: Path, nhanes: pd.DataFrame) -> None:
    dta = tmp_path / "nhanes.dta"
    pyreadstat.write_dta(nhanes.drop(columns=["highlead"]), str(dta))
    result = _estimate_cli(dta, "--ratio", "zinc", "finalwgt")
    assert result.exit_code == 0, result.output
    assert "ratio" in result.stdout and "zinc/f" in result.stdout and "9189" in result.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--mean", "zinc", "--total", "zinc"], 2),  # two statistics
        (["--mean", "zinc", "--method", "jkn"], 2),  # method without replicate weights
        (["--mean", "nope"], 2),  # unknown column
        (["--mean", "zinc", "--replicate-weights", "zz_", "--method", "jkn"], 2),  # no such replicate columns
    ],
)
def test_cli_estimate_usage_errors(args: list[str], code: int) -> None:
    result = runner.invoke(app, ["estimate", str(_nhanes_path()), "--weight", "finalwgt", *args])
    assert result.exit_code == code, result.output


def test_cli_estimate_lonely_psu_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "lonely.csv"
    LONELY.to_csv(path, index=False)
    base = ["estimate", str(path), "--weight", "w", "--strata", "h", "--psu", "p", "--total", "y"]
    assert runner.invoke(app, base).exit_code == 1
    assert runner.invoke(app, [*base, "--lonely-psu", "certainty"]).exit_code == 0


def test_missing_design_values_are_refused() -> None:
    data = LONELY.astype({"p": "float"}).copy()
    data.loc[3, "p"] = np.nan
    with pytest.raises(ToolkitError) as info:
        estimate(data, weight="w", statistic="mean", variable="y", strata="h", psu="p")
    assert info.value.issue.code == "estimate.design_missing" and info.value.issue.location.row == 4


def test_zero_weight_rows_stay_in_the_design_but_not_in_n() -> None:
    data = LONELY.assign(h=[1, 1, 1, 1, 2, 2], p=[1, 1, 2, 2, 3, 4])
    data.loc[0, "w"] = 0.0
    row = estimate(data, weight="w", statistic="mean", variable="y", strata="h", psu="p").rows[0]
    assert row.n == 5 and row.df == 2
    assert row.estimate == pytest.approx(data["y"][1:].mean())


def test_proportions_by_domain_sum_to_one(nhanes: pd.DataFrame) -> None:
    res = estimate(
        nhanes,
        weight="finalwgt",
        statistic="proportion",
        variable="highbp",
        by="race",
        strata="stratid",
        psu="psuid",
    )
    assert len(res.rows) == 6
    for race in ("1", "2", "3"):
        rows = [r for r in res.rows if r.domain == race]
        assert sum(r.estimate for r in rows) == pytest.approx(1.0)
        assert rows[0].se == pytest.approx(rows[1].se)  # p and 1 − p have the same SE
