"""Build the synthetic worked example of `migkit weights` (realistic, entirely made up).

A two-stage household survey on migration: 6 strata (3 regions × urban/rural), EAs selected PPS with the
census household count as MOS (one certainty EA, one large EA split into 3 segments of which one was listed),
listing that screens households into two listing groups (`mig` = a current emigrant or a returnee, `oth` =
neither) with migrant households oversampled, four result outcomes plus a non-interview log, a household
roster, and population controls.

    python examples/weights/make_example.py OUTDIR

writes OUTDIR/frame.csv (EA frame), psu_sample.csv, listing.csv, noninterview.csv, controls_households.csv,
controls_persons.csv, design.toml (a copy of the one next to this script) and OUTDIR/DATA/ (household.parquet,
household-hl.parquet, tables.json) in the layout `migkit ingest` writes (docs/tables.md). Then:

    migkit weights OUTDIR/DATA --design OUTDIR/design.toml
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REGIONS = ("North", "Centre", "South")
N_SELECTED = {
    ("North", "urban"): 4,
    ("North", "rural"): 5,
    ("Centre", "urban"): 5,
    ("Centre", "rural"): 4,
    ("South", "urban"): 4,
    ("South", "rural"): 5,
}
TAKE = {"mig": 8, "oth": 10}  # households selected per listing group in every EA (segment)
AGE_BREAKS = [0, 15, 30, 45, 60, 120]
AGE_LABELS = ["0-14", "15-29", "30-44", "45-59", "60+"]


def _pps_systematic(mos: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    cum = np.cumsum(mos)
    step = cum[-1] / n
    points = rng.uniform(0, step) + step * np.arange(n)
    return np.unique(np.searchsorted(cum, points, side="right"))


def build_example(outdir: Path | str, *, seed: int = 7) -> dict[str, Path]:  # noqa: PLR0912, PLR0915
    """Write the example inputs and a DATA folder; return their paths.

    Parameters:
        outdir: folder to write into (created).
        seed: random seed (the committed example uses 7).
    """
    rng = np.random.default_rng(seed)
    out = Path(outdir)
    (out / "DATA").mkdir(parents=True, exist_ok=True)
    # Frame: EAs per stratum with census household counts (the MOS).
    frame_rows = []
    for region, urban in N_SELECTED:
        n_ea = 30 if urban == "urban" else 40
        mos = rng.integers(60, 260 if urban == "rural" else 420, size=n_ea)
        if (region, urban) == ("Centre", "urban"):
            mos[0] = 2600  # the capital's largest EA: certainty unit (n_h·M_hi ≥ M_h)
        for k, m in enumerate(mos):
            frame_rows.append(
                {
                    "region": region,
                    "urban": urban,
                    "stratum": f"{region}-{urban}",
                    "ea": f"{region[0]}{'U' if urban == 'urban' else 'R'}{k + 1:03d}",
                    "mos": int(m),
                }
            )
    frame = pd.DataFrame(frame_rows)
    sample_rows, listing_rows, households, noninterview = [], [], [], []
    persons = []
    hh_no_seq = 0
    for stratum, fr in frame.groupby("stratum", sort=True):
        region, urban = fr["region"].iloc[0], fr["urban"].iloc[0]
        n_h = N_SELECTED[(region, urban)]
        m_h = int(fr["mos"].sum())
        chosen = set(_pps_systematic(fr["mos"].to_numpy(float), n_h, rng).tolist())
        if stratum == "Centre-urban":
            chosen.add(0)
        chosen_idx = sorted(chosen)[:n_h]
        while len(chosen_idx) < n_h:  # systematic PPS may hit an EA twice; top up with the next EA
            extra = next(i for i in range(len(fr)) if i not in chosen_idx)
            chosen_idx = sorted([*chosen_idx, extra])
        for i in chosen_idx:
            ea = fr.iloc[i]
            segments = 3 if stratum == "South-rural" and i == chosen_idx[-1] else 1
            listed_total = round(ea["mos"] * rng.uniform(0.9, 1.15) / segments)
            share_mig = rng.uniform(0.15, 0.4)
            listed = {"mig": max(round(listed_total * share_mig), 6)}
            listed["oth"] = max(listed_total - listed["mig"], 12)
            sample_rows.append(
                {
                    "stratum": stratum,
                    "region": region,
                    "urban": urban,
                    "ea": ea["ea"],
                    "mos": int(ea["mos"]),
                    "stratum_mos": m_h,
                    "segments": segments,
                }
            )
            for group in ("mig", "oth"):
                m = min(TAKE[group], listed[group])
                listing_rows.append({"ea": ea["ea"], "group": group, "listed": listed[group], "selected": m})
                for _ in range(m):
                    hh_no_seq += 1
                    u = rng.random()
                    result = 1 if u < 0.82 else 2 if u < 0.89 else 3 if u < 0.93 else 4 if u < 0.97 else 5
                    row = {
                        "id_stratum": stratum,
                        "id_psu": ea["ea"],
                        "id_hh_no": hh_no_seq,
                        "hh_result": str(result),
                        "listing_group": group,
                    }
                    if result == 5:  # not found: no submission, only in the non-interview log
                        noninterview.append(
                            {
                                "id_psu": ea["ea"],
                                "listing_group": group,
                                "id_hh_no": hh_no_seq,
                                "hh_result": result,
                            }
                        )
                        continue
                    households.append(row)
    hh = pd.DataFrame(households)
    hh.insert(0, "KEY", [f"uuid:{seed:04d}-{i:06d}" for i in range(len(hh))])
    hh = hh.sort_values("KEY").reset_index(drop=True)
    hh.insert(1, "hh_id", np.arange(1, len(hh) + 1))
    hh["hh_id"] = hh["hh_id"].astype("Int64")
    hh["id_hh_no"] = hh["id_hh_no"].astype("Int64")
    for key, hh_id, result, group in zip(
        hh["KEY"], hh["hh_id"], hh["hh_result"], hh["listing_group"], strict=True
    ):
        if result != "1":
            continue
        size = 1 + int(rng.poisson(2.9)) + (1 if group == "mig" and rng.random() < 0.3 else 0)
        for j in range(1, size + 1):
            if j == 1:
                age = int(rng.integers(22, 75))
            else:  # roughly the population's age pyramid, a little short of young adults (they emigrated)
                band = rng.choice(5, p=(0.36, 0.22, 0.19, 0.13, 0.10))
                age = int(rng.integers(AGE_BREAKS[band], AGE_BREAKS[band + 1] if band < 4 else 90))
            persons.append(
                {
                    "KEY": f"{key}/hl[{j}]",
                    "PARENT_KEY": key,
                    "hh_id": hh_id,
                    "hl_no": j,
                    "hl_sex": str(int(rng.integers(1, 3))),
                    "hl_age": age,
                }
            )
    roster = pd.DataFrame(persons)
    for col in ("hh_id", "hl_no", "hl_age"):
        roster[col] = roster[col].astype("Int64")
    hh.to_parquet(out / "DATA" / "household.parquet", index=False)
    roster.to_parquet(out / "DATA" / "household-hl.parquet", index=False)
    manifest = {
        "form_id": "household",
        "versions": ["2026110101"],
        "tables": [
            {"file": "household.parquet", "path": "/household", "parent": None, "rows": len(hh)},
            {
                "file": "household-hl.parquet",
                "path": "/household/hl",
                "parent": "household.parquet",
                "rows": len(roster),
            },
        ],
    }
    (out / "DATA" / "tables.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    frame[["stratum", "ea", "mos"]].to_csv(out / "frame.csv", index=False)
    pd.DataFrame(sample_rows).to_csv(out / "psu_sample.csv", index=False)
    pd.DataFrame(listing_rows).to_csv(out / "listing.csv", index=False)
    pd.DataFrame(noninterview).to_csv(out / "noninterview.csv", index=False)
    # Population controls (a made-up projection for the survey's reference date): households by region equal
    # the frame's census counts grown by 3 %; persons by region, sex and age group share one grand total.
    hh_totals = frame.groupby("region")["mos"].sum() * 1.03
    pd.DataFrame(
        {"variable": "region", "level": hh_totals.index, "target": hh_totals.round(0).to_numpy()}
    ).to_csv(out / "controls_households.csv", index=False)
    persons_total = float(hh_totals.round(0).sum() * 4.1)
    region_share = hh_totals / hh_totals.sum()
    sex_share = {"1": 0.49, "2": 0.51}
    age_share = dict(zip(AGE_LABELS, (0.31, 0.27, 0.2, 0.13, 0.09), strict=True))
    rows = [("region", r, persons_total * s) for r, s in region_share.items()]
    rows += [("sex", k, persons_total * s) for k, s in sex_share.items()]
    rows += [("age_group", k, persons_total * s) for k, s in age_share.items()]
    pd.DataFrame(rows, columns=["variable", "level", "target"]).to_csv(
        out / "controls_persons.csv", index=False
    )
    if (HERE / "design.toml").resolve() != (out / "design.toml").resolve():
        shutil.copy(HERE / "design.toml", out / "design.toml")
    return {
        name: out / name
        for name in (
            "frame.csv",
            "psu_sample.csv",
            "listing.csv",
            "noninterview.csv",
            "controls_households.csv",
            "controls_persons.csv",
            "design.toml",
            "DATA",
        )
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/weights/make_example.py OUTDIR")
    paths = build_example(sys.argv[1])
    print("\n".join(str(p) for p in paths.values()))
