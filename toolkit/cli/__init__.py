"""The `migkit` command line: a thin Typer layer over the library.

Each stage's commands live in a module of this package and register themselves on `app` when imported.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from toolkit import __version__
from toolkit.cli._common import state

# One BLAS thread per process unless the user asks for more. The estimation's matrix products are thin (n x a
# few columns), so a second thread gains little on an idle machine, and on a busy one OpenBLAS threads spin while
# waiting for a core: the indicators of 20,000 households took 30 s with two threads and 19 s with one under a
# load of 8 on 2 cores (13.2 s and 5.6 s of CPU). Set before numpy is imported; the commands import it lazily.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def _plain_usage_names() -> None:
    """Help in the shape users know from other command lines: `migkit run [OPTIONS] CONFIG` rather than Typer
    0.29's `{config}`, and flags without a `<bool>` type (a flag takes no value). typer is pinned to 0.29.*, and
    tests/test_cli_startup.py checks the rendered help, so a Typer upgrade that moves these methods fails loudly."""
    from typer.core import TyperArgument, TyperOption

    def usage_name(self: TyperArgument) -> str:
        name = (self.metavar or self.name or "").upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    original_type = TyperOption.display_type_rich

    def flag_type(self: TyperOption, ctx: Any) -> str | None:  # a click Context, which Typer 0.29 vendors privately
        return None if self.is_bool_flag else original_type(self, ctx)

    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
    TyperOption.display_type_rich = flag_type  # type: ignore[method-assign]


_plain_usage_names()

app = typer.Typer(
    name="migkit",
    help="Offline toolkit for household migration surveys: forms, decryption, validation, weights, exports.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"migkit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """migkit: XLSForm templates, ODK decryption, skip-logic validation, survey weights, labelled exports."""
    state.debug = debug


# Command modules register on `app` when imported (one module per stage), in the order of a survey so that
# `migkit --help` lists them that way.
# isort: off
from toolkit.cli import forms as _forms  # noqa: E402,F401
from toolkit.cli import crypto as _crypto  # noqa: E402,F401
from toolkit.cli import ingest as _ingest  # noqa: E402,F401
from toolkit.cli import validate as _validate  # noqa: E402,F401
from toolkit.cli import weights as _weights  # noqa: E402,F401
from toolkit.cli import indicators as _indicators  # noqa: E402,F401
from toolkit.cli import export as _export  # noqa: E402,F401
from toolkit.cli import codebook as _codebook  # noqa: E402,F401
from toolkit.cli import run as _run  # noqa: E402,F401
# isort: on


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    try:
        app(args=argv, prog_name="migkit")
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


__all__ = ["app", "main"]
