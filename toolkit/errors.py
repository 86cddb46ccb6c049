"""One vocabulary for problems: `Issue` records with stable codes, and `ToolkitError` for runs that cannot go on.

Every stage defines its codes here-through `define()` at import time, so the catalogue is complete, codes are unique,
and a code once published is never reused for a different meaning. Data problems travel as `Issue`s inside result
objects; only a problem that stops the whole run is raised, wrapped in `ToolkitError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# Exit codes shared by every CLI command.
EXIT_OK = 0
EXIT_DATA_PROBLEMS = 1
EXIT_USAGE = 2
EXIT_CANNOT_RUN = 3

CATALOGUE: dict[str, str] = {}


def define(code: str, title: str) -> str:
    """Register a stable issue code with a one-line title and return the code.

    Parameters:
        code: the stable identifier, topic-prefixed where the contract allows (``lint.sm_equals``).
        title: what the code means, shown in ``migkit codes`` and the documentation.
    """
    known = CATALOGUE.get(code)
    if known is not None and known != title:
        raise ValueError(f"issue code {code!r} is already defined as {known!r}")
    CATALOGUE[code] = title
    return code


@dataclass(frozen=True)
class Location:
    """Where a problem is: any combination of file, sheet, row, column, variable, instance, node path and the
    enumerator who filled the submission (so that a supervisor knows whom to call back)."""

    file: str | None = None
    sheet: str | None = None
    row: int | None = None  # spreadsheet row number, header = row 1; or a data row number (1-based)
    line: int | None = None  # line of a text file (configuration files), 1-based
    column: str | None = None
    variable: str | None = None
    instance: str | None = None
    path: str | None = None
    expression: str | None = None
    enumerator: str | None = None

    def describe(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.sheet:
            parts.append(f"sheet {self.sheet}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column:
            parts.append(f"column {self.column}")
        if self.instance:
            parts.append(f"instance {self.instance}")
        if self.path:
            parts.append(self.path)
        elif self.variable:
            parts.append(f"variable {self.variable}")
        if self.enumerator:
            parts.append(f"enumerator {self.enumerator}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Issue:
    """A problem found in a form, a key, a submission or a table.

    The message says what is wrong and how to fix it; `location` says where. Codes carry their topic as a prefix
    (`decrypt.wrong_key`, `weights.negative_weights`); validate's codes were published before the rule and stay
    short (`required_missing`): `topic` names their stage, and `qualified_code` is the prefixed form of either.
    """

    code: str
    severity: Severity
    message: str
    location: Location = field(default_factory=Location)
    value: Any = None
    topic: str | None = None

    @property
    def qualified_code(self) -> str:
        """The code with its topic in front (`validate.required_missing`); a prefixed code as it is."""
        if "." in self.code or not self.topic:
            return self.code
        return f"{self.topic}.{self.code}"

    def format(self) -> str:
        where = self.location.describe()
        return f"{where}: {self.message} [{self.code}]" if where else f"{self.message} [{self.code}]"

    def flatten(self) -> dict[str, Any]:
        """One flat dict: code (as published, short for validate), topic, qualified_code, severity, message, then
        the location fields and the value when there is one. This is the shape of every `issues` list in `--json`."""
        qualified = self.qualified_code
        flat: dict[str, Any] = {
            "code": self.code,
            "topic": qualified.split(".", 1)[0] if "." in qualified else None,
            "qualified_code": qualified,
            "severity": str(self.severity),
            "message": self.message,
        }
        flat.update(dataclasses.asdict(self.location))
        if self.value is not None:
            flat["value"] = self.value
        return flat

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> Issue:
        """The issue `flatten()` gave (as stored in tables.json); keys of older or newer versions are ignored."""
        where = {f.name: flat[f.name] for f in dataclasses.fields(Location) if f.name in flat}
        return cls(
            flat["code"],
            Severity(flat["severity"]),
            flat["message"],
            Location(**where),
            flat.get("value"),
            flat.get("topic") if "." not in flat["code"] else None,
        )


def error(code: str, message: str, **where: Any) -> Issue:
    """Build an error-level Issue; keyword arguments are Location fields (and `value`)."""
    value = where.pop("value", None)
    return Issue(code, Severity.ERROR, message, Location(**where), value)


def warning(code: str, message: str, **where: Any) -> Issue:
    """Build a warning-level Issue; keyword arguments are Location fields (and `value`)."""
    value = where.pop("value", None)
    return Issue(code, Severity.WARNING, message, Location(**where), value)


def with_topic(issues: Iterable[Issue], topic: str) -> tuple[Issue, ...]:
    """The issues with `topic` set where a short code has none (the stage that found them names it)."""
    return tuple(
        issue if issue.topic or "." in issue.code else dataclasses.replace(issue, topic=topic) for issue in issues
    )


class ToolkitError(Exception):
    """Raised when a run cannot go on (missing input, unreadable key). Carries the Issue and the exit code."""

    def __init__(self, issue: Issue, exit_code: int = EXIT_CANNOT_RUN, *, more: tuple[Issue, ...] = ()) -> None:
        super().__init__(issue.format() + (f" (and {len(more)} more)" if more else ""))
        self.issue = issue
        self.issues = (issue, *more)
        self.exit_code = exit_code

    @classmethod
    def of(cls, issues: list[Issue] | tuple[Issue, ...], exit_code: int = EXIT_CANNOT_RUN) -> ToolkitError:
        """One error carrying several problems found together (every mistake of a configuration file at once)."""
        first, *rest = issues
        return cls(first, exit_code, more=tuple(rest))


# Codes used across stages.
INPUT_MISSING = define("input.missing", "An input file or folder does not exist")
INPUT_UNREADABLE = define("input.unreadable", "An input file exists but cannot be read or parsed")
OUTPUT_UNWRITABLE = define("output.unwritable", "An output file or folder cannot be written")
