"""Labelled SPSS (.sav), Stata (.dta, release 118) and CSV exports of the DATA tables, with companion syntax.

One file per table (the main level and each repeat), linked by KEY/PARENT_KEY and the integer ids written by ingest.
Variable labels are the question labels in one language; select_one answers become numeric codes with value labels;
select_multiple answers become 0/1 dummies taken from the form's choice list (plus the original space-separated text);
geopoints are split into latitude/longitude/altitude/accuracy; dates and dateTimes become real date types; don't-know,
refused and not-applicable codes become SPSS user-missing values and Stata extended missing values `.d`/`.r`/`.n`.

Everything the file formats cannot hold, or pyreadstat cannot write, goes into companion files: a `.sps` per table
(VARIABLE LEVEL, MRSETS, WEIGHT BY, DOCUMENT) and a `.do` per table (notes and characteristics with the full question
text, relevance and constraint; `svyset`). Names are made valid for each format by pure functions (`stata_name`,
`spss_name`, `assign_names`) and every change is written to `<form_id>-rename-map.csv`. docs/export.md is the user
documentation of these rules.

Time zones: ODK dateTime values carry the device's UTC offset. We export the device's local wall-clock time (what the
enumerator saw) as the datetime, and the offset in minutes in a companion variable `<name>_tz`; UTC is recoverable as
local time minus the offset. pyreadstat would otherwise move tz-aware values to UTC without saying so.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from toolkit import __version__
from toolkit.errors import (
    EXIT_USAGE,
    INPUT_MISSING,
    INPUT_UNREADABLE,
    OUTPUT_UNWRITABLE,
    Issue,
    Severity,
    ToolkitError,
    define,
    error,
    warning,
)
from toolkit.settings import (
    CHOICE_DONT_KNOW,
    CHOICE_REFUSED,
    NUMERIC_DONT_KNOW,
    NUMERIC_REFUSED,
    SPSS_FILE_LABEL_MAX_BYTES,
    SPSS_MAX_DISCRETE_MISSING,
    SPSS_NAME_MAX_BYTES,
    SPSS_RESERVED_WORDS,
    SPSS_SHORT_STRING_MAX_BYTES,
    SPSS_STRING_MAX_BYTES,
    SPSS_VALUE_LABEL_MAX_BYTES,
    SPSS_VARIABLE_LABEL_MAX_BYTES,
    STATA_BE_MAX_VARIABLES,
    STATA_DATASET_LABEL_MAX_CHARS,
    STATA_LABELLED_NAME_MAX_CHARS,
    STATA_NAME_MAX_CHARS,
    STATA_RESERVED_NAMES,
    STATA_VALUE_LABEL_KEY_MAX,
    STATA_STR_MAX_BYTES,
    STATA_VARIABLE_LABEL_MAX_CHARS,
)
from toolkit.xform import FormModel, Node

EXPORT_RENAMED = define("export.renamed", "A variable was renamed to meet SPSS or Stata name rules")
EXPORT_LABEL_TRUNCATED = define("export.label_truncated", "A label was cut to the format's length limit")
EXPORT_CHOICES_RECODED = define(
    "export.choices_recoded", "A choice list with non-integer names was recoded 1..n in list order"
)
EXPORT_UNKNOWN_CHOICE = define(
    "export.unknown_choice", "The data hold a value that is not in the choice list"
)
EXPORT_NO_CHOICE_LIST = define(
    "export.no_choice_list", "A select from a file or a repeat is exported as text without value labels"
)
EXPORT_TOO_MANY_VARIABLES = define(
    "export.too_many_variables", "A table has more variables than Stata/BE opens"
)
EXPORT_STRING_TRUNCATED = define("export.string_truncated", "Text longer than SPSS allows was cut")
EXPORT_BAD_VALUE = define("export.bad_value", "A geopoint, date or dateTime value could not be read")
EXPORT_MISSING_CODES = define("export.missing_codes", "More user-missing codes than SPSS can hold")
EXPORT_ORPHAN_ROWS = define(
    "export.orphan_rows", "Repeat rows whose PARENT_KEY is not a KEY of the parent table"
)
EXPORT_LANGUAGE = define("export.language", "The requested label language is not in the form")
EXPORT_FORMAT = define("export.format", "An unknown export format was requested")
EXPORT_NO_TABLES = define("export.no_tables", "The DATA folder holds no tables of this form")

Format = Literal["sav", "dta", "csv"]
FORMATS: tuple[Format, ...] = ("sav", "dta", "csv")
Measure = Literal["nominal", "ordinal", "scale"]
Kind = Literal["string", "code", "number", "date", "datetime"]

# Day counts between the epochs: SPSS counts seconds from 1582-10-14, Stata days (%td) or ms (%tc) from 1960-01-01.
_SPSS_EPOCH = np.datetime64("1582-10-14", "s")
_STATA_EPOCH = np.datetime64("1960-01-01", "s")

_YES_NO = {  # 0/1 labels of select_multiple dummies, by language code
    "en": ("No", "Yes"),
    "ru": ("Нет", "Да"),
    "kk": ("Жоқ", "Иә"),
    "ky": ("Жок", "Ооба"),
    "tg": ("Не", "Ҳа"),
    "uz": ("Yo'q", "Ha"),
}
_MISSING_LABELS = {"d": "Don't know", "r": "Refused", "n": "Not applicable"}
_INTEGER = re.compile(r"^[+-]?\d+$")
# ODK dateTime: local date and time, then the device's UTC offset (RE2 syntax, for Arrow).
_ODK_DATETIME = (
    r"^\s*(?P<local>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?\s*$"
)


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
class Design:
    """Survey design columns of the main table, for `svyset` and `WEIGHT BY` (None = not known)."""

    weight: str | None = None
    strata: str | None = None
    psu: str | None = None


# --- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedFile:
    """One file written: its path, the table it holds, its kind (sav, dta, csv, csv-labelled, sps, do, map)."""

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
class RecodeEntry:
    """A choice list recoded to integers: list, choice name, the code used, and its label."""

    choice_list: str
    choice: str
    code: int
    label: str


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


# --- names: pure functions ----------------------------------------------------------------------------------

# Cyrillic -> Latin for the six survey languages (Russian after BGN/PCGN without diacritics; Kazakh, Kyrgyz, Tajik
# and Uzbek Cyrillic extra letters). Only used for names: labels keep their script.
_TRANSLIT = {
    "а": "a",
    "б": "b",
    "в": "v",
    "г": "g",
    "д": "d",
    "е": "e",
    "ё": "yo",
    "ж": "zh",
    "з": "z",
    "и": "i",
    "й": "y",
    "к": "k",
    "л": "l",
    "м": "m",
    "н": "n",
    "о": "o",
    "п": "p",
    "р": "r",
    "с": "s",
    "т": "t",
    "у": "u",
    "ф": "f",
    "х": "kh",
    "ц": "ts",
    "ч": "ch",
    "ш": "sh",
    "щ": "shch",
    "ъ": "",
    "ы": "y",
    "ь": "",
    "э": "e",
    "ю": "yu",
    "я": "ya",
    "є": "ye",
    "і": "i",
    "ї": "yi",
    "ґ": "g",
    "ә": "a",
    "ғ": "gh",
    "қ": "q",
    "ң": "ng",
    "ө": "o",
    "ұ": "u",
    "ү": "u",
    "һ": "h",
    "ҳ": "h",
    "ӣ": "i",
    "ӯ": "u",
    "ҷ": "j",
    "ў": "o",
    "ҝ": "g",
    "ҹ": "ch",
}


def transliterate(text: str) -> str:
    """ASCII rendering of a name: Cyrillic letters transliterated, accents dropped, other characters kept as is.

    Parameters:
        text: any Unicode text.
    """
    out = []
    for char in text:
        lower = char.lower()
        if lower in _TRANSLIT:
            latin = _TRANSLIT[lower]
            out.append(latin.capitalize() if char != lower and latin else latin)
        else:
            out.append(unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode() or char)
    return "".join(out)


def _identifier(name: str) -> str:
    """Letters, digits and underscores only, never empty, never starting with a digit or underscore."""
    ascii_name = re.sub(r"[^A-Za-z0-9_]", "_", transliterate(name))
    ascii_name = re.sub(r"__+", "_", ascii_name) if ascii_name != name else ascii_name
    if not ascii_name.strip("_"):
        return "v"
    if not ascii_name[0].isalpha():
        ascii_name = "v" + (ascii_name if ascii_name[0] == "_" else "_" + ascii_name)
    return ascii_name


def stata_name(name: str, *, labelled: bool = False) -> str:
    """The Stata name for `name` before collisions are resolved.

    ASCII `[A-Za-z][A-Za-z0-9_]*` (Cyrillic transliterated, other characters become `_`, a leading digit or `_`
    gets a `v` prefix), `_v` appended to a reserved name, cut to 32 characters, or 28 for a labelled variable
    (pyreadstat names the value-label set `<name><index>` and label-set names are limited to 32 characters).

    Parameters:
        name: the export name (XLSForm name or derived name such as `fav_3`).
        labelled: whether the variable carries value labels.
    """
    limit = STATA_LABELLED_NAME_MAX_CHARS if labelled else STATA_NAME_MAX_CHARS
    candidate = _identifier(name)
    if candidate in STATA_RESERVED_NAMES:
        candidate += "_v"
    return candidate[:limit]


def spss_name(name: str) -> str:
    """The SPSS name for `name` before collisions are resolved.

    Same ASCII rule as Stata (so both files usually share names), no trailing `_` (SPSS advises against it), `_v`
    appended to a reserved word in any case (ReadStat only refuses the upper-case forms, and PSPP then renames
    `by`, `with`, ... to VAR001 and loses their labels), cut to 64 bytes.

    Parameters:
        name: the export name.
    """
    candidate = _identifier(name)
    if candidate.rstrip("_"):
        candidate = candidate.rstrip("_")
    if candidate.upper() in SPSS_RESERVED_WORDS:
        candidate += "_v"
    return candidate[:SPSS_NAME_MAX_BYTES]


def assign_names(
    names: Sequence[str],
    candidates: Sequence[str],
    limits: Sequence[int],
    *,
    reserved: Callable[[str], bool] = lambda _name: False,
) -> list[str]:
    """Make candidate names unique without regard to case, deterministically.

    A candidate equal to its original name keeps it (the first such one in column order wins); every other name, in
    column order, gets the first free `<stem>_2`, `<stem>_3`, ... with the stem cut so that the name fits its limit.

    Parameters:
        names: the original names, in column order.
        candidates: the format-valid candidates for them (`stata_name` / `spss_name`).
        limits: the length limit of each name.
        reserved: names that a suffixed name must not equal.
    """
    taken: set[str] = set()
    result: list[str | None] = [None] * len(names)
    for index, (name, candidate) in enumerate(zip(names, candidates, strict=True)):
        if name == candidate and candidate.lower() not in taken:
            taken.add(candidate.lower())
            result[index] = candidate
    for index, candidate in enumerate(candidates):
        if result[index] is not None:
            continue
        chosen = candidate
        counter = 1
        while chosen.lower() in taken or reserved(chosen):
            counter += 1
            suffix = f"_{counter}"
            chosen = candidate[: limits[index] - len(suffix)] + suffix
        taken.add(chosen.lower())
        result[index] = chosen
    return [name for name in result if name is not None]


def spss_ghost_conflicts(names: Sequence[str], widths: Sequence[int]) -> list[int]:
    """Positions of string variables whose very-long-string segment names would clash in the .sav.

    ReadStat stores a string over 255 bytes as 252-byte segments named `<stem><k>`, where the stem is the first
    five characters of the upper-cased 8-byte short name and `k` a base-36 digit (WizardMac/ReadStat#380). A segment
    named like a reserved word (`t` gives `TO`) or like another variable's short name makes PSPP rename variables.

    Parameters:
        names: SPSS names in column order.
        widths: byte width of each variable (0 for numeric).
    """
    shorts: list[str] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        short = name.encode("utf-8")[:8].decode("utf-8", "ignore").upper()
        if short in seen:
            short = f"V{(index + 1) % 100000}_A"
        seen.add(short)
        shorts.append(short)
    conflicts = []
    for index, width in enumerate(widths):
        if width <= SPSS_SHORT_STRING_MAX_BYTES:
            continue
        stem = shorts[index][:5]
        segments = (width + 251) // 252
        ghosts = {stem + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k % 36] for k in range(1, segments)}
        if ghosts & (SPSS_RESERVED_WORDS | seen):
            conflicts.append(index)
    return conflicts


# --- labels: pure functions ---------------------------------------------------------------------------------

ELLIPSIS = "…"


def truncate_bytes(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_bytes` UTF-8 bytes at a character boundary, ending with an ellipsis if cut.

    Parameters:
        text: the label.
        max_bytes: the format limit in bytes.
    """
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    room = max_bytes - len(ELLIPSIS.encode("utf-8"))
    return data[:room].decode("utf-8", "ignore").rstrip() + ELLIPSIS, True


def truncate_chars(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_chars` characters, ending with an ellipsis if cut.

    Parameters:
        text: the label.
        max_chars: the format limit in characters.
    """
    if len(text) <= max_chars:
        return text, False
    return text[: max_chars - 1].rstrip() + ELLIPSIS, True


def _one_line(text: str) -> str:
    return " ".join(text.split())


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
    reasons: list[str] = field(default_factory=list)
    spss_name: str = ""
    stata_name: str = ""
    width: int = 0  # byte width of a string variable


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
            if var.kind == "date":
                columns[var.spss_name] = _seconds_since(series, _SPSS_EPOCH)
                formats[var.spss_name] = "DATE11"
            elif var.kind == "datetime":
                columns[var.spss_name] = _seconds_since(series, _SPSS_EPOCH)
                formats[var.spss_name] = "DATETIME20"
            elif var.kind == "string":
                columns[var.spss_name] = _cap_string_bytes(series, var, self.name, sink)
            else:
                columns[var.spss_name] = series
                if var.spss_format:
                    formats[var.spss_name] = var.spss_format
            text, cut = truncate_bytes(var.label, SPSS_VARIABLE_LABEL_MAX_BYTES)
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
                            f"{len(codes)} missing codes configured; SPSS holds {SPSS_MAX_DISCRETE_MISSING} discrete "
                            f"user-missing values, so only {codes[:SPSS_MAX_DISCRETE_MISSING]} are user-missing in the "
                            ".sav (Stata keeps all). Configure fewer codes.",
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
            "note": [line for note in self.notes for line in _wrap(note, 80)],
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
                columns[name] = _seconds_since(series, _STATA_EPOCH) / 86400.0
                formats[name] = "%td"
            elif var.kind == "datetime":
                columns[name] = _seconds_since(series, _STATA_EPOCH) * 1000.0
                formats[name] = "%tc"
            elif var.missing and var.kind != "string":
                columns[name] = _tagged(series, var.missing)
                letters = sorted(set(var.missing.values()))
                missing[name] = letters
            elif var.kind == "string" and var.width >= STATA_STR_MAX_BYTES:
                # pyreadstat 1.3.7 fails on a strL column that holds a missing value ("A registered string
                # reference was never inserted into any row"); Stata's missing string is "" anyway.
                columns[name] = series.fillna("")
            else:
                columns[name] = series
            text, cut = truncate_chars(var.label, STATA_VARIABLE_LABEL_MAX_CHARS)
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

    def csv_frame(self, *, labelled: bool) -> pd.DataFrame:
        """The table for CSV: export names as the header, ISO dates, integer codes (or their labels)."""
        columns: dict[str, Any] = {}
        for var in self.variables:
            series = self.frame[var.name]
            if var.kind == "date":
                columns[var.name] = series.dt.strftime("%Y-%m-%d")
            elif var.kind == "datetime":
                columns[var.name] = series.dt.strftime("%Y-%m-%d %H:%M:%S")
            elif var.kind == "code" and labelled and var.value_labels:
                mapped = series.map({float(c): label for c, label in var.value_labels.items()})
                columns[var.name] = mapped.where(series.isna() | mapped.notna(), _as_integers(series))
            elif var.kind == "number" and labelled and var.value_labels:
                mapped = series.map({float(c): label for c, label in var.value_labels.items()})
                columns[var.name] = mapped.where(mapped.notna(), _as_integers(series))
            elif var.kind in {"code", "number"}:
                columns[var.name] = _as_integers(series)
            else:
                columns[var.name] = series
        return pd.DataFrame(columns, copy=False)


def _as_integers(series: pd.Series) -> pd.Series:
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    if np.all(np.isnan(values) | (values == np.round(values))):
        return pd.Series(pd.array(values, dtype="Float64").astype("Int64"), index=series.index)
    return series


def _seconds_since(series: pd.Series, epoch: np.datetime64) -> np.ndarray:
    values = series.to_numpy(dtype="datetime64[s]")
    seconds = (values - epoch).astype("float64")
    seconds[np.isnat(values)] = np.nan
    return seconds


def _tagged(series: pd.Series, missing: Mapping[float, str]) -> pd.Series:
    """An object column holding numbers and the letters of Stata extended missing values (.d, .r, .n)."""
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    out = values.astype(object)
    out[np.isnan(values)] = None
    for code, letter in missing.items():
        out[values == code] = letter
    return pd.Series(out, index=series.index, dtype=object)


def _label_cut(table: str, var: Variable, what: str, limit: int, unit: str) -> Issue:
    return warning(
        EXPORT_LABEL_TRUNCATED,
        f"The {what} was cut to {limit} {unit} (ending with '…'); the full text is in the companion "
        f"{'.do notes' if 'Stata' in what else '.sps/.do files'} and the codebook.",
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
                f"An SPSS value label was cut to {SPSS_VALUE_LABEL_MAX_BYTES} bytes: {label[:40]!r}…; shorten the choice "
                "label or read the full text in the codebook.",
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
            f"{len(long)} value(s) are longer than SPSS's {SPSS_STRING_MAX_BYTES} bytes and were cut in the .sav "
            "(the .dta and .csv keep them whole).",
            file=table,
            variable=var.name,
            path=var.path,
        )
    )
    capped = series.copy()
    capped.loc[long.index] = long.map(lambda b: b[:SPSS_STRING_MAX_BYTES].decode("utf-8", "ignore"))
    return capped


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` UTF-8 bytes (SPSS documents are stored as 80-byte lines)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        if len(trial.encode("utf-8")) <= width:
            current = trial
            continue
        if current:
            lines.append(current)
        while len(word.encode("utf-8")) > width:
            head, _ = truncate_bytes(word, width)
            head = head.removesuffix(ELLIPSIS)
            lines.append(head)
            word = word[len(head) :]
        current = word
    if current:
        lines.append(current)
    return lines or [""]


# --- reading the DATA folder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    name: str
    path: str
    parent: str | None
    frame: pd.DataFrame
    column_paths: Mapping[str, str]
    weights: tuple[str, ...] = ()


def _resolve_table_path(name: str, form: FormModel) -> str:
    if name == form.form_id:
        return form.root
    repeat = name.removeprefix(f"{form.form_id}-")
    for node in form.repeats():
        if node.name == repeat:
            return node.path
    return form.root


def _load_tables(data: Any, form: FormModel) -> tuple[list[_Table], Design]:
    """Tables from a DATA folder (tables.json + parquet), a mapping name -> DataFrame, or an object with `.tables`."""
    if isinstance(data, (str, os.PathLike)):
        return _read_data_folder(Path(data), form)
    tables = getattr(data, "tables", data)
    if not isinstance(tables, Mapping):
        raise TypeError(
            "data must be a DATA folder, a mapping of table name -> DataFrame, or an IngestResult"
        )
    # An IngestResult (toolkit.ingest) also carries table paths, parents and column paths.
    table_paths: Mapping[str, str] = getattr(data, "table_paths", None) or {}
    parents: Mapping[str, str | None] = getattr(data, "parents", None) or {}
    column_infos: Mapping[str, Any] = getattr(data, "columns", None) or {}
    out = []
    for name, frame in tables.items():
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"table {name!r} is not a DataFrame")
        path = table_paths.get(name) or _resolve_table_path(str(name), form)
        if path not in form.nodes:
            path = _resolve_table_path(str(name), form)
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
        out.append(_Table(str(name), path, parent, frame, column_paths))
    return out, Design()


def _read_data_folder(folder: Path, form: FormModel) -> tuple[list[_Table], Design]:
    manifest_path = folder / "tables.json"
    if not manifest_path.is_file():
        raise ToolkitError(
            error(
                INPUT_MISSING,
                "tables.json is missing; run `migkit ingest` first to create the DATA folder.",
                file=str(folder),
            )
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ToolkitError(
            error(INPUT_UNREADABLE, f"tables.json cannot be read: {exc}", file=str(manifest_path))
        ) from None
    if manifest.get("form_id") not in (None, form.form_id):
        raise ToolkitError(
            error(
                INPUT_UNREADABLE,
                f"The DATA folder is for form {manifest.get('form_id')!r}, not {form.form_id!r}; pass the matching --form.",
                file=str(manifest_path),
            ),
            EXIT_USAGE,
        )
    entries = manifest.get("tables", {})
    if isinstance(entries, list):
        entries = {entry.get("name") or Path(entry["file"]).stem: entry for entry in entries}
    global_weights = tuple(manifest.get("weights") or ())
    out = []
    for name, entry in entries.items():
        file = folder / entry.get("file", f"{name}.parquet")
        try:
            frame = pd.read_parquet(file)
        except (OSError, ValueError) as exc:
            raise ToolkitError(
                error(INPUT_UNREADABLE, f"Cannot read the table: {exc}", file=str(file))
            ) from None
        column_paths = {c["name"]: c["path"] for c in entry.get("columns", []) if c.get("path")}
        path = entry.get("path") or _resolve_table_path(name, form)
        if path not in form.nodes:
            path = _resolve_table_path(name, form)
        weights = tuple(entry.get("weights") or ()) + global_weights
        out.append(_Table(name, path, entry.get("parent"), frame, column_paths, weights))
    design_entry = manifest.get("design") or {}
    design = Design(design_entry.get("weight"), design_entry.get("strata"), design_entry.get("psu"))
    return out, design


# --- building a table's variables ---------------------------------------------------------------------------


def _is_weight(name: str, listed: Iterable[str]) -> bool:
    return name.startswith(("w_", "weight")) or name in set(listed)


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
    """The label language to use: the requested one (exact name, or its code such as `ru`), else the default.

    Raises ToolkitError (usage) when the form has no such language.
    """
    if language is None:
        return form.default_language
    if language in form.languages:
        return language
    for known in form.languages:
        if _language_code(known) == language.lower() or known.lower().startswith(language.lower() + " "):
            return known
    raise ToolkitError(
        error(
            EXPORT_LANGUAGE,
            f"The form has no language {language!r}; choose one of: {', '.join(form.languages) or '(none)'}.",
        ),
        EXIT_USAGE,
    )


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
}


def _choice_codes(
    form: FormModel,
    node: Node,
    language: str | None,
    issues: list[Issue],
    table: str,
    recodes: dict[str, list[RecodeEntry]],
) -> tuple[dict[str, int], dict[int, str]]:
    """choice name -> integer code and code -> label, recoding 1..n in list order when names are not integers."""
    choice_list = form.choice_lists[node.choice_list or ""]
    names = choice_list.names
    integer = all(_INTEGER.match(n) and abs(int(n)) <= STATA_VALUE_LABEL_KEY_MAX for n in names)
    if integer and len({int(n) for n in names}) == len(names):
        mapping = {n: int(n) for n in names}
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
                    f"Choice list {choice_list.name!r} has names that are not distinct integers; its answers are "
                    f"coded 1..{len(names)} in list order. The mapping is in the value map file.",
                    file=table,
                    variable=node.name,
                    path=node.path,
                )
            )
    labels = {mapping[c.name]: _one_line(c.label(language)) for c in choice_list.choices}
    return mapping, labels


