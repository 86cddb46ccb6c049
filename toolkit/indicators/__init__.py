"""`migkit indicators`: the survey's headline tables from a catalogue (indicators/ncamig.toml), with design-based
standard errors, intervals, quality flags and publication files (XLSX, CSV, HTML)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from toolkit.indicators.catalogue import Catalogue, CatalogueError, Indicator, Level, parse_catalogue
from toolkit.indicators.compute import (
    IndicatorRow,
    IndicatorsResult,
    IndicatorSummary,
    analysis_frames,
    compute_indicators,
)
from toolkit.indicators.render import render_html, write_outputs
from toolkit.xform import FormModel


def make_indicators(
    data_dir: str | Path,
    catalogue: str | Path | Catalogue,
    *,
    out_dir: str | Path,
    form: FormModel | None = None,
    language: str = "en",
    variance: str = "design",
    title: str | None = None,
) -> IndicatorsResult:
    """Compute a catalogue's indicators and write indicators.xlsx, .csv and .html into `out_dir`.

    Parameters:
        data_dir: the DATA folder (after `migkit weights`).
        catalogue: the catalogue file or a loaded Catalogue.
        out_dir: where the three files go.
        form: the form, for choice-code checks and labels.
        language: "en" or "ru".
        variance: "design" (replicate weights when the weighting made them) or "taylor".
        title: the page title (default: the catalogue's name).
    """
    loaded = catalogue if isinstance(catalogue, Catalogue) else Catalogue.from_file(catalogue)
    result = compute_indicators(data_dir, loaded, form=form, language=language, variance=variance)
    name = title or loaded.name.get(language) or loaded.name.get("en", "Indicators")
    files = write_outputs(result, Path(out_dir), title=name)
    return dataclasses.replace(result, files=tuple(str(f) for f in files))


__all__ = [
    "Catalogue",
    "CatalogueError",
    "Indicator",
    "IndicatorRow",
    "IndicatorSummary",
    "IndicatorsResult",
    "Level",
    "analysis_frames",
    "compute_indicators",
    "make_indicators",
    "parse_catalogue",
    "render_html",
    "write_outputs",
]
