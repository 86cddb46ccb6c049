"""Benchmark `migkit export --format sav,dta` against bare pyreadstat writes of the same final frames.

100,000 households with about 500,000 roster rows of a small household-like form, generated directly as a DATA
folder (docs/tables.md format: Parquet tables + tables.json). The export runs as the real command in a fresh
process (its wall time and peak memory are measured); the reference is `pyreadstat.write_sav`/`write_dta` of
the frames the export hands to pyreadstat, timed around the pyreadstat calls alone in another fresh process.
The two alternate `--repeat` times and the fastest of each counts. Target: ratio <= 1.5, memory < 4 GB.

    .venv/bin/python bench/export.py [--households 100000] [--repeat 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from toolkit.dataset import Column, DataFolder, Table
from toolkit.export import prepare_export
from toolkit.xform import load_form

FORM_MD = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | relevant | calculation |
| | start | start | | | | |
| | end | end | | | | |
| | today | today | | | | |
| | integer | id_stratum | Stratum | Страта | | |
| | integer | id_psu | Cluster | Кластер | | |
| | integer | id_hh_no | Household number | Номер домохозяйства | | |
| | select_one yn | consent_hh | Consent | Согласие | | |
| | geopoint | id_gps | GPS | GPS | ${consent_hh}='1' | |
| | integer | hh_size | Household size | Размер домохозяйства | ${consent_hh}='1' | |
| | begin_repeat | hl | Member | Член домохозяйства | ${consent_hh}='1' | |
| | text | hl_name | First name | Имя | | |
| | select_one sex | hl_sex | Sex | Пол | | |
| | integer | hl_age | Age | Возраст | | |
| | select_one rel | hl_rel | Relationship to head | Отношение к главе | | |
| | select_one yn | hl_abroad | Lived abroad | Жил за рубежом | ${hl_age} >= 15 | |
| | select_multiple reason | hl_reason | Reasons for leaving | Причины отъезда | ${hl_abroad}='1' | |
| | decimal | hl_income | Monthly income | Месячный доход | ${hl_age} >= 15 | |
| | end_repeat | | | | | |
| | select_one yn | hh_remit | Receives remittances | Получает денежные переводы | | |
| | decimal | hh_remit_amt | Remittances, 12 months | Переводы за 12 месяцев | ${hh_remit}='1' | |
| | date | hh_visit | Date of last visit | Дата последнего визита | | |
| | calculate | hh_members | | | | count(${hl}) |
| | text | hh_comment | Comments | Комментарии | | |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) |
| | yn | 1 | Yes | Да |
| | yn | 2 | No | Нет |
| | yn | 98 | Don't know | Не знаю |
| | yn | 99 | Refused | Отказ |
| | sex | 1 | Male | Мужской |
| | sex | 2 | Female | Женский |
| | rel | 1 | Head | Глава |
| | rel | 2 | Spouse | Супруг(а) |
| | rel | 3 | Son or daughter | Сын или дочь |
| | rel | 14 | Not related | Не родственник |
| | rel | 98 | Don't know | Не знаю |
| | reason | 1 | Work | Работа |
| | reason | 2 | Study | Учёба |
| | reason | 3 | Family | Семья |
| | reason | 4 | Conflict | Конфликт |
| | reason | 96 | Other | Другое |
| settings |
| | form_id | version | default_language | title |
| | bench_hh | 2026112701 | English (en) | Household benchmark |
"""


def _datetimes(rng: np.random.Generator, n: int) -> pd.Series:
    base = np.datetime64("2026-09-01T08:00:00") + rng.integers(0, 60 * 86400, n).astype("timedelta64[s]")
    return pd.Series(np.datetime_as_string(base, unit="ms")).str.cat(
        pd.Series(rng.choice(["+03:00", "+05:00", "+06:00"], n))
    )


