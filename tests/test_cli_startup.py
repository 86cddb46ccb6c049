"""The `migkit` command line starts without importing the heavy stage libraries, and every `--help` still works.

Every migkit command, `--help` included, imports `toolkit.cli`; pandas, numpy, pyxform and openpyxl alone cost
about 0.6 s there, so the stage modules are imported inside the commands that use them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import REPO
from toolkit.cli import app

HEAVY = ("pandas", "numpy", "pyxform", "openpyxl")
REPORTED = (*HEAVY, "lxml", "cryptography")

# A fresh interpreter: import the CLI, build the Click command, render every command's help, report what is loaded.
_PROBE = """
import json, sys
import typer
from typer.testing import CliRunner
from toolkit.cli import app

def walk(command, path):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, [*path, name])

root = typer.main.get_command(app)
helps = {}
for path in walk(root, []):
    result = CliRunner().invoke(app, [*path, "--help"])
    helps[" ".join(path)] = result.exit_code
print(json.dumps({"helps": helps, "loaded": [m for m in sys.argv[1:] if m in sys.modules]}))
"""

# Every command and sub-command, in the order `migkit --help` lists them.
COMMANDS = [
    (),
    ("forms",),
    ("forms", "build"),
    ("forms", "lint"),
    ("keys",),
    ("keys", "new"),
    ("keys", "attach"),
    ("decrypt",),
    ("ingest",),
    ("simulate",),
    ("validate",),
    ("weights",),
    ("weights", "run"),
    ("weights", "rake"),
    ("estimate",),
    ("indicators",),
    ("export",),
    ("codebook",),
    ("run",),
]


def _all_paths(command: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths = {path}
    for name, sub in getattr(command, "commands", {}).items():  # Typer vendors click: duck-type its Group
        paths |= _all_paths(sub, (*path, name))
    return paths


def test_import_and_every_help_leave_heavy_libraries_unloaded() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *REPORTED], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["helps"] == {" ".join(path): 0 for path in COMMANDS}
    loaded = set(probe["loaded"])
    assert not loaded & set(HEAVY), f"`import toolkit.cli` and --help loaded {sorted(loaded & set(HEAVY))}"


def test_command_table_lists_every_command() -> None:
    assert _all_paths(typer.main.get_command(app)) == set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "migkit")
def test_help_exits_zero(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_light_copies_of_constants_match_the_stage_modules() -> None:
    # settings holds the names `--help` shows, so that the CLI need not import the stages to register its options.
    from toolkit import codebook, crypto, settings

    assert codebook.CODEBOOK_FORMATS is settings.CODEBOOK_FORMATS
    assert crypto.PASSPHRASE_ENV is settings.PASSPHRASE_ENV
    result = CliRunner().invoke(app, ["decrypt", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert f"${crypto.PASSPHRASE_ENV}" in result.output


@pytest.mark.parametrize(
    "path", [p for p in COMMANDS if p not in {(), ("forms",), ("keys",), ("weights",)}], ids=" ".join
)
def test_every_command_takes_json_and_its_help_reads_plainly(path: tuple[str, ...]) -> None:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    assert any("--json" in param.opts for param in command.params), f"migkit {' '.join(path)} has no --json"
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"}).output
    assert "<bool>" not in shown  # a flag takes no value
    usage = next(line for line in shown.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage  # arguments as FORM, CONFIG, [INPUTS]...


def test_piped_output_has_no_blank_lines_where_progress_bars_were(tmp_path) -> None:
    form = tmp_path / "form.md"
    form.write_text(
        "| survey |\n| | type | name | label |\n| | integer | age | Age |\n"
        "| settings |\n| | form_id | version |\n| | piped | 1 |\n",
        encoding="utf-8",
    )
    migkit = [sys.executable, "-m", "toolkit"]
    subprocess.run(
        [*migkit, "simulate", str(form), "--n", "3", "--out", str(tmp_path / "subs")],
        check=True,
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    done = subprocess.run(
        [*migkit, "validate", str(tmp_path / "subs"), "--form", str(form)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = done.stderr + done.stdout
    assert shown.strip() and not shown.startswith("\n") and "\n\n\n" not in shown, repr(shown[:200])


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("2", "2")])
def test_command_line_keeps_blas_to_one_thread_unless_the_user_sets_it(given: str | None, expected: str) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}}
    if given is not None:
        env["OPENBLAS_NUM_THREADS"] = given
    code = "import os, toolkit.cli; print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=True)
    assert run.stdout.split() == [expected, "1"]
