"""How commands show what a library call returned: one `--json` shape, one printer for problems, the options every
command shares.

`--json` of every command is one object: `command` (e.g. "forms lint"), `ok`, `exit_code`, the command's result
fields (from the library's result dataclass), and `issues`, each issue flat as `Issue.flatten()` gives it (code,
topic, qualified_code, severity, message, then where). Numbers that do not exist (NaN) are null: JSON has no NaN.

Problems (`Issue`) go to stderr, one line each, coloured by severity, with the location first so that a user can go
to the file, instance, variable or row. Long lists are cut per code or overall, with a line saying how many more
there are and where the whole list is (the run's report, `--json`).

Conventions of the option set: the thing a command works on is its argument (a DATA folder, a folder of
submissions, a form for `forms lint`, `codebook`, `simulate`); the form that data belongs to is `--form/-f`; where
output goes is `--out/-o`; label language is `--lang`; the form's attachments are `--media`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TaskID

from toolkit.cli._common import err, print_json, shown, to_jsonable
from toolkit.errors import EXIT_DATA_PROBLEMS, EXIT_OK, Issue, Severity, with_topic

_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "dim"}

FormOption = Annotated[
    Path, typer.Option("--form", "-f", help="The XLSForm (.xlsx/.xls/.md) or XForm (.xml) of the data.")
]
OptionalFormOption = Annotated[
    Path | None,
    typer.Option("--form", "-f", help="The XLSForm or XForm of the data: checks choice codes and gives labels."),
]
FormVersionsOption = Annotated[
    list[Path],
    typer.Option(
        "--form",
        "-f",
        help="The form (XLSForm .xlsx/.xls/.md or XForm .xml); "
        "repeat it for older versions, newest first, to merge them.",
    ),
]
MediaOption = Annotated[Path | None, typer.Option("--media", help="Folder of the form's attachments (CSV/XML).")]
LangOption = Annotated[
    str | None,
    typer.Option("--lang", help='Label language, e.g. "Russian (ru)" or ru; default the form\'s.'),
]


def out_option(help_text: str) -> Any:
    """The `--out/-o` option of a command, with what it writes said in `help_text`."""
    return typer.Option("--out", "-o", help=help_text)


def fields_of(result: Any) -> dict[str, Any]:
    """A result dataclass's fields by name, for `render` (its `issues` go into the shape's own list)."""
    return {field.name: getattr(result, field.name) for field in dataclasses.fields(result)}


def progress_from(bar: Progress, name: str, *, shown_from: int) -> Callable[..., None]:
    """A progress callback `(done, total[, size])` for a library call that shows `bar` only for work of at least
    `shown_from` (files, submissions, rows: `size` when given, else `total`), so that short runs print nothing."""
    task: TaskID | None = None

    def update(done: int, total: int, size: int | None = None) -> None:
        nonlocal task
        if (total if size is None else size) < shown_from:
            return
        if task is None:
            task = bar.add_task(name, total=total)
        bar.update(task, completed=done)

    return update


def exit_code(ok: bool) -> int:
    """0 when the data have no problems, 1 when they have (a run that could not go on raises instead)."""
    return EXIT_OK if ok else EXIT_DATA_PROBLEMS


def json_shape(
    command: str,
    fields: Mapping[str, Any],
    issues: Iterable[Issue],
    *,
    ok: bool,
    code: int,
    issue_extras: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The one `--json` object: command, ok, exit_code, the result fields, issues (a short code gets the command's
    first word as its topic: `validate`).

    `issue_extras` adds fields a command's own problems have beyond `Issue` (validate's `absent`), one mapping
    per issue from the first on."""
    named = command.split(maxsplit=1)[0]
    shape: dict[str, Any] = {"command": command, "ok": ok, "exit_code": code}
    shape.update((name, value) for name, value in fields.items() if name not in shape and name != "issues")
    flat = [issue.flatten() for issue in with_topic(issues, named)]
    for one, extra in zip(flat, issue_extras, strict=False):
        one.update(extra)
    shape["issues"] = flat
    return dict(to_jsonable(shape))


def render(
    command: str,
    fields: Mapping[str, Any],
    issues: Iterable[Issue],
    *,
    ok: bool,
    as_json: bool,
    people: Callable[[], None],
    code: int | None = None,
    issue_extras: Sequence[Mapping[str, Any]] = (),
) -> int:
    """Show a command's result: the `--json` object on stdout, or what `people` prints (tables, problems); return
    the exit code (by default 0 when `ok`, else 1)."""
    chosen = exit_code(ok) if code is None else code
    if as_json:
        print_json(json_shape(command, fields, issues, ok=ok, code=chosen, issue_extras=issue_extras))
    else:
        people()
    return chosen


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
