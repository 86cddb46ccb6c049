"""The export's Arrow CSV writer on tables the property test of tests/test_spreadsheet_csv.py does not make: the
same bytes as `toolkit.spreadsheet.write_csv_pair`, or that writer itself for what Arrow is not given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.export.csvfile import write_csv_files, write_csv_parts
from toolkit.spreadsheet import write_csv_pair


def assert_same_bytes(frame: pd.DataFrame, replaced: dict[str, pd.Series], folder: Path) -> None:
    write_csv_pair(folder / "plain.csv", frame, folder / "labelled.csv", replaced)
    write_csv_files(folder / "fast.csv", frame, folder / "fast-labelled.csv", replaced)
    assert (folder / "fast.csv").read_bytes() == (folder / "plain.csv").read_bytes()
    assert (folder / "fast-labelled.csv").read_bytes() == (folder / "labelled.csv").read_bytes()


codes = pd.array([1, 2, None, 3, -98], dtype="Int64")


@pytest.mark.parametrize(
    ("frame", "replaced"),
    [
        (pd.DataFrame({"only": ["", None, "x"]}), {}),  # a lone empty field is written as "" (left to the reference)
        (pd.DataFrame({"when": pd.to_datetime(["2026-11-20", None]), "n": [1.0, 2.0]}), {}),  # dates: the reference
        (pd.DataFrame({"a": pd.Series([], dtype="float64"), "b": pd.Series([], dtype="str")}), {}),
        (pd.DataFrame({"w": np.linspace(0.1, 1e6, 7), "z": [0.0, -0.0, np.nan, 1.0, -1.0, 0.0, 2.5]}), {}),
        (pd.DataFrame({"a,b": ["x", None], 'say "q"': pd.array([1, None], dtype="Int64")}), {}),
        (pd.DataFrame({"i": pd.Series([1, 1.0, True, "1", None], dtype=object), "t": ["a"] * 5}), {}),
        (pd.DataFrame({"i": pd.Series([0.0, -0.0, 2, "=x", np.nan], dtype=object), "t": ["a"] * 5}), {}),
        # labelled codes beside unlabelled ones (as numbers), one label a formula, one with a comma
        (
            pd.DataFrame({"code": codes, "t": ["a"] * 5}),
            {"code": pd.Series(["Yes", "No, never", None, 3, "=Refused"], dtype=object)},
        ),
    ],
    ids=[
        "lone-column",
        "dates",
        "no-rows",
        "weights-and-signed-zeros",
        "quoted-header",
        "equal-hashing-objects",
        "signed-zeros-as-objects",
        "labelled-codes",
    ],
)
def test_edge_tables(frame, replaced, tmp_path):
    assert_same_bytes(frame, replaced, tmp_path)
    # the same table given two rows at a time (what the export does with a large table)
    parts = [
        (frame.iloc[start : start + 2], {name: column.iloc[start : start + 2] for name, column in replaced.items()})
        for start in range(0, max(len(frame), 1), 2)
    ]
    write_csv_parts(tmp_path / "parts.csv", tmp_path / "parts-labelled.csv", parts)
    assert (tmp_path / "parts.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert (tmp_path / "parts-labelled.csv").read_bytes() == (tmp_path / "labelled.csv").read_bytes()
