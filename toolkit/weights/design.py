"""`migkit weights DATA --design design.toml`: the full weighting chain for an ingested survey.

base weights (two-stage PPS with listing, §4.2) → eligibility and nonresponse adjustment by weighting classes
(§4.3) → optional trimming with trim–calibrate cycles (§4.4) → household calibration → person weights
(household weight × k when one member was selected among k) → person calibration (§4.5), with diagnostics
after every step (§4.6) and optional replicate weights that rerun the chain from the base weights on (§4.7).
The design file format is in docs/weights.md.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from toolkit.dataset import Column, DataFolder, Replicates, TableWeights
from toolkit.dataset import Design as DataDesign
from toolkit.errors import EXIT_USAGE, INPUT_MISSING, Issue, ToolkitError, define, error, warning
from toolkit.estimate import make_design
from toolkit.weights.calibration import CalibrationResult, calibrate, margins_from_frame, poststratify, rake
from toolkit.weights.config import DESIGN_INVALID, CalibrationSpec, WeightDesign
from toolkit.weights.core import (
    EN,
    ER,
    IN,
    LISTING_SHORT,
    PROBABILITY_INVALID,
    WeightingError,
    first_stage_probabilities,
    level_label,
    nonresponse_adjust,
    summary_by,
    trim,
    trim_cap,
    weight_summary,
)
from toolkit.weights.io import atomic_write, read_table, read_table_keeping, write_table
from toolkit.weights.replicates import replicate_factors

RESULT_UNMAPPED = define(
    "weights.result_unmapped", "A result code is not mapped to ER/EN/IN/UE in the design file"
)
PSU_UNKNOWN = define(
    "weights.psu_unknown", "A household's PSU is not in the PSU sample file or the listing file"
)
TABLE_MISSING = define("weights.table_missing", "The household (or roster) table is not in the DATA folder")
SELECTION_COUNT = define(
    "weights.selection_count", "A PSU has a different number of households than were selected"
)
STRATUM_CHECK = define("weights.stratum_check", "Σ base weights of a stratum is far from its frame count")
METADATA_DROPPED = define(
    "weights.metadata_dropped", "The output format cannot hold the input's user-missing definitions"
)

REPORT_NAME = "weights-report.json"
HISTOGRAM_NAME = "weights-histogram.png"


# --- Inputs -------------------------------------------------------------------------------------------------


def _find_tables(data_dir: Path, design: WeightDesign) -> tuple[Path, Path | None]:
    """The household table and the roster (None when there is none): by tables.json when the folder has one,
    else by the Parquet file names ingest uses (`<form_id>.parquet`, `<form_id>-<roster>.parquet`)."""
    if not data_dir.is_dir():
        raise ToolkitError(
            error(INPUT_MISSING, "DATA folder not found; run `migkit ingest` first", file=str(data_dir)),
            EXIT_USAGE,
        )
    if DataFolder.exists(data_dir):
        data = DataFolder.read(data_dir)
        form_id = design.form_id or data.form_id
        files = {t.name: data_dir / t.file for t in data.tables}
        if form_id not in files:
            raise ToolkitError(
                error(TABLE_MISSING, f"household table {form_id}.parquet not found", file=str(data_dir)), EXIT_USAGE
            )
        return files[form_id], files.get(f"{form_id}-{design.roster}")
    form_id = design.form_id or _main_table_name(data_dir)
    hh = data_dir / f"{form_id}.parquet"
    if not hh.is_file():
        raise ToolkitError(
            error(TABLE_MISSING, f"household table {hh.name} not found", file=str(data_dir)), EXIT_USAGE
        )
    roster = data_dir / f"{form_id}-{design.roster}.parquet"
    return hh, roster if roster.is_file() else None


def _main_table_name(data_dir: Path) -> str:
    """The household table of a folder of Parquet files without tables.json: the one other tables are named after."""
    mains = [
        p
        for p in sorted(data_dir.glob("*.parquet"))
        if any(q.name.startswith(p.stem + "-") for q in data_dir.glob("*.parquet"))
    ]
    if not mains:
        mains = [p for p in sorted(data_dir.glob("*.parquet")) if "-" not in p.stem]
    if len(mains) != 1:
        raise ToolkitError(
            error(
                TABLE_MISSING,
                "cannot tell which table is the household level; set [survey] form_id in the design file",
                file=str(data_dir),
            ),
            EXIT_USAGE,
        )
    return mains[0].stem


def _labels(series: pd.Series) -> np.ndarray:
    """Canonical level text per row (None when missing), as an object array."""
    return np.array([None if pd.isna(v) else level_label(v) for v in series.tolist()], dtype=object)


def _require(frame: pd.DataFrame, cols: list[str], where: str) -> None:
    missing = [c for c in cols if c and c not in frame.columns]
    if missing:
        raise WeightingError(
            [
                error(
                    DESIGN_INVALID,
                    f"{where} has no column(s) {', '.join(missing)}; fix the column names in the design file",
                    file=where,
                )
            ]
        )


def _positive(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """A required count or measure of size: numeric and > 0 on every row, else an error naming the rows."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~(values > 0)
    if bad.any():
        rows = [int(i) + 2 for i in np.flatnonzero(bad)[:10]]  # spreadsheet rows: header = row 1
        raise WeightingError(
            [
                error(
                    DESIGN_INVALID,
                    f"{column} must be a number > 0 on every row; {int(bad.sum())} "
                    f"row(s) are not (rows {', '.join(map(str, rows))})",
                    file=where,
                    variable=column,
                    row=rows[0],
                )
            ]
        )
    return values


