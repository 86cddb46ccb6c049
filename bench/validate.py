"""Benchmark: `migkit validate` on N simulated households, next to JavaRosa's own throughput in the same run.

    .venv/bin/python bench/validate.py [--n 100000] [--jr-sample 2000] [--keep DIR] [--seed 1]

1. Simulates N households of bench/validate_form.md (roster of 1-12 members with skip logic, constraints,
   choice filters and calculations; toolkit.simulate) into `<uuid>/submission.xml` folders, and injects faults
   into ~5% of them (answers in non-relevant questions, blanks in required ones, out-of-range values, unknown
   choices, wrong stored calculations), so that the run has findings to report.
2. Times `migkit validate FOLDER --form FORM --json` end to end (XML parse through ingest, column-wise
   validation), and `migkit validate DATA --form FORM --json` on the DATA folder `migkit ingest` wrote
   (the tables path the pipeline uses). Each command runs in its own process; wall time and that process
   tree's peak resident memory (the largest single process, from getrusage) are reported.
3. The reference: JavaRosa (pyxform's ODK_Validate.jar, the engine of ODK Collect) loads and checks some
   of the same instances in one JVM (tests/java/JrCheck.java: populate the form, recompute, relevance,
   required, constraints), JVM start and form parse excluded, after one warm-up pass.
Prints instances/s for each, and the ratio to JavaRosa.
4. The three questionnaire templates (forms/*.xlsx: household, women, domestic workers): for each,
   `--template-n` simulated submissions (no injected faults), judged by `validate_input()` in-process
   (on the folder of XMLs, and on the DATA folder `migkit ingest` wrote) and by JavaRosa in the same run,
   as in 3; prints the judge rates (submissions/s) and their ratios (target >= 50x on each), which
   evaluation path migkit took and how many expressions it ran per instance.
   `--template-n 0` skips this part, `--templates-only` skips 1-3.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.java.jrcheck import javarosa_throughput  # noqa: E402
from toolkit.forms import compile_form as compile_xlsform  # noqa: E402
from toolkit.simulate import simulate  # noqa: E402
from toolkit.validate import compile_form, validate_input  # noqa: E402
from toolkit.xform import load_form  # noqa: E402

FORM = REPO / "bench" / "validate_form.md"
TEMPLATES = sorted((REPO / "forms").glob("*.xlsx"))
MIGKIT = [sys.executable, "-m", "toolkit"]

# (pattern, replacement) faults; each injected instance gets one of them where it applies.
FAULTS = [
    (re.compile(r"<hl_name>[^<]*</hl_name>"), "<hl_name/>"),  # required blank
    (re.compile(r"<hl_age>\d+</hl_age>"), "<hl_age>140</hl_age>"),  # out of range
    (re.compile(r"<hl_sex>\d</hl_sex>"), "<hl_sex>7</hl_sex>"),  # unknown choice
    (
        re.compile(r"<hl_country/>"),
        "<hl_country>RU</hl_country>",
    ),  # answer where not relevant (if not abroad)
    (re.compile(r"<n_adults>\d+</n_adults>"), "<n_adults>99</n_adults>"),  # wrong stored calculation
    (re.compile(r"<rooms>\d+</rooms>"), "<rooms>0</rooms>"),  # constraint
]


def _inject(folder: Path, rate: float, seed: int) -> int:
    rng = random.Random(seed)
    injected = 0
    for path in sorted(folder.glob("*/submission.xml")):
        if rng.random() >= rate:
            continue
        text = path.read_text(encoding="utf-8")
        pattern, replacement = rng.choice(FAULTS)
        changed = pattern.sub(replacement, text, count=1)
        if changed != text:
            path.write_text(changed, encoding="utf-8")
            injected += 1
    return injected


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run a command in a wrapper process; returns (seconds, peak RSS MiB of the largest process, stdout)."""
    wrapper = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True)\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "sys.stderr.buffer.write(done.stderr)\n"
        "print(json.dumps({'seconds': dt, 'rss': rss, 'rc': done.returncode}))\n"
        "sys.stdout.write(done.stdout.decode('utf-8'))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True)
    head, _, rest = out.stdout.partition("\n")
    stats = json.loads(head)
    if stats["rc"] not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed ({stats['rc']}): {out.stderr[-2000:]}")
    return stats["seconds"], stats["rss"], rest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument(
        "--jr-sample", type=int, default=2000, help="instances JavaRosa checks (a sample of N)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--form", type=Path, default=FORM, help="the form (default bench/validate_form.md)")
    parser.add_argument(
        "--template-n", type=int, default=1000, help="submissions simulated per template (0: skip the templates)"
    )
    parser.add_argument(
        "--template-jr-sample", type=int, default=300, help="of which JavaRosa checks (per template)"
    )
    parser.add_argument("--templates-only", action="store_true", help="only measure the templates")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-validate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not args.templates_only:
            _bench_form(args, work)
        if args.template_n > 0:
            _bench_templates(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _bench_templates(args: argparse.Namespace, work: Path) -> None:
    """Judge rate of validate_input() vs JavaRosa on simulated submissions of each template."""
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    rows = []
    for template in TEMPLATES:
        subs = work / f"template-{template.stem}"
        model = load_form(template)
        if not any(subs.glob("*/submission.xml")):
            t = time.perf_counter()
            simulate(model, args.template_n, subs, seed=args.seed, media_dir=template.parent)
            print(f"{template.stem}: simulated {args.template_n} submissions in {time.perf_counter() - t:.1f} s")
        files = sorted(subs.glob("*/submission.xml"))
        form = compile_form(model, media_dir=template.parent)
        t = time.perf_counter()
        result = validate_input(form, subs)
        seconds = time.perf_counter() - t
        data = work / f"template-{template.stem}-DATA"
        shutil.rmtree(data, ignore_errors=True)
        _timed([*MIGKIT, "ingest", str(subs), "--form", str(template), "--out", str(data)])
        t = time.perf_counter()
        result_data = validate_input(form, data)
        seconds_data = time.perf_counter() - t
        assert result_data.stats["by_code"] == result.stats["by_code"]
        form_xml = work / f"{template.stem}.xml"
        compiled = compile_xlsform(template, validate=False)
        assert compiled.xform is not None
        form_xml.write_text(compiled.xform, encoding="utf-8")
        jr = javarosa_throughput(form_xml, files[: args.template_jr_sample], rounds=1, media=template.parent)
        rate, rate_data = len(files) / seconds, len(files) / seconds_data
        rows.append((template.stem, rate, rate_data, jr))
        print(
            f"{template.stem}: migkit validate_input() FOLDER {rate:,.0f} submissions/s ({len(files)} in "
            f"{seconds:.2f} s), DATA {rate_data:,.0f} submissions/s ({seconds_data:.2f} s), "
            f"method={result.stats['method']}, expressions per instance="
            f"{len(result.stats.get('per_instance', ()))}, findings={result.stats['findings']}; "
            f"JavaRosa {jr:,.0f} submissions/s ({min(len(files), args.template_jr_sample)} instances); "
            f"ratio FOLDER {rate / jr:.1f}x, DATA {rate_data / jr:.1f}x (target >= 50x)"
        )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} after the templates")
    print("FOLDER: XML parse, ingest and judging (as JavaRosa loads each XML); DATA: judging a DATA folder")
    print("template           FOLDER/s    DATA/s  JavaRosa/s  FOLDER ratio  DATA ratio")
    for name, rate, rate_data, jr in rows:
        print(
            f"{name:<18} {rate:>8,.0f} {rate_data:>9,.0f} {jr:>11,.0f} {rate / jr:>12.1f}x "
            f"{rate_data / jr:>10.1f}x"
        )


