"""Benchmark: `migkit ingest` on N simulated households, next to the bare lxml parse of the same files.

    .venv/bin/python bench/ingest.py [--n 20000] [--form FORM] [--workers W] [--keep DIR]

Simulates N households (toolkit.simulate, timed too) into `<uuid>/submission.xml` folders, then measures
1. the reference: read + lxml-parse every file, nothing else (the physical floor of any XML ingest),
   serial and with the same process pool ingest uses;
2. `ingest()` (files -> typed DataFrames, pool on when N >= POOL_MIN_FILES) and `write_tables` (Parquet).
Prints submissions/s for each and the ratio ingest / reference.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import tempfile
import time
from pathlib import Path

from lxml import etree

from toolkit import ingest as ingest_stage
from toolkit.simulate import simulate
from toolkit.submissions import POOL_MIN_FILES
from toolkit.xform import load_form

# A household questionnaire shaped like the survey's (cover, consent, roster with age/sex-driven skips and
# DK/refused sentinels, migration module per member, nested trips, calculations): ~60 fields, ~4 members
# per household.
HOUSEHOLD_MD = """
| survey |
| | type | name | label | relevant | constraint | calculation | repeat_count | required |
| | start | start | | | | | | |
| | end | end | | | | | | |
| | today | today | | | | | | |
| | deviceid | deviceid | | | | | | |
| | integer | id_stratum | Stratum | | . >= 1 and . <= 12 | | | yes |
| | integer | id_psu | PSU | | . >= 1 and . <= 400 | | | yes |
| | integer | id_hh_no | Household number | | . >= 1 and . <= 999 | | | yes |
| | calculate | id_hh_uid | | | | concat(${id_stratum},'-',${id_psu},'-',${id_hh_no}) | | |
| | select_one region | region | Region | | | | | yes |
| | select_one district | district | District | | | | | yes |
| | select_one yn | consent | Consent | | | | | yes |
| | begin_group | hh | Household | ${consent}='1' | | | | |
| | integer | hh_size | Members | | . >= 1 and . <= 12 | | | yes |
| | begin_repeat | hl | Member | | | | ${hh_size} | |
| | text | hl_name | Name | | | | | yes |
| | select_one sex | hl_sex | Sex | | | | | yes |
| | integer | hl_age | Age | | (. >= 0 and . <= 110) or . = -98 | | | yes |
| | select_one rel | hl_rel | Relation | | | | | yes |
| | select_one yndk | hl_school | Attends school | ${hl_age} >= 5 and ${hl_age} <= 24 | | | | |
| | select_one edu | hl_edu | Education | ${hl_age} >= 15 | | | | |
| | select_one yndk | hl_work | Worked last week | ${hl_age} >= 15 | | | | |
| | text | hl_occ | Occupation | ${hl_work}='1' | | | | |
| | decimal | hl_income | Monthly income | ${hl_work}='1' | (. >= 0 and . <= 1000000) or . = -98 or . = -99 | | | |
| | select_one yndk | hl_abroad | Lived abroad 3+ months | ${hl_age} >= 15 | | | | |
| | select_one country | hl_country | Country | ${hl_abroad}='1' | | | | |
| | integer | hl_year_left | Year left | ${hl_abroad}='1' | . >= 1990 and . <= 2026 | | | |
| | select_multiple reason | hl_reason | Reasons | ${hl_abroad}='1' | not((selected(.,'98') or selected(.,'99')) and count-selected(.)>1) | | | |
| | select_one doc | hl_doc | Document | ${hl_abroad}='1' | | | | |
| | integer | hl_n_trips | Trips | ${hl_abroad}='1' | . >= 0 and . <= 5 | | | |
| | begin_repeat | trip | Trip | ${hl_abroad}='1' | | | ${hl_n_trips} | |
| | select_one country | trip_country | Country | | | | | |
| | date | trip_start | Start | | . <= today() | | | |
| | integer | trip_months | Months | | . >= 1 and . <= 120 | | | |
| | end_repeat | | | | | | | |
| | select_one yndk | hl_remit | Sends money | ${hl_abroad}='1' | | | | |
| | decimal | hl_remit_amt | Amount | ${hl_remit}='1' | . >= 0 or . = -98 | | | |
| | select_one currency | hl_remit_cur | Currency | ${hl_remit}='1' | | | | |
| | calculate | hl_adult | | | | if(${hl_age} >= 18, 1, 0) | | |
| | end_repeat | | | | | | | |
| | calculate | n_adults | | | | sum(${hl_adult}) | | |
| | select_one dwelling | dwelling | Dwelling | | | | | |
| | integer | rooms | Rooms | | . >= 1 and . <= 20 | | | |
| | select_multiple assets | assets | Assets | | | | | |
| | decimal | hh_income | Household income | | . >= 0 or . = -98 or . = -99 | | | |
| | select_one yndk | hh_remit | Receives remittances | | | | | |
| | decimal | hh_remit_amt | Remittances | ${hh_remit}='1' | . >= 0 | | | |
| | end_group | | | | | | | |
| | geopoint | gps | GPS | | | | | |
| | select_one result | result | Result | | | | | yes |
| | text | comments | Comments | | | | | |
| choices |
| | list_name | name | label | region |
| | region | 1 | Chui | |
| | region | 2 | Osh | |
| | region | 3 | Jalal-Abad | |
| | district | 11 | Alamudun | 1 |
| | district | 12 | Sokuluk | 1 |
| | district | 21 | Kara-Suu | 2 |
| | district | 22 | Uzgen | 2 |
| | district | 31 | Suzak | 3 |
| | yn | 1 | Yes | |
| | yn | 2 | No | |
| | yndk | 1 | Yes | |
| | yndk | 2 | No | |
| | yndk | 98 | DK | |
| | yndk | 99 | Refused | |
| | sex | 1 | Male | |
| | sex | 2 | Female | |
| | rel | 1 | Head | |
| | rel | 2 | Spouse | |
| | rel | 3 | Child | |
| | rel | 4 | Parent | |
| | rel | 14 | Not related | |
| | rel | 98 | DK | |
| | edu | 0 | None | |
| | edu | 1 | Primary | |
| | edu | 2 | Secondary | |
| | edu | 3 | Tertiary | |
| | edu | 98 | DK | |
| | country | RUS | Russia | |
| | country | KAZ | Kazakhstan | |
| | country | TUR | Turkey | |
| | country | KOR | Korea | |
| | country | 96 | Other | |
| | reason | 1 | Work | |
| | reason | 2 | Study | |
| | reason | 3 | Family | |
| | reason | 96 | Other | |
| | reason | 98 | DK | |
| | reason | 99 | Refused | |
| | doc | 1 | Citizenship | |
| | doc | 2 | Residence permit | |
| | doc | 3 | Work permit | |
| | doc | 6 | None | |
| | doc | 98 | DK | |
| | currency | 643 | RUB | |
| | currency | 398 | KZT | |
| | currency | 840 | USD | |
| | dwelling | 1 | House | |
| | dwelling | 2 | Flat | |
| | assets | 1 | TV | |
| | assets | 2 | Fridge | |
| | assets | 3 | Car | |
| | assets | 4 | Computer | |
| | result | 1 | Completed | |
| | result | 2 | Refused | |
| settings |
| | form_id | version |
| | bench_household | 2026112701 |
"""


def _parse_files(paths: list[str]) -> int:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    for path in paths:
        etree.fromstring(Path(path).read_bytes(), parser)
    return len(paths)


def _bare_parse(paths: list[str], workers: int) -> float:
    started = time.perf_counter()
    if workers <= 1:
        _parse_files(paths)
    else:
        chunks = [paths[i : i + 250] for i in range(0, len(paths), 250)]
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            sum(pool.map(_parse_files, chunks))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument(
        "--form", type=Path, default=None, help="form to simulate (default: the built-in household form)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the simulated submissions in this folder"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="migkit-bench-"))
    try:
        form_path = args.form
        if form_path is None:
            form_path = work / "household.md"
            form_path.write_text(HOUSEHOLD_MD.strip() + "\n", encoding="utf-8")
        form = load_form(form_path)
        subs = args.keep or work / "subs"
        sim = simulate(form, args.n, subs, seed=1, workers=args.workers)
        rate = sim.stats["instances"] / sim.stats["seconds"]
        print(
            f"simulate: {args.n} households ({sim.stats['repeat_rows']} repeat rows) "
            f"in {sim.stats['seconds']:.1f} s "
            f"= {rate:,.0f} instances/s ({args.workers} workers)"
        )
        paths = sorted(str(p) for p in subs.rglob("submission.xml"))
        _parse_files(paths[:200])  # warm the page cache equally for both
        serial = _bare_parse(paths, 1)
        pooled = _bare_parse(paths, args.workers) if len(paths) >= POOL_MIN_FILES else serial
        started = time.perf_counter()
        result = ingest_stage.ingest([subs], form, workers=args.workers)
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        ingest_stage.write_tables(result, work / "data")
        write_s = time.perf_counter() - started
        n = len(paths)
        rows = sum(len(t) for t in result.tables.values())
        print(
            f"reference, bare lxml parse: serial {n / serial:,.0f} submissions/s; "
            f"{args.workers} workers {n / pooled:,.0f} submissions/s"
        )
        print(
            f"ingest(): {n / ingest_s:,.0f} submissions/s ({rows:,} rows in {len(result.tables)} tables, "
            f"{ingest_s:.1f} s); write_tables: {write_s:.1f} s"
        )
        print(
            f"ratio ingest / bare parse: {(n / ingest_s) / (n / pooled):.2f} (same workers), "
            f"{(n / ingest_s) / (n / serial):.2f} (vs serial parse)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
