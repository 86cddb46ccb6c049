"""The first steps of `migkit weights`: the DATA folder's tables, derived columns, and the base weights of a
two-stage PPS sample with listing (§4.2 of specs/weights.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from toolkit.dataset import DataFolder
from toolkit.errors import EXIT_USAGE, INPUT_MISSING, Issue, ToolkitError, define, error, warning
from toolkit.weights.config import DESIGN_INVALID, WeightDesign
from toolkit.weights.core import (
    LISTING_SHORT,
    PROBABILITY_INVALID,
    WeightingError,
    first_stage_probabilities,
    level_label,
)
from toolkit.weights.io import read_table

RESULT_UNMAPPED = define("weights.result_unmapped", "A result code is not mapped to ER/EN/IN/UE in the design file")
PSU_UNKNOWN = define("weights.psu_unknown", "A household's PSU is not in the PSU sample file or the listing file")
TABLE_MISSING = define("weights.table_missing", "The household (or roster) table is not in the DATA folder")
SELECTION_COUNT = define("weights.selection_count", "A PSU has a different number of households than were selected")
STRATUM_CHECK = define("weights.stratum_check", "Σ base weights of a stratum is far from its frame count")


# --- Inputs -------------------------------------------------------------------------------------------------


def find_tables(data_dir: Path, design: WeightDesign) -> tuple[Path, Path | None]:
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
        raise ToolkitError(error(TABLE_MISSING, f"household table {hh.name} not found", file=str(data_dir)), EXIT_USAGE)
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


def labels(series: pd.Series) -> np.ndarray:
    """Canonical level text per row (None when missing), as an object array."""
    return np.array([None if pd.isna(v) else level_label(v) for v in series.tolist()], dtype=object)


def require(frame: pd.DataFrame, cols: list[str], where: str) -> None:
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
    out = frame.copy(deep=False)  # copy-on-write (pandas 3): the new columns go to this frame only
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
class Units:
    frame: pd.DataFrame  # one row per selected household (data rows first, then non-interview rows)
    status: np.ndarray
    base: np.ndarray
    psu_key: np.ndarray
    stratum: np.ndarray
    n_data: int


def base_weights(  # noqa: PLR0912, PLR0915
    design: WeightDesign, hh: pd.DataFrame, issues: list[Issue]
) -> tuple[Units, dict[str, Any]]:
    c = design.columns
    ps = design.psu_sample
    require(hh, [c["psu"], c["result"], c["listing_group"]], "household table")
    units = hh.copy(deep=False)
    units["_source"] = "data"
    if design.noninterview_file is not None:
        extra = read_table(design.noninterview_file)
        require(extra, [c["psu"], c["result"]], design.noninterview_file.name)
        extra = extra.copy()
        extra["_source"] = "noninterview"
        units = pd.concat([units, extra], ignore_index=True)
    # Disposition → ER/EN/IN/UE.
    code_to_status = {code: st for st, codes in design.disposition.items() for code in codes}
    results = labels(units[c["result"]])
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
    require(
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
    s_lab = labels(sample[ps["stratum"]])
    if ps["frame_file"] is not None:
        frame = read_table(ps["frame_file"])
        require(frame, [ps["frame_stratum"], ps["frame_mos"]], ps["frame_file"].name)
        m_h = (
            pd.Series(_positive(frame, ps["frame_mos"], ps["frame_file"].name))
            .groupby(labels(frame[ps["frame_stratum"]]))
            .sum()
            .to_dict()
        )
    else:
        m_h = pd.Series(_positive(sample, ps["stratum_mos"], ps["file"].name)).groupby(s_lab).first().to_dict()
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
    psu_ids = labels(sample[ps["psu"]])
    psu_info = pd.DataFrame({"_psu": psu_ids, "_stratum": s_lab, "_p1": p1, "_certainty": cert_flags})
    # Second stage (listing).
    li = design.listing
    listing = read_table(li["file"])
    require(listing, [li["psu"], li["group"], li["listed"], li["selected"]], li["file"].name)
    lst = pd.DataFrame(
        {
            "_psu": labels(listing[li["psu"]]),
            "_group": labels(listing[li["group"]]) if li["group"] else "",
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
                f"PSU {psu} group {group or '-'}: {int(selected)} selected but only {int(listed)} listed; p2 set to 1",
                file=li["file"].name,
                row=int(position) + 2,
            )
        )
    lst["_p2"] = np.where(lst["_L"] <= lst["_m"], 1.0, lst["_m"] / lst["_L"])
    # Join to the households.
    units["_psu"] = labels(units[c["psu"]])
    units["_group"] = labels(units[c["listing_group"]]) if c["listing_group"] else ""
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
    out = Units(
        merged,
        status,
        base,
        merged["_psu"].to_numpy(dtype=object),
        stratum,
        int((merged["_source"] == "data").sum()),
    )
    return out, {"p1": psu_info.to_dict(orient="list"), "stratum_check": check}


# --- The chain ----------------------------------------------------------------------------------------------
