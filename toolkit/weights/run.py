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
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.dataset import Column, DataFolder, Replicates, TableWeights
from toolkit.dataset import Design as DataDesign
from toolkit.errors import Issue, define, error, warning
from toolkit.estimate import make_design
from toolkit.weights.base import (
    RESULT_UNMAPPED,
    TABLE_MISSING,
    base_weights,
    derive_columns,
    find_tables,
    labels,
    require,
)
from toolkit.weights.calibration import CalibrationResult, margins_from_frame, rake
from toolkit.weights.chain import calibration_table, class_labels, columns_read, nonresponse_classes, run_chain
from toolkit.weights.config import DESIGN_INVALID, WeightDesign
from toolkit.weights.core import (
    EN,
    ER,
    IN,
    WeightingError,
    summary_by,
    weight_summary,
)
from toolkit.weights.io import atomic_write, read_table, read_table_keeping, write_table
from toolkit.weights.replicates import replicate_factors

METADATA_DROPPED = define(
    "weights.metadata_dropped", "The output format cannot hold the input's user-missing definitions"
)

REPORT_NAME = "weights-report.json"
HISTOGRAM_NAME = "weights-histogram.png"


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
    hh_path, roster_path = find_tables(data, d)
    hh = pd.read_parquet(hh_path)
    issues: list[Issue] = []
    units, base_info = base_weights(d, hh, issues)
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
        require(roster, [c["parent_key"], c["selected_among"]], roster_path.name)
        require(hh, [c["key"]], hh_path.name)
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
        # Each person row carries the household columns the person steps read: copying all of them onto 600,000
        # roster rows took 800 MB at 100,000 households.
        wanted = columns_read(d.persons, also=[c for c in (d.individuals["result"], *d.individuals["classes"]) if c])
        hh_cols = [
            col
            for col in units.frame.columns
            if col not in roster.columns and not col.startswith("_") and (wanted is None or col in wanted)
        ]
        persons = pd.concat(
            [roster.reset_index(drop=True), units.frame[hh_cols].iloc[person_unit].reset_index(drop=True)],
            axis=1,
        )
        persons = derive_columns(persons, d.persons.derive) if d.persons.method != "none" else persons
    individuals = _individual_status(d, persons, roster_path) if persons is not None else None
    hh_cal = calibration_table(d.households, hh_cal)
    persons = calibration_table(d.persons, persons)
    classes = nonresponse_classes(d, units.frame)
    chain = run_chain(
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
            rc = run_chain(
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
        reps = pd.DataFrame(hh_reps[:n], columns=[f"{d.replicates['prefix']}{i + 1}" for i in range(hh_reps.shape[1])])
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
                reps = pd.DataFrame(ind_reps, columns=[f"{ind_prefix}{i + 1}" for i in range(ind_reps.shape[1])])
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
        lambda p: p.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=_jsonable), encoding="utf-8"),
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
    require(persons, [ind["result"]], where)
    code_to_status = {code: st for st in (ER, EN, IN) for code in ind[st]}
    results = labels(persons[ind["result"]])
    status = np.array([IN if r is None else code_to_status.get(r) for r in results], dtype=object)
    unmapped = sorted({str(r) for r, s in zip(results, status, strict=True) if s is None})
    if unmapped:
        raise WeightingError(
            [
                error(
                    RESULT_UNMAPPED,
                    f"individual result code(s) {', '.join(unmapped)} of {ind['result']} are not in [individuals]",
                    file=where,
                    variable=ind["result"],
                )
            ]
        )
    classes = (
        class_labels(persons, list(ind["classes"]), "[individuals] classes")
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
