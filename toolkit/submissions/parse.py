"""Reading one submission into rows of strings (runs in worker processes)."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from lxml import etree

from toolkit.files import read_regular_file
from toolkit.submissions.plan import EMPTY_PLAN, FIELD, GROUP, JR_TEMPLATE, Plan
from toolkit.submissions.sources import UNREADABLE_HINTS, UNREADABLE_KINDS, as_utf8, classify
from toolkit.xml import UntrustedXMLError, parse_untrusted


class Record(NamedTuple):
    source: str
    form_id: str | None
    version: str | None
    instance_id: str
    rows: list[tuple]  # (table, KEY, PARENT_KEY, positions, values, extra), see Plan.freeze; main first
    unknown: frozenset[tuple[int, str]]
    submission_date: str | None = None
    problem: str | None = None  # set when the file could not be read
    kind: str = "instance"  # else encrypted, other, other_form, doctype, unreadable: nothing to keep
    number: int = -1  # the record's number in the run: its rows are packed by it (blocks.pack)
    digest: bytes = b""  # of the rows, to tell identical copies of a submission from differing ones
    keyed_from: str | None = None  # the instanceID its rows' keys start with, when it was re-keyed


def _instance_id(root: etree._Element) -> str | None:
    direct = root.get("instanceID")
    if direct:
        return direct.strip()
    # the first meta/instanceID, in any namespace or none
    for meta in root.iterchildren("{*}meta"):
        for item in meta.iterchildren("{*}instanceID"):
            return (item.text or "").strip() or None
    return None


def _walk(  # noqa: PLR0917 (the hot loop: positional arguments are the cheapest call)
    element: etree._Element,
    plan: dict[str, tuple],
    base: str,
    values: dict[str, str],
    key: str,
    prefix: str,
    counters: dict[str, int],
    nos: tuple[int, ...],
    rows: list[tuple],
    unknown: set[tuple[int, str]],
    table: int,
) -> None:
    """Put the answers under `element` into `values`; start a new row for each repeat instance.

    About 600 elements a household: the loop looks the tag up as it comes (no namespace in ODK's instances) and
    takes a field's text before anything else; namespaced and unknown elements take the slower way.
    """
    lookup = plan.get
    for child in element:
        tag = child.tag
        if tag.__class__ is not str:  # a comment or processing instruction
            continue
        spec = lookup(tag)
        if spec is None:
            if tag[0] == "{":
                tag = tag[tag.index("}") + 1 :]
                spec = lookup(tag)
            if spec is None:  # an element the form does not define: kept under its path
                path = f"{base}/{tag}"
                if len(child):
                    _walk(child, EMPTY_PLAN, path, values, key, f"{prefix}/{tag}", counters, nos, rows, unknown, table)
                else:
                    unknown.add((table, path))
                    if child.text:
                        values[path] = child.text
                continue
        kind = spec[0]
        if kind == FIELD:
            text = child.text
            if text is not None:
                values[spec[1]] = text
        elif kind == GROUP:
            _walk(
                child, spec[3], spec[1], values, key, f"{prefix}/{tag}", counters, nos, rows, unknown, table
            )
        elif child.get(JR_TEMPLATE) is None:  # a repeat template copied into an instance is not an answer
            # Central numbers repeat instances 1.. among the siblings in one parent (keyForStacks).
            n = counters.get(spec[1], 0) + 1
            counters[spec[1]] = n
            row_key = f"{key}{prefix}/{tag}[{n}]"
            row_values: dict[str, str] = {}
            row_nos = (*nos, n)
            rows.append((spec[2], row_key, key, row_nos, row_values))
            _walk(child, spec[3], spec[1], row_values, row_key, "", {}, row_nos, rows, unknown, spec[2])


def _read_submission(source: str, data: bytes, plan: Plan) -> Record:
    try:
        root = parse_untrusted(data)
    except UntrustedXMLError as exc:
        problem = "it declares a DOCTYPE; refusing it" if exc.reason == "doctype" else f"it {exc.message}"
        if exc.reason == "syntax":
            problem += "; a cut-off copy is the usual cause: copy it again"
        return Record(source, None, None, "", [], frozenset(), problem=problem)
    instance_id = _instance_id(root) or ""
    values: dict[str, str] = {}
    rows: list[tuple] = [(0, instance_id, None, (), values)]
    unknown: set[tuple[int, str]] = set()
    _walk(root, plan.tree, plan.root, values, instance_id, "", {}, (), rows, unknown, 0)
    rows = plan.freeze(rows, with_unknown=bool(unknown))
    return Record(source, root.get("id"), root.get("version"), instance_id, rows, frozenset(unknown))


def _read_item(name: str, data: bytes | None, plan: Plan) -> Record:
    """Read (when `data` is None, from the file `name`), classify and parse one candidate file."""
    if data is None:
        try:
            data = read_regular_file(name)
        except OSError as exc:
            problem = str(exc.strerror)
            return Record(name, None, None, "", [], frozenset(), problem=problem, kind="unreadable")
    utf8 = as_utf8(data)
    if utf8 is None:
        return Record(name, None, None, "", [], frozenset(), problem=UNREADABLE_HINTS["utf16"], kind="unreadable")
    kind, attrs = classify(utf8)
    if kind in UNREADABLE_KINDS:
        return Record(name, None, None, "", [], frozenset(), problem=UNREADABLE_HINTS[kind], kind="unreadable")
    if kind == "instance" and attrs.get("id") not in plan.form_ids:
        kind = "other_form"
    if kind != "instance":
        return Record(name, attrs.get("id"), None, "", [], frozenset(), kind=kind)
    return _read_submission(name, utf8, plan)


def read_batch(items: Sequence[tuple[str, bytes | None]], plan: Plan) -> list[Record]:
    """Read a batch of candidate files.

    The cyclic garbage collector is paused meanwhile: a household makes about a thousand tuples and dicts, which
    start a collection every few hundred allocations (a third of the reading time), and none of them is part of a
    reference cycle.
    """
    with cyclic_gc_paused():
        return [_read_item(name, data, plan) for name, data in items]


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector in the block (reference counting still frees everything that is
    not in a cycle); it runs again afterwards when it ran before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
