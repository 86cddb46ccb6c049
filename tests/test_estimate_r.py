"""`estimate` against R `survey` (Lumley), run for real as an independent implementation: the same data, the same
design, the same estimates and standard errors to 1e-9 (relative). Also the values printed in the R `survey`
documentation for the California API samples, read from the package at test time.

R and the package come from Debian (`r-cran-survey`); `make test` installs them. Each case runs one Rscript."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require_tool
from toolkit import estimate as est
from toolkit.errors import ToolkitError

RELATIVE = 1e-9


def run_r(script: str, tmp_path: Path) -> dict[str, tuple[float, ...]]:
    """Run an R script that prints lines `name estimate se [deff]`; return them by name."""
    rscript = require_tool("Rscript", "r-cran-survey")
    path = tmp_path / "case.R"
    path.write_text("suppressPackageStartupMessages(library(survey))\n" + script, encoding="utf-8")
    done = subprocess.run([rscript, "--vanilla", str(path)], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.fail(f"R failed (is r-cran-survey installed? make test installs it):\n{done.stderr[-2000:]}")
    values = {}
    for line in done.stdout.splitlines():
        name, *numbers = line.split()
        values[name] = tuple(float("nan") if x == "NA" else float(x) for x in numbers)
    return values


R_PRINT = """
out <- function(name, fit) {
  v <- coef(fit); s <- SE(fit)
  d <- tryCatch(as.numeric(deff(fit)), error = function(e) rep(NA_real_, length(v)))
  if (length(d) != length(v)) d <- rep(NA_real_, length(v))
  for (i in seq_along(v)) cat(sprintf("%s%s %.17g %.17g %.17g\\n", name, if (length(v) > 1) paste0(":", i) else "", v[i], s[i], d[i]))
}
"""


def survey_table(
    seed: int, *, lonely: bool = False, certainty: bool = False, single_certainty: bool = False
) -> pd.DataFrame:
    """A stratified two-stage sample: 6 strata of 2 to 5 PSUs, 3 to 8 units per PSU; `lonely` adds a stratum
    with one PSU, `certainty` a stratum whose 3 PSUs are its whole population, `single_certainty` a stratum of
    one PSU that is its whole population (a very large EA taken with certainty)."""
    rng = np.random.default_rng(seed)
    rows = []
    plan = [(h, int(rng.integers(2, 6))) for h in range(1, 7)]
    if lonely:
        plan.append((7, 1))
    if certainty:
        plan.append((8, 3))
    if single_certainty:
        plan.append((9, 1))
    for stratum, n_psu in plan:
        population = n_psu if stratum in (8, 9) else n_psu + int(rng.integers(1, 40))
        for psu in range(1, n_psu + 1):
            for _ in range(int(rng.integers(3, 9))):
                rows.append(
                    {
                        "stratum": stratum,
                        "psu": psu,  # repeats across strata: the PSU is stratum × psu
                        "w": float(rng.uniform(1, 50)),
                        "y": float(rng.normal(100 + 5 * stratum, 20)),
                        "x": float(rng.uniform(1, 5)),
                        "cat": int(rng.integers(1, 4)),
                        "dom": int(rng.integers(1, 3)),
                        "n_pop": population,
                        "f": n_psu / population,
                    }
                )
    return pd.DataFrame(rows)


def ours(table: pd.DataFrame, **options: object) -> list[tuple[float, float]]:
    return [(row.estimate, row.se) for row in _rows(table, **options)]


def _rows(table: pd.DataFrame, **options: object) -> tuple[est.EstimateRow, ...]:
    return est.estimate(table, weight="w", strata="stratum", psu="psu", **options).rows  # type: ignore[arg-type]


def theirs(values: dict[str, tuple[float, ...]], name: str) -> list[tuple[float, ...]]:
    keys = [k for k in values if k == name or k.startswith(name + ":")]
    return [values[k] for k in sorted(keys, key=lambda k: int(k.partition(":")[2] or 0))]


def assert_like_r(
    values: dict[str, tuple[float, ...]], checks: list[tuple[str, est.EstimateResult]], *, suffix: str = ""
) -> None:
    """Every row of every result has R's estimate and SE (to RELATIVE), R's rows named `name + suffix`."""
    for name, result in checks:
        expected = theirs(values, name + suffix)
        assert len(result.rows) == len(expected), name
        for row, (r_value, r_se, *_deff) in zip(result.rows, expected, strict=True):
            assert row.estimate == pytest.approx(r_value, rel=RELATIVE), (name, suffix)
            assert row.se == pytest.approx(r_se, rel=RELATIVE), (name, suffix)


# (case id, table options, R design arguments, R lonely-PSU option, our options)
CASES = [
    ("with replacement", {}, "", "fail", {}),
    ("fpc population sizes", {}, ", fpc = ~n_pop", "fail", {"fpc": "n_pop"}),
    ("fpc sampling fractions", {}, ", fpc = ~f", "fail", {"fpc": "f"}),
    ("certainty stratum by fpc", {"certainty": True}, ", fpc = ~n_pop", "fail", {"fpc": "n_pop"}),
    ("lonely adjust", {"lonely": True}, "", "adjust", {"lonely_psu": "adjust"}),
    ("lonely average", {"lonely": True}, "", "average", {"lonely_psu": "average"}),
    ("lonely certainty", {"lonely": True}, "", "certainty", {"lonely_psu": "certainty"}),
    ("lonely adjust with fpc", {"lonely": True, "certainty": True}, ", fpc = ~n_pop", "adjust", {
        "lonely_psu": "adjust", "fpc": "n_pop"}),
    ("lonely average with fpc", {"lonely": True, "certainty": True}, ", fpc = ~n_pop", "average", {
        "lonely_psu": "average", "fpc": "n_pop"}),
    # A single PSU that is its stratum's whole population is no lonely PSU: no error, no variance.
    ("single-PSU certainty stratum", {"single_certainty": True}, ", fpc = ~n_pop", "fail", {"fpc": "n_pop"}),
    ("single-PSU certainty and lonely average", {"single_certainty": True, "lonely": True}, ", fpc = ~n_pop",
     "average", {"lonely_psu": "average", "fpc": "n_pop"}),
]


@pytest.mark.parametrize(("table_options", "design_args", "r_lonely", "options"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_taylor_estimates_equal_r_survey(
    tmp_path: Path, table_options: dict[str, bool], design_args: str, r_lonely: str, options: dict[str, str]
) -> None:
    table = survey_table(20261128, **table_options)
    table.to_csv(tmp_path / "data.csv", index=False)
    values = run_r(
        R_PRINT
        + f"""
