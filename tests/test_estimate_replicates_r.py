"""Replicate variances against R `survey` `svrepdesign`, run for real: for JK1, JKn, bootstrap, BRR and Fay, the
default centring (R's `mse = getOption("survey.replicates.mse")`, FALSE: the mean of the replicates) and the
full-sample centring (`mse = TRUE`), R's default scale of each type, and an explicit scale and rscales for
replicates made elsewhere. Same estimates and SEs to 1e-9 (relative). Also the checks on --fay, --scale,
--rscales and the `migkit estimate` options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.test_estimate_r import R_PRINT, assert_like_r, run_r
from toolkit import estimate as est
from toolkit.cli import app
from toolkit.errors import ToolkitError
from toolkit.weights import replicate_factors

runner = CliRunner()


def replicate_table(seed: int, method: str, *, fay: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """A stratified cluster sample (5 strata; 2 PSUs each for BRR/Fay, 2 to 5 otherwise) with the replicate
    weight columns rep_1..rep_R of `method`, and the JKn multiplier (n_h − 1)/n_h of every replicate."""
    rng = np.random.default_rng(seed)
    rows = []
    for stratum in range(1, 6):
        n_psu = 2 if method == "brr" else int(rng.integers(2, 6))
        for psu in range(1, n_psu + 1):
            for _ in range(int(rng.integers(3, 8))):
                rows.append(
                    {
                        "stratum": stratum,
                        "psu": psu,
                        "w": float(rng.uniform(1, 50)),
                        "y": float(rng.normal(100 + 5 * stratum, 20)),
                        "x": float(rng.uniform(1, 5)),
                        "dom": int(rng.integers(1, 3)),
                    }
                )
    table = pd.DataFrame(rows)
    design = est.make_design(len(table), table["stratum"].to_numpy(), table["psu"].to_numpy())
    factors = replicate_factors(design, method, n_replicates=30, fay=fay, seed=seed)  # type: ignore[arg-type]
    reps = table["w"].to_numpy()[:, None] * factors.factors[design.psu]
    replicates = pd.DataFrame(reps, columns=[f"rep_{r + 1}" for r in range(reps.shape[1])])
    return pd.concat([table, replicates], axis=1), factors.coefficients


R_TYPE = {"jk1": "JK1", "jkn": "JKn", "bootstrap": "bootstrap", "brr": "BRR"}


def r_estimates(tmp_path: Path, table: pd.DataFrame, design_args: str) -> dict[str, tuple[float, ...]]:
    """Mean, total, ratio and domain means of y from R on svrepdesign(...) with both centrings."""
    table.to_csv(tmp_path / "data.csv", index=False)
    return run_r(
        R_PRINT
        + f"""
