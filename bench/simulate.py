"""Benchmark: `migkit simulate` throughput on the three templates, and (--check) that its data validate clean.

    .venv/bin/python bench/simulate.py [--n 1000] [--check] [--check-n 100000] [--forms household,women]
                                       [--workers 2] [--seed 1] [--keep DIR]

1. Throughput, per template: `n` instances drawn in one process the way simulate draws them (every draw checked
   with the validator, drawn again until Collect could finalise it), next to the reference measured in the same
   run: the same instances drawn without that check (what the generator alone costs). Then `simulate` writing
   `n` submission folders with `--workers` processes (end to end, disk included).
2. --check: simulate `--check-n` households of each template into folders and run `migkit validate` (library,
   method auto: columns where the form allows) on them; prints the findings by code, which must be none, and
   the instances the generator had to draw again (not finalisable at first).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from toolkit.simulate import simulate  # noqa: E402
from toolkit.simulate.generator import Generator  # noqa: E402
from toolkit.validate import validate  # noqa: E402
from toolkit.xform import load_form  # noqa: E402

TEMPLATES = ("household", "women", "domestic_workers")


def _drawn_per_second(generator: Generator, n: int, seed: int) -> float:
    started = time.perf_counter()
    for index in range(n):
        generator.instance(index, seed)
    return n / (time.perf_counter() - started)


def throughput(form_path: Path, n: int, seed: int, workers: int, work: Path) -> None:
    model = load_form(form_path)
    checked = _drawn_per_second(Generator(model), n, seed)
    unchecked = _drawn_per_second(Generator(model, check=False), n, seed)
    out = work / f"{form_path.stem}-throughput"
    shutil.rmtree(out, ignore_errors=True)
    result = simulate(model, n, out, seed=seed, workers=workers)
    print(
        f"{form_path.stem}: {checked:,.1f} instances/s drawn and checked in one process "
        f"(reference, the generator without the check: {unchecked:,.1f}/s, ratio {checked / unchecked:.2f}); "
        f"simulate to disk with {workers} workers: {result.stats['instances_per_second']:,.1f}/s, "
        f"{result.stats['redrawn']} of {n} drawn again"
    )


def check(form_path: Path, n: int, seed: int, workers: int, work: Path) -> int:
    out = work / f"{form_path.stem}-check"
    shutil.rmtree(out, ignore_errors=True)
    model = load_form(form_path)
    started = time.perf_counter()
    result = simulate(model, n, out, seed=seed, workers=workers)
    simulated = time.perf_counter() - started
    started = time.perf_counter()
    report = validate(out, form_path)
    validated = time.perf_counter() - started
    findings = report.stats["findings"]
    print(
        f"{form_path.stem}: {n:,} households simulated in {simulated:,.0f} s "
        f"({result.stats['redrawn']:,} drawn again, warnings: {sorted({i.code for i in result.issues})}); "
        f"validate ({report.stats.get('method')}) in {validated:,.0f} s: {findings} findings "
        f"{report.stats['by_code']}"
    )
    return findings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="instances for the throughput figures")
    parser.add_argument("--check", action="store_true", help="validate --check-n households of each template")
    parser.add_argument("--check-n", type=int, default=100_000)
    parser.add_argument("--forms", default=",".join(TEMPLATES), help="templates (names in forms/)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-simulate-"))
    work.mkdir(parents=True, exist_ok=True)
    forms = [REPO / "forms" / f"{name}.xlsx" for name in args.forms.split(",")]
    try:
        for form in forms:
            throughput(form, args.n, args.seed, args.workers, work)
        if args.check:
            total = sum(check(form, args.check_n, args.seed, args.workers, work) for form in forms)
            if total:
                raise SystemExit(f"{total} findings in simulated data: simulate produced what Collect rejects")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
