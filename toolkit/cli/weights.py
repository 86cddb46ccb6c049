"""`migkit weights DATA`, `migkit weights rake TABLE` and `migkit estimate TABLE`."""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from toolkit.cli import app
from toolkit.cli._common import JsonOption, guarded, out, progress_bar, shown, usage_error
from toolkit.cli.render import fields_of, out_option, print_issues, render
from toolkit.errors import Issue

# Stage modules (pandas, pyxform, openpyxl, lxml ...) are imported inside the commands that use them: every
# migkit command, `--help` included, imports this module, so top-level imports would slow each start-up.
if TYPE_CHECKING:
    from toolkit.estimate import EstimateResult
    from toolkit.weights import RakeFileResult, WeightResult


class _RunByDefault(TyperGroup):
    """`migkit weights DATA ...` runs the hidden `run` command; `migkit weights rake ...` the rake command."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


weights_app = typer.Typer(
    cls=_RunByDefault,
    help="Survey weights: `migkit weights DATA --design design.toml` runs the full chain; "
    "`migkit weights rake "
    "TABLE ...` rakes any table.",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")


class OnNonConvergence(StrEnum):
    error = "error"
    warn = "warn"


class RepMethod(StrEnum):
    jkn = "jkn"
    jk1 = "jk1"
    bootstrap = "bootstrap"
    brr = "brr"


class LonelyPsu(StrEnum):
    error = "error"
    adjust = "adjust"
    average = "average"
    certainty = "certainty"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if math.isfinite(value) else "nan"
    return str(value)


def _summary_table(title: str, rows: list[tuple[str, dict[str, Any]]]) -> Table:
    table = Table(title=title)
    for col in (
        "step",
        "n",
        "sum",
        "min",
        "median",
        "max",
        "max/min",
        "CV",
        "deff_w",
        "n_eff",
        "factor min–max",
    ):
        table.add_column(col, justify="right" if col != "step" else "left", overflow="fold")
    for name, s in rows:
        f = s.get("factor")
        table.add_row(
            shown(name),
            _fmt(s.get("n")),
            _fmt(s.get("sum")),
            _fmt(s.get("min")),
            _fmt(s.get("median")),
            _fmt(s.get("max")),
            _fmt(s.get("max_min_ratio")),
            _fmt(s.get("cv")),
            _fmt(s.get("deff_kish")),
            _fmt(s.get("n_eff")),
            f"{f['min']:.3g}–{f['max']:.3g}" if f else "",
        )
    return table


def _show_weights(result: WeightResult) -> None:
    out.print(_summary_table("Weight diagnostics after every step", [(s["step"], s["summary"]) for s in result.steps]))
    for s in result.steps:
        if "margins" in s:
            worst = max((m["rel_error"] for m in s["margins"]), default=0.0)
            out.print(
                f"{s['step']}: {s.get('method')} in {s.get('iterations')} iteration(s), "
                f"converged={s.get('converged')}, max relative margin error {worst:.2e}"
            )
        if s["step"] == "nonresponse" and s.get("collapsed"):
            out.print(f"nonresponse classes collapsed: {shown(s['collapsed'])}")
    out.print(
        f"wrote {shown(result.household_table)}" + (f", {shown(result.person_table)}" if result.person_table else "")
    )
    out.print(f"report {shown(result.report)}, histogram {shown(result.histogram)}")
    if result.replicates:
        out.print(
            f"replicate weights: {result.replicates['n']} × {result.replicates['method']} "
            f"({shown(result.replicates['columns'])}); estimate with: {shown(result.replicates['estimate'])}"
        )
    print_issues(result.issues)


def _refused(command: str, issues: tuple[Issue, ...], as_json: bool) -> int:
    """A weighting the data do not allow (`WeightingError`): its problems, exit code 1."""
    return render(command, {}, issues, ok=False, as_json=as_json, people=lambda: print_issues(issues))


@weights_app.command("run")
@guarded
def weights(
    data: Annotated[Path, typer.Argument(help="The DATA folder written by `migkit ingest`.")],
    design: Annotated[Path, typer.Option("--design", help="design.toml (see docs/weights.md).")],
    out_dir: Annotated[Path | None, out_option("Output folder (default: DATA).")] = None,
    as_json: JsonOption = False,
) -> int:
    """Compute household and person weights for an ingested survey from a design file (the default:
    `migkit weights DATA --design design.toml` runs this)."""
    from toolkit.weights import WeightingError, compute_weights

    with progress_bar(
        TextColumn("replicates"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("replicates", total=None)
        try:
            result = compute_weights(
                data,
                design,
                out_dir=out_dir,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except WeightingError as exc:
            return _refused("weights", exc.issues, as_json)
    return render(
        "weights", fields_of(result), result.issues, ok=True, as_json=as_json, people=lambda: _show_weights(result)
    )


def _rake_fields(res: RakeFileResult) -> dict[str, Any]:
    cal = res.calibration
    return {
        "output": res.output,
        "column": res.column,
        "iterations": cal.iterations,
        "converged": cal.converged,
        "max_rel_error": cal.max_rel_error,
        "diagnostics": cal.diagnostics,
        "margins": list(cal.margins),
    }


def _show_rake(res: RakeFileResult) -> None:
    cal = res.calibration
    table_out = Table(
        title=f"Raking: {cal.iterations} iterations, converged={cal.converged}, "
        f"max relative margin error {cal.max_rel_error:.2e}"
    )
    for col in ("variable", "level", "target", "achieved", "rel. error"):
        table_out.add_column(col, justify="left" if col in ("variable", "level") else "right", overflow="fold")
    for m in cal.margins:
        table_out.add_row(
            shown(m["variable"]), shown(m["level"]), _fmt(m["target"]), _fmt(m["achieved"]), f"{m['rel_error']:.2e}"
        )
    out.print(table_out)
    out.print(_summary_table("Weights", [(res.column, cal.diagnostics)]))
    out.print(f"wrote {shown(res.output)} (column {shown(res.column)})")
    print_issues((*cal.issues, *res.issues))


@weights_app.command("rake")
@guarded
def rake_command(
    table: Annotated[Path, typer.Argument(help="Table to rake: CSV, Parquet, .sav or .dta.")],
    weight: Annotated[str, typer.Option("--weight", help="Starting weight column.")],
    margins: Annotated[Path, typer.Option("--margins", help="CSV with columns variable,level,target.")],
    out_path: Annotated[Path, out_option("Output table (format from the extension).")],
    tol: Annotated[float, typer.Option("--tol", help="Stop when max |Σw−T|/T ≤ tol.")] = 1e-6,
    max_iter: Annotated[int, typer.Option("--max-iter", help="Maximum sweeps.")] = 100,
    name: Annotated[str, typer.Option("--name", help="Name of the new weight column.")] = "weight_raked",
    on_nonconvergence: Annotated[
        OnNonConvergence, typer.Option("--on-nonconvergence", help="error (exit 1) or warn.")
    ] = OnNonConvergence.error,
    as_json: JsonOption = False,
) -> int:
    """Rake any table to one-way margins (iterative proportional fitting), refusing inconsistent margins."""
    from toolkit.weights import WeightingError, rake_file

    try:
        res = rake_file(
            table,
            weight=weight,
            margins=margins,
            out=out_path,
            tol=tol,
            max_iter=max_iter,
            name=name,
            on_nonconvergence=on_nonconvergence.value,
        )
    except WeightingError as exc:
        return _refused("weights rake", exc.issues, as_json)
    issues = (*res.calibration.issues, *res.issues)
    converged = res.calibration.converged
    return render(
        "weights rake", _rake_fields(res), issues, ok=converged, as_json=as_json, people=lambda: _show_rake(res)
    )


# The options of `migkit estimate` that need more than a line.
PsuOption = Annotated[
    list[str] | None,
    typer.Option(
        "--psu",
        help="PSU (cluster) column; repeat it for every sampling stage, first stage first (with one --fpc "
        "per stage: multistage variance as R svydesign(ids = ~psu + ssu, fpc = ~fpc1 + fpc2)).",
    ),
]
RatioOption = Annotated[
    tuple[str, str] | None,
    typer.Option("--ratio", help="Ratio of weighted totals NUM/DEN.", metavar="NUM DEN"),
]
ReplicateWeightsOption = Annotated[
    str | None, typer.Option("--replicate-weights", help="Prefix of the replicate weight columns.")
]
MseOption = Annotated[
    bool | None,
    typer.Option(
        "--mse/--no-mse",
        help="Centre replicate variances on the full-sample estimate (--mse) or on the mean of the "
        "replicates (--no-mse, the default of R svrepdesign for every method).",
    ),
]
ScaleOption = Annotated[
    float | None,
    typer.Option(
        "--scale",
        help="Overall replicate variance multiplier, for replicates made elsewhere (default as R "
        "svrepdesign: jk1 (R-1)/R, bootstrap 1/(R-1), brr 1/R, Fay 1/(R(1-ρ)²), jkn 1).",
    ),
]
RscalesOption = Annotated[
    str | None,
    typer.Option(
        "--rscales",
        help="Per-replicate multipliers, comma-separated: one for all or one per replicate column in "
        "natural order (default 1; jkn (n_h-1)/n_h).",
        metavar="R1,R2,...",
    ),
]
LonelyPsuOption = Annotated[
    LonelyPsu, typer.Option("--lonely-psu", help="Single-PSU strata: error, adjust, average, certainty.")
]
DeffOption = Annotated[
    bool,
    typer.Option(
        "--deff",
        help="Add the design effect: the variance over that of a simple random sample of the same size "
        "(as R svymean(deff = TRUE)); --json always has it.",
    ),
]
FpcOption = Annotated[
    list[str] | None,
    typer.Option(
        "--fpc",
        help="Finite population correction for Taylor: column with each stratum's population size (PSUs) "
        "or sampling fraction; with several --psu stages, one --fpc per stage (the number or fraction of "
        "clusters sampled inside each cluster of the stage above).",
    ),
]


@app.command("estimate")
@guarded
def estimate_command(
    table: Annotated[Path, typer.Argument(help="Table: CSV, Parquet, .sav or .dta.")],
    weight: Annotated[str, typer.Option("--weight", help="Analysis weight column.")],
    strata: Annotated[str | None, typer.Option("--strata", help="Stratum column.")] = None,
    psu: PsuOption = None,
    mean: Annotated[str | None, typer.Option("--mean", help="Estimate the mean of VAR.")] = None,
    total: Annotated[str | None, typer.Option("--total", help="Estimate the total of VAR.")] = None,
    proportion: Annotated[str | None, typer.Option("--proportion", help="Proportions of every level of VAR.")] = None,
    ratio: RatioOption = None,
    by: Annotated[str | None, typer.Option("--by", help="Domain column (no subsetting).")] = None,
    replicate_weights: ReplicateWeightsOption = None,
    method: Annotated[RepMethod | None, typer.Option("--method", help="Replicate method.")] = None,
    fay: Annotated[float, typer.Option("--fay", help="Fay's coefficient ρ for BRR, 0 ≤ ρ < 1.")] = 0.0,
    mse: MseOption = None,
    scale: ScaleOption = None,
    rscales: RscalesOption = None,
    lonely_psu: LonelyPsuOption = LonelyPsu.error,
    show_deff: DeffOption = False,
    fpc: FpcOption = None,
    as_json: JsonOption = False,
) -> int:
    """Design-based mean, total, proportion or ratio with Taylor or replicate standard errors (95% t
    intervals)."""
    from toolkit import estimate as est

    statistic, variable, denominator = _one_statistic(mean, total, proportion, ratio)
    replicate_scales = _replicate_options(replicate_weights, method, fay, mse, scale, rscales)
    result = est.estimate_file(
        table,
        weight=weight,
        statistic=statistic,
        variable=variable,
        denominator=denominator,
        by=by,
        strata=strata,
        psu=psu,
        replicate_prefix=replicate_weights,
        method=method.value if method else None,
        fay=fay,
        fpc=fpc,
        mse=mse,
        scale=scale,
        rscales=replicate_scales,
        lonely_psu=lonely_psu.value,
    )
    return render(
        "estimate",
        fields_of(result),
        result.issues,
        ok=True,
        as_json=as_json,
        people=lambda: _show_estimates(result, show_deff=show_deff),
    )


def _one_statistic(
    mean: str | None, total: str | None, proportion: str | None, ratio: tuple[str, str] | None
) -> tuple[str, str, str | None]:
    """The statistic asked for, its variable and (for --ratio) the denominator; exactly one must be given."""
    chosen = [
        (k, v)
        for k, v in (("mean", mean), ("total", total), ("proportion", proportion), ("ratio", ratio))
        if v is not None
    ]
    if len(chosen) != 1:
        raise usage_error("give exactly one of --mean, --total, --proportion, --ratio")
    statistic, target = chosen[0]
    variable, denominator = target if isinstance(target, tuple) else (target, None)  # --ratio gives NUM and DEN
    return statistic, variable, denominator


def _replicate_options(
    replicate_weights: str | None,
    method: RepMethod | None,
    fay: float,
    mse: bool | None,
    scale: float | None,
    rscales: str | None,
) -> list[float] | None:
    """Check the replicate options go together; return the per-replicate multipliers of --rscales."""
    if (replicate_weights is None) != (method is None):
        raise usage_error("--replicate-weights and --method go together")
    if fay and (method is None or method != RepMethod.brr):
        raise usage_error("--fay applies to --method brr only")
    if not (math.isfinite(fay) and 0.0 <= fay < 1.0):
        raise usage_error(f"--fay {fay:g} is outside [0, 1): Fay's ρ must be at least 0 and below 1")
    if (scale is not None or rscales is not None or mse is not None) and replicate_weights is None:
        raise usage_error("--mse/--no-mse, --scale and --rscales apply to --replicate-weights")
    if rscales is None:
        return None
    try:
        return [float(part) for part in rscales.split(",")]
    except ValueError:
        raise usage_error(f"--rscales {rscales!r}: give numbers separated by commas, e.g. 0.5,0.5,0.75") from None


def _show_estimates(result: EstimateResult, *, show_deff: bool) -> None:
    t = Table(title=f"Estimates ({result.method}; 95% t intervals)")
    columns = ["domain", "statistic", "variable", "estimate", "se", "ci_low", "ci_high", "df", "n"]
    for col in [*columns, "deff"] if show_deff else columns:
        t.add_column(col, justify="left" if col in ("domain", "statistic", "variable") else "right", overflow="fold")
    for r in result.rows:
        t.add_row(
            shown(r.domain),
            r.statistic,
            shown(r.variable),
            _fmt(r.estimate),
            _fmt(r.se),
            _fmt(r.ci_low),
            _fmt(r.ci_high),
            str(r.df),
            str(r.n),
            *([_fmt(r.deff) if r.deff is not None else ""] if show_deff else []),
        )
    out.print(t)
    print_issues(result.issues)
