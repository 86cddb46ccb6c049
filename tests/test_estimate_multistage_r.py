"""Multistage Taylor variances against R `survey`, run for real: `svydesign(ids = ~psu + ssu, strata = ~stratum,
fpc = ~fpc1 + fpc2, nest = TRUE)` on a stratified two-stage sample (and a three-stage one), with population sizes,
with sampling fractions, with a certainty stratum and with a lonely SSU. Same estimates and SEs to 1e-9. Also the
refusals: a repeated --fpc is a stage, never an override, and fewer fpc than stages is a usage error."""

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

runner = CliRunner()


def staged_table(seed: int, *, certainty: bool = False, lonely_ssu: bool = False) -> pd.DataFrame:
    """5 strata of 2 to 4 PSUs (EAs; population 5 to 30 per stratum), 2 to 4 SSUs (households) per PSU out of 4 to
    12 listed, 2 to 4 persons per household (of 6). PSU and SSU ids repeat across strata and PSUs (nesting is by
    position). `certainty` makes stratum 5's PSUs its whole population; `lonely_ssu` leaves one household in
    one EA out of several listed."""
    rng = np.random.default_rng(seed)
    rows = []
    for stratum in range(1, 6):
        n_psu = int(rng.integers(2, 5))
        population = n_psu if certainty and stratum == 5 else n_psu + int(rng.integers(3, 27))
        for psu in range(1, n_psu + 1):
            m = 1 if lonely_ssu and (stratum, psu) == (2, 1) else int(rng.integers(2, 5))
            listed = m + int(rng.integers(2, 9))
            for ssu in range(1, m + 1):
                for person in range(1, int(rng.integers(3, 6))):
                    rows.append(
                        {
                            "stratum": stratum,
                            "psu": psu,
                            "ssu": ssu,
                            "person": person,
                            "w": float(rng.uniform(5, 80)),
                            "y": float(rng.normal(30 + 3 * stratum, 8)),
                            "x": float(rng.uniform(1, 4)),
                            "dom": int(rng.integers(1, 3)),
                            "fpc1": population,
                            "fpc2": listed,
                            "fpc3": 6,
                            "f1": n_psu / population,
                            "f2": m / listed,
                        }
                    )
    return pd.DataFrame(rows)


def r_values(tmp_path: Path, table: pd.DataFrame, ids: str, fpc: str, lonely: str = "fail") -> dict:
    table.to_csv(tmp_path / "data.csv", index=False)
    return run_r(
        R_PRINT
        + f"""
options(survey.lonely.psu = "{lonely}")
d <- read.csv("{tmp_path / 'data.csv'}")
des <- svydesign(ids = {ids}, strata = ~stratum, weights = ~w, data = d, nest = TRUE, fpc = {fpc})
out("mean", svymean(~y, des))
out("total", svytotal(~y, des))
out("ratio", svyratio(~y, ~x, des))
out("domain", svyby(~y, ~dom, des, svymean))
""",
        tmp_path,
    )


# (case id, table options, R ids, R fpc, our psu columns, our fpc columns, lonely rule (R name, ours))
CASES = [
    ("two stages, population sizes", {}, "~psu + ssu", "~fpc1 + fpc2", ["psu", "ssu"], ["fpc1", "fpc2"], None),
    ("two stages, fractions", {}, "~psu + ssu", "~f1 + f2", ["psu", "ssu"], ["f1", "f2"], None),
    ("certainty stratum", {"certainty": True}, "~psu + ssu", "~fpc1 + fpc2", ["psu", "ssu"], ["fpc1", "fpc2"], None),
    ("three stages", {}, "~psu + ssu + person", "~fpc1 + fpc2 + fpc3", ["psu", "ssu", "person"],
     ["fpc1", "fpc2", "fpc3"], None),
    ("lonely SSU adjust", {"lonely_ssu": True}, "~psu + ssu", "~fpc1 + fpc2", ["psu", "ssu"], ["fpc1", "fpc2"],
     ("adjust", "adjust")),
    ("lonely SSU certainty", {"lonely_ssu": True}, "~psu + ssu", "~fpc1 + fpc2", ["psu", "ssu"], ["fpc1", "fpc2"],
     ("certainty", "certainty")),
]


