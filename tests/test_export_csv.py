"""The export's Arrow CSV writer writes the same bytes as `toolkit.spreadsheet.write_csv_pair` (and so as pandas'
`to_csv`): not a cell may change."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.export import csvfile
from toolkit.export.csvfile import write_csv_files
from toolkit.spreadsheet import write_csv_pair

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e15, 123456789012345.6, 1e-4, 1e-5, 5e-324, 2.5, math.nan]),
)
texts = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["a,b", 'say "hi"', "two\nlines", "\r", "=1+1", "-5", "", " x ", "Ўзбек"]),
)
integers = st.one_of(st.none(), st.integers(-(2**62), 2**62))


def both_ways(frame: pd.DataFrame, replaced: dict[str, pd.Series], folder: Path) -> None:
    write_csv_pair(folder / "plain.csv", frame, folder / "labelled.csv", replaced)
    write_csv_files(folder / "fast.csv", frame, folder / "fast-labelled.csv", replaced)
    assert (folder / "fast.csv").read_bytes() == (folder / "plain.csv").read_bytes()
    assert (folder / "fast-labelled.csv").read_bytes() == (folder / "labelled.csv").read_bytes()


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(floats, integers, texts, texts, st.one_of(texts, integers, floats)), max_size=8),
    chunk=st.integers(1, 3),
)
def test_same_bytes_as_the_reference_writer(rows, chunk, tmp_path_factory):
    frame = pd.DataFrame(
        {
            "decimal": pd.Series([r[0] for r in rows], dtype="float64"),
            "code": pd.Series([r[1] for r in rows], dtype="Int64"),
            "text": pd.Series([r[2] for r in rows], dtype="string"),
            "str": pd.Series([r[3] for r in rows], dtype="str"),
            "mixed": pd.Series([r[4] for r in rows], dtype=object),
        }
    )
    # The labelled variant: codes shown as labels (some of them formulas), codes without a label kept as numbers.
    labels = frame["code"].map(lambda v: v if pd.isna(v) or v % 3 == 0 else ("=" if v % 2 else "label, ") + str(v))
    folder = tmp_path_factory.mktemp("csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csvfile, "ROWS_PER_CHUNK", chunk)  # several chunks in a few rows
        both_ways(frame, {"code": labels.astype(object)}, folder)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"only": ["", None, "x"]}),  # a lone empty field is written as "" (left to the reference)
        pd.DataFrame({"when": pd.to_datetime(["2026-11-20", None]), "n": [1.0, 2.0]}),  # left to the reference
        pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype="str")}),
        pd.DataFrame({"w": np.linspace(0.1, 1e6, 7), "z": [0.0, -0.0, np.nan, 1.0, -1.0, 0.0, 2.5]}),
        pd.DataFrame({"a,b": ["x", None], 'say "q"': pd.array([1, None], dtype="Int64")}),
        pd.DataFrame({"i": pd.Series([1, 1.0, True, "1", None], dtype=object), "t": ["a"] * 5}),
    ],
    ids=["lone-column", "dates", "no-rows", "weights-and-signed-zeros", "quoted-header", "equal-hashing-objects"],
)
def test_edge_tables(frame, tmp_path):
    both_ways(frame, {}, tmp_path)
