"""`Report`: the result of a checking step (lint, validate, weights diagnostics) as data."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import Issue, Severity


@dataclass(frozen=True)
class Report:
    """Issues found by a step, statistics about the run, and whether the checked object is valid.

    `valid` is False when any issue has error severity; warnings leave a report valid.
    """

    valid: bool
    stats: dict[str, Any] = field(default_factory=dict)
    issues: tuple[Issue, ...] = ()

    @classmethod
    def from_issues(cls, issues: Iterable[Issue], stats: dict[str, Any] | None = None) -> Report:
        collected = tuple(issues)
        valid = not any(issue.severity == Severity.ERROR for issue in collected)
        return cls(valid=valid, stats=dict(stats or {}), issues=collected)

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == Severity.ERROR)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if issue.severity == Severity.WARNING)

    def counts_by_code(self) -> dict[str, int]:
        return dict(Counter(issue.code for issue in self.issues))

    def flatten(self) -> list[dict[str, Any]]:
        """One flat dict per issue: code, severity, message, then the location fields."""
        return [issue.flatten() for issue in self.issues]

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "stats": self.stats, "issues": self.flatten()}

    def to_json(self, **json_options: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str, **json_options)


def counted(number: object, noun: str, plural: str | None = None) -> str:
    """`1 submission`, `2 submissions`: a count with its noun in the right number (English messages)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
