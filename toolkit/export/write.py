"""Planning every table and writing the .sav/.dta/.csv files, companions and maps atomically."""

from __future__ import annotations

import csv
import io
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyreadstat

from toolkit.dataset import release_freed_memory
from toolkit.errors import (
    EXIT_USAGE,
    OUTPUT_UNWRITABLE,
    Issue,
    Severity,
    ToolkitError,
    error,
)
from toolkit.export.codes import EXPORT_FORMAT, EXPORT_NO_TABLES, EXPORT_ORPHAN_ROWS, FORMATS
from toolkit.export.columns import arrow_strings
from toolkit.export.csvfile import ROWS_PER_CHUNK, write_csv_parts
from toolkit.export.plan import (
    MissingCodes,
    RecodeEntry,
    TablePlan,
    name_variables,
    plan_table,
    resolve_language,
)
from toolkit.export.syntax import do_text, sps_text
from toolkit.export.tables import Design, SourceTable, is_weight, load_tables
from toolkit.files import write_atomic, write_text_atomic
from toolkit.settings import CHOICE_NUMERIC_CODE_COLUMN
from toolkit.spreadsheet import safe_row
from toolkit.xform import FormModel

# --- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFile:
    """One file written: its path, its table, its kind (sav, dta, csv, csv-labelled, sps, do, *-map)."""

    path: str
    table: str
    kind: str
    rows: int = 0
    variables: int = 0


@dataclass(frozen=True)
class RenameEntry:
    """One exported variable and its names in each format (a row of the rename map)."""

    table: str
    name: str
    xlsform_path: str | None
    spss_name: str
    stata_name: str
    reason: str


@dataclass(frozen=True)
class ExportResult:
    """What `export_tables` wrote: files, the rename and recode maps, and the issues (warnings) of the run."""

    form_id: str
    language: str | None
    out_dir: str
    files: tuple[ExportedFile, ...]
    renames: tuple[RenameEntry, ...]
    recodes: tuple[RecodeEntry, ...]
    issues: tuple[Issue, ...]

    @property
    def ok(self) -> bool:
        return not any(issue.severity == Severity.ERROR for issue in self.issues)


# --- writing ------------------------------------------------------------------------------------------------


