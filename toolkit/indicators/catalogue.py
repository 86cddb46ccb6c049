"""The indicator catalogue: a TOML file a methodologist reviews (docs/indicators.md describes every key).

Loading checks the file's own shape (unknown keys, statistics, missing-value rules, thresholds); `check_against`
then checks every entry against the tables of a DATA folder and the form's choice lists, all at once, before
anything is computed.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from toolkit.errors import EXIT_USAGE, INPUT_MISSING, INPUT_UNREADABLE, Issue, ToolkitError, define, error
from toolkit.indicators.filters import FilterSyntaxError, Node, parse_filter

if TYPE_CHECKING:
    from toolkit.estimate import ProportionInterval

CATALOGUE_INVALID = define("indicators.catalogue_invalid", "The indicator catalogue has a wrong or missing setting")
UNKNOWN_VARIABLE = define("indicators.unknown_variable", "A catalogue entry names a variable its table does not have")
UNKNOWN_CODE = define("indicators.unknown_code", "A catalogue entry names a choice code that is not in the list")
NO_WEIGHT = define("indicators.no_weight", "A table level has no weight column in the data")
UNKNOWN_LEVEL = define("indicators.unknown_level", "A catalogue entry names a level the catalogue does not define")

Statistic = Literal["proportion", "mean", "median", "quantile", "ratio", "total", "distribution", "shares"]
MissingRule = Literal["exclude", "as_no", "category"]
STATISTICS: tuple[str, ...] = ("proportion", "mean", "median", "quantile", "ratio", "total", "distribution", "shares")
MISSING_RULES: tuple[str, ...] = ("exclude", "as_no", "category")
PROPORTION_CIS: tuple[str, ...] = ("logit", "korn-graubard", "wald")
# Numeric statistics have one honest rule: a "don't know" amount is not a zero.
NUMERIC_STATISTICS = frozenset({"mean", "median", "quantile", "ratio", "total"})


class CatalogueError(ToolkitError):
    """The catalogue cannot be used; carries every problem found (exit code 2: fix the catalogue)."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        first, *rest = issues
        if rest:
            # the one line the command prints names every problem; `issues` keeps them one by one
            text = " | ".join(i.format() for i in issues)
            first = Issue(first.code, first.severity, f"{len(issues)} problems: {text}", first.location)
        super().__init__(first, EXIT_USAGE, more=tuple(rest))


@dataclass(frozen=True)
class Join:
    """Columns brought into a level's table from another table of the same DATA folder.

    Parameters:
        table: the other table (its name in tables.json).
        on: this table's key column → the other table's key column (e.g. hh_id → hh_id, rm_line → hl_no).
        columns: new name → column of the other table.
    """

    table: str
    on: Mapping[str, str]
    columns: Mapping[str, str]


@dataclass(frozen=True)
class Level:
    """A table level (household, person, migrant abroad, returnee, woman, domestic worker)."""

    name: str
    table: str
    weight: str
    universe: str | None = None
    joins: tuple[Join, ...] = ()
    title: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Domain:
    """A variable to cross by, optionally recoded: `breaks` (numeric cut, left-closed) or `map` (code → label)."""

    name: str
    variable: str
    title: Mapping[str, str] = field(default_factory=dict)
    breaks: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    map: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Quality:
    """Publication thresholds (DHS: fewer than 25 unweighted cases suppressed, 25–49 in parentheses)."""

    suppress_below: int = 25
    parentheses_below: int = 50
    cv_above: float = 0.30
    effective_n_below: int = 0


@dataclass(frozen=True)
class Indicator:
    """One catalogue entry (see docs/indicators.md for each field)."""

    id: str
    title: Mapping[str, str]
    definition: Mapping[str, str]
    source: str
    level: str
    statistic: Statistic
    missing: MissingRule
    variable: str | None = None
    denominator: str | None = None
    universe: str | None = None
    yes: tuple[str, ...] = ()
    condition: str | None = None
    count: bool = False
    quantile: float = 0.5
    domains: tuple[str, ...] = ()
    ci: ProportionInterval = "logit"
    unit: Mapping[str, str] = field(default_factory=dict)
    scale: float = 1.0


