"""Design-based estimates: means, totals, proportions and ratios with Taylor or replicate standard errors.

Formulas (specs/weights.md §4.7). For R̂ = Σwy/Σwx the linearised variable is z_i = w_i(y_i − R̂x_i)/Σwx (a
mean has x = 1; a total has z_i = w_i·y_i). PSU totals z_hi give v = Σ_h n_h/(n_h−1)·Σ_i (z_hi − z̄_h)²
(with-replacement PSU approximation: the R `survey`, Stata and DHS default; with a finite population correction
each stratum's term is multiplied by 1 − f_h, f_h = n_h/N_h, as R `svydesign(fpc=)`), df = #PSU − #strata and
t-based confidence intervals. With several sampling stages and an fpc for every stage, each later stage adds
its within-cluster term, weighted by the sampling fractions of the stages above it, as R `svydesign(ids = ~psu +
ssu, fpc = ~fpc1 + fpc2)` computes it. Domains are estimated without subsetting: y = x = 0 outside the domain, so
every PSU of the design stays in the variance (R `svyby`, Stata `subpop`). Replicate variances are
scale·Σ_r rscale_r(θ_r − centre)², with the scale, rscales and centring defaults of R `svrepdesign`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd

from toolkit.errors import EXIT_DATA_PROBLEMS, EXIT_USAGE, Issue, ToolkitError, define, error, warning
from toolkit.tablefile import read_table

Statistic = Literal["mean", "total", "proportion", "ratio"]
LonelyPsu = Literal["error", "adjust", "average", "certainty"]
ReplicateMethod = Literal["jkn", "jk1", "bootstrap", "brr"]

LONELY_PSU = define(
    "estimate.lonely_psu", "A stratum has a single PSU, so its variance contribution cannot be estimated"
)
COLUMN_MISSING = define(
    "estimate.column_missing", "A column named in the estimate options is not in the table"
)
WEIGHT_INVALID = define(
    "estimate.weight_invalid", "The weight column has missing, negative or non-numeric values"
)
NOT_NUMERIC = define("estimate.not_numeric", "The analysis variable is not numeric")
EMPTY_DOMAIN = define("estimate.empty_domain", "A domain has no sample cases or a zero weighted denominator")
REPLICATES_MISSING = define(
    "estimate.replicates_missing", "No replicate weight columns start with the given prefix"
)
DESIGN_MISSING = define("estimate.design_missing", "A stratum or PSU column has missing values")
FPC_INVALID = define(
    "estimate.fpc_invalid", "The finite population correction column is missing, not constant within a stratum, or "
    "smaller than the sample"
)
STAGES_INVALID = define(
    "estimate.stages_invalid", "The sampling stages (--psu, --fpc) given do not describe one multistage design"
)
REPLICATE_OPTIONS_INVALID = define(
    "estimate.replicate_options_invalid", "A replicate variance option (--fay, --scale, --rscales) is out of range"
)
# A stratum whose PSUs were all taken (f_h = 1) is self-representing: it adds no sampling variance (R uses the
# same tolerance).
CERTAINTY_TOLERANCE = 1e-7


@dataclass(frozen=True)
class EstimateRow:
    """One estimate: a statistic of a variable (or a level of it) in a domain.

    Parameters:
        domain: the domain value (as text) or "all".
        statistic: mean, total, proportion or ratio.
        variable: the variable; for a proportion `var=level`; for a ratio `num/den`.
        estimate, se: the point estimate and its standard error.
        ci_low, ci_high: the t-based confidence interval.
        df: degrees of freedom used for the interval.
        n: unweighted number of sample cases in the domain with a non-missing value.
        deff: design effect, the variance over the variance a simple random sample of the same size would give
            (R `svymean(deff = TRUE)`); None for ratios and where it is not defined.
    """

    domain: str
    statistic: str
    variable: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    df: int
    n: int
    deff: float | None = None


@dataclass(frozen=True)
class EstimateResult:
    """Rows of estimates, the variance method and any warnings."""

    rows: tuple[EstimateRow, ...]
    method: str
    issues: tuple[Issue, ...] = ()


# --- Student t quantile (no scipy at run time) --------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    # Continued fraction of the incomplete beta function (modified Lentz), Numerical Recipes §6.4.
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbeta) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbeta) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student t distribution function (df > 0)."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with `df` degrees of freedom (normal when df is infinite); NaN when df < 1."""
    if not math.isfinite(df):
        return NormalDist().inv_cdf(p)
    if df < 1:
        return math.nan
    if p == 0.5:
        return 0.0
    upper = p > 0.5
    q = p if upper else 1.0 - p
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):  # bisection to machine precision
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-14 * max(1.0, hi):
            break
    value = 0.5 * (lo + hi)
    return value if upper else -value