def plan_table(
    table: _Table,
    form: FormModel,
    *,
    language: str | None,
    missing_codes: MissingCodes,
    design: Design,
    issues: list[Issue],
    recodes: dict[str, list[RecodeEntry]],
) -> TablePlan:
    """Turn one DATA table into export variables and the export frame (numeric codes, split columns, dates)."""
    fields = _fields_by_name(form, table.path)
    by_path = {node.path: node for node in form.fields_in(table.path)}
    yes_no = _YES_NO.get(_language_code(language), _YES_NO["en"])
    repeat_names = {node.name for node in form.repeats()}
    columns: dict[str, Any] = {}
    variables: list[Variable] = []
    frame = table.frame

    def add(var: Variable, values: Any) -> None:
        columns[var.name] = values
        variables.append(var)

    for column in frame.columns:
        series = frame[column]
        node = by_path.get(table.column_paths.get(column, "")) or fields.get(column)
        if node is None:
            _plan_extra_column(column, series, table, repeat_names, add)
            continue
        qtype = node.question_type
        if qtype in {"note", "group", "repeat"}:
            continue
        label = _one_line(node.label(language)) or _default_label(node)
        common = {"path": node.path, "question_type": qtype}
        if qtype == "select_one" and node.choice_source == "list" and node.choice_list in form.choice_lists:
            mapping, labels = _choice_codes(form, node, language, issues, table.name, recodes)
            codes = _codes(series, mapping, node, table.name, issues, labels)
            missing = {}
            for code_name, letter in missing_codes.choices.items():
                # A configured code matches a choice name, or an integer name written with leading zeros ("02").
                match = code_name if code_name in mapping else next(
                    (n for n in mapping if _INTEGER.match(n) and _INTEGER.match(code_name)
                     and int(n) == int(code_name)), None)
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
            and node.choice_list in form.choice_lists
        ):
            add(Variable(column, "string", label, **common), series)
            choice_list = form.choice_lists[node.choice_list]
            _check_multiple(series, choice_list.names, node, table.name, issues)
            # Dummies come from the form's list, not from the values seen, so the columns never change.
            dummies = _dummies(series, choice_list.names)
            for position, choice in enumerate(choice_list.choices):
                dummy = dummies[:, position]
                add(
                    Variable(
                        f"{column}_{choice.name}",
                        "code",
                        f"{label}: {_one_line(choice.label(language))}",
                        value_labels={0: yes_no[0], 1: yes_no[1]},
                        spss_format="F1.0",
                        multiple=column,
                        **common,
                    ),
                    dummy,
                )
        elif node.is_select:
            if qtype != "rank":
                issues.append(
                    warning(
                        EXPORT_NO_CHOICE_LIST,
                        f"The choices of {node.name!r} come from a {node.choice_source or 'dynamic source'}, so the "
                        "answers are exported as text without value labels.",
                        file=table.name,
                        variable=column,
                        path=node.path,
                    )
                )
            add(Variable(column, "string", label, **common), series)
        elif qtype in {"geopoint", "start-geopoint"}:
            parts = _split_geopoint(series, node, table.name, issues)
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
                        measure="scale",
                        spss_format=fmt,
                        **common,
                    ),
                    values,
                )
        elif node.data_type == "dateTime" or qtype in {"start", "end"}:
            local, offset = _split_datetime(series, node, table.name, issues)
            add(
                Variable(column, "datetime", f"{label} (device local time)", measure="scale", **common), local
            )
            add(
                Variable(
                    f"{column}_tz",
                    "number",
                    f"{label}: UTC offset of the device (minutes)",
                    measure="scale",
                    spss_format="F5.0",
                    **common,
                ),
                offset,
            )
        elif node.data_type == "date" or qtype == "today":
            add(
                Variable(column, "date", label, measure="scale", **common),
                _to_dates(series, node, table.name, issues),
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
        elif qtype == "calculate" and _all_numeric(series):
            add(
                Variable(column, "number", label, measure="scale", **common),
                pd.to_numeric(series).astype("float64"),
            )
        else:
            add(Variable(column, "string", label, **common), series)

    plan_frame = pd.DataFrame(columns, index=frame.index, copy=False)
    for var in variables:
        if var.kind == "string":
            var.width = _byte_width(plan_frame[var.name])
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


def _default_label(node: Node) -> str:
    """A label for fields without one: metadata get a description, calculations show their expression."""
    if node.question_type in _PRELOAD_LABELS:
        return _PRELOAD_LABELS[node.question_type]
    if node.calculate:
        return _one_line(f"{node.name} = {node.calculate}")
    return node.name


def _plan_extra_column(
    column: str,
    series: pd.Series,
    table: _Table,
    repeat_names: set[str],
    add: Callable[[Variable, Any], None],
) -> None:
    """Columns that are not form fields: keys, ids, weights, anything a later stage added."""
    if _is_weight(column, table.weights):
        add(
            Variable(column, "number", f"Survey weight ({column})", measure="scale", spss_format="F14.6"),
            series.to_numpy(dtype="float64", na_value=np.nan),
        )
    elif column in _META_LABELS and column == "SubmissionDate":
        local, _ = _split_datetime(series, None, table.name, [])
        add(Variable(column, "datetime", _META_LABELS[column], measure="scale"), local)
    elif column.endswith("_no") and column[:-3] in repeat_names or column == "hh_id":
        label = _META_LABELS.get(column) or f"Row number within repeat {column[:-3]}"
        add(
            Variable(column, "number", label, spss_format="F10.0"),
            series.to_numpy(dtype="float64", na_value=np.nan),
        )
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


def _all_numeric(series: pd.Series) -> bool:
    present = series.dropna()
    if present.empty:
        return False
    return bool(pd.to_numeric(present, errors="coerce").notna().all())


def _byte_width(series: pd.Series) -> int:
    lengths = series.str.len()
    longest = lengths.max()
    if pd.isna(longest) or longest == 0:
        return 1
    if longest * 4 <= SPSS_SHORT_STRING_MAX_BYTES:
        return int(longest) * 4
    return int(series.dropna().map(lambda s: len(s.encode("utf-8"))).max())


def _arrow(series: pd.Series) -> pa.Array:
    """The series as an Arrow string array (zero-copy for pandas' Arrow-backed strings)."""
    array = pa.array(series, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pa.array(series.astype("str").where(series.notna()), from_pandas=True)
    return array


def _distinct(series: pd.Series) -> tuple[list[str], np.ndarray]:
    """The distinct values of a text column and, per row, the position of its value (len(values) where missing).

    Survey answers repeat a few values many times, so work per distinct value is cheap and vectorised per row.
    """
    encoded = _arrow(series).dictionary_encode()
    values = encoded.dictionary.to_pylist()
    return values, encoded.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)


def _lookup(series: pd.Series, function: Callable[[str], float]) -> tuple[np.ndarray, list[str]]:
    """`function` applied to every distinct value, spread back to the rows (NaN where the value is missing)."""
    values, index = _distinct(series)
    table = np.array([function(value) for value in values] + [np.nan], dtype="float64")
    return table[index], values


def _codes(
    series: pd.Series,
    mapping: Mapping[str, int],
    node: Node,
    table: str,
    issues: list[Issue],
    labels: dict[int, str],
) -> np.ndarray:
    """Numeric codes of select_one answers; values outside the list keep their integer value (or get new codes)."""
    values, index = _distinct(series)
    unknown = sorted(v for v in values if v not in mapping)
    full = dict(mapping)
    if unknown:
        next_code = max(full.values(), default=0) + 1
        for value in unknown:
            if _INTEGER.match(value) and all(_INTEGER.match(n) for n in mapping):
                full[value] = int(value)
            else:
                full[value] = next_code
                labels[next_code] = value
                next_code += 1
        issues.append(
            warning(
                EXPORT_UNKNOWN_CHOICE,
                f"{len(unknown)} answer value(s) are not in choice list {node.choice_list!r}: "
                f"{', '.join(unknown[:10])}{' …' if len(unknown) > 10 else ''}. Integer values are kept as they are; "
                "others got new codes after the list, labelled with the value. Check the form version.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    lookup = np.array([full[v] for v in values] + [np.nan], dtype="float64")
    return lookup[index]


def _dummies(series: pd.Series, names: Sequence[str]) -> np.ndarray:
    """0/1 per choice (columns in list order) from space-separated answers; NaN rows where not answered."""
    values, index = _distinct(series)
    table = np.full((len(values) + 1, len(names)), np.nan)
    for row, value in enumerate(values):
        chosen = set(value.split())
        table[row] = [1.0 if name in chosen else 0.0 for name in names]
    return table[index]


def _check_multiple(
    series: pd.Series, names: Sequence[str], node: Node, table: str, issues: list[Issue]
) -> None:
    known = set(names)
    values, _ = _distinct(series)
    unknown = sorted({token for value in values for token in value.split()} - known)
    if unknown:
        issues.append(
            warning(
                EXPORT_UNKNOWN_CHOICE,
                f"{len(unknown)} selected value(s) are not in choice list {node.choice_list!r} and have no dummy: "
                f"{', '.join(unknown[:10])}. They stay in the original space-separated variable.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )


_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_GEOPOINT = (
    rf"^\s*(?P<latitude>{_NUMBER})\s+(?P<longitude>{_NUMBER})"
    rf"(?:\s+(?P<altitude>{_NUMBER}))?(?:\s+(?P<accuracy>{_NUMBER}))?\s*$"
)


def _split_geopoint(series: pd.Series, node: Node, table: str, issues: list[Issue]) -> list[np.ndarray]:
    """Latitude, longitude, altitude and accuracy of ODK geopoints ("lat lon alt acc")."""
    parts = pc.extract_regex(_arrow(series), _GEOPOINT)
    out = []
    for name in ("latitude", "longitude", "altitude", "accuracy"):
        text = parts.field(name)
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
        out.append(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))
    bad = series.notna().to_numpy() & np.isnan(out[0])
    if bad.any():
        issues.append(
            warning(
                EXPORT_BAD_VALUE,
                f"{int(bad.sum())} geopoint value(s) are not 'lat lon alt acc'; their parts are missing.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    return out


def _utc_offset(zone: str) -> float:
    """Minutes east of UTC of an ISO 8601 zone designator (Z, +03:00, -0530, +05); NaN when there is none."""
    if zone in {"Z", "z"}:
        return 0.0
    digits = re.sub(r"[^0-9]", "", zone)
    if len(digits) < 2:
        return float("nan")
    minutes = int(digits[:2]) * 60 + int(digits[2:4] or 0)
    return -float(minutes) if zone.startswith("-") else float(minutes)


def _split_datetime(
    series: pd.Series, node: Node | None, table: str, issues: list[Issue]
) -> tuple[pd.Series, np.ndarray]:
    """Local wall-clock datetime and UTC offset (minutes) of ODK dateTime strings such as 2026-11-27T10:15:00.000+03:00."""
    if pd.api.types.is_datetime64_any_dtype(series):
        local = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
        return local.astype("datetime64[s]"), np.full(len(series), np.nan)
    parts = pc.extract_regex(_arrow(series), _ODK_DATETIME)
    wall_clock = pc.replace_substring(parts.field("local"), " ", "T").to_pandas(types_mapper=None)
    local = pd.to_datetime(pd.Series(wall_clock, index=series.index), format="ISO8601", errors="coerce")
    offset, _ = _lookup(pd.Series(parts.field("zone").to_pandas(), index=series.index), _utc_offset)
    bad = series.notna().to_numpy() & local.isna().to_numpy()
    if bad.any() and node is not None:
        issues.append(
            warning(
                EXPORT_BAD_VALUE,
                f"{int(bad.sum())} dateTime value(s) could not be read; they are missing in the export.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    return local.astype("datetime64[s]"), offset


def _to_dates(series: pd.Series, node: Node, table: str, issues: list[Issue]) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("datetime64[s]")
    parsed = pd.to_datetime(series, format="ISO8601", errors="coerce")
    bad = series.notna() & parsed.isna()
    if bad.any():
        issues.append(
            warning(
                EXPORT_BAD_VALUE,
                f"{int(bad.sum())} date value(s) could not be read; they are missing in the export.",
                file=table,
                variable=node.name,
                path=node.path,
            )
        )
    return parsed.astype("datetime64[s]")


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
        var.reasons = _rename_reasons(var, s_name, t_name)
        if var.reasons:
            issues.append(
                warning(
                    EXPORT_RENAMED,
                    f"Renamed for {', '.join(sorted({r.split(':')[0] for r in var.reasons}))}: SPSS {s_name!r}, "
                    f"Stata {t_name!r} ({'; '.join(var.reasons)}). The rename map lists every name.",
                    file=plan.name,
                    variable=var.name,
                    path=var.path,
                )
            )
    if len(plan.variables) > STATA_BE_MAX_VARIABLES:
        issues.append(
            warning(
                EXPORT_TOO_MANY_VARIABLES,
                f"{len(plan.variables)} variables; Stata/BE opens at most {STATA_BE_MAX_VARIABLES} (SE/MP open 32,767).",
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
        base = _identifier(var.name)
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


# --- companion syntax ---------------------------------------------------------------------------------------


def _name_lines(names: Sequence[str], tail: str, width: int = 100) -> str:
    lines, current = [], ""
    for name in names:
        if current and len(current) + len(name) + 1 > width:
            lines.append(current)
            current = name
        else:
            current = f"{current} {name}" if current else name
    lines.append(current + tail)
    return "\n    ".join(lines)


def _sps_quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sps_text(plan: TablePlan, *, form: FormModel, language: str | None, file_name: str) -> str:
    """SPSS syntax for what a .sav written by pyreadstat cannot hold: MRSETS, WEIGHT BY, levels, documents."""
    lines = [
        f"* Companion syntax for {file_name}, written by migkit {__version__}.",
        "* It opens the file (run it from the folder of the file), sets measurement levels, multiple-response",
        "* sets and the weight, and adds documents. Uncomment the last line to keep the changes in the file.",
        f"GET FILE={_sps_quote(file_name)}.",
    ]
    by_level: dict[str, list[str]] = {}
    for var in plan.variables:
        by_level.setdefault(var.measure.upper(), []).append(var.spss_name)
    # Syntax lines stay short (old SPSS versions cut lines at 251 bytes); continuation lines are indented.
    parts = [_name_lines(names, f" ({level})") for level, names in by_level.items()]
    lines.append("VARIABLE LEVEL\n  " + "\n  /".join(parts) + ".")
    groups: dict[str, list[Variable]] = {}
    for var in plan.variables:
        if var.multiple:
            groups.setdefault(var.multiple, []).append(var)
    if groups:
        owner = {var.name: var for var in plan.variables}
        mr = ["MRSETS"]
        for source, dummies in groups.items():
            set_name = "$" + owner[source].spss_name[: SPSS_NAME_MAX_BYTES - 1]
            label, _ = truncate_bytes(owner[source].label, SPSS_VARIABLE_LABEL_MAX_BYTES)
            mr.append(f"  /MDGROUP NAME={set_name} LABEL={_sps_quote(label)}")
            mr.append("    CATEGORYLABELS=VARLABELS VALUE=1")
            mr.append("    VARIABLES=" + _name_lines([d.spss_name for d in dummies], ""))
        lines.append("\n".join(mr) + ".")
    weight = _weight_of(plan)
    if weight is not None:
        lines.append(f"WEIGHT BY {weight.spss_name}.")
    docs = [
        f"Form id {form.form_id}, version {form.version or '-'}, title {form.title or '-'}.",
        f"Table {plan.name}. Labels in {language or 'the form language'}. migkit {__version__}.",
        "Date-times are device local wall-clock time; <name>_tz is the UTC offset in minutes.",
        "Skipped questions are system-missing; don't know/refused codes are user-missing.",
    ]
    # DOCUMENT text runs to the end of the command; each line is stored as an 80-byte record.
    lines.append(
        "DOCUMENT\n" + "\n".join("  " + line for d in docs for line in _wrap(d.rstrip("."), 76)) + "."
    )
    lines.append(f"* SAVE OUTFILE={_sps_quote(file_name)}.")
    return "\n".join(lines) + "\n"


def _do_escape(text: str) -> str:
    """Text safe on one do-file line: no macro expansion (`$`, backtick) and no comment markers."""
    text = _one_line(text).replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
    return text.replace("/*", "/ *").replace("*/", "* /").replace("//", "/ /")


def do_text(plan: TablePlan, *, form: FormModel, language: str | None, file_name: str) -> str:
    """A do-file with what .dta written by pyreadstat cannot hold: notes and characteristics, and svyset."""
    lines = [
        f"* Companion do-file for {file_name}, written by migkit {__version__}.",
        "* Run it from the folder of the file. It adds notes and characteristics (full question text, XLSForm",
        "* name, type, relevance, constraint, calculation) and declares the survey design when it is known.",
        f'use "{file_name}", clear',
        f"notes: {_do_escape(f'Form {form.form_id} version {form.version or chr(45)}: {form.title or chr(45)}')}",
        f"notes: {_do_escape(f'Labels in {language or chr(45)}. Date-times are device local time; _tz = UTC offset.')}",
    ]
    for var in plan.variables:
        name = var.stata_name
        node = form.nodes.get(var.path) if var.path else None
        lines.append(f"notes {name}: {_do_escape(var.label)}")
        lines.append(f"char {name}[Odk_name] {_do_escape(var.name)}")
        if var.path:
            lines.append(f"char {name}[Odk_path] {_do_escape(var.path)}")
        if var.question_type:
            qtype = var.question_type + (
                f" {node.choice_list}" if node is not None and node.choice_list else ""
            )
            lines.append(f"char {name}[Odk_type] {_do_escape(qtype)}")
        if node is not None:
            relevant = _relevance(form, node)
            for key, value in (
                ("Odk_relevant", _xlsform_refs(form, relevant)),
                ("Odk_constraint", _xlsform_refs(form, node.constraint)),
                ("Odk_calculate", _xlsform_refs(form, node.calculate)),
            ):
                if value:
                    lines.append(f"char {name}[{key}] {_do_escape(value)}")
    weight = _weight_of(plan)
    if weight is not None:
        names = {var.name: var.stata_name for var in plan.variables}
        psu = names.get(plan.design.psu or "") or "_n"
        strata = names.get(plan.design.strata or "")
        option = f", strata({strata})" if strata else ""
        lines.append(f"svyset {psu} [pweight={weight.stata_name}]{option}")
    else:
        lines.append(
            "* No weight variable in this table: run `migkit weights` (or merge the household weight on hh_id)."
        )
    lines.append(f'* save "{file_name}", replace')
    return "\n".join(lines) + "\n"


def _xlsform_refs(form: FormModel, expression: str | None) -> str | None:
    """An XPath expression with absolute node paths written back as XLSForm ${name} references."""
    if not expression:
        return expression
    pattern = re.escape(form.root) + r"(?:/[\w.-]+)+"

    def name_of(match: re.Match[str]) -> str:
        node = form.nodes.get(match.group(0))
        return "${" + node.name + "}" if node is not None else match.group(0)

    return re.sub(pattern, name_of, expression)


def _relevance(form: FormModel, node: Node) -> str | None:
    """The question's own relevance and that of its enclosing groups, joined with `and`."""
    parts = [n.relevant for n in form.ancestors(node.path) if n.relevant]
    if node.relevant:
        parts.append(node.relevant)
    return " and ".join(f"({p})" for p in parts) if len(parts) > 1 else (parts[0] if parts else None)


def _weight_of(plan: TablePlan) -> Variable | None:
    weights = [var for var in plan.variables if var.label.startswith("Survey weight")]
    if plan.design.weight:
        chosen = [var for var in plan.variables if var.name == plan.design.weight]
        weights = chosen or weights
    return weights[0] if weights else None


# --- writing ------------------------------------------------------------------------------------------------


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over the target."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    temp_path = Path(temp)
    try:
        write(temp_path)
        temp_path.replace(path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str, *, bom: bool = False) -> None:
    _atomic(path, lambda p: p.write_text(text, encoding="utf-8-sig" if bom else "utf-8", newline="\n"))


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    # UTF-8 with BOM, so that Excel shows Cyrillic text.
    _atomic(path, lambda p: frame.to_csv(p, index=False, encoding="utf-8-sig"))


def rename_map_text(entries: Sequence[RenameEntry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "original_name", "xlsform_path", "spss_name", "stata_name", "reason"])
    for e in entries:
        writer.writerow([e.table, e.name, e.xlsform_path or "", e.spss_name, e.stata_name, e.reason])
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
    """
    chosen = resolve_language(form, language)
    codes = missing_codes or MissingCodes()
    tables, manifest_design = _load_tables(data, form)
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
        )
        name_variables(plan, issues)
        _check_parents(table, keys, issues)
        plans.append(plan)
    return PreparedExport(
        form.form_id, chosen, tuple(plans), tuple(r for rs in recodes.values() for r in rs), tuple(issues)
    )


def _design_for(table: _Table, design: Design) -> Design:
    columns = set(table.frame.columns)
    weight = (
        design.weight
        if design.weight in columns
        else next((c for c in table.frame.columns if _is_weight(str(c), table.weights)), None)
    )
    strata = design.strata or "id_stratum"
    psu = design.psu or "id_psu"
    return Design(weight, strata if strata in columns else None, psu if psu in columns else None)


def _check_parents(table: _Table, keys: Mapping[str, pd.Series], issues: list[Issue]) -> None:
    if table.parent is None or "PARENT_KEY" not in table.frame.columns or table.parent not in keys:
        return
    known = pc.is_in(_arrow(table.frame["PARENT_KEY"]), value_set=_arrow(keys[table.parent]))
    orphans = ~known.to_numpy(zero_copy_only=False)
    if orphans.any():
        issues.append(
            warning(
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
    """
    import pyreadstat

    chosen_formats = _check_formats(formats)
    prepared = prepare_export(data, form, language=language, missing_codes=missing_codes, design=design)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot create the output folder: {exc.strerror}.", file=str(out))
        ) from None
    issues = list(prepared.issues)
    files: list[ExportedFile] = []
    try:
        for plan in prepared.plans:
            rows, width = len(plan.frame), len(plan.variables)
            for fmt, args, write, companion, syntax in (
                ("sav", plan.sav_args, pyreadstat.write_sav, "sps", sps_text),
                ("dta", plan.dta_args, pyreadstat.write_dta, "do", do_text),
            ):
                if fmt not in chosen_formats:
                    continue
                frame, kwargs = args(issues)
                target = out / f"{plan.name}.{fmt}"
                _atomic(target, lambda p, f=frame, k=kwargs, w=write: w(f, p, **k))
                files.append(ExportedFile(str(target), plan.name, fmt, rows, width))
                del frame
                script = out / f"{plan.name}.{companion}"
                _write_text(script, syntax(plan, form=form, language=prepared.language, file_name=target.name))
                files.append(ExportedFile(str(script), plan.name, companion))
            if "csv" in chosen_formats:
                for labelled, suffix, kind in ((False, "", "csv"), (True, "-labelled", "csv-labelled")):
                    target = out / f"{plan.name}{suffix}.csv"
                    _write_csv(target, plan.csv_frame(labelled=labelled))
                    files.append(ExportedFile(str(target), plan.name, kind, rows, width))
        renames = tuple(
            RenameEntry(plan.name, var.name, var.path, var.spss_name, var.stata_name, "; ".join(var.reasons))
            for plan in prepared.plans
            for var in plan.variables
        )
        rename_path = out / f"{form.form_id}-rename-map.csv"
        _write_text(rename_path, rename_map_text(renames))
        files.append(ExportedFile(str(rename_path), "", "rename-map"))
        if prepared.recodes:
            value_path = out / f"{form.form_id}-value-map.csv"
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["choice_list", "choice_name", "code", "label"])
            writer.writerows([r.choice_list, r.choice, r.code, r.label] for r in prepared.recodes)
            _write_text(value_path, buffer.getvalue())
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


__all__ = [
    "Design",
    "ExportResult",
    "ExportedFile",
    "MissingCodes",
    "PreparedExport",
    "RecodeEntry",
    "RenameEntry",
    "TablePlan",
    "Variable",
    "assign_names",
    "export_tables",
    "prepare_export",
    "resolve_language",
    "spss_ghost_conflicts",
    "spss_name",
    "stata_name",
    "transliterate",
    "truncate_bytes",
    "truncate_chars",
]
