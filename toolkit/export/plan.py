"""The plan of one table: its export variables (labels, value labels, missing codes, names) and frame."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from toolkit import __version__
from toolkit.errors import (
    Issue,
    warning,
)
from toolkit.export.codes import (
    EXPORT_CHOICES_RECODED,
    EXPORT_LABEL_TRUNCATED,
    EXPORT_LANGUAGE,
    EXPORT_MISSING_CODES,
    EXPORT_NO_CHOICE_LIST,
    EXPORT_RENAMED,
    EXPORT_STRING_TRUNCATED,
    EXPORT_TOO_MANY_VARIABLES,
    Kind,
    Measure,
)
from toolkit.export.columns import (
    INTEGER,
    SPSS_EPOCH,
    STATA_EPOCH,
    all_numeric,
    all_whole,
    as_integers,
    byte_width,
    check_multiple,
    dummies,
    seconds_since,
    select_codes,
    split_datetime,
    split_geopoint,
    stata_tagging,
    tagged,
    text_numbers,
    to_dates,
)
from toolkit.export.names import (
    assign_names,
    identifier,
    one_line,
    spss_ghost_conflicts,
    spss_name,
    stata_name,
    truncate_bytes,
    truncate_chars,
    wrap,
)
from toolkit.export.tables import Design, SourceTable, is_weight
from toolkit.settings import (
    CHOICE_DONT_KNOW,
    CHOICE_REFUSED,
    NUMERIC_DONT_KNOW,
    NUMERIC_REFUSED,
    SPSS_FILE_LABEL_MAX_BYTES,
    SPSS_MAX_DISCRETE_MISSING,
    SPSS_NAME_MAX_BYTES,
    SPSS_RESERVED_WORDS,
    SPSS_STRING_MAX_BYTES,
    SPSS_VALUE_LABEL_MAX_BYTES,
    SPSS_VARIABLE_LABEL_MAX_BYTES,
    STATA_BE_MAX_VARIABLES,
    STATA_DATASET_LABEL_MAX_CHARS,
    STATA_LABELLED_NAME_MAX_CHARS,
    STATA_NAME_MAX_CHARS,
    STATA_RESERVED_NAMES,
    STATA_STR_MAX_BYTES,
    STATA_VALUE_LABEL_KEY_MAX,
    STATA_VARIABLE_LABEL_MAX_CHARS,
)
from toolkit.xform import ChoiceList, FormModel, Node
from toolkit.xform import resolve_language as resolve_form_language

_YES_NO = {  # 0/1 labels of select_multiple dummies, by language code
    "en": ("No", "Yes"),
    "ru": ("Нет", "Да"),
    "kk": ("Жоқ", "Иә"),
    "ky": ("Жок", "Ооба"),
    "tg": ("Не", "Ҳа"),
    "uz": ("Yo'q", "Ha"),
}
_MISSING_LABELS = {"d": "Don't know", "r": "Refused", "n": "Not applicable"}


# --- configuration ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingCodes:
    """Which answers are don't know / refused / not applicable, and their Stata extended-missing letters.

    Parameters:
        choices: select_one choice name -> letter (`d`, `r`, `n`); applies to lists that contain the name.
        numbers: sentinel of integer/decimal questions -> letter.
        labels: letter -> label used when no choice list of the form labels the code.
    """

    choices: Mapping[str, str] = field(default_factory=lambda: {CHOICE_DONT_KNOW: "d", CHOICE_REFUSED: "r"})
    numbers: Mapping[float, str] = field(
        default_factory=lambda: {float(NUMERIC_DONT_KNOW): "d", float(NUMERIC_REFUSED): "r"}
    )
    labels: Mapping[str, str] = field(default_factory=lambda: dict(_MISSING_LABELS))

    @classmethod
    def parse(cls, choices: str | None = None, numbers: str | None = None) -> MissingCodes:
        """Build from CLI text such as ``"98=d,99=r,97=n"`` and ``"-98=d,-99=r"``; None keeps the default."""
        default = cls()

        def pairs(text: str) -> list[tuple[str, str]]:
            out = []
            for part in filter(None, (p.strip() for p in text.split(","))):
                code, _, letter = part.partition("=")
                letter = letter.strip().lstrip(".").lower()
                if not code.strip() or len(letter) != 1 or not "a" <= letter <= "z":
                    raise ValueError(f"{part!r} is not CODE=LETTER with a letter a-z (98=d)")
                out.append((code.strip(), letter))
            return out

        choice_map = dict(pairs(choices)) if choices is not None else dict(default.choices)
        number_map = (
            {float(c): letter for c, letter in pairs(numbers)}
            if numbers is not None
            else dict(default.numbers)
        )
        return cls(choices=choice_map, numbers=number_map, labels=dict(default.labels))


@dataclass(frozen=True)
class RecodeEntry:
    """A choice list recoded to integers: list, choice name, the code used, and its label."""

    choice_list: str
    choice: str
    code: int
    label: str


# --- the plan of one table ----------------------------------------------------------------------------------


@dataclass
class Variable:
    """One exported variable: where it comes from, its label, value labels, missing codes and its names."""

    name: str
    kind: Kind
    label: str
    path: str | None = None
    question_type: str | None = None
    measure: Measure = "nominal"
    value_labels: dict[int, str] | None = None
    missing: dict[float, str] = field(default_factory=dict)  # code -> Stata letter
    spss_format: str | None = None
    multiple: str | None = None  # for dummies: the select_multiple variable they belong to
    weight: bool = False  # a survey weight column (for WEIGHT BY and svyset)
    suffix: str = ""  # the part of the label after the question text (": Choice"), kept whole when cutting
    replicate: bool = False  # a replicate weight column (migkit weights)
    reasons: list[str] = field(default_factory=list)
    spss_name: str = ""
    stata_name: str = ""
    width: int = 0  # byte width of a string variable


class _Origin(TypedDict):
    """The form node a variable comes from, shared by every variable made from one question."""

    path: str | None
    question_type: str | None


@dataclass
class TablePlan:
    """A table ready to write: the export frame (columns named by `Variable.name`) and its variables."""

    name: str
    path: str
    parent: str | None
    frame: pd.DataFrame
    variables: list[Variable]
    file_label: str
    notes: list[str]
    design: Design
    _texts: dict[str, pd.Series] = field(default_factory=dict, repr=False)

    def text(self, var: Variable) -> pd.Series:
        """A text column as Python strings (None when missing), computed once for both formats.

        pyreadstat reads every value through Python; Arrow-backed pandas strings cost a conversion per value
        there, which made the writes about twice as slow as with plain object columns.
        """
        if var.name not in self._texts:
            series = self.frame[var.name]
            if isinstance(series.dtype, pd.StringDtype):
                # Answers repeat: one Python string per distinct answer, shared by its rows (a table of 600,000
                # rows held a few GB of copies of the same strings).
                codes, distinct = pd.factorize(series)
                shared = np.empty(len(distinct) + 1, dtype=object)  # the last one (None) for missing rows
                shared[: len(distinct)] = np.asarray(distinct, dtype=object)
                values = shared[codes]
            else:
                # pandas-stubs reject na_value=None, which pandas documents and accepts
                values = series.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
            self._texts[var.name] = pd.Series(values, index=series.index, dtype=object, copy=False)
        return self._texts[var.name]

    def forget_texts(self) -> None:
        """Drop the text columns made for the writers (`text`)."""
        self._texts.clear()

    def sav_args(self, issues: list[Issue] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The frame and keyword arguments for `pyreadstat.write_sav`."""
        sink: list[Issue] = [] if issues is None else issues
        columns: dict[str, Any] = {}
        labels: dict[str, str] = {}
        value_labels: dict[str, dict[float, str]] = {}
        missing: dict[str, list[float]] = {}
        formats: dict[str, str] = {}
        measures: dict[str, str] = {}
        for var in self.variables:
            series = self.frame[var.name]
            if var.kind in {"date", "month"}:
                columns[var.spss_name] = seconds_since(series, SPSS_EPOCH)
                formats[var.spss_name] = "DATE11" if var.kind == "date" else "MOYR8"
            elif var.kind == "datetime":
                columns[var.spss_name] = seconds_since(series, SPSS_EPOCH)
                formats[var.spss_name] = "DATETIME20"
            elif var.kind == "string":
                columns[var.spss_name] = _cap_string_bytes(self.text(var), var, self.name, sink)
            else:
                columns[var.spss_name] = series
                if var.spss_format:
                    formats[var.spss_name] = var.spss_format
            text, cut = _fit_label(var, truncate_bytes, SPSS_VARIABLE_LABEL_MAX_BYTES)
            if cut:
                sink.append(
                    _label_cut(self.name, var, "SPSS variable label", SPSS_VARIABLE_LABEL_MAX_BYTES, "bytes")
                )
            labels[var.spss_name] = text
            if var.value_labels:
                value_labels[var.spss_name] = {
                    float(code): _value_label_sav(label, self.name, var, sink)
                    for code, label in var.value_labels.items()
                }
            if var.missing:
                codes = sorted(var.missing)
                if len(codes) > SPSS_MAX_DISCRETE_MISSING:
                    sink.append(
                        warning(
                            EXPORT_MISSING_CODES,
                            f"{len(codes)} missing codes configured; SPSS holds {SPSS_MAX_DISCRETE_MISSING} "
                            f"discrete user-missing values, so only {codes[:SPSS_MAX_DISCRETE_MISSING]} are "
                            "user-missing in the .sav (Stata keeps all). Configure fewer codes.",
                            file=self.name,
                            variable=var.name,
                        )
                    )
                missing[var.spss_name] = codes[:SPSS_MAX_DISCRETE_MISSING]
            measures[var.spss_name] = var.measure
        frame = pd.DataFrame(columns, copy=False)
        file_label, _ = truncate_bytes(self.file_label, SPSS_FILE_LABEL_MAX_BYTES)
        return frame, {
            "file_label": file_label,
            "column_labels": labels,
            "variable_value_labels": value_labels,
            "missing_ranges": missing,
            "variable_format": formats,
            "variable_measure": measures,
            "note": [line for note in self.notes for line in wrap(note, 80)],
            # SPSS bytecode compression: what SPSS itself writes by default, read by every SPSS and PSPP; a
            # quarter smaller at no cost in time (ZSAV would be ten times smaller but needs SPSS 21+).
            "row_compress": True,
        }

    def dta_args(self, issues: list[Issue] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The frame and keyword arguments for `pyreadstat.write_dta` (always `version=14`, release 118)."""
        sink: list[Issue] = [] if issues is None else issues
        columns: dict[str, Any] = {}
        labels: dict[str, str] = {}
        value_labels: dict[str, dict[Any, str]] = {}
        missing: dict[str, list[str]] = {}
        formats: dict[str, str] = {}
        for var in self.variables:
            series = self.frame[var.name]
            name = var.stata_name
            if var.kind == "date":
                columns[name] = seconds_since(series, STATA_EPOCH) / 86400.0
                formats[name] = "%td"
            elif var.kind == "month":
                # Stata %tm counts months from January 1960.
                columns[name] = (series.dt.year - 1960) * 12.0 + series.dt.month - 1
                formats[name] = "%tm"
            elif var.kind == "datetime":
                columns[name] = seconds_since(series, STATA_EPOCH) * 1000.0
                formats[name] = "%tc"
            elif var.missing and var.kind != "string":
                how = stata_tagging(series, var.missing)
                columns[name] = tagged(series, var.missing) if how == "tagged" else series
                missing[name] = sorted(set(var.missing.values()))
            elif var.kind == "string" and var.width >= STATA_STR_MAX_BYTES:
                # pyreadstat 1.3.7 fails on a strL column that holds a missing value ("A registered string
                # reference was never inserted into any row"); Stata's missing string is "" anyway.
                columns[name] = self.text(var).fillna("")
            elif var.kind == "string":
                columns[name] = self.text(var)
            else:
                columns[name] = series
            text, cut = _fit_label(var, truncate_chars, STATA_VARIABLE_LABEL_MAX_CHARS)
            if cut:
                sink.append(
                    _label_cut(
                        self.name, var, "Stata variable label", STATA_VARIABLE_LABEL_MAX_CHARS, "characters"
                    )
                )
            labels[name] = text
            if var.value_labels:
                value_labels[name] = {
                    (var.missing.get(float(code)) or code): label for code, label in var.value_labels.items()
                }
        frame = pd.DataFrame(columns, copy=False)
        file_label, _ = truncate_chars(self.file_label, STATA_DATASET_LABEL_MAX_CHARS)
        return frame, {
            "file_label": file_label,
            "column_labels": labels,
            "variable_value_labels": value_labels,
            "missing_user_values": missing,
            "variable_format": formats,
            "version": 14,
        }

    def csv_parts(self, rows_per_part: int) -> Iterator[tuple[pd.DataFrame, dict[str, pd.Series]]]:
        """The plain CSV table and the labelled CSV's columns (`csv_frame`, `csv_labels`) of `rows_per_part` rows
        at a time: a whole copy of a 600,000-row table as text was a gigabyte. Whether a column is written as
        integers is decided on the whole column, so the parts join into the whole table's CSV."""
        whole = {var.name: all_whole(self.frame[var.name]) for var in self.variables if var.kind in {"code", "number"}}
        for start in range(0, max(len(self.frame), 1), rows_per_part):
            part = self.frame.iloc[start : start + rows_per_part]
            yield self.csv_frame(labelled=False, rows=part, whole=whole), self.csv_labels(rows=part, whole=whole)

    def csv_frame(
        self, *, labelled: bool, rows: pd.DataFrame | None = None, whole: Mapping[str, bool] | None = None
    ) -> pd.DataFrame:
        """The table for CSV: export names as the header, ISO dates, integer codes (or their labels).

        Parameters:
            labelled: codes shown as their labels.
            rows: some rows of the plan's frame (default all).
            whole: per code or number column, whether the whole column is written as integers (see `csv_parts`).
        """
        frame = self.frame if rows is None else rows
        whole = whole or {}
        columns: dict[str, Any] = {}
        for var in self.variables:
            series = frame[var.name]
            if var.kind == "date":
                columns[var.name] = series.dt.strftime("%Y-%m-%d")
            elif var.kind == "month":
                columns[var.name] = series.dt.strftime("%Y-%m")
            elif var.kind == "datetime":
                columns[var.name] = series.dt.strftime("%Y-%m-%d %H:%M:%S")
            elif var.kind in {"code", "number"}:
                columns[var.name] = as_integers(series, whole.get(var.name))
            else:
                columns[var.name] = series
        if labelled:
            columns.update(self.csv_labels(rows=rows, whole=whole))
        return pd.DataFrame(columns, copy=False)

    def csv_labels(
        self, *, rows: pd.DataFrame | None = None, whole: Mapping[str, bool] | None = None
    ) -> dict[str, pd.Series]:
        """The columns that differ in the labelled CSV: each code (and each labelled number) shown as its label.

        Parameters:
            rows: some rows of the plan's frame (default all).
            whole: as for `csv_frame`.
        """
        frame = self.frame if rows is None else rows
        whole = whole or {}
        columns: dict[str, pd.Series] = {}
        for var in self.variables:
            if var.kind not in {"code", "number"} or not var.value_labels:
                continue
            series = frame[var.name]
            mapped = series.map({float(c): label for c, label in var.value_labels.items()})
            integers = as_integers(series, whole.get(var.name)).astype(object)
            if var.kind == "code":
                columns[var.name] = mapped.where(series.isna() | mapped.notna(), integers)
            else:
                columns[var.name] = mapped.where(mapped.notna(), integers)
        return columns


def _fit_label(var: Variable, cut: Callable[[str, int], tuple[str, bool]], limit: int) -> tuple[str, bool]:
    """The variable label within `limit`; when it is too long the question text is cut, never the suffix that
    tells the dummies of a select_multiple (or the parts of a geopoint) apart."""
    text, was_cut = cut(var.label, limit)
    if not was_cut or not var.suffix or not var.label.endswith(var.suffix):
        return text, was_cut
    question = var.label[: -len(var.suffix)]
    room = limit - (len(var.suffix.encode("utf-8")) if cut is truncate_bytes else len(var.suffix))
    if room < 8:
        return text, was_cut
    head, _ = cut(question, room)
    return head + var.suffix, True


def _label_cut(table: str, var: Variable, what: str, limit: int, unit: str) -> Issue:
    return warning(
        EXPORT_LABEL_TRUNCATED,
        f"The {what} was cut to {limit} {unit} (ending with '…'); the full text is in the notes of the "
        "companion .do file and in the codebook.",
        file=table,
        variable=var.name,
        path=var.path,
    )


def _value_label_sav(label: str, table: str, var: Variable, sink: list[Issue]) -> str:
    text, cut = truncate_bytes(label, SPSS_VALUE_LABEL_MAX_BYTES)
    if cut:
        sink.append(
            warning(
                EXPORT_LABEL_TRUNCATED,
                f"An SPSS value label was cut to {SPSS_VALUE_LABEL_MAX_BYTES} bytes: {label[:40]!r}…; "
                "shorten the choice label or read the full text in the codebook.",
                file=table,
                variable=var.name,
                path=var.path,
            )
        )
    return text


def _cap_string_bytes(series: pd.Series, var: Variable, table: str, sink: list[Issue]) -> pd.Series:
    if var.width <= SPSS_STRING_MAX_BYTES:
        return series
    encoded = series.dropna().map(lambda s: s.encode("utf-8"))
    long = encoded[encoded.map(len) > SPSS_STRING_MAX_BYTES]
    sink.append(
        warning(
            EXPORT_STRING_TRUNCATED,
            f"{len(long)} value(s) are longer than SPSS's {SPSS_STRING_MAX_BYTES} bytes and were cut in the "
            ".sav (the .dta and .csv keep them whole).",
            file=table,
            variable=var.name,
            path=var.path,
        )
    )
    capped = series.copy()
    capped.loc[long.index] = long.map(lambda b: b[:SPSS_STRING_MAX_BYTES].decode("utf-8", "ignore"))
    return capped


def _fields_by_name(form: FormModel, table_path: str) -> dict[str, Node]:
    """Column name -> field, with the `<group>_<name>` rule of docs/tables.md for a repeated name."""
    out: dict[str, Node] = {}
    for node in form.fields_in(table_path):
        name = node.name
        if name in out:
            group = form.nodes[node.parent].name if node.parent and node.parent != form.root else ""
            name = f"{group}_{node.name}" if group else name
        out.setdefault(name, node)
    return out


def _language_code(language: str | None) -> str:
    match = re.search(r"\(([A-Za-z-]+)\)\s*$", language or "")
    return match.group(1).lower() if match else "en"


def resolve_language(form: FormModel, language: str | None) -> str | None:
    """The label language to use (see `toolkit.xform.resolve_language`); an unknown one is a usage error."""
    return resolve_form_language(form, language, code=EXPORT_LANGUAGE)


def _missing_label(form: FormModel, code: str, letter: str, language: str | None, codes: MissingCodes) -> str:
    for choice_list in form.choice_lists.values():
        choice = choice_list.get(code)
        if choice is not None:
            return choice.label(language)
    return codes.labels.get(letter, f".{letter}")


_META_LABELS = {
    "KEY": "Row key (submission instanceID; repeat rows add /repeat[n])",
    "PARENT_KEY": "KEY of the enclosing row",
    "hh_id": "Household id (1..n in KEY order)",
    "FormVersion": "Form version of the submission",
    "SubmissionDate": "Date and time the server received the submission (UTC)",
    "var_stratum": "Variance stratum (migkit weights)",
    "var_psu": "Variance PSU (migkit weights)",
    "resp_status": "Response status: ER/EN eligible respondent/nonrespondent, IN ineligible, UE unknown",
}


def _codes_from_column(choice_list: ChoiceList, column: str) -> dict[str, int] | None:
    """Codes from a choices column (`iso_num`), None unless every choice gets a distinct integer code."""
    codes: dict[str, int] = {}
    for choice in choice_list.choices:
        value = (choice.extra.get(column) or "").strip() or choice.name
        if not INTEGER.match(value) or abs(int(value)) > STATA_VALUE_LABEL_KEY_MAX:
            return None
        codes[choice.name] = int(value)
    return codes if len(set(codes.values())) == len(codes) else None


def _choice_codes(
    form: FormModel,
    node: Node,
    *,
    language: str | None,
    issues: list[Issue],
    table: str,
    recodes: dict[str, list[RecodeEntry]],
    codes_from: str | None = None,
) -> tuple[dict[str, int], dict[int, str]]:
    """choice name -> integer code and code -> label.

    Integer names are the codes. Otherwise the codes come from the choices column `codes_from` when every
    choice has a distinct integer there (or an integer name, such as 98/99 in a country list coded by ISO
    number), else 1..n in list order.
    """
    choice_list = form.choice_lists[node.choice_list or ""]
    names = choice_list.names
    integer = all(INTEGER.match(n) and abs(int(n)) <= STATA_VALUE_LABEL_KEY_MAX for n in names)
    from_column = _codes_from_column(choice_list, codes_from) if codes_from else None
    if integer and len({int(n) for n in names}) == len(names):
        mapping = {n: int(n) for n in names}
    elif from_column is not None:
        mapping = from_column
        if choice_list.name not in recodes:
            recodes[choice_list.name] = [
                RecodeEntry(choice_list.name, c.name, mapping[c.name], c.label(language))
                for c in choice_list.choices
            ]
    else:
        mapping = {n: i for i, n in enumerate(names, start=1)}
        if choice_list.name not in recodes:
            recodes[choice_list.name] = [
                RecodeEntry(choice_list.name, c.name, mapping[c.name], c.label(language))
                for c in choice_list.choices
            ]
            issues.append(
                warning(
                    EXPORT_CHOICES_RECODED,
                    f"Choice list {choice_list.name!r} has names that are not distinct integers; its "
                    f"answers are coded 1..{len(names)} in list order. The mapping is in the value map file.",
                    file=table,
                    variable=node.name,
                    path=node.path,
                )
            )
    labels = {mapping[c.name]: one_line(c.label(language)) for c in choice_list.choices}
    return mapping, labels


def plan_table(  # noqa: PLR0912, PLR0915
    table: SourceTable,
    form: FormModel,
    *,
    language: str | None,
    missing_codes: MissingCodes,
    design: Design,
    issues: list[Issue],
    recodes: dict[str, list[RecodeEntry]],
    codes_from: str | None = None,
) -> TablePlan:
    """Turn one DATA table into export variables and the export frame (codes, split columns, dates)."""
    fields = _fields_by_name(form, table.path)
    by_path = {node.path: node for node in form.fields_in(table.path)}
    yes_no = _YES_NO.get(_language_code(language), _YES_NO["en"])
    repeat_names = {node.name for node in form.repeats()}
    columns: dict[str, Any] = {}
    variables: list[Variable] = []
    frame = table.frame

    taken = {str(c).lower() for c in frame.columns}

    def add(var: Variable, values: Any, *, derived: bool = False) -> None:
        # A derived name (gps_latitude, fav_1, start_tz) may already be a column of the table: the column
        # keeps its name and the derived variable gets the first free numeric suffix.
        if var.name in columns or (derived and var.name.lower() in taken):
            base, counter = var.name, 2
            while f"{base}_{counter}".lower() in taken or f"{base}_{counter}" in columns:
                counter += 1
            var.name = f"{base}_{counter}"
            taken.add(var.name.lower())
            var.reasons.append(f"derived name {base!r} is already a column")
        columns[var.name] = values
        variables.append(var)

    for column in frame.columns:
        series = frame[column]
        node = by_path.get(table.column_paths.get(column, "")) or fields.get(column)
        if node is None:
            _plan_extra_column(column, series, table, repeat_names, add, design_columns={design.strata, design.psu})
            continue
        qtype = node.question_type
        if qtype in {"note", "group", "repeat"}:
            continue
        label = one_line(node.label(language)) or _default_label(node, form)
        common: _Origin = {"path": node.path, "question_type": qtype}
        if qtype == "select_one" and node.choice_source == "list" and node.choice_list in form.choice_lists:
            mapping, labels = _choice_codes(
                form,
                node,
                language=language,
                issues=issues,
                table=table.name,
                recodes=recodes,
                codes_from=codes_from,
            )
            codes = select_codes(series, mapping, node, table=table.name, issues=issues, labels=labels)
            missing = {}
            for code_name, letter in missing_codes.choices.items():
                # A configured code matches a choice name, or an integer name with leading zeros ("02").
                match = (
                    code_name
                    if code_name in mapping
                    else next(
                        (
                            n
                            for n in mapping
                            if INTEGER.match(n) and INTEGER.match(code_name) and int(n) == int(code_name)
                        ),
                        None,
                    )
                )
                if match is not None:
                    missing[float(mapping[match])] = letter
            fmt = "F8.0" if max(map(abs, labels), default=0) < 10_000_000 else "F11.0"
            add(
                Variable(
                    column, "code", label, value_labels=labels, missing=missing, spss_format=fmt, **common
                ),
                codes,
            )
        elif (
            qtype == "select_multiple"
            and node.choice_source == "list"
            and node.choice_list is not None
            and node.choice_list in form.choice_lists
        ):
            add(Variable(column, "string", label, **common), series)
            choice_list = form.choice_lists[node.choice_list]
            check_multiple(series, choice_list.names, node, table.name, issues)
            # Dummies come from the form's list, not from the values seen, so the columns never change.
            matrix = dummies(series, choice_list.names)
            for position, choice in enumerate(choice_list.choices):
                dummy = matrix[:, position]
                add(
                    Variable(
                        f"{column}_{choice.name}",
                        "code",
                        f"{label}: {one_line(choice.label(language))}",
                        suffix=f": {one_line(choice.label(language))}",
                        value_labels={0: yes_no[0], 1: yes_no[1]},
                        spss_format="F1.0",
                        multiple=column,
                        **common,
                    ),
                    dummy,
                    derived=True,
                )
        elif qtype == "select_one" and node.choice_source == "repeat" and (lines := _roster_lines(series)) is not None:
            # A pick from the roster (select_one ${hl_pick}, with hl_pick = "3: Aziz"): the line number is the
            # value analysts merge on; the text shown to the interviewer is kept beside it. Names differ from one
            # household to the next, so they cannot be value labels of the line numbers.
            add(Variable(column, "number", f"{label} (line number)", spss_format="F4.0", **common), lines)
            add(
                Variable(f"{column}_text", "string", f"{label} (as shown)", suffix=" (as shown)", **common),
                series,
                derived=True,
            )
        elif node.is_select:
            if qtype != "rank":
                issues.append(
                    warning(
                        EXPORT_NO_CHOICE_LIST,
                        f"The choices of {node.name!r} come from a {node.choice_source or 'dynamic source'}, "
                        "so the answers are exported as text without value labels.",
                        file=table.name,
                        variable=column,
                        path=node.path,
                    )
                )
            add(Variable(column, "string", label, **common), series)
        elif qtype in {"geopoint", "start-geopoint"}:
            parts = split_geopoint(series, node, table.name, issues)
            for part, values, fmt in zip(
                ("latitude", "longitude", "altitude", "accuracy"),
                parts,
                ("F12.6", "F12.6", "F10.1", "F10.1"),
                strict=True,
            ):
                add(
                    Variable(
                        f"{column}_{part}",
                        "number",
                        f"{label} ({part})",
                        suffix=f" ({part})",
                        measure="scale",
                        spss_format=fmt,
                        **common,
                    ),
                    values,
                    derived=True,
                )
        elif node.data_type == "dateTime" or qtype in {"start", "end"}:
            local, offset = split_datetime(series, node, table.name, issues)
            add(
                Variable(
                    column,
                    "datetime",
                    f"{label} (device local time)",
                    suffix=" (device local time)",
                    measure="scale",
                    **common,
                ),
                local,
            )
            add(
                Variable(
                    f"{column}_tz",
                    "number",
                    f"{label}: UTC offset of the device (minutes)",
                    suffix=": UTC offset of the device (minutes)",
                    measure="scale",
                    spss_format="F5.0",
                    **common,
                ),
                offset,
                derived=True,
            )
        elif node.data_type == "date" and "month-year" in (node.appearance or "").split():
            # Collect stores a month-year answer as the first day of the month: export a month (SPSS MOYR,
            # Stata %tm), so nobody reads the day as an answer.
            dates = to_dates(series, node, table.name, issues)
            add(Variable(column, "month", label, measure="scale", **common), dates.dt.to_period("M").dt.to_timestamp())
        elif node.data_type == "date" or qtype == "today":
            add(
                Variable(column, "date", label, measure="scale", **common),
                to_dates(series, node, table.name, issues),
            )
        elif qtype in {"integer", "decimal", "range"} or (
            qtype == "calculate" and pd.api.types.is_numeric_dtype(series)
        ):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            missing = {} if qtype == "calculate" else dict(missing_codes.numbers)
            value_labels = {
                int(code): _missing_label(form, str(int(-code)), letter, language, missing_codes)
                for code, letter in missing.items()
            } or None
            integer = node.data_type == "int"
            add(
                Variable(
                    column,
                    "number",
                    label,
                    measure="scale",
                    value_labels=value_labels,
                    missing=missing,
                    spss_format="F12.0" if integer else "F14.2",
                    **common,
                ),
                values,
            )
        elif qtype == "calculate" and all_numeric(series):
            add(
                Variable(column, "number", label, measure="scale", **common),
                text_numbers(series),
            )
        else:
            add(Variable(column, "string", label, **common), series)

    plan_frame = pd.DataFrame(columns, index=frame.index, copy=False)
    for var in variables:
        if var.kind == "string":
            var.width = byte_width(plan_frame[var.name])
    notes = [
        f"Form {form.form_id} version {form.version or '-'}: {form.title or ''}".strip(),
        f"Table {table.name}; labels in {language or 'the form language'}; exported by migkit {__version__}.",
        "Date-times are the device's local wall-clock time; <name>_tz holds its UTC offset in minutes.",
    ]
    file_label = f"{form.title or form.form_id} - {table.name}"
    return TablePlan(table.name, table.path, table.parent, plan_frame, variables, file_label, notes, design)


_PRELOAD_LABELS = {
    "start": "Interview start",
    "end": "Interview end",
    "today": "Date of the interview",
    "deviceid": "Device id",
    "username": "Username on the device",
    "instance_id": "Submission instanceID",
    "audit": "Audit log file",
    "start-geopoint": "Location at the start of the interview",
    "phonenumber": "Phone number",
    "subscriberid": "Subscriber id",
    "simserial": "SIM serial",
    "email": "E-mail",
}


def xlsform_refs(form: FormModel, expression: str | None) -> str | None:
    """An XPath expression with absolute node paths written back as XLSForm ${name} references."""
    if not expression:
        return expression
    pattern = re.escape(form.root) + r"(?:/[\w.-]+)+"

    def name_of(match: re.Match[str]) -> str:
        node = form.nodes.get(match.group(0))
        return "${" + node.name + "}" if node is not None else match.group(0)

    return re.sub(pattern, name_of, expression)


def _default_label(node: Node, form: FormModel) -> str:
    """A label for fields without one: metadata get a description, calculations show their expression."""
    if node.question_type in _PRELOAD_LABELS:
        return _PRELOAD_LABELS[node.question_type]
    if node.calculate:
        return one_line(f"{node.name} = {xlsform_refs(form, node.calculate)}")
    return node.name


def _plan_extra_column(
    column: str,
    series: pd.Series,
    table: SourceTable,
    repeat_names: set[str],
    add: Callable[[Variable, Any], None],
    *,
    design_columns: set[str | None],
) -> None:
    """Columns that are not form fields: keys, ids, weights, anything a later stage added."""
    design_numbers = _whole_numbers(series) if column in design_columns else None
    if is_weight(column, table.weights):
        add(
            Variable(
                column,
                "number",
                f"Survey weight ({column})",
                measure="scale",
                spss_format="F14.6",
                weight=True,
            ),
            series.to_numpy(dtype="float64", na_value=np.nan),
        )
    elif column in table.replicate_weights:
        add(
            Variable(
                column,
                "number",
                f"Replicate weight ({column})",
                measure="scale",
                spss_format="F14.6",
                replicate=True,
            ),
            series.to_numpy(dtype="float64", na_value=np.nan),
        )
    elif column in _META_LABELS and column == "SubmissionDate":
        local, _ = split_datetime(series, None, table.name, [])
        add(Variable(column, "datetime", _META_LABELS[column], measure="scale"), local)
    elif (column.endswith("_no") and column[:-3] in repeat_names) or column == "hh_id":
        label = _META_LABELS.get(column) or f"Row number within repeat {column[:-3]}"
        add(
            Variable(column, "number", label, spss_format="F10.0"),
            series.to_numpy(dtype="float64", na_value=np.nan),
        )
    elif design_numbers is not None:
        # Variance strata and PSUs that are whole numbers written as text: numbers, so that Stata's svyset
        # and SPSS Complex Samples take them as they are.
        add(Variable(column, "number", _META_LABELS.get(column, column), spss_format="F12.0"), design_numbers)
    elif pd.api.types.is_numeric_dtype(series):
        add(
            Variable(column, "number", _META_LABELS.get(column, column), measure="scale"),
            series.to_numpy(dtype="float64", na_value=np.nan),
        )
    else:
        add(
            Variable(column, "string", _META_LABELS.get(column, column)),
            series.astype("str").where(series.notna()),
        )


def _roster_lines(series: pd.Series) -> np.ndarray | None:
    """The leading line numbers of roster picks ("3: Aziz" -> 3), or None when an answer does not start with one."""
    text = series.dropna().astype(str)
    numbers = text.str.extract(r"^\s*(\d{1,4})\s*[:.)\-]", expand=False)
    if text.empty or numbers.isna().any():
        return None
    lines = pd.Series(np.nan, index=series.index, dtype="float64")
    lines.loc[numbers.index] = numbers.astype("float64")
    return lines.to_numpy()


def _whole_numbers(series: pd.Series) -> np.ndarray | None:
    """The values as float64 when every one is a whole number written without leading zeros (so that no ID such
    as "0501" loses a digit), else None."""
    if pd.api.types.is_numeric_dtype(series):
        return None
    text = series.dropna().astype(str)
    if text.empty or not text.str.fullmatch(r"-?(0|[1-9][0-9]{0,14})").all():
        return None
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


# --- names for a table --------------------------------------------------------------------------------------


def name_variables(plan: TablePlan, issues: list[Issue]) -> None:
    """Give every variable its SPSS and Stata name (unique per table) and record why a name changed."""
    names = [var.name for var in plan.variables]
    stata_candidates = [stata_name(var.name, labelled=bool(var.value_labels)) for var in plan.variables]
    stata_limits = [
        STATA_LABELLED_NAME_MAX_CHARS if var.value_labels else STATA_NAME_MAX_CHARS for var in plan.variables
    ]
    stata = assign_names(names, stata_candidates, stata_limits, reserved=lambda n: n in STATA_RESERVED_NAMES)
    spss_candidates = [spss_name(var.name) for var in plan.variables]
    spss_limits = [SPSS_NAME_MAX_BYTES] * len(names)

    def spss_reserved(name: str) -> bool:
        return name.upper() in SPSS_RESERVED_WORDS

    spss = assign_names(names, spss_candidates, spss_limits, reserved=spss_reserved)
    widths = [var.width if var.kind == "string" else 0 for var in plan.variables]
    for _ in range(3):
        conflicts = spss_ghost_conflicts(spss, widths)
        if not conflicts:
            break
        for index in conflicts:
            spss_candidates[index] = spss[index][: SPSS_NAME_MAX_BYTES - 4] + "_txt"
            names_for_keep = list(names)
            names_for_keep[index] = ""  # never keep the old name
            spss = assign_names(names_for_keep, spss_candidates, spss_limits, reserved=spss_reserved)
    for var, s_name, t_name in zip(plan.variables, spss, stata, strict=True):
        var.spss_name, var.stata_name = s_name, t_name
        var.reasons = var.reasons + _rename_reasons(var, s_name, t_name)
        if var.reasons:
            issues.append(
                warning(
                    EXPORT_RENAMED,
                    f"Renamed for {', '.join(sorted({r.split(':')[0] for r in var.reasons}))}: "
                    f"SPSS {s_name!r}, Stata {t_name!r} ({'; '.join(var.reasons)}). "
                    "The rename map lists every name.",
                    file=plan.name,
                    variable=var.name,
                    path=var.path,
                )
            )
    if len(plan.variables) > STATA_BE_MAX_VARIABLES:
        issues.append(
            warning(
                EXPORT_TOO_MANY_VARIABLES,
                f"{len(plan.variables)} variables; Stata/BE opens at most {STATA_BE_MAX_VARIABLES} (SE/MP "
                "open 32,767).",
                file=plan.name,
            )
        )


def _rename_reasons(var: Variable, s_name: str, t_name: str) -> list[str]:
    reasons = []
    for fmt, new, limit, reserved in (
        ("SPSS", s_name, SPSS_NAME_MAX_BYTES, SPSS_RESERVED_WORDS),
        (
            "Stata",
            t_name,
            STATA_LABELLED_NAME_MAX_CHARS if var.value_labels else STATA_NAME_MAX_CHARS,
            STATA_RESERVED_NAMES,
        ),
    ):
        if new == var.name:
            continue
        base = identifier(var.name)
        if base != var.name:
            reasons.append(f"{fmt}: characters not allowed")
        if (base.upper() in reserved) if fmt == "SPSS" else (base in reserved):
            reasons.append(f"{fmt}: reserved word")
        if fmt == "SPSS" and new.endswith("_txt") and not var.name.endswith("_txt"):
            reasons.append("SPSS: long-string segment names")
        if len(base.encode("utf-8")) > limit:
            reasons.append(
                f"{fmt}: longer than {limit}" + (" (labelled)" if fmt == "Stata" and var.value_labels else "")
            )
        if re.search(r"_\d+$", new) and not re.search(r"_\d+$", base):
            reasons.append(f"{fmt}: same name as another variable")
        if not reasons or not reasons[-1].startswith(fmt):
            reasons.append(f"{fmt}: adjusted")
    return reasons