# --- Design structure ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """Strata and PSU codes of a table, as integer indexes.

    Parameters:
        stratum_of_psu: stratum index of every PSU (length P).
        psu: PSU index of every row (0..P-1); PSUs are nested in strata.
        stratum_labels: the stratum values, for messages.
    """

    psu: np.ndarray
    stratum_of_psu: np.ndarray
    stratum_labels: tuple[str, ...]

    @property
    def n_psu(self) -> int:
        return len(self.stratum_of_psu)

    @property
    def n_strata(self) -> int:
        return len(self.stratum_labels)

    @property
    def df(self) -> int:
        return self.n_psu - self.n_strata

    def psus_per_stratum(self) -> np.ndarray:
        return np.bincount(self.stratum_of_psu, minlength=self.n_strata)


def make_design(n: int, strata: np.ndarray | pd.Series | None, psu: np.ndarray | pd.Series | None) -> Design:
    """Index strata and PSUs (PSU ids may repeat across strata: the PSU is the pair stratum×PSU).

    Parameters:
        n: number of rows.
        strata: stratum value of each row, or None for an unstratified design.
        psu: PSU value of each row, or None when every row is its own PSU.
    """
    if strata is None:
        s_codes = np.zeros(n, dtype=np.int64)
        s_labels: tuple[str, ...] = ("all",)
    else:
        codes, uniques = pd.factorize(pd.Series(strata), sort=True)
        s_codes = codes.astype(np.int64)
        s_labels = tuple(str(u) for u in uniques)
    p_raw = (
        np.arange(n, dtype=np.int64)
        if psu is None
        else pd.factorize(pd.Series(psu), sort=True)[0].astype(np.int64)
    )
    pair = s_codes * (int(p_raw.max(initial=0)) + 1) + p_raw
    psu_codes, pair_uniques = pd.factorize(pair, sort=True)
    stratum_of_psu = (np.asarray(pair_uniques) // (int(p_raw.max(initial=0)) + 1)).astype(np.int64)
    return Design(psu=psu_codes.astype(np.int64), stratum_of_psu=stratum_of_psu, stratum_labels=s_labels)


def taylor_variance(
    psu_totals: np.ndarray,
    design: Design,
    *,
    lonely_psu: LonelyPsu = "error",
    sampling_fraction: np.ndarray | None = None,
) -> np.ndarray:
    """Variance of linearised totals from their PSU totals (P×k) by the with-replacement formula.

    Parameters:
        psu_totals: array (P, k): column j holds Σ z over the rows of each PSU for estimate j.
        design: the strata/PSU structure.
        lonely_psu: what to do with strata that have a single PSU: "error" (raise), "certainty" (no
            contribution), "adjust" (centre at the sample average of the estimating function, zero, as R
            `survey.lonely.psu="adjust"`), "average" (the mean contribution of the other strata).
        sampling_fraction: first-stage sampling fraction f_h of each stratum (see `fpc_fractions`); each
            stratum's term is multiplied by 1 − f_h, and strata with f_h = 1 add nothing (and are not lonely).
    """
    totals = np.asarray(psu_totals, dtype=float)
    if totals.ndim == 1:
        totals = totals[:, None]
    nh = design.psus_per_stratum().astype(float)
    keep = np.ones(design.n_strata) if sampling_fraction is None else 1.0 - np.asarray(sampling_fraction, float)
    certain = keep < CERTAINTY_TOLERANCE
    s = design.stratum_of_psu
    lonely_stratum = (nh == 1) & ~certain
    lonely = lonely_stratum[s]
    if lonely_stratum.any() and lonely_psu == "error":
        names = [design.stratum_labels[h] for h in np.flatnonzero(lonely_stratum)]
        raise ToolkitError(
            error(
                LONELY_PSU,
                f"{len(names)} stratum(s) have a single PSU ({', '.join(names[:10])}); the variance needs "
                "at least 2 "
                "PSUs per stratum. Collapse the stratum with a neighbour, or choose --lonely-psu "
                "adjust|average|certainty.",
            ),
            EXIT_DATA_PROBLEMS,
        )
    k = totals.shape[1]
    sums = np.zeros((design.n_strata, k))
    np.add.at(sums, s, totals)
    means = sums / np.maximum(nh, 1)[:, None]
    dev = totals - means[s]
    if lonely_psu == "adjust":
        # R `survey.lonely.psu = "adjust"`: the single PSU is centred at zero, the average of the estimating
        # function over the whole sample (exactly so for means and ratios), not at its own stratum mean.
        dev[lonely] = totals[lonely]
    sq = np.zeros((design.n_strata, k))
    np.add.at(sq, s, dev * dev)
    factor = np.where(nh > 1, nh / np.maximum(nh - 1, 1), 0.0)
    if lonely_psu == "adjust":
        factor = np.where(nh == 1, 1.0, factor)
    contrib = sq * (factor * np.where(certain, 0.0, keep))[:, None]
    if lonely_psu == "average" and lonely_stratum.any():
        ok = ~lonely_stratum
        avg = contrib[ok].mean(axis=0) if ok.any() else np.zeros(k)
        contrib[lonely_stratum] = avg
    return contrib.sum(axis=0)


def fpc_fractions(values: np.ndarray | pd.Series, design: Design, *, column: str = "fpc") -> np.ndarray:
    """First-stage sampling fraction f_h of every stratum from an fpc column, read as R `svydesign(fpc=)` reads
    it: all values ≤ 1 are sampling fractions; otherwise they are population sizes N_h (PSUs in the stratum,
    or units when every row is its own PSU), and f_h = n_h/N_h. The value must be the same on every row of a
    stratum.

    Parameters:
        values: the fpc value of each row.
        design: the strata/PSU structure of the same rows.
        column: the column name, for messages.
    """
    return _sampling_fractions(
        values,
        design.stratum_of_psu[design.psu],
        design.psus_per_stratum(),
        design.stratum_labels,
        column=column,
        group="stratum",
        units="PSUs",
    )


def _sampling_fractions(
    values: np.ndarray | pd.Series,
    group_of_row: np.ndarray,
    sampled: np.ndarray,
    group_labels: Sequence[str],
    *,
    column: str,
    group: str,
    units: str,
) -> np.ndarray:
    """Sampling fraction of every group (a stratum at the first stage, a cluster of the stage above later) from
    an fpc column of population sizes (> 1) or sampling fractions (all ≤ 1), constant within a group.

    Parameters:
        values: the fpc value of each row.
        group_of_row: the group index of each row.
        sampled: the number of clusters sampled in each group.
        group_labels: the group names, for messages.
        column, group, units: the column name, what a group is and what it counts, for messages.
    """
    raw = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)

    def invalid(message: str, row: int | None = None) -> ToolkitError:
        return ToolkitError(error(FPC_INVALID, message, variable=column, row=row), EXIT_DATA_PROBLEMS)

    if np.isnan(raw).any() or (raw < 0).any():
        first = int(np.flatnonzero(np.isnan(raw) | (raw < 0))[0]) + 1
        raise invalid(
            f"fpc column {column!r} has missing, negative or non-numeric values (first at data row {first}); "
            f"give every row its {group}'s population size or sampling fraction",
            first,
        )
    n_groups = len(sampled)
    low = np.full(n_groups, np.inf)
    high = np.full(n_groups, -np.inf)
    np.minimum.at(low, group_of_row, raw)
    np.maximum.at(high, group_of_row, raw)
    varying = np.flatnonzero(high - low > 1e-9 * np.maximum(np.abs(high), 1.0))
    if varying.size:
        names = ", ".join(group_labels[h] for h in varying[:10])
        raise invalid(
            f"fpc column {column!r} is not constant within {group}(s) {names}; it is a property of the {group} "
            "(its population size or sampling fraction)"
        )
    if (high <= 1).all():
        return high
    if (high < 1).any():
        raise invalid(
            f"fpc column {column!r} mixes sampling fractions (≤ 1) and population sizes (> 1); use one kind"
        )
    count = np.asarray(sampled, dtype=float)
    over = np.flatnonzero(count > high + 1e-9)
    if over.size:
        h = int(over[0])
        raise invalid(
            f"fpc column {column!r} gives {group} {group_labels[h]} a population of {high[h]:g} but the "
            f"sample has {int(count[h])} {units} there (more than 100% sampling); the fpc counts {units} in the "
            f"population {group}"
        )
    return count / high


@dataclass(frozen=True)
class LaterStage:
    """A sampling stage after the first: clusters drawn inside every cluster of the stage above.

    Parameters:
        cluster: the cluster index of every row at this stage (0..C-1; clusters of different parents differ).
        parent_of_cluster: the index of the enclosing cluster of the stage above, per cluster (for stage 2 the
            first-stage PSU index of `Design.psu`).
        sampling_fraction: per cluster of the stage above, the fraction of its clusters this stage sampled.
        labels: the names of the clusters of the stage above, for messages.
    """

    cluster: np.ndarray
    parent_of_cluster: np.ndarray
    sampling_fraction: np.ndarray
    labels: tuple[str, ...]


def later_stages(
    parent_of_row: np.ndarray,
    parent_labels: Sequence[str],
    columns: Sequence[tuple[str, np.ndarray | pd.Series, str, np.ndarray | pd.Series]],
) -> tuple[LaterStage, ...]:
    """Index the stages after the first, each nested in the one above (cluster ids may repeat across parents).

    Parameters:
        parent_of_row: the first-stage PSU index of every row (`Design.psu`).
        parent_labels: the first-stage PSU names, for messages.
        columns: per later stage, (cluster column, cluster value of each row, fpc column, fpc value of each row).
    """
    stages = []
    parent = np.asarray(parent_of_row, dtype=np.int64)
    labels = tuple(parent_labels)
    for index, (name, values, fpc_name, fpc_values) in enumerate(columns):
        raw = pd.factorize(pd.Series(values), sort=True)[0].astype(np.int64)
        pair = parent * (int(raw.max(initial=0)) + 1) + raw
        cluster, uniques = pd.factorize(pair, sort=True)
        parent_of_cluster = (np.asarray(uniques) // (int(raw.max(initial=0)) + 1)).astype(np.int64)
        sampled = np.bincount(parent_of_cluster, minlength=len(labels))
        fractions = _sampling_fractions(
            fpc_values, parent, sampled, labels, column=fpc_name, group="cluster", units=f"{name} clusters"
        )
        stages.append(LaterStage(cluster.astype(np.int64), parent_of_cluster, fractions, labels))
        parent = cluster.astype(np.int64)
        if index + 1 < len(columns):  # names of this stage's clusters, for the next stage's messages
            value_text = pd.Series(values).astype(str).to_numpy()
            first_row = np.zeros(len(uniques), dtype=np.int64)
            first_row[cluster[::-1]] = np.arange(len(cluster))[::-1]
            labels = tuple(f"{labels[p]}/{value_text[r]}" for p, r in zip(parent_of_cluster, first_row, strict=True))
    return tuple(stages)


def later_stage_variance(
    z: np.ndarray,
    column: np.ndarray,
    n_columns: int,
    stages: Sequence[LaterStage],
    psu_fraction: np.ndarray,
    *,
    lonely_psu: LonelyPsu = "error",
) -> np.ndarray:
    """The variance terms of the stages after the first (R `survey` multistage, `survey.ultimate.cluster =
    FALSE`): inside every cluster g of the stage above, (1 − f_g)·m_g/(m_g − 1)·Σ_j (Z_gj − Z̄_g)² over its m_g
    sampled clusters' totals Z_gj, weighted by the product of the sampling fractions of g and of every cluster
    above it.

    Parameters:
        z: the linearised value of every row.
        column: the output column (domain) of every row; `z` adds to that column only.
        n_columns: the number of output columns.
        stages: the later stages, in order (see `later_stages`).
        psu_fraction: the first-stage sampling fraction of every first-stage PSU (its stratum's f_h).
        lonely_psu: a cluster with one sampled subcluster (and f_g < 1): "error" raises, "certainty" adds
            nothing, "adjust" centres it at zero as R does; "average" is refused (R gives no number there).
    """
    weight = np.asarray(psu_fraction, dtype=float)
    variance = np.zeros(n_columns)
    for stage in stages:
        n_clusters = len(stage.parent_of_cluster)
        n_parents = len(weight)
        totals = np.bincount(
            stage.cluster * n_columns + column, weights=z, minlength=n_clusters * n_columns
        ).reshape(n_clusters, n_columns)
        parent = stage.parent_of_cluster
        sampled = np.bincount(parent, minlength=n_parents).astype(float)
        sums = _sum_rows_by(totals, parent, n_parents)
        dev = totals - (sums / np.maximum(sampled, 1)[:, None])[parent]
        keep = 1.0 - stage.sampling_fraction
        certain = keep < CERTAINTY_TOLERANCE
        lonely = (sampled == 1) & ~certain & (weight > 0)
        if lonely.any() and lonely_psu in ("error", "average"):
            names = [stage.labels[g] for g in np.flatnonzero(lonely)[:10]]
            raise ToolkitError(
                error(
                    LONELY_PSU,
                    f"{int(lonely.sum())} cluster(s) have a single sampled cluster at the next stage "
                    f"({', '.join(names)}), so that stage's variance cannot be estimated there; give an fpc "
                    "showing the cluster was taken whole, or --lonely-psu adjust|certainty"
                    + (" (average is not defined inside a cluster)" if lonely_psu == "average" else ""),
                ),
                EXIT_DATA_PROBLEMS,
            )
        if lonely_psu == "adjust":
            dev[lonely[parent]] = totals[lonely[parent]]
        squares = _sum_rows_by(dev * dev, parent, n_parents)
        factor = np.where(sampled > 1, sampled / np.maximum(sampled - 1, 1), 1.0) * np.where(certain, 0.0, keep)
        variance += (squares * (factor * weight)[:, None]).sum(axis=0)
        weight = (weight * stage.sampling_fraction)[parent]
    return variance


def _sum_rows_by(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of a 2-D array by group (one bincount; np.add.at is slow on many rows)."""
    n_columns = values.shape[1]
    index = (group[:, None] * n_columns + np.arange(n_columns)[None, :]).ravel()
    return np.bincount(index, weights=values.ravel(), minlength=n_groups * n_columns).reshape(n_groups, n_columns)


# --- Point estimates and linearised variables --------------------------------------------------------------


def _numeric(table: pd.DataFrame, column: str) -> np.ndarray:
    if column not in table.columns:
        raise ToolkitError(
            error(
                COLUMN_MISSING,
                f"column {column!r} is not in the table; columns are: "
                f"{', '.join(map(str, table.columns[:30]))}",
                variable=column,
            ),
            EXIT_USAGE,
        )
    series = table[column]
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        converted = pd.to_numeric(series, errors="coerce")
        if converted.notna().sum() < series.notna().sum():
            raise ToolkitError(
                error(
                    NOT_NUMERIC,
                    f"column {column!r} has non-numeric values; use --proportion for a categorical variable",
                    variable=column,
                ),
                EXIT_DATA_PROBLEMS,
            )
        series = converted
    return series.astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _weights(table: pd.DataFrame, column: str) -> np.ndarray:
    w = _numeric(table, column)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        raise ToolkitError(
            error(
                WEIGHT_INVALID,
                f"weight column {column!r} has {int(bad.sum())} missing or negative value(s) "
                f"(first at data row {int(np.flatnonzero(bad)[0]) + 1}); every row needs a weight ≥ 0",
                variable=column,
                row=int(np.flatnonzero(bad)[0]) + 1,
            ),
            EXIT_DATA_PROBLEMS,
        )
    return w


@dataclass(frozen=True)
class _Spec:
    label: str  # variable label for the output row
    statistic: str
    y: np.ndarray
    x: np.ndarray | None  # None: total; ones: mean/proportion


def _specs(table: pd.DataFrame, statistic: Statistic, variable: str, denominator: str | None) -> list[_Spec]:
    if statistic == "proportion":
        if variable not in table.columns:
            _numeric(table, variable)  # raises the column message
        col = table[variable]
        levels = sorted(col.dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
        valid = col.notna().to_numpy()
        specs = []
        for level in levels:
            y = np.where(valid, (col == level).fillna(False).to_numpy(dtype=bool).astype(float), np.nan)
            specs.append(_Spec(f"{variable}={level}", "proportion", y, np.ones(len(table))))
        return specs
    y = _numeric(table, variable)
    if statistic == "total":
        return [_Spec(variable, "total", y, None)]
    if statistic == "mean":
        return [_Spec(variable, "mean", y, np.ones(len(table)))]
    if denominator is None:
        raise ToolkitError(error(COLUMN_MISSING, "a ratio needs a denominator variable"), EXIT_USAGE)
    return [_Spec(f"{variable}/{denominator}", "ratio", y, _numeric(table, denominator))]


def _domain_codes(table: pd.DataFrame, by: str | None) -> tuple[np.ndarray, list[str]]:
    if by is None:
        return np.zeros(len(table), dtype=np.int64), ["all"]
    if by not in table.columns:
        _numeric(table, by)
    codes, uniques = pd.factorize(table[by], sort=True)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _ratio_parts(
    spec: _Spec, w: np.ndarray, dom: np.ndarray, n_dom: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Estimates per domain, the linearised z per row (for the row's own domain), the used-row mask and n."""
    y = spec.y
    x = np.ones_like(y) if spec.x is None else spec.x
    used = np.isfinite(y) & np.isfinite(x) & (dom >= 0)
    d = np.where(used, dom, 0)
    wy = np.where(used, w * np.nan_to_num(y), 0.0)
    ty = np.bincount(d, weights=wy, minlength=n_dom)
    n = np.bincount(d, weights=(used & (w > 0)).astype(float), minlength=n_dom)  # cases that carry weight
    if spec.x is None:
        return ty, wy, used, n
    wx = np.where(used, w * np.nan_to_num(x), 0.0)
    tx = np.bincount(d, weights=wx, minlength=n_dom)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ty / tx
        z = np.where(used, (wy - r[d] * wx) / tx[d], 0.0)
    return r, z, used, n


def _srs_variance(spec: _Spec, w: np.ndarray, dom: np.ndarray, n_dom: int, used: np.ndarray) -> np.ndarray:
    """Per domain, the variance of the same mean, proportion or total under simple random sampling of the domain's
    n cases without replacement from N = Σw (R `svymean`/`svytotal` with deff = TRUE): s²(N − n)/(Nn) for a mean,
    times N² for a total, s² being the weighted variance Σw(y − ȳ)²/Σw · n/(n − 1). NaN for a ratio."""
    if spec.statistic == "ratio":
        return np.full(n_dom, np.nan)
    y = np.nan_to_num(spec.y)
    carry = used & (w > 0)
    d = np.where(carry, dom, 0)
    weight = np.bincount(d, weights=np.where(carry, w, 0.0), minlength=n_dom)
    count = np.bincount(d, weights=carry.astype(float), minlength=n_dom)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.bincount(d, weights=np.where(carry, w * y, 0.0), minlength=n_dom) / weight
        spread = np.bincount(d, weights=np.where(carry, w * (y - mean[d]) ** 2, 0.0), minlength=n_dom)
        s2 = spread / weight * count / (count - 1)
        srs = s2 * (weight - count) / (weight * count)
    if spec.statistic == "total":
        srs = srs * weight**2
    return np.where(weight >= count, srs, np.nan)  # weights that sum below n are not scaled to a population


def estimate(  # noqa: PLR0912, PLR0915
    table: pd.DataFrame,
    *,
    weight: str,
    statistic: Statistic,
    variable: str,
    denominator: str | None = None,
    by: str | None = None,
    strata: str | None = None,
    psu: str | Sequence[str] | None = None,
    replicate_prefix: str | None = None,
    method: ReplicateMethod | None = None,
    fay: float = 0.0,
    mse: bool | None = None,
    lonely_psu: LonelyPsu = "error",
    fpc: str | Sequence[str] | None = None,
    level: float = 0.95,
    scale: float | None = None,
    rscales: Sequence[float] | None = None,
) -> EstimateResult:
    """Estimate a mean, total, proportion (every level) or ratio, overall or by domain, with its standard
    error.

    Parameters:
        table: the data (one row per unit).
        weight: the analysis weight column.
        statistic: "mean", "total", "proportion" or "ratio".
        variable: the analysis variable (the numerator of a ratio).
        denominator: the denominator variable of a ratio.
        by: a domain column; domains are estimated without subsetting the design.
        strata: the stratum column for Taylor linearisation (and to find JKn coefficients).
        psu: the PSU column, or one cluster column per sampling stage (first stage first; a later stage's ids
            may repeat across the clusters above it).
        replicate_prefix: use the replicate weight columns starting with this prefix instead of Taylor.
        method: replicate method: "jkn", "jk1", "bootstrap" or "brr" (Fay with `fay` > 0).
        fay: Fay's coefficient ρ for BRR, 0 ≤ ρ < 1 (0 = classical BRR).
        mse: centre replicate variances on the full-sample estimate (True) or on the mean of the replicates
            (False); None takes R `svrepdesign`'s default, False for every method.
        lonely_psu: single-PSU strata handling for Taylor: "error", "adjust", "average", "certainty".
        fpc: a column with each stratum's population size (PSUs) or first-stage sampling fraction, for a
            finite population correction of the Taylor variance (none by default); with several `psu` stages,
            one column per stage (a later stage's column holds, for every cluster of the stage above, its
            number of subclusters or the fraction sampled), as R `svydesign(fpc = ~fpc1 + fpc2)`.
        level: confidence level of the t-based interval.
        scale: the overall replicate variance multiplier, for replicates made elsewhere (default R
            `svrepdesign`'s: JK1 (R−1)/R, bootstrap 1/(R−1), BRR 1/R, Fay 1/(R(1−ρ)²), JKn 1).
        rscales: per-replicate multipliers (one value for all, or one per replicate in the natural order of
            the column names); default 1, for JKn (n_h−1)/n_h of the stratum the replicate deletes from.
    """
    psu_columns = [psu] if isinstance(psu, str) else list(psu or ())
    fpc_columns = [fpc] if isinstance(fpc, str) else list(fpc or ())
    _check_stages(psu_columns, fpc_columns)
    _check_replicate_options(fay, scale, rscales)
    w = _weights(table, weight)
    dom, dom_labels = _domain_codes(table, by)
    n_dom = len(dom_labels)
    issues: list[Issue] = []
    specs = _specs(table, statistic, variable, denominator)
    for col in (strata, *psu_columns):
        if col is not None and col not in table.columns:
            _numeric(table, col)
        if col is not None and table[col].isna().any():
            first = int(np.flatnonzero(table[col].isna().to_numpy())[0]) + 1
            raise ToolkitError(
                error(
                    DESIGN_MISSING,
                    f"design column {col!r} has {int(table[col].isna().sum())} missing value(s) "
                    f"(first at data row {first}); every row needs its stratum and PSU",
                    variable=col,
                    row=first,
                ),
                EXIT_DATA_PROBLEMS,
            )
    design = make_design(
        len(table),
        None if strata is None else table[strata].to_numpy(),
        None if not psu_columns else table[psu_columns[0]].to_numpy(),
    )
    fractions = None
    stages: tuple[LaterStage, ...] = ()
    if fpc_columns:
        if replicate_prefix is not None:
            raise ToolkitError(
                error(
                    FPC_INVALID,
                    "--fpc applies to Taylor variances; replicate weights carry their own design (for a "
                    "finite population correction, build the replicates with it)",
                    variable=fpc_columns[0],
                ),
                EXIT_USAGE,
            )
        for column in fpc_columns:
            if column not in table.columns:
                _numeric(table, column)
        fractions = fpc_fractions(table[fpc_columns[0]].to_numpy(), design, column=fpc_columns[0])
    if len(fpc_columns) > 1:
        psu_values = table[psu_columns[0]].astype(str).to_numpy()
        psu_labels = [
            f"{design.stratum_labels[design.stratum_of_psu[p]]}:{psu_values[r]}"
            for p, r in zip(*np.unique(design.psu, return_index=True), strict=True)
        ]
        stages = later_stages(
            design.psu,
            psu_labels,
            [
                (column, table[column].to_numpy(), fpc_column, table[fpc_column].to_numpy())
                for column, fpc_column in zip(psu_columns[1:], fpc_columns[1:], strict=True)
            ],
        )
    if replicate_prefix is not None:
        rep_cols = [c for c in table.columns if str(c).startswith(replicate_prefix) and c != weight]
        if not rep_cols:
            raise ToolkitError(
                error(
                    REPLICATES_MISSING,
                    f"no column starts with {replicate_prefix!r}; pass the common prefix of "
                    "the replicate weight columns (e.g. repw_)",
                    variable=replicate_prefix,
                ),
                EXIT_USAGE,
            )
        rep_cols = sorted(rep_cols, key=_natural_key)
        reps = np.column_stack([_weights(table, c) for c in rep_cols])
        coefs, df = _replicate_setup(
            reps,
            w,
            method or "jkn",
            fay=fay,
            design=design if (strata or psu_columns) else None,
            scale=scale,
            rscales=rscales,
        )
        # R `svrepdesign(mse = getOption("survey.replicates.mse"))`: FALSE unless set, for every method.
        centre_on_mean = not mse
        method_name = (
            f"replicate:{method}"
            + (f"(fay={fay})" if method == "brr" and fay else "")
            + (", mse" if mse else "")
        )
    else:
        coefs, centre_on_mean, df, reps = None, False, design.df, None
        method_name = "taylor" + (f", {len(psu_columns)} stages" if stages else "")
    tq = t_quantile(0.5 + level / 2.0, df) if df >= 1 else math.nan
    rows: list[EstimateRow] = []
    for spec in specs:
        est, z, used, n = _ratio_parts(spec, w, dom, n_dom)
        if reps is None or coefs is None:  # both None together: Taylor linearisation
            idx = design.psu * n_dom + np.where(used, dom, 0)
            totals = np.bincount(idx, weights=z, minlength=design.n_psu * n_dom).reshape(design.n_psu, n_dom)
            var = taylor_variance(totals, design, lonely_psu=lonely_psu, sampling_fraction=fractions)
            if stages and fractions is not None:
                var = var + later_stage_variance(
                    z,
                    np.where(used, dom, 0),
                    n_dom,
                    stages,
                    fractions[design.stratum_of_psu],
                    lonely_psu=lonely_psu,
                )
        else:
            rep_est = np.column_stack(
                [_ratio_parts(spec, reps[:, r], dom, n_dom)[0] for r in range(reps.shape[1])]
            )
            # R `svrVar`: the mean of the replicates that carry a positive multiplier.
            centre = rep_est[:, coefs > 0].mean(axis=1, keepdims=True) if centre_on_mean else est[:, None]
            var = ((rep_est - centre) ** 2 * coefs[None, :]).sum(axis=1)
        se = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            deff = var / _srs_variance(spec, w, dom, n_dom, used)
        for j, label in enumerate(dom_labels):
            if n[j] == 0 or not np.isfinite(est[j]):
                issues.append(
                    warning(
                        EMPTY_DOMAIN,
                        f"domain {label!r} of {by or 'all'} has no usable cases for "
                        f"{spec.label}; its estimate is missing",
                        variable=spec.label,
                    )
                )
            rows.append(
                EstimateRow(
                    domain=label,
                    statistic=spec.statistic,
                    variable=spec.label,
                    estimate=float(est[j]),
                    se=float(se[j]),
                    ci_low=float(est[j] - tq * se[j]),
                    ci_high=float(est[j] + tq * se[j]),
                    df=int(df),
                    n=int(n[j]),
                    deff=float(deff[j]) if np.isfinite(deff[j]) else None,
                )
            )
    return EstimateResult(rows=tuple(rows), method=method_name, issues=tuple(issues))



# --- Intervals for proportions and quantiles (indicator tables) -----------------------------------------------

ProportionInterval = Literal["logit", "korn-graubard", "wald"]


@functools.lru_cache(maxsize=4096)
def _t_cached(p: float, df: float) -> float:
    # Indicator tables ask for the same few quantiles thousands of times; each costs a bisection.
    return t_quantile(p, df)


def beta_quantile(q: float, a: float, b: float) -> float:
    """Quantile of the Beta(a, b) distribution (R `qbeta`); 0 when a = 0 and 1 when b = 0, as R gives."""
    if a <= 0:
        return 0.0
    if b <= 0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(200):  # bisection on the regularised incomplete beta to machine precision
        mid = 0.5 * (lo + hi)
        if _betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-16:
            break
    return 0.5 * (lo + hi)


def proportion_interval(
    p: float,
    se: float,
    *,
    df: float,
    method: ProportionInterval = "logit",
    n: int = 0,
    domain_df: float | None = None,
    level: float = 0.95,
) -> tuple[float, float]:
    """Confidence interval of an estimated proportion that never leaves [0, 1].

    "logit": the Wald interval on the logit scale, logit(p) ± t·se/(p(1−p)), back-transformed (R
    `svyciprop(method = "logit")` and `"xlogit"`, which agree for one proportion). "korn-graubard": the
    Clopper–Pearson interval at the effective sample size n_eff = p(1−p)/se² · (t_{n−1}/t_{df})² (Korn and Graubard
    1998; R `svyciprop(method = "beta")`, whose df is that of the domain's own subset, `domain_df`). "wald": p ± t·se,
    clipped to [0, 1]. Where p is 0 or 1 (no variance), both logit and Korn–Graubard give the Clopper–Pearson
    interval of the n cases (R has no interval there).

    Parameters:
        p, se: the estimate and its standard error.
        df: degrees of freedom of the design (t quantile of the logit and Wald intervals).
        method: "logit", "korn-graubard" or "wald".
        n: unweighted number of cases behind the estimate.
        domain_df: degrees of freedom of the domain subset (#PSUs with cases − #strata with cases), for
            Korn–Graubard; default `df`.
        level: confidence level.
    """
    alpha = 1.0 - level
    if not (math.isfinite(p) and math.isfinite(se)):
        return math.nan, math.nan
    if method == "wald":
        t = _t_cached(1 - alpha / 2, df)
        return max(0.0, p - t * se), min(1.0, p + t * se)
    degenerate = se <= 0 or p <= 0 or p >= 1
    if method == "logit" and not degenerate:
        t = _t_cached(1 - alpha / 2, df)
        centre = math.log(p / (1 - p))
        half = t * se / (p * (1 - p))
        return 1 / (1 + math.exp(-(centre - half))), 1 / (1 + math.exp(-(centre + half)))
    if degenerate:
        n_eff = float(n)
    else:
        ddf = df if domain_df is None else domain_df
        n_eff = p * (1 - p) / (se * se) * (_t_cached(alpha / 2, n - 1) / _t_cached(alpha / 2, ddf)) ** 2
    if not math.isfinite(n_eff) or n_eff <= 0:
        return math.nan, math.nan
    return (
        beta_quantile(alpha / 2, n_eff * p, n_eff * (1 - p) + 1),
        beta_quantile(1 - alpha / 2, n_eff * p + 1, n_eff * (1 - p)),
    )


def weighted_quantile(values: np.ndarray, weights: np.ndarray, p: float) -> float:
    """The p-quantile of a weighted sample as R `survey` "math" rule (`qrule_math`, the `svyquantile` default):
    the smallest value whose weighted distribution function reaches p. Cases with weight 0 are left out.

    Parameters:
        values, weights: the sample (finite values) and its weights.
        p: the probability, 0 < p < 1.
    """
    keep = weights != 0
    x, w = np.asarray(values, float)[keep], np.asarray(weights, float)[keep]
    if x.size == 0:
        return math.nan
    order = np.argsort(x, kind="stable")
    x, cumw = x[order], np.cumsum(w[order])
    total = float(w.sum())
    below = np.flatnonzero(cumw <= p * total)
    if below.size == 0:
        return float(x[0])
    pos = int(below[-1])
    if p - cumw[pos] / total == 0:
        return float(x[pos])
    return float(x[min(pos + 1, x.size - 1)])


@dataclass(frozen=True)
class QuantileRow:
    """A quantile in a domain with its Woodruff interval.

    Parameters:
        domain: the domain value (as text) or "all".
        quantile: the probability (0.5 for the median).
        estimate: the quantile.
        ci_low, ci_high: the Woodruff interval (NaN where the interval of the distribution function leaves [0, 1]).
        se: (ci_high − ci_low)/(2·t), as R reports it.
        df: degrees of freedom.
        n: unweighted cases.
    """

    domain: str
    quantile: float
    estimate: float
    ci_low: float
    ci_high: float
    se: float
    df: int
    n: int


def estimate_with_replicates(
    table: pd.DataFrame,
    *,
    weight: str,
    replicate_columns: Sequence[str],
    coefficients: Sequence[float],
    centre_on_mean: bool = False,
    df: int,
    statistic: Statistic,
    variable: str,
    denominator: str | None = None,
    by: str | None = None,
    level: float = 0.95,
) -> EstimateResult:
    """Like `estimate` with replicate weights, but with the variance coefficients the weighting step recorded
    (weights-report.json) instead of coefficients read off the table: a table of return migrants does not show
    which PSU a replicate dropped, and calibrated replicates change every weight. v = Σ_r c_r (θ_r − θ̂)², or
    centred on the mean of the θ_r when the method centres there (R `svrepdesign(rscales =, mse =)`).

    Parameters:
        table: the data.
        weight: the full-sample weight column.
        replicate_columns: the replicate weight columns, in the order of `coefficients`.
        coefficients: the variance coefficient c_r of each replicate.
        centre_on_mean: centre on the mean of the replicate estimates instead of the full-sample estimate.
        df: degrees of freedom of the t interval (the design's #PSU − #strata).
        statistic, variable, denominator, by, level: as for `estimate`.
    """
    w = _weights(table, weight)
    dom, labels = _domain_codes(table, by)
    n_dom = len(labels)
    reps = table[list(replicate_columns)].to_numpy(dtype=float)
    if not np.isfinite(reps).all() or (reps < 0).any():
        for column in replicate_columns:
            _weights(table, column)  # raises the message that names the column and row
    coefs = np.asarray(coefficients, float)
    tq = _t_cached(0.5 + level / 2.0, df) if df >= 1 else math.nan
    rows: list[EstimateRow] = []
    issues: list[Issue] = []
    for spec in _specs(table, statistic, variable, denominator):
        point, _, used, n = _ratio_parts(spec, w, dom, n_dom)
        replicated = _replicate_points(spec, reps, dom, n_dom)
        # A replicate in which a domain has no weight left gives no estimate: it is left out, as R's svrVar does
        # (na.action), with a warning.
        finite = np.isfinite(replicated)
        for partly in np.flatnonzero(~finite.all(axis=1) & finite.any(axis=1)):
            issues.append(
                warning(
                    EMPTY_DOMAIN,
                    f"domain {labels[partly]!r}: {int((~finite[partly]).sum())} replicate(s) have no cases in the "
                    "domain and are left out of its variance (as R does)",
                    variable=spec.label,
                )
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            if centre_on_mean:
                # the mean of the replicates with a coefficient > 0, as R's svrVar takes it
                counted = finite & (coefs > 0)[None, :]
                counts = counted.sum(axis=1)
                centre = np.where(counted, replicated, 0.0).sum(axis=1) / np.where(counts > 0, counts, np.nan)
            else:
                centre = point
            deviation = np.where(finite, replicated - centre[:, None], 0.0)
            var = np.where(finite.any(axis=1), (deviation**2 * coefs[None, :]).sum(axis=1), np.nan)
            deff = var / _srs_variance(spec, w, dom, n_dom, used)
        for j, label in enumerate(labels):
            se = float(np.sqrt(var[j]))
            rows.append(
                EstimateRow(
                    domain=label,
                    statistic=spec.statistic,
                    variable=spec.label,
                    estimate=float(point[j]),
                    se=se,
                    ci_low=float(point[j] - tq * se),
                    ci_high=float(point[j] + tq * se),
                    df=int(df),
                    n=int(n[j]),
                    deff=float(deff[j]) if np.isfinite(deff[j]) else None,
                )
            )
    return EstimateResult(rows=tuple(rows), method="replicate:recorded", issues=tuple(issues))


def _replicate_points(spec: _Spec, reps: np.ndarray, dom: np.ndarray, n_dom: int) -> np.ndarray:
    """Per domain (rows) and replicate (columns): the ratio, mean or total under each replicate weight."""
    y = spec.y
    x = np.ones_like(y) if spec.x is None else spec.x
    used = np.isfinite(y) & np.isfinite(x) & (dom >= 0)
    out = np.full((n_dom, reps.shape[1]), np.nan)
    # With finite replicate weights everywhere, a domain's totals are products with y zeroed outside it: no copy
    # of the domain's rows of the matrix (230 MB for the persons of 100,000 households) per domain.
    masked = bool(np.isfinite(reps).all())
    for j in range(n_dom):
        rows = used & (dom == j)
        if masked:
            totals_y = np.where(rows, y, 0.0) @ reps
            totals_x = np.where(rows, x, 0.0) @ reps if spec.x is not None else None
        else:
            totals_y = y[rows] @ reps[rows]
            totals_x = x[rows] @ reps[rows] if spec.x is not None else None
        if totals_x is None:
            out[j] = totals_y
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[j] = totals_y / totals_x
    return out


def estimate_quantile(
    table: pd.DataFrame,
    *,
    weight: str,
    variable: str,
    quantile: float = 0.5,
    by: str | None = None,
    level: float = 0.95,
    **design: Any,
) -> tuple[QuantileRow, ...]:
    """A quantile per domain with Woodruff's interval, as R `svyquantile(interval.type = "mean", qrule = "math",
    df = degf(full design))` on each domain: the distribution function at the estimate, F̂(q̂), is estimated as a
    mean with its design-based SE (Taylor or replicates: `design` takes the keyword options of `estimate`), its
    t-interval is mapped back through the weighted quantile function, and SE = interval width / (2t).

    Parameters:
        table: the data; rows with a missing `variable` are left out of every domain.
        weight, variable: the weight and the numeric analysis variable.
        quantile: the probability (0.5: median, 0.8: 80th percentile).
        by: a domain column.
        level: confidence level.
        design: strata, psu, replicate_prefix, method, fay, mse, lonely_psu, fpc as `estimate` takes them.
    """
    y = _numeric(table, variable)
    w = _weights(table, weight)
    dom, labels = _domain_codes(table, by)
    usable = np.isfinite(y) & (dom >= 0)
    point = np.full(len(labels), math.nan)
    below = np.full(len(table), math.nan)
    for j in range(len(labels)):
        rows = usable & (dom == j)
        point[j] = weighted_quantile(y[rows], w[rows], quantile)
        below[rows] = (y[rows] <= point[j]).astype(float)
    work = pd.DataFrame({"__w": w, "__below": below})
    if by is not None:
        work["__by"] = table[by].to_numpy()
    for key in ("strata", "psu", "fpc"):
        column = design.get(key)
        if isinstance(column, str):
            work[column] = table[column].to_numpy()
    prefix = design.get("replicate_prefix")
    if isinstance(prefix, str):
        for column in table.columns:
            if str(column).startswith(prefix) and column != weight:
                work[column] = table[column].to_numpy()
    columns = design.get("replicate_columns")
    if isinstance(columns, (list, tuple)):
        for column in columns:
            work[column] = table[column].to_numpy()
    estimator = estimate_with_replicates if isinstance(columns, (list, tuple)) else estimate
    cdf = estimator(
        work,
        weight="__w",
        statistic="mean",
        variable="__below",
        by="__by" if by is not None else None,
        level=level,
        **design,
    )
    rows_out = []
    t = t_quantile(0.5 + level / 2.0, cdf.rows[0].df) if cdf.rows else math.nan
    for j, label in enumerate(labels):
        row = cdf.rows[j]
        inside = usable & (dom == j)
        low = math.nan if not row.ci_low >= 0 else weighted_quantile(y[inside], w[inside], row.ci_low)
        high = math.nan if not row.ci_high <= 1 else weighted_quantile(y[inside], w[inside], row.ci_high)
        rows_out.append(
            QuantileRow(
                domain=label,
                quantile=quantile,
                estimate=float(point[j]),
                ci_low=low,
                ci_high=high,
                se=(high - low) / (2 * t),
                df=row.df,
                n=row.n,
            )
        )
    return tuple(rows_out)


def _natural_key(name: object) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(name)))


def _check_stages(psu_columns: Sequence[str], fpc_columns: Sequence[str]) -> None:
    """Refuse stage lists that do not make one design (a repeated option is a stage, never an override)."""
    if len(fpc_columns) > 1 and len(fpc_columns) != len(psu_columns):
        raise ToolkitError(
            error(
                STAGES_INVALID,
                f"{len(fpc_columns)} --fpc columns ({', '.join(fpc_columns)}) for {len(psu_columns)} --psu "
                "stage(s): give one --fpc per --psu, in the same order (first stage first), as R "
                "svydesign(ids = ~psu + ssu, fpc = ~fpc1 + fpc2); or one --psu with one --fpc for the "
                "ultimate-cluster variance with a first-stage fpc",
            ),
            EXIT_USAGE,
        )
    if len(fpc_columns) == 1 and len(psu_columns) > 1:
        raise ToolkitError(
            error(
                STAGES_INVALID,
                f"{len(psu_columns)} --psu stages ({', '.join(psu_columns)}) but one --fpc: a multistage "
                "variance needs the fpc of every stage (R svydesign refuses fewer fpc than stages too); give "
                f"{len(psu_columns)} --fpc columns, or only the first --psu for the ultimate-cluster variance "
                "with a first-stage fpc",
            ),
            EXIT_USAGE,
        )
    repeated = sorted({c for c in psu_columns if list(psu_columns).count(c) > 1})
    if repeated:
        raise ToolkitError(
            error(STAGES_INVALID, f"--psu {repeated[0]} is given twice; each --psu names one stage"), EXIT_USAGE
        )


def _check_replicate_options(fay: float, scale: float | None, rscales: Sequence[float] | None) -> None:
    """Fay's ρ must be in [0, 1) (ρ = 1 leaves the replicates equal to the full sample: a division by zero);
    a scale and rscales must be finite and ≥ 0."""
    problem = None
    if not (math.isfinite(fay) and 0.0 <= fay < 1.0):
        problem = f"--fay {fay:g} is outside [0, 1): Fay's coefficient ρ multiplies the dropped half-sample"
    elif scale is not None and not (math.isfinite(scale) and scale > 0):
        problem = f"--scale {scale:g} must be a number > 0"
    elif rscales is not None and (
        len(rscales) == 0 or not all(math.isfinite(r) and r >= 0 for r in rscales)
    ):
        problem = "--rscales must be numbers ≥ 0 (one for all replicates, or one per replicate)"
    if problem:
        raise ToolkitError(error(REPLICATE_OPTIONS_INVALID, problem), EXIT_USAGE)


def _replicate_setup(
    reps: np.ndarray,
    w: np.ndarray,
    method: str,
    *,
    fay: float,
    design: Design | None,
    scale: float | None = None,
    rscales: Sequence[float] | None = None,
) -> tuple[np.ndarray, int]:
    """Per-replicate variance multipliers scale·rscale_r (R `svrepdesign` defaults unless given) and the df."""
    n_rep = reps.shape[1]
    df = n_rep - 1
    if rscales is not None and len(rscales) not in (1, n_rep):
        raise ToolkitError(
            error(
                REPLICATE_OPTIONS_INVALID,
                f"--rscales has {len(rscales)} values but there are {n_rep} replicate weight columns; give one "
                "value for all or one per replicate",
            ),
            EXIT_USAGE,
        )
    default_scale = {
        "jk1": (n_rep - 1) / n_rep,
        "bootstrap": 1.0 / max(n_rep - 1, 1),
        "brr": 1.0 / (n_rep * (1.0 - fay) ** 2),
        "jkn": 1.0,
    }[method]
    if method == "brr" and design is not None:
        df = design.df
    if rscales is not None:
        per_replicate = np.broadcast_to(np.asarray(rscales, dtype=float), (n_rep,)).copy()
    elif method == "jkn":
        per_replicate = _jkn_rscales(reps, w, design)
    else:
        per_replicate = np.ones(n_rep)
    if method == "jkn" and design is not None:
        df = design.df
    return (default_scale if scale is None else scale) * per_replicate, df


def _jkn_rscales(reps: np.ndarray, w: np.ndarray, design: Design | None) -> np.ndarray:
    """JKn: replicate r drops one PSU of stratum h and multiplies the other PSUs of h by n_h/(n_h−1); its
    multiplier is (n_h−1)/n_h. With the design we find h from the dropped PSU; without it we read n_h/(n_h−1)
    off the weights (the factor applied to the kept PSUs of h)."""
    n_rep = reps.shape[1]
    coefs = np.empty(n_rep)
    positive = w > 0
    for r in range(n_rep):
        dropped = positive & (reps[:, r] == 0)
        if design is not None and dropped.any():
            h = design.stratum_of_psu[design.psu[np.flatnonzero(dropped)[0]]]
            nh = design.psus_per_stratum()[h]
            coefs[r] = (nh - 1) / nh
            continue
        changed = positive & (reps[:, r] > 0) & ~np.isclose(reps[:, r], w, rtol=1e-9)
        if not changed.any():
            coefs[r] = (n_rep - 1) / n_rep
            continue
        factor = float(np.median(reps[changed, r] / w[changed]))
        coefs[r] = 1.0 / factor if factor > 1 else (n_rep - 1) / n_rep
    return coefs


def estimate_file(path: Path, **options: Any) -> EstimateResult:
    """Read a table file and call `estimate` with the given keyword options."""
    return estimate(read_table(path), **options)


__all__: Sequence[str] = (
    "Design",
    "EstimateResult",
    "EstimateRow",
    "LaterStage",
    "QuantileRow",
    "beta_quantile",
    "estimate",
    "estimate_file",
    "estimate_quantile",
    "estimate_with_replicates",
    "fpc_fractions",
    "later_stage_variance",
    "later_stages",
    "make_design",
    "proportion_interval",
    "t_quantile",
    "taylor_variance",
    "weighted_quantile",
)
