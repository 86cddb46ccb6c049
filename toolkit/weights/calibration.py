"""Calibration (numpy only): raking, post-stratification and GREG-type calibration with their input checks.

specs/weights.md §4.5. Categorical margins are handled on the collapsed cross-class cell table (the adjustment
factor is constant within a cell) and mapped back to the units; numeric auxiliaries run at unit level with an
n×p matrix. No n×n matrix is ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from toolkit.errors import Issue, error, warning
from toolkit.weights.core import (
    MARGIN_MISSING_VALUES,
    MARGIN_TOTALS_DIFFER,
    MARGIN_VARIABLE_MISSING,
    NEGATIVE_WEIGHTS,
    NOT_CONVERGED,
    SAMPLE_LEVEL_ABSENT,
    TARGET_INVALID,
    TARGET_LEVEL_ABSENT,
    ZERO_TARGET,
    WeightingError,
    _validated_weights,
    level_label,
    weight_summary,
)

CalibrationMethod = Literal["rake", "poststratify", "linear", "linear_bounded", "logit"]

# --- Levels, margins and cells ------------------------------------------------------------------------------


def factorize_levels(values: pd.Series | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 for missing) and canonical labels of a category column, fast on millions of rows."""
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind in "iub" and arr.size:
        # Small-range integer codes (the usual survey category): a bincount instead of a hash table.
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo < 1_000_000:
            shifted = arr.astype(np.int64) - lo
            present = np.flatnonzero(np.bincount(shifted, minlength=hi - lo + 1))
            remap = np.full(hi - lo + 1, -1, dtype=np.int64)
            remap[present] = np.arange(len(present))
            return remap[shifted], [level_label(int(v) + lo) for v in present]
    codes, uniques = pd.factorize(pd.Series(values), sort=False)
    labels = [level_label(u) for u in uniques]
    canon: dict[str, int] = {}
    remap = np.empty(len(labels), dtype=np.int64)
    for i, lab in enumerate(labels):
        remap[i] = canon.setdefault(lab, len(canon))
    codes = codes.astype(np.int64)
    mapped = np.where(codes >= 0, remap[np.maximum(codes, 0)] if len(remap) else 0, -1)
    return mapped, list(canon)


@dataclass(frozen=True)
class Margin:
    """Population totals of one calibration variable: level label → target."""

    variable: str
    targets: Mapping[str, float]

    @property
    def total(self) -> float:
        return float(sum(self.targets.values()))


def margins_from_frame(frame: pd.DataFrame, *, source: str = "margins") -> list[Margin]:
    """Margins from a table with columns variable, level, target (one row per level)."""
    cols = {c.strip().lower(): c for c in frame.columns}
    missing = [c for c in ("variable", "level", "target") if c not in cols]
    if missing:
        raise WeightingError(
            [
                error(
                    TARGET_INVALID,
                    f"the margins table needs columns variable, level, target; missing: {', '.join(missing)}",
                    file=source,
                )
            ]
        )
    issues: list[Issue] = []
    out: dict[str, dict[str, float]] = {}
    data = frame.rename(
        columns={cols["variable"]: "variable", cols["level"]: "level", cols["target"]: "target"}
    )
    for i, (var_raw, lev_raw, raw) in enumerate(
        zip(data["variable"], data["level"], data["target"], strict=True), start=2
    ):
        var, lev = str(var_raw).strip(), level_label(lev_raw)
        try:
            target = float(raw)
        except (TypeError, ValueError):
            target = math.nan
        if not math.isfinite(target) or target < 0:
            issues.append(
                error(
                    TARGET_INVALID,
                    f"target {raw!r} for {var}={lev} is not a number ≥ 0",
                    file=source,
                    row=i,
                    variable=var,
                )
            )
            continue
        if lev in out.setdefault(var, {}):
            issues.append(
                error(
                    TARGET_INVALID,
                    f"level {lev!r} of {var} is listed twice",
                    file=source,
                    row=i,
                    variable=var,
                )
            )
        out[var][lev] = target
    if issues:
        raise WeightingError(issues)
    return [Margin(v, t) for v, t in out.items()]


