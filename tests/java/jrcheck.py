"""Run JavaRosa itself (from pyxform's ODK_Validate.jar) on forms and instances: the reference for validate.

The driver JrCheck.java next to this module is compiled once per checkout into a cache folder (keyed by the
source and the jar), then run with `java`. Used by tests/test_validate_javarosa.py and bench/validate.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.forms import ODK_VALIDATE_JAR

DRIVER_SOURCE = Path(__file__).resolve().parent / "JrCheck.java"


class JavaMissing(RuntimeError):
    """java or javac is not installed."""


@dataclass(frozen=True)
class JrNode:
    path: str
    relevant: bool
    required: bool
    constraint: str  # "1" ok, "0" violated, "-" none or empty answer, "E" evaluation error
    value: str
    choices: str = "-"  # a select with an itemset: "1" the answer is among the filtered choices, "0" not, "E" error


def driver_classpath() -> str:
    """Compile the driver if needed and return the class path (jar + compiled classes)."""
    javac = shutil.which("javac")
    if javac is None or shutil.which("java") is None:
        raise JavaMissing("java and javac (Debian openjdk-17-jdk-headless) are needed to run JavaRosa")
    key = hashlib.sha256(
        DRIVER_SOURCE.read_bytes() + str(ODK_VALIDATE_JAR.stat().st_size).encode()
    ).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"migkit-jrcheck-{os.getuid()}-{key}"
    if not (out / "JrCheck.class").is_file():
        build = Path(tempfile.mkdtemp(prefix="jrcheck-build-"))
        subprocess.run(
            [javac, "-cp", str(ODK_VALIDATE_JAR), "-d", str(build), str(DRIVER_SOURCE)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        try:
            build.rename(out)
        except OSError:
            shutil.rmtree(build, ignore_errors=True)  # another process won the race
    return f"{ODK_VALIDATE_JAR}{os.pathsep}{out}"


def _java(args: list[str], timeout: int, media: Path | None = None) -> str:
    cmd = [
        "java",
        "-Duser.timezone=UTC",
        "-Djava.awt.headless=true",
        f"-Dmedia={media or '.'}",
        "-cp",
        driver_classpath(),
        "JrCheck",
        *args,
    ]
    done = subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
    return done.stdout.decode("utf-8")


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").replace("\\\\", "\\")


def javarosa_check(
    form_xml: Path, instances: list[Path], *, media: Path | None = None, timeout: int = 600
) -> dict[str, list[JrNode] | str]:
    """Per instance file: JavaRosa's per-node verdicts, or the error text when JavaRosa fails on it.

    `media` is the folder of CSV attachments for pulldata() (the driver implements Collect's pulldata).
    """
    result: dict[str, list[JrNode] | str] = {}
    current: list[JrNode] | None = None
    name = ""
    for line in _java(["check", str(form_xml), *map(str, instances)], timeout, media).splitlines():
        if line.startswith("#INSTANCE\t"):
            name = line.split("\t", 1)[1]
            current = []
            result[name] = current
        elif line.startswith("#ERROR\t"):
            result[name] = _unescape(line.split("\t", 1)[1])
            current = None
        elif current is not None and line:
            path, rel, req, cons, value, choices = [*line.split("\t"), "", "-"][:6]
            current.append(JrNode(path, rel == "1", req == "1", cons, _unescape(value), choices or "-"))
    return result


def javarosa_throughput(
    form_xml: Path, instances: list[Path], *, rounds: int = 1, media: Path | None = None, timeout: int = 3600
) -> float:
    """JavaRosa's instances/s loading and checking the instances (JVM start and form parse excluded)."""
    out = _java(["bench", str(form_xml), str(rounds), *map(str, instances)], timeout, media)
    stats = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return float(stats["instances_per_second"])