@dataclass(frozen=True)
class Catalogue:
    """A whole catalogue."""

    path: str
    name: Mapping[str, str]
    levels: Mapping[str, Level]
    domains: Mapping[str, Domain]
    indicators: tuple[Indicator, ...]
    quality: Quality
    missing_codes: tuple[str, ...] = ("98", "99")
    missing_numbers: tuple[float, ...] = (-98.0, -99.0)
    confidence: float = 0.95

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Catalogue:
        """Read a catalogue TOML file and check its shape (every problem at once)."""
        source = Path(path)
        if not source.is_file():
            raise ToolkitError(error(INPUT_MISSING, "The catalogue file does not exist.", file=str(source)), EXIT_USAGE)
        try:
            raw = tomllib.loads(source.read_text(encoding="utf-8-sig"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ToolkitError(
                error(INPUT_UNREADABLE, f"The catalogue is not valid TOML: {exc}.", file=str(source)), EXIT_USAGE
            ) from None
        return parse_catalogue(raw, where=str(source))


def close_matches(name: str, candidates: Sequence[str]) -> str:
    """' (did you mean a, b?)' or an empty string."""
    found = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(found)}?)" if found else ""


class _Reader:
    """Collects shape problems while reading the TOML tables."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.issues: list[Issue] = []

    def problem(self, place: str, message: str, code: str = CATALOGUE_INVALID) -> None:
        self.issues.append(error(code, f"{place}: {message}", file=self.where, variable=place))

    def keys(self, table: Mapping[str, Any], allowed: set[str], place: str) -> None:
        for key in table:
            if key not in allowed:
                self.problem(
                    place,
                    f"unknown key {key!r}{close_matches(key, sorted(allowed))}; allowed: {', '.join(sorted(allowed))}",
                )

    def text(self, table: Mapping[str, Any], key: str, place: str, *, required: bool = True) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                self.problem(place, f'needs {key} = "..."')
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(place, f"{key} must be a non-empty string")
            return None
        return value

    def languages(self, table: Mapping[str, Any], key: str, place: str, *, required: bool = True) -> dict[str, str]:
        value = table.get(key)
        if value is None:
            if required:
                self.problem(place, f'needs {key} = {{ en = "...", ru = "..." }}')
            return {}
        if isinstance(value, str):
            return {"en": value}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            self.problem(place, f'{key} must be a table of texts by language, e.g. {{ en = "...", ru = "..." }}')
            return {}
        if required and "en" not in value:
            self.problem(place, f"{key} needs at least the English text (en)")
        return dict(value)

    def expression(self, text: str | None, place: str) -> None:
        if text is None:
            return
        try:
            parse_filter(text)
        except FilterSyntaxError as exc:
            self.problem(place, f"the expression does not parse: {exc}")


_LEVEL_KEYS = {"table", "weight", "universe", "join", "title"}
_DOMAIN_KEYS = {"variable", "title", "breaks", "labels", "map"}
_INDICATOR_KEYS = {
    "id",
    "title",
    "definition",
    "source",
    "level",
    "statistic",
    "missing",
    "variable",
    "denominator",
    "universe",
    "yes",
    "condition",
    "count",
    "quantile",
    "domains",
    "ci",
    "unit",
    "scale",
}


def parse_catalogue(raw: Mapping[str, Any], *, where: str = "catalogue") -> Catalogue:  # noqa: PLR0912, PLR0915
    """Build a Catalogue from parsed TOML; every shape problem is collected and raised together."""
    reader = _Reader(where)
    reader.keys(raw, {"catalogue", "defaults", "quality", "levels", "domains", "indicator"}, "top level")
    head = raw.get("catalogue", {})
    reader.keys(head, {"name", "version"}, "[catalogue]")
    name = reader.languages(head, "name", "[catalogue]", required=False) or {"en": Path(where).stem}
    defaults = raw.get("defaults", {})
    reader.keys(defaults, {"confidence", "missing_codes", "missing_numbers", "ci"}, "[defaults]")
    confidence = defaults.get("confidence", 0.95)
    if not isinstance(confidence, float) or not 0.5 < confidence < 1:
        reader.problem("[defaults]", "confidence must be a number between 0.5 and 1, e.g. 0.95")
        confidence = 0.95
    default_ci = defaults.get("ci", "logit")
    if default_ci not in PROPORTION_CIS:
        reader.problem("[defaults]", f"ci must be one of {', '.join(PROPORTION_CIS)}")
    missing_codes = tuple(str(c) for c in defaults.get("missing_codes", ["98", "99"]))
    missing_numbers = tuple(float(c) for c in defaults.get("missing_numbers", [-98, -99]))
    quality_raw = raw.get("quality", {})
    reader.keys(quality_raw, {"suppress_below", "parentheses_below", "cv_above", "effective_n_below"}, "[quality]")
    quality = Quality(
        suppress_below=int(quality_raw.get("suppress_below", 25)),
        parentheses_below=int(quality_raw.get("parentheses_below", 50)),
        cv_above=float(quality_raw.get("cv_above", 0.30)),
        effective_n_below=int(quality_raw.get("effective_n_below", 0)),
    )
    if quality.parentheses_below < quality.suppress_below:
        reader.problem("[quality]", "parentheses_below must be ≥ suppress_below")
    levels: dict[str, Level] = {}
    for level_name, spec in (raw.get("levels") or {}).items():
        place = f"[levels.{level_name}]"
        if not isinstance(spec, dict):
            reader.problem(place, "must be a table")
            continue
        reader.keys(spec, _LEVEL_KEYS, place)
        joins = []
        for k, join in enumerate(spec.get("join", [])):
            jplace = f"{place} join {k + 1}"
            if not isinstance(join, dict) or not isinstance(join.get("table"), str):
                reader.problem(jplace, 'needs table = "...", on = { key = "key" }, columns = [...]')
                continue
            reader.keys(join, {"table", "on", "columns"}, jplace)
            on = join.get("on") or {}
            columns = join.get("columns") or []
            if not isinstance(on, dict) or not on:
                reader.problem(
                    jplace, "on must map this table's key columns to the other's, e.g. { hh_id = \"hh_id\" }"
                )
                on = {}
            column_map = {c: c for c in columns} if isinstance(columns, list) else dict(columns)
            joins.append(Join(join["table"], {str(a): str(b) for a, b in on.items()}, column_map))
        universe = reader.text(spec, "universe", place, required=False)
        reader.expression(universe, place + " universe")
        levels[level_name] = Level(
            name=level_name,
            table=reader.text(spec, "table", place) or "",
            weight=reader.text(spec, "weight", place) or "",
            universe=universe,
            joins=tuple(joins),
            title=reader.languages(spec, "title", place, required=False) or {"en": level_name},
        )
    domains: dict[str, Domain] = {}
    for domain_name, spec in (raw.get("domains") or {}).items():
        place = f"[domains.{domain_name}]"
        if not isinstance(spec, dict):
            reader.problem(place, "must be a table")
            continue
        reader.keys(spec, _DOMAIN_KEYS, place)
        breaks = tuple(float(b) for b in spec.get("breaks", []))
        labels = tuple(str(b) for b in spec.get("labels", []))
        if breaks and len(labels) != len(breaks) - 1:
            reader.problem(
                place, f"{len(breaks)} breaks make {len(breaks) - 1} groups but {len(labels)} labels are given"
            )
        if breaks and list(breaks) != sorted(breaks):
            reader.problem(place, "breaks must increase")
        domains[domain_name] = Domain(
            name=domain_name,
            variable=reader.text(spec, "variable", place) or "",
            title=reader.languages(spec, "title", place, required=False) or {"en": domain_name},
            breaks=breaks,
            labels=labels,
            map={str(k): str(v) for k, v in (spec.get("map") or {}).items()},
        )
    indicators: list[Indicator] = []
    seen: set[str] = set()
    for k, spec in enumerate(raw.get("indicator", [])):
        ident = spec.get("id") if isinstance(spec, dict) else None
        place = f"indicator {ident or k + 1}"
        if not isinstance(spec, dict):
            reader.problem(place, "must be a table ([[indicator]])")
            continue
        reader.keys(spec, _INDICATOR_KEYS, place)
        if not isinstance(ident, str) or not ident.replace("_", "").isalnum():
            reader.problem(place, "id must be a name of letters, digits and _")
            ident = f"entry_{k + 1}"
        if ident in seen:
            reader.problem(place, "id is used twice")
        seen.add(ident)
        statistic = spec.get("statistic")
        if statistic not in STATISTICS:
            reader.problem(
                place,
                f"statistic {statistic!r} is not one of {', '.join(STATISTICS)}"
                f"{close_matches(str(statistic), STATISTICS)}",
            )
            statistic = "mean"
        missing = spec.get("missing")
        if missing not in MISSING_RULES:
            reader.problem(
                place,
                f"missing = {missing!r}: state the missing-value rule, one of "
                f"{', '.join(MISSING_RULES)} (never implicit)",
            )
            missing = "exclude"
        if statistic in NUMERIC_STATISTICS and missing != "exclude":
            reader.problem(place, f'a {statistic} takes missing = "exclude" (a don\'t-know amount is not a zero)')
        if statistic == "distribution" and missing == "as_no":
            reader.problem(place, 'a distribution takes missing = "exclude" or "category"')
        level = spec.get("level")
        if level not in levels:
            reader.problem(
                place,
                f"level {level!r} is not defined in [levels]{close_matches(str(level), list(levels))}",
                UNKNOWN_LEVEL,
            )
        variable = spec.get("variable")
        count = bool(spec.get("count", False))
        if variable is None and not (statistic == "total" and count):
            reader.problem(place, 'needs variable = "..."')
        denominator = spec.get("denominator")
        if statistic == "ratio" and not denominator:
            reader.problem(place, 'a ratio needs denominator = "..."')
        yes = tuple(str(c) for c in spec.get("yes", []))
        condition = spec.get("condition")
        if statistic == "proportion" and not yes and not condition:
            reader.problem(place, 'a proportion needs yes = ["codes"] or condition = "..."')
        reader.expression(condition, place + " condition")
        universe = spec.get("universe")
        reader.expression(universe, place + " universe")
        quantile = float(spec.get("quantile", 0.5))
        if not 0 < quantile < 1:
            reader.problem(place, "quantile must be between 0 and 1 (0.8 for the 80th percentile)")
        ci = spec.get("ci", default_ci)
        if ci not in PROPORTION_CIS:
            reader.problem(place, f"ci must be one of {', '.join(PROPORTION_CIS)}")
        entry_domains = spec.get("domains", [])
        if not isinstance(entry_domains, list):
            reader.problem(place, "domains must be a list of names")
            entry_domains = []
        indicators.append(
            Indicator(
                id=ident,
                title=reader.languages(spec, "title", place),
                definition=reader.languages(spec, "definition", place),
                source=reader.text(spec, "source", place) or "",
                level=str(level),
                statistic=cast(Statistic, statistic),  # one of STATISTICS: checked above
                missing=cast(MissingRule, missing),  # one of MISSING_RULES: checked above
                variable=variable,
                denominator=denominator,
                universe=universe,
                yes=yes,
                condition=condition,
                count=count,
                quantile=0.5 if statistic == "median" else quantile,
                domains=tuple(str(d) for d in entry_domains),
                ci=cast("ProportionInterval", str(ci)),  # one of PROPORTION_CIS: checked above
                unit=reader.languages(spec, "unit", place, required=False),
                scale=float(spec.get("scale", 1.0)),
            )
        )
    if not indicators:
        reader.problem("[[indicator]]", "the catalogue has no indicator entries")
    if reader.issues:
        raise CatalogueError(reader.issues)
    return Catalogue(
        path=where,
        name=name,
        levels=levels,
        domains=domains,
        indicators=tuple(indicators),
        quality=quality,
        missing_codes=missing_codes,
        missing_numbers=missing_numbers,
        confidence=confidence,
    )


def parsed(text: str | None) -> Node | None:
    return None if text is None else parse_filter(text)
