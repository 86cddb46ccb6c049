"""Submissions -> tables: one table for the main level and one per repeat, with Central-compatible keys.

Inputs are folders of instance XMLs (the output of `migkit decrypt`: `<instance>/submission.xml`, or any
tree of instance files) and ODK Central "All data" CSV export zips (or such a zip unpacked into a folder).
Every submission is read into rows of plain strings first (per file, in a process pool when there are many
files); the typed columns are built at the end with vectorised pandas. What is written, and how keys and types
look, is the contract in docs/tables.md.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from lxml import etree

from toolkit.errors import (
    INPUT_MISSING,
    INPUT_UNREADABLE,
    OUTPUT_UNWRITABLE,
    Issue,
    Location,
    Severity,
    ToolkitError,
    define,
    error,
    warning,
)
from toolkit.xform import FormModel

# Shared with validate (same code, same title: define() refuses a second title).
TYPE_INVALID = define("type_invalid", "A value does not parse as the question's type")
DUPLICATE_INSTANCE = define("duplicate_instance", "The same instanceID occurs in more than one submission")
OTHER_FORM = define("ingest.other_form", "Input files belong to another form and were skipped")
ENCRYPTED_SKIPPED = define("ingest.encrypted", "Encrypted submissions were skipped (decrypt them first)")
UNKNOWN_FIELD = define("ingest.unknown_field", "Submissions hold a field the form does not define")
NO_INSTANCE_ID = define("ingest.instance_id_missing", "A submission has no meta/instanceID")
NOT_DECRYPTED = define(
    "ingest.not_decrypted", "A Central export row has no data: the submission was not decrypted"
)
ORPHAN_ROW = define("ingest.orphan_row", "A repeat row of a Central export has no parent row")
NO_SUBMISSIONS = define("ingest.no_submissions", "The input holds no submission of the form")
MEDIA_CONFLICT = define("ingest.media_conflict", "Two attachments share a file name but differ")

# Zip inputs are untrusted: entries are read into memory (never extracted by their own names) under caps.
ZIP_MAX_ENTRIES = 1_000_000
ZIP_MAX_XML_BYTES = 64 * 1024 * 1024
ZIP_MAX_CSV_BYTES = 2 * 1024 * 1024 * 1024
ZIP_MAX_MEDIA_BYTES = 2 * 1024 * 1024 * 1024
# A deflated entry expanding more than this is treated as a zip bomb (XML and CSV compress ~10-30x).
ZIP_MAX_RATIO = 200
# From this many submission files on, parsing runs in a process pool (one worker per core).
POOL_MIN_FILES = 2000
_CHUNK = 250

# Columns ingest adds in front of the fields (docs/tables.md "Keys" and "Columns").
META_MAIN = ("KEY", "hh_id", "FormVersion")
# Central "All data" export columns that carry no answer (lib/data/briefcase.js in getodk/central-backend).
_CENTRAL_META = {
    "SubmissionDate",
    "KEY",
    "PARENT_KEY",
    "SubmitterID",
    "SubmitterName",
    "AttachmentsPresent",
    "AttachmentsExpected",
    "Status",
    "ReviewState",
    "DeviceID",
    "Edits",
    "FormVersion",
}
_GEO_PARTS = ("Latitude", "Longitude", "Altitude", "Accuracy")

_FIELD, _GROUP, _REPEAT = 0, 1, 2
_JR_TEMPLATE = "{http://openrosa.org/javarosa}template"
_EMPTY_PLAN: dict[str, tuple] = {}


# ------------------------------------------------------------------------------------------------------------
# Result objects


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a table: its name, the node path it comes from (empty for key columns), type, dtype."""

    name: str
    path: str
    question_type: str
    dtype: str


