"""The weighting chain from the base weights on: eligibility and nonresponse adjustment by weighting classes (§4.3),
trimming with trim–calibrate cycles (§4.4), household and person calibration (§4.5); replicate weights rerun it (§4.7).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from toolkit.errors import Issue, error
from toolkit.weights.base import Units
from toolkit.weights.calibration import CalibrationResult, calibrate, margins_from_frame, poststratify, rake
from toolkit.weights.config import DESIGN_INVALID, CalibrationSpec, WeightDesign
from toolkit.weights.core import (
    EN,
    ER,
    WeightingError,
    level_label,
    nonresponse_adjust,
    trim,
    trim_cap,
    weight_summary,
)
from toolkit.weights.io import read_table


@dataclass
class _ChainOut:
    hh_final: np.ndarray  # per unit
    person_final: np.ndarray | None
    steps: list[dict[str, Any]]
    issues: list[Issue]
    individual_final: np.ndarray | None = None


def class_labels(frame: pd.DataFrame, columns: list[str], what: str) -> np.ndarray:
    """Class label per row: the values of the class columns joined with "|" (as the collapse map keys)."""
    missing = [col for col in columns if col not in frame.columns]
    if missing:
        raise WeightingError(
            [
                error(
                    DESIGN_INVALID,
                    f"{what}: no column(s) {', '.join(missing)} in the household table or the PSU sample file",
                )
            ]
        )
    parts = []
    for col in columns:
        values = frame[col]
        if values.isna().any():
            first = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
            raise WeightingError(
                [
                    error(
                        DESIGN_INVALID,
                        f"{what}: {int(values.isna().sum())} household(s) have no "
                        f"value for {col} (first at row {first}); fill it or choose another class "
                        "variable",
                        variable=col,
                        row=first,
                    )
                ]
            )
        parts.append(values.map(level_label).astype(str).to_numpy(dtype=object))
    out = parts[0]
    for part in parts[1:]:
        out = out + "|" + part
    return out


def nonresponse_classes(design: WeightDesign, frame: pd.DataFrame) -> np.ndarray:
    """The nonresponse class label of every unit ("all" without class variables)."""
    classes_cols = list(design.nonresponse["classes"])
    if classes_cols:
        return class_labels(frame, classes_cols, "[nonresponse] classes")
    return np.full(len(frame), "all", dtype=object)


@functools.lru_cache(maxsize=16)
def _margins_cached(path: Path, _mtime_ns: int) -> tuple:
    return tuple(margins_from_frame(read_table(path), source=path.name))


def _margins(path: Path) -> tuple:
    # Read once per run (the replicates rerun calibration many times), again when the file changes.
    return _margins_cached(path, path.stat().st_mtime_ns)


def _calibrate_step(spec: CalibrationSpec, table: pd.DataFrame, w: np.ndarray) -> CalibrationResult:
    if spec.method == "none" or spec.margins is None:  # the design file requires margins for any other method
        raise WeightingError([error(DESIGN_INVALID, f"calibration {spec.method!r} without a margins file")])
    source = spec.margins.name
    margins = list(_margins(spec.margins))
    on: Literal["error", "warn"] = "warn" if spec.on_nonconvergence == "warn" else "error"
    if spec.method == "rake":
        return rake(
            table,
            w,
            margins,
            tol=spec.tol,
            max_iter=spec.max_iter,
            on_nonconvergence=on,
            source=source,
        )
    if spec.method == "poststratify":
        if len(margins) != 1:
            raise WeightingError(
                [
                    error(
                        DESIGN_INVALID,
                        "post-stratification takes one variable (derive a crossed variable for cells of several)",
                        file=str(spec.margins),
                    )
                ]
            )
        return poststratify(table, w, margins[0], source=source)
    return calibrate(
        table,
        w,
        margins,
        method=spec.method,
        bounds=spec.bounds,
        tol=min(spec.tol, 1e-8),
        max_iter=spec.max_iter,
        on_nonconvergence=on,
        source=source,
    )


def calibration_table(spec: CalibrationSpec, frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """Only the columns a calibration step reads (its margin variables).

    Every replicate filters and encodes the table again; the roster joined with its household has hundreds of
    text columns, and copying them all 51 times took most of the weighting time. When the margins cannot be
    read the table is kept whole, so that the calibration step reports the problem where it always did.
    """
    if frame is None or spec.method == "none" or spec.margins is None:
        return frame
    try:
        margins = _margins(spec.margins)
    except (OSError, ValueError, WeightingError):
        return frame
    used = frame[list(dict.fromkeys(m.variable for m in margins if m.variable in frame.columns))]
    # Text levels become categories of their canonical labels once, instead of being hashed again per replicate
    # (integer codes are already encoded fast, and in their own order).
    return pd.DataFrame(
        {
            column: values
            if values.to_numpy().dtype.kind in "iub"
            else values.map(level_label, na_action="ignore").astype("category")
            for column, values in used.items()
        },
        index=used.index,
    )


def columns_read(spec: CalibrationSpec, also: Iterable[str] = ()) -> set[str] | None:
    """The columns a calibration step reads from its table (its derived variables' sources and its margin
    variables) and `also`; None when the margins cannot be read (then the whole table is kept, and the step
    reports the problem)."""
    if spec.method == "none":
        return set(also)
    try:
        margins = _margins(spec.margins) if spec.margins is not None else ()
    except (OSError, ValueError, WeightingError):
        return None
    sources = {str(rule.get("from")) for rule in spec.derive.values()}
    return sources | {m.variable for m in margins} | set(also)


def run_chain(  # noqa: PLR0915
    design: WeightDesign,
    units: Units,
    *,
    base: np.ndarray,
    hh_cal: pd.DataFrame | None,
    persons: pd.DataFrame | None,
    person_unit: np.ndarray | None,
    k_factor: np.ndarray | None,
    record: bool,
    individuals: tuple[np.ndarray, np.ndarray] | None = None,
    classes: np.ndarray | None = None,
) -> _ChainOut:
    """The weighting chain on one set of base weights (the full sample's, or a replicate's).

    `classes` are the nonresponse class labels of `units` when the caller has them already (they are the same for
    every replicate).
    """
    steps: list[dict[str, Any]] = []
    issues: list[Issue] = []

    def step(name: str, w: np.ndarray, previous: np.ndarray | None, **extra: Any) -> None:
        if record:
            steps.append({"step": name, "summary": weight_summary(w, previous), **extra})

    step("base", base, None)
    nr = design.nonresponse
    frame = units.frame
    cls = classes if classes is not None else nonresponse_classes(design, frame)
    adj = nonresponse_adjust(
        base,
        units.status,
        cls,
        unknown_to_ineligible=bool(nr["unknown_to_ineligible"]),
        min_respondents=int(nr["min_respondents"]),
        max_factor=float(nr["max_factor"]),
        collapse={str(k): str(v) for k, v in dict(nr["collapse"]).items()},
    )
    issues.extend(adj.issues)
    w = adj.weights
    er = units.status == ER
    step("nonresponse", w[er], base[er], classes=list(adj.classes), collapsed=[list(p) for p in adj.collapsed])
    w_er = w[er]
    tr = design.trimming
    cap = None
    if tr["method"] != "none":
        cap = trim_cap(w_er, method=tr["method"], value=float(tr["value"]))
    cycles = int(tr["cycles"]) if cap is not None else 1
    cal_result = None
    for cycle in range(max(cycles, 1)):
        if cap is not None:
            tcls = class_labels(frame.loc[er], list(tr["classes"]), "[trimming] classes") if tr["classes"] else None
            before = w_er
            t = trim(w_er, cap=cap, classes=tcls)
            issues.extend(t.issues)
            w_er = t.weights
            step(f"trim[{cycle + 1}]", w_er, before, cap=cap, n_trimmed=t.n_trimmed, mass_moved=t.mass_moved)
        if design.households.method != "none" and hh_cal is not None:
            before = w_er
            cal_result = _calibrate_step(design.households, hh_cal, w_er)
            issues.extend(cal_result.issues)
            w_er = cal_result.weights
            step(
                f"calibrate_households[{cycle + 1}]" if cap is not None else "calibrate_households",
                w_er,
                before,
                method=cal_result.method,
                iterations=cal_result.iterations,
                converged=cal_result.converged,
                max_rel_error=cal_result.max_rel_error,
                margins=list(cal_result.margins),
            )
        if cap is None or w_er.max(initial=0) <= cap * (1 + 1e-6) or cal_result is None:
            break
    hh_final = np.zeros(len(base))
    hh_final[er] = w_er
    person_final = None
    if persons is not None and person_unit is not None:
        pw = hh_final[person_unit] * (k_factor if k_factor is not None else 1.0)
        step("persons", pw[pw > 0], None)
        if design.persons.method != "none":
            keep = pw > 0
            res = _calibrate_step(design.persons, persons.loc[keep], pw[keep])
            issues.extend(res.issues)
            new = pw.copy()
            new[keep] = res.weights
            step(
                "calibrate_persons",
                res.weights,
                pw[keep],
                method=res.method,
                iterations=res.iterations,
                converged=res.converged,
                max_rel_error=res.max_rel_error,
                margins=list(res.margins),
            )
            pw = new
        person_final = pw
    individual_final = None
    if individuals is not None and person_unit is not None:
        # Individual interviews: household weight (× k) adjusted for nonresponse among eligible members.
        status, classes = individuals
        ind = design.individuals
        base_i = hh_final[person_unit] * (k_factor if k_factor is not None else 1.0)
        adj = nonresponse_adjust(
            base_i,
            status,
            classes,
            min_respondents=ind["min_respondents"],
            max_factor=ind["max_factor"],
            collapse=ind["collapse"],
        )
        issues.extend(adj.issues)
        individual_final = np.where(status == ER, adj.weights, 0.0)
        eligible = (status == ER) | (status == EN)
        step(
            "individuals",
            individual_final[status == ER],
            base_i[status == ER],
            classes=list(adj.classes),
            n_eligible=int(eligible.sum()),
            n_respondents=int((status == ER).sum()),
        )
    return _ChainOut(hh_final, person_final, steps, issues, individual_final)