d <- read.csv("{tmp_path / 'data.csv'}")
for (mse in c(FALSE, TRUE)) {{
  des <- suppressWarnings(svrepdesign(data = d, repweights = "rep_", weights = ~w, combined.weights = TRUE,
                                      mse = mse{design_args}))
  tag <- if (mse) "_mse" else ""
  out(paste0("mean", tag), svymean(~y, des))
  out(paste0("total", tag), svytotal(~y, des))
  out(paste0("ratio", tag), svyratio(~y, ~x, des))
  out(paste0("domain", tag), svyby(~y, ~dom, des, svymean))
}}
""",
        tmp_path,
    )


def compare(values: dict[str, tuple[float, ...]], table: pd.DataFrame, mse: bool | None, **options: object) -> None:
    tag = "_mse" if mse else ""
    common = {"weight": "w", "replicate_prefix": "rep_", "mse": mse, **options}
    checks = [
        ("mean", est.estimate(table, statistic="mean", variable="y", **common)),  # type: ignore[arg-type]
        ("total", est.estimate(table, statistic="total", variable="y", **common)),  # type: ignore[arg-type]
        ("ratio", est.estimate(table, statistic="ratio", variable="y", denominator="x", **common)),  # type: ignore[arg-type]
        ("domain", est.estimate(table, statistic="mean", variable="y", by="dom", **common)),  # type: ignore[arg-type]
    ]
    assert_like_r(values, checks, suffix=tag)


# (case id, our method, Fay's ρ, R svrepdesign arguments besides mse)
METHODS = [
    ("JK1", "jk1", 0.0, ', type = "JK1"'),
    ("JKn", "jkn", 0.0, ', type = "JKn", rscales = c({rscales})'),  # R needs them for combined weights
    ("bootstrap", "bootstrap", 0.0, ', type = "bootstrap"'),
    ("BRR", "brr", 0.0, ', type = "BRR"'),
    ("Fay", "brr", 0.3, ', type = "Fay", rho = 0.3'),
]


@pytest.mark.parametrize(("method", "fay", "design_args"), [m[1:] for m in METHODS], ids=[m[0] for m in METHODS])
def test_replicate_variance_equals_r_both_centrings(tmp_path: Path, method: str, fay: float, design_args: str) -> None:
    table, coefficients = replicate_table(20261207, method, fay=fay)
    values = r_estimates(tmp_path, table, design_args.format(rscales=", ".join(repr(float(c)) for c in coefficients)))
    options: dict[str, object] = {"method": method, "fay": fay}
    if method == "jkn":
        options.update(strata="stratum", psu="psu")
    compare(values, table, None, **options)  # R's default: centred on the mean of the replicates
    compare(values, table, False, **options)
    compare(values, table, True, **options)


def test_explicit_scale_and_rscales_equal_r(tmp_path: Path) -> None:
    """Replicates made elsewhere: R `svrepdesign(type = "other", scale =, rscales =)` with the same numbers."""
    table, _ = replicate_table(11, "bootstrap")
    n_rep = sum(str(c).startswith("rep_") for c in table.columns)
    rscales = np.linspace(0.5, 1.5, n_rep)
    listed = ", ".join(repr(float(r)) for r in rscales)
    values = r_estimates(tmp_path, table, f', type = "other", scale = 0.037, rscales = c({listed})')
    for method in ("jk1", "bootstrap", "jkn"):  # the given numbers replace every default
        compare(values, table, None, method=method, scale=0.037, rscales=rscales.tolist())
        compare(values, table, True, method=method, scale=0.037, rscales=rscales.tolist())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fay": 1.0}, "outside [0, 1)"),
        ({"fay": -0.1}, "outside [0, 1)"),
        ({"fay": float("nan")}, "outside [0, 1)"),
        ({"scale": 0.0}, "--scale"),
        ({"rscales": [1.0, -1.0]}, "--rscales"),
        ({"rscales": [1.0, 1.0]}, "2 values but there are 8"),
    ],
)
def test_replicate_options_out_of_range_are_usage_errors(options: dict[str, object], message: str) -> None:
    table, _ = replicate_table(3, "brr")
    with pytest.raises(ToolkitError) as caught:
        est.estimate(table, weight="w", statistic="mean", variable="y", replicate_prefix="rep_", method="brr",
                     **options)  # type: ignore[arg-type]
    assert caught.value.exit_code == 2 and caught.value.issue.code == "estimate.replicate_options_invalid"
    assert message in caught.value.issue.message


def _cli(path: Path, *extra: str):
    return runner.invoke(
        app, ["estimate", str(path), "--weight", "w", "--mean", "y", "--replicate-weights", "rep_", *extra, "--json"]
    )


@pytest.mark.parametrize("fay", ["1.0", "1", "-0.5", "1.5"])
def test_cli_fay_outside_unit_interval_is_refused(tmp_path: Path, fay: str) -> None:
    table, _ = replicate_table(3, "brr", fay=0.5)
    table.to_csv(tmp_path / "t.csv", index=False)
    result = _cli(tmp_path / "t.csv", "--method", "brr", "--fay", fay)
    assert result.exit_code == 2, result.output
    assert "[0, 1)" in result.output


def test_cli_mse_scale_and_rscales(tmp_path: Path) -> None:
    table, _ = replicate_table(5, "bootstrap")
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)

    def se(*extra: str) -> float:
        result = _cli(path, "--method", "bootstrap", *extra)
        assert result.exit_code == 0, result.output
        return float(json.loads(result.stdout)["rows"][0]["se"])

    common = {"weight": "w", "statistic": "mean", "variable": "y", "replicate_prefix": "rep_", "method": "bootstrap"}
    for extra, options in [
        ((), {}),
        (("--no-mse",), {"mse": False}),
        (("--mse",), {"mse": True}),
        (("--scale", "0.5"), {"scale": 0.5}),
        (("--rscales", "0.5"), {"rscales": [0.5]}),
        (("--mse", "--scale", "0.02", "--rscales", ",".join(["2"] * 30)), {"mse": True, "scale": 0.02,
                                                                            "rscales": [2.0] * 30}),
    ]:
        expected = est.estimate(table, **common, **options).rows[0].se  # type: ignore[arg-type]
        assert se(*extra) == pytest.approx(expected, rel=1e-12), extra
    assert se() == pytest.approx(se("--no-mse"), rel=1e-12) and se() != se("--mse")
    bad = _cli(path, "--method", "bootstrap", "--rscales", "1,x")
    assert bad.exit_code == 2 and "--rscales" in bad.output