def make_tables(households: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    """The DATA tables of `households` submissions (about 5 members each), as ingest would write them."""
    rng = np.random.default_rng(seed)
    n = households
    keys = pd.Series([f"uuid:{i:08d}-0000-4000-8000-000000000000" for i in range(n)])
    consent = pd.Series(rng.choice(["1", "2"], n, p=[0.95, 0.05]))
    asked = consent == "1"
    size = np.where(asked, rng.integers(1, 10, n), 0)
    main = pd.DataFrame(
        {
            "KEY": keys,
            "hh_id": pd.array(np.arange(1, n + 1), dtype="Int64"),
            "FormVersion": "2026112701",
            "start": _datetimes(rng, n),
            "end": _datetimes(rng, n),
            "today": pd.Series(
                np.datetime64("2026-09-01") + rng.integers(0, 60, n).astype("timedelta64[D]")
            ).astype("datetime64[s]"),
            "id_stratum": pd.array(rng.integers(1, 20, n), dtype="Int64"),
            "id_psu": pd.array(rng.integers(1, 600, n), dtype="Int64"),
            "id_hh_no": pd.array(rng.integers(1, 999, n), dtype="Int64"),
            "consent_hh": consent,
            "id_gps": pd.Series(
                [f"{41 + a:.6f} {69 + b:.6f} 450.0 5.0" for a, b in rng.random((n, 2))]
            ).where(asked),
            "hh_size": pd.Series(pd.array(size, dtype="Int64")).where(asked),
        }
    )
    remit = pd.Series(rng.choice(["1", "2", "98"], n, p=[0.4, 0.55, 0.05])).where(asked)
    main["hh_remit"] = remit
    amount = np.where(rng.random(n) < 0.03, -98.0, np.round(rng.gamma(2, 500, n), 2))
    main["hh_remit_amt"] = pd.Series(pd.array(amount, dtype="Float64")).where(remit == "1")
    main["hh_visit"] = pd.Series(
        np.datetime64("2025-01-01") + rng.integers(0, 600, n).astype("timedelta64[D]")
    ).astype("datetime64[s]")
    main["hh_members"] = pd.Series(size.astype(str)).where(asked)
    main["hh_comment"] = pd.Series(rng.choice(["", "Семья отсутствовала", "ok"], n)).replace("", None)
    main["instanceID"] = keys
    main["w_hh"] = rng.gamma(5, 40, n)

    parent = np.repeat(np.arange(n), size)
    rows = len(parent)
    position = np.concatenate([np.arange(1, k + 1) for k in size if k]) if rows else np.array([], int)
    age = rng.integers(0, 90, rows)
    adult = age >= 15
    abroad = pd.Series(rng.choice(["1", "2", "99"], rows, p=[0.3, 0.68, 0.02])).where(adult)
    reasons = pd.Series(rng.choice(["1", "2", "1 3", "3", "4", "1 96"], rows)).where(abroad == "1")
    income = np.where(rng.random(rows) < 0.02, -99.0, np.round(rng.gamma(2, 300, rows), 2))
    hl = pd.DataFrame(
        {
            "KEY": keys.to_numpy()[parent] + pd.Series(position).map(lambda k: f"/hl[{k}]").to_numpy(),
            "PARENT_KEY": keys.to_numpy()[parent],
            "hh_id": pd.array(parent + 1, dtype="Int64"),
            "hl_no": pd.array(position, dtype="Int64"),
            "hl_name": pd.Series(
                rng.choice(["Айгерим", "Бахтияр", "Мария", "Иван", "Дилноза", "Тимур"], rows)
            ),
            "hl_sex": pd.Series(rng.choice(["1", "2"], rows)),
            "hl_age": pd.array(age, dtype="Int64"),
            "hl_rel": pd.Series(rng.choice(["1", "2", "3", "14", "98"], rows)),
            "hl_abroad": abroad,
            "hl_reason": reasons,
            "hl_income": pd.Series(pd.array(income, dtype="Float64")).where(adult),
        }
    )
    return {"bench_hh": main, "bench_hh-hl": hl}


def write_data_folder(tables: dict[str, pd.DataFrame], folder: Path) -> None:
    entries = tuple(
        Table(
            name,
            f"{name}.parquet",
            "/data" if name == "bench_hh" else "/data/hl",
            None if name == "bench_hh" else "bench_hh",
            len(frame),
            tuple(Column(str(c), "", "", str(frame[c].dtype)) for c in frame),
        )
        for name, frame in tables.items()
    )
    DataFolder(folder, "bench_hh", entries, ("2026112701",)).write(tables)


def bare_writes(data: Path, form_path: Path, target: Path) -> float:
    """Seconds spent in pyreadstat alone writing the export's final frames (frames built untimed)."""
    prepared = prepare_export(data, load_form(form_path))
    seconds = 0.0
    for plan in prepared.plans:
        for fmt, args_of, write in (
            ("sav", plan.sav_args, pyreadstat.write_sav),
            ("dta", plan.dta_args, pyreadstat.write_dta),
        ):
            frame, kwargs = args_of()
            started = time.perf_counter()
            write(frame, target / f"{plan.name}.{fmt}", **kwargs)
            seconds += time.perf_counter() - started
            del frame
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="alternating runs of each; the minimum is reported"
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the DATA and output folders here")
    parser.add_argument("--bare", nargs=3, type=Path, metavar=("DATA", "FORM", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        print(bare_writes(*args.bare))
        return 0
    work = Path(tempfile.mkdtemp(prefix="migkit-bench-export-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    data, out, bare = work / "DATA", work / "OUT", work / "BARE"
    for folder in (data, out, bare):
        folder.mkdir(exist_ok=True)
    form_path = work / "bench_hh.md"
    form_path.write_text(FORM_MD.strip() + "\n", encoding="utf-8")
    tables = make_tables(args.households)
    write_data_folder(tables, data)
    rows = {name: len(frame) for name, frame in tables.items()}
    del tables

    migkit = Path(sys.executable).with_name("migkit")
    command = [
        str(migkit),
        "export",
        str(data),
        "--form",
        str(form_path),
        "--format",
        "sav,dta",
        "--out",
        str(out),
        "--json",
    ]
    # Both sides run in fresh processes, alternating, so that machine load hits them alike.
    export_times, bare_times = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        export_times.append(time.perf_counter() - started)
        if run.returncode not in (0, 1):
            print(run.stderr, file=sys.stderr)
            return 1
        reference = subprocess.run(
            [sys.executable, __file__, "--bare", str(data), str(form_path), str(bare)],
            capture_output=True,
            text=True,
            check=True,
        )
        bare_times.append(float(reference.stdout.strip().splitlines()[-1]))
    # The largest child is the export (the reference process holds the same frames and less).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    export_seconds, bare_seconds = min(export_times), min(bare_times)
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.suffix in {".sav", ".dta"}}
    same = all((bare / name).stat().st_size == size for name, size in sizes.items())

    print(f"tables: {', '.join(f'{name} {n:,} rows' for name, n in rows.items())}")
    print(
        "migkit export --format sav,dta (whole command: start-up, form compile, read, plan, write, "
        f"companions): {export_seconds:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in export_times)})"
    )
    print(
        f"bare pyreadstat write_sav + write_dta of the same final frames:  {bare_seconds:.2f} s  "
        f"(runs: {', '.join(f'{t:.2f}' for t in bare_times)})"
    )
    print(f"ratio: {export_seconds / bare_seconds:.2f} (target <= 1.5)")
    print(f"peak memory (largest child process): {peak_mb:,.0f} MB (target < 4,096 MB)")
    print(
        f"files: {', '.join(f'{n} {s / 1e6:.1f} MB' for n, s in sizes.items())}; same sizes as bare writes: "
        f"{same}"
    )
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
