"""Compute a catalogue's indicators from a DATA folder with design-based standard errors.

For each entry: build the level's table (joins for weights and design columns), keep the universe, apply the
declared missing-value rule, and estimate with `toolkit.estimate` (Taylor linearisation, or the replicate weights
the weighting step produced). Rows outside the universe are not dropped but carry no value, so every PSU stays in
the variance (domain estimation, as R `svyby` on a subset design). A row in the universe whose answer is missing
(the question was not asked, or the answer is empty) never enters a denominator.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from toolkit import estimate as est
from toolkit.dataset import DataFolder, Design
from toolkit.errors import Issue, ToolkitError, define, error, warning
from toolkit.indicators.catalogue import (
    NO_WEIGHT,
    UNKNOWN_CODE,
    UNKNOWN_VARIABLE,
    Catalogue,
    CatalogueError,
    Domain,
    Indicator,
    Level,
    close_matches,
)
from toolkit.indicators.filters import codes_compared, evaluate, parse_filter, variables
from toolkit.xform import FormModel

EMPTY_UNIVERSE = define("indicators.empty_universe", "An indicator's universe has no cases in the data")
TABLE_ABSENT = define("indicators.table_absent", "An indicator's table is not in this DATA folder")
ESTIMATE_FAILED = define("indicators.estimate_failed", "An indicator could not be estimated")
DK_LABEL = {"en": "Don't know / refused", "ru": "Не знаю / отказ"}
ALL_LABEL = {"en": "Total", "ru": "Всего"}
SHORT_LIST = 20


@dataclass(frozen=True)
class IndicatorRow:
    """One published number: an indicator (a category of it) in a domain, with everything needed to reproduce it.

    Parameters:
        indicator: the catalogue id.
        statistic: proportion, mean, median, quantile, ratio, total, distribution or shares.
        category, category_label: the code and label of a distribution or multi-response category ("" otherwise).
        domain, domain_value, domain_label: the domain name ("all" for the whole universe) and its value/label.
        estimate, se, ci_low, ci_high: the estimate, its standard error and the confidence interval.
        cv: se / |estimate|; deff: the design effect (None where R gives none: ratios and quantiles).
        n: unweighted cases; weighted_n: Σ weights of those cases; df: degrees of freedom.
        flags: quality flags: "suppressed", "parentheses", "cv", "low_effective_n", "empty".
        table, variables, universe, weight, missing, ci_method, variance: how the number was made.
    """

    indicator: str
    statistic: str
    category: str
    category_label: str
    domain: str
    domain_variable: str
    domain_value: str
    domain_label: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    cv: float
    deff: float | None
    n: int
    weighted_n: float
    df: int
    flags: tuple[str, ...]
    table: str
    variables: tuple[str, ...]
    universe: str
    weight: str
    missing: str
    ci_method: str
    variance: str


@dataclass(frozen=True)
class IndicatorSummary:
    """What happened to one entry: status ok / empty / skipped, its texts, and the cases left out by rule."""

    id: str
    status: str
    message: str
    title: str
    definition: str
    universe_text: str
    source: str
    level: str
    statistic: str
    unit: str = ""
    not_asked: int = 0
    dont_know: int = 0
    in_universe: int = 0


@dataclass(frozen=True)
class IndicatorsResult:
    """Every row of every indicator, a summary per entry, and warnings (empty universes, absent tables)."""

    catalogue: str
    data_dir: str
    language: str
    rows: tuple[IndicatorRow, ...]
    indicators: tuple[IndicatorSummary, ...]
    issues: tuple[Issue, ...] = ()
    variance: str = "taylor"
    quality: Mapping[str, float] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    domain_titles: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(i.severity != "error" for i in self.issues)


# --- the DATA folder ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """The DATA folder with each table read once."""

    contents: DataFolder
    cache: dict[str, pd.DataFrame] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # per table, the columns the catalogue reads (replicate weights always); a table not named here is read whole
    wanted: Mapping[str, frozenset[str]] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def folder(self) -> Path:
        return self.contents.folder

    @property
    def tables(self) -> frozenset[str]:
        return frozenset(self.contents.names)

    @property
    def design(self) -> Design:
        return self.contents.design or Design()

    def read(self, name: str) -> pd.DataFrame:
        if name not in self.cache:
            wanted = self.wanted.get(name)
            columns = None
            if wanted is not None:
                prefix = self.design.replicates.prefix if self.design.replicates else None
                columns = [c for c in self.columns(name) if c in wanted or (prefix and c.startswith(prefix))]
            self.cache[name] = self.contents.load(name, columns=columns)
        return self.cache[name]

    def columns(self, name: str) -> list[str]:
        """Every column of a table's Parquet file (a column added by hand is not in tables.json)."""
        try:
            return list(pq.read_schema(self.folder / self.contents.table(name).file).names)
        except (OSError, ValueError):  # the read itself reports it
            return list(self.paths(name))

    def paths(self, name: str) -> dict[str, str]:
        return {c.name: c.path or "" for c in self.contents.table(name).columns}


def _read_data(folder: Path, catalogue: Catalogue | None = None) -> _Data:
    """The DATA folder; with a catalogue, each table is read with only the columns the catalogue reads from it
    (the tables have hundreds of columns and an indicator reads a few: at 100,000 households the roster alone
    is most of a gigabyte)."""
    contents = DataFolder.read(folder)
    return _Data(contents, wanted=_columns_read(catalogue, contents) if catalogue is not None else {})


