"""design.toml: the weighting design of a survey (format in docs/weights.md), parsed into `WeightDesign`.

Every key has a default except the PSU sample file, the listing file and the respondent result codes; file
names are resolved against the design file's folder and must exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.config import Key, load_toml, table
from toolkit.errors import EXIT_USAGE, ToolkitError, define, error
from toolkit.weights.core import EN, ER, IN, UE, level_label

DESIGN_INVALID = define("weights.design_invalid", "The design file is missing a setting or has a wrong value")


_COLUMN = Key("str", "a column name")
_CODES = Key("list[scalar]", "result codes")
_CALIBRATION = table(
    "calibration step",
    method=Key(
        "str",
        "none | rake | poststratify | linear | linear_bounded | logit",
        choices=("none", "rake", "poststratify", "linear", "linear_bounded", "logit"),
    ),
    margins=Key("str", "CSV with columns variable, level, target"),
    tol=Key("number", "convergence tolerance", above=0),
    max_iter=Key("int", "most iterations", minimum=1),
    bounds=Key("list[number]", "[L, U] on g = w_new/w_old", length=2, minimum=0),
    on_nonconvergence=Key("str", "error | warn", choices=("error", "warn")),
    derive=Key(
        "table",
        "derived calibration variables",
        each=table(
            "one derived variable",
            {
                "from": Key("str", "source column", required=True),
                "breaks": Key("list[number]", "left-closed interval bounds"),
                "labels": Key("list[str]", "labels of the intervals"),
                "map": Key("table", "value = label recode", each=Key("scalar")),
            },
        ),
    ),
)
_GUARDRAILS = {
    "classes": Key("list[str]", "weighting class columns"),
    "min_respondents": Key("int", "fewest respondents in a class", minimum=0),
    "max_factor": Key("number", "largest adjustment factor", minimum=1),
    "collapse": Key("table", '"class" = "class it merges into"', each=Key("str")),
}
# The design.toml format: the reference block of docs/weights.md is tested against it. Unknown sections and keys
# are errors (a mistyped [trimmming] must not silently leave weights untrimmed).
DESIGN_SCHEMA: dict[str, Key] = {
    "survey": table("", form_id=Key("str", "the household table"), roster=Key("str", "the roster repeat")),
    "columns": table(
        "column names in the DATA tables",
        dict.fromkeys(
            ("key", "parent_key", "hh_id", "stratum", "psu", "hh_no", "result", "listing_group", "selected_among"),
            _COLUMN,
        ),
    ),
    "psu_sample": table(
        "one row per selected PSU",
        {
            "file": Key("str", "the PSU sample file", required=True),
            **dict.fromkeys(
                (
                    "stratum", "psu", "mos", "stratum_mos", "n_h", "certainty", "segments", "segment_mos", "p1",
                    "frame_stratum", "frame_mos",
                ),
                _COLUMN,
            ),
        },
        required=True,
        frame_file=Key("str", "the full frame"),
    ),
    "listing": table(
        "one row per PSU (× listing group)",
        required=True,
        file=Key("str", "the listing file", required=True),
        psu=_COLUMN,
        group=_COLUMN,
        listed=_COLUMN,
        selected=_COLUMN,
    ),
    "disposition": table(
        "result codes",
        required=True,
        respondent=Key("list[scalar]", "completed interviews", required=True),
        nonrespondent=_CODES,
        ineligible=_CODES,
        unknown=_CODES,
        noninterview_file=Key("str", "selected households without a submission"),
    ),
    "nonresponse": table(
        "nonresponse adjustment",
        {"unknown_to_ineligible": Key("bool", "share unknowns out as ineligible"), **_GUARDRAILS},
    ),
    "trimming": table(
        "weight trimming",
        method=Key("str", "none | absolute | median | quantile", choices=("none", "absolute", "median", "quantile")),
        value=Key("number", "the cap", above=0),
        classes=Key("list[str]", "trimming classes"),
        cycles=Key("int", "trim-calibrate cycles", minimum=1),
    ),
    "calibration": table("calibration", households=_CALIBRATION, persons=_CALIBRATION),
    "individuals": table(
        "weights for an individual questionnaire",
        {
            "result": _COLUMN,
            "respondent": _CODES,
            "nonrespondent": _CODES,
            "ineligible": _CODES,
            "replicate_prefix": Key("str", "prefix of individual replicate columns"),
            **_GUARDRAILS,
        },
    ),
    "replicates": table(
        "replicate weights",
        method=Key("str", "none | jkn | jk1 | bootstrap | brr", choices=("none", "jkn", "jk1", "bootstrap", "brr")),
        n=Key("int", "bootstrap replicates", minimum=0),
        seed=Key("int", "random seed", minimum=0),
        fay=Key("number", "Fay's rho for brr", minimum=0, below=1),
        prefix=Key("str", "prefix of replicate columns"),
    ),
    "output": table(
        "names of the columns written",
        dict.fromkeys(
            (
                "base_weight", "status", "household_weight", "person_weight", "variance_stratum", "variance_psu",
                "individual_weight",
            ),
            _COLUMN,
        ),
    ),
}


def _bad(message: str, source: Path) -> ToolkitError:
    return ToolkitError(error(DESIGN_INVALID, message, file=str(source)), EXIT_USAGE)


@dataclass(frozen=True)
class CalibrationSpec:
    """One calibration step: method, margins file, derived variables, tolerance, bounds."""

    method: Literal["none", "rake", "poststratify", "linear", "linear_bounded", "logit"] = "none"
    margins: Path | None = None
    derive: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tol: float = 1e-6
    max_iter: int = 100
    bounds: tuple[float, float] = (0.0, math.inf)
    on_nonconvergence: Literal["error", "warn"] = "error"


@dataclass(frozen=True)
class WeightDesign:
    """The parsed design.toml (paths resolved against its folder). See docs/weights.md for every key."""

    source: Path
    form_id: str | None
    roster: str
    columns: Mapping[str, str]
    psu_sample: Mapping[str, Any]
    listing: Mapping[str, Any]
    disposition: Mapping[str, tuple[str, ...]]
    noninterview_file: Path | None
    nonresponse: Mapping[str, Any]
    trimming: Mapping[str, Any]
    households: CalibrationSpec
    persons: CalibrationSpec
    replicates: Mapping[str, Any]
    output: Mapping[str, str]
    individuals: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path | str) -> WeightDesign:  # noqa: PLR0915
        """Load and check a design.toml.

        Parameters:
            path: the design file; relative file names inside it are resolved against its folder.
        """
        source = Path(path)
        raw = load_toml(source, DESIGN_SCHEMA, what="weighting design")
        base = source.parent

        def path_of(value: Any, what: str, required: bool = True) -> Path | None:
            if not value:
                if required:
                    raise _bad(f"{what} is required", source)
                return None
            p = (base / str(value)).resolve()
            if not p.is_file():
                raise _bad(f"{what} = {value!r}: file not found ({p})", source)
            return p

        survey = raw.get("survey", {})
        columns = {
            "key": "KEY",
            "parent_key": "PARENT_KEY",
            "hh_id": "hh_id",
            "stratum": "id_stratum",
            "psu": "id_psu",
            "hh_no": "id_hh_no",
            "result": "hh_result",
            "listing_group": "",
            "selected_among": "",
        }
        unknown = set(raw.get("columns", {})) - set(columns)
        if unknown:
            raise _bad(f"unknown key(s) in [columns]: {', '.join(sorted(unknown))}", source)
        columns.update({k: str(v) for k, v in raw.get("columns", {}).items()})
        psu: dict[str, Any] = {  # column names, and the paths of the sample and frame files
            "stratum": "stratum",
            "psu": "psu",
            "mos": "mos",
            "stratum_mos": "",
            "n_h": "",
            "certainty": "",
            "segments": "",
            "segment_mos": "",
            "p1": "",
            "frame_file": "",
            "frame_stratum": "stratum",
            "frame_mos": "mos",
        }
        psu.update(raw.get("psu_sample", {}))
        psu["file"] = path_of(raw.get("psu_sample", {}).get("file"), "[psu_sample] file")
        psu["frame_file"] = path_of(psu.get("frame_file"), "[psu_sample] frame_file", required=False)
        if not psu["stratum_mos"] and psu["frame_file"] is None:
            raise _bad(
                "[psu_sample] needs stratum_mos (a column with M_h) or frame_file (the full frame)", source
            )
        listing: dict[str, Any] = {"psu": "psu", "group": "", "listed": "listed", "selected": "selected"}
        listing.update(raw.get("listing", {}))
        listing["file"] = path_of(raw.get("listing", {}).get("file"), "[listing] file")
        disp_raw = raw.get("disposition", {})
        disposition = {}
        for key, status in (("respondent", ER), ("nonrespondent", EN), ("ineligible", IN), ("unknown", UE)):
            disposition[status] = tuple(level_label(v) for v in disp_raw.get(key, []))
        if not disposition[ER]:
            raise _bad(
                "[disposition] respondent = [...] must list the result code(s) of completed interviews",
                source,
            )
        codes = [c for v in disposition.values() for c in v]
        if len(codes) != len(set(codes)):
            raise _bad("[disposition]: a result code is listed under two statuses", source)
        nonresponse = {
            "classes": [],
            "unknown_to_ineligible": True,
            "min_respondents": 20,
            "max_factor": 2.0,
            "collapse": {},
        }
        nonresponse.update(raw.get("nonresponse", {}))
        trimming = {"method": "none", "value": 3.5, "classes": [], "cycles": 5}
        trimming.update(raw.get("trimming", {}))
        if trimming["method"] not in ("none", "absolute", "median", "quantile"):
            raise _bad("[trimming] method must be none, absolute, median or quantile", source)
        cal = raw.get("calibration", {})

        def cal_spec(section: str) -> CalibrationSpec:
            c = cal.get(section, {})
            method = c.get("method", "none")
            if method not in ("none", "rake", "poststratify", "linear", "linear_bounded", "logit"):
                raise _bad(
                    f"[calibration.{section}] method must be none, rake, poststratify, linear, "
                    "linear_bounded or logit",
                    source,
                )
            bounds = tuple(float(b) for b in c.get("bounds", (0.0, math.inf)))
            if len(bounds) != 2 or not bounds[0] < 1 < bounds[1]:
                raise _bad(f"[calibration.{section}] bounds must be [L, U] with L < 1 < U", source)
            return CalibrationSpec(
                method=method,
                margins=path_of(
                    c.get("margins"), f"[calibration.{section}] margins", required=method != "none"
                ),
                derive=c.get("derive", {}),
                tol=float(c.get("tol", 1e-6)),
                max_iter=int(c.get("max_iter", 100)),
                bounds=(bounds[0], bounds[1]),
                on_nonconvergence=c.get("on_nonconvergence", "error"),
            )

        replicates = {"method": "none", "n": 200, "seed": 20260101, "fay": 0.0, "prefix": "repw_"}
        replicates.update(raw.get("replicates", {}))
        if replicates["method"] not in ("none", "jkn", "jk1", "bootstrap", "brr"):
            raise _bad("[replicates] method must be none, jkn, jk1, bootstrap or brr", source)
        if replicates["method"] == "bootstrap" and replicates["n"] == 1:  # 0 takes the default, 200
            raise _bad("[replicates] n = 1: the bootstrap needs at least 2 replicates (its scale is 1/(n − 1))", source)
        output = {
            "base_weight": "weight_base",
            "status": "resp_status",
            "household_weight": "weight_hh",
            "person_weight": "weight_person",
            "variance_stratum": "var_stratum",
            "variance_psu": "var_psu",
            "individual_weight": "weight_individual",
        }
        output.update({k: str(v) for k, v in raw.get("output", {}).items()})
        # Individual interviews (DHS practice): weight = household weight (× k) / the individual response rate
        # of the weighting class, for the eligible members who completed the individual questionnaire.
        ind_raw = raw.get("individuals", {})
        individuals: dict[str, Any] = {
            "result": str(ind_raw.get("result", "")),
            "classes": list(ind_raw.get("classes", [])),
            "replicate_prefix": str(ind_raw.get("replicate_prefix", "repi_")),
            "min_respondents": int(ind_raw.get("min_respondents", 0)),
            "max_factor": float(ind_raw.get("max_factor", math.inf)),
            "collapse": {str(k): str(v) for k, v in ind_raw.get("collapse", {}).items()},
        }
        for key, status in (("respondent", ER), ("nonrespondent", EN), ("ineligible", IN)):
            individuals[status] = tuple(level_label(v) for v in ind_raw.get(key, []))
        if individuals["result"] and not individuals[ER]:
            raise _bad(
                "[individuals] respondent = [...] must list the completed individual interview code(s)",
                source,
            )
        if individuals["result"] and individuals["replicate_prefix"].startswith(str(replicates["prefix"])):
            raise _bad(
                "[individuals] replicate_prefix must not start with [replicates] prefix (estimate selects "
                "replicate columns by prefix)",
                source,
            )
        return cls(
            source=source,
            form_id=survey.get("form_id"),
            roster=str(survey.get("roster", "hl")),
            columns=columns,
            psu_sample=psu,
            listing=listing,
            disposition=disposition,
            noninterview_file=path_of(
                disp_raw.get("noninterview_file"), "[disposition] noninterview_file", required=False
            ),
            nonresponse=nonresponse,
            trimming=trimming,
            households=cal_spec("households"),
            persons=cal_spec("persons"),
            replicates=replicates,
            output=output,
            individuals=individuals,
        )