def rename_map_text(entries: Sequence[RenameEntry]) -> str:
    """The rename map as CSV text: one row per exported variable with its SPSS and Stata names."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "original_name", "xlsform_path", "spss_name", "stata_name", "reason"])
    for e in entries:
        writer.writerow(safe_row([e.table, e.name, e.xlsform_path or "", e.spss_name, e.stata_name, e.reason]))
    return buffer.getvalue()


@dataclass(frozen=True)
class PreparedExport:
    """Tables planned and named, ready to write (used by `export_tables` and by bench/export.py)."""

    form_id: str
    language: str | None
    plans: tuple[TablePlan, ...]
    recodes: tuple[RecodeEntry, ...]
    issues: tuple[Issue, ...]


def prepare_export(
    data: Any,
    form: FormModel,
    *,
    language: str | None = None,
    missing_codes: MissingCodes | None = None,
    design: Design | None = None,
    codes_from: str | None = CHOICE_NUMERIC_CODE_COLUMN,
) -> PreparedExport:
    """Read the tables and plan every variable, label and name, without writing anything.

    Parameters:
        data: the DATA folder written by `migkit ingest`, a mapping table name -> DataFrame (docs/tables.md
            format) or an object with such a `.tables` mapping.
        form: the form model of the data.
        language: label language (name such as "Russian (ru)" or its code `ru`); default the form's default.
        missing_codes: don't know / refused / not applicable codes; default 98/99 and -98/-99.
        design: weight, strata and PSU columns; default from tables.json, else `id_stratum`/`id_psu` and the
            first weight column.
        codes_from: a choices column with numeric codes for lists whose names are not integers; default
            `iso_num` (the column `migkit forms lint` also reads as the codes); lists without it, or None, are
            coded 1..n in list order.
    """
    chosen = resolve_language(form, language)
    codes = missing_codes or MissingCodes()
    tables, manifest_design = load_tables(data, form)
    if not tables:
        raise ToolkitError(error(EXPORT_NO_TABLES, f"No tables of form {form.form_id!r} were found."))
    issues: list[Issue] = []
    recodes: dict[str, list[RecodeEntry]] = {}
    keys = {t.name: t.frame["KEY"] for t in tables if "KEY" in t.frame.columns}
    plans = []
    for table in tables:
        table_design = _design_for(table, design or manifest_design)
        plan = plan_table(
            table,
            form,
            language=chosen,
            missing_codes=codes,
            design=table_design,
            issues=issues,
            recodes=recodes,
            codes_from=codes_from,
        )
        name_variables(plan, issues)
        _check_parents(table, keys, issues)
        plans.append(plan)
    return PreparedExport(
        form.form_id, chosen, tuple(plans), tuple(r for rs in recodes.values() for r in rs), tuple(issues)
    )


def _design_for(table: SourceTable, design: Design) -> Design:
    """The design of one table.

    The weight is the last weight `migkit weights` listed for the table (the person weight of a roster, the
    final household weight of the main table), else the design's weight, else the first weight-like column.
    """
    columns = set(table.frame.columns)
    listed = [w for w in table.weights if w in columns]
    if listed:
        weight: str | None = listed[-1]
    elif design.weight in columns:
        weight = design.weight
    else:
        weight = next((str(c) for c in table.frame.columns if is_weight(str(c), table.weights)), None)
    strata = design.strata or "id_stratum"
    psu = design.psu or "id_psu"
    replicates = design.replicates if table.replicate_weights else None
    return Design(weight, strata if strata in columns else None, psu if psu in columns else None, replicates)


def _check_parents(table: SourceTable, keys: Mapping[str, pd.Series], issues: list[Issue]) -> None:
    if table.parent is None or "PARENT_KEY" not in table.frame.columns or table.parent not in keys:
        return
    known = pc.is_in(arrow_strings(table.frame["PARENT_KEY"]), value_set=arrow_strings(keys[table.parent]))
    orphans = ~known.to_numpy(zero_copy_only=False)
    if orphans.any():
        issues.append(
            error(
                EXPORT_ORPHAN_ROWS,
                f"{int(orphans.sum())} row(s) have a PARENT_KEY that is not a KEY of {table.parent} "
                "(getodk/briefcase#646); re-run ingest on the complete submissions.",
                file=table.name,
                variable="PARENT_KEY",
            )
        )


def export_tables(
    data: Any,
    form: FormModel,
    *,
    formats: Iterable[str] = ("sav", "dta", "csv"),
    language: str | None = None,
    out_dir: str | os.PathLike[str],
    missing_codes: MissingCodes | None = None,
    design: Design | None = None,
    codes_from: str | None = CHOICE_NUMERIC_CODE_COLUMN,
    progress: Callable[[int, int, int], None] | None = None,
    workers: int = 1,
) -> ExportResult:
    """Write labelled .sav/.dta/.csv files (one per table) with companion .sps/.do files and the rename map.

    Parameters:
        data: the DATA folder written by `migkit ingest` (or a mapping table name -> DataFrame).
        form: the form model of the data.
        formats: any of "sav", "dta", "csv".
        language: label language; default the form's default language.
        out_dir: folder for the files (created if needed).
        missing_codes: don't know / refused / not applicable codes.
        design: weight, strata and PSU columns (see `prepare_export`).
        codes_from: a choices column with numeric codes for lists whose names are not integers (`iso_num`).
        progress: called as `progress(done, total, rows)` after each data file, `rows` being the largest
            table's row count (for the caller to decide whether to show a bar).
        workers: processes writing files at once (1 = in this process; large exports only).
    """
    chosen_formats = _check_formats(formats)
    prepared = prepare_export(
        data, form, language=language, missing_codes=missing_codes, design=design, codes_from=codes_from
    )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot create the output folder: {exc.strerror}.", file=str(out))
        ) from None
    issues = list(prepared.issues)
    files: list[ExportedFile] = []
    total = sum(_STEPS[fmt] for fmt in chosen_formats) * len(prepared.plans)
    largest = max((len(plan.frame) for plan in prepared.plans), default=0)
    done = 0
    jobs = [(index, fmt) for index in range(len(prepared.plans)) for fmt in _FILE_ORDER if fmt in chosen_formats]
    try:
        # Files, issues and progress in table order, whichever process wrote them.
        for (_, fmt), (written, found) in zip(
            jobs, _run_jobs(jobs, prepared, form, out, workers=workers), strict=True
        ):
            files.extend(written)
            issues.extend(found)
            for _ in range(_STEPS[fmt]):
                done += 1
                if progress is not None:
                    progress(done, total, largest)
        renames = tuple(
            RenameEntry(plan.name, var.name, var.path, var.spss_name, var.stata_name, "; ".join(var.reasons))
            for plan in prepared.plans
            for var in plan.variables
        )
        rename_path = out / f"{form.form_id}-rename-map.csv"
        write_text_atomic(rename_path, "\ufeff" + rename_map_text(renames))  # BOM: Excel then shows Cyrillic
        files.append(ExportedFile(str(rename_path), "", "rename-map"))
        if prepared.recodes:
            value_path = out / f"{form.form_id}-value-map.csv"
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["choice_list", "choice_name", "code", "label"])
            writer.writerows(safe_row([r.choice_list, r.choice, r.code, r.label]) for r in prepared.recodes)
            write_text_atomic(value_path, "\ufeff" + buffer.getvalue())
            files.append(ExportedFile(str(value_path), "", "value-map"))
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot write the export: {exc}", file=str(out))
        ) from None
    return ExportResult(
        form_id=form.form_id,
        language=prepared.language,
        out_dir=str(out),
        files=tuple(files),
        renames=renames,
        recodes=prepared.recodes,
        issues=tuple(issues),
    )


# The data files of one table in the order they are listed; `csv` writes the plain and the labelled CSV.
_FILE_ORDER = ("sav", "dta", "csv")
_STEPS = {"sav": 1, "dta": 1, "csv": 2}
# Below this many cells (rows x variables over every table) the export runs in this process: starting workers
# costs more than it saves.
PARALLEL_MIN_CELLS = 2_000_000


def _write_job(
    prepared: PreparedExport, form: FormModel, out: Path, index: int, fmt: str
) -> tuple[list[ExportedFile], list[Issue]]:
    """Write one table's file(s) of one format: .sav + .sps, .dta + .do, or the two CSVs."""
    plan = prepared.plans[index]
    rows, width = len(plan.frame), len(plan.variables)
    issues: list[Issue] = []
    if fmt == "csv":
        plain, labelled = out / f"{plan.name}.csv", out / f"{plan.name}-labelled.csv"
        parts = plan.csv_parts(ROWS_PER_CHUNK)
        # Both files in one pass over the rows (they share every cell but the labelled codes); UTF-8 with BOM so
        # that Excel shows Cyrillic text, answers that would run as formulas written as text.
        write_atomic(plain, lambda p: write_atomic(labelled, lambda q: write_csv_parts(p, q, parts)))
        files = [
            ExportedFile(str(plain), plan.name, "csv", rows, width),
            ExportedFile(str(labelled), plan.name, "csv-labelled", rows, width),
        ]
        return files, issues
    args, write, companion, syntax = (
        (plan.sav_args, pyreadstat.write_sav, "sps", sps_text)
        if fmt == "sav"
        else (plan.dta_args, pyreadstat.write_dta, "do", do_text)
    )
    frame, kwargs = args(issues)
    target = out / f"{plan.name}.{fmt}"
    write_atomic(target, partial(write, frame, **kwargs))
    del frame  # before the companion: the export copy of a large table is not needed any more
    script = out / f"{plan.name}.{companion}"
    write_text_atomic(script, syntax(plan, form=form, language=prepared.language, file_name=target.name))
    written = [ExportedFile(str(target), plan.name, fmt, rows, width), ExportedFile(str(script), plan.name, companion)]
    return written, issues