def _bench_form(args: argparse.Namespace, work: Path) -> None:
    """Parts 1-3: the benchmark form with injected faults, whole commands and in-process, vs JavaRosa."""
    form_path = args.form
    subs, data = work / "subs", work / "DATA"
    model = load_form(form_path)
    if not any(subs.glob("*/submission.xml")):
        t = time.perf_counter()
        simulate(model, args.n, subs, seed=args.seed)
        injected = _inject(subs, 0.05, args.seed)
        print(
            f"simulated {args.n} households in {time.perf_counter() - t:.1f} s; "
            f"faults injected in {injected}"
        )
    files = sorted(subs.glob("*/submission.xml"))
    n = len(files)
    members = sum(f.read_text(encoding="utf-8").count("<hl>") for f in files[:2000]) / min(n, 2000)
    print(
        f"{n} submissions, {members:.1f} roster members per household on average; {os.cpu_count()} cores"
    )

    seconds_xml, rss_xml, out_xml = _timed(
        [*MIGKIT, "validate", str(subs), "--form", str(form_path), "--json"]
    )
    result = json.loads(out_xml)
    print(
        f"migkit validate FOLDER: {n / seconds_xml:,.0f} instances/s ({seconds_xml:.1f} s, peak RSS "
        f"{rss_xml:,.0f} MiB), method={result['stats'].get('method')}, "
        f"findings={result['stats']['findings']}, "
        f"by code {result['stats']['by_code']}"
    )

    shutil.rmtree(data, ignore_errors=True)
    seconds_ingest, rss_ingest, _ = _timed(
        [*MIGKIT, "ingest", str(subs), "--form", str(form_path), "--out", str(data)]
    )
    print(f"migkit ingest (not part of validate): {seconds_ingest:.1f} s, peak RSS {rss_ingest:,.0f} MiB")
    if not (data / "tables.json").is_file():
        raise RuntimeError("migkit ingest wrote no DATA folder")
    seconds_data, rss_data, out_data = _timed(
        [*MIGKIT, "validate", str(data), "--form", str(form_path), "--json"]
    )
    result_data = json.loads(out_data)
    same = result_data["stats"]["by_code"] == result["stats"]["by_code"]
    print(
        f"migkit validate DATA:   {n / seconds_data:,.0f} instances/s ({seconds_data:.1f} s, peak RSS "
        f"{rss_data:,.0f} MiB), method={result_data['stats'].get('method')}, "
        f"same findings as FOLDER: {same}"
    )

    # In-process, as JavaRosa is measured: interpreter start, imports and form compile excluded.
    form = compile_form(model)
    t = time.perf_counter()
    in_data = validate_input(form, data)
    seconds_lib = time.perf_counter() - t
    t = time.perf_counter()
    in_xml = validate_input(form, subs)
    assert in_xml.stats["findings"] == in_data.stats["findings"]
    seconds_lib_xml = time.perf_counter() - t
    print(
        f"validate_input() in-process: DATA {n / seconds_lib:,.0f} instances/s ({seconds_lib:.1f} s, "
        f"{in_data.stats['method']}), FOLDER {n / seconds_lib_xml:,.0f} instances/s "
        f"({seconds_lib_xml:.1f} s)"
    )

    sample = files[: args.jr_sample]
    form_xml = work / "form.xml"
    compiled = compile_xlsform(form_path, validate=False)
    assert compiled.xform is not None
    form_xml.write_text(compiled.xform, encoding="utf-8")
    jr = javarosa_throughput(form_xml, sample, rounds=1, media=form_path.resolve().parent)
    print(
        f"JavaRosa (ODK_Validate.jar, {len(sample)} instances, JVM start and form parse excluded): "
        f"{jr:,.0f} instances/s"
    )
    print(
        f"ratio migkit/JavaRosa, whole command: FOLDER {n / seconds_xml / jr:.1f}x, DATA "
        f"{n / seconds_data / jr:.1f}x; in-process like JavaRosa's measure: "
        f"DATA {n / seconds_lib / jr:.1f}x, "
        f"FOLDER {n / seconds_lib_xml / jr:.1f}x (target >= 20x)"
    )
    print(
        f"N={n}: migkit validate FOLDER {seconds_xml:.1f} s, DATA {seconds_data:.1f} s (target <= 60 s); "
        f"peak RSS {max(rss_xml, rss_data):,.0f} MiB (target < 4096)"
    )


if __name__ == "__main__":
    main()
