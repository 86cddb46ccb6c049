"""Survey weights: base weights, nonresponse adjustment, trimming, calibration, replicates (specs/weights.md).

`core` (diagnostics, nonresponse, trimming, base weights) and `calibration` (raking, post-stratification,
GREG) hold the numpy routines that work on any table; the full chain driven by design.toml for an ingested
survey is `base` (tables, derived columns, base weights), `chain` (nonresponse, trimming, calibration, rerun per
replicate) and `run` (`compute_weights`: the chain, the DATA folder's new columns, report and histogram; and
`rake_file`); `config` parses design.toml, `replicates` builds PSU-level replicate factors and `io` reads and
writes tables.
"""

from toolkit.weights.base import derive_columns
from toolkit.weights.calibration import (
    CalibrationResult,
    Margin,
    calibrate,
    check_margins,
    margins_from_frame,
    poststratify,
    rake,
)
from toolkit.weights.config import WeightDesign
from toolkit.weights.core import (
    AdjustmentResult,
    TrimResult,
    WeightingError,
    first_stage_probabilities,
    nonresponse_adjust,
    summary_by,
    trim,
    trim_cap,
    weight_summary,
)
from toolkit.weights.io import read_table, write_table
from toolkit.weights.replicates import ReplicateFactors, replicate_factors
from toolkit.weights.run import RakeFileResult, WeightResult, compute_weights, rake_file

__all__ = [
    "AdjustmentResult",
    "CalibrationResult",
    "Margin",
    "RakeFileResult",
    "ReplicateFactors",
    "TrimResult",
    "WeightDesign",
    "WeightResult",
    "WeightingError",
    "calibrate",
    "check_margins",
    "compute_weights",
    "derive_columns",
    "first_stage_probabilities",
    "margins_from_frame",
    "nonresponse_adjust",
    "poststratify",
    "rake",
    "rake_file",
    "read_table",
    "replicate_factors",
    "summary_by",
    "trim",
    "trim_cap",
    "weight_summary",
    "write_table",
]