options(survey.lonely.psu = "{r_lonely}")
d <- read.csv("{tmp_path / 'data.csv'}")
d$cat <- factor(d$cat)
des <- svydesign(ids = ~psu, strata = ~stratum, weights = ~w, data = d, nest = TRUE{design_args})
out("mean", svymean(~y, des, deff = TRUE))
out("total", svytotal(~y, des, deff = TRUE))
out("ratio", svyratio(~y, ~x, des))
out("proportion", svymean(~cat, des, deff = TRUE))
by <- svyby(~y, ~dom, des, svymean, deff = TRUE)
out("domain_mean", by)
""",
        tmp_path,
    )
    checks = [
        ("mean", _rows(table, statistic="mean", variable="y", **options)),
        ("total", _rows(table, statistic="total", variable="y", **options)),
        ("ratio", _rows(table, statistic="ratio", variable="y", denominator="x", **options)),
        ("proportion", _rows(table.assign(cat=table["cat"].astype(str)), statistic="proportion", variable="cat",
                             **options)),
        ("domain_mean", _rows(table, statistic="mean", variable="y", by="dom", **options)),
    ]
    for name, mine in checks:
        expected = theirs(values, name)
        assert len(mine) == len(expected), name
        for row, (r_value, r_se, r_deff) in zip(mine, expected, strict=True):
            assert row.estimate == pytest.approx(r_value, rel=RELATIVE), name
            assert row.se == pytest.approx(r_se, rel=RELATIVE), name
            if name == "ratio":  # svyratio has no design effect
                assert row.deff is None
            else:
                assert row.deff == pytest.approx(r_deff, rel=RELATIVE), name


def test_srs_with_fpc_equals_r_survey(tmp_path: Path) -> None:
    table = survey_table(7)
    table["N"] = 5 * len(table)
    table.to_csv(tmp_path / "data.csv", index=False)
    values = run_r(
        R_PRINT
        + f"""