@dataclass(frozen=True)
class _Cells:
    cell: np.ndarray  # cell index of every unit
    level_of_cell: list[np.ndarray]  # per margin: level code of every cell
    labels: list[list[str]]  # per margin: level labels (sample ∪ targets)
    weight: np.ndarray  # Σ w per cell
    count: np.ndarray  # units per cell


def _encode(table: pd.DataFrame, margins: Sequence[Margin]) -> dict[str, tuple[np.ndarray, list[str]]]:
    return {m.variable: factorize_levels(table[m.variable]) for m in margins if m.variable in table.columns}


def check_margins(
    table: pd.DataFrame,
    margins: Sequence[Margin],
    *,
    weights: np.ndarray | None = None,
    source: str = "margins",
    encoded: Mapping[str, tuple[np.ndarray, list[str]]] | None = None,
) -> list[Issue]:
    """Pre-flight checks of §4.5: variables present, no missing values, the same levels on both sides, equal
    grand totals, and no positive target whose level has no weight.

    Parameters:
        table: the units.
        margins: the population margins.
        weights: the starting weights (to find levels whose weights are all 0).
        source: the margins' file name, for messages.
        encoded: codes and labels per variable when the caller has them already.
    """
    issues: list[Issue] = []
    totals = [m.total for m in margins]
    enc = encoded if encoded is not None else _encode(table, margins)
    for m in margins:
        if m.variable not in table.columns:
            issues.append(
                error(
                    MARGIN_VARIABLE_MISSING,
                    f"calibration variable {m.variable!r} is not a column of the "
                    "table; derive it or fix the margins file",
                    file=source,
                    variable=m.variable,
                )
            )
            continue
        codes, labels = enc[m.variable]
        n_missing = int((codes < 0).sum())
        if n_missing:
            first = int(np.flatnonzero(codes < 0)[0]) + 1
            issues.append(
                error(
                    MARGIN_MISSING_VALUES,
                    f"{n_missing} row(s) have no value for {m.variable} (first at "
                    f"data row {first}); impute or recode them before calibrating",
                    variable=m.variable,
                    row=first,
                )
            )
        present = set(labels)
        for lev, target in m.targets.items():
            if lev not in present and target > 0:
                issues.append(
                    error(
                        TARGET_LEVEL_ABSENT,
                        f"target level {m.variable}={lev} (target {target:g}) has no "
                        "sample cases; collapse it with a neighbouring level in the margins and the data",
                        file=source,
                        variable=m.variable,
                        value=lev,
                    )
                )
        for lev in labels:
            if lev not in m.targets:
                issues.append(
                    error(
                        SAMPLE_LEVEL_ABSENT,
                        f"sample level {m.variable}={lev} has no target in the margins; "
                        "add its target or recode those cases",
                        file=source,
                        variable=m.variable,
                        value=lev,
                    )
                )
        if weights is not None and not issues:
            wsum = np.bincount(np.maximum(codes, 0), weights=weights, minlength=len(labels))
            for k, lev in enumerate(labels):
                if wsum[k] <= 0 and m.targets.get(lev, 0) > 0:
                    issues.append(
                        error(
                            TARGET_LEVEL_ABSENT,
                            f"level {m.variable}={lev} has sample cases but all their "
                            "weights are 0, so its target cannot be met",
                            variable=m.variable,
                            value=lev,
                        )
                    )
    if totals and max(totals) - min(totals) > 1e-9 * max(*totals, 1.0):
        listing = ", ".join(f"{m.variable}={m.total:,.6g}" for m in margins)
        issues.append(
            error(
                MARGIN_TOTALS_DIFFER,
                f"the margins have different grand totals ({listing}); every margin "
                "must add up to the same population",
                file=source,
            )
        )
    return issues


