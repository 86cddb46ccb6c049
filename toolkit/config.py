"""Checks for the TOML files users write by hand: survey.toml, design.toml, answers.toml, indicator catalogues.

A typo in a configuration file must never be silently ignored: `[decrpyt]` or `desing = ...` would otherwise skip
a stage ("not configured") without anybody noticing. Each format declares a schema of `Key`s; `load_toml` reads the
file and checks it whole before anything runs: unknown sections and keys (with close-match suggestions), wrong
types, values outside their range or list of choices, missing required keys. Every problem is reported at once,
with the file and the line, and the run stops with exit code 2 (usage error).

The schema only checks shapes and ranges; what a value means (does the file exist, is the code in the form) is
checked by the stage that reads it.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from toolkit.errors import EXIT_USAGE, INPUT_MISSING, Issue, ToolkitError, define, error

CONFIG_UNKNOWN_KEY = define("config.unknown_key", "A configuration file has a section or key migkit does not know")
CONFIG_WRONG_VALUE = define("config.wrong_value", "A configuration setting has the wrong type or an invalid value")
CONFIG_MISSING_KEY = define("config.missing_key", "A configuration file lacks a required setting")
CONFIG_NOT_TOML = define("config.not_toml", "A configuration file is not valid TOML")

Kind = Literal["str", "int", "number", "bool", "date", "scalar", "list[str]", "list[scalar]", "list[number]", "table"]

_KIND_WORDS: dict[str, str] = {
    "str": "a string",
    "int": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "date": "a date such as 2026-11-20",
    "scalar": "a string or a number",
    "list[str]": "a list of strings",
    "list[scalar]": "a list of strings or numbers",
    "list[number]": "a list of numbers",
    "table": "a table (a [section] or { ... })",
}


@dataclass(frozen=True)
class Key:
    """What one setting may hold.

    Parameters:
        kind: the TOML type expected; "str_or_list" style unions are written as `also`.
        doc: one line for the reference documentation.
        required: the file is refused without it.
        choices: the only values allowed (strings), or the only items of a list.
        minimum / maximum: inclusive bounds for numbers (and list items).
        above / below: exclusive bounds for numbers.
        keys: the fixed keys of a table.
        each: for tables whose keys are free names (question names, calibration levels): the schema of each entry.
        also: another kind accepted as well (a path or a list of paths).
        length: exact length of a list.
    """

    kind: Kind
    doc: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    below: float | None = None
    keys: Mapping[str, Key] = field(default_factory=dict)
    each: Key | None = None
    also: Kind | None = None
    length: int | None = None


Schema = Mapping[str, Key]


def table(doc: str = "", listed: Mapping[str, Key] | None = None, /, *, required: bool = False, **keys: Key) -> Key:
    """A table with fixed keys, e.g. `table("[survey]", form=Key("str", required=True))`.

    Parameters:
        doc: what the table holds, for messages and the reference.
        listed: keys given as a mapping (names built in code, or not Python names such as "from"), before `keys`.
        required: the table must be present.
        keys: the keys by name.
    """
    return Key("table", doc, required=required, keys={**(listed or {}), **keys})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_date(value: Any) -> bool:
    if isinstance(value, date):
        return True
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


_KIND_TESTS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "date": _is_date,
    "scalar": lambda v: isinstance(v, str) or _is_number(v),
    "list[str]": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
    "list[scalar]": lambda v: isinstance(v, list) and all(isinstance(i, str) or _is_number(i) for i in v),
    "list[number]": lambda v: isinstance(v, list) and all(_is_number(i) for i in v),
    "table": lambda v: isinstance(v, dict),
}


def _is_kind(value: Any, kind: Kind) -> bool:
    return _KIND_TESTS[kind](value)


def _bound_problem(value: Any, key: Key) -> str | None:
    numbers = value if isinstance(value, list) else [value]
    for number in numbers:
        if not isinstance(number, (int, float)) or isinstance(number, bool):
            continue
        if isinstance(number, float) and math.isnan(number):
            return "must be a number, not nan"
        if key.minimum is not None and number < key.minimum:
            return f"must be at least {key.minimum:g}"
        if key.maximum is not None and number > key.maximum:
            return f"must be at most {key.maximum:g}"
        if key.above is not None and number <= key.above:
            return f"must be more than {key.above:g}"
        if key.below is not None and number >= key.below:
            return f"must be less than {key.below:g}"
    return None


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")
_PART = re.compile(r"""\s*("([^"]*)"|'([^']*)'|[A-Za-z0-9_\-]+)\s*""")


def _dotted(text: str) -> tuple[str, ...]:
    parts = []
    for piece in _PART.finditer(text):
        token = piece.group(1)
        parts.append(piece.group(2) if piece.group(2) is not None else piece.group(3) or token)
    return tuple(parts)


def line_numbers(text: str) -> dict[tuple[str, ...], int]:
    """Where each section header and key is defined (1-based line numbers), by its dotted path."""
    lines: dict[tuple[str, ...], int] = {}
    current: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            current = _dotted(header.group(1))
            lines.setdefault(current, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*current, *_dotted(key.group(1))), number)
    return lines