@dataclass(frozen=True)
class IngestResult:
    """Tables read from submissions.

    `tables` maps table name (`<form_id>`, `<form_id>-<repeat>`) to a DataFrame, `table_paths` the name to
    the node path of its level, `parents` the name to the parent table's name (None for the main table),
    `columns` the name to column descriptions in column order. `issues` are the data problems found while
    reading.
    """

    form_id: str
    tables: dict[str, pd.DataFrame]
    table_paths: dict[str, str]
    issues: tuple[Issue, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    parents: dict[str, str | None] = field(default_factory=dict)
    columns: dict[str, tuple[ColumnInfo, ...]] = field(default_factory=dict)
    form_versions: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not any(issue.severity == Severity.ERROR for issue in self.issues)

    def counts_by_code(self) -> dict[str, int]:
        return dict(Counter(issue.code for issue in self.issues))


# ------------------------------------------------------------------------------------------------------------
# The plan: the union of the form versions' nodes as plain, picklable data (sent once to each worker)


@dataclass
class _Field:
    path: str
    name: str
    parent_name: str
    question_type: str
    data_type: str


@dataclass
class _Table:
    name: str
    path: str
    parent: int | None
    repeats: tuple[str, ...]  # repeat names from the outermost down to this one (empty for the main table)
    fields: list[_Field] = field(default_factory=list)
    notes: list[_Field] = field(default_factory=list)  # read but not written (notes carry no answer)


@dataclass
class _Plan:
    root: str
    form_ids: frozenset[str]
    tables: list[_Table]
    tree: dict[str, tuple]  # child name -> (kind, path, table index, children)


def _plan(forms: Sequence[FormModel]) -> _Plan:
    """Merge the form versions: the first form's nodes in its order, then nodes only older versions have."""
    primary = forms[0]
    root = primary.root
    tables: list[_Table] = [_Table(primary.form_id, root, None, ())]
    table_of: dict[str, int] = {root: 0}
    tree: dict[str, tuple] = {}
    containers: dict[str, dict[str, tuple]] = {root: tree}
    field_paths: set[str] = set()
    for form in forms:
        prefix = form.root
        for node in form.nodes.values():
            if node.path == prefix:
                continue
            # Older versions may have another root name; their nodes are placed under the newest root.
            path = root + node.path[len(prefix) :]
            parent = root + (node.parent or prefix)[len(prefix) :]
            siblings = containers.get(parent)
            if path in containers or path in field_paths or siblings is None:
                continue
            owner = root + node.repeat[len(prefix) :] if node.repeat else root
            if node.kind == "field":
                field_paths.add(path)
                spec = _Field(
                    path, node.name, parent.rsplit("/", 1)[-1], node.question_type, node.data_type or "string"
                )
                table = tables[table_of[owner]]
                (table.notes if node.question_type == "note" else table.fields).append(spec)
                siblings[node.name] = (_FIELD, path, table_of[owner], None)
                continue
            children: dict[str, tuple] = {}
            containers[path] = children
            if node.kind == "repeat":
                table_of[path] = len(tables)
                tables.append(
                    _Table("", path, table_of[owner], (*tables[table_of[owner]].repeats, node.name))
                )
                siblings[node.name] = (_REPEAT, path, table_of[path], children)
            else:
                siblings[node.name] = (_GROUP, path, table_of[owner], children)
    # Central names repeat tables <form>-<repeat>, repeats sharing a name ~1, ~2 (document order).
    totals = Counter(t.path.rsplit("/", 1)[-1] for t in tables[1:])
    seen: Counter[str] = Counter()
    for table in tables[1:]:
        name = table.path.rsplit("/", 1)[-1]
        seen[name] += 1
        table.name = f"{primary.form_id}-{name}" + (f"~{seen[name]}" if totals[name] > 1 else "")
    return _Plan(root, frozenset(f.form_id for f in forms), tables, tree)


# ------------------------------------------------------------------------------------------------------------
# Finding submission files


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_HEAD = re.compile(rb"^(?:\s|<\?.*?\?>|<!--.*?-->)*<([A-Za-z_][\w.:-]*)((?:\s[^>]*)?)/?>", re.DOTALL)
_ATTR = re.compile(rb"""([\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _classify(data: bytes) -> tuple[str, dict[str, str]]:
    """What an XML file is, from its head: instance, encrypted (an ODK manifest), doctype, or other."""
    head = data[:65536].lstrip(b"\xef\xbb\xbf")
    if b"<!DOCTYPE" in head:
        return "doctype", {}
    match = _HEAD.match(head)
    if match is None:
        return "other", {}
    tag = match.group(1).decode("utf-8", "replace").rsplit(":", 1)[-1]
    attrs = {
        m.group(1).decode("utf-8", "replace").rsplit(":", 1)[-1]: (m.group(2) or m.group(3) or b"").decode(
            "utf-8", "replace"
        )
        for m in _ATTR.finditer(match.group(2))
    }
    if tag == "html":
        return "other", attrs  # an XForm, not a submission
    if attrs.get("encrypted") == "yes":
        return "encrypted", attrs
    if "id" not in attrs:
        return "other", attrs  # every ODK instance root carries the form id; logs and reports do not
    return "instance", attrs


class _Source(NamedTuple):
    name: str
    load: Callable[[], bytes]
    is_file: bool = False  # a plain file, which a worker process can read by its name


def _safe_member(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return not (name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name))


def _zip_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, source: str) -> bytes:
    """Read one zip entry under a size cap and a compression-ratio cap; ToolkitError when it breaks one."""
    too_big = info.file_size > cap or (
        info.compress_size > 0
        and info.file_size > 1_000_000
        and info.file_size / info.compress_size > ZIP_MAX_RATIO
    )
    if too_big:
        raise ToolkitError(
            error(
                INPUT_UNREADABLE,
                f"Zip entry {info.filename} is too large or compressed "
                f"suspiciously ({info.file_size} bytes); refusing it.",
                file=source,
            )
        )
    with archive.open(info) as handle:
        data = handle.read(cap + 1)
    if len(data) > cap:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"Zip entry {info.filename} is larger than declared.", file=source)
        )
    return data


def _zip_infos(archive: zipfile.ZipFile, source: str) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > ZIP_MAX_ENTRIES:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"The zip has {len(infos)} entries; refusing it.", file=source)
        )
    return [info for info in infos if not info.is_dir() and _safe_member(info.filename)]


def _raiser(exc: Exception) -> Callable[[], bytes]:
    def load() -> bytes:
        raise exc

    return load


def _xml_sources(input_path: Path) -> list[_Source]:
    """Candidate XML files of a folder (recursive, sorted) or a zip, not yet read."""
    if input_path.is_dir():
        found: list[str] = []
        for folder, dirs, files in os.walk(input_path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # work folders of atomic writers
            found += [f"{folder}{os.sep}{f}" for f in files if f.lower().endswith(".xml") and f[0] != "."]
        found.sort(key=lambda name: name.split(os.sep))  # noqa: PTH206 (folder by folder, cheaply)
        return [_Source(name, Path(name).read_bytes, True) for name in found]
    if zipfile.is_zipfile(input_path):
        # Submissions in a zip are small: read them all while the archive is open.
        sources = []
        with zipfile.ZipFile(input_path) as archive:
            infos = [i for i in _zip_infos(archive, str(input_path)) if i.filename.lower().endswith(".xml")]
            for info in sorted(infos, key=lambda i: i.filename):
                name = f"{input_path}!{info.filename}"
                try:
                    data = _zip_read(archive, info, ZIP_MAX_XML_BYTES, str(input_path))
                except ToolkitError as exc:
                    sources.append(_Source(name, _raiser(exc)))
                    continue
                sources.append(_Source(name, lambda data=data: data))
        return sources
    if input_path.is_file():
        return [_Source(str(input_path), input_path.read_bytes, True)]
    raise ToolkitError(
        error(INPUT_MISSING, "The input does not exist; check the path.", file=str(input_path))
    )


def iter_submission_xml(input_path: Path, *, form_id: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield `(source_name, xml_bytes)` for every submission instance under `input_path`.

    Parameters:
        input_path: a folder (searched recursively: `migkit decrypt` output `<instance>/submission.xml`,
            or any tree of instance XMLs), a zip of such files, or one XML file. Encrypted ODK manifests
            (root attribute encrypted="yes"), XForms and XML without a form id on the root (logs) are skipped.
        form_id: when given, only instances whose root `id` is this form id.
    """
    for source in _xml_sources(Path(input_path)):
        data = source.load()
        kind, attrs = _classify(data)
        if kind == "instance" and (form_id is None or attrs.get("id") == form_id):
            yield source.name, data


# ------------------------------------------------------------------------------------------------------------
# Reading one submission (runs in worker processes)


class _Record(NamedTuple):
    source: str
    form_id: str | None
    version: str | None
    instance_id: str
    rows: list[tuple]  # (table index, KEY, PARENT_KEY, positions, {path: text}); the main row first
    unknown: frozenset[tuple[int, str]]
    submission_date: str | None = None
    problem: str | None = None  # set when the file could not be read
    kind: str = "instance"  # else encrypted, other, other_form, doctype, unreadable: nothing to keep


_WORKER_PLAN: _Plan | None = None
_PARSER: etree.XMLParser | None = None


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
    global _PARSER  # noqa: PLW0603 (one parser per process; lxml parsers are not shared between processes)
    if _PARSER is None:
        _PARSER = _safe_parser()
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return _Record(source, None, None, "", [], frozenset(), problem="it declares a DOCTYPE; refusing it")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        return _Record(source, None, None, "", [], frozenset(), problem=f"it is not well-formed XML ({exc})")
    instance_id = _instance_id(root) or ""
    values: dict[str, str] = {}
    rows: list[tuple] = [(0, instance_id, None, (), values)]
    unknown: set[tuple[int, str]] = set()
    _walk(root, plan.tree, plan.root, values, instance_id, "", {}, (), rows, unknown, 0)
    return _Record(source, root.get("id"), root.get("version"), instance_id, rows, frozenset(unknown))


def _read_item(name: str, data: bytes | None, plan: _Plan) -> _Record:
    """Read (when `data` is None, from the file `name`), classify and parse one candidate file."""
    if data is None:
        try:
            data = Path(name).read_bytes()
        except OSError as exc:
            problem = str(exc.strerror)
            return _Record(name, None, None, "", [], frozenset(), problem=problem, kind="unreadable")
    kind, attrs = _classify(data)
    if kind == "instance" and attrs.get("id") not in plan.form_ids:
        kind = "other_form"
    if kind != "instance":
        return _Record(name, attrs.get("id"), None, "", [], frozenset(), kind=kind)
    return _read_submission(name, data, plan)


def _read_chunk(chunk: list[tuple[str, bytes | None]]) -> list[_Record]:
    assert _WORKER_PLAN is not None
    return [_read_item(name, data, _WORKER_PLAN) for name, data in chunk]


# ------------------------------------------------------------------------------------------------------------
# Central CSV exports


def _central_columns(plan: _Plan, table: _Table) -> dict[str, tuple[str, int | None]]:
    """CSV header -> (field path, geopoint part index).

    Central writes group paths joined by '-' relative to the table (its default) or bare names
    (groupPaths=false); geopoints as four columns.
    """
    mapping: dict[str, tuple[str, int | None]] = {}
    specs = (*table.fields, *table.notes)
    # Group paths first; a bare name never takes the place of another field's group path.
    for bare in (False, True):
        for spec in specs:
            label = spec.name if bare else spec.path[len(table.path) + 1 :].replace("/", "-")
            if spec.data_type == "geopoint":
                for index, part in enumerate(_GEO_PARTS):
                    mapping.setdefault(f"{label}-{part}", (spec.path, index))
            else:
                mapping.setdefault(label, (spec.path, None))
    return mapping


_POSITION = re.compile(r"\[(\d+)\]")


def _read_central(
    open_member: Callable[[str], bytes | None], plan: _Plan, source: str, issues: list[Issue]
) -> list[_Record]:
    """Records from a Central CSV export: `<form>.csv` plus `<form>-<repeat>.csv` per repeat."""
    records: dict[str, _Record] = {}
    order: list[str] = []
    for index, table in enumerate(plan.tables):
        data = open_member(f"{table.name}.csv")
        if data is None:
            continue
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
        mapping = _central_columns(plan, table)
        known = [c for c in frame.columns if c in mapping]
        # Select-multiple split columns (`name/choice`, 0/1) repeat the space-separated answer: skip them.
        extra = [c for c in frame.columns if c not in mapping and c not in _CENTRAL_META and "/" not in c]
        unknown = frozenset((index, f"{table.path}/{c.replace('-', '/')}") for c in extra)
        columns = {c: frame[c].tolist() for c in (*known, *extra)}
        keys = frame["KEY"].tolist() if "KEY" in frame.columns else []
        for row_number, key in enumerate(keys):
            values: dict[str, str] = {}
            for column in known:
                text = columns[column][row_number]
                if text == "":
                    continue
                path, part = mapping[column]
                if part is None:
                    values[path] = text
                else:
                    values[path] = (values.get(path, "") + " " + text).strip()
            for column in extra:
                text = columns[column][row_number]
                if text != "":
                    values[f"{table.path}/{column.replace('-', '/')}"] = text
            if index == 0:
                status = frame["Status"].iat[row_number] if "Status" in frame.columns else ""
                if status:
                    issues.append(
                        warning(
                            NOT_DECRYPTED,
                            f"Central reports '{status}' for this submission: its row "
                            "has no answers. Decrypt it with the form's private key and ingest the "
                            "decrypted XML instead.",
                            file=source,
                            instance=key,
                        )
                    )
                version = frame["FormVersion"].iat[row_number] if "FormVersion" in frame.columns else None
                date = frame["SubmissionDate"].iat[row_number] if "SubmissionDate" in frame.columns else None
                records[key] = _Record(
                    source,
                    None,
                    version or None,
                    key,
                    [(0, key, None, (), values)],
                    unknown,
                    submission_date=date or None,
                )
                order.append(key)
                continue
            instance_id = key.split("/", 1)[0]
            record = records.get(instance_id)
            parent = frame["PARENT_KEY"].iat[row_number] if "PARENT_KEY" in frame.columns else None
            if record is None:
                issues.append(
                    warning(
                        ORPHAN_ROW,
                        f"Row {row_number + 2} of {table.name}.csv belongs to no "
                        "submission of the main CSV; it is left out. Export again from Central.",
                        file=source,
                        instance=key,
                    )
                )
                continue
            nos = tuple(int(n) for n in _POSITION.findall(key[len(instance_id) :]))
            record.rows.append((index, key, parent, nos, values))
            if unknown - record.unknown:
                records[instance_id] = record._replace(unknown=record.unknown | unknown)
    return [records[key] for key in order]


def _central_opener(input_path: Path) -> Callable[[str], bytes | None] | None:
    """A reader of members by name when `input_path` is a Central CSV export (zip or folder), else None."""
    if input_path.is_dir():

        def read_file(name: str) -> bytes | None:
            candidate = input_path / name
            return candidate.read_bytes() if candidate.is_file() else None

        return read_file if any(input_path.glob("*.csv")) else None
    if zipfile.is_zipfile(input_path):
        with zipfile.ZipFile(input_path) as archive:
            tables = {
                info.filename: _zip_read(archive, info, ZIP_MAX_CSV_BYTES, str(input_path))
                for info in _zip_infos(archive, str(input_path))
                if info.filename.lower().endswith(".csv") and "/" not in info.filename
            }
        return tables.get if tables else None
    return None


# ------------------------------------------------------------------------------------------------------------
# Typed columns


_INT = r"[+-]?\d{1,18}"
_DECIMAL = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_DATE = r"\d{4}-\d{2}-\d{2}(?:T.*)?"
_ZONE = r"(?:Z|[+-]\d{2}(?::?\d{2})?)?"
_CLOCK = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
_DATETIME = rf"\d{{4}}-\d{{2}}-\d{{2}}T{_CLOCK}{_ZONE}"
_TIME = rf"{_CLOCK}{_ZONE}"
_NUM = r"-?\d+(?:\.\d+)?"
_GEOPOINT = rf"{_NUM} {_NUM}(?: {_NUM}){{0,2}}"
_STRING = pd.StringDtype("python")
_ARROW_STRING = pd.StringDtype("pyarrow")
_PATTERNS = {
    "int": _INT,
    "decimal": _DECIMAL,
    "date": _DATE,
    "dateTime": _DATETIME,
    "time": _TIME,
    "geopoint": _GEOPOINT,
}


def _typed(values: list[str | None], data_type: str) -> tuple[pd.Series, pd.Series | None]:
    """The typed column for a bind type and the mask of values that do not parse (None when all do)."""
    pattern = _PATTERNS.get(data_type)
    if pattern is None:
        raw = pd.Series(values, dtype=_STRING)
        return raw.mask(raw == ""), None
    # Checked with Arrow's vectorised string kernels (RE2 accepts these patterns), then typed.
    raw = pd.Series(values, dtype=_ARROW_STRING).str.strip()
    raw = raw.mask(raw == "")
    present = raw.notna()
    ok = raw.str.fullmatch(pattern).fillna(False).astype(bool)
    if data_type == "geopoint" and ok.any():
        parts = raw.where(ok).str.split(" ", n=2, expand=True)
        lat = pd.to_numeric(parts[0], errors="coerce")
        lon = pd.to_numeric(parts[1], errors="coerce")
        ok &= (lat.abs() <= 90).fillna(False).astype(bool) & (lon.abs() <= 180).fillna(False).astype(bool)
    clean = raw.where(ok)
    if data_type == "int":
        typed = clean.astype("Int64")
    elif data_type == "decimal":
        typed = clean.astype("Float64")
    elif data_type == "date":
        typed = pd.to_datetime(clean.str.slice(0, 10), format="%Y-%m-%d", errors="coerce").astype(
            "datetime64[s]"
        )
        ok &= typed.notna()
    else:
        typed = clean.astype(_STRING)
    bad = present & ~ok
    return typed, (bad if bad.any() else None)


def _dtype_name(series: pd.Series) -> str:
    return "string" if isinstance(series.dtype, pd.StringDtype) else str(series.dtype)


def _indexed_path(root: str, key: str, table_path: str, field_path: str) -> str:
    """JavaRosa-style path of one answer: `/data/hl[2]/hl_age` from KEY `uuid:…/hl[2]`."""
    rest = key.split("/", 1)[1] if "/" in key else ""
    return f"{root}{'/' + rest if rest else ''}{field_path[len(table_path) :]}"


# ------------------------------------------------------------------------------------------------------------
# Building the tables


def _unique_name(name: str, group: str, taken: set[str]) -> str:
    candidate = name if name not in taken else f"{group}_{name}"
    number = 2
    base = candidate
    while candidate in taken:
        candidate = f"{base}_{number}"
        number += 1
    taken.add(candidate)
    return candidate


def _deduplicate(records: list[_Record], issues: list[Issue]) -> list[_Record]:
    """One record per instanceID: identical copies are dropped (warning); differing ones are kept with KEY
    `<instanceID>~dup<n>` (error), so that no answer is lost and the conflict stays visible."""
    by_id: dict[str, list[_Record]] = defaultdict(list)
    for record in records:
        by_id[record.instance_id].append(record)
    kept: list[_Record] = []
    for instance_id, copies in by_id.items():
        kept.append(copies[0])
        variants: list[_Record] = [copies[0]]
        for copy in copies[1:]:
            same = next((v for v in variants if v.rows == copy.rows and v.version == copy.version), None)
            if same is not None:
                issues.append(
                    warning(
                        DUPLICATE_INSTANCE,
                        f"{copy.source} repeats {same.source} exactly; one copy is kept.",
                        instance=instance_id,
                        file=copy.source,
                    )
                )
                continue
            new_id = f"{instance_id}~dup{len(variants) + 1}"
            variants.append(copy)
            issues.append(
                error(
                    DUPLICATE_INSTANCE,
                    f"{copy.source} has the instanceID of {copies[0].source} but "
                    f"other answers; both are kept, this one with KEY {new_id}. Find out which is the "
                    "right interview and remove the other from the input.",
                    instance=instance_id,
                    file=copy.source,
                )
            )
            rows = [
                (
                    t,
                    new_id + k[len(instance_id) :],
                    None if p is None else new_id + p[len(instance_id) :],
                    n,
                    v,
                )
                for t, k, p, n, v in copy.rows
            ]
            kept.append(copy._replace(instance_id=new_id, rows=rows))
    return kept


def _build(
    plan: _Plan, records: list[_Record], issues: list[Issue]
) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[ColumnInfo, ...]]]:
    records.sort(key=lambda r: r.instance_id)
    per_table: list[list[tuple[int, tuple]]] = [[] for _ in plan.tables]
    for hh_id, record in enumerate(records, start=1):
        for row in record.rows:
            per_table[row[0]].append((hh_id, row))
    unknown_seen: Counter[tuple[int, str]] = Counter(u for r in records for u in r.unknown)
    tables: dict[str, pd.DataFrame] = {}
    infos: dict[str, tuple[ColumnInfo, ...]] = {}
    with_dates = any(r.submission_date for r in records)
    for index, table in enumerate(plan.tables):
        rows = per_table[index]
        keys = [row[1] for _, row in rows]
        data: dict[str, pd.Series] = {"KEY": pd.Series(keys, dtype=_STRING)}
        columns = [ColumnInfo("KEY", "", "key", "string")]
        if index == 0:
            data["hh_id"] = pd.Series([hh for hh, _ in rows], dtype="Int64")
            versions = [r.version for r in records]
            data["FormVersion"] = pd.Series(versions, dtype=_STRING)
            columns += [
                ColumnInfo("hh_id", "", "key", "Int64"),
                ColumnInfo("FormVersion", "", "meta", "string"),
            ]
            if with_dates:
                data["SubmissionDate"] = pd.Series([r.submission_date for r in records], dtype=_STRING)
                columns.append(ColumnInfo("SubmissionDate", "", "meta", "string"))
        else:
            data["PARENT_KEY"] = pd.Series([row[2] for _, row in rows], dtype=_STRING)
            data["hh_id"] = pd.Series([hh for hh, _ in rows], dtype="Int64")
            columns += [
                ColumnInfo("PARENT_KEY", "", "key", "string"),
                ColumnInfo("hh_id", "", "key", "Int64"),
            ]
            for depth, repeat_name in enumerate(table.repeats):
                name = f"{repeat_name}_no"
                data[name] = pd.Series(
                    [row[3][depth] if len(row[3]) > depth else None for _, row in rows], dtype="Int64"
                )
                columns.append(ColumnInfo(name, "", "key", "Int64"))
        taken = set(data)
        specs = list(table.fields)
        known = {spec.path for spec in (*specs, *table.notes)}
        for (table_index, path), count in sorted(unknown_seen.items()):
            if table_index == index and path not in known:
                parent, _, name = path.rpartition("/")
                specs.append(_Field(path, name, parent.rsplit("/", 1)[-1], "unknown", "string"))
                issues.append(
                    warning(
                        UNKNOWN_FIELD,
                        f"{count} submission(s) hold {path}, which the form does not "
                        "define; it is kept as a text column. Pass the form version that has it "
                        "with another --form.",
                        path=path,
                    )
                )
        # One object matrix from the rows' dicts (pandas builds it in C), then one typed column at a time.
        paths = [spec.path for spec in specs]
        matrix = pd.DataFrame([row[4] for _, row in rows], columns=paths, dtype=object)
        for position_in_table, spec in enumerate(specs):
            column = matrix.iloc[:, position_in_table]
            values = column.where(column.notna(), None).tolist()
            series, bad = _typed(values, spec.data_type)
            name = _unique_name(spec.name, spec.parent_name, taken)
            data[name] = series
            columns.append(ColumnInfo(name, spec.path, spec.question_type, _dtype_name(series)))
            if bad is not None:
                for position in bad.to_numpy().nonzero()[0]:
                    key = keys[position]
                    issues.append(
                        error(
                            TYPE_INVALID,
                            f"'{values[position]}' is not a valid {spec.data_type} for {spec.name}; the "
                            "cell is left empty. Correct the submission or the form's type.",
                            instance=key.split("/", 1)[0],
                            path=_indexed_path(plan.root, key, table.path, spec.path),
                            variable=name,
                            value=values[position],
                        )
                    )
        tables[table.name] = pd.DataFrame(data)
        infos[table.name] = tuple(columns)
    return tables, infos


