"""What every command shares: consoles, the `--json` option, JSON printing and the error guard.

Commands parse, call one library function, render and return an exit code. The guard turns a `ToolkitError` into
one line on stderr plus its exit code, and any unexpected exception into one line (the traceback only with
`migkit --debug`), so that no local variable, key or decrypted answer is ever printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn
from typer.exceptions import TyperException

from toolkit.errors import EXIT_CANNOT_RUN, EXIT_USAGE, Issue, ToolkitError

# Machine output (JSON, tables asked for) goes to stdout; messages and progress go to stderr.
# Piped or under make, rich would squeeze tables to 80 columns: use a wider page unless COLUMNS says otherwise.
_PIPED_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
out = Console(highlight=False, soft_wrap=True, width=_PIPED_WIDTH)
# soft_wrap: long messages and paths are never broken with inserted newlines (users copy them).
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_PIPED_WIDTH)


class _State:
    debug: bool = False


state = _State()

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]

F = TypeVar("F", bound=Callable[..., Any])


def to_jsonable(value: Any) -> Any:
    """A result object as JSON values; every `Issue` inside it in the one flat shape of `Issue.flatten()`."""
    if isinstance(value, Issue):
        return value.flatten()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return _json_scalar(value)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: an estimate that does not exist (empty domain, no variance) is null
    return value


# C0 and C1 control characters but tab and newline: a terminal acts on them (colours, links, moving the cursor).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(value: object) -> str:
    """`value` as text to put inside a rich markup string, printed as it is and never read as markup.

    Everything that comes from data goes through here before rich sees it: answers and the messages that quote
    them, instance IDs, file and folder names, form labels and expressions. An answer `[/]` would otherwise stop
    the command (rich's MarkupError) and `[link=...]` would become a clickable terminal link. Control characters
    (ESC starts terminal commands) are shown as `\\x1b`; tab and newline are kept. Put no `[` right after it:
    backslashes at the end of the value would then escape that bracket.
    """
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    escaped = escape(text)
    # rich doubles one trailing backslash in case a tag follows; none does here, and it would be printed twice.
    if text.endswith("\\") and not text.endswith("\\\\") and escaped.endswith("\\\\"):
        return escaped[:-1]
    return escaped


def print_json(value: Any) -> None:
    """Print a result object (dataclass, dict, list) as JSON on stdout, non-ASCII text kept as it is."""
    sys.stdout.write(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


def progress_bar(*columns: ProgressColumn | str, quiet: bool = False) -> Progress:
    """A progress display on stderr that disappears when done, and is not shown at all when stderr is not a
    terminal (piped, under make, in CI), so that no blank lines are left where it would have been."""
    return Progress(*columns, console=err, transient=True, disable=quiet or not err.is_terminal)


def guarded(command: F) -> F:
    """Wrap a command: its return value is the exit code; errors become one line and an exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = command(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except ToolkitError as exc:
            for issue in exc.issues:
                err.print(f"[bold red]error[/]: {shown(issue.format())}", markup=True, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            # The reader of our output went away (`migkit ... --json | head`): stop quietly, as Unix tools do.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except Exception as exc:
            if type(exc).__module__.startswith("typer."):
                raise  # usage errors from the (vendored) click layer keep their own exit code 2
            if state.debug:
                err.print_exception(show_locals=False)
            else:
                err.print(
                    f"[bold red]unexpected error[/]: {type(exc).__name__}: {shown(exc)}. "
                    "Run again with `migkit --debug ...` for the traceback, and report it.",
                    markup=True,
                    highlight=False,
                )
            raise typer.Exit(EXIT_CANNOT_RUN) from None
        raise typer.Exit(int(code or 0))

    return cast(F, wrapper)  # the same signature: functools.wraps hands it to Typer


def usage_error(message: str) -> typer.Exit:
    """Print a usage problem and return the Exit to raise (exit code 2)."""
    err.print(f"[bold red]usage error[/]: {shown(message)}", markup=True, highlight=False)
    return typer.Exit(EXIT_USAGE)
