"""The weighting core (numpy only): diagnostics, nonresponse adjustment, trimming and base weights.

Formulas are those of specs/weights.md §4.2–4.6. Every routine works on plain arrays (or a DataFrame plus
column names) and never forms n×n matrices: raking and GREG on categorical margins run on the collapsed
cross-class cell table (the adjustment factor is constant within a cell) and are mapped back to the units at
the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from toolkit.errors import EXIT_DATA_PROBLEMS, Issue, ToolkitError, define, error, warning

# --- Issue codes --------------------------------------------------------------------------------------------
MARGIN_VARIABLE_MISSING = define(
    "weights.margin_variable_missing", "A calibration variable is not a column of the table"
)
MARGIN_MISSING_VALUES = define("weights.margin_missing_values", "A calibration variable has missing values")
TARGET_LEVEL_ABSENT = define("weights.target_level_absent", "A target level has no sample cases")
SAMPLE_LEVEL_ABSENT = define("weights.sample_level_absent", "A sample level has no target")
MARGIN_TOTALS_DIFFER = define(
    "weights.margin_totals_differ", "Calibration margins have different grand totals"
)
TARGET_INVALID = define("weights.target_invalid", "A calibration target is missing, negative or not a number")
ZERO_TARGET = define("weights.zero_target", "A target of 0 gives weight 0 to the sample cases of that level")
NOT_CONVERGED = define(
    "weights.not_converged", "Calibration did not reach the tolerance within the iteration limit"
)
NEGATIVE_WEIGHTS = define("weights.negative_weights", "Linear calibration produced weights ≤ 0")
WEIGHT_INVALID = define("weights.weight_invalid", "Input weights are missing, negative or not numeric")
NO_RESPONDENTS = define(
    "weights.no_respondents", "A nonresponse class has no respondents to carry its weight"
)
CLASS_COLLAPSED = define("weights.class_collapsed", "A nonresponse class was collapsed into another one")
CLASS_SMALL = define(
    "weights.class_small", "A nonresponse class breaks a guardrail (few respondents or a large factor)"
)
TRIM_INFEASIBLE = define(
    "weights.trim_infeasible", "Trimming cannot keep the total: every weight of a class is at the cap"
)
PROBABILITY_INVALID = define("weights.probability_invalid", "A selection probability is outside (0, 1]")
LISTING_SHORT = define("weights.listing_short", "More households were selected than listed (L < m)")
CERTAINTY_PSU = define("weights.certainty_psu", "A PSU was taken with certainty (n_h·M_hi ≥ M_h)")


class WeightingError(ToolkitError):
    """The weighting cannot go on; carries every blocking issue (exit code 1: the inputs have problems)."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        first, *rest = issues
        super().__init__(first, EXIT_DATA_PROBLEMS, more=tuple(rest))


# --- Diagnostics (§4.6) -------------------------------------------------------------------------------------


def weight_summary(weights: np.ndarray, previous: np.ndarray | None = None) -> dict[str, Any]:
    """Summary of a weight vector: n, Σw, min/median/max, max/min ratio, CV, Kish deff_w and n_eff.

    Parameters:
        weights: the weights (units with weight 0 are counted in n_zero and left out of the rest).
        previous: the weights before this step, to report the adjustment factor w_new/w_old.
    """
    w = np.asarray(weights, dtype=float)
    pos = w[w > 0]
    n = int(pos.size)
    total = float(pos.sum())
    out: dict[str, Any] = {"n": n, "n_zero": int((w == 0).sum()), "sum": total}
    if n == 0:
        return out
    mean = total / n
    sq = float(np.dot(pos, pos))
    cv = math.sqrt(max(sq / n - mean * mean, 0.0)) / mean if mean > 0 else math.nan
    out.update(
        min=float(pos.min()),
        median=float(np.median(pos)),
        max=float(pos.max()),
        max_min_ratio=float(pos.max() / pos.min()),
        cv=cv,
        deff_kish=n * sq / total**2,  # = 1 + CV² with the population variance (ddof 0)
        n_eff=total**2 / sq,
    )
    if previous is not None:
        prev = np.asarray(previous, dtype=float)
        both = (prev > 0) & (w > 0)
        if both.any():
            f = w[both] / prev[both]
            out["factor"] = {"min": float(f.min()), "mean": float(f.mean()), "max": float(f.max())}
    return out


