"""Replicate weight factors at the PSU level: JKn, JK1, Rao–Wu–Yue bootstrap and BRR/Fay (specs/weights.md
§4.7).

A factor matrix F (P PSUs × R replicates) multiplies the base weight of every unit of a PSU; the whole
weighting chain (nonresponse adjustment, trimming, calibration) is then rerun on every replicate, so the
replicate variance includes the weighting (R `calibrate.svyrep.design`; linearisation cannot reflect the
nonresponse adjustment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from toolkit.errors import define, error
from toolkit.estimate import Design
from toolkit.weights.core import WeightingError

REPLICATE_DESIGN = define(
    "weights.replicate_design", "The design does not allow the requested replicate method"
)

Method = Literal["jkn", "jk1", "bootstrap", "brr"]


@dataclass(frozen=True)
class ReplicateFactors:
    """PSU-level replicate factors and the variance coefficient of every replicate.

    Parameters:
        method: jkn, jk1, bootstrap or brr.
        factors: array (P, R).
        coefficients: the multiplier scale·rscale_r of the squared deviation of replicate r in the variance,
            R `svrepdesign`'s defaults (JKn (n_h−1)/n_h, JK1 (R−1)/R, bootstrap 1/(R−1), BRR/Fay 1/(R(1−ρ)²)).
        centre_on_mean: the deviations are from the mean of the replicates (R `svrepdesign`'s default, mse =
            FALSE, and `migkit estimate`'s), not from the full-sample estimate (`--mse`).
        fay: Fay's ρ (BRR only).
    """

    method: str
    factors: np.ndarray
    coefficients: np.ndarray
    centre_on_mean: bool = True
    fay: float = 0.0


def hadamard(order: int) -> np.ndarray:
    """Sylvester Hadamard matrix of a power-of-two order."""
    h = np.ones((1, 1))
    while h.shape[0] < order:
        h = np.block([[h, h], [h, -h]])
    return h


def replicate_factors(
    design: Design,
    method: Method,
    *,
    n_replicates: int | None = None,
    fay: float = 0.0,
    seed: int = 20260101,
) -> ReplicateFactors:
    """Build PSU-level replicate factors.

    Parameters:
        design: strata and PSUs (see `toolkit.estimate.make_design`).
        method: "jkn" (delete one PSU within its stratum), "jk1" (delete one PSU, unstratified), "bootstrap"
            (Rao–Wu–Yue: n_h − 1 PSUs drawn with replacement per stratum) or "brr" (2 PSUs per stratum; Fay
            with ρ).
        n_replicates: bootstrap replicates (default 200); ignored by the others.
        fay: Fay's coefficient ρ ∈ [0, 1) for BRR.
        seed: random seed of the bootstrap draws (recorded in the report).
    """
    n_psu = design.n_psu
    nh = design.psus_per_stratum()
    s = design.stratum_of_psu
    if method in ("jkn", "bootstrap", "brr") and (nh < 2).any():
        bad = [design.stratum_labels[h] for h in np.flatnonzero(nh < 2)]
        raise WeightingError(
            [
                error(
                    REPLICATE_DESIGN,
                    f"{method} needs ≥ 2 PSUs in every stratum; single-PSU strata: "
                    f"{', '.join(bad[:10])}; collapse them in the PSU sample file",
                )
            ]
        )
    if method == "jkn":
        f = np.ones((n_psu, n_psu))
        coef = np.empty(n_psu)
        for j in range(n_psu):
            h = s[j]
            f[s == h, j] = nh[h] / (nh[h] - 1)
            f[j, j] = 0.0
            coef[j] = (nh[h] - 1) / nh[h]
        return ReplicateFactors("jkn", f, coef)
    if method == "jk1":
        f = np.full((n_psu, n_psu), n_psu / (n_psu - 1))
        np.fill_diagonal(f, 0.0)
        return ReplicateFactors("jk1", f, np.full(n_psu, (n_psu - 1) / n_psu))
    if method == "bootstrap":
        b = n_replicates or 200
        rng = np.random.default_rng(seed)
        f = np.zeros((n_psu, b))
        for h in range(design.n_strata):
            idx = np.flatnonzero(s == h)
            n = len(idx)
            draws = rng.integers(0, n, size=(b, n - 1))
            counts = np.zeros((b, n))
            np.add.at(counts, (np.repeat(np.arange(b), n - 1), draws.ravel()), 1.0)
            f[idx, :] = (counts * n / (n - 1)).T
        return ReplicateFactors("bootstrap", f, np.full(b, 1.0 / (b - 1)))
    if method == "brr":
        if (nh != 2).any():
            raise WeightingError(
                [
                    error(
                        REPLICATE_DESIGN,
                        "BRR and Fay's method need exactly 2 PSUs per stratum; use "
                        "jkn or bootstrap for this design",
                    )
                ]
            )
        order = 4
        while order < design.n_strata + 1:
            order *= 2
        had = hadamard(order)[:, 1 : design.n_strata + 1]  # drop the all-ones column
        f = np.empty((n_psu, order))
        for h in range(design.n_strata):
            first, second = np.flatnonzero(s == h)[:2]
            plus = had[:, h] > 0
            f[first] = np.where(plus, 2.0 - fay, fay)
            f[second] = np.where(plus, fay, 2.0 - fay)
        return ReplicateFactors("brr", f, np.full(order, 1.0 / (order * (1.0 - fay) ** 2)), fay=fay)
    raise ValueError(f"unknown replicate method {method!r}")