d <- read.csv("{tmp_path / 'data.csv'}")
des <- svydesign(ids = ~1, weights = ~w, data = d, fpc = ~N)
out("mean", svymean(~y, des))
""",
        tmp_path,
    )
    result = est.estimate(table, weight="w", statistic="mean", variable="y", fpc="N")
    assert result.rows[0].estimate == pytest.approx(values["mean"][0], rel=RELATIVE)
    assert result.rows[0].se == pytest.approx(values["mean"][1], rel=RELATIVE)


# Printed in the R `survey` documentation (?svydesign, ?svymean examples; Lumley 2010, ch. 2): the stratified
# sample `apistrat` (strata stype, fpc = schools per stratum) and the one-stage cluster sample `apiclus1`
# (clusters dnum, fpc = districts).
PUBLISHED = [
    ("apistrat", "stype", None, 662.29, 9.4089),
    ("apiclus1", None, "dnum", 644.17, 23.542),
]


@pytest.mark.parametrize(("sample", "strata", "psu", "mean", "se"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_api_examples(
    tmp_path: Path, sample: str, strata: str | None, psu: str | None, mean: float, se: float
) -> None:
    run_r(f'data(api)\nwrite.csv({sample}, "{tmp_path / "api.csv"}", row.names = FALSE)\n', tmp_path)
    table = pd.read_csv(tmp_path / "api.csv")
    result = est.estimate(table, weight="pw", statistic="mean", variable="api00", strata=strata, psu=psu, fpc="fpc")
    assert round(result.rows[0].estimate, 2) == mean
    assert result.rows[0].se == pytest.approx(se, abs=0.5 * 10 ** -(len(str(se).partition(".")[2])))


FPC_PROBLEMS = [
    ("not constant", lambda t: t.assign(n_pop=t["n_pop"] + np.arange(len(t)) % 2), "not constant within"),
    ("missing", lambda t: t.assign(n_pop=t["n_pop"].where(t.index != 3)), "data row 4"),
    ("mixed kinds", lambda t: t.assign(n_pop=np.where(t["stratum"] == 1, 0.5, t["n_pop"])), "mixes"),
    ("smaller than sample", lambda t: t.assign(n_pop=np.where(t["stratum"] == 2, 1, t["n_pop"])), "more than 100%"),
]


@pytest.mark.parametrize(("change", "message"), [p[1:] for p in FPC_PROBLEMS], ids=[p[0] for p in FPC_PROBLEMS])
def test_fpc_problems_say_what_is_wrong(change: object, message: str) -> None:
    table = change(survey_table(3))  # type: ignore[operator]
    with pytest.raises(ToolkitError) as caught:
        est.estimate(table, weight="w", statistic="mean", variable="y", strata="stratum", psu="psu", fpc="n_pop")
    assert caught.value.issue.code == "estimate.fpc_invalid"
    assert message in caught.value.issue.message


def test_fpc_with_replicate_weights_is_a_usage_error() -> None:
    table = survey_table(3).assign(rep_1=1.0, rep_2=2.0)
    with pytest.raises(ToolkitError) as caught:
        est.estimate(table, weight="w", statistic="mean", variable="y", replicate_prefix="rep_", method="jk1",
                     fpc="n_pop")
    assert caught.value.exit_code == 2


def test_cli_fpc_option(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from toolkit.cli import app

    table = survey_table(5, certainty=True)
    path = tmp_path / "sample.csv"
    table.to_csv(path, index=False)
    base = ["estimate", str(path), "--weight", "w", "--strata", "stratum", "--psu", "psu", "--mean", "y", "--json"]
    runner = CliRunner()
    with_fpc = runner.invoke(app, [*base, "--fpc", "n_pop"])
    without = runner.invoke(app, base)
    assert with_fpc.exit_code == 0 and without.exit_code == 0, with_fpc.output
    se_fpc = json.loads(with_fpc.stdout)["rows"][0]["se"]
    assert se_fpc == pytest.approx(ours(table, statistic="mean", variable="y", fpc="n_pop")[0][1], rel=1e-12)
    assert se_fpc < json.loads(without.stdout)["rows"][0]["se"]
    bad = runner.invoke(app, [*base, "--fpc", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_cli_deff_column(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from toolkit.cli import app

    table = survey_table(5)
    runner = CliRunner()
    table.to_csv(tmp_path / "sample.csv", index=False)
    base = ["estimate", str(tmp_path / "sample.csv"), "--weight", "w", "--strata", "stratum", "--psu", "psu"]
    base += ["--mean", "y"]
    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    plain = runner.invoke(app, base, env=wide)
    with_deff = runner.invoke(app, [*base, "--deff"], env=wide)
    as_json = runner.invoke(app, [*base, "--json"], env=wide)
    assert plain.exit_code == 0 and with_deff.exit_code == 0 and as_json.exit_code == 0, with_deff.output
    deff = _rows(table, statistic="mean", variable="y")[0].deff
    assert "deff" not in plain.stdout and "deff" in with_deff.stdout
    assert json.loads(as_json.stdout)["rows"][0]["deff"] == pytest.approx(deff, rel=1e-12)