def _cells(
    table: pd.DataFrame,
    margins: Sequence[Margin],
    weights: np.ndarray,
    encoded: Mapping[str, tuple[np.ndarray, list[str]]] | None = None,
) -> _Cells:
    enc = encoded if encoded is not None else _encode(table, margins)
    codes_list, labels_list = [], []
    for m in margins:
        codes, labels = enc[m.variable]
        extra = [lev for lev in m.targets if lev not in labels]
        labels = labels + extra
        codes_list.append(codes)
        labels_list.append(labels)
    sizes = [len(lab) for lab in labels_list]
    radix = 1
    cell = np.zeros(len(table), dtype=np.int64)
    for codes, size in zip(codes_list, sizes, strict=True):
        cell += codes * radix
        radix *= size
    if radix <= 4_000_000:
        # Dense cross-class table: cell = mixed-radix code (empty cells carry weight 0 and are harmless).
        ncell = radix
        cell_idx = cell
    else:
        cell_idx, uniq = pd.factorize(cell, sort=False)
        cell_idx = cell_idx.astype(np.int64)
        ncell = len(uniq)
        cell = np.asarray(uniq)
    ids = np.arange(ncell, dtype=np.int64) if radix <= 4_000_000 else cell
    level_of_cell = []
    r = 1
    for size in sizes:
        level_of_cell.append((ids // r) % size)
        r *= size
    return _Cells(
        cell=cell_idx,
        level_of_cell=level_of_cell,
        labels=labels_list,
        weight=np.bincount(cell_idx, weights=weights, minlength=ncell),
        count=np.bincount(cell_idx, minlength=ncell),
    )


@dataclass(frozen=True)
class CalibrationResult:
    """Calibrated weights with the fit of every margin level and the weight diagnostics.

    Parameters:
        weights: the new weights (same order as the input rows).
        method: rake, poststratify, linear, linear_bounded or logit.
        iterations: sweeps (raking) or Newton steps (GREG).
        converged: whether the max relative margin error reached the tolerance.
        max_rel_error: max over margin levels of |Σw − T|/T.
        margins: one dict per level: variable, level, target, achieved, rel_error.
        diagnostics: `weight_summary` of the new weights (with the adjustment factor).
        issues: warnings (zero targets, negative GREG weights, non-convergence when allowed).
    """

    weights: np.ndarray
    method: str
    iterations: int
    converged: bool
    max_rel_error: float
    margins: tuple[dict[str, Any], ...]
    diagnostics: dict[str, Any]
    issues: tuple[Issue, ...] = field(default_factory=tuple)


def _margin_fit(
    cells: _Cells, margins: Sequence[Margin], cw: np.ndarray
) -> tuple[list[dict[str, Any]], float]:
    rows, worst = [], 0.0
    for j, m in enumerate(margins):
        got = np.bincount(cells.level_of_cell[j], weights=cw, minlength=len(cells.labels[j]))
        for k, lev in enumerate(cells.labels[j]):
            target = float(m.targets.get(lev, 0.0))
            rel = abs(got[k] - target) / target if target > 0 else abs(got[k]) / max(m.total, 1.0)
            # max() would drop a NaN (an overflowed margin) and report a perfect fit.
            worst = max(worst, float(rel)) if math.isfinite(rel) else math.inf
            rows.append(
                {
                    "variable": m.variable,
                    "level": lev,
                    "target": target,
                    "achieved": float(got[k]),
                    "rel_error": float(rel),
                }
            )
    return rows, worst


def _zero_target_warnings(
    table: pd.DataFrame,
    margins: Sequence[Margin],
    encoded: Mapping[str, tuple[np.ndarray, list[str]]] | None = None,
) -> list[Issue]:
    enc = encoded if encoded is not None else _encode(table, margins)
    out = []
    for m in margins:
        present = set(enc[m.variable][1])
        for lev, t in m.targets.items():
            if t == 0 and lev in present:
                out.append(
                    warning(
                        ZERO_TARGET,
                        f"target of {m.variable}={lev} is 0: its sample cases get weight 0",
                        variable=m.variable,
                        value=lev,
                    )
                )
    return out


def _finish(
    issues: list[Issue],
    *,
    converged: bool,
    max_err: float,
    tol: float,
    iters: int,
    method: str,
    on_nonconvergence: str,
) -> None:
    if converged:
        return
    if math.isfinite(max_err):
        msg = (
            f"{method} did not converge: max relative margin error {max_err:.3g} > tol {tol:g} after {iters} "
            "iterations; the margins may be inconsistent (a level emptied by a zero target, or cells that "
            "cannot meet both margins). Collapse levels, raise --max-iter, or accept with --on-nonconvergence "
            "warn"
        )
    else:
        msg = (
            f"{method} diverged after {iters} iterations: the adjustment factors overflowed, so no weights "
            "meet these margins (sample cells cannot meet one margin's target without breaking another's). "
            "Check the targets against the sample's cross-classification and collapse levels"
        )
    if on_nonconvergence == "error":
        raise WeightingError([error(NOT_CONVERGED, msg)])
    issues.append(warning(NOT_CONVERGED, msg))


def rake(
    table: pd.DataFrame,
    weights: np.ndarray | Sequence[float],
    margins: Sequence[Margin],
    *,
    tol: float = 1e-6,
    max_iter: int = 100,
    on_nonconvergence: Literal["error", "warn"] = "error",
    source: str = "margins",
) -> CalibrationResult:
    """Rake weights to one-way margins by iterative proportional fitting on the collapsed cell table.

    Stops when the max over all margin levels of |Σw − T|/T ≤ `tol` (§4.5).

    Parameters:
        table: the units, with one column per margin variable.
        weights: the starting (design or adjusted) weights.
        margins: population totals per variable; every margin must have the same grand total.
        tol: the stopping tolerance on the max relative margin error.
        max_iter: the maximum number of sweeps over the margins.
        on_nonconvergence: "error" raises `WeightingError`; "warn" returns the weights with a warning.
        source: the margins' file name, for messages.
    """
    w = _validated_weights(weights)
    enc = _encode(table, margins)
    problems = check_margins(table, margins, weights=w, source=source, encoded=enc)
    if problems:
        raise WeightingError(problems)
    issues = _zero_target_warnings(table, margins, enc)
    cells = _cells(table, margins, w, enc)
    targets = [np.array([m.targets.get(lev, 0.0) for lev in cells.labels[j]]) for j, m in enumerate(margins)]
    factor = np.ones_like(cells.weight)
    max_err, it = math.inf, 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for it in range(1, max_iter + 1):  # noqa: B007
            for j in range(len(margins)):
                lev = cells.level_of_cell[j]
                got = np.bincount(lev, weights=cells.weight * factor, minlength=len(targets[j]))
                ratio = np.where(got > 0, targets[j] / got, np.where(targets[j] == 0, 0.0, 1.0))
                factor *= ratio[lev]
            if not np.isfinite(factor).all():
                break  # the factors overflowed: margins that no weights can meet
            _, max_err = _margin_fit(cells, margins, cells.weight * factor)
            if max_err <= tol:
                break
    # Success is judged on the weights that are returned, not on the sweep's bookkeeping: a non-finite
    # factor, weight or error is non-convergence, whatever the iteration reached.
    new = w * factor[cells.cell]
    finite = bool(np.isfinite(new).all())
    fit, max_err = _margin_fit(cells, margins, np.bincount(cells.cell, weights=new, minlength=len(cells.weight)))
    max_err = float(max_err)
    converged = bool(finite and max_err <= tol)
    _finish(
        issues,
        converged=converged,
        max_err=max_err,
        tol=tol,
        iters=it,
        method="raking",
        on_nonconvergence=on_nonconvergence if finite else "error",
    )
    return CalibrationResult(
        new, "rake", it, converged, max_err, tuple(fit), weight_summary(new, w), tuple(issues)
    )


def poststratify(
    table: pd.DataFrame,
    weights: np.ndarray | Sequence[float],
    margin: Margin,
    *,
    source: str = "margins",
) -> CalibrationResult:
    """Post-stratify: w·N_c/Σ_c w in every cell c of one (possibly crossed) variable.

    Parameters:
        table: the units, with the post-stratum column `margin.variable`.
        weights: the weights to adjust.
        margin: the population count of every post-stratum.
        source: the targets' file name, for messages.
    """
    w = _validated_weights(weights)
    enc = _encode(table, [margin])
    problems = check_margins(table, [margin], weights=w, source=source, encoded=enc)
    if problems:
        raise WeightingError(problems)
    issues = _zero_target_warnings(table, [margin], enc)
    cells = _cells(table, [margin], w, enc)
    t = np.array([margin.targets.get(lev, 0.0) for lev in cells.labels[0]])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cells.weight > 0, t / cells.weight, 0.0)
    new = w * ratio[cells.cell]
    fit, worst = _margin_fit(cells, [margin], cells.weight * ratio)
    return CalibrationResult(
        new, "poststratify", 1, True, worst, tuple(fit), weight_summary(new, w), tuple(issues)
    )


def _calfun(kind: str, u: np.ndarray, low: float, up: float) -> tuple[np.ndarray, np.ndarray]:
    """g = F(u) and F'(u) for the calibration distance functions of Deville & Särndal (1992)."""
    if kind == "linear":
        return 1.0 + u, np.ones_like(u)
    if kind == "linear_bounded":
        g = 1.0 + u
        inside = (g > low) & (g < up)
        return np.clip(g, low, up), inside.astype(float)
    if kind == "raking":
        e = np.exp(np.clip(u, -700, 700))
        return e, e
    if kind == "logit":
        a = (up - low) / ((1.0 - low) * (up - 1.0))
        e = np.exp(np.clip(a * u, -700, 700))
        den = (up - 1.0) + (1.0 - low) * e
        g = (low * (up - 1.0) + up * (1.0 - low) * e) / den
        with np.errstate(over="ignore"):
            gp = np.nan_to_num(a * e * (1.0 - low) * (up - 1.0) * (up - low) / den**2)
        return g, gp
    raise ValueError(f"unknown calibration function {kind!r}")


def calibrate(  # noqa: PLR0912, PLR0915
    table: pd.DataFrame,
    weights: np.ndarray | Sequence[float],
    margins: Sequence[Margin] = (),
    *,
    totals: Mapping[str, float] | None = None,
    method: Literal["linear", "linear_bounded", "logit", "raking"] = "linear",
    bounds: tuple[float, float] = (0.0, math.inf),
    tol: float = 1e-10,
    max_iter: int = 100,
    on_nonconvergence: Literal["error", "warn"] = "error",
    source: str = "margins",
) -> CalibrationResult:
    """GREG-type calibration (Deville & Särndal): categorical margins and numeric totals at once.

    Linear: g = 1 + xᵀλ with λ = (Σ d x xᵀ)⁻¹(T − Σ d x), closed form. Bounded variants (truncated linear,
    logit on g ∈ (L, U)) and the exponential (raking) distance are solved by Newton steps. Categorical-only
    problems run on the cell table; numeric auxiliaries run at unit level with an n×p design matrix (never
    n×n).

    Parameters:
        table: the units.
        weights: design (or adjusted) weights d.
        margins: categorical margins (one dummy per level).
        totals: numeric auxiliary column → population total.
        method: "linear", "linear_bounded", "logit" or "raking".
        bounds: (L, U) on g = w/d for the bounded methods.
        tol: stop when max |misfit|/(1+|T|) ≤ tol (R `calibrate` criterion).
        max_iter: maximum Newton steps.
        on_nonconvergence: "error" or "warn".
        source: the targets' file name, for messages.
    """
    d = _validated_weights(weights)
    totals = dict(totals or {})
    enc = _encode(table, margins)
    problems = check_margins(table, margins, weights=d, source=source, encoded=enc) if margins else []
    for col in totals:
        if col not in table.columns:
            problems.append(
                error(MARGIN_VARIABLE_MISSING, f"auxiliary variable {col!r} is not a column", variable=col)
            )
    if problems:
        raise WeightingError(problems)
    if margins:
        cells = _cells(table, margins, d, enc)
        blocks = [np.eye(len(cells.labels[j]))[cells.level_of_cell[j]] for j in range(len(margins))]
        target_parts = [
            np.array([m.targets.get(lev, 0.0) for lev in cells.labels[j]]) for j, m in enumerate(margins)
        ]
    else:
        cells = None
        blocks, target_parts = [], []
    if totals:
        # Numeric auxiliaries: every unit is its own cell.
        unit_blocks = [b[cells.cell] for b in blocks] if cells is not None else []
        num = np.column_stack(
            [pd.to_numeric(table[c], errors="coerce").to_numpy(dtype=float) for c in totals]
        )
        if not np.isfinite(num).all():
            raise WeightingError(
                [error(MARGIN_MISSING_VALUES, "a numeric auxiliary variable has missing values")]
            )
        x = np.column_stack([*unit_blocks, num])
        dw = d
        cell_of_unit = np.arange(len(d))
    else:
        if cells is None:
            raise WeightingError([error(TARGET_INVALID, "nothing to calibrate to: give margins or numeric totals")])
        x = np.column_stack(blocks)
        dw = cells.weight
        cell_of_unit = cells.cell
    t = np.concatenate([*target_parts, np.array(list(totals.values()), dtype=float)])
    low, up = bounds
    lam = np.zeros(x.shape[1])
    kind = "linear" if method == "linear" else method
    converged, it, err = False, 0, math.inf
    for it in range(1, max_iter + 1):  # noqa: B007
        g, gp = _calfun(kind, x @ lam, low, up)
        misfit = t - x.T @ (dw * g)
        err = float(np.max(np.abs(misfit) / (1.0 + np.abs(t))))
        if err <= tol:
            converged = True
            break
        jac = (x * (dw * gp)[:, None]).T @ x
        step = np.linalg.lstsq(jac, misfit, rcond=None)[0]
        # Damped Newton: halve the step while the misfit grows (bounded distances are far from quadratic).
        norm = float(np.abs(misfit).sum())
        for _ in range(30):
            g_try, _ = _calfun(kind, x @ (lam + step), low, up)
            with np.errstate(over="ignore", invalid="ignore"):
                trial = float(np.abs(t - x.T @ (dw * g_try)).sum())
            if trial < norm or kind == "linear":
                break
            step = step / 2.0
        lam = lam + step
    g, _ = _calfun(kind, x @ lam, low, up)
    misfit = t - x.T @ (dw * g)
    err = float(np.max(np.abs(misfit) / (1.0 + np.abs(t))))
    finite = bool(np.isfinite(g).all()) and math.isfinite(err)
    converged = finite and err <= max(tol, 1e-9)
    issues: list[Issue] = _zero_target_warnings(table, margins, enc) if margins else []
    _finish(
        issues,
        converged=converged,
        max_err=err if finite else math.inf,
        tol=tol,
        iters=it,
        method=f"calibration ({method})",
        on_nonconvergence=on_nonconvergence if finite else "error",  # non-finite weights are never written
    )
    new = d * g[cell_of_unit]
    if (new <= 0).any() and (d > 0).any():
        n_bad = int(((new <= 0) & (d > 0)).sum())
        if n_bad:
            issues.append(
                warning(
                    NEGATIVE_WEIGHTS,
                    f"{n_bad} unit(s) got a calibrated weight ≤ 0 (g ≤ 0); use bounded "
                    "calibration (linear_bounded or logit with bounds) or collapse margins",
                )
            )
    fit: list[dict[str, Any]] = []
    worst = 0.0
    if cells is not None:
        fit, worst = _margin_fit(
            cells, margins, np.bincount(cells.cell, weights=new, minlength=len(cells.weight))
        )
    for col, target in totals.items():
        got = float((new * pd.to_numeric(table[col]).to_numpy(dtype=float)).sum())
        rel = abs(got - target) / abs(target) if target else abs(got)
        worst = max(worst, rel)
        fit.append(
            {"variable": col, "level": "(total)", "target": float(target), "achieved": got, "rel_error": rel}
        )
    return CalibrationResult(
        new, method, it, converged, worst, tuple(fit), weight_summary(new, d), tuple(issues)
    )


__all__ = [
    "CalibrationMethod",
    "CalibrationResult",
    "Margin",
    "calibrate",
    "check_margins",
    "factorize_levels",
    "margins_from_frame",
    "poststratify",
    "rake",
]
