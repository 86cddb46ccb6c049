"""Build the bundled example survey that `make demo` and the training labs run on (synthetic, entirely made up).

A household survey on migration in one origin country (TJK), as a national statistics office would field it:

- a frame of enumeration areas (EAs) in 5 strata (Sughd, Khatlon urban/rural, Dushanbe) with the census household
  count as measure of size; 4 EAs per stratum drawn PPS systematic; every selected EA listed; 8 households drawn
  per EA with equal probability (the listing's selection probability is recorded in `id_selprob`);
- every selected household gets a submission of forms/household.xlsx, filled by `toolkit.simulate` along the
  questionnaire's skip logic, with answers as often as answers.toml says (illustrative shapes, not statistics),
  with the sample IDs and the interview outcome (completed, refused, nobody at home, vacant, not found) set from
  the sample;
- submissions are encrypted as ODK Collect does, with the demo key pair in keys/ (the private key is protected by
  the passphrase in keys/passphrase.txt, as `migkit keys new --passphrase-file` makes it);
- four submissions were "edited after collection" (the way cleaning in Excel or re-entry from paper changes data)
  so that `migkit validate` has something to find, one never-finalised instance was left plaintext on a tablet and
  one submission was pulled twice from two tablets;
- psu_sample.csv, listing.csv, population controls and design.toml for `migkit weights`, and survey.toml for
  `migkit run`.

    python examples/survey/make_example.py            # rewrites examples/survey/ (seed 2026)

THE KEYS IN keys/ ARE FOR THIS DEMO ONLY. Never attach them to a real form: anyone with this repository can read
submissions encrypted with them.
"""

from __future__ import annotations

import re
import shutil
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from toolkit.crypto import encrypt_submission, generate_keypair  # noqa: E402
from toolkit.simulate import generate_instances, load_answers  # noqa: E402
from toolkit.validate import compile_form, instance_tree, validate_tree  # noqa: E402
from toolkit.xform import load_form  # noqa: E402

SEED = 2026
STRATA = {  # stratum id: (region, urban/rural, EAs in the frame, MOS range)
    1: ("Sughd", "urban", 40, (80, 380)),
    2: ("Sughd", "rural", 60, (60, 260)),
    3: ("Khatlon", "urban", 30, (80, 360)),
    4: ("Khatlon", "rural", 70, (60, 240)),
    5: ("Dushanbe", "urban", 50, (120, 460)),
}
EAS_PER_STRATUM = 4
HOUSEHOLDS_PER_EA = 8
# Interview outcomes (forms/household.xlsx list hh_result) and how often they occur.
OUTCOMES = ((1, 0.84), (5, 0.05), (3, 0.05), (6, 0.04), (8, 0.02))
DEMO_PASSPHRASE = "demo passphrase - not secret"  # noqa: S105 (the demo key is public on purpose)


def _pps_systematic(mos: np.ndarray, n: int, rng: np.random.Generator) -> list[int]:
    cumulative = np.cumsum(mos)
    step = cumulative[-1] / n
    points = rng.uniform(0, step) + step * np.arange(n)
    chosen = sorted(set(np.searchsorted(cumulative, points, side="right").tolist()))
    while len(chosen) < n:  # a very large EA can be hit twice: take the next EA instead
        chosen = sorted({*chosen, next(i for i in range(len(mos)) if i not in chosen)})
    return chosen


def _presets(outcome: int) -> dict[str, str]:
    """The cover answers an enumerator records for each interview outcome."""
    if outcome == 1:
        return {"hh_contact": "1", "consent_hh": "1", "hh_result": "1"}
    if outcome == 5:
        return {"hh_contact": "1", "consent_hh": "2", "hh_result": "5"}
    return {"hh_contact": "2", "hh_result": str(outcome)}


def _valid_instance(
    form, checker, index: int, presets: dict[str, str], seed: int, *, answers: dict
) -> tuple[str, bytes]:
    """A simulated instance that ODK Collect would have accepted on its interview day.

    Random answers can paint an enumerator into a corner that fieldwork never meets (every adult abroad, so no
    respondent to pick); such a draw is discarded and the household drawn again.
    """
    for attempt in range(200):
        ((instance_id, xml),) = generate_instances(
            form,
            1,
            seed=seed,
            start=index * 1000 + attempt,
            media_dir=REPO / "forms",
            presets=[presets],
            answers=answers,
        )
        day = re.search(rb"<today>([0-9-]{10})</today>", xml)
        interview_day = date.fromisoformat(day.group(1).decode()) if day else None
        if not validate_tree(checker, instance_tree(checker, xml), today=interview_day):
            return instance_id, xml
    raise RuntimeError(f"no valid instance for household {index} in 200 draws: check simulate and the form")


def _edit(xml: bytes, name: str, value: str) -> bytes:
    """Set the first <name> element's text (what a cleaning spreadsheet or a re-entry does to a submission)."""
    text = xml.decode("utf-8")
    pattern = re.compile(rf"<{name}>[^<]*</{name}>|<{name}/>")
    if not pattern.search(text):
        raise ValueError(f"no element {name} to edit")
    return pattern.sub(f"<{name}>{value}</{name}>", text, count=1).encode("utf-8")


