"""Check submissions against the questionnaire: skip logic, required answers, constraints, types, choices.

For every submission this answers "would ODK Collect accept this instance as it is?", with JavaRosa's rules:

- relevance is inherited: a node is relevant only when its own `relevant` holds and every enclosing group and
  repeat instance is relevant; an answer in a non-relevant node is `nonrelevant_answered` (Collect leaves
  non-relevant nodes out of a submission);
- calculations are recomputed from the answers in dependency order, as Collect does when it opens a saved instance; a
  stored value that differs is `calculate_mismatch`, and later expressions read the recomputed values; values the
  device drew (uuid(), random(), now(), once(...)) are taken from the instance and only their dependents recomputed;
- `required` and constraints apply only to relevant nodes; a constraint is checked only on a non-empty answer; a
  relevant required note is `hard_stop_reached` (Collect cannot get past it); a required node missing from the
  submission is reported with `absent` (docs/validation.md);
- values must parse as their bind type (`type_invalid`) and select answers must be in the choice list, or for a
  pick from a repeat (`select_one ${hl_pick}`) the value of a row its filter allows (`choice_unknown`: Collect checks
  neither, but data edited after collection break both); an instanceID seen twice is `duplicate_instance`.

Expressions that cannot be evaluated are findings too (`expression_unsupported`, `expression_error`), never a
crash.

The rules, their codes and messages, and the per-instance evaluator are in `toolkit.checks` (simulate checks its
draws with them too); this module reads the inputs and chooses the evaluator, `toolkit.validate.columns` is the
column one.
"""

from __future__ import annotations

import math
import re
import time
import zipfile
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from lxml import etree

from toolkit import submissions
from toolkit.checks.compiled import CompiledForm, compile_form
from toolkit.checks.instance import (
    instance_id_of,
    instance_tree,
    iter_nodes,
    validate_submissions,
    validate_tree,
)
from toolkit.checks.rules import (
    CALCULATE_MISMATCH,
    CHOICE_UNKNOWN,
    CONSTRAINT_VIOLATED,
    DUPLICATE_INSTANCE,
    EXPRESSION_ERROR,
    EXPRESSION_UNSUPPORTED,
    HARD_STOP_REACHED,
    INSTANCE_OTHER_FORM,
    INSTANCE_UNREADABLE,
    NONRELEVANT_ANSWERED,
    REQUIRED_ABSENT,
    REQUIRED_MISSING,
    TYPE_INVALID,
    Finding,
    ValidationResult,
    summarise,
)
from toolkit.dataset import DataFolder
from toolkit.errors import INPUT_MISSING, INPUT_UNREADABLE, Issue, ToolkitError, error
from toolkit.submissions import IngestResult
from toolkit.xform import FormModel, load_form
from toolkit.xpath import XNode, wrap_calculated

# ------------------------------------------------------------------------------------------------------------
# Many submissions
# ------------------------------------------------------------------------------------------------------------


def iter_instance_files(input_path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, XML bytes) of every submission in a folder (recursively), a zip of instance XMLs, or one XML."""
    yield from submissions.iter_submission_xml(input_path)


def _text_of(value: Any, data_type: str | None) -> str | None:  # noqa: PLR0911 (one return per JavaRosa type rule)
    """A typed table cell back to the text of an instance node (docs/tables.md types)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        if pd.isna(value):
            return None  # type: ignore[unreachable]  # NaT is a datetime, which pandas-stubs do not know
        return value.date().isoformat() if data_type == "date" else value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if data_type == "int" and value.is_integer() else repr(value)
    text = str(value)
    return text if text != "" else None


# One row of a DATA table as pandas gives it (`to_dict("records")`), keyed by column name.
_TableRow = dict[Hashable, Any]


def _row_position(column: str, row: _TableRow) -> tuple[bool, Any]:
    """Sort key of a repeat row by its position column; rows without a position go last."""
    position = row.get(column)
    return (position is pd.NA, position if position is not pd.NA else 0)