def derive_columns(frame: pd.DataFrame, derive: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Add calibration variables: `breaks`/`labels` cut a numeric column, `map` recodes, plain `from` copies.

    Parameters:
        frame: the table.
        derive: new column → {from = column, breaks = [...], labels = [...]} or {from, map = {code = label}}.
    """
    out = frame.copy()
    for name, rule in derive.items():
        src = rule.get("from")
        if src not in out.columns:
            raise WeightingError(
                [
                    error(
                        DESIGN_INVALID,
                        f"derived variable {name!r}: source column {src!r} is not in the table",
                        variable=name,
                    )
                ]
            )
        if "breaks" in rule:
            values = pd.to_numeric(out[src], errors="coerce").astype(float)
            labels = rule.get("labels")
            out[name] = pd.cut(values, bins=list(rule["breaks"]), labels=labels, right=False).astype(object)
            out[name] = out[name].where(out[name].notna(), None)
        elif "map" in rule:
            mapping = {level_label(k): v for k, v in rule["map"].items()}
            out[name] = [None if pd.isna(v) else mapping.get(level_label(v)) for v in out[src]]
        else:
            out[name] = out[src]
    return out


@dataclass
class _Units:
    frame: pd.DataFrame  # one row per selected household (data rows first, then non-interview rows)
    status: np.ndarray
    base: np.ndarray
    psu_key: np.ndarray
    stratum: np.ndarray
    n_data: int


def _base_weights(  # noqa: PLR0912, PLR0915
    design: WeightDesign, hh: pd.DataFrame, issues: list[Issue]
) -> tuple[_Units, dict[str, Any]]:
    c = design.columns
    ps = design.psu_sample
    _require(hh, [c["psu"], c["result"], c["listing_group"]], "household table")
    units = hh.copy()
    units["_source"] = "data"
    if design.noninterview_file is not None:
        extra = read_table(design.noninterview_file)
        _require(extra, [c["psu"], c["result"]], design.noninterview_file.name)
        extra = extra.copy()
        extra["_source"] = "noninterview"
        units = pd.concat([units, extra], ignore_index=True)
    # Disposition → ER/EN/IN/UE.
    code_to_status = {code: st for st, codes in design.disposition.items() for code in codes}
    results = _labels(units[c["result"]])
    status = np.array([code_to_status.get(r) for r in results], dtype=object)
    unmapped = sorted({str(r) for r, s in zip(results, status, strict=True) if s is None})
    if unmapped:
        raise WeightingError(
            [
                error(
                    RESULT_UNMAPPED,
                    f"result code(s) {', '.join(unmapped)} of {c['result']} are not "
                    "in [disposition]; map each to respondent, nonrespondent, ineligible or unknown",
                    variable=c["result"],
                )
            ]
        )
    # First stage.
    sample = read_table(ps["file"])
    _require(
        sample,
        [
            ps["stratum"],
            ps["psu"],
            ps["mos"],
            ps["stratum_mos"],
            ps["n_h"],
            ps["certainty"],
            ps["segments"],
            ps["segment_mos"],
            ps["p1"],
        ],
        ps["file"].name,
    )
    s_lab = _labels(sample[ps["stratum"]])
    if ps["frame_file"] is not None:
        frame = read_table(ps["frame_file"])
        _require(frame, [ps["frame_stratum"], ps["frame_mos"]], ps["frame_file"].name)
        m_h = (
            pd.Series(_positive(frame, ps["frame_mos"], ps["frame_file"].name))
            .groupby(_labels(frame[ps["frame_stratum"]]))
            .sum()
            .to_dict()
        )
    else:
        m_h = (
            pd.Series(_positive(sample, ps["stratum_mos"], ps["file"].name)).groupby(s_lab).first().to_dict()
        )
    if ps["n_h"]:
        n_h = pd.Series(_positive(sample, ps["n_h"], ps["file"].name)).groupby(s_lab).first().to_dict()
    else:
        n_h = pd.Series(s_lab).value_counts().astype(float).to_dict()
    mos = _positive(sample, ps["mos"], ps["file"].name)
    cert = sample[ps["certainty"]].fillna(0).astype(bool).to_numpy() if ps["certainty"] else None
    p1, cert_flags, p_issues = first_stage_probabilities(
        s_lab, mos, n_h, m_h, certainty=cert, ids=list(sample[ps["psu"]])
    )
    issues.extend(p_issues)
    if ps["p1"]:
        given = pd.to_numeric(sample[ps["p1"]], errors="coerce").to_numpy(float)
        p1 = np.where(np.isfinite(given), given, p1)
    if ps["segment_mos"]:
        seg_mos = pd.to_numeric(sample[ps["segment_mos"]], errors="coerce").to_numpy(float)
        p1 = np.where(np.isfinite(seg_mos), p1 * seg_mos / mos, p1)
    elif ps["segments"]:
        segs = pd.to_numeric(sample[ps["segments"]], errors="coerce").fillna(1).to_numpy(float)
        p1 = p1 / np.maximum(segs, 1)
    bad = ~((p1 > 0) & (p1 <= 1 + 1e-12))
    if bad.any():
        raise WeightingError(
            [
                error(
                    PROBABILITY_INVALID,
                    f"PSU {level_label(sample[ps['psu']].iloc[i])}: p1 = {p1[i]:.6g} "
                    "is outside (0, 1]; check mos, stratum_mos and n_h",
                    file=ps["file"].name,
                    row=int(i) + 2,
                )
                for i in np.flatnonzero(bad)[:20]
            ]
        )
    psu_ids = _labels(sample[ps["psu"]])
    psu_info = pd.DataFrame({"_psu": psu_ids, "_stratum": s_lab, "_p1": p1, "_certainty": cert_flags})
    # Second stage (listing).
    li = design.listing
    listing = read_table(li["file"])
    _require(listing, [li["psu"], li["group"], li["listed"], li["selected"]], li["file"].name)
    lst = pd.DataFrame(
        {
            "_psu": _labels(listing[li["psu"]]),
            "_group": _labels(listing[li["group"]]) if li["group"] else "",
            "_L": _positive(listing, li["listed"], li["file"].name),
            "_m": _positive(listing, li["selected"], li["file"].name),
        }
    )
    short = lst["_L"] < lst["_m"]
    shortfall = lst[short]
    for position, psu, group, listed, selected in zip(
        shortfall.index, shortfall["_psu"], shortfall["_group"], shortfall["_L"], shortfall["_m"], strict=True
    ):
        issues.append(
            warning(
                LISTING_SHORT,
                f"PSU {psu} group {group or '-'}: {int(selected)} selected but only "
                f"{int(listed)} listed; p2 set to 1",
                file=li["file"].name,
                row=int(position) + 2,
            )
        )
    lst["_p2"] = np.where(lst["_L"] <= lst["_m"], 1.0, lst["_m"] / lst["_L"])
    # Join to the households.
    units["_psu"] = _labels(units[c["psu"]])
    units["_group"] = _labels(units[c["listing_group"]]) if c["listing_group"] else ""
    merged = units.merge(psu_info, on="_psu", how="left", validate="many_to_one")
    merged = merged.merge(lst, on=["_psu", "_group"], how="left", validate="many_to_one")
    lost = merged["_p1"].isna() | merged["_p2"].isna()
    if lost.any():
        bad_psus = sorted(set(merged.loc[lost, "_psu"].astype(str)))
        raise WeightingError(
            [
                error(
                    PSU_UNKNOWN,
                    f"{int(lost.sum())} household(s) are in PSU/listing group(s) missing "
                    f"from the PSU sample or listing file: {', '.join(bad_psus[:20])}",
                    variable=c["psu"],
                )
            ]
        )
    # Psu-level columns (e.g. urban/rural) become available for weighting classes.
    for col in sample.columns:
        if col not in merged.columns:
            merged[col] = merged["_psu"].map(dict(zip(psu_ids, sample[col], strict=True)))
    base = 1.0 / (merged["_p1"].to_numpy(float) * merged["_p2"].to_numpy(float))
    # Households selected vs found, per PSU × group (data + non-interview log should equal m).
    found = merged.groupby(["_psu", "_group"]).size()
    planned = lst.set_index(["_psu", "_group"])["_m"]
    for key, n in found.items():
        pair = cast(tuple[str, str], key)  # grouped by two columns
        psu, group = pair
        if pair in planned.index and int(planned[pair]) != int(n):
            issues.append(
                warning(
                    SELECTION_COUNT,
                    f"PSU {psu} group {group or '-'}: {n} households in the data and "
                    f"non-interview log, {int(planned[pair])} selected; complete the non-interview log",
                    value=psu,
                )
            )
    stratum = merged["_stratum"].to_numpy(dtype=object)
    sums = pd.Series(base).groupby(stratum).sum()
    check = {
        h: {
            "sum_base": float(sums[h]),
            "frame_count": float(m_h.get(h, math.nan)),
            "ratio": float(sums[h] / m_h[h]) if m_h.get(h) else math.nan,
        }
        for h in sums.index
    }
    for h, row in check.items():
        if math.isfinite(row["ratio"]) and not 0.5 <= row["ratio"] <= 2.0:
            issues.append(
                warning(
                    STRATUM_CHECK,
                    f"stratum {h}: Σ base weights {row['sum_base']:,.0f} vs frame count "
                    f"{row['frame_count']:,.0f} (ratio {row['ratio']:.2f}); check the MOS units and "
                    "listing counts",
                    value=h,
                )
            )
    out = _Units(
        merged,
        status,
        base,
        merged["_psu"].to_numpy(dtype=object),
        stratum,
        int((merged["_source"] == "data").sum()),
    )
    return out, {"p1": psu_info.to_dict(orient="list"), "stratum_check": check}


# --- The chain ----------------------------------------------------------------------------------------------


@dataclass
class _ChainOut:
    hh_final: np.ndarray  # per unit
    person_final: np.ndarray | None
    steps: list[dict[str, Any]]
    issues: list[Issue]
    individual_final: np.ndarray | None = None


def _class_labels(frame: pd.DataFrame, columns: list[str], what: str) -> np.ndarray:
    """Class label per row: the values of the class columns joined with "|" (as the collapse map keys)."""
    missing = [col for col in columns if col not in frame.columns]
    if missing:
        raise WeightingError(
            [
                error(
                    DESIGN_INVALID,
                    f"{what}: no column(s) {', '.join(missing)} in the household "
                    "table or the PSU sample file",
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


def _nonresponse_classes(design: WeightDesign, frame: pd.DataFrame) -> np.ndarray:
    """The nonresponse class label of every unit ("all" without class variables)."""
    classes_cols = list(design.nonresponse["classes"])
    if classes_cols:
        return _class_labels(frame, classes_cols, "[nonresponse] classes")
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
                        "post-stratification takes one variable (derive a crossed "
                        "variable for cells of several)",
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


def _calibration_table(spec: CalibrationSpec, frame: pd.DataFrame | None) -> pd.DataFrame | None:
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


def _run_chain(  # noqa: PLR0915
    design: WeightDesign,
    units: _Units,
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
    cls = classes if classes is not None else _nonresponse_classes(design, frame)
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
    step(
        "nonresponse", w[er], base[er], classes=list(adj.classes), collapsed=[list(p) for p in adj.collapsed]
    )
    w_er = w[er]
    tr = design.trimming
    cap = None
    if tr["method"] != "none":
        cap = trim_cap(w_er, method=tr["method"], value=float(tr["value"]))
    cycles = int(tr["cycles"]) if cap is not None else 1
    cal_result = None
    for cycle in range(max(cycles, 1)):
        if cap is not None:
            tcls = (
                _class_labels(frame.loc[er], list(tr["classes"]), "[trimming] classes")
                if tr["classes"]
                else None
            )
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


@dataclass(frozen=True)
class WeightResult:
    """What `compute_weights` wrote and found.

    Parameters:
        household_table, person_table: the tables with weight columns added.
        report: the diagnostics JSON; histogram: the PNG of the final weights.
        steps: diagnostics after every step (base, nonresponse, trim, calibrate..., persons).
        stratum_check: Σ base weights vs frame count per stratum.
        replicates: method, number, columns and coefficients of the replicate weights (or None).
        issues: warnings collected on the way.
    """

    household_table: Path
    person_table: Path | None
    report: Path
    histogram: Path
    steps: tuple[dict[str, Any], ...]
    stratum_check: Mapping[str, Any]
    replicates: Mapping[str, Any] | None
    issues: tuple[Issue, ...]


def compute_weights(  # noqa: PLR0912, PLR0915
    data_dir: Path | str,
    design: WeightDesign | Path | str,
    *,
    out_dir: Path | str | None = None,
    progress: Any = None,
) -> WeightResult:
    """Compute household and person weights for an ingested survey and write them with a diagnostics report.

    Parameters:
        data_dir: the DATA folder written by `migkit ingest`.
        design: a `WeightDesign` or the path of design.toml.
        out_dir: where to write the weighted tables and the report (default: `data_dir`, tables updated in
            place atomically).
        progress: optional callable(done, total) called after every replicate.
    """
    d = design if isinstance(design, WeightDesign) else WeightDesign.from_file(design)
    data = Path(data_dir)
    out = Path(out_dir) if out_dir is not None else data
    hh_path, roster_path = _find_tables(data, d)
    hh = pd.read_parquet(hh_path)
    issues: list[Issue] = []
    units, base_info = _base_weights(d, hh, issues)
    c = d.columns
    er = units.status == ER
    hh_cal = None
    if d.households.method != "none":
        hh_cal = derive_columns(units.frame.loc[er].reset_index(drop=True), d.households.derive)
    persons = person_unit = k_factor = None
    roster = None
    if roster_path is None and d.persons.method != "none":
        issues.append(
            warning(
                TABLE_MISSING,
                f"no roster table {hh_path.stem}-{d.roster}.parquet: person weights are "
                "not computed ([survey] roster names the repeat)",
                file=str(data),
            )
        )
    if roster_path is not None:
        roster = pd.read_parquet(roster_path)
        _require(roster, [c["parent_key"], c["selected_among"]], roster_path.name)
        _require(hh, [c["key"]], hh_path.name)
        key_to_unit = {k: i for i, k in enumerate(units.frame[c["key"]].iloc[: units.n_data])}
        person_unit = roster[c["parent_key"]].map(key_to_unit).to_numpy()
        if pd.isna(person_unit).any():
            raise WeightingError(
                [
                    error(
                        DESIGN_INVALID,
                        f"{int(pd.isna(person_unit).sum())} roster row(s) have a "
                        f"{c['parent_key']} that is not a household KEY",
                        file=roster_path.name,
                    )
                ]
            )
        person_unit = person_unit.astype(np.int64)
        if c["selected_among"]:
            k_factor = pd.to_numeric(roster[c["selected_among"]], errors="coerce").fillna(0).to_numpy(float)
        hh_cols = [
            col for col in units.frame.columns if col not in roster.columns and not col.startswith("_")
        ]
        persons = pd.concat(
            [roster.reset_index(drop=True), units.frame[hh_cols].iloc[person_unit].reset_index(drop=True)],
            axis=1,
        )
        persons = derive_columns(persons, d.persons.derive) if d.persons.method != "none" else persons
    individuals = _individual_status(d, persons, roster_path) if persons is not None else None
    hh_cal = _calibration_table(d.households, hh_cal)
    persons = _calibration_table(d.persons, persons)
    classes = _nonresponse_classes(d, units.frame)
    chain = _run_chain(
        d,
        units,
        base=units.base,
        hh_cal=hh_cal,
        persons=persons,
        person_unit=person_unit,
        k_factor=k_factor,
        record=True,
        individuals=individuals,
        classes=classes,
    )
    issues.extend(chain.issues)
    rep_info = None
    hh_reps = person_reps = ind_reps = None
    # Variance units: a certainty EA is a stratum of its own whose PSUs are its households.
    cert = units.frame["_certainty"].fillna(False).to_numpy(dtype=bool)
    var_stratum = np.where(
        cert,
        [f"{h}:{p}" for h, p in zip(units.stratum, units.psu_key, strict=True)],
        units.stratum.astype(str),
    )
    var_psu = np.where(cert, [f"{p}:{i}" for i, p in enumerate(units.psu_key)], units.psu_key.astype(str))
    if d.replicates["method"] != "none":
        des = make_design(len(units.psu_key), var_stratum, var_psu)
        rf = replicate_factors(
            des,
            d.replicates["method"],
            n_replicates=int(d.replicates["n"]),
            fay=float(d.replicates["fay"]),
            seed=int(d.replicates["seed"]),
        )
        n_rep = rf.factors.shape[1]
        hh_reps = np.zeros((len(units.base), n_rep))
        person_reps = np.zeros((len(persons), n_rep)) if persons is not None else None
        ind_reps = np.zeros((len(persons), n_rep)) if persons is not None and individuals is not None else None
        for r in range(n_rep):
            rb = units.base * rf.factors[des.psu, r]
            rc = _run_chain(
                d,
                units,
                base=rb,
                hh_cal=hh_cal,
                persons=persons,
                person_unit=person_unit,
                k_factor=k_factor,
                record=False,
                individuals=individuals,
                classes=classes,
            )
            hh_reps[:, r] = rc.hh_final
            if person_reps is not None and rc.person_final is not None:
                person_reps[:, r] = rc.person_final
            if ind_reps is not None and rc.individual_final is not None:
                ind_reps[:, r] = rc.individual_final
            if progress is not None:
                progress(r + 1, n_rep)
        prefix = str(d.replicates["prefix"])
        rep_info = {
            "method": rf.method,
            "n": n_rep,
            "fay": rf.fay,
            "seed": int(d.replicates["seed"]),
            "columns": f"{prefix}1..{prefix}{n_rep}",
            "coefficients": rf.coefficients.tolist(),
            "centre_on_mean": rf.centre_on_mean,
            "estimate": f"migkit estimate TABLE --weight W --strata {d.output['variance_stratum']} "
            f"--psu {d.output['variance_psu']} "
            f"--replicate-weights {prefix} --method {rf.method}"
            + (f" --fay {rf.fay}" if rf.method == "brr" and rf.fay else ""),
        }
    # Write the tables.
    o = d.output
    prefix = str(d.replicates["prefix"])
    hh_out = hh.drop(columns=[col for col in hh.columns if str(col).startswith(prefix)])
    n = units.n_data
    hh_out[o["variance_stratum"]] = var_stratum[:n]
    hh_out[o["variance_psu"]] = var_psu[:n]
    hh_out[o["base_weight"]] = units.base[:n]
    hh_out[o["status"]] = units.status[:n].astype(str)
    hh_out[o["household_weight"]] = chain.hh_final[:n]
    if hh_reps is not None:
        reps = pd.DataFrame(
            hh_reps[:n], columns=[f"{d.replicates['prefix']}{i + 1}" for i in range(hh_reps.shape[1])]
        )
        hh_out = pd.concat([hh_out.reset_index(drop=True), reps], axis=1)
    out.mkdir(parents=True, exist_ok=True)
    hh_target = out / hh_path.name
    write_table(hh_out, hh_target)
    person_target = None
    if roster is not None and roster_path is not None and chain.person_final is not None:
        p_out = roster.drop(columns=[col for col in roster.columns if str(col).startswith(prefix)])
        p_out[o["variance_stratum"]] = var_stratum[person_unit]
        p_out[o["variance_psu"]] = var_psu[person_unit]
        p_out[o["household_weight"]] = chain.hh_final[person_unit]
        p_out[o["person_weight"]] = chain.person_final
        if person_reps is not None:
            reps = pd.DataFrame(
                person_reps, columns=[f"{d.replicates['prefix']}{i + 1}" for i in range(person_reps.shape[1])]
            )
            p_out = pd.concat([p_out.reset_index(drop=True), reps], axis=1)
        if chain.individual_final is not None:
            ind_prefix = d.individuals["replicate_prefix"]
            p_out = p_out.drop(columns=[col for col in p_out.columns if str(col).startswith(ind_prefix)])
            p_out[o["individual_weight"]] = chain.individual_final
            if ind_reps is not None:
                reps = pd.DataFrame(
                    ind_reps, columns=[f"{ind_prefix}{i + 1}" for i in range(ind_reps.shape[1])]
                )
                p_out = pd.concat([p_out.reset_index(drop=True), reps], axis=1)
        person_target = out / roster_path.name
        write_table(p_out, person_target)
    if out.resolve() != data.resolve():
        for extra in data.iterdir():
            if extra.is_file() and not (out / extra.name).exists() and extra.suffix in (".json", ".parquet"):
                # copy2 onto the temporary file: the same mode and times as the ingest output, renamed when whole
                atomic_write(out / extra.name, functools.partial(shutil.copy2, extra))
    _update_manifest(
        out,
        d,
        hh_target.name,
        person_target.name if person_target else None,
        n_replicates=hh_reps.shape[1] if hh_reps is not None else 0,
        individuals=chain.individual_final is not None,
    )
    final_hh = chain.hh_final[er]
    by_stratum = summary_by(final_hh, units.stratum[er])
    report = {
        "design": str(d.source),
        "data": str(data),
        "steps": chain.steps,
        "by_stratum": by_stratum,
        "stratum_check": base_info["stratum_check"],
        "psus": base_info["p1"],
        "replicates": rep_info,
        "issues": [i.flatten() for i in issues],
        "columns": dict(o),
    }
    report_path = out / REPORT_NAME
    atomic_write(
        report_path,
        lambda p: p.write_text(
            json.dumps(report, indent=2, ensure_ascii=False, default=_jsonable), encoding="utf-8"
        ),
    )
    hist_path = out / HISTOGRAM_NAME
    histogram(
        final_hh,
        chain.person_final[chain.person_final > 0] if chain.person_final is not None else None,
        hist_path,
    )
    return WeightResult(
        hh_target,
        person_target,
        report_path,
        hist_path,
        tuple(chain.steps),
        base_info["stratum_check"],
        rep_info,
        tuple(issues),
    )


def _individual_status(
    d: WeightDesign, persons: pd.DataFrame, roster_path: Path | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """ER/EN/IN per roster row for the individual interview (no result = not selected: IN), and classes."""
    ind = d.individuals
    if not ind["result"]:
        return None
    where = roster_path.name if roster_path else "roster"
    _require(persons, [ind["result"]], where)
    code_to_status = {code: st for st in (ER, EN, IN) for code in ind[st]}
    results = _labels(persons[ind["result"]])
    status = np.array([IN if r is None else code_to_status.get(r) for r in results], dtype=object)
    unmapped = sorted({str(r) for r, s in zip(results, status, strict=True) if s is None})
    if unmapped:
        raise WeightingError(
            [
                error(
                    RESULT_UNMAPPED,
                    f"individual result code(s) {', '.join(unmapped)} of "
                    f"{ind['result']} are not in [individuals]",
                    file=where,
                    variable=ind["result"],
                )
            ]
        )
    classes = (
        _class_labels(persons, list(ind["classes"]), "[individuals] classes")
        if ind["classes"]
        else np.full(len(persons), "all", dtype=object)
    )
    return status, classes


def _update_manifest(
    out: Path,
    d: WeightDesign,
    hh_file: str,
    person_file: str | None,
    *,
    n_replicates: int,
    individuals: bool = False,
) -> None:
    """Record the new columns in tables.json (`DataFolder.with_weights`): per table `weights` (export keeps and
    labels them) and the variance `design` (weight, strata, PSU), keeping everything ingest recorded."""
    if not DataFolder.exists(out):
        return
    data = DataFolder.read(out)
    o = d.output
    prefix = str(d.replicates["prefix"])
    reps = tuple(f"{prefix}{i + 1}" for i in range(n_replicates))
    new_columns = {
        hh_file: [o["base_weight"], o["status"], o["household_weight"], o["variance_stratum"], o["variance_psu"]],
    }
    weights = {hh_file: [o["base_weight"], o["household_weight"]]}
    if person_file is not None:
        new_columns[person_file] = [o["household_weight"], o["person_weight"], o["variance_stratum"], o["variance_psu"]]
        weights[person_file] = [o["household_weight"], o["person_weight"]]
        if individuals:
            ind_reps = [f"{d.individuals['replicate_prefix']}{i + 1}" for i in range(n_replicates)]
            new_columns[person_file] += [o["individual_weight"], *ind_reps]
            weights[person_file].append(o["individual_weight"])
    text = {o["status"], o["variance_stratum"], o["variance_psu"]}
    added = [
        TableWeights(
            table.name,
            tuple(weights[table.file]),
            reps,
            tuple(
                Column(name, None, None, "string" if name in text else "float64")
                for name in [*new_columns[table.file], *reps]
            ),
        )
        for table in data.tables
        if table.file in new_columns
    ]
    design = DataDesign(
        o["household_weight"],
        o["variance_stratum"],
        o["variance_psu"],
        Replicates(prefix, str(d.replicates["method"]), n_replicates) if n_replicates else None,
    )
    data.with_weights(added, design).write()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def histogram(household: np.ndarray, person: np.ndarray | None, path: Path) -> None:
    """PNG histogram of the final household (and person) weights (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("household weights", household)] + ([("person weights", person)] if person is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (title, w) in zip(axes[0], panels, strict=True):
        ax.hist(w, bins=40, color="#4472c4", edgecolor="white")
        s = weight_summary(w)
        ax.set_title(f"{title}: n={s.get('n', 0)}, deff_w={s.get('deff_kish', float('nan')):.3f}")
        ax.set_xlabel("weight")
        ax.set_ylabel("units")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)


# --- `migkit weights rake` ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RakeFileResult:
    """`rake_file` output: where the table was written, the calibration result and what the output format
    could not keep (warnings)."""

    output: Path
    column: str
    calibration: CalibrationResult
    issues: tuple[Issue, ...] = ()


def rake_file(
    table: Path | str,
    *,
    weight: str,
    margins: Path | str,
    out: Path | str,
    tol: float = 1e-6,
    max_iter: int = 100,
    name: str = "weight_raked",
    on_nonconvergence: str = "error",
) -> RakeFileResult:
    """Rake any table file to margins read from a CSV (variable, level, target) and write it with a new
    column.

    Parameters:
        table: CSV, Parquet, .sav or .dta file.
        weight: the starting weight column.
        margins: the margins CSV.
        out: output file (format from its extension).
        tol, max_iter: stopping rule (max relative margin error) and sweep limit.
        name: the new weight column.
        on_nonconvergence: "error" or "warn".
    """
    source = read_table_keeping(table)
    frame = source.values
    if weight not in frame.columns:
        raise WeightingError(
            [
                error(
                    DESIGN_INVALID,
                    f"weight column {weight!r} is not in the table",
                    file=str(table),
                    variable=weight,
                )
            ]
        )
    w = pd.to_numeric(frame[weight], errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    m = margins_from_frame(read_table(margins), source=Path(margins).name)
    res = rake(
        frame,
        w,
        m,
        tol=tol,
        max_iter=max_iter,
        on_nonconvergence="warn" if on_nonconvergence == "warn" else "error",
        source=Path(margins).name,
    )
    # Write back what the file had (labels, user-missing codes, identifiers as text), plus the new column.
    issues: list[Issue] = []
    metadata = source.metadata
    same_format = metadata is None or Path(out).suffix.lower() == metadata.suffix
    result = (source.kept if same_format else source.values).copy()
    if not same_format and metadata is not None and (metadata.missing_ranges or metadata.missing_user_values):
        issues.append(
            warning(
                METADATA_DROPPED,
                f"{Path(out).name} is not a {metadata.suffix} file: the user-missing values of "
                f"{', '.join(sorted({*metadata.missing_ranges, *metadata.missing_user_values})[:10])} are written "
                f"as missing and their definitions are not kept; write a {metadata.suffix} to keep them",
                file=str(out),
            )
        )
    result[name] = res.weights
    label = f"Raked weight: {weight} raked to {Path(margins).name}"
    write_table(result, out, metadata=metadata.with_column(name, label) if metadata is not None else None)
    return RakeFileResult(Path(out), name, res, tuple(issues))
