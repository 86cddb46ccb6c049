"""Benchmark: raking 1M units to 4 margins (8×2×6×2 levels) at tol 1e-6, and Taylor SEs for 1M units / 500
PSUs / 20 domains (specs/weights.md §2, issue 6).

Times, in the same run and on the same data: migkit's `rake` (from the DataFrame columns, input checks and
diagnostics included), a plain numpy unit-level IPF (bincount on pre-coded integer arrays: the reference) and
svy's `weighting.rake` (polars). Targets: ≤ 1.5× the numpy reference and faster than svy; Taylor SE under 1 s.

    .venv/bin/python bench/weights.py [N]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from toolkit.estimate import estimate
from toolkit.weights import Margin, rake


def make_data(n: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray, list[Margin]]:
    """The §2 synthetic data: region (8, unequal), urban (depends on region), age group (6, depends on urban),
    sex (2, depends on age); design weights = region×urban base × lognormal(0, 0.35); targets away from the
    sample."""
    rng = np.random.default_rng(seed)
    region = rng.choice(8, n, p=np.array([20, 15, 14, 12, 12, 10, 9, 8]) / 100)
    urban = (rng.random(n) < 0.2 + 0.08 * region).astype(np.int64)
    age = np.minimum(5, rng.gamma(1.5 + 1.5 * urban, 1.0, n).astype(np.int64))
    sex = (rng.random(n) < 0.45 + 0.03 * age).astype(np.int64)
    w = (1 + 0.25 * region) * (1 + 0.5 * urban) * rng.lognormal(0, 0.35, n)
    frame = pd.DataFrame({"region": region, "urban": urban, "age": age, "sex": sex})
    total = 25e6

    def margin(var: str, shares: list[float]) -> Margin:
        p = np.asarray(shares, float) / sum(shares)
        return Margin(var, {str(i): total * p[i] for i in range(len(p))})

    margins = [
        margin("region", [10, 12, 14, 12, 14, 13, 12, 13]),
        margin("urban", [55, 45]),
        margin("age", [22, 20, 18, 16, 13, 11]),
        margin("sex", [49, 51]),
    ]
    return frame, w, margins


def numpy_reference(codes: list[np.ndarray], w: np.ndarray, targets: list[np.ndarray], tol: float) -> tuple:
    """Plain unit-level IPF: one bincount per margin per sweep, stop on the max relative margin error."""
    f = w.copy()
    for it in range(1, 101):
        for c, t in zip(codes, targets, strict=True):
            f *= (t / np.bincount(c, weights=f, minlength=len(t)))[c]
        err = max(
            float(np.max(np.abs(np.bincount(c, weights=f, minlength=len(t)) - t) / t))
            for c, t in zip(codes, targets, strict=True)
        )
        if err <= tol:
            return f, it
    return f, 100


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(n: int = 1_000_000) -> None:
    frame, w, margins = make_data(n)
    tol = 1e-6
    t_ours, ours = best_of(lambda: rake(frame, w, margins, tol=tol))
    codes = [frame[m.variable].to_numpy() for m in margins]
    targets = [np.array([m.targets[str(i)] for i in range(len(m.targets))]) for m in margins]
    t_ref, (ref, ref_it) = best_of(lambda: numpy_reference(codes, w, targets, tol))
    diff = float(np.max(np.abs(ours.weights / ref - 1)))
    print(f"raking N={n:,} to 4 margins (8x2x6x2) at tol {tol:g}, best of 3")
    print(
        f"  migkit rake (cell table, checks + diagnostics): {t_ours:.3f} s ({ours.iterations} it, "
        f"max rel margin err {ours.max_rel_error:.1e})"
    )
    print(
        f"  numpy unit-level IPF reference              : {t_ref:.3f} s ({ref_it} it); "
        f"max rel diff {diff:.1e}"
    )
    print(f"  ratio migkit / numpy reference              : {t_ours / t_ref:.2f}  (target ≤ 1.5)")
    try:
        import polars as pl
        import svy
    except ImportError:
        print("  svy                                         : not installed (pip install -e '.[test]')")
    else:
        data = pl.from_pandas(frame.astype(str).assign(w=w))
        controls = {m.variable: dict(m.targets) for m in margins}

        def run_svy():
            sample = svy.Sample(data, svy.Design(wgt="w"))
            return sample.weighting.rake(controls=controls, tol=tol, max_iter=100)

        t_svy, res = best_of(run_svy, repeat=1 if n >= 1_000_000 else 3)
        svy_w = res.data["rk_wgt"].to_numpy()
        label = f"svy {getattr(svy, '__version__', '')} weighting.rake (polars)"
        print(
            f"  {label:<44}: {t_svy:.3f} s; max rel diff vs migkit "
            f"{float(np.max(np.abs(svy_w / ours.weights - 1))):.1e}"
        )
        print(f"  ratio migkit / svy                          : {t_ours / t_svy:.2f}  (target < 1)")
    # Taylor linearisation: 1M units, 500 PSUs in 50 strata, 20 domains.
    rng = np.random.default_rng(2)
    psu = rng.integers(0, 500, n)
    table = pd.DataFrame(
        {
            "w": ours.weights,
            "y": rng.gamma(2.0, 10.0, n),
            "psu": psu,
            "stratum": psu // 10,
            "domain": rng.integers(0, 20, n),
        }
    )
    t_se, res = best_of(
        lambda: estimate(
            table, weight="w", statistic="mean", variable="y", by="domain", strata="stratum", psu="psu"
        )
    )
    print(
        f"Taylor SE, mean by 20 domains, N={n:,}, 500 PSUs, 50 strata: {t_se:.3f} s (target < 1 s); "
        f"{len(res.rows)} rows, df {res.rows[0].df}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