def summary_by(weights: np.ndarray, groups: np.ndarray | pd.Series) -> dict[str, dict[str, Any]]:
    """`weight_summary` per group (stratum, domain)."""
    w = np.asarray(weights, dtype=float)
    codes, uniques = pd.factorize(pd.Series(groups), sort=True)
    return {str(u): weight_summary(w[codes == k]) for k, u in enumerate(uniques)}


def level_label(value: Any) -> str:
    """Canonical text of a category: 1, 1.0 and "1" are the same level."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value).strip()


def _validated_weights(weights: np.ndarray | Sequence[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + 1
        raise WeightingError(
            [
                error(
                    WEIGHT_INVALID,
                    f"{int(bad.sum())} weight(s) are missing or negative (first at data "
                    f"row {first}); every unit needs a weight ≥ 0",
                    row=first,
                )
            ]
        )
    return w


# --- Nonresponse adjustment (§4.3) --------------------------------------------------------------------------

ER, EN, IN, UE = "ER", "EN", "IN", "UE"


@dataclass(frozen=True)
class AdjustmentResult:
    """Weights after the eligibility/nonresponse adjustment, with the factor of every class.

    Parameters:
        weights: adjusted weights (EN and UE get 0; IN keeps its eligibility-adjusted weight).
        classes: one dict per final class: class, members (original classes), counts, a1, a2, factor.
        collapsed: (from, into) pairs applied.
        issues: warnings (collapses, guardrails still broken).
    """

    weights: np.ndarray
    classes: tuple[dict[str, Any], ...]
    collapsed: tuple[tuple[str, str], ...]
    issues: tuple[Issue, ...]


def _class_factors(
    d: np.ndarray, status: np.ndarray, codes: np.ndarray, k: int, unknown_to_ineligible: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    def tot(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=np.where(mask, d, 0.0), minlength=k)

    er, en, ine, ue = (status == s for s in (ER, EN, IN, UE))
    s_er, s_en, s_in, s_ue = tot(er), tot(en), tot(ine), tot(ue)
    with np.errstate(divide="ignore", invalid="ignore"):
        if unknown_to_ineligible:
            a1 = (s_er + s_en + s_in + s_ue) / (s_er + s_en + s_in)
            a2 = (s_er + s_en) / s_er
        else:
            a1 = np.ones(k)
            a2 = (s_er + s_en + s_ue) / s_er
    n_er = np.bincount(codes, weights=er.astype(float), minlength=k)
    return a1, a2, n_er, (s_er, s_en, s_in, s_ue)


def _class_level_labels(classes: np.ndarray | Sequence[str]) -> np.ndarray:
    """`level_label` of every class, computed once per distinct class when the classes are text (the replicates
    adjust the same classes many times)."""
    series = pd.Series(classes)
    codes, uniques = pd.factorize(series)
    if (codes >= 0).all() and all(isinstance(u, str) for u in uniques):
        return np.array([level_label(u) for u in uniques], dtype=object)[codes]
    return series.map(level_label).to_numpy(dtype=object)


def nonresponse_adjust(
    weights: np.ndarray | Sequence[float],
    status: np.ndarray | Sequence[str],
    classes: np.ndarray | Sequence[str],
    *,
    unknown_to_ineligible: bool = True,
    min_respondents: int = 0,
    max_factor: float = math.inf,
    collapse: Mapping[str, str] | None = None,
) -> AdjustmentResult:
    """Eligibility and nonresponse adjustment by weighting classes (two steps, §4.3).

    Step 1: a1_c = Σ_all d / Σ_{ER,EN,IN} d on ER, EN and IN (UE gets 0). Step 2: a2_c = Σ_{ER,EN} d1 / Σ_ER d1 on ER
    (EN gets 0). With `unknown_to_ineligible=False` the UE weight goes to the respondents only and IN keeps d.

    Parameters:
        weights: base weights d of every selected unit.
        status: "ER", "EN", "IN" or "UE" per unit.
        classes: the weighting class label per unit.
        unknown_to_ineligible: share UE weight with the ineligibles (samplics/svy default) or not.
        min_respondents: guardrail: a class with fewer respondents is collapsed (when the map says where).
        max_factor: guardrail: a class whose factor a1·a2 exceeds this is collapsed (when the map says where).
        collapse: explicit collapse map: class label → class it merges into (applied repeatedly).
    """
    d = _validated_weights(weights)
    st = np.asarray(status, dtype=object)
    labels = _class_level_labels(classes)
    collapse = {level_label(k): level_label(v) for k, v in (collapse or {}).items()}
    members: dict[str, set[str]] = {c: {c} for c in set(labels.tolist())}
    done: list[tuple[str, str]] = []
    issues: list[Issue] = []
    while True:
        codes, uniq = pd.factorize(labels, sort=True)
        names = [str(u) for u in uniq]
        a1, a2, n_er, _ = _class_factors(d, st, codes, len(names), unknown_to_ineligible)
        factor = a1 * a2
        moved = False
        for i, c in enumerate(names):
            bad = n_er[i] < min_respondents or not (factor[i] <= max_factor)
            target = collapse.get(c)
            if bad and target is not None and target != c and target in names:
                labels = np.where(labels == c, target, labels)
                members[target] = members.get(target, {target}) | members.pop(c, {c})
                done.append((c, target))
                issues.append(
                    warning(
                        CLASS_COLLAPSED,
                        f"nonresponse class {c!r} ({int(n_er[i])} respondents, factor "
                        f"{factor[i]:.3g}) collapsed into {target!r}",
                        value=c,
                    )
                )
                moved = True
                break
        if not moved:
            break
    codes, uniq = pd.factorize(labels, sort=True)
    names = [str(u) for u in uniq]
    a1, a2, n_er, sums = _class_factors(d, st, codes, len(names), unknown_to_ineligible)
    blocking = []
    for i, c in enumerate(names):
        if n_er[i] == 0 and (sums[1][i] + sums[3][i]) > 0:
            blocking.append(
                error(
                    NO_RESPONDENTS,
                    f"nonresponse class {c!r} has no respondents but carries "
                    "nonrespondent/unknown weight; add a collapse rule for it in design.toml "
                    "[nonresponse.collapse]",
                    value=c,
                )
            )
        elif n_er[i] < min_respondents or a1[i] * a2[i] > max_factor:
            issues.append(
                warning(
                    CLASS_SMALL,
                    f"nonresponse class {c!r} has {int(n_er[i])} respondents and factor "
                    f"{a1[i] * a2[i]:.3g} (guardrails: ≥ {min_respondents}, ≤ {max_factor:g}); add a "
                    "collapse rule",
                    value=c,
                )
            )
    if blocking:
        raise WeightingError(blocking)
    a1 = np.nan_to_num(a1, nan=1.0)
    a2 = np.nan_to_num(a2, nan=1.0, posinf=1.0)
    if unknown_to_ineligible:
        new = np.select([st == ER, st == IN], [d * a1[codes] * a2[codes], d * a1[codes]], 0.0)
    else:
        new = np.select([st == ER, st == IN], [d * a2[codes], d], 0.0)
    table = tuple(
        {
            "class": c,
            "members": sorted(members.get(c, {c})),
            "n_ER": int(n_er[i]),
            "weight_ER": float(sums[0][i]),
            "weight_EN": float(sums[1][i]),
            "weight_IN": float(sums[2][i]),
            "weight_UE": float(sums[3][i]),
            "a1": float(a1[i]),
            "a2": float(a2[i]),
            "factor": float(a1[i] * a2[i]),
        }
        for i, c in enumerate(names)
    )
    return AdjustmentResult(new, table, tuple(done), tuple(issues))


# --- Trimming (§4.4) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrimResult:
    """Trimmed weights: the cap used, how many units were cut and the weight mass moved."""

    weights: np.ndarray
    cap: float
    n_trimmed: int
    mass_moved: float
    issues: tuple[Issue, ...] = ()


def trim_cap(
    weights: np.ndarray, *, method: Literal["absolute", "median", "quantile"], value: float
) -> float:
    """The cap: an absolute value, k × the median weight, or a quantile of the weights (of units with w >
    0)."""
    pos = np.asarray(weights, dtype=float)
    pos = pos[pos > 0]
    if method == "absolute":
        return float(value)
    if method == "median":
        return float(value * np.median(pos))
    if method == "quantile":
        return float(np.quantile(pos, value))
    raise ValueError(f"unknown trimming method {method!r}")


def trim(
    weights: np.ndarray | Sequence[float],
    *,
    cap: float,
    classes: np.ndarray | Sequence[Any] | None = None,
    strict: bool = True,
    max_iter: int = 100,
) -> TrimResult:
    """Cap weights and give the excess to the other units of the trimming class in proportion to their
    weights.

    Parameters:
        weights: the weights.
        cap: the upper bound.
        classes: trimming classes (the total is kept within each); None = one class.
        strict: repeat until no weight exceeds the cap (R `trimWeights(strict=TRUE)`).
        max_iter: limit on the repetitions.
    """
    w = _validated_weights(weights).copy()
    codes = np.zeros(len(w), dtype=np.int64) if classes is None else pd.factorize(pd.Series(classes))[0]
    k = int(codes.max(initial=-1)) + 1
    trimmed = np.zeros(len(w), dtype=bool)
    moved = 0.0
    issues: list[Issue] = []
    for _ in range(max_iter):
        over = w > cap * (1 + 1e-12)
        if not over.any():
            break
        excess = np.where(over, w - cap, 0.0)
        moved += float(excess.sum())
        w[over] = cap
        trimmed |= over
        receivers = (~trimmed) & (w > 0)
        base = np.bincount(codes, weights=np.where(receivers, w, 0.0), minlength=k)
        ex = np.bincount(codes, weights=excess, minlength=k)
        if ((base <= 0) & (ex > 0)).any():
            issues.append(
                warning(
                    TRIM_INFEASIBLE,
                    f"every weight of a trimming class is at the cap {cap:.6g}; the "
                    "excess cannot be redistributed in that class (total not kept); raise the cap",
                )
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where(base > 0, 1.0 + ex / base, 1.0)
        w = np.where(receivers, w * up[codes], w)
        if not strict:
            break
    return TrimResult(w, float(cap), int(trimmed.sum()), moved, tuple(issues))


# --- Base weights (§4.2) ------------------------------------------------------------------------------------


def first_stage_probabilities(
    stratum: np.ndarray | Sequence[Any],
    mos: np.ndarray | Sequence[float],
    n_h: Mapping[Any, float],
    stratum_mos: Mapping[Any, float],
    *,
    certainty: np.ndarray | Sequence[bool] | None = None,
    ids: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Issue]]:
    """PPS inclusion probabilities p1 = n_h·M_hi/M_h of the selected PSUs, with certainty units removed
    iteratively.

    If n_h·M_hi ≥ M_h the PSU is a certainty unit: p1 = 1, it leaves the stratum (n_h − 1, M_h − M_hi) and the
    test is repeated. Only selected PSUs can be certainty units, so the selected PSUs and M_h suffice.

    Parameters:
        stratum: stratum of every selected PSU.
        mos: measure of size M_hi used for selection.
        n_h: PSUs selected per stratum (including certainty units).
        stratum_mos: M_h, the total measure of size of the stratum's frame.
        certainty: PSUs flagged as certainty in the sample file (forced to p1 = 1).
        ids: PSU ids, for messages.
    Returns: p1, the certainty flags and warnings.
    """
    strata = np.array([level_label(s) for s in stratum], dtype=object)
    m = np.asarray(mos, dtype=float)
    cert = np.zeros(len(m), dtype=bool) if certainty is None else np.asarray(certainty, dtype=bool).copy()
    p1 = np.ones(len(m))
    issues: list[Issue] = []
    for h in sorted(set(strata.tolist())):
        idx = np.flatnonzero(strata == h)
        n = float(n_h[h]) - cert[idx].sum()
        total = float(stratum_mos[h]) - m[idx][cert[idx]].sum()
        while True:
            free = idx[~cert[idx]]
            if len(free) == 0 or n <= 0:
                break
            new = free[n * m[free] >= total]
            if len(new) == 0:
                break
            cert[new] = True
            n -= len(new)
            total -= m[new].sum()
        free = idx[~cert[idx]]
        p1[free] = n * m[free] / total if total > 0 else math.nan
    for i in np.flatnonzero(cert):
        name = level_label(ids[int(i)]) if ids is not None else f"#{i + 1}"
        issues.append(
            warning(
                CERTAINTY_PSU,
                f"PSU {name} of stratum {strata[i]} is a certainty unit (p1 = 1): it is "
                "its own stratum for variance estimation",
                row=int(i) + 2,
                value=name,
            )
        )
    return p1, cert, issues


__all__ = [
    "AdjustmentResult",
    "TrimResult",
    "WeightingError",
    "first_stage_probabilities",
    "level_label",
    "nonresponse_adjust",
    "summary_by",
    "trim",
    "trim_cap",
    "weight_summary",
]