def trees_from_tables(form: CompiledForm, tables: IngestResult) -> Iterator[tuple[str, XNode]]:
    """Instance trees rebuilt from ingest tables (an `IngestResult`): one per row of the main table.

    Repeat rows hang under the row whose KEY is their PARENT_KEY, in the order of their `<repeat>_no`.
    """
    model = form.model
    by_path: dict[str, str] = {path: name for name, path in tables.table_paths.items()}
    column_of: dict[str, dict[str, str]] = {
        name: {c.path: c.name for c in cols if c.path} for name, cols in tables.columns.items()
    }
    children_rows: dict[str, dict[str, list[_TableRow]]] = {}
    for repeat in model.repeats():
        name = by_path.get(repeat.path)
        if name is None:
            continue
        frame = tables.tables[name]
        grouped: dict[str, list[_TableRow]] = {}
        order_col = f"{repeat.name}_no"
        for row in frame.to_dict("records"):
            grouped.setdefault(str(row.get("PARENT_KEY")), []).append(row)
        if order_col in frame.columns:
            for rows in grouped.values():
                rows.sort(key=partial(_row_position, order_col))
        children_rows[repeat.path] = grouped

    def level(parent: XNode, path: str, row: _TableRow, table: str) -> None:
        for child_path in model.nodes[path].children:
            child = model.nodes[child_path]
            if child.kind == "field":
                column = column_of.get(table, {}).get(child_path)
                text = _text_of(row.get(column), child.data_type) if column is not None else None
                parent.append(XNode(child.name, text, parent, form.types.get(child_path)))
            elif child.kind == "group":
                group = parent.append(XNode(child.name, None, parent))
                level(group, child_path, row, table)
            else:
                repeat_table = by_path.get(child_path)
                parent._repeat_names = (parent._repeat_names or frozenset()) | {child.name}
                for child_row in children_rows.get(child_path, {}).get(str(row.get("KEY")), []):
                    instance = parent.append(XNode(child.name, None, parent))
                    level(instance, child_path, child_row, repeat_table or "")

    main_name = by_path.get(model.root) or next(iter(tables.tables))
    for row in tables.tables[main_name].to_dict("records"):
        root = XNode(model.root[1:])
        level(root, model.root, row, main_name)
        yield str(row.get("KEY") or ""), root


def validate(
    input_path: Path,
    form_path: Path,
    *,
    media_dir: Path | None = None,
    today: date | None = None,
    tz: tzinfo = UTC,
    progress: Callable[[int], None] | None = None,
    method: str = "auto",
) -> ValidationResult:
    """Validate the submissions in `input_path` against the form in `form_path`.

    Parameters:
        input_path: a folder of instance XMLs (e.g. `migkit decrypt` output), a zip of them, one XML, an ODK
            Central CSV export (zip or unpacked folder), or a DATA folder written by `migkit ingest`.
        form_path: the XLSForm (.xlsx/.xls/.md) or compiled XForm (.xml).
        media_dir: folder of the form's attachments; default the form's `<form>-media/` folder or its own
            folder.
        today: the date today() returns (default: each submission's interview day, from its `today` or
            `start` field; the current date for submissions without either).
        tz: the devices' time zone.
        progress: called with the number of submissions done so far.
        method: "auto", "columns" or "instances" (see `validate_input`).
    """
    if not input_path.exists():
        raise ToolkitError(
            error(
                INPUT_MISSING, "The submissions input does not exist; check the path.", file=str(input_path)
            )
        )
    model = load_form(form_path)
    form = compile_form(model, media_dir=media_dir)
    return validate_input(form, input_path, today=today, tz=tz, progress=progress, method=method)


def validate_input(
    form: CompiledForm,
    input_path: Path,
    *,
    today: date | None = None,
    tz: tzinfo = UTC,
    progress: Callable[[int], None] | None = None,
    method: str = "auto",
) -> ValidationResult:
    """Validate one input (see `validate`) against a compiled form.

    Parameters:
        method: "columns" evaluates each rule once per column over all submissions (the ingest tables; raises
            when the form has an expression that needs the per-instance path), "instances" walks one instance
            tree at a time, "auto" takes columns when the form allows and falls back to instances otherwise.
    """
    from toolkit.validate.columns import NotVectorizable, validate_columns

    started = time.perf_counter()
    model = form.model
    tables = _tables_input(input_path, model)
    from_xml = tables is None
    if method != "instances" and not _needs_instances(form):
        if tables is None:
            tables = submissions.read_submissions([input_path], model)
        try:
            findings, count, per_instance, asked = validate_columns(form, tables, today=today, tz=tz)
        except NotVectorizable:
            if method == "columns":
                raise
        else:
            carried = [
                _finding_from_issue(model, i)
                for i in tables.issues
                if i.code in _CARRIED
            ]
            invalid = {(f.instance_id, f.path) for f in carried if f.code == TYPE_INVALID}
            kept = [
                f
                for f in findings
                if not (
                    f.code == REQUIRED_MISSING
                    and ((f.instance_id, f.path) in invalid or (f.source, f.path) in invalid)
                )
            ]
            if from_xml:
                kept = _mark_absent(form, kept, input_path)
            if progress is not None:
                progress(count)
            result = summarise([*form.problems, *carried, *kept], count, time.perf_counter() - started)
            result.stats["method"] = "columns"
            # The expressions evaluated per instance (kind, node path, why), the others ran by column.
            result.stats["per_instance"] = [f"{kind} of {path}: {reason}" for kind, path, reason in per_instance]
            return replace(_with_input_issues(result, tables.issues), asked=asked)
    if tables is None:
        result = validate_submissions(
            form, iter_instance_files(input_path), today=today, tz=tz, progress=progress
        )
    else:
        carried = [
            _finding_from_issue(model, i)
            for i in tables.issues
            if i.code in _CARRIED
        ]
        inner = validate_submissions(
            form,
            trees_from_tables(form, tables),
            today=today,
            tz=tz,
            progress=progress,
            check_duplicates=False,
        )
        result = summarise([*carried, *inner.findings], inner.stats["instances"], time.perf_counter() - started)
        result = _with_input_issues(result, tables.issues)
    result.stats["method"] = "instances"
    return result


