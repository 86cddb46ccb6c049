"""An XLSForm read for `migkit forms lint`: its sheets with spreadsheet row numbers, the survey rows as elements.

The XLSForm is read with pyxform's own sheet readers and header parser (so aliases such as `relevance` or
`label::English (en)` mean what they mean to pyxform) while keeping spreadsheet row numbers (header = row 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyxform import aliases, constants
from pyxform.parsing.sheet_headers import process_header
from pyxform.question import MultipleChoiceQuestion, Option
from pyxform.question_type_dictionary import QUESTION_TYPE_DICT
from pyxform.survey import Survey
from pyxform.xls2json import RE_BEGIN_CONTROL, RE_END_CONTROL, RE_SELECT
from pyxform.xls2json_backends import get_xlsform

from toolkit.errors import (
    INPUT_MISSING,
    INPUT_UNREADABLE,
    ToolkitError,
    error,
)
from toolkit.xlsform import FORM_SUFFIXES

_MEDIA_EXTENSIONS = (".csv", ".xml", ".geojson")


@dataclass(frozen=True)
class Sheet:
    """One XLSForm sheet: original headers with pyxform's parsed tokens, non-empty rows by spreadsheet row."""

    name: str
    columns: dict[str, tuple[str, ...]]
    rows: tuple[tuple[int, dict[str, str]], ...]

    def header(self, *tokens: str) -> str | None:
        """The original header with these pyxform tokens (e.g. 'relevance' for ('bind', 'relevant'))."""
        return next((h for h, t in self.columns.items() if t == tokens), None)


@dataclass
class Element:
    """A survey row: a question, a group or repeat boundary, with where it sits."""

    row: int
    order: int
    name: str | None
    kind: str  # question, note, begin_group, begin_repeat, end, unknown
    value_type: str | None  # select_one, select_multiple, rank, numeric, text, geopoint, other
    list_name: str | None = None
    list_source: str | None = None  # choices, file, repeat, external
    or_other: bool = False
    repeats: tuple[str, ...] = ()  # enclosing repeats, outermost first; a begin_repeat row includes itself
    cells: dict[str, str] = field(default_factory=dict)
    # False for rows without a control: calculate/hidden (computed whenever their inputs change, wherever the
    # row is) and preloaded metadata such as start or today (set when the form opens).
    answered: bool = True

    @property
    def coded(self) -> bool:
        """Answers are codes from the choices sheet, exported with value labels."""
        return self.value_type in {"select_one", "select_multiple"} and self.list_source == "choices"


@dataclass(frozen=True)
class Choice:
    row: int
    list_name: str
    name: str | None
    cells: dict[str, str]


@dataclass
class SheetForm:
    source: str
    survey: Sheet
    choices: Sheet | None
    settings: Sheet | None
    elements: list[Element]
    by_name: dict[str, Element]
    lists: dict[str, list[Choice]]


def _cannot_read(source: str, message: str) -> ToolkitError:
    return ToolkitError(error(INPUT_UNREADABLE, message, file=source))


def _sheet(
    name: str,
    rows: Sequence[dict[str, str]] | None,
    header: Sequence[dict[str, Any]] | None,
    header_aliases: dict[str, Any],
    known: set[str],
) -> Sheet:

    headers = list(header[0]) if header else list(dict.fromkeys(k for r in rows or () for k in r))
    double_colon = any("::" in h for h in headers)
    columns = {
        h: process_header(header=h, use_double_colon=double_colon, header_aliases=header_aliases, header_columns=known)[
            1
        ]
        for h in headers
    }
    # The pyxform readers keep blank rows between data rows (and drop trailing ones), so list index i is
    # spreadsheet row i + 2 (header = row 1); markdown and CSV tables count the same way within the table.
    kept = tuple(
        (index + 2, {k: str(v).strip() for k, v in row.items() if v is not None and str(v).strip()})
        for index, row in enumerate(rows or ())
    )
    return Sheet(name, columns, tuple((n, r) for n, r in kept if r))