def _columns_read(catalogue: Catalogue, contents: DataFolder) -> dict[str, frozenset[str]]:
    """Per table, every column the catalogue's levels and indicators name, with the design's strata and PSU.

    A name that is not a column is kept too: the checks before computing report it with the close matches."""
    design = contents.design or Design()
    variance_columns = {c for c in (design.strata, design.psu) if c}
    wanted: dict[str, set[str]] = {}
    by_level: dict[str, set[str]] = {}
    for entry in catalogue.indicators:
        names = by_level.setdefault(entry.level, set())
        names.update(c for c in (entry.variable, entry.denominator) if c)
        names.update(_domain_variable(catalogue, d) for d in entry.domains)
        for text in (entry.universe, entry.condition):
            if text:
                names.update(variables(parse_filter(text)))
    for name, names in by_level.items():
        level = catalogue.levels.get(name)
        if level is None:
            continue
        if level.universe:
            names.update(variables(parse_filter(level.universe)))
        names.update({level.weight, *variance_columns})
        wanted.setdefault(level.table, set()).update(names)
        for join in level.joins:
            wanted[level.table].update(join.on)
            wanted.setdefault(join.table, set()).update(
                {*join.on.values(), *join.columns.values(), level.weight, *variance_columns}
            )
    if contents.form_id:  # every PSU of the household sample (`_with_every_psu`)
        wanted.setdefault(contents.form_id, set()).update(variance_columns)
    return {table: frozenset(names) for table, names in wanted.items()}


