"""Export input: the DATA folder of `migkit ingest` (docs/tables.md), an IngestResult, or DataFrames."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.dataset import MANIFEST, DataFolder
from toolkit.dataset import Design as DataDesign
from toolkit.errors import (
    EXIT_USAGE,
    INPUT_UNREADABLE,
    ToolkitError,
    error,
)
from toolkit.xform import FormModel


@dataclass(frozen=True)
class Design:
    """Survey design columns, for `svyset` and `WEIGHT BY` (None = not known).

    `replicates` is what `migkit weights` records in tables.json: {"prefix": "repw_", "method": "jkn", "n":
    200}.
    """

    weight: str | None = None
    strata: str | None = None
    psu: str | None = None
    replicates: Mapping[str, Any] | None = None


# --- reading the DATA folder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceTable:
    """One DATA table: its name, node path, parent table, frame, column paths and weight columns."""

    name: str
    path: str
    parent: str | None
    frame: pd.DataFrame
    column_paths: Mapping[str, str]
    weights: tuple[str, ...] = ()
    replicate_weights: tuple[str, ...] = ()


def resolve_table_path(name: str, form: FormModel) -> str:
    """The node path of a table named `<form_id>` (the root) or `<form_id>-<repeat>`."""
    if name == form.form_id:
        return form.root
    repeat = name.removeprefix(f"{form.form_id}-")
    for node in form.repeats():
        if node.name == repeat:
            return node.path
    return form.root


def load_tables(data: Any, form: FormModel) -> tuple[list[SourceTable], Design]:
    """Tables from a DATA folder (tables.json + parquet), a mapping name -> DataFrame, or an IngestResult."""
    if isinstance(data, (str, os.PathLike)):
        return read_data_folder(Path(data), form)
    tables = getattr(data, "tables", data)
    if not isinstance(tables, Mapping):
        raise TypeError(
            "data must be a DATA folder, a mapping of table name -> DataFrame, or an IngestResult"
        )
    # An IngestResult (toolkit.submissions) also carries table paths, parents and column paths.
    table_paths: Mapping[str, str] = getattr(data, "table_paths", None) or {}
    parents: Mapping[str, str | None] = getattr(data, "parents", None) or {}
    column_infos: Mapping[str, Any] = getattr(data, "columns", None) or {}
    out = []
    for name, frame in tables.items():
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"table {name!r} is not a DataFrame")
        path = table_paths.get(name) or resolve_table_path(str(name), form)
        if path not in form.nodes:
            path = resolve_table_path(str(name), form)
        if name in parents:
            parent = parents[name]
        elif path == form.root:
            parent = None
        else:
            enclosing = [n for n in form.ancestors(path) if n.kind == "repeat"]
            parent = f"{form.form_id}-{enclosing[-1].name}" if enclosing else form.form_id
        column_paths = {
            info.name: info.path for info in column_infos.get(name, ()) if getattr(info, "path", None)
        }
        out.append(SourceTable(str(name), path, parent, frame, column_paths))
    return out, Design()


def read_data_folder(folder: Path, form: FormModel) -> tuple[list[SourceTable], Design]:
    """Tables, column paths, weights and design from a DATA folder (`DataFolder`: tables.json and its Parquet files)."""
    data = DataFolder.read(folder)
    if data.form_id != form.form_id:
        raise ToolkitError(
            error(
                INPUT_UNREADABLE,
                f"The DATA folder is for form {data.form_id!r}, not {form.form_id!r}; pass the matching --form.",
                file=str(folder / MANIFEST),
            ),
            EXIT_USAGE,
        )
    out = []
    for table in data.tables:
        path = table.path or resolve_table_path(table.name, form)
        if path not in form.nodes:
            path = resolve_table_path(table.name, form)
        out.append(
            SourceTable(
                table.name,
                path,
                table.parent,
                data.load(table.name),
                table.column_paths,
                table.weights,
                table.replicate_weights,
            )
        )
    # `migkit weights` records per table `weights` and `replicate_weights`, and the variance `design`.
    recorded = data.design or DataDesign()
    replicates = dataclasses.asdict(recorded.replicates) if recorded.replicates else None
    return out, Design(recorded.weight, recorded.strata, recorded.psu, replicates)


# --- building a table's variables ---------------------------------------------------------------------------


def is_weight(name: str, listed: Iterable[str]) -> bool:
    """Whether a column is a survey weight: `w_*`, `weight*`, or listed by `migkit weights`."""
    return name.startswith(("w_", "weight")) or name in set(listed)
