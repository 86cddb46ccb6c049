"""Weights and estimates against R `survey` (the reference implementation, specs/weights.md §0.2 and §4.9).

tests/fixtures/weights_r/ holds a small synthetic stratified cluster sample (data.csv: 5 strata × 3 PSUs, 279
units, seeded numpy draws) and the values R `survey` 4.1 computed from it with make_expected.R:
`calibrate(calfun="raking")` to its fixed point, linear GREG with a numeric auxiliary, logit calibration with
bounds (0.5, 2), `postStratify`, and `svymean`/`svyratio`/`svytotal`/`svyby` Taylor SEs, and JKn replicate SEs
with and without raking rerun on every replicate. R is not needed to run these tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.estimate import estimate, make_design
from toolkit.weights import Margin, calibrate, poststratify, rake, replicate_factors

FIXTURE = Path(__file__).parent / "fixtures" / "weights_r"
N = 7000.0
POP_A = {"1": 0.45 * N, "2": 0.33 * N, "3": 0.22 * N}
POP_B = {"1": 0.52 * N, "2": 0.48 * N}
POP_X = 215000.0


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(FIXTURE / "data.csv")


@pytest.fixture(scope="module")
def expected() -> pd.DataFrame:
    return pd.read_csv(FIXTURE / "expected_weights.csv")


MARGINS = [Margin("a", POP_A), Margin("b", POP_B)]


def test_raking_fixed_point_matches_r(data: pd.DataFrame, expected: pd.DataFrame) -> None:
    ours = rake(data, data["d"].to_numpy(), MARGINS, tol=1e-14, max_iter=5_000)
    np.testing.assert_allclose(ours.weights, expected["raking"], rtol=1e-10)


def test_linear_greg_matches_r(data: pd.DataFrame, expected: pd.DataFrame) -> None:
    ours = calibrate(data, data["d"].to_numpy(), MARGINS, totals={"x": POP_X}, method="linear")
    np.testing.assert_allclose(ours.weights, expected["linear"], rtol=1e-10)


def test_logit_calibration_matches_r(data: pd.DataFrame, expected: pd.DataFrame) -> None:
    ours = calibrate(data, data["d"].to_numpy(), MARGINS, method="logit", bounds=(0.5, 2.0), tol=1e-13)
    np.testing.assert_allclose(ours.weights, expected["logit"], rtol=1e-9)


def test_poststratification_matches_r(data: pd.DataFrame, expected: pd.DataFrame) -> None:
    ours = poststratify(data, data["d"].to_numpy(), MARGINS[0])
    np.testing.assert_allclose(ours.weights, expected["poststratify"], rtol=1e-12)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("mean_y", {"statistic": "mean", "variable": "y"}),
        ("ratio_y_x", {"statistic": "ratio", "variable": "y", "denominator": "x"}),
        ("total_y", {"statistic": "total", "variable": "y"}),
        ("mean_y_a", {"statistic": "mean", "variable": "y", "by": "a"}),
    ],
)
def test_taylor_matches_r(data: pd.DataFrame, name: str, options: dict) -> None:
    ref = pd.read_csv(FIXTURE / "expected_estimates.csv").set_index("name")
    res = estimate(data, weight="d", strata="stratum", psu="psu", **options)
    for row in res.rows:
        key = name if options.get("by") is None else f"{name}{row.domain}"
        assert row.estimate == pytest.approx(ref.loc[key, "estimate"], rel=1e-12)
        assert row.se == pytest.approx(ref.loc[key, "se"], rel=1e-10)


@pytest.mark.parametrize(("name", "raked"), [("jkn_mean_y", False), ("jkn_raked_mean_y", True)])
def test_jkn_replicates_rerun_raking_like_r(data: pd.DataFrame, name: str, raked: bool) -> None:
    """JKn replicate factors, raking rerun on every replicate, variance centred on the full-sample estimate:
    R `calibrate()` on `as.svrepdesign(type = "JKn", mse = TRUE)`."""
    ref = pd.read_csv(FIXTURE / "expected_estimates.csv").set_index("name").loc[name]
    design = make_design(len(data), data["stratum"].to_numpy(), data["psu"].to_numpy())
    factors = replicate_factors(design, "jkn")
    d = data["d"].to_numpy()

    def final(w: np.ndarray) -> np.ndarray:
        return rake(data, w, MARGINS, tol=1e-14, max_iter=5_000).weights if raked else w

    table = data.assign(w=final(d))
    for r in range(factors.factors.shape[1]):
        table[f"rep_{r + 1}"] = final(d * factors.factors[design.psu, r])
    row = estimate(
        table,
        weight="w",
        statistic="mean",
        variable="y",
        strata="stratum",
        psu="psu",
        replicate_prefix="rep_",
        method="jkn",
        mse=True,
    ).rows[0]
    assert row.estimate == pytest.approx(ref["estimate"], rel=1e-12)
    assert row.se == pytest.approx(ref["se"], rel=1e-9)


@pytest.mark.parametrize(
    ("name", "fay"), [("brr_total_y", 0.0), ("fay_total_y", 0.5), ("taylor_2psu_total_y", None)]
)
def test_brr_and_fay_match_r(data: pd.DataFrame, name: str, fay: float | None) -> None:
    """Two PSUs per stratum (PSU 3 dropped): BRR and Fay (ρ = 0.5) replicate SEs of a total equal R's (a fully
    balanced BRR gives the same variance for a total whatever the Hadamard matrix) and the Taylor SE."""
    ref = pd.read_csv(FIXTURE / "expected_estimates.csv").set_index("name").loc[name]
    two = data[~data["psu"].str.endswith("-3")].reset_index(drop=True)
    if fay is None:
        row = estimate(two, weight="d", statistic="total", variable="y", strata="stratum", psu="psu").rows[0]
    else:
        design = make_design(len(two), two["stratum"].to_numpy(), two["psu"].to_numpy())
        factors = replicate_factors(design, "brr", fay=fay)
        table = two.copy()
        for r in range(factors.factors.shape[1]):
            table[f"rep_{r + 1}"] = two["d"].to_numpy() * factors.factors[design.psu, r]
        row = estimate(
            table, weight="d", statistic="total", variable="y", replicate_prefix="rep_", method="brr", fay=fay
        ).rows[0]
    assert row.estimate == pytest.approx(ref["estimate"], rel=1e-12)
    assert row.se == pytest.approx(ref["se"], rel=1e-10)
