"""Keep the workshop material in training/ honest.

Every `migkit ...` line quoted in a fenced code block of the labs must name commands and options that exist
(checked against the Typer app, and with `<command> --help` through CliRunner), and the deliberately broken
exercise form must give exactly the lint findings that lab 02 walks through.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from toolkit.cli import app
from toolkit.errors import Severity
from toolkit.forms.lint import lint_form

TRAINING = Path(__file__).resolve().parent.parent / "training"
LABS = [*sorted(TRAINING.glob("0*.md")), TRAINING / "README.md"]
BROKEN_FORM = TRAINING / "exercises" / "broken_form.md"

# The findings lab 02 (exercise 2.1) tells participants to expect from broken_form.md: (code, sheet, row).
BROKEN_FORM_FINDINGS = {
    ("lint.choice_unknown", "survey", 5),  # ${consent_hh} = 'yes' on a 1/2 list
    ("lint.forward_reference", "survey", 9),  # rm_livein asked before rm_dw, which its relevant uses
    ("lint.select_multiple_equals", "survey", 12),  # ${rc_items} = '1'
    ("lint.name_too_long", "survey", 12),  # 43-character name, Stata allows 32
    ("lint.choice_unknown", "survey", 13),  # ${rm_sex} = '3' on a 1/2 list
    ("lint.translation_missing", "survey", 13),  # no Russian label
    ("lint.no_public_key", "settings", 2),  # no encryption key yet
}
BROKEN_FORM_ERRORS = 5
BROKEN_FORM_WARNINGS = 2

_FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
_SHELL_STOP = {"|", "||", "&&", ";", ">", ">>", "<", ">&", "&"}


def _command_lines(text: str) -> list[str]:
    """The `migkit ...` command lines of all fenced blocks, with backslash continuations joined."""
    found = []
    for block in _FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            stripped = line.strip()
            if stripped.startswith("$ "):
                stripped = stripped[2:].strip()
            if stripped.startswith("migkit "):
                found.append(stripped)
    return found


def _all_commands() -> list[tuple[str, str]]:
    return [(doc.name, line) for doc in LABS for line in _command_lines(doc.read_text(encoding="utf-8"))]


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = []
    for token in lexer:
        if token in _SHELL_STOP or set(token) <= set("();<>|&"):
            break
        tokens.append(token)
    return tokens[1:]  # without "migkit"


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # Typer vendors click: duck-type its Group


@cache
def _root() -> Any:
    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _resolve(tokens: list[str]) -> tuple[list[str], Any, list[str]]:
    """Walk the command tree: (command path, the command, the remaining tokens)."""
    command = _root()
    path: list[str] = []
    rest = list(tokens)
    while _is_group(command):
        # root options (--debug) may come before the command name
        while rest and rest[0] in {"--debug"}:
            rest.pop(0)
        if not rest:
            break
        name = rest[0]
        if name in command.commands:
            rest.pop(0)
        elif path == ["weights"] and not name.startswith("-"):
            name = "run"  # `migkit weights DATA ...` runs the hidden default command
        else:
            break
        path.append(name)
        command = command.commands[name]
    return path, command, rest


def _options_used(rest: list[str]) -> list[str]:
    used = []
    for token in rest:
        if token == "--":
            break
        if token.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", token):
            used.append(token.split("=", 1)[0])
    return used


@cache
def _help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, f"`migkit {' '.join(path)} --help` failed:\n{result.output}"
    return result.output


def test_labs_quote_enough_commands() -> None:
    commands = _all_commands()
    assert len(commands) >= 30, "the labs should quote the commands they run"
    used = {tuple(_resolve(_tokens(line))[0]) for _, line in commands}
    for expected in [
        ("forms", "lint"),
        ("forms", "build"),
        ("keys", "new"),
        ("keys", "attach"),
        ("simulate",),
        ("decrypt",),
        ("ingest",),
        ("validate",),
        ("weights", "run"),
        ("estimate",),
        ("export",),
        ("codebook",),
    ]:
        assert expected in used, f"no lab shows `migkit {' '.join(expected)}`"


@pytest.mark.parametrize(("doc", "line"), _all_commands())
def test_quoted_command_exists(doc: str, line: str) -> None:
    path, command, rest = _resolve(_tokens(line))
    assert path, f"{doc}: `{line}` names no migkit command"
    assert not _is_group(command), f"{doc}: `{line}` stops at the group `{' '.join(path)}`"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    help_text = _help_text(tuple(path))
    for option in _options_used(rest):
        name = " ".join(path)
        assert option in known, f"{doc}: `{line}` uses {option}, which `migkit {name}` does not have"
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text), (
            f"{doc}: {option} is not in `migkit {' '.join(path)} --help`"
        )


def test_passphrases_never_on_the_command_line() -> None:
    for doc, line in _all_commands():
        assert "--passphrase " not in line and "--passphrase=" not in line, f"{doc}: `{line}`"


def test_broken_form_gives_the_findings_lab_02_describes() -> None:
    report = lint_form(BROKEN_FORM, profile="ncamig")
    found = {(i.code, i.location.sheet, i.location.row) for i in report.issues}
    assert found == BROKEN_FORM_FINDINGS
    assert sum(i.severity == Severity.ERROR for i in report.issues) == BROKEN_FORM_ERRORS
    assert sum(i.severity == Severity.WARNING for i in report.issues) == BROKEN_FORM_WARNINGS
    assert not report.valid
    lab = (TRAINING / "02-questionnaire-lab.md").read_text(encoding="utf-8")
    for code, _, _ in BROKEN_FORM_FINDINGS:
        assert code in lab, f"lab 02 does not explain {code}"
    assert f"{BROKEN_FORM_ERRORS} error(s), {BROKEN_FORM_WARNINGS} warning(s)" in lab


def test_russian_concepts_cover_every_english_section() -> None:
    english = (TRAINING / "01-concepts.md").read_text(encoding="utf-8")
    russian = (TRAINING / "01-concepts.ru.md").read_text(encoding="utf-8")
    assert english.count("\n## ") == russian.count("\n## ")
    assert english.count("<details>") == russian.count("<details>") >= 8
    assert "10.c.1" in russian and "10.7.1" in russian