# ------------------------------------------------------------------------------------------------------------
# Media


def _copy_media(
    files: Iterable[tuple[str, Callable[[], bytes]]], target_dir: Path, issues: list[Issue]
) -> int:
    """Copy attachments flat into `target_dir` (Collect names them by capture time, so names rarely clash)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    for name, load in files:
        target = target_dir / Path(name).name
        data = load()
        if target.exists():
            if target.read_bytes() != data:
                issues.append(
                    warning(
                        MEDIA_CONFLICT,
                        f"{target.name} exists with other content; the copy from {name} is not written.",
                        file=name,
                    )
                )
            continue
        handle, temp = tempfile.mkstemp(dir=target_dir, prefix=".media-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        Path(temp).replace(target)
        copied += 1
    return copied


def _media_files(
    input_path: Path, submission_sources: list[str]
) -> Iterator[tuple[str, Callable[[], bytes]]]:
    if input_path.is_dir():
        folders = {
            Path(s).parent for s in submission_sources if "!" not in s and Path(s).is_relative_to(input_path)
        }
        files = []
        for folder in sorted(folders):
            if folder == input_path:
                continue
            for path in sorted(folder.iterdir()):
                if (
                    path.is_file()
                    and path.suffix.lower() not in {".xml", ".enc"}
                    and not path.name.startswith(".")
                ):
                    files.append((str(path), path.read_bytes))
        media = input_path / "media"
        if media.is_dir():
            files += [(str(p), p.read_bytes) for p in sorted(media.iterdir()) if p.is_file()]
        yield from files
    elif zipfile.is_zipfile(input_path):
        with zipfile.ZipFile(input_path) as archive:  # open while the caller copies, one entry at a time
            for info in _zip_infos(archive, str(input_path)):
                name = info.filename
                if name.startswith("media/") and not name.lower().endswith((".xml", ".csv")):
                    yield (
                        f"{input_path}!{name}",
                        lambda info=info: _zip_read(archive, info, ZIP_MAX_MEDIA_BYTES, str(input_path)),
                    )


# ------------------------------------------------------------------------------------------------------------
# The stage


def _read_all(
    items: list[tuple[str, bytes | None]],
    plan: _Plan,
    *,
    workers: int,
    progress: Callable[[int], None] | None,
) -> list[_Record]:
    if workers <= 1 or len(items) < POOL_MIN_FILES:
        out = []
        for number, (name, data) in enumerate(items, start=1):
            out.append(_read_item(name, data, plan))
            if progress is not None and number % 100 == 0:
                progress(100)
        if progress is not None:
            progress(len(items) % 100)
        return out
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    records: list[_Record] = []
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(plan,)
    ) as pool:
        for chunk_records in pool.map(_read_chunk, chunks):
            records.extend(chunk_records)
            if progress is not None:
                progress(len(chunk_records))
    return records


def ingest(
    inputs: Sequence[Path] | Path,
    form: FormModel | Sequence[FormModel],
    *,
    media_dir: Path | None = None,
    attachments_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestResult:
    """Read submissions into one table per level of the form.

    Parameters:
        inputs: folders of instance XMLs (`migkit decrypt` output or any tree), zips of them, single XML
        files,
            or ODK Central CSV export zips ("All data", or the same files unpacked in a folder).
        form: the form model; several models (form versions, newest first) merge into one set of tables.
        media_dir: the form's own attachments (pulldata / select_one_from_file files), as validate and
            simulate take them; ingest reads answers only, so it does not need them (never written to).
        attachments_dir: when given, the submissions' attachments (files next to each submission, or under
            `media/` in a Central zip) are copied there, flat.
        workers: parser processes; default one per core, used from POOL_MIN_FILES files on.
        progress: called as `progress(done, total)` while submission files are read.
    """
    started = time.perf_counter()
    forms = [form] if isinstance(form, FormModel) else list(form)
    if not forms:
        raise ValueError("ingest needs at least one form model")
    plan = _plan(forms)
    paths = [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]
    issues: list[Issue] = []
    records: list[_Record] = []
    items: list[tuple[str, bytes | None]] = []
    skipped: Counter[str] = Counter()
    other_ids: Counter[str] = Counter()
    for path in paths:
        if not path.exists():
            raise ToolkitError(
                error(INPUT_MISSING, "The input does not exist; check the path.", file=str(path))
            )
        opener = _central_opener(path)
        if opener is not None and opener(f"{plan.tables[0].name}.csv") is not None:
            records += _read_central(opener, plan, str(path), issues)
            continue
        try:
            sources = _xml_sources(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ToolkitError(
                error(INPUT_UNREADABLE, f"Cannot read the input: {exc}.", file=str(path))
            ) from None
        for source in sources:
            if source.is_file:
                items.append((source.name, None))
                continue
            try:
                items.append((source.name, source.load()))
            except (OSError, ToolkitError, zipfile.BadZipFile) as exc:
                issues.append(
                    error(INPUT_UNREADABLE, f"Cannot read this file ({exc}); left out.", file=source.name)
                )
    total = len(items)
    done = 0

    def tick(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    submission_files: list[str] = []
    for record in _read_all(items, plan, workers=workers or os.cpu_count() or 1, progress=tick):
        if record.kind == "other_form":
            other_ids[record.form_id or ""] += 1
        elif record.kind == "doctype":
            issues.append(
                error(
                    INPUT_UNREADABLE,
                    "The file declares a DOCTYPE, which ODK never writes; it is left out.",
                    file=record.source,
                )
            )
        elif record.problem is not None:
            issues.append(
                error(
                    INPUT_UNREADABLE,
                    f"Cannot read this submission: {record.problem}. It is left out.",
                    file=record.source,
                )
            )
        elif record.kind != "instance":
            skipped[record.kind] += 1
        else:
            submission_files.append(record.source)
            if not record.instance_id:
                issues.append(
                    error(
                        NO_INSTANCE_ID,
                        "The submission has no meta/instanceID; it is keyed by its file "
                        "name instead. Check that it was exported whole.",
                        file=record.source,
                    )
                )
                record = _rekey(record, f"file:{record.source}")  # noqa: PLW2901 (the re-keyed copy is kept)
            records.append(record)
    del media_dir  # see the docstring: the form's attachments do not change how answers are read
    if attachments_dir is not None:
        for path in paths:
            _copy_media(_media_files(path, submission_files), Path(attachments_dir), issues)
    if skipped["encrypted"]:
        issues.append(
            warning(
                ENCRYPTED_SKIPPED,
                f"{skipped['encrypted']} encrypted submission(s) were skipped; run "
                "`migkit decrypt` on them and ingest its output.",
            )
        )
    if other_ids:
        listed = ", ".join(f"{k or '?'} ({v})" for k, v in sorted(other_ids.items()))
        issues.append(warning(OTHER_FORM, f"Files of other forms were skipped: {listed}."))
    records = _deduplicate(records, issues)
    if not records:
        issues.append(
            error(
                NO_SUBMISSIONS,
                f"No submission of form {forms[0].form_id} was found in the input. "
                "Check the folder and the --form.",
                file=", ".join(map(str, paths)),
            )
        )
    tables, columns = _build(plan, records, issues)
    versions = tuple(sorted({r.version for r in records if r.version}))
    stats = {
        "submissions": len(records),
        "files_read": len(items),
        "skipped": dict(skipped),
        "rows": {name: len(frame) for name, frame in tables.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }
    return IngestResult(
        form_id=forms[0].form_id,
        tables=tables,
        table_paths={t.name: t.path for t in plan.tables},
        issues=tuple(issues),
        stats=stats,
        parents={t.name: None if t.parent is None else plan.tables[t.parent].name for t in plan.tables},
        columns=columns,
        form_versions=versions,
    )


def _rekey(record: _Record, new_id: str) -> _Record:
    old = record.instance_id
    rows = [
        (t, new_id + k[len(old) :], None if p is None else new_id + p[len(old) :], n, v)
        for t, k, p, n, v in record.rows
    ]
    return record._replace(instance_id=new_id, rows=rows)


# ------------------------------------------------------------------------------------------------------------
# Writing and reading the DATA folder


MANIFEST = "tables.json"


def _manifest(result: IngestResult, files: dict[str, str]) -> dict[str, Any]:
    return {
        "form_id": result.form_id,
        "form_versions": list(result.form_versions),
        "tables": {
            name: {
                "file": files[name],
                "path": result.table_paths[name],
                "parent": result.parents.get(name),
                "rows": len(frame),
                "columns": [
                    {"name": c.name, "path": c.path, "question_type": c.question_type, "dtype": c.dtype}
                    for c in result.columns.get(name, ())
                ],
            }
            for name, frame in result.tables.items()
        },
        "stats": result.stats,
        "issues": [issue.flatten() for issue in result.issues],
    }


def write_tables(result: IngestResult, out_dir: Path, *, csv: bool = False) -> list[Path]:
    """Write the tables (Parquet, plus CSV with a BOM when asked) and tables.json into `out_dir`, atomically.

    Parameters:
        result: what `ingest` returned.
        out_dir: the DATA folder (created when missing).
        csv: also write `<table>.csv` (UTF-8 with BOM, so Excel shows Cyrillic).
    Returns the written paths, tables.json last.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=".ingest-", dir=out_dir))
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot create the output folder: {exc}.", file=str(out_dir))
        ) from None
    try:
        names: list[str] = []
        files: dict[str, str] = {}
        for name, frame in result.tables.items():
            files[name] = f"{name}.parquet"
            frame.to_parquet(temp / files[name], index=False)
            names.append(files[name])
            if csv:
                frame.to_csv(temp / f"{name}.csv", index=False, encoding="utf-8-sig")
                names.append(f"{name}.csv")
        (temp / MANIFEST).write_text(
            json.dumps(_manifest(result, files), ensure_ascii=False, indent=2, default=str), encoding="utf-8"
        )
        names.append(MANIFEST)
        written = []
        for name in names:
            (temp / name).replace(out_dir / name)
            written.append(out_dir / name)
        return written
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot write the tables: {exc}.", file=str(out_dir))
        ) from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _restore(frame: pd.DataFrame, columns: list[dict[str, Any]]) -> pd.DataFrame:
    for column in columns:
        name, dtype = column["name"], column["dtype"]
        if name in frame.columns:
            frame[name] = frame[name].astype(_STRING if dtype == "string" else dtype)
    return frame