def _mark_absent(form: CompiledForm, findings: list[Finding], input_path: Path) -> list[Finding]:
    """Mark the `required_missing` findings of the column path whose node is missing from the submission XML.

    The tables do not keep whether an empty answer was an empty element or no element at all, so the few
    submissions with such findings are read again.
    """
    wanted = {f.instance_id for f in findings if f.code == REQUIRED_MISSING and f.instance_id}
    if not wanted:
        return findings
    present: dict[str, set[str]] = {}
    for _, data in iter_instance_files(input_path):
        if not any(instance_id.encode() in data for instance_id in wanted):
            continue
        try:
            root = instance_tree(form, data)
        except (etree.XMLSyntaxError, ValueError):
            continue
        instance_id = instance_id_of(root)
        if instance_id in wanted:
            present[instance_id] = {xnode.path() for xnode, _ in iter_nodes(root, form.model.root)}
    marked = []
    for finding in findings:
        paths = present.get(finding.instance_id or "")
        if finding.code == REQUIRED_MISSING and paths is not None and finding.path not in paths:
            node = form.model.nodes[re.sub(r"\[\d+\]", "", finding.path)]
            what = "acknowledgement" if node.question_type == "acknowledge" else "question"
            message = REQUIRED_ABSENT.message(name=node.name, value="", what=what)
            marked.append(replace(finding, message=message, absent=True))
        else:
            marked.append(finding)
    return marked


def _with_input_issues(result: ValidationResult, issues: Iterable[Issue]) -> ValidationResult:
    """Keep what ingest reported about the input (skipped files, other forms, unknown fields) in `issues`."""
    kept = tuple(i for i in issues if i.code not in _CARRIED)
    return ValidationResult(result.valid, result.stats, result.findings, (*result.issues, *kept))


def _needs_instances(form: CompiledForm) -> bool:
    return form.needs_fixpoint


def _tables_input(input_path: Path, model: FormModel) -> IngestResult | None:
    """The tables when the input is a DATA folder (tables.json) or an ODK Central CSV export; None for XML."""
    if input_path.is_dir() and DataFolder.exists(input_path):
        return submissions.read_tables(input_path)
    central = False
    if input_path.is_file() and zipfile.is_zipfile(input_path):
        with zipfile.ZipFile(input_path) as archive:
            central = any(n.rsplit("/", 1)[-1] == f"{model.form_id}.csv" for n in archive.namelist())
    elif input_path.is_dir():
        central = (input_path / f"{model.form_id}.csv").is_file()
    return submissions.read_submissions([input_path], model) if central else None


# What ingest reports about submissions that validate reports as findings: a file that cannot be read is a
# submission that was not checked, so the input is not valid.
_CARRIED = (TYPE_INVALID, DUPLICATE_INSTANCE, INPUT_UNREADABLE)


def _finding_from_issue(model: FormModel, issue: Issue) -> Finding:
    where = issue.location
    path = where.path or (f"{model.root}/meta/instanceID" if issue.code == DUPLICATE_INSTANCE else "")
    return Finding(
        where.instance,
        path,
        INSTANCE_UNREADABLE if issue.code == INPUT_UNREADABLE else issue.code,
        None if issue.value is None else str(issue.value),
        where.expression,
        issue.message,
        str(issue.severity),
        where.variable,
        where.file,
    )


__all__ = [
    "CALCULATE_MISMATCH",
    "CHOICE_UNKNOWN",
    "CONSTRAINT_VIOLATED",
    "DUPLICATE_INSTANCE",
    "EXPRESSION_ERROR",
    "EXPRESSION_UNSUPPORTED",
    "HARD_STOP_REACHED",
    "INSTANCE_OTHER_FORM",
    "INSTANCE_UNREADABLE",
    "NONRELEVANT_ANSWERED",
    "REQUIRED_MISSING",
    "TYPE_INVALID",
    "CompiledForm",
    "Finding",
    "ValidationResult",
    "compile_form",
    "instance_tree",
    "iter_instance_files",
    "validate",
    "validate_input",
    "validate_submissions",
    "validate_tree",
    "wrap_calculated",
]
