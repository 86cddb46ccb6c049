"""Submission rows packed column-wise (Arrow arrays), a batch of submissions at a time.

A household of the template is ~600 answers in six rows; held as Python tuples of strings, 100,000 of them take
several gigabytes in the parent process. Each worker packs its batch into one block per table (an Arrow buffer
per column, the record each row belongs to) before sending it, so the parent holds compact columns from the start
and builds the typed tables from them (columns.build_tables).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from toolkit.submissions.parse import Record, read_batch
from toolkit.submissions.plan import Plan

# Repeat position not given for a depth (a row of an outer level): stored as -1, shown as missing.
NO_POSITION = -1


class Block(NamedTuple):
    """The rows of one table from a batch of submissions."""

    record: np.ndarray  # number of the record (submission) each row belongs to, int64
    key: pa.Array  # KEY
    parent: pa.Array  # PARENT_KEY (null on the main table)
    positions: tuple[np.ndarray, ...]  # repeat instance number per depth, NO_POSITION where absent
    # one string array per field of the table, in the plan's order; None when the batch has no answer there (skip
    # logic leaves most columns of a batch empty)
    values: tuple[pa.Array | None, ...]
    extras: tuple[tuple[int, dict[str, str]], ...]  # (row in the block, {path: text}) of undefined elements


def pack(records: Sequence[Record], plan: Plan, first_number: int) -> tuple[list[Record], list[Block | None]]:
    """The records without their rows (numbered from `first_number`) and their rows as one block per table."""
    per_table: list[list[tuple[int, tuple]]] = [[] for _ in plan.tables]
    bare = []
    for offset, record in enumerate(records):
        number = first_number + offset
        for row in record.rows:
            per_table[row[0]].append((number, row))
        bare.append(record._replace(rows=[], number=number, digest=_digest(record.rows)))
    blocks: list[Block | None] = []
    for index, rows in enumerate(per_table):
        if not rows:
            blocks.append(None)
            continue
        depth = len(plan.tables[index].repeats)
        field_count = len(plan.field_paths[index])
        columns = list(zip(*(row[4] for _, row in rows), strict=True)) if field_count else []
        blocks.append(
            Block(
                record=np.fromiter((number for number, _ in rows), dtype=np.int64, count=len(rows)),
                key=pa.array([row[1] for _, row in rows], type=pa.string()),
                parent=pa.array([row[2] for _, row in rows], type=pa.string()),
                positions=tuple(
                    np.fromiter(
                        (row[3][level] if len(row[3]) > level else NO_POSITION for _, row in rows),
                        dtype=np.int64,
                        count=len(rows),
                    )
                    for level in range(depth)
                ),
                values=tuple(
                    None if column.count(None) == len(column) else pa.array(column, type=pa.string())
                    for column in columns
                ),
                extras=tuple((position, row[5]) for position, (_, row) in enumerate(rows) if row[5]),
            )
        )
    return bare, blocks


_WORKER_PLAN: Plan | None = None


def init_worker(plan: Plan) -> None:
    global _WORKER_PLAN  # noqa: PLW0603 (a process-pool initializer can only hand data over through a global)
    _WORKER_PLAN = plan


def read_and_pack(job: tuple[int, list[tuple[str, bytes | None]]]) -> tuple[list[Record], list[Block | None]]:
    """In a worker: read a batch of files and pack its rows, numbered from the batch's first record."""
    assert _WORKER_PLAN is not None
    first_number, chunk = job
    return pack(read_batch(chunk, _WORKER_PLAN), _WORKER_PLAN, first_number)


def _digest(rows: list[tuple]) -> bytes:
    """A digest of the rows' values. The pickler's memo is off: the bytes depend on the values only, not on which
    equal strings happen to be one object."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True
    pickler.dump(rows)
    return hashlib.blake2b(buffer.getvalue(), digest_size=16).digest()