# What the forked writer processes need; set in the parent before the pool forks (never pickled).
_JOB_STATE: tuple[PreparedExport, FormModel, Path] | None = None


def _forked_jobs(jobs: list[tuple[int, str]]) -> list[tuple[list[ExportedFile], list[Issue]]]:
    assert _JOB_STATE is not None
    try:
        return [_write_job(*_JOB_STATE, *job) for job in jobs]
    finally:
        # A worker writes several tables: their texts (a few hundred MB for the person table) are not kept.
        for index in {index for index, _ in jobs}:
            _JOB_STATE[0].plans[index].forget_texts()
        release_freed_memory()


def _run_jobs(
    jobs: list[tuple[int, str]], prepared: PreparedExport, form: FormModel, out: Path, *, workers: int
) -> Iterator[tuple[list[ExportedFile], list[Issue]]]:
    """Each job's files and issues, in the order of `jobs`.

    pyreadstat turns every cell into a Python object and holds the interpreter while it does (and the CSV pair is
    formatted by Arrow, still a few seconds for a large table), so the files are written by `workers` forked
    processes, each inheriting the planned tables (nothing is copied or pickled but the results), largest tables
    first. A table's .sav and .dta are written one after the other by one process: each needs the table's text
    columns as Python strings beside the table, and the two of the person table at once took 0.7 GB.
    """
    cells = sum(len(plan.frame) * len(plan.variables) for plan in prepared.plans)
    if workers <= 1 or len(jobs) < 2 or cells < PARALLEL_MIN_CELLS or "fork" not in mp.get_all_start_methods():
        for index, fmt in jobs:
            yield _write_job(prepared, form, out, index, fmt)
        return
    tasks: dict[tuple[int, bool], list[tuple[int, str]]] = {}
    for index, fmt in jobs:
        tasks.setdefault((index, fmt == "csv"), []).append((index, fmt))
    global _JOB_STATE  # noqa: PLW0603 - the forked workers read the plans from here
    _JOB_STATE = (prepared, form, out)
    release_freed_memory()  # what planning freed would otherwise be a part of every worker's memory
    try:
        with mp.get_context("fork").Pool(min(workers, len(tasks))) as pool:

            def size(task: tuple[int, bool]) -> int:
                plan = prepared.plans[task[0]]
                return len(plan.frame) * len(plan.variables) * len(tasks[task])

            pending = {
                task: pool.apply_async(_forked_jobs, (tasks[task],)) for task in sorted(tasks, key=size, reverse=True)
            }
            results: dict[tuple[int, str], tuple[list[ExportedFile], list[Issue]]] = {}
            for job in jobs:
                if job not in results:
                    task = (job[0], job[1] == "csv")
                    results.update(zip(tasks[task], pending[task].get(), strict=True))
                yield results.pop(job)
    finally:
        _JOB_STATE = None


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ToolkitError(
            error(
                EXPORT_FORMAT,
                f"Unknown export format(s) {', '.join(unknown) or '(none)'}; use any of sav, dta, csv.",
            ),
            EXIT_USAGE,
        )
    return chosen
