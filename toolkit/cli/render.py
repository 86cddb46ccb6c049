"""How commands show what a library call returned: one printer for problems, the options every command shares.

Problems (`Issue`) go to stderr, one line each, coloured by severity, with the location first so that a user can go
to the file, instance, variable or row. Long lists are cut per code or overall, with a line saying how many more
there are and where the whole list is (the run's report, `--json`).

Conventions of the option set: the thing a command works on is its argument (a DATA folder, a folder of
submissions, a form for `forms lint`, `codebook`, `simulate`); the form that data belongs to is `--form/-f`; where
output goes is `--out/-o`; label language is `--lang`; the form's attachments are `--media`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli._common import err, shown
from toolkit.errors import Issue, Severity

_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "dim"}

FormOption = Annotated[
    Path, typer.Option("--form", "-f", help="The XLSForm (.xlsx/.xls/.md) or XForm (.xml) of the data.")
]
OptionalFormOption = Annotated[
    Path | None,
    typer.Option("--form", "-f", help="The XLSForm or XForm of the data: checks choice codes and gives labels."),
]
MediaOption = Annotated[Path | None, typer.Option("--media", help="Folder of the form's attachments (CSV/XML).")]
LangOption = Annotated[
    str | None,
    typer.Option("--lang", help='Label language, e.g. "Russian (ru)" or ru; default the form\'s.'),
]


def issue_line(issue: Issue, *, prefix: str | None = None) -> str:
    """One problem as rich markup: severity (or `prefix`, e.g. a stage name) in colour, then the message."""
    colour = _COLOUR.get(Severity(issue.severity), "yellow")
    return f"[{colour}]{shown(prefix or str(issue.severity))}[/]: {shown(issue.format())}"


def print_issues(
    issues: Iterable[Issue],
    *,
    limit: int | None = None,
    per_code: int | None = None,
    whole_list: str = "--json lists them all",
    tally: bool = False,
) -> None:
    """Print problems on stderr, errors first.

    Parameters:
        issues: the problems, in the order the stage found them (kept within a severity).
        limit: show at most this many lines in all.
        per_code: show at most this many warnings of one code (errors are always shown in full).
        whole_list: where the user finds what was cut (said on the "... more" line).
        tally: end with one line counting every code.
    """
    listed = sorted(issues, key=lambda issue: issue.severity != Severity.ERROR)
    shown_lines = 0
    if per_code is not None:
        by_code: dict[str, list[Issue]] = {}
        for issue in listed:
            by_code.setdefault(issue.code, []).append(issue)
        for code, group in sorted(by_code.items(), key=lambda item: (item[1][0].severity != Severity.ERROR, item[0])):
            kept = group if group[0].severity == Severity.ERROR else group[:per_code]
            for issue in kept:
                err.print(issue_line(issue), markup=True, highlight=False)
            if len(group) > len(kept):
                err.print(f"  ... {len(group) - len(kept)} more {shown(code)}; {whole_list}.", highlight=False)
    else:
        for issue in listed:
            if limit is not None and shown_lines >= limit:
                err.print(f"... and {len(listed) - shown_lines} more; {whole_list}.", highlight=False)
                break
            err.print(issue_line(issue), markup=True, highlight=False)
            shown_lines += 1
    if tally and listed:
        counts = Counter(issue.code for issue in listed)
        err.print("issues: " + ", ".join(f"{code} x{n}" for code, n in sorted(counts.items())), highlight=False)