@pytest.mark.parametrize(("table_options", "ids", "r_fpc", "psu", "fpc", "lonely"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_multistage_variance_equals_r(
    tmp_path: Path, table_options: dict, ids: str, r_fpc: str, psu: list[str], fpc: list[str],
    lonely: tuple[str, str] | None,
) -> None:
    table = staged_table(20261207, **table_options)
    values = r_values(tmp_path, table, ids, r_fpc, lonely[0] if lonely else "fail")
    common = {"weight": "w", "strata": "stratum", "psu": psu, "fpc": fpc, "lonely_psu": lonely[1] if lonely else "error"}
    checks = [
        ("mean", est.estimate(table, statistic="mean", variable="y", **common)),  # type: ignore[arg-type]
        ("total", est.estimate(table, statistic="total", variable="y", **common)),  # type: ignore[arg-type]
        ("ratio", est.estimate(table, statistic="ratio", variable="y", denominator="x", **common)),  # type: ignore[arg-type]
        ("domain", est.estimate(table, statistic="mean", variable="y", by="dom", **common)),  # type: ignore[arg-type]
    ]
    assert_like_r(values, checks)


def test_second_stage_adds_variance_to_the_first_stage_fpc() -> None:
    """The issue's case: with the first-stage fpc alone the second-stage term is missing (SEs too small)."""
    table = staged_table(5)
    common = {"weight": "w", "statistic": "mean", "variable": "y", "strata": "stratum"}
    one = est.estimate(table, psu="psu", fpc="fpc1", **common).rows[0].se  # type: ignore[arg-type]
    two = est.estimate(table, psu=["psu", "ssu"], fpc=["fpc1", "fpc2"], **common).rows[0].se  # type: ignore[arg-type]
    assert two > one


def test_lonely_ssu_is_an_error_by_default() -> None:
    table = staged_table(20261207, lonely_ssu=True)
    with pytest.raises(ToolkitError) as caught:
        est.estimate(table, weight="w", statistic="mean", variable="y", strata="stratum", psu=["psu", "ssu"],
                     fpc=["fpc1", "fpc2"])
    assert caught.value.issue.code == "estimate.lonely_psu" and "2:1" in caught.value.issue.message


@pytest.mark.parametrize(
    ("psu", "fpc", "message"),
    [
        (["psu", "ssu"], ["fpc1"], "one --fpc"),  # R refuses fewer fpc than stages too
        (["psu"], ["fpc1", "fpc2"], "one --fpc per --psu"),  # once: the last --fpc silently won
        (None, ["fpc1", "fpc2"], "one --fpc per --psu"),
        (["psu", "ssu", "person"], ["fpc1", "fpc2"], "one --fpc per --psu"),
        (["psu", "psu"], ["fpc1", "fpc2"], "given twice"),
    ],
)
def test_stage_lists_that_do_not_match_are_usage_errors(psu: list[str] | None, fpc: list[str], message: str) -> None:
    with pytest.raises(ToolkitError) as caught:
        est.estimate(staged_table(1), weight="w", statistic="mean", variable="y", strata="stratum", psu=psu, fpc=fpc)
    assert caught.value.exit_code == 2 and caught.value.issue.code == "estimate.stages_invalid"
    assert message in caught.value.issue.message


def test_second_stage_fpc_must_be_constant_within_the_psu() -> None:
    table = staged_table(1)
    table.loc[table.index[1], "fpc2"] += 1
    with pytest.raises(ToolkitError) as caught:
        est.estimate(table, weight="w", statistic="mean", variable="y", strata="stratum", psu=["psu", "ssu"],
                     fpc=["fpc1", "fpc2"])
    assert caught.value.issue.code == "estimate.fpc_invalid" and "not constant" in caught.value.issue.message


def test_cli_repeated_fpc_and_psu(tmp_path: Path) -> None:
    table = staged_table(9)
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    base = ["estimate", str(path), "--weight", "w", "--strata", "stratum", "--mean", "y", "--json"]
    two = runner.invoke(app, [*base, "--psu", "psu", "--psu", "ssu", "--fpc", "fpc1", "--fpc", "fpc2"])
    assert two.exit_code == 0, two.output
    expected = est.estimate(table, weight="w", statistic="mean", variable="y", strata="stratum", psu=["psu", "ssu"],
                            fpc=["fpc1", "fpc2"]).rows[0].se
    assert json.loads(two.stdout)["rows"][0]["se"] == pytest.approx(expected, rel=1e-12)
    repeated = runner.invoke(app, [*base, "--psu", "psu", "--fpc", "fpc1", "--fpc", "fpc2"])
    assert repeated.exit_code == 2 and "one --fpc per --psu" in repeated.output.replace("\n", " ")
