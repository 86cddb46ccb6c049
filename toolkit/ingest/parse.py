"""Reading one submission into rows of strings (runs in worker processes)."""

from __future__ import annotations

from typing import NamedTuple

from lxml import etree

from toolkit.files import read_regular_file
from toolkit.ingest.plan import _EMPTY_PLAN, _FIELD, _GROUP, _JR_TEMPLATE, _Plan
from toolkit.ingest.sources import UNREADABLE_HINTS, UNREADABLE_KINDS, _classify, as_utf8
from toolkit.xml import UntrustedXMLError, parse_untrusted


class _Record(NamedTuple):
    source: str
    form_id: str | None
    version: str | None
    instance_id: str
    rows: list[tuple]  # (table, KEY, PARENT_KEY, positions, values, extra), see _Plan.freeze; main first
    unknown: frozenset[tuple[int, str]]
    submission_date: str | None = None
    problem: str | None = None  # set when the file could not be read
    kind: str = "instance"  # else encrypted, other, other_form, doctype, unreadable: nothing to keep


_WORKER_PLAN: _Plan | None = None


def _init_worker(plan: _Plan) -> None:
    global _WORKER_PLAN  # noqa: PLW0603 (a process-pool initializer can only hand data over through a global)
    _WORKER_PLAN = plan


def _local(tag: str) -> str:
    return tag[tag.index("}") + 1 :] if tag[0] == "{" else tag


def _instance_id(root: etree._Element) -> str | None:
    direct = root.get("instanceID")
    if direct:
        return direct.strip()
    for child in root:
        if isinstance(child.tag, str) and _local(child.tag) == "meta":
            for item in child:
                if isinstance(item.tag, str) and _local(item.tag) == "instanceID":
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
    """Put the answers under `element` into `values`; start a new row for each repeat instance."""
    for child in element:
        tag = child.tag
        if tag.__class__ is not str:
            continue
        if tag[0] == "{":
            tag = tag[tag.index("}") + 1 :]
        spec = plan.get(tag)
        if spec is None:
            path = f"{base}/{tag}"
            if len(child):
                _walk(
                    child,
                    _EMPTY_PLAN,
                    path,
                    values,
                    key,
                    f"{prefix}/{tag}",
                    counters,
                    nos,
                    rows,
                    unknown,
                    table,
                )
            else:
                unknown.add((table, path))
                if child.text:
                    values[path] = child.text
            continue
        kind = spec[0]
        if kind == _FIELD:
            text = child.text
            if text is not None:
                values[spec[1]] = text
        elif kind == _GROUP:
            _walk(
                child, spec[3], spec[1], values, key, f"{prefix}/{tag}", counters, nos, rows, unknown, table
            )
        elif child.get(_JR_TEMPLATE) is None:  # a repeat template copied into an instance is not an answer
            # Central numbers repeat instances 1.. among the siblings in one parent (keyForStacks).
            n = counters.get(spec[1], 0) + 1
            counters[spec[1]] = n
            row_key = f"{key}{prefix}/{tag}[{n}]"
            row_values: dict[str, str] = {}
            row_nos = (*nos, n)
            rows.append((spec[2], row_key, key, row_nos, row_values))
            _walk(child, spec[3], spec[1], row_values, row_key, "", {}, row_nos, rows, unknown, spec[2])


def _read_submission(source: str, data: bytes, plan: _Plan) -> _Record:
    try:
        root = parse_untrusted(data)
    except UntrustedXMLError as exc:
        problem = "it declares a DOCTYPE; refusing it" if exc.reason == "doctype" else f"it {exc.message}"
        if exc.reason == "syntax":
            problem += "; a cut-off copy is the usual cause: copy it again"
        return _Record(source, None, None, "", [], frozenset(), problem=problem)
    instance_id = _instance_id(root) or ""
    values: dict[str, str] = {}
    rows: list[tuple] = [(0, instance_id, None, (), values)]
    unknown: set[tuple[int, str]] = set()
    _walk(root, plan.tree, plan.root, values, instance_id, "", {}, (), rows, unknown, 0)
    rows = plan.freeze(rows, with_unknown=bool(unknown))
    return _Record(source, root.get("id"), root.get("version"), instance_id, rows, frozenset(unknown))


def _read_item(name: str, data: bytes | None, plan: _Plan) -> _Record:
    """Read (when `data` is None, from the file `name`), classify and parse one candidate file."""
    if data is None:
        try:
            data = read_regular_file(name)
        except OSError as exc:
            problem = str(exc.strerror)
            return _Record(name, None, None, "", [], frozenset(), problem=problem, kind="unreadable")
    utf8 = as_utf8(data)
    if utf8 is None:
        return _Record(name, None, None, "", [], frozenset(), problem=UNREADABLE_HINTS["utf16"], kind="unreadable")
    kind, attrs = _classify(utf8)
    if kind in UNREADABLE_KINDS:
        return _Record(name, None, None, "", [], frozenset(), problem=UNREADABLE_HINTS[kind], kind="unreadable")
    if kind == "instance" and attrs.get("id") not in plan.form_ids:
        kind = "other_form"
    if kind != "instance":
        return _Record(name, attrs.get("id"), None, "", [], frozenset(), kind=kind)
    return _read_submission(name, utf8, plan)


def _read_chunk(chunk: list[tuple[str, bytes | None]]) -> list[_Record]:
    assert _WORKER_PLAN is not None
    return [_read_item(name, data, _WORKER_PLAN) for name, data in chunk]
