"""Every command output quoted in the labs is a transcript that this test re-runs and compares.

The labs are run in order (02, 03, 04) in a scratch home folder laid out as the labs say: `~/migkit` is this
repository and `~/migkit-lab` the participants' folder. A ```bash block followed by a ```text block is one
transcript: the commands run with bash (the working folder carries over from block to block), and their output
(stdout and stderr) must match the text block after normalising what changes from run to run: times, dates,
durations, the scratch path, and random key material. A line of the text block that is only `…` stands for any
number of lines, and `…` inside a line for any text, so that quoted output may be trimmed.

Steps a participant does by hand (editing a copy of the form in a spreadsheet, damaging a file on purpose) are
written in the lab as hidden HTML comments, `<!-- transcript: bash commands -->`, run at that place: the lab shows
the instruction, the test does the same edit.

To re-record after a change that alters outputs: `MIGKIT_RECORD_TRANSCRIPTS=1 pytest tests/test_training_transcripts.py`
rewrites the text blocks with the real output (trim them again with `…` where a table is long).
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

TRAINING = REPO / "training"
LABS = ("02-questionnaire-lab.md", "03-fieldwork-encryption.md", "04-data-processing-lab.md")
RECORD = os.environ.get("MIGKIT_RECORD_TRANSCRIPTS") == "1"
PASSPHRASE = "a workshop passphrase\n"

_BLOCK = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[a-z]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
_HIDDEN = re.compile(r"<!--\s*transcript:\s*(?P<body>.*?)-->", re.S)


@dataclass
class Step:
    kind: str  # "run" (a bash block), "hidden" (a hand edit done by the test), "expect" (a text block)
    body: str
    indent: str
    start: int  # offsets in the lab's text, to rewrite an expected block when recording
    end: int
    line: int


def _steps(text: str) -> list[Step]:
    found = [
        Step("hidden", m.group("body"), "", m.start(), m.end(), text.count("\n", 0, m.start()) + 1)
        for m in _HIDDEN.finditer(text)
    ]
    for m in _BLOCK.finditer(text):
        kind = {"bash": "run", "text": "expect"}.get(m.group("lang"))
        if kind:
            body = "\n".join(line.removeprefix(m.group("indent")) for line in m.group("body").splitlines())
            indent = m.group("indent")
            found.append(Step(kind, body, indent, m.start("body"), m.end("body"), text.count("\n", 0, m.start()) + 1))
    return sorted(found, key=lambda s: s.start)


def _normalise(text: str, home: Path) -> list[str]:
    text = text.replace(str(home), "~")
    rules = [
        (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( ?UTC|Z|[+-]\d{2}:\d{2})?", "<time>"),
        (r"\b\d+(\.\d+)? ?(s|seconds|ms)\b", "<duration>"),
        (r"\b[A-Z][a-z]{2} +\d{1,2} +\d{2}:\d{2}\b", "<time>"),  # ls -l
        # ls -l sizes: an encrypted private key's size varies by a few bytes with its random salt
        (r"(?m)^([-dl][-rwxsStT]{9} +\d+ +\S+ +\S+) +\d+", r"\1 <size>"),
        (r"[A-Za-z0-9+/]{60,}={0,2}", "<base64>"),
        (r"uuid:[0-9a-f-]{36}", "uuid:<id>"),
    ]
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text)
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def _matches(expected: list[str], actual: list[str]) -> bool:
    pattern = []
    for line in expected:
        if line.strip() == "…":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = [re.escape(piece) for piece in line.split("…")]
            pattern.append("[^\n]*?".join(pieces) + r"\n")
    return re.fullmatch("".join(pattern), "".join(line + "\n" for line in actual)) is not None


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    (home / "migkit").symlink_to(REPO)
    (home / "migkit-lab").mkdir()
    return home


def _run(script: str, cwd: Path, home: Path) -> tuple[str, Path]:
    marker = home / ".cwd"
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "COLUMNS": "140",  # the width the labs are printed at (the weights diagnostics need it)
        "TERM": "dumb",
        "NO_COLOR": "1",
        "PYTHONUNBUFFERED": "1",  # stdout and stderr in the order they were written, as on a terminal
    }
    env.pop("MIGKIT_PASSPHRASE", None)
    done = subprocess.run(
        ["bash", "-c", f'{script}\necho "$PWD" > {marker}'],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
        input=PASSPHRASE,  # what a participant types at a prompt (`read -rs -p "Passphrase: "`)
    )
    return done.stdout, Path(marker.read_text().strip()) if marker.exists() else cwd


@pytest.mark.slow
def test_lab_transcripts(home: Path) -> None:
    cwd = home / "migkit-lab"
    failures = []
    for lab in LABS:
        path = TRAINING / lab
        text = path.read_text(encoding="utf-8")
        replacements: list[tuple[int, int, str]] = []
        last_output: str | None = None
        for step in _steps(text):
            if step.kind in {"run", "hidden"}:
                script = step.body.replace("source .venv/bin/activate", ":")
                last_output, cwd = _run(script, cwd, home)
            elif step.kind == "expect" and last_output is not None:
                actual = _normalise(last_output, home)
                expected = _normalise(step.body, home)
                if not _matches(expected, actual):
                    diff = difflib.unified_diff(expected, actual, "quoted", "real", lineterm="", n=1)
                    failures.append(f"{lab}:{step.line}:\n" + "\n".join(list(diff)[:80]))
                    if RECORD:
                        shown = last_output.replace(str(home), "~").rstrip("\n").splitlines()
                        replacements.append((step.start, step.end, "\n".join(step.indent + x for x in shown)))
                last_output = None
        if RECORD and replacements:
            for start, end, new in sorted(replacements, reverse=True):
                text = text[:start] + new.rstrip("\n") + "\n" + text[end:]
            path.write_text(text, encoding="utf-8")
    assert not failures, "quoted output differs from the real output:\n\n" + "\n\n".join(failures)


def _blocks(text: str) -> list[tuple[int, int, str]]:
    """(start, end, text) of every code block and hidden transcript step, in order."""
    spans = [(m.start(), m.end(), m.group(0)) for m in _BLOCK.finditer(text)]
    spans += [(m.start(), m.end(), m.group(0)) for m in _HIDDEN.finditer(text)]
    return sorted(spans)


@pytest.mark.parametrize("lab", LABS)
def test_russian_lab_has_the_same_commands_and_outputs(lab: str) -> None:
    """The Russian labs translate the prose only: their code blocks and hidden steps are the English ones, so the
    transcript test covers both. Recording (MIGKIT_RECORD_TRANSCRIPTS=1) copies the English blocks over."""
    english = (TRAINING / lab).read_text(encoding="utf-8")
    russian_path = TRAINING / lab.replace(".md", ".ru.md")
    russian = russian_path.read_text(encoding="utf-8")
    theirs, ours = _blocks(english), _blocks(russian)
    if RECORD and len(theirs) == len(ours):
        for (start, end, _), (_, _, block) in sorted(zip(ours, theirs, strict=True), reverse=True):
            russian = russian[:start] + block + russian[end:]
        russian_path.write_text(russian, encoding="utf-8")
        ours = _blocks(russian)
    assert [b for _, _, b in ours] == [b for _, _, b in theirs]


@pytest.mark.parametrize(
    ("quoted", "real", "same"),
    [
        ("20 submissions checked in 0.3 s", "20 submissions checked in 1.41 s", True),  # durations vary
        ("20 submissions checked in 0.3 s", "21 submissions checked in 0.3 s", False),  # an edited count fails
        ("a\n…\nd", "a\nb\nc\nd", True),  # a trimmed table
        ("│ x … │", "│ x long text │", True),
        ("│ x … │", "│ y long text │", False),
        (
            "wrote keys/private.pem on 2026-11-27 22:39:01 UTC",
            "wrote keys/private.pem on 2026-12-07 19:20:00 UTC",
            True,
        ),
        (
            "-rw------- 1 root root 1886 Nov 27 22:39 private.pem",
            "-rw------- 1 root root 1866 Dec  7 19:20 private.pem",
            True,
        ),
        (
            "-rw------- 1 root root 1886 Nov 27 22:39 private.pem",
            "-rw-r--r-- 1 root root 1886 Nov 27 22:39 private.pem",
            False,
        ),
    ],
)
def test_quoted_output_comparison(quoted: str, real: str, same: bool, tmp_path: Path) -> None:
    assert _matches(_normalise(quoted, tmp_path), _normalise(real, tmp_path)) is same
