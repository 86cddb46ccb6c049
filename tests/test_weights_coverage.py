"""Coverage of the 95 % confidence intervals by simulation on a synthetic two-stage population (slow).

A population of EAs in strata, households with an EA effect; repeated two-stage samples (PPS with replacement
of EAs, then simple random sampling of households), base weights M_h·L/(n_h·M_hi·m) and raking of the
household weights to the known stratum totals; Taylor intervals for the mean and for a ratio must cover the
population values about 95 % of the time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toolkit.estimate import estimate
from toolkit.weights import Margin, rake

pytestmark = pytest.mark.slow


def _population(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for h in range(8):
        for ea in range(30):
            size = int(rng.integers(40, 300))
            effect = rng.normal(0, 3)
            y = 20 + 2 * h + effect + rng.normal(0, 6, size)
            x = rng.gamma(4, 2, size) + 0.1 * y
            rows.append(pd.DataFrame({"stratum": h, "ea": f"{h}-{ea}", "y": y, "x": x}))
    return pd.concat(rows, ignore_index=True)


def test_taylor_intervals_cover_95_percent() -> None:
    rng = np.random.default_rng(2026)
    pop = _population(rng)
    true_mean = pop["y"].mean()
    true_ratio = pop["y"].sum() / pop["x"].sum()
    sizes = pop.groupby("ea").size()
    strata_of = pop.groupby("ea")["stratum"].first()
    totals = pop.groupby("stratum").size()
    margin = Margin("stratum", {str(h): float(n) for h, n in totals.items()})
    n_h, m = 4, 12
    hits = {"mean": 0, "ratio": 0}
    reps = 400
    by_ea = dict(list(pop.groupby("ea")))
    for _ in range(reps):
        parts = []
        for h in range(8):
            eas = strata_of.index[strata_of == h]
            mos = sizes[eas].to_numpy(float)
            draws = rng.choice(len(eas), size=n_h, replace=True, p=mos / mos.sum())
            for k, j in enumerate(draws):
                ea = eas[j]
                hh = by_ea[ea].sample(m, random_state=int(rng.integers(0, 2**31)))
                p1 = n_h * mos[j] / mos.sum()
                parts.append(hh.assign(psu=f"{ea}#{k}", d=1.0 / (p1 * m / len(by_ea[ea]))))
        sample = pd.concat(parts, ignore_index=True)
        sample["w"] = rake(sample, sample["d"].to_numpy(), [margin], tol=1e-10).weights
        for stat, kwargs in (("mean", {"variable": "y"}), ("ratio", {"variable": "y", "denominator": "x"})):
            row = estimate(sample, weight="w", statistic=stat, strata="stratum", psu="psu", **kwargs).rows[0]
            truth = true_mean if stat == "mean" else true_ratio
            hits[stat] += row.ci_low <= truth <= row.ci_high
    for stat, n_hit in hits.items():
        coverage = n_hit / reps
        assert 0.92 <= coverage <= 0.98, f"{stat}: coverage {coverage:.3f}"
