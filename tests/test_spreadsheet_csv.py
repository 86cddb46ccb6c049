"""`write_csv` and `write_csv_pair` write the same bytes as pandas' `to_csv`, and the export's Arrow writer the same
bytes as `write_csv_pair` (their faster paths must not change a single cell)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import spreadsheet
from toolkit.export import csvfile
from toolkit.export.csvfile import write_csv_files
from toolkit.spreadsheet import safe_frame, write_csv, write_csv_pair


def pandas_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    safe_frame(frame).to_csv(path, index=False, encoding="utf-8-sig")
    return path.read_bytes()


def written_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    write_csv(path, frame)
    return path.read_bytes()


floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e15, 123456789012345.6, 1e-4, 1e-5, 5e-324, 2.5, math.nan]),
)
texts = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(['a,b', 'say "hi"', "two\nlines", "\r", "=1+1", ""]))
integers = st.one_of(st.none(), st.integers(-(2**62), 2**62))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(floats, integers, texts, texts, st.one_of(texts, integers, floats)), max_size=8),
    chunk=st.integers(1, 3),
)
def test_same_bytes_as_pandas(rows, chunk, tmp_path_factory):
    frame = pd.DataFrame(
        {
            "decimal": pd.Series([r[0] for r in rows], dtype="float64"),
            "code": pd.Series([r[1] for r in rows], dtype="Int64"),
            "text": pd.Series([r[2] for r in rows], dtype="string"),
            "str": pd.Series([r[3] for r in rows], dtype="str"),
            "labelled": pd.Series([r[4] for r in rows], dtype=object),
        }
    )
    # The labelled variant: the code column shown as text labels (some of them formulas), the rest shared.
    labels = frame["code"].map(lambda v: None if pd.isna(v) else ("=" if v % 2 else "label ") + str(v)).astype(object)
    variant = frame.assign(code=labels)
    folder = tmp_path_factory.mktemp("csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spreadsheet, "CSV_ROWS_PER_CHUNK", chunk)  # several chunks in a few rows
        assert written_bytes(frame, folder / "fast.csv") == pandas_bytes(frame, folder / "pandas.csv")
        write_csv_pair(folder / "plain.csv", frame, folder / "labelled.csv", {"code": labels})
        assert (folder / "plain.csv").read_bytes() == pandas_bytes(frame, folder / "pandas.csv")
        assert (folder / "labelled.csv").read_bytes() == pandas_bytes(variant, folder / "pandas-labelled.csv")
        # The export's Arrow writer of the same pair (toolkit.export.csvfile), chunked as finely.
        patch.setattr(csvfile, "ROWS_PER_CHUNK", chunk)
        write_csv_files(folder / "arrow.csv", frame, folder / "arrow-labelled.csv", {"code": labels})
        assert (folder / "arrow.csv").read_bytes() == (folder / "plain.csv").read_bytes()
        assert (folder / "arrow-labelled.csv").read_bytes() == (folder / "labelled.csv").read_bytes()


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"only": ["", None, "x"]}),  # a lone empty field is written as ""
        pd.DataFrame({"when": pd.to_datetime(["2026-11-20", None])}),  # left to pandas
        pd.DataFrame({"flag": [True, False]}),  # left to pandas
        pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype="str")}),
        pd.DataFrame(),
        pd.DataFrame({"w": np.linspace(0.1, 1e6, 7)}),
    ],
    ids=["lone-empty", "dates", "booleans", "no-rows", "no-columns", "weights"],
)
def test_edge_tables(frame, tmp_path):
    assert written_bytes(frame, tmp_path / "fast.csv") == pandas_bytes(frame, tmp_path / "pandas.csv")
