"""Every indicator of the example survey against R `survey` (Lumley), run for real as an independent
implementation: the same analysis data (what the stage hands to the estimator: weight, design, y, x, domain),
then svyciprop / svymean / svyratio / svytotal / svyquantile on each domain's subset design, compared for the
estimate, SE and interval to 1e-8.

R functions matched (docs/indicators.md): proportions with ci = "logit" -> svyciprop(method = "logit", df = design
df); ci = "korn-graubard" -> svyciprop(method = "beta"); means -> svymean + confint(df); ratios -> svyratio +
confint(df); totals -> svytotal + confint(df); medians and quantiles -> svyquantile(interval.type = "mean", qrule =
"math", df), i.e. Woodruff's interval (R survey 4.x defaults). Both variance methods: Taylor (svydesign with strata
and PSUs) and the JKn replicate weights of the example design (svrepdesign with the coefficients and centring the
weighting recorded)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import require_tool
from toolkit.indicators import Catalogue, IndicatorsResult, analysis_frames, compute_indicators
from toolkit.xform import load_form

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "survey"
CATALOGUE = ROOT / "indicators" / "ncamig.toml"
TOLERANCE = 1e-8


def build_example_data(out: Path) -> Path:
    """decrypt -> ingest -> weights of the bundled example survey (the stages `migkit run` chains)."""
    from toolkit.crypto import decrypt, load_private_key, read_passphrase_file
    from toolkit.ingest import ingest, write_tables
    from toolkit.weights import compute_weights

    key = load_private_key(
        EXAMPLE / "keys" / "private.pem", passphrase=read_passphrase_file(EXAMPLE / "keys" / "passphrase.txt")
    )
    decrypt([EXAMPLE / "submissions"], key=key, out_dir=out / "submissions", workers=1)
    form = load_form(ROOT / "forms" / "household.xlsx")
    result = ingest([out / "submissions"], form, media_dir=ROOT / "forms", workers=1)
    write_tables(result, out / "data")
    compute_weights(out / "data", EXAMPLE / "design.toml", out_dir=out / "data")
    return out / "data"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_example_data(tmp_path_factory.mktemp("example"))


def r_script(
    frames: dict[str, pd.DataFrame],
    catalogue: Catalogue,
    folder: Path,
    *,
    replicates: bool,
    coefficients: list[float],
    mse: bool,
) -> str:
    """One R script that prints `id|column|domain|value|est|se|low|high` for every estimate."""
    lines = [
        "suppressPackageStartupMessages(library(survey))",
        "options(survey.lonely.psu = 'fail')",
        "say <- function(key, est, se, ci) cat(sprintf('%s|%.17g|%.17g|%.17g|%.17g\\n', key, est, se, ci[1], ci[2]))",
        "safe <- function(expr) tryCatch(expr, error = function(e) NULL)",
    ]
    for entry in catalogue.indicators:
        frame = frames.get(entry.id)
        if frame is None:
            continue
        names = {c: f"v{i}" for i, c in enumerate(frame.columns)}
        path = folder / f"{entry.id}.csv"
        frame.rename(columns=names).to_csv(path, index=False)
        classes = ", ".join(
            f'{names[c]} = "character"' for c in frame.columns if c in ("strata", "psu") or c.startswith("d:")
        )
        lines.append(f'd <- read.csv("{path}", colClasses = c({classes}))')
        lines.append(
            f"full <- svydesign(ids = ~{names['psu']}, strata = ~{names['strata']}, "
            f"weights = ~{names['weight']}, data = d, nest = TRUE)"
        )
        # The design's df: PSUs minus strata of the whole household sample (R's degf() would leave out PSUs whose
        # rows all have weight 0, e.g. PSUs without return migrants: a domain keeps the design's df, as Stata's subpop).
        lines.append(
            f"DF <- length(unique(paste(d${names['strata']}, d${names['psu']}))) - length(unique(d${names['strata']}))"
        )
        if replicates:
            reps = [names[c] for c in frame.columns if c.startswith("rep_")]
            lines.append(
                f"des <- svrepdesign(data = d, weights = ~{names['weight']}, repweights = d[, c("
                + ", ".join(f'"{r}"' for r in reps)
                + ")], type = 'JKn', scale = 1, rscales = c("
                + ", ".join(repr(float(c)) for c in coefficients)
                + f"), mse = {'TRUE' if mse else 'FALSE'}, combined.weights = TRUE)"
            )
        else:
            lines.append("des <- full")
        x = names.get("x")
        for column in (c for c in frame.columns if c == "y" or c.startswith("y:")):
            y = names[column]
            domains = [("all", "all", "TRUE")]
            for domain in entry.domains:
                dv = names[f"d:{domain}"]
                for value in sorted(frame[f"d:{domain}"].dropna().unique()):
                    domains.append((domain, value, f'!is.na(d${dv}) & d${dv} == "{value}"'))
            for domain, value, condition in domains:
                key = f"{entry.id}|{column}|{domain}|{value}"
                keep = f"!is.na(d${y})" + (f" & !is.na(d${x})" if x else "")
                lines.append(f"s <- safe(subset(des, {keep} & {condition}))")
                lines.append("if (!is.null(s) && nrow(s) > 0) {")
                if entry.statistic in ("proportion", "distribution", "shares"):
                    # Our logit interval is the delta method on logit(p): R's "xlogit". Under Taylor linearisation R's
                    # "logit" (svyglm) is the same number; under replicate weights svyglm replicates logit(p) itself.
                    method = "beta" if entry.ci == "korn-graubard" else ("xlogit" if replicates else "logit")
                    lines.append(f"  m <- svymean(~{y}, s); p <- coef(m)[1]")
                    lines.append(
                        f"  r <- if (p > 1e-12 && p < 1 - 1e-12 && SE(m) > 1e-12) safe(suppressWarnings(svyciprop(~{y}, s, "
                        f"method = '{method}', df = DF))) else NULL"
                    )
                    lines.append(f"  say('{key}', p, SE(m), if (is.null(r)) c(NA, NA) else attr(r, 'ci'))")
                elif entry.statistic == "mean":
                    lines.append(f"  m <- svymean(~{y}, s); say('{key}', coef(m), SE(m), confint(m, df = DF))")
                elif entry.statistic == "total":
                    lines.append(f"  m <- svytotal(~{y}, s); say('{key}', coef(m), SE(m), confint(m, df = DF))")
                elif entry.statistic == "ratio":
                    lines.append(f"  m <- svyratio(~{y}, ~{x}, s); say('{key}', coef(m), SE(m), confint(m, df = DF))")
                else:
                    lines.append(f"  q <- svyquantile(~{y}, s, quantiles = {entry.quantile}, ci = TRUE, df = DF)[[1]]")
                    lines.append(f"  say('{key}', q[1, 1], q[1, 4], q[1, 2:3])")
                lines.append("}")
    return "\n".join(lines) + "\n"


def run_r(script: str, folder: Path) -> dict[str, tuple[float, ...]]:
    rscript = require_tool("Rscript", "r-cran-survey")
    path = folder / "indicators.R"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run([rscript, "--vanilla", str(path)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"R failed (is r-cran-survey installed? make test installs it):\n{done.stderr[-3000:]}")
    values = {}
    for line in done.stdout.splitlines():
        *key, est, se, low, high = line.split("|")
        values["|".join(key)] = tuple(float("nan") if v in ("NA", "NaN") else float(v) for v in (est, se, low, high))
    return values


def close(mine: float, theirs: float) -> bool:
    if math.isnan(theirs):
        return True  # R has no value here (e.g. a single case); ours is checked by the unit tests
    return abs(mine - theirs) <= TOLERANCE * max(1.0, abs(theirs))


@pytest.mark.parametrize("variance", ["taylor", "design"])
def test_every_indicator_matches_r(example: Path, tmp_path: Path, variance: str) -> None:
    catalogue = Catalogue.from_file(CATALOGUE)
    form = load_form(ROOT / "forms" / "household.xlsx")
    result: IndicatorsResult = compute_indicators(example, catalogue, form=form, variance=variance)
    frames = analysis_frames(example, catalogue, form=form)
    report = json.loads((example / "weights-report.json").read_text(encoding="utf-8"))
    coefficients = report["replicates"]["coefficients"]
    # centred as the weighting step recorded: on the full-sample estimate (R mse = TRUE) or the replicates' mean
    mse = not report["replicates"].get("centre_on_mean", False)
    replicates = variance == "design"
    script = r_script(frames, catalogue, tmp_path, replicates=replicates, coefficients=coefficients, mse=mse)
    expected = run_r(script, tmp_path)
    computed = [s.id for s in result.indicators if s.status == "ok"]
    assert len(computed) >= 20, [s for s in result.indicators if s.status != "ok"]
    compared = 0
    for row in result.rows:
        column = "y" if row.category == "" and f"{row.indicator}|y|all|all" in expected else f"y:{row.category}"
        key = f"{row.indicator}|{column}|{row.domain}|{row.domain_value}"
        if row.n == 0:
            assert key not in expected or math.isnan(expected[key][0]) or "empty" in row.flags
            continue
        assert key in expected, f"R has no value for {key}"
        est, se, low, high = expected[key]
        assert close(row.estimate, est), (key, row.estimate, est)
        assert close(row.se, se), (key, row.se, se)
        # At p = 0 or 1 R has no interval (ours is Clopper-Pearson; see test_indicators.py).
        degenerate = row.ci_method in ("logit", "korn-graubard") and (row.estimate in (0.0, 1.0) or row.se == 0)
        if not degenerate:
            assert close(row.ci_low, low), (key, row.ci_low, low)
            assert close(row.ci_high, high), (key, row.ci_high, high)
        compared += 1
    assert compared > 100
    # every statistic of the catalogue was compared
    assert {r.statistic.split()[0] for r in result.rows} >= {
        "proportion",
        "mean",
        "median",
        "quantile",
        "ratio",
        "total",
        "distribution",
        "shares",
    }
