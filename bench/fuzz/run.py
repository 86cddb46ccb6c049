"""Long fuzzing runs of one parser of untrusted input with atheris (libFuzzer for Python), coverage-guided.

    .venv/bin/pip install atheris        # or: pip install -e ".[fuzz]"
    nice .venv/bin/python bench/fuzz/run.py TARGET [--seconds 120] [--corpus DIR] [--stop-on-crash]

TARGET is one of bench/fuzz/targets.py: manifest, submission_xml, central_zip, xlsform, margins_csv, survey_toml.
migkit's modules are instrumented (coverage guides the mutations); the corpus starts from the target's seeds and
keeps what libFuzzer finds (default bench/out/fuzz/<target>/corpus). An exception other than ToolkitError is a crash:
by default each new crash site (exception type and migkit line) is saved under bench/out/fuzz/<target>/crashes/ with
the input and its traceback, and the run goes on; with --stop-on-crash libFuzzer stops at the first one. At the end the
script prints executions and crash sites; libFuzzer's own `Done N runs` line says the same.
The short version of the same checks runs in `make test` (tests/test_fuzz.py, hypothesis).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target")
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--stop-on-crash", action="store_true")
    args, libfuzzer_args = parser.parse_known_args()
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: .venv/bin/pip install atheris (needs a Linux x86-64 wheel or clang)")

    with atheris.instrument_imports(include=["toolkit"]):
        import toolkit.crypto
        import toolkit.forms
        import toolkit.ingest
        import toolkit.pipeline
        import toolkit.submissions
        import toolkit.validate
        import toolkit.weights
        import toolkit.xform  # noqa: F401 (imported to be instrumented)
    from bench.fuzz.targets import TARGETS, seeds

    if args.target not in TARGETS:
        sys.exit(f"unknown target {args.target}; one of {', '.join(TARGETS)}")
    target = TARGETS[args.target]
    out = REPO / "bench" / "out" / "fuzz" / args.target
    corpus = args.corpus or out / "corpus"
    crashes = out / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    for seed in seeds(args.target):
        (corpus / f"seed-{hashlib.sha256(seed).hexdigest()[:12]}").write_bytes(seed)
    target(seeds(args.target)[0])  # compile the form, make the key: not counted as fuzzing time

    counts = {"executions": 0, "crashes": 0}
    sites: dict[str, int] = {}
    started = time.monotonic()

    def report() -> None:
        seconds = time.monotonic() - started
        print(
            f"\n{args.target}: {counts['executions']} executions in {seconds:.0f} s "
            f"({counts['executions'] / max(seconds, 1e-9):.0f}/s), {counts['crashes']} crashing inputs, "
            f"{len(sites)} distinct crash sites",
            flush=True,
        )
        for site, n in sorted(sites.items(), key=lambda kv: -kv[1]):
            print(f"  {n:6d}  {site}", flush=True)

    def one_input(data: bytes) -> None:
        counts["executions"] += 1
        if counts["executions"] % 2000 == 0:
            report()
        if args.stop_on_crash:
            target(data)
            return
        try:
            target(data)
        except Exception as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            inside = [f for f in frames if "/toolkit/" in f.filename] or frames
            site = f"{type(exc).__name__} at {Path(inside[-1].filename).relative_to(REPO)}:{inside[-1].lineno}"
            counts["crashes"] += 1
            if site not in sites:
                name = hashlib.sha256(site.encode()).hexdigest()[:12]
                (crashes / f"{name}.input").write_bytes(data)
                (crashes / f"{name}.txt").write_text(site + "\n\n" + traceback.format_exc(), encoding="utf-8")
                print(f"new crash site: {site} ({crashes / name}.input)", flush=True)
            sites[site] = sites.get(site, 0) + 1

    atexit.register(report)
    argv = [sys.argv[0], str(corpus), f"-max_total_time={args.seconds}", "-rss_limit_mb=4096", *libfuzzer_args]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()  # never returns: libFuzzer ends the process (its last lines: `Done N runs in S second(s)`)


if __name__ == "__main__":
    main()