def as_text(series: pd.Series) -> pd.Series:
    """Codes as text ('1' for 1, 1.0 and '1'), missing as <NA>: numeric and text columns compare alike."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        # each distinct number is written once: a column of 600,000 rows holds a few dozen codes (but hashing
        # takes -0.0 for 0.0, and a column of fractions writes them apart)
        numbers = series.to_numpy(dtype=float, na_value=np.nan)
        if bool(np.any((numbers == 0) & np.signbit(numbers))):
            return _numbers_as_text(series)
        codes, distinct = pd.factorize(series, use_na_sentinel=True)
        texts = _numbers_as_text(pd.Series(distinct, dtype=series.dtype))
        return pd.Series(texts.array.take(codes, allow_fill=True), index=series.index)
    return series.astype("string").str.strip().replace("", pd.NA)  # type: ignore[call-overload]  # pandas-stubs reject pd.NA


def _numbers_as_text(series: pd.Series) -> pd.Series:
    """Whole numbers without a decimal point when every number of the column is whole."""
    numbers = series.astype("Float64")
    whole = numbers.dropna() == numbers.dropna().round()
    if bool(whole.all()):
        return numbers.astype("Int64").astype("string")
    return numbers.astype("string")


def as_number(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


@dataclass(frozen=True)
class _LevelFrame:
    frame: pd.DataFrame
    paths: Mapping[str, tuple[str, str]]  # column -> (table, form path)
    columns: tuple[str, ...]  # every column of the level, read or not (for the checks' close matches)
    strata: str | None
    psu: str | None
    replicate_prefix: str | None
    replicate_method: str | None
    coefficients: tuple[float, ...] = ()
    centre_on_mean: bool = False
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


def _build_level(data: _Data, level: Level) -> _LevelFrame:
    frame = data.read(level.table)
    paths = {name: (level.table, path) for name, path in data.paths(level.table).items()}
    design = data.design
    strata, psu = design.strata, design.psu
    prefix = design.replicates.prefix if design.replicates else ""  # "": no replicate weights
    for join in level.joins:
        other = data.read(join.table)
        wanted = dict(join.columns)
        for column in (strata, psu):
            if column and column not in frame.columns and column in other.columns:
                wanted.setdefault(column, column)
        # Replicate weights come from the table that gives the weight, so that they belong to it.
        lacks_reps = prefix and not any(str(c).startswith(prefix) for c in frame.columns)
        if lacks_reps and (level.weight in wanted.values() or level.weight in wanted):
            wanted.update({c: c for c in other.columns if str(c).startswith(prefix)})
        left_keys = [f"__key{i}" for i in range(len(join.on))]
        left = frame.copy(deep=False)  # the join key columns are added to this frame only
        right = other[[*join.on.values(), *dict.fromkeys(wanted.values())]].copy()
        for i, (mine, theirs) in enumerate(join.on.items()):
            left[left_keys[i]] = as_text(frame[mine])
            right[left_keys[i]] = as_text(other[theirs])
        right = right.drop(columns=[c for c in join.on.values() if c not in wanted.values()])
        picked = right[left_keys].copy()
        for new, old in wanted.items():
            picked[new] = right[old].to_numpy()
        picked = picked.drop_duplicates(subset=left_keys)
        merged = left.drop(columns=[c for c in wanted if c in left.columns]).merge(picked, on=left_keys, how="left")
        frame = merged.drop(columns=left_keys)
        other_paths = data.paths(join.table)
        for new, old in wanted.items():
            paths[new] = (join.table, other_paths.get(old, ""))
    has_reps = bool(prefix) and any(str(c).startswith(prefix) for c in frame.columns)
    recorded = _recorded_replicates(data.folder)
    if strata is not None and psu is not None and {strata, psu, level.weight} <= set(frame.columns):
        frame = _with_every_psu(
            data, frame, strata=strata, psu=psu, weight=level.weight, prefix=prefix if has_reps else None
        )
    return _LevelFrame(
        frame=frame.reset_index(drop=True),
        paths=paths,
        columns=tuple(dict.fromkeys([*data.columns(level.table), *(str(c) for c in frame.columns)])),
        strata=strata if strata in frame.columns else None,
        psu=psu if psu in frame.columns else None,
        replicate_prefix=prefix if has_reps else None,
        replicate_method=design.replicates.method if has_reps and design.replicates else None,
        coefficients=tuple(recorded.get("coefficients") or ()) if has_reps else (),
        centre_on_mean=bool(recorded.get("centre_on_mean", False)),
    )


def _replicate_columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    """The replicate weight columns in replicate order (repw_1, repw_2, …, repw_10)."""
    found = [str(c) for c in frame.columns if str(c).startswith(prefix) and str(c)[len(prefix) :].isdigit()]
    return sorted(found, key=lambda c: int(c[len(prefix) :]))


def _recorded_replicates(folder: Path) -> Mapping[str, Any]:
    """The replicate coefficients the weighting step recorded (weights-report.json), or nothing."""
    try:
        report = json.loads((folder / "weights-report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    replicates = report.get("replicates") if isinstance(report, dict) else None
    return replicates if isinstance(replicates, dict) else {}


def _with_every_psu(
    data: _Data, frame: pd.DataFrame, *, strata: str, psu: str, weight: str, prefix: str | None
) -> pd.DataFrame:
    """Add one row of weight 0 for every PSU of the household sample that has no row in this table (a PSU without
    return migrants still is a PSU of the design): its z is 0, and the PSU counts per stratum and the degrees of
    freedom stay those of the design, as in R for a domain of the household sample."""
    main = data.contents.form_id
    if main not in data.tables:
        return frame
    sample = data.read(main)
    if strata not in sample.columns or psu not in sample.columns:
        return frame
    present = frame[[strata, psu]].drop_duplicates()
    have = set(zip(as_text(present[strata]).fillna(""), as_text(present[psu]).fillna(""), strict=True))
    pairs = sample[[strata, psu]].drop_duplicates()
    keys = zip(as_text(pairs[strata]).fillna(""), as_text(pairs[psu]).fillna(""), strict=True)
    ghosts = pairs[[key not in have for key in keys]]
    if ghosts.empty:
        return frame
    extra = pd.DataFrame({strata: ghosts[strata].to_numpy(), psu: ghosts[psu].to_numpy(), weight: 0.0})
    if prefix:
        for column in frame.columns:
            if str(column).startswith(prefix):
                extra[column] = 0.0
    return pd.concat([frame, extra], ignore_index=True)


# --- checks before computing ---------------------------------------------------------------------------------


def _choice_names(form: FormModel | None, path: str) -> tuple[str, ...] | None:
    if form is None or not path or path not in form.nodes:
        return None
    node = form.nodes[path]
    if node.choice_source not in (None, "list"):
        return None
    choices = form.choices_for(path)
    return choices.names if choices is not None else None


def _domain_variable(catalogue: Catalogue, name: str) -> str:
    domain = catalogue.domains.get(name)
    return domain.variable if domain is not None else name


def _check(catalogue: Catalogue, levels: Mapping[str, _LevelFrame], form: FormModel | None) -> list[Issue]:
    issues: list[Issue] = []
    for name, built in levels.items():
        level = catalogue.levels[name]
        if level.weight not in built.frame.columns:
            weights = [c for c in built.columns if "weight" in str(c).lower()]
            issues.append(
                error(
                    NO_WEIGHT,
                    f"[levels.{name}] weight: column {level.weight!r} is not in table {level.table}"
                    f"{close_matches(level.weight, list(built.columns))}; "
                    "run `migkit weights` first, "
                    f"or join the weight from the household or roster table (weight-like columns here: "
                    f"{', '.join(map(str, weights)) or 'none'})",
                    variable=level.weight,
                )
            )
    for entry in catalogue.indicators:
        table = levels.get(entry.level)
        if table is None:
            continue
        columns = list(table.columns)
        level = catalogue.levels[entry.level]

        def need(
            column: str | None,
            field_name: str,
            entry: Indicator = entry,
            columns: list[str] = columns,
            level: Level = level,
        ) -> None:
            if column and column not in columns:
                issues.append(
                    error(
                        UNKNOWN_VARIABLE,
                        f"indicator {entry.id}, {field_name}: {column!r} is not a column of {level.table}"
                        f"{close_matches(column, columns)}",
                        variable=column,
                    )
                )

        need(entry.variable, "variable")
        need(entry.denominator, "denominator")
        for field_name, text in (
            ("universe", entry.universe),
            ("condition", entry.condition),
            (f"level {entry.level} universe", level.universe),
        ):
            if text:
                for column in variables(parse_filter(text)):
                    need(column, field_name)
                for column, code in codes_compared(parse_filter(text)):
                    _check_code(
                        issues, entry=entry, field_name=field_name, column=column, code=code, built=table, form=form
                    )
        for domain in entry.domains:
            need(_domain_variable(catalogue, domain), f"domains ({domain})")
        for code in entry.yes:
            if entry.variable:
                _check_code(
                    issues, entry=entry, field_name="yes", column=entry.variable, code=code, built=table, form=form
                )
    return issues


def _check_code(
    issues: list[Issue],
    *,
    entry: Indicator,
    field_name: str,
    column: str,
    code: str,
    built: _LevelFrame,
    form: FormModel | None,
) -> None:
    names = _choice_names(form, built.paths.get(column, ("", ""))[1])
    if names is not None and code not in names:
        issues.append(
            error(
                UNKNOWN_CODE,
                f"indicator {entry.id}, {field_name}: code {code!r} is not in the choice list of {column} "
                f"({', '.join(names[:20])}){close_matches(code, list(names))}",
                variable=column,
            )
        )


# --- computing -------------------------------------------------------------------------------------------------


def _language_of(form: FormModel | None, language: str) -> str | None:
    if form is None:
        return None
    for name in form.languages:
        if name.endswith(f"({language})") or name == language:
            return name
    return form.default_language


def _text(texts: Mapping[str, str], language: str) -> str:
    return texts.get(language) or texts.get("en") or next(iter(texts.values()), "")


def _choice_labels(form: FormModel | None, built: _LevelFrame, column: str, language: str) -> dict[str, str]:
    path = built.paths.get(column, ("", ""))[1]
    if form is None or not path or path not in form.nodes:
        return {}
    choices = form.choices_for(path)
    if choices is None:
        return {}
    form_language = _language_of(form, language)
    return {c.name: c.label(form_language) for c in choices.choices}


def _domain_series(domain: Domain | None, name: str, frame: pd.DataFrame) -> pd.Series:
    """The domain value of every row as text (missing: not in any domain)."""
    variable = domain.variable if domain is not None else name
    raw = frame[variable]
    if domain is not None and domain.breaks:
        numbers = pd.Series(as_number(raw))
        cut = pd.cut(numbers, bins=list(domain.breaks), labels=list(domain.labels), right=False)
        return cut.astype("string")
    text = as_text(raw)
    if domain is not None and domain.map:
        codes, distinct = pd.factorize(text, use_na_sentinel=True)
        mapped = pd.array([domain.map.get(v, pd.NA) for v in distinct], dtype="string")
        return pd.Series(mapped.take(codes, allow_fill=True), index=text.index)
    return text


@dataclass(frozen=True)
class _Prepared:
    """What enters the estimator: a value per row (NaN outside the universe or missing), categories, counts."""

    values: dict[str, np.ndarray]  # category code ("" for a single number) -> y per row
    denominator: np.ndarray | None
    labels: dict[str, str]
    in_universe: np.ndarray
    not_asked: int
    dont_know: int


def _prepare(  # noqa: PLR0912, PLR0915
    entry: Indicator, catalogue: Catalogue, built: _LevelFrame, labels: dict[str, str], language: str
) -> _Prepared:
    frame = built.frame
    level = catalogue.levels[entry.level]
    universe = np.ones(len(frame), dtype=bool)
    for condition in (level.universe, entry.universe):
        if condition:
            universe &= evaluate(parse_filter(condition), frame)
    universe &= as_number(frame[level.weight]) > 0
    if entry.statistic == "total" and entry.count:
        y = np.where(universe, 1.0, np.nan)
        return _Prepared({"": y}, None, {}, universe, 0, 0)
    raw = frame[entry.variable]
    missing_codes = set(catalogue.missing_codes)
    if entry.statistic in ("mean", "median", "quantile", "ratio", "total"):
        number = as_number(raw)
        dk = np.isin(number, np.array(catalogue.missing_numbers)) & universe
        answered = np.isfinite(number) & universe
        not_asked = int((universe & ~np.isfinite(number)).sum())
        keep = answered & ~dk
        y = np.where(keep, number * entry.scale, np.nan)
        x = None
        if entry.statistic == "ratio":
            den = as_number(frame[entry.denominator])
            den_dk = np.isin(den, np.array(catalogue.missing_numbers))
            x = np.where(keep & np.isfinite(den) & ~den_dk, den, np.nan)
            y = np.where(np.isfinite(x), y, np.nan)
        return _Prepared({"": y}, x, {}, universe, not_asked, int(dk.sum()))
    text = as_text(raw)
    present = text.notna().to_numpy() & universe
    not_asked = int((universe & ~present).sum())
    if entry.statistic == "shares":
        words = text.fillna("").str.split().to_numpy(dtype=object)
        is_dk = np.array([bool(w) and all(c in missing_codes for c in w) for w in words]) & present
        codes = [c for c in labels if c not in missing_codes] or sorted(
            {c for w in words[present] for c in w if c not in missing_codes}, key=_code_order
        )
        values: dict[str, np.ndarray] = {}
        denominator = present & ~is_dk if entry.missing == "exclude" else present
        for code in codes:
            has = np.fromiter((code in w for w in words), dtype=bool, count=len(words))
            values[code] = np.where(denominator, has.astype(float), np.nan)
        if entry.missing == "category":
            values["dk"] = np.where(denominator, is_dk.astype(float), np.nan)
        return _Prepared(
            values, None, {**labels, "dk": _text(DK_LABEL, language)}, universe, not_asked, int(is_dk.sum())
        )
    codes_text = text.fillna("").to_numpy(dtype=object)
    is_dk = np.isin(codes_text, list(missing_codes)) & present
    denominator = present & ~is_dk if entry.missing == "exclude" else present
    if entry.statistic == "proportion":
        if entry.condition:
            hit = evaluate(parse_filter(entry.condition), frame)
        else:
            hit = np.isin(codes_text, list(entry.yes))
        values = {"": np.where(denominator, (hit & ~is_dk).astype(float), np.nan)}
        if entry.missing == "category":
            values["dk"] = np.where(denominator, is_dk.astype(float), np.nan)
        return _Prepared(values, None, {"dk": _text(DK_LABEL, language)}, universe, not_asked, int(is_dk.sum()))
    # distribution of a categorical answer
    seen = {c for c in codes_text[denominator] if c}
    # A short list shows every category (a zero is news); a long one (countries) only those that occur.
    listed = [c for c in labels if c not in missing_codes and (c in seen or len(labels) <= SHORT_LIST)]
    ordered = listed + sorted(seen - set(listed) - missing_codes, key=_code_order)
    values = {code: np.where(denominator, (codes_text == code).astype(float), np.nan) for code in ordered}
    if entry.missing == "category":
        values["dk"] = np.where(denominator, is_dk.astype(float), np.nan)
    return _Prepared(values, None, {**labels, "dk": _text(DK_LABEL, language)}, universe, not_asked, int(is_dk.sum()))


def _code_order(code: str) -> tuple[int, float, str]:
    try:
        return (0, float(code), code)
    except ValueError:
        return (1, 0.0, code)


def _domain_df(used: np.ndarray, dom: np.ndarray, n_dom: int, built: _LevelFrame) -> np.ndarray:
    """Per domain: PSUs with used cases minus strata with used cases (R `degf` of the domain's subset design)."""
    frame = built.frame
    psu = pd.factorize(frame[built.psu])[0] if built.psu else np.arange(len(frame))
    stratum = pd.factorize(frame[built.strata])[0] if built.strata else np.zeros(len(frame), dtype=np.int64)
    cases = pd.DataFrame({"dom": dom[used], "stratum": stratum[used], "psu": psu[used]})
    psus = cases.drop_duplicates().groupby("dom").size()
    strata = cases[["dom", "stratum"]].drop_duplicates().groupby("dom").size()
    out = np.zeros(n_dom)
    for j in psus.index:
        if 0 <= j < n_dom:
            out[j] = psus[j] - strata[j]
    return out


def _rank_as_r(matrix: np.ndarray, tol: float = 1e-5) -> int:
    """The rank R's `qr(matrix, tol = 1e-5)$rank` gives (LINPACK dqrdc2): columns are taken in order and one counts
    when the part of it not explained by the columns already counted has at least `tol` times its own norm; a zero
    column never counts.

    The rows are first reduced by a Householder QR (an orthogonal change of basis keeps every norm and
    projection), so the greedy pass works on a replicates-by-replicates triangle however many cases there are;
    each residual is orthogonalised twice, which keeps it accurate next to nearly dependent columns.
    """
    # numpy's stubs type every mode as QRResult; mode="r" returns the triangle R alone, an array
    reduced: np.ndarray = np.linalg.qr(matrix, mode="r") if matrix.shape[0] > matrix.shape[1] else matrix  # type: ignore[assignment]
    basis: list[np.ndarray] = []
    for k in range(reduced.shape[1]):
        column = reduced[:, k]
        norm = float(np.linalg.norm(column))
        if norm == 0.0:
            continue
        residual = column.copy()
        if basis:
            stacked = np.array(basis).T
            for _ in range(2):
                residual -= stacked @ (stacked.T @ residual)
        left = float(np.linalg.norm(residual))
        if left >= tol * norm:
            basis.append(residual / left)
    return len(basis)


def _replicate_domain_df(
    used: np.ndarray, dom: np.ndarray, n_dom: int, work: pd.DataFrame, design: dict, *, cache: dict[Any, Any]
) -> np.ndarray:
    """Per domain: the rank of the domain's replicate-weight matrix minus one, as R `degf()` gives for a replicate
    design's subset: the df Korn–Graubard's effective n uses under replicate weights. With JKn replicates that is
    about PSUs minus strata; replicates calibrated again (raking) make the rank a numerical matter, so it is
    computed with R's own tolerance rule.

    `cache` is the level table's: the ranks are kept per replicate columns and set of rows, since indicators of
    one table share universes and domains (the catalogue's 103 ranks are 42 distinct ones), and a rank costs a
    QR reduction of the rows (the replicate matrix is only read when a rank is not known yet).
    """
    columns = tuple(design["replicate_columns"])
    distinct: _DistinctRows | None = None  # read from the table only when a rank is not known yet
    out = np.zeros(n_dom)
    for j in range(n_dom):
        rows = used & (dom == j)
        if rows.any():
            key = ("replicate_rank", columns, hashlib.blake2b(np.packbits(rows).tobytes()).digest(), len(rows))
            if key not in cache:
                if distinct is None:
                    distinct = cache.get(("distinct_rows", columns))
                    if distinct is None:
                        distinct = cache[("distinct_rows", columns)] = _DistinctRows.of(
                            work[list(columns)].to_numpy(dtype=float)
                        )
                cache[key] = _rank_as_r(distinct.gram_equivalent(rows))
            out[j] = cache[key] - 1
    return out


@dataclass(frozen=True)
class _DistinctRows:
    """A replicate-weight matrix as its distinct rows (the members of a household, and often the households of an
    EA, carry the same replicate weights) and, per original row, the index of its distinct row."""

    rows: np.ndarray
    index: np.ndarray

    @staticmethod
    def of(matrix: np.ndarray) -> _DistinctRows:
        hashed = pd.util.hash_pandas_object(pd.DataFrame(matrix), index=False).to_numpy()
        index, _ = pd.factorize(hashed)
        _, first = np.unique(index, return_index=True)  # the first row of each distinct hash
        distinct = matrix[first]
        if not np.array_equal(distinct[index], matrix):  # two different rows with one 64-bit hash: keep them all
            return _DistinctRows(matrix, np.arange(len(matrix)))
        return _DistinctRows(distinct, index)

    def gram_equivalent(self, selected: np.ndarray) -> np.ndarray:
        """A small matrix with the same Gram matrix (M'M) as the selected rows of the original: each distinct row
        once, scaled by the square root of how often it is selected. QR's R, hence every norm and projection R's
        rank rule reads, depends on the rows only through M'M."""
        counts = np.bincount(self.index[selected], minlength=len(self.rows))
        present = counts > 0
        return self.rows[present] * np.sqrt(counts[present])[:, None]


def _flags(n: int, cv: float, deff: float | None, catalogue: Catalogue, *, empty: bool) -> tuple[str, ...]:
    q = catalogue.quality
    if empty or n == 0:
        return ("empty",)
    flags = []
    if n < q.suppress_below:
        flags.append("suppressed")
    elif n < q.parentheses_below:
        flags.append("parentheses")
    if math.isfinite(cv) and cv > q.cv_above:
        flags.append("cv")
    if q.effective_n_below and deff and deff > 0 and n / deff < q.effective_n_below:
        flags.append("low_effective_n")
    return tuple(flags)


def _design_frame(built: _LevelFrame, weight: str, variance: str) -> tuple[pd.DataFrame, dict[str, Any], bool]:
    """The weight, design and replicate columns of a level, built once per level and variance method."""
    key = (weight, variance)
    if key in built.cache:
        return built.cache[key]
    frame = built.frame
    w = as_number(frame[weight])
    work = pd.DataFrame({"__w": np.where(np.isfinite(w), w, 0.0)})
    design: dict[str, Any] = {}
    if built.strata:
        work["__strata"] = frame[built.strata].to_numpy()
        design["strata"] = "__strata"
    if built.psu:
        work["__psu"] = frame[built.psu].to_numpy()
        design["psu"] = "__psu"
    prefix = built.replicate_prefix if variance == "replicates" and built.coefficients else None
    replicated = bool(prefix)
    if prefix:
        rep_columns = _replicate_columns(frame, prefix)
        reps = pd.DataFrame(
            np.nan_to_num(frame[rep_columns].to_numpy(dtype=float, na_value=np.nan)),
            columns=[f"__rep{c}" for c in rep_columns],
        )
        work = pd.concat([work, reps], axis=1)
        taylor = est.estimate(work.assign(__y=0.0), weight="__w", statistic="mean", variable="__y", **design)
        design = {
            "replicate_columns": list(reps.columns),
            "coefficients": built.coefficients,
            "centre_on_mean": built.centre_on_mean,
            "df": taylor.rows[0].df,
        }
    built.cache[key] = (work, design, replicated)
    return work, design, replicated


class _EntryInputs(TypedDict):
    """What every domain of one indicator entry is estimated from."""

    catalogue: Catalogue
    built: _LevelFrame
    prepared: _Prepared
    language: str
    variance: str


def _estimate_entry(  # noqa: PLR0915
    entry: Indicator,
    *,
    catalogue: Catalogue,
    built: _LevelFrame,
    prepared: _Prepared,
    domain_name: str,
    domain_values: pd.Series | None,
    domain_labels: dict[str, str],
    language: str,
    variance: str,
    domain_variable: str = "",
) -> list[IndicatorRow]:
    frame = built.frame
    level = catalogue.levels[entry.level]
    w = as_number(frame[level.weight])
    base, design, replicated = _design_frame(built, level.weight, variance)
    work = base.copy(deep=False)
    by = None
    if domain_values is not None:
        work["__by"] = domain_values.to_numpy()
        by = "__by"
    ordered_domains = None
    if domain_values is not None:
        present_values = set(domain_values.dropna().unique())
        ordered_domains = [v for v in domain_labels if v in present_values]
        ordered_domains += sorted(present_values - set(ordered_domains), key=_code_order)
    rows: list[IndicatorRow] = []
    names = tuple(v for v in (entry.variable, entry.denominator) if v)
    universe_text = " and ".join(f"({t})" for t in (level.universe, entry.universe) if t) or "all rows"
    variance_name = (
        f"replicates ({built.replicate_method})"
        if replicated
        else ("taylor" if built.psu or built.strata else "taylor (no design columns: simple random sample)")
    )
    for category, y in prepared.values.items():
        work["__y"] = y
        if prepared.denominator is not None:
            work["__x"] = prepared.denominator
        if entry.statistic in ("median", "quantile"):
            qrows = est.estimate_quantile(
                work, weight="__w", variable="__y", quantile=entry.quantile, by=by, level=catalogue.confidence, **design
            )
            results: list[tuple[str, float, float, float, float, float | None, int, int]] = [
                (q.domain, q.estimate, q.se, q.ci_low, q.ci_high, None, q.n, q.df) for q in qrows
            ]
        else:
            statistic: Literal["ratio", "total", "mean"] = (
                "ratio" if entry.statistic == "ratio" else "total" if entry.statistic == "total" else "mean"
            )
            estimator = est.estimate_with_replicates if replicated else est.estimate
            fitted = estimator(
                work,
                weight="__w",
                statistic=statistic,
                variable="__y",
                denominator="__x" if statistic == "ratio" else None,
                by=by,
                level=catalogue.confidence,
                **design,
            )
            results = [(r.domain, r.estimate, r.se, r.ci_low, r.ci_high, r.deff, r.n, r.df) for r in fitted.rows]
        used = np.isfinite(y) & (np.isfinite(prepared.denominator) if prepared.denominator is not None else True)
        if domain_values is not None:
            codes = domain_values.to_numpy(dtype=object)
            keys = sorted({r[0] for r in results})
        else:
            codes = np.full(len(frame), "all", dtype=object)
            keys = ["all"]
        dom_index = {k: i for i, k in enumerate(keys)}
        dom = pd.Series(codes, dtype=object).map(dom_index).fillna(-1).to_numpy(dtype=np.int64)
        weighted = np.bincount(
            np.where(used & (dom >= 0), dom, 0), weights=np.where(used & (dom >= 0), w, 0.0), minlength=len(keys)
        )
        domain_df = None
        if entry.statistic in ("proportion", "distribution", "shares"):
            domain_df = (
                _replicate_domain_df(used & (dom >= 0), dom, len(keys), work, design, cache=built.cache)
                if replicated
                else _domain_df(used & (dom >= 0), dom, len(keys), built)
            )
        by_key = {r[0]: r for r in results}
        order = ordered_domains if ordered_domains is not None else ["all"]
        for value in order:
            if value not in by_key:
                continue
            _, point, se, low, high, deff, n, df = by_key[value]
            j = dom_index[value]
            if entry.statistic in ("proportion", "distribution", "shares") and n > 0:
                low, high = est.proportion_interval(
                    point,
                    se,
                    df=df,
                    method=entry.ci,
                    n=n,
                    domain_df=float(domain_df[j]) if domain_df is not None else None,
                    level=catalogue.confidence,
                )
            cv = se / abs(point) if point and math.isfinite(point) and math.isfinite(se) else math.nan
            rows.append(
                IndicatorRow(
                    indicator=entry.id,
                    statistic=entry.statistic if entry.statistic != "quantile" else f"quantile {entry.quantile:g}",
                    category=category,
                    category_label=prepared.labels.get(category, category),
                    domain=domain_name,
                    domain_variable=domain_variable,
                    domain_value=value,
                    domain_label=_text(ALL_LABEL, language)
                    if domain_name == "all"
                    else domain_labels.get(value, value),
                    estimate=float(point),
                    se=float(se),
                    ci_low=float(low),
                    ci_high=float(high),
                    cv=float(cv),
                    deff=deff,
                    n=int(n),
                    weighted_n=float(weighted[j]),
                    df=int(df),
                    flags=_flags(int(n), cv, deff, catalogue, empty=not math.isfinite(point)),
                    table=level.table,
                    variables=names,
                    universe=universe_text,
                    weight=level.weight,
                    missing=entry.missing,
                    ci_method=(
                        entry.ci
                        if entry.statistic in ("proportion", "distribution", "shares")
                        else "woodruff"
                        if entry.statistic in ("median", "quantile")
                        else "t"
                    ),
                    variance=variance_name,
                )
            )
    return rows


def compute_indicators(  # noqa: PLR0915
    data_dir: str | Path,
    catalogue: Catalogue,
    *,
    form: FormModel | None = None,
    language: str = "en",
    variance: str = "design",
) -> IndicatorsResult:
    """Check the catalogue against the data (every problem at once), then compute every indicator.

    Parameters:
        data_dir: the DATA folder (`migkit ingest`, then `migkit weights`).
        catalogue: the catalogue (`Catalogue.from_file`).
        form: the form, for choice-code checks and category labels (without it codes are not checked).
        language: "en" or "ru": titles, definitions and labels.
        variance: "design" (the replicate weights when the weighting made them, else Taylor) or "taylor".
    """
    data = _read_data(Path(data_dir), catalogue)
    issues: list[Issue] = []
    built: dict[str, _LevelFrame] = {}
    absent: dict[str, str] = {}
    for name in dict.fromkeys(e.level for e in catalogue.indicators):
        level = catalogue.levels[name]
        missing_tables = [t for t in (level.table, *(j.table for j in level.joins)) if t not in data.tables]
        if missing_tables:
            absent[name] = missing_tables[0]
            continue
        built[name] = _build_level(data, level)
    problems = _check(catalogue, built, form)
    if problems:
        raise CatalogueError(problems)
    has_reps = any(b.replicate_prefix for b in built.values())
    # Each level's frame (with its replicate weights) is freed after its last indicator, and the tables it was
    # joined from as soon as every level is built: at 100,000 households the person level alone is a gigabyte.
    data.cache.clear()
    last_use = {e.level: i for i, e in enumerate(catalogue.indicators)}
    rows: list[IndicatorRow] = []
    summaries: list[IndicatorSummary] = []
    for index, entry in enumerate(catalogue.indicators):
        for done in [name for name in built if last_use[name] < index]:
            del built[done]
        level = catalogue.levels[entry.level]
        # The entry's summary with its texts, which are the same whatever happens to it.
        summary_of = partial(
            IndicatorSummary,
            entry.id,
            title=_text(entry.title, language),
            definition=_text(entry.definition, language),
            universe_text=" and ".join(f"({t})" for t in (level.universe, entry.universe) if t) or "all rows",
            source=entry.source,
            level=_text(level.title, language),
            statistic=entry.statistic,
            unit=_text(entry.unit, language) if entry.unit else "",
        )
        if entry.level in absent:
            message = f"table {absent[entry.level]} is not in this DATA folder (another form's data?)"
            issues.append(warning(TABLE_ABSENT, f"indicator {entry.id}: {message}; skipped", variable=entry.id))
            summaries.append(summary_of("skipped", message))
            continue
        frame = built[entry.level]
        labels = _choice_labels(form, frame, entry.variable, language) if entry.variable else {}
        prepared = _prepare(entry, catalogue, frame, labels, language)
        in_universe = int(prepared.in_universe.sum())
        usable = any(np.isfinite(v).any() for v in prepared.values.values())
        if not usable:
            message = f"no cases: {in_universe} rows in the universe, none with a usable answer"
            issues.append(warning(EMPTY_UNIVERSE, f"indicator {entry.id}: {message}", variable=entry.id))
            summaries.append(
                summary_of(
                    "empty",
                    message,
                    not_asked=prepared.not_asked,
                    dont_know=prepared.dont_know,
                    in_universe=in_universe,
                )
            )
            continue
        method = "replicates" if variance == "design" else "taylor"
        try:
            common: _EntryInputs = {
                "catalogue": catalogue,
                "built": frame,
                "prepared": prepared,
                "language": language,
                "variance": method,
            }
            entry_rows = _estimate_entry(entry, domain_name="all", domain_values=None, domain_labels={}, **common)
            for domain_name in entry.domains:
                domain = catalogue.domains.get(domain_name)
                values = _domain_series(domain, domain_name, frame.frame)
                variable = domain.variable if domain is not None else domain_name
                domain_labels = _choice_labels(form, frame, variable, language)
                if domain is not None and (domain.breaks or domain.map):
                    ordered = list(domain.labels) if domain.breaks else list(dict.fromkeys(domain.map.values()))
                    domain_labels = {v: v for v in ordered}
                entry_rows += _estimate_entry(
                    entry,
                    domain_name=domain_name,
                    domain_values=values,
                    domain_labels=domain_labels,
                    domain_variable=variable,
                    **common,
                )
        except ToolkitError as exc:
            issues.append(error(ESTIMATE_FAILED, f"indicator {entry.id}: {exc.issue.message}", variable=entry.id))
            summaries.append(summary_of("failed", exc.issue.message))
            continue
        rows += entry_rows
        summaries.append(
            summary_of(
                "ok",
                f"{len(entry_rows)} rows",
                not_asked=prepared.not_asked,
                dont_know=prepared.dont_know,
                in_universe=in_universe,
            )
        )
    return IndicatorsResult(
        catalogue=catalogue.path,
        data_dir=str(data_dir),
        language=language,
        rows=tuple(rows),
        indicators=tuple(summaries),
        issues=tuple(issues),
        variance="replicates" if variance == "design" and has_reps else "taylor",
        domain_titles={name: _text(d.title, language) for name, d in catalogue.domains.items()},
        quality={
            "suppress_below": catalogue.quality.suppress_below,
            "parentheses_below": catalogue.quality.parentheses_below,
            "cv_above": catalogue.quality.cv_above,
        },
    )


def analysis_frames(
    data_dir: str | Path, catalogue: Catalogue, *, form: FormModel | None = None
) -> dict[str, pd.DataFrame]:
    """What each computed entry hands to the estimator, one frame per entry id, to reproduce it elsewhere (R):
    `weight`, `strata`, `psu`, the replicate weights `rep_1..`, `y` (or `y:<category>`; missing outside the
    universe and where the rule leaves a case out), `x` for a ratio, and `d:<domain>` (the domain as text).

    Parameters:
        data_dir: the DATA folder.
        catalogue: the catalogue.
        form: the form, for the category order.
    """
    data = _read_data(Path(data_dir), catalogue)
    frames: dict[str, pd.DataFrame] = {}
    built: dict[str, _LevelFrame] = {}
    for entry in catalogue.indicators:
        level = catalogue.levels[entry.level]
        if any(t not in data.tables for t in (level.table, *(j.table for j in level.joins))):
            continue
        if entry.level not in built:
            built[entry.level] = _build_level(data, level)
        lf = built[entry.level]
        labels = _choice_labels(form, lf, entry.variable, "en") if entry.variable else {}
        prepared = _prepare(entry, catalogue, lf, labels, "en")
        out = pd.DataFrame({"weight": as_number(lf.frame[level.weight])})
        out["strata"] = as_text(lf.frame[lf.strata]).to_numpy() if lf.strata else "1"
        out["psu"] = as_text(lf.frame[lf.psu]).to_numpy() if lf.psu else np.arange(1, len(out) + 1).astype(str)
        if lf.replicate_prefix:
            for k, column in enumerate(_replicate_columns(lf.frame, lf.replicate_prefix)):
                out[f"rep_{k + 1}"] = as_number(lf.frame[column])
        for category, values in prepared.values.items():
            out["y" if category == "" and len(prepared.values) == 1 else f"y:{category}"] = values
        if prepared.denominator is not None:
            out["x"] = prepared.denominator
        for name in entry.domains:
            out[f"d:{name}"] = _domain_series(catalogue.domains.get(name), name, lf.frame).to_numpy()
        frames[entry.id] = out
    return frames
