"""Weighting core: golden values from the samplics and svy wheels (specs/weights.md §3), raking against an
independent implementation, the §2.3 edge cases as expected errors, GREG, trimming, nonresponse classes and
replicate factors."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import svy  # test oracle (specs/weights.md §0.2); never imported by toolkit code
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from toolkit.estimate import estimate, make_design
from toolkit.weights import (
    Margin,
    WeightingError,
    calibrate,
    first_stage_probabilities,
    margins_from_frame,
    nonresponse_adjust,
    poststratify,
    rake,
    replicate_factors,
    trim,
    trim_cap,
    weight_summary,
)
from toolkit.weights.replicates import hadamard


def oracle_file(dist: str, relative: str) -> Path:
    """A data file shipped inside an installed test-oracle wheel, found by path (never imported). Fails if
    absent."""
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(relative))
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"test oracle {dist} is not installed; run `make test` (pip install -e '.[test]')")
    if not path.is_file():
        pytest.fail(f"oracle data file missing from the {dist} wheel: {path}")
    return path


def samplics_csv(name: str) -> pd.DataFrame:
    return pd.read_csv(oracle_file("samplics", f"samplics/datasets/data/{name}"), encoding="utf-8-sig")


def svy_parquet(name: str) -> pd.DataFrame:
    return pd.read_parquet(oracle_file("svy", f"svy/datasets/_bundled/{name}.parquet"))


# --- §3.2 samplics weighting tutorial chain -----------------------------------------------------------------


@pytest.fixture(scope="module")
def samplics_chain() -> pd.DataFrame:
    frame = samplics_csv("psu_frame.csv")
    psu_sample = samplics_csv("psu_sample.csv")
    ssu_sample = samplics_csv("ssu_sample.csv")
    # First stage from the frame: n_h = PSUs drawn per region, M_h = Σ census households of the region's
    # frame.
    n_h = psu_sample.groupby("region").size().astype(float).to_dict()
    m_h = frame.groupby("region")["number_households_census"].sum().astype(float).to_dict()
    sel = psu_sample.merge(frame[["cluster", "number_households_census"]], on="cluster")
    p1, cert, _ = first_stage_probabilities(sel["region"], sel["number_households_census"], n_h, m_h)
    assert not cert.any()
    np.testing.assert_allclose(p1, sel["psu_prob"], rtol=1e-13)
    sel["p1"] = p1
    full = sel.merge(ssu_sample, on="cluster")
    # Second stage: 15 of L listed households. The tutorial's listing counts are not shipped, only m/L; L is
    # an integer (and equals the census count in cluster 7, the spec's worked example).
    m = full.groupby("cluster")["household"].transform("size")
    listed = (m / full["ssu_prob"]).round()
    np.testing.assert_allclose(m / full["ssu_prob"], listed, rtol=1e-12)
    assert (listed[full["cluster"] == 7] == 130).all()
    p2 = m / listed
    np.testing.assert_allclose(p2, full["ssu_prob"], rtol=1e-13)
    full["design_weight"] = 1.0 / (full["p1"] * p2)
    # The tutorial's response status: legacy numpy stream, seed 7 (frozen, so reproducible).
    legacy = np.random.RandomState(7)
    full["response_status"] = legacy.choice(
        ["ineligible", "respondent", "non-respondent", "unknown"],
        size=full.shape[0],
        p=(0.10, 0.70, 0.15, 0.05),
    )
    full["status"] = full["response_status"].map(
        {"ineligible": "IN", "respondent": "ER", "non-respondent": "EN", "unknown": "UE"}
    )
    return full


def test_samplics_base_weights(samplics_chain: pd.DataFrame) -> None:
    c7 = samplics_chain[samplics_chain["cluster"] == 7].iloc[0]
    assert round(c7["p1"], 6) == 0.187726
    assert round(c7["design_weight"], 6) == 46.166667
    assert round(samplics_chain["design_weight"].sum(), 6) == 14440.626345


@pytest.mark.parametrize(
    ("to_inelig", "cluster", "status", "expected"),
    [
        (True, 7, "ER", 54.410714),
        (True, 7, "IN", 49.464286),
        (False, 7, "ER", 55.400000),
        (False, 7, "IN", 46.166667),
        (True, 10, "ER", 70.733929),
        (False, 10, "ER", 71.096667),
        (True, 7, "EN", 0.0),
        (True, 7, "UE", 0.0),
    ],
)
def test_samplics_nonresponse(
    samplics_chain: pd.DataFrame, to_inelig: bool, cluster: int, status: str, expected: float
) -> None:
    classes = samplics_chain["region"] + "|" + samplics_chain["cluster"].astype(str)
    res = nonresponse_adjust(
        samplics_chain["design_weight"], samplics_chain["status"], classes, unknown_to_ineligible=to_inelig
    )
    pick = (samplics_chain["cluster"] == cluster).to_numpy() & (samplics_chain["status"] == status).to_numpy()
    assert np.allclose(res.weights[pick], expected, atol=5e-7)
    assert res.weights.sum() == pytest.approx(14440.626345, abs=1e-6)


def test_samplics_poststratification(samplics_chain: pd.DataFrame) -> None:
    classes = samplics_chain["region"] + "|" + samplics_chain["cluster"].astype(str)
    nr = nonresponse_adjust(samplics_chain["design_weight"], samplics_chain["status"], classes).weights
    targets = Margin("region", {"East": 3700, "North": 1500, "South": 2800, "West": 6500})
    res = poststratify(samplics_chain, nr, targets)
    totals = pd.Series(res.weights).groupby(samplics_chain["region"].to_numpy()).sum()
    for region, target in targets.targets.items():
        assert totals[region] == pytest.approx(target, rel=1e-13)
    assert res.max_rel_error < 1e-12


# --- §3.3 World Bank synthetic census and sample (svy wheel) ------------------------------------------------


@pytest.fixture(scope="module")
def wb_sample() -> pd.DataFrame:
    frame = svy_parquet("ea_frame_wb_2023")
    census = svy_parquet("hld_pop_wb_2023")
    sample = svy_parquet("hld_sample_wb_2023").copy()
    frame["stratum"] = frame["geo1"] + "|" + frame["urbrur"]
    sample["stratum"] = sample["geo1"] + "|" + sample["urbrur"]
    eas = sample.groupby("ea").agg(stratum=("stratum", "first"), m=("hid", "size")).reset_index()
    eas = eas.merge(frame[["ea", "n_hlds_census"]], on="ea")
    n_h = eas.groupby("stratum").size().astype(float).to_dict()
    m_h = frame.groupby("stratum")["n_hlds_census"].sum().astype(float).to_dict()
    p1, _, _ = first_stage_probabilities(eas["stratum"], eas["n_hlds_census"], n_h, m_h)
    listed = census.groupby("ea").size()  # L = the census count of the EA
    eas["d"] = 1.0 / (p1 * (eas["m"] / eas["ea"].map(listed)))
    sample["d"] = sample["ea"].map(eas.set_index("ea")["d"])
    return sample


def test_wb_base_weights_reproduce_hhweight(wb_sample: pd.DataFrame) -> None:
    rel = np.abs(wb_sample["d"] / wb_sample["hhweight"] - 1.0)
    assert rel.max() < 1e-12
    assert wb_sample["d"].sum() == pytest.approx(57_867, rel=1e-12)


def test_wb_weight_diagnostics(wb_sample: pd.DataFrame) -> None:
    s = weight_summary(wb_sample["d"].to_numpy())
    assert round(s["deff_kish"], 4) == 1.0372
    assert round(s["n_eff"], 1) == 795.4
    assert round(s["max_min_ratio"], 3) == 1.742


@pytest.mark.parametrize(
    ("variable", "expected", "se"),
    [("pc_exp", 3810.0716, 216.5374), ("share_food", 0.333780, 0.013292), ("hhsize", 3.867853, 0.275491)],
)
def test_wb_taylor_against_svy(wb_sample: pd.DataFrame, variable: str, expected: float, se: float) -> None:
    res = estimate(wb_sample, weight="d", statistic="mean", variable=variable, strata="stratum", psu="ea")
    row = res.rows[0]
    assert row.df == 26
    assert row.estimate == pytest.approx(expected, abs=0.6 * 10 ** -(len(str(expected).split(".")[1])))
    assert row.se == pytest.approx(se, abs=0.6 * 10 ** -(len(str(se).split(".")[1])))


# --- Raking -------------------------------------------------------------------------------------------------


def _independent_ipf(frame: pd.DataFrame, w: np.ndarray, margins: dict[str, dict[str, float]], tol: float):
    """Unit-level raking written the textbook way with pandas groupby (an implementation independent of
    ours)."""
    w = w.copy()
    for _ in range(10_000):
        for var, targets in margins.items():
            sums = pd.Series(w).groupby(frame[var].astype(str).to_numpy()).sum()
            w = w * frame[var].astype(str).map(lambda lev, s=sums, t=targets: t[lev] / s[lev]).to_numpy()
        worst = max(
            abs(pd.Series(w).groupby(frame[var].astype(str).to_numpy()).sum()[lev] / t - 1)
            for var, targets in margins.items()
            for lev, t in targets.items()
        )
        if worst < tol:
            return w
    raise AssertionError("reference IPF did not converge")


def _synthetic(n: int, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray, list[Margin]]:
    """The §2 comparison data (region 8 × urban 2 × age 6 × sex 2, targets off the sample), from bench/."""
    spec = importlib.util.spec_from_file_location("bench_weights", REPO / "bench" / "weights.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_data(n, seed=seed)


def test_rake_matches_independent_ipf() -> None:
    frame, w, margins = _synthetic(5_000)
    ours = rake(frame, w, margins, tol=1e-13, max_iter=5_000)
    ref = _independent_ipf(frame, w, {m.variable: dict(m.targets) for m in margins}, tol=1e-13)
    assert ours.converged
    assert np.max(np.abs(ours.weights / ref - 1)) < 1e-10
    for fit in ours.margins:
        assert fit["rel_error"] < 1e-12


def test_rake_reports_diagnostics_and_fit() -> None:
    frame, w, margins = _synthetic(2_000)
    res = rake(frame, w, margins)
    assert res.converged and res.max_rel_error <= 1e-6
    assert 1 < res.iterations < 100
    d = res.diagnostics
    assert d["n"] == 2_000 and d["sum"] == pytest.approx(25e6, rel=1e-6)
    assert d["deff_kish"] == pytest.approx(1 + d["cv"] ** 2, rel=1e-12)
    assert d["n_eff"] == pytest.approx(d["n"] / d["deff_kish"], rel=1e-12)
    assert {"min", "mean", "max"} <= set(d["factor"])
    assert len(res.margins) == 8 + 2 + 6 + 2


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(30, 300),
    seed=st.integers(0, 10_000),
    shares=st.lists(st.floats(0.2, 5.0), min_size=3, max_size=3),
)
def test_rake_reproduces_margins(n: int, seed: int, shares: list[float]) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.integers(0, 3, n), "b": rng.choice(["x", "y"], n)})
    frame.loc[:2, "a"] = [0, 1, 2]
    frame.loc[:1, "b"] = ["x", "y"]
    w = rng.uniform(0.5, 3.0, n)
    total = 1000.0
    ma = Margin("a", {str(i): total * s / sum(shares) for i, s in enumerate(shares)})
    mb = Margin("b", {"x": 400.0, "y": 600.0})
    res = rake(frame, w, [ma, mb], tol=1e-9, max_iter=2_000, on_nonconvergence="warn")
    if res.converged:
        for fit in res.margins:
            assert fit["achieved"] == pytest.approx(fit["target"], rel=1e-8)
        assert (res.weights > 0).all()


# §2.3 edge cases and the other pre-flight refusals.
EDGE = pd.DataFrame({"sex": ["m", "f"] * 250, "age": ["young", "old", "old", "young"] * 125})


@pytest.mark.parametrize(
    ("margins", "code"),
    [
        # A: target level absent from the sample
        (
            [Margin("sex", {"m": 300, "f": 200, "x": 100}), Margin("age", {"young": 300, "old": 300})],
            "weights.target_level_absent",
        ),
        # C: margin totals 600 vs 800
        (
            [Margin("sex", {"m": 300, "f": 300}), Margin("age", {"young": 400, "old": 400})],
            "weights.margin_totals_differ",
        ),
        # sample level absent from the targets
        (
            [Margin("sex", {"m": 600}), Margin("age", {"young": 300, "old": 300})],
            "weights.sample_level_absent",
        ),
        # variable not in the table
        ([Margin("region", {"n": 600})], "weights.margin_variable_missing"),
    ],
)
def test_rake_refuses_bad_margins(margins: list[Margin], code: str) -> None:
    with pytest.raises(WeightingError) as info:
        rake(EDGE, np.ones(len(EDGE)), margins)
    assert code in {i.code for i in info.value.issues}
    assert info.value.exit_code == 1


def test_calibrate_without_margins_or_totals_is_a_data_problem() -> None:
    with pytest.raises(WeightingError) as info:
        calibrate(EDGE, np.ones(len(EDGE)), [])
    assert [i.code for i in info.value.issues] == ["weights.target_invalid"]
    assert info.value.exit_code == 1


def test_rake_refuses_missing_values() -> None:
    frame = EDGE.copy()
    frame.loc[7, "sex"] = None
    with pytest.raises(WeightingError) as info:
        rake(frame, np.ones(len(frame)), [Margin("sex", {"m": 300, "f": 300})])
    issue = info.value.issues[0]
    assert issue.code == "weights.margin_missing_values" and issue.location.row == 8


def test_rake_zero_target_gives_zero_weights_and_warns() -> None:  # case B
    res = rake(
        EDGE,
        np.ones(len(EDGE)),
        [Margin("sex", {"m": 0, "f": 600}), Margin("age", {"young": 300, "old": 300})],
    )
    assert (res.weights[EDGE["sex"] == "m"] == 0).all()
    assert res.weights.sum() == pytest.approx(600)
    assert "weights.zero_target" in {i.code for i in res.issues}


def test_rake_nonconvergence_is_an_error_unless_warn() -> None:
    frame, w, margins = _synthetic(1_000)
    with pytest.raises(WeightingError) as info:
        rake(frame, w, margins, tol=1e-12, max_iter=2)
    assert info.value.issues[0].code == "weights.not_converged"
    res = rake(frame, w, margins, tol=1e-12, max_iter=2, on_nonconvergence="warn")
    assert not res.converged and res.iterations == 2
    assert res.issues[-1].code == "weights.not_converged"


# Every a=1 case has b=1, so Σw(b=1) ≥ Σw(a=1): targets a=1 → 80 and b=1 → 20 cannot both be met. IPF then drives
# the factor of the cell (a=2, b=1) to 0 and the others towards overflow; an error that became NaN once passed for
# "converged" (max() dropped it) with weights that missed a=1 by a factor of 4.
IMPOSSIBLE = pd.DataFrame({"a": ["1"] * 5 + ["2"] * 5, "b": ["1"] * 6 + ["2"] * 4})
IMPOSSIBLE_MARGINS = [Margin("a", {"1": 80.0, "2": 20.0}), Margin("b", {"1": 20.0, "2": 80.0})]


def test_rake_impossible_margins_are_an_error() -> None:
    with pytest.raises(WeightingError) as info:
        rake(IMPOSSIBLE, np.ones(10), IMPOSSIBLE_MARGINS, max_iter=1_000)
    assert info.value.issues[0].code == "weights.not_converged"


def test_rake_impossible_margins_with_warn_report_the_real_fit() -> None:
    res = rake(IMPOSSIBLE, np.ones(10), IMPOSSIBLE_MARGINS, max_iter=1_000, on_nonconvergence="warn")
    assert not res.converged
    assert res.issues[-1].code == "weights.not_converged"
    assert np.isfinite(res.weights).all()
    fit = {(m["variable"], m["level"]): m for m in res.margins}
    assert all(np.isfinite(m["achieved"]) and np.isfinite(m["rel_error"]) for m in fit.values())
    achieved_a1 = float(res.weights[IMPOSSIBLE["a"] == "1"].sum())
    assert fit[("a", "1")]["achieved"] == pytest.approx(achieved_a1)
    assert res.max_rel_error == max(m["rel_error"] for m in fit.values()) > 1e-6


def test_calibrate_raking_impossible_margins_do_not_converge() -> None:
    with pytest.raises(WeightingError) as info:
        calibrate(IMPOSSIBLE, np.ones(10), IMPOSSIBLE_MARGINS, method="raking", max_iter=1_000)
    assert info.value.issues[0].code == "weights.not_converged"


def test_margins_from_frame_checks_rows() -> None:
    frame = pd.DataFrame({"variable": ["sex", "sex", "sex"], "level": ["m", "f", "m"], "target": [1, "x", 2]})
    with pytest.raises(WeightingError) as info:
        margins_from_frame(frame)
    assert [i.location.row for i in info.value.issues] == [3, 4]


def test_levels_match_across_types() -> None:
    frame = pd.DataFrame({"sex": pd.array([1, 2, 1, 2], dtype="Int64")})
    res = rake(frame, np.ones(4), [Margin("sex", {"1": 10.0, "2": 30.0})])
    np.testing.assert_allclose(res.weights, [5, 15, 5, 15])


# --- Post-stratification and GREG ---------------------------------------------------------------------------


def test_poststratify_refuses_empty_cell() -> None:
    with pytest.raises(WeightingError):
        poststratify(EDGE, np.ones(len(EDGE)), Margin("sex", {"m": 1, "f": 1, "x": 1}))


def test_linear_greg_one_margin_equals_poststratification() -> None:
    frame, w, margins = _synthetic(3_000)
    lin = calibrate(frame, w, [margins[0]], method="linear")
    ps = poststratify(frame, w, margins[0])
    np.testing.assert_allclose(lin.weights, ps.weights, rtol=1e-10)


def test_linear_greg_meets_categorical_and_numeric_totals() -> None:
    frame, w, margins = _synthetic(3_000)
    frame["income"] = np.random.default_rng(1).gamma(2.0, 500.0, len(frame))
    target_income = float((w * frame["income"]).sum() * 25e6 / w.sum() * 1.05)
    res = calibrate(frame, w, margins[:2], totals={"income": target_income}, method="linear")
    assert res.max_rel_error < 1e-9
    assert float((res.weights * frame["income"]).sum()) == pytest.approx(target_income, rel=1e-9)


def test_raking_distance_equals_ipf() -> None:
    frame, w, margins = _synthetic(3_000)
    ipf = rake(frame, w, margins, tol=1e-12, max_iter=2_000)
    newton = calibrate(frame, w, margins, method="raking", tol=1e-13)
    np.testing.assert_allclose(newton.weights, ipf.weights, rtol=1e-9)


@pytest.mark.parametrize("method", ["logit", "linear_bounded"])
def test_bounded_calibration_keeps_g_in_bounds(method: str) -> None:
    rng = np.random.default_rng(5)
    n = 2_000
    frame = pd.DataFrame({"a": rng.integers(0, 4, n), "b": rng.integers(0, 3, n)})
    w = rng.uniform(1, 3, n)
    total = float(w.sum())
    ma = Margin("a", {str(k): total * s for k, s in enumerate((0.3, 0.3, 0.2, 0.2))})
    mb = Margin("b", {str(k): total * s for k, s in enumerate((0.5, 0.3, 0.2))})
    res = calibrate(frame, w, [ma, mb], method=method, bounds=(0.5, 1.8))  # type: ignore[arg-type]
    g = res.weights / w
    assert g.min() >= 0.5 - 1e-9 and g.max() <= 1.8 + 1e-9
    assert res.max_rel_error < 1e-8


# --- Nonresponse classes, trimming, base weights ------------------------------------------------------------


def test_nonresponse_collapse_map_and_guardrails() -> None:
    status = np.array(["ER"] * 30 + ["EN"] * 10 + ["ER"] * 3 + ["EN"] * 5)
    classes = np.array(["big"] * 40 + ["small"] * 8)
    res = nonresponse_adjust(np.ones(48), status, classes, min_respondents=20, collapse={"small": "big"})
    assert res.collapsed == (("small", "big"),)
    assert res.weights.sum() == pytest.approx(48)
    assert np.allclose(res.weights[status == "ER"], 48 / 33)
    no_map = nonresponse_adjust(np.ones(48), status, classes, min_respondents=20)
    assert "weights.class_small" in {i.code for i in no_map.issues}


def test_nonresponse_class_without_respondents_is_an_error() -> None:
    with pytest.raises(WeightingError) as info:
        nonresponse_adjust(np.ones(4), ["ER", "EN", "EN", "UE"], ["a", "a", "b", "b"])
    assert info.value.issues[0].code == "weights.no_respondents"


def test_trim_caps_and_keeps_the_total() -> None:
    w = np.array([1.0, 1, 1, 1, 1, 1, 1, 1, 1, 20])
    cap = trim_cap(w, method="median", value=3.5)
    assert cap == 3.5
    res = trim(w, cap=cap)
    assert res.weights.max() <= cap + 1e-9
    assert res.weights.sum() == pytest.approx(w.sum())
    assert res.n_trimmed == 1
    assert res.mass_moved == pytest.approx(16.5, rel=1e-12)
    # the excess goes to the others in proportion to their weights (equal here)
    assert np.allclose(res.weights[:9], res.weights[0])


def test_trim_within_classes() -> None:
    w = np.array([1.0, 1, 10, 2, 2, 2])
    res = trim(w, cap=5.0, classes=["a", "a", "a", "b", "b", "b"])
    assert res.weights[:3].sum() == pytest.approx(12) and res.weights[3:].sum() == pytest.approx(6)


def test_certainty_units_are_removed_iteratively() -> None:
    # Stratum with M_h = 1000, n_h = 3: EA of 500 is certain (3·500 ≥ 1000); then n=2, M=500: EA of 300 is
    # certain too (2·300 ≥ 500); the last EA gets p1 = 1·100/200.
    p1, cert, issues = first_stage_probabilities(
        ["h"] * 3, [500, 300, 100], {"h": 3}, {"h": 1000}, ids=["a", "b", "c"]
    )
    assert cert.tolist() == [True, True, False]
    np.testing.assert_allclose(p1, [1.0, 1.0, 0.5])
    assert [i.value for i in issues] == ["a", "b"]


# --- Replicate factors --------------------------------------------------------------------------------------


def test_replicate_factors_structure() -> None:
    design = make_design(8, np.array([1, 1, 2, 2, 3, 3, 3, 4]), np.array([1, 2, 1, 2, 1, 2, 3, 9]))
    with pytest.raises(WeightingError):
        replicate_factors(design, "jkn")  # stratum 4 has one PSU
    design = make_design(7, np.array([1, 1, 2, 2, 3, 3, 3]), np.array([1, 2, 1, 2, 1, 2, 3]))
    jkn = replicate_factors(design, "jkn")
    assert jkn.factors.shape == (7, 7)
    np.testing.assert_allclose(jkn.factors[:, 4], [1, 1, 1, 1, 0, 1.5, 1.5])
    np.testing.assert_allclose(jkn.coefficients, [0.5, 0.5, 0.5, 0.5, 2 / 3, 2 / 3, 2 / 3])
    boot = replicate_factors(design, "bootstrap", n_replicates=400, seed=1)
    assert boot.factors.shape == (7, 400)
    assert boot.factors.mean() == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(boot.coefficients, 1 / 399)  # R svrepdesign(type = "bootstrap"): 1/(R − 1)
    two = make_design(6, np.array([1, 1, 2, 2, 3, 3]), np.array([1, 2, 1, 2, 1, 2]))
    fay = replicate_factors(two, "brr", fay=0.5)
    assert fay.factors.shape == (6, 4)
    np.testing.assert_allclose(
        fay.factors.mean(axis=1), 1.0
    )  # balanced: each PSU is half-sampled equally often
    np.testing.assert_allclose(fay.coefficients, 1 / (4 * 0.25))
    h = hadamard(8)
    np.testing.assert_allclose(h @ h.T, 8 * np.eye(8))


@pytest.mark.parametrize(
    ("statistic", "args", "by"),
    [
        ("mean", ("pc_exp",), None),
        ("mean", ("share_food",), None),
        ("mean", ("hhsize",), None),
        ("total", ("hhsize",), None),
        ("ratio", ("tot_food", "tot_exp"), None),
        ("mean", ("pc_exp",), "urbrur"),
    ],
)
def test_wb_taylor_matches_svy_live(
    wb_sample: pd.DataFrame, statistic: str, args: tuple[str, ...], by: str | None
) -> None:
    """The svy oracle itself (test-only dependency) on the same data: estimates and SEs agree to 1e-6."""
    sample = svy.Sample(
        pl.from_pandas(wb_sample.drop(columns=["stratum"])),
        svy.Design(stratum=("geo1", "urbrur"), psu="ea", wgt="d"),
    )
    oracle = getattr(sample.estimation, statistic)(*args, by=by).to_polars().to_pandas()
    ours = estimate(
        wb_sample,
        weight="d",
        statistic=statistic,
        variable=args[0],  # type: ignore[arg-type]
        denominator=args[1] if len(args) > 1 else None,
        by=by,
        strata="stratum",
        psu="ea",
    )
    assert len(ours.rows) == len(oracle)
    for row, (_, ref) in zip(ours.rows, oracle.iterrows(), strict=True):
        if by is not None:
            assert row.domain == ref[by]
        assert row.estimate == pytest.approx(ref["est"], rel=1e-9)
        assert row.se == pytest.approx(ref["se"], rel=1e-6)