def read_form(path: Path) -> tuple[SheetForm, Any]:
    source = str(path)
    if not path.is_file():
        raise ToolkitError(error(INPUT_MISSING, "The XLSForm file does not exist; check the path.", file=source))
    if path.suffix.lower() not in FORM_SUFFIXES:
        raise _cannot_read(source, f"Not an XLSForm: the file name must end in {', '.join(FORM_SUFFIXES)}.")
    try:
        data = get_xlsform(path, file_type=path.suffix.lower())
    except Exception as exc:  # pyxform's readers raise PyXFormError, openpyxl/xlrd their own errors
        raise _cannot_read(
            source,
            f"This file cannot be read as an XLSForm ({' '.join(str(exc).split())}). Open and re-save it "
            "as .xlsx, or check that it is the questionnaire and not a data export.",
        ) from None
    if not data.survey and not data.survey_header:
        sheets = ", ".join(data.sheet_names or ()) or "none"
        raise _cannot_read(source, f"Not an XLSForm: there is no sheet named survey (sheets: {sheets}).")
    survey = _sheet(
        "survey",
        data.survey,
        data.survey_header,
        aliases.survey_header,
        set(MultipleChoiceQuestion.get_slot_names()),
    )
    if survey.header("type") is None or survey.header("name") is None:
        raise _cannot_read(
            source,
            "Not an XLSForm: the survey sheet has no 'type' and 'name' columns in its first row "
            f"(found: {', '.join(list(survey.columns)[:8]) or 'nothing'}).",
        )
    choices = (
        _sheet("choices", data.choices, data.choices_header, aliases.list_header, set(Option.get_slot_names()))
        if data.choices
        else None
    )
    settings = (
        _sheet(
            "settings",
            data.settings,
            data.settings_header,
            aliases.settings_header,
            set(Survey.get_slot_names()),
        )
        if data.settings
        else None
    )
    elements = _survey_elements(survey)
    by_name: dict[str, Element] = {}
    for element in elements:
        if element.name and element.kind != "end":
            by_name.setdefault(element.name, element)
    lists: dict[str, list[Choice]] = {}
    if choices is not None:
        list_col = choices.header(constants.LIST_NAME_S)
        name_col = choices.header("name")
        for row_no, cells in choices.rows:
            list_name = cells.get(list_col or "")
            if list_name:
                lists.setdefault(list_name, []).append(Choice(row_no, list_name, cells.get(name_col or ""), cells))
    return SheetForm(source, survey, choices, settings, elements, by_name, lists), data


def _survey_elements(survey: Sheet) -> list[Element]:  # noqa: PLR0912, PLR0915
    type_col, name_col = survey.header("type"), survey.header("name")
    elements: list[Element] = []
    stack: list[tuple[str, str | None]] = []  # (control type, name) of the open groups and repeats
    for order, (row_no, cells) in enumerate(survey.rows):
        type_text = " ".join(cells.get(type_col or "", "").split())
        name = cells.get(name_col or "") or None
        repeats = tuple(n or "" for kind, n in stack if kind == constants.REPEAT)
        begin = RE_BEGIN_CONTROL.search(type_text)
        end = RE_END_CONTROL.search(type_text)
        select = RE_SELECT.search(type_text)
        if not type_text:
            continue
        if begin:
            control = aliases.control[begin.group("type")]
            is_repeat = control == constants.REPEAT
            stack.append((control, name))
            elements.append(
                Element(
                    row_no,
                    order,
                    name,
                    "begin_repeat" if is_repeat else "begin_group",
                    None,
                    repeats=(*repeats, name or "") if is_repeat else repeats,
                    cells=cells,
                )
            )
        elif end:
            if stack:  # unbalanced begin/end pairs are reported from pyxform's own check
                stack.pop()
            elements.append(Element(row_no, order, name, "end", None, repeats=repeats, cells=cells))
        elif select:
            command = aliases.select[select.group("select_command")]
            list_name = select.group("list_name")
            value_type = {
                constants.SELECT_ONE: "select_one",
                constants.SELECT_ONE_EXTERNAL: "select_one",
                constants.SELECT_ALL_THAT_APPLY: "select_multiple",
                constants.RANK: "rank",
            }[command]
            if command == constants.SELECT_ONE_EXTERNAL:
                source = "external"
            elif list_name.startswith("${"):
                source = "repeat"
            elif list_name.lower().endswith(_MEDIA_EXTENSIONS):
                source = "file"
            else:
                source = "choices"
            elements.append(
                Element(
                    row_no,
                    order,
                    name,
                    "question",
                    value_type,
                    list_name,
                    source,
                    bool(select.group("specify_other")),
                    repeats,
                    cells,
                )
            )
        else:
            qtype = aliases._type_alias_map.get(type_text, type_text)
            definition = QUESTION_TYPE_DICT.get(qtype)
            if definition is None:
                elements.append(Element(row_no, order, name, "unknown", None, repeats=repeats, cells=cells))
                continue
            bind = definition.get("bind", {})
            control = definition.get("control", {})
            if bind.get("readonly") == "true()" and control.get("tag") == "input":
                kind, value_type = "note", None
            elif bind.get("type") in {"int", "decimal"}:
                kind, value_type = "question", "numeric"
            elif bind.get("type") == "string" and control.get("tag") == "input":
                kind, value_type = "question", "text"
            elif bind.get("type") == "geopoint":
                kind, value_type = "question", "geopoint"
            else:
                kind, value_type = "question", "other"
            elements.append(
                Element(
                    row_no,
                    order,
                    name,
                    kind,
                    value_type,
                    repeats=repeats,
                    cells=cells,
                    answered="control" in definition,
                )
            )
    return elements