def read_tables(data_dir: Path) -> IngestResult:
    """Read a DATA folder written by `write_tables` back into an IngestResult (dtypes as in tables.json).

    Parameters:
        data_dir: the folder holding tables.json and the Parquet files.
    """
    data_dir = Path(data_dir)
    manifest_path = data_dir / MANIFEST
    if not manifest_path.is_file():
        raise ToolkitError(
            error(INPUT_MISSING, "No tables.json here; run `migkit ingest` first.", file=str(data_dir))
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        tables = {
            name: _restore(pd.read_parquet(data_dir / meta["file"]), meta["columns"])
            for name, meta in manifest["tables"].items()
        }
    except (OSError, ValueError, KeyError) as exc:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"Cannot read the tables: {exc}.", file=str(data_dir))
        ) from None
    issues = []
    for stored in manifest.get("issues", []):
        flat = dict(stored)
        code, severity, message = flat.pop("code"), Severity(flat.pop("severity")), flat.pop("message")
        value = flat.pop("value", None)
        issues.append(Issue(code, severity, message, Location(**flat), value))
    return IngestResult(
        form_id=manifest["form_id"],
        tables=tables,
        table_paths={name: meta["path"] for name, meta in manifest["tables"].items()},
        issues=tuple(issues),
        stats=manifest.get("stats", {}),
        parents={name: meta.get("parent") for name, meta in manifest["tables"].items()},
        columns={
            name: tuple(ColumnInfo(**c) for c in meta["columns"]) for name, meta in manifest["tables"].items()
        },
        form_versions=tuple(manifest.get("form_versions", [])),
    )