@dataclass
class _Checker:
    source: Path
    lines: dict[tuple[str, ...], int]
    issues: list[Issue] = field(default_factory=list)

    def line_of(self, path: tuple[str, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def add(self, code: str, path: tuple[str, ...], message: str, value: Any = None) -> None:
        where = _where(path)
        self.issues.append(
            error(code, f"{where}: {message}", file=str(self.source), line=self.line_of(path), value=value)
        )

    def table(self, raw: Mapping[str, Any], schema: Schema, path: tuple[str, ...]) -> None:
        for name, value in raw.items():
            if name not in schema:
                self.unknown(name, value, schema, path)
                continue
            self.value(value, schema[name], (*path, name))
        for name, key in schema.items():
            if key.required and name not in raw:
                self.add(CONFIG_MISSING_KEY, (*path, name), f"is required: {key.doc}" if key.doc else "is required")

    def unknown(self, name: str, value: Any, schema: Schema, path: tuple[str, ...]) -> None:
        close = difflib.get_close_matches(name, list(schema), n=3, cutoff=0.6)
        what = "section" if isinstance(value, dict) else "key"
        hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None
        known = ", ".join(sorted(schema)) or "none"
        message = f"unknown {what}; {hint}" if hint else f"unknown {what}; the {what}s known here are: {known}"
        self.add(CONFIG_UNKNOWN_KEY, (*path, name), message)

    def value(self, value: Any, key: Key, path: tuple[str, ...]) -> None:
        if not _is_kind(value, key.kind) and not (key.also and _is_kind(value, key.also)):
            wanted = _KIND_WORDS[key.kind] + (f" or {_KIND_WORDS[key.also]}" if key.also else "")
            self.add(CONFIG_WRONG_VALUE, path, f"must be {wanted}, not {_show(value)}", value=_show(value))
            return
        if key.kind == "table":
            if key.keys or key.each is None:
                self.table(value, key.keys, path)
            if key.each is not None:
                for name, entry in value.items():
                    if name not in key.keys:
                        self.value(entry, key.each, (*path, name))
            return
        items = value if isinstance(value, list) else [value]
        if key.choices:
            wrong = [v for v in items if str(v) not in key.choices]
            if wrong:
                allowed = ", ".join(key.choices)
                self.add(CONFIG_WRONG_VALUE, path, f"{_show(wrong[0])} is not one of: {allowed}", value=wrong[0])
                return
        if key.length is not None and isinstance(value, list) and len(value) != key.length:
            self.add(CONFIG_WRONG_VALUE, path, f"must list exactly {key.length} values, not {len(value)}")
            return
        problem = _bound_problem(value, key)
        if problem:
            self.add(CONFIG_WRONG_VALUE, path, f"{problem} (is {_show(value)})", value=_show(value))


def _where(path: tuple[str, ...]) -> str:
    if not path:
        return "the file"
    if len(path) == 1:
        return f"[{path[0]}]"
    return f"[{'.'.join(path[:-1])}] {path[-1]}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_config(raw: Mapping[str, Any], schema: Schema, *, source: Path, text: str = "") -> list[Issue]:
    """Every problem of a parsed TOML document against a schema, with file and line.

    Parameters:
        raw: the parsed document (tomllib).
        schema: the top-level sections and keys of the format.
        source: the file, for messages.
        text: the file's text, to find line numbers ("" = no line numbers).
    """
    checker = _Checker(source, line_numbers(text))
    checker.table(raw, schema, ())
    return checker.issues


def load_toml(path: str | Path, schema: Schema, *, what: str) -> dict[str, Any]:
    """Read a TOML file and check it whole; raise one ToolkitError (exit 2) carrying every problem.

    Parameters:
        path: the file.
        schema: its format.
        what: the file's role for messages ("survey configuration", "weighting design").
    """
    source = Path(path)
    if not source.is_file():
        raise ToolkitError(error(INPUT_MISSING, f"The {what} file does not exist.", file=str(source)), EXIT_USAGE)
    try:
        text = source.read_text(encoding="utf-8-sig")  # a BOM from Windows editors is not an error
        raw = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ToolkitError(
            error(CONFIG_NOT_TOML, f"The {what} is not UTF-8 text; save it as UTF-8.", file=str(source)), EXIT_USAGE
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ToolkitError(
            error(CONFIG_NOT_TOML, f"The {what} is not valid TOML: {exc}.", file=str(source)), EXIT_USAGE
        ) from None
    issues = check_config(raw, schema, source=source, text=text)
    if issues:
        raise ToolkitError.of(issues, EXIT_USAGE)
    return raw


def schema_paths(schema: Schema, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Key]]:
    """Every (dotted path, Key) of a schema, sections before their keys, for documentation and its tests."""
    for name, key in schema.items():
        path = (*prefix, name)
        yield path, key
        if key.kind == "table":
            yield from schema_paths(key.keys, path)
            if key.each is not None and key.each.kind == "table":
                yield from schema_paths(key.each.keys, (*path, "*"))
