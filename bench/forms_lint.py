"""Benchmark: `migkit forms lint` on a large synthetic XLSForm (N questions in nested repeats, 6 languages,
a 250-country list), against pyxform's own XLSForm -> XForm conversion of the same file (the reference).

lint reads the workbook with pyxform's readers and then compiles it with pyxform for structure errors, so its
time is reported as a whole and without the pyxform compile step (`structure=False`). Target: the rules cost
less than the pyxform conversion, so linting stays interactive on full questionnaires.

    .venv/bin/python bench/forms_lint.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from openpyxl import Workbook
from pyxform.xls2xform import convert

from toolkit.forms import lint_form

LANGUAGES = ("English (en)", "Russian (ru)", "Kazakh (kk)", "Kyrgyz (ky)", "Tajik (tg)", "Uzbek (uz)")


def make_form(path: Path, n: int) -> None:
    """N questions: blocks of a select_one, a select_multiple, an integer with a constraint and a relevant, a
    calculation; every 50 questions a repeat (every other one nested)."""
    book = Workbook()
    survey = book.active
    survey.title = "survey"
    survey.append(
        ["type", "name", *(f"label::{lang}" for lang in LANGUAGES), "relevant", "constraint", "calculation"]
    )
    labels = [f"Q {lang}" for lang in LANGUAGES]
    open_repeats = 0
    for i in range(0, n, 4):
        if i % 50 == 0:
            if open_repeats == 2 or (open_repeats == 1 and i % 100 == 0):
                survey.append(["end_repeat", ""])
                open_repeats -= 1
            survey.append(["begin_repeat", f"r{i}", *labels])
            open_repeats += 1
        survey.append(["select_one yn", f"q{i}", *labels, "", "", ""])
        survey.append(["select_multiple uses", f"q{i + 1}", *labels, f"${{q{i}}} = '1'", "", ""])
        survey.append(
            [
                "integer",
                f"q{i + 2}",
                *labels,
                f"selected(${{q{i + 1}}}, '2')",
                "(. >= 0 and . <= 120) or . = -98",
                "",
            ]
        )
        survey.append(
            [
                "calculate",
                f"q{i + 3}",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"if(${{q{i + 2}}} >= 0, ${{q{i + 2}}} * 12, '')",
            ]
        )
    for _ in range(open_repeats):
        survey.append(["end_repeat", ""])
    choices = book.create_sheet("choices")
    choices.append(["list_name", "name", *(f"label::{lang}" for lang in LANGUAGES), "iso_num"])
    for code, label in (("1", "Yes"), ("2", "No"), ("98", "DK")):
        choices.append(["yn", code, *(f"{label} {lang}" for lang in LANGUAGES)])
    for code in range(1, 14):
        choices.append(["uses", str(code), *(f"use {code} {lang}" for lang in LANGUAGES)])
    for code in range(250):
        choices.append(
            ["countries", f"C{code:02d}", *(f"country {code} {lang}" for lang in LANGUAGES), 100 + code]
        )
    survey.append(["select_one countries", "cob", *labels])
    settings = book.create_sheet("settings")
    settings.append(["form_id", "version", "public_key"])
    settings.append(["bench", "1", "MIIB"])
    book.save(path)


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.xlsx"
        make_form(path, n)
        report = lint_form(path)
        assert report.valid, report.flatten()[:3]
        reference = best_of(3, lambda: convert(xlsform=path, validate=False))
        whole = best_of(3, lambda: lint_form(path))
        rules = best_of(3, lambda: lint_form(path, structure=False))
    print(f"{n} questions, {report.stats['expressions']} expressions, {report.stats['choice_lists']} lists")
    print(f"pyxform convert (reference): {reference:.2f} s")
    print(f"forms lint (with pyxform structure check): {whole:.2f} s  ratio {whole / reference:.2f}")
    print(f"forms lint rules only (structure=False):    {rules:.2f} s  ratio {rules / reference:.2f}")
    print(f"throughput (rules only): {n / rules:,.0f} questions/s")


if __name__ == "__main__":
    main()