def build(out: Path = HERE, *, seed: int = SEED) -> None:
    """Write the example survey into `out` (keys, submissions, design files, survey.toml).

    Parameters:
        out: the folder (default: this script's folder).
        seed: the random seed.
    """
    rng = np.random.default_rng(seed)
    form = load_form(REPO / "forms" / "household.xlsx")
    checker = compile_form(form, media_dir=REPO / "forms")
    answers = load_answers(HERE / "answers.toml", form)  # how often each answer is given (illustrative)
    frame_rows, sample_rows, listing_rows, households = [], [], [], []
    for stratum, (region, urban, n_ea, (low, high)) in STRATA.items():
        mos = rng.integers(low, high, size=n_ea)
        eas = [stratum * 1000 + k + 1 for k in range(n_ea)]
        frame_rows += [{"stratum": stratum, "psu": ea, "mos": int(m)} for ea, m in zip(eas, mos, strict=True)]
        for i in _pps_systematic(mos.astype(float), EAS_PER_STRATUM, rng):
            listed = round(mos[i] * rng.uniform(0.92, 1.12))
            sample_rows.append(
                {
                    "stratum": stratum,
                    "region": region,
                    "urban": urban,
                    "psu": eas[i],
                    "mos": int(mos[i]),
                    "stratum_mos": int(mos.sum()),
                }
            )
            listing_rows.append({"psu": eas[i], "listed": listed, "selected": HOUSEHOLDS_PER_EA})
            p2 = HOUSEHOLDS_PER_EA / listed
            chosen = sorted(
                rng.choice(np.arange(1, listed + 1), size=HOUSEHOLDS_PER_EA, replace=False).tolist()
            )
            for hh_no in chosen:
                outcome = int(rng.choice([o for o, _ in OUTCOMES], p=[p for _, p in OUTCOMES]))
                households.append(
                    {
                        "id_country": "TJK",
                        "id_stratum": str(stratum),
                        "id_psu": str(eas[i]),
                        "id_hh_no": str(hh_no),
                        "id_selprob": f"{p2:.6f}",
                        **_presets(outcome),
                    }
                )

    for folder in ("submissions", "keys"):
        shutil.rmtree(out / folder, ignore_errors=True)
    keys = generate_keypair(out / "keys", passphrase=DEMO_PASSPHRASE)
    (out / "keys" / "passphrase.txt").write_text(DEMO_PASSPHRASE + "\n", encoding="utf-8")
    (out / "keys" / "README.txt").write_text(
        "DEMO KEYS for the bundled example survey only. Anyone with this repository can decrypt what is\n"
        "encrypted with them: never attach public.pem to a real form. Make your own with `migkit keys new`.\n",
        encoding="utf-8",
    )
    from cryptography.hazmat.primitives import serialization

    public_key = serialization.load_pem_public_key(keys.public_path.read_bytes())
    instances = [
        _valid_instance(form, checker, index, household, seed, answers=answers)
        for index, household in enumerate(households)
    ]
    completed = [i for i, h in enumerate(households) if h["hh_result"] == "1"]
    edits = (  # (field, value, what the edit does), applied to completed interviews
        ("hh_size", "0", "household size 0, below the constraint's minimum (a typing slip)"),
        ("id_int", "", "interviewer code blanked by a cleaning formula"),
        ("rr_any12", "7", "a code that is not in the yes/no list"),
        ("id_hh_no", "4000", "household number above the constraint's maximum"),
    )
    edited = {completed[3 + 6 * k]: edit for k, edit in enumerate(edits)}
    submissions = out / "submissions"
    for index, (instance_id, xml) in enumerate(instances):
        content = _edit(xml, *edited[index][:2]) if index in edited else xml
        # Collect's tablet layout: instances/<form>_<timestamp>/ with the manifest under the instance's name.
        folder = (
            submissions
            / "tablet-01"
            / "instances"
            / f"ncamig_household_2026-10-{1 + index % 28:02d}_{index:04d}"
        )
        if index == len(instances) - 1:
            # Saved on the tablet but never finalised: Collect leaves such instances as plaintext.
            folder.mkdir(parents=True)
            (folder / f"{folder.name}.xml").write_bytes(content)
            continue
        encrypt_submission(
            content,
            public_key=public_key,
            form_id=form.form_id,
            instance_id=instance_id,
            out_dir=folder,
            version=form.version,
            manifest_name=f"{folder.name}.xml",
        )
        if index == 5:  # the same submission pulled again from a second tablet's backup
            shutil.copytree(folder, submissions / "tablet-02-backup" / folder.name)

    pd.DataFrame(sample_rows).to_csv(out / "psu_sample.csv", index=False)
    pd.DataFrame(listing_rows).to_csv(out / "listing.csv", index=False)
    frame = pd.DataFrame(frame_rows)
    frame.to_csv(out / "frame.csv", index=False)
    # Population controls (a made-up projection for the survey's reference date): households by region are the
    # census counts grown by 4 %; persons by region and sex share one grand total (5.6 persons per household).
    region_of = {s: r for s, (r, *_) in STRATA.items()}
    households_by_region = (
        frame.assign(region=frame["stratum"].map(region_of)).groupby("region")["mos"].sum() * 1.04
    )
    pd.DataFrame(
        {
            "variable": "region",
            "level": households_by_region.index,
            "target": households_by_region.round(0).to_numpy(),
        }
    ).to_csv(out / "controls_households.csv", index=False)
    persons = households_by_region.round(0) * 5.6
    rows = [("region", region, total) for region, total in persons.items()]
    rows += [("hl_sex", "1", persons.sum() * 0.497), ("hl_sex", "2", persons.sum() * 0.503)]
    pd.DataFrame(rows, columns=["variable", "level", "target"]).to_csv(
        out / "controls_persons.csv", index=False
    )
    notes = "\n".join(f"- instance {index + 1}: {what}" for index, (_, _, what) in sorted(edited.items()))
    (out / "EDITS.md").write_text(
        "# What was done to the example submissions after collection\n\n"
        "The example is synthetic. To give `migkit validate` and `migkit decrypt` something to find, as real data\n"
        "would:\n\n"
        + notes
        + "\n- the last instance was saved but never finalised (plaintext on the tablet)\n"
        "- one submission was pulled twice (tablet-02-backup)\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
