"""Writing simulated instances: plain `<uuid>/submission.xml` folders or Collect-style encrypted ones, in a
process pool for large runs."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from toolkit.crypto import encrypt_submission
from toolkit.errors import INPUT_UNREADABLE, OUTPUT_UNWRITABLE, Issue, ToolkitError, define, error, warning
from toolkit.files import write_bytes_atomic
from toolkit.simulate.answers import AnswerRule
from toolkit.simulate.faults import PlantedFault, key_rows
from toolkit.simulate.generator import MAX_INSTANCE_ATTEMPTS, Generator, media_folder
from toolkit.xform import FormModel, parse_xform

CONSTRAINT_UNMET = define(
    "simulate.constraint_unmet", "No value satisfying a constraint was found by sampling"
)
EXPRESSION_FAILED = define(
    "simulate.expression_failed", "An expression could not be evaluated while simulating"
)
UNFINALISABLE = define(
    "simulate.unfinalisable", "No draw gave an interview ODK Collect could finalise (hard stop, empty required)"
)
POOL_MIN_INSTANCES = 400
_CHUNK = 100



@dataclass(frozen=True)
class SimulateResult:
    """What `simulate` wrote: one folder per instance under `out_dir`.

    `instance_ids` are in generation order; `stats` counts instances, repeat rows, instances drawn again
    (not finalisable at first), planted faults and seconds; `planted` is the answer key of `errors`, written
    to `errors_key`.
    """

    form_id: str
    out_dir: Path
    instance_ids: tuple[str, ...]
    encrypted: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    issues: tuple[Issue, ...] = ()
    planted: tuple[PlantedFault, ...] = ()
    errors_key: Path | None = None



# ------------------------------------------------------------------------------------------------------------
# Writing


_WORKER: dict[str, Any] = {}


@dataclass
class _Chunk:
    """What one worker made of a run of instances."""

    ids: list[str] = field(default_factory=list)
    rows: int = 0
    problems: dict[tuple[str, str], str] = field(default_factory=dict)
    unmet: dict[str, int] = field(default_factory=dict)
    unfinalisable: dict[str, int] = field(default_factory=dict)
    redrawn: int = 0
    planted: list[PlantedFault] = field(default_factory=list)

    def add(self, other: _Chunk) -> None:
        self.ids.extend(other.ids)
        self.rows += other.rows
        self.problems.update(other.problems)
        for mine, theirs in ((self.unmet, other.unmet), (self.unfinalisable, other.unfinalisable)):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.redrawn += other.redrawn
        self.planted.extend(other.planted)


def _init_worker(  # noqa: PLR0917 (the pool passes initargs by position)
    xform: str,
    out_dir: str,
    public_pem: bytes | None,
    media_dir: str | None = None,
    answers: Mapping[str, AnswerRule] | None = None,
    errors: float = 0.0,
) -> None:
    generator = Generator(parse_xform(xform), Path(media_dir) if media_dir else None, answers)
    # A duplicate is a second encrypted copy that `migkit decrypt` would set aside; only plain output has them.
    generator.allow_duplicates = public_pem is None
    _WORKER["generator"] = generator
    _WORKER["out_dir"] = Path(out_dir)
    _WORKER["public_key"] = _load_public(public_pem) if public_pem else None
    _WORKER["errors"] = errors


def _load_public(pem: bytes) -> Any:
    return serialization.load_pem_public_key(pem)


def _run_chunk(task: tuple[int, int, int]) -> _Chunk:
    start, count, seed = task
    generator: Generator = _WORKER["generator"]
    out_dir: Path = _WORKER["out_dir"]
    public_key = _WORKER["public_key"]
    generator.problems.clear()
    generator.unmet.clear()
    generator.unfinalisable.clear()
    generator.redrawn = 0
    chunk = _Chunk()
    for index in range(start, start + count):
        instance_id, xml, repeat_rows = generator.instance(index, seed, errors=_WORKER["errors"])
        folder = out_dir / instance_id.removeprefix("uuid:")
        if public_key is None:
            write_bytes_atomic(folder / "submission.xml", xml)
            if generator.duplicate:
                write_bytes_atomic(folder.with_name(f"{folder.name}-copy") / "submission.xml", xml)
        else:
            encrypt_submission(
                xml,
                public_key=public_key,
                form_id=generator.form.form_id,
                instance_id=instance_id,
                out_dir=folder,
                version=generator.form.version,
            )
        chunk.ids.append(instance_id)
        chunk.rows += repeat_rows
        chunk.planted.extend(generator.planted)
    chunk.problems = dict(generator.problems)
    chunk.unmet = dict(generator.unmet)
    chunk.unfinalisable = dict(generator.unfinalisable)
    chunk.redrawn = generator.redrawn
    return chunk


def errors_key_path(out_dir: Path) -> Path:
    """Where the answer key of planted faults goes by default: `<out>-errors.csv` beside the folder (a CSV
    inside it would make the folder read as an ODK Central export)."""
    out_dir = Path(out_dir)
    return out_dir.with_name(f"{out_dir.name}-errors.csv")


def _write_key(path: Path, planted: Sequence[PlantedFault]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["instance_id", "path", "code"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(key_rows(planted))
    try:
        write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))
    except OSError as exc:
        raise ToolkitError(error(OUTPUT_UNWRITABLE, f"Cannot write the answer key: {exc}.", file=str(path))) from None


def simulate(
    form: FormModel,
    n: int,
    out_dir: Path,
    *,
    seed: int = 0,
    encrypt_with: Path | None = None,
    media_dir: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    answers: Mapping[str, AnswerRule] | None = None,
    errors: float = 0.0,
    errors_key: Path | None = None,
) -> SimulateResult:
    """Write `n` synthetic submissions of `form` into `out_dir` (one `<uuid>/submission.xml` folder each).

    Parameters:
        form: the form model.
        n: number of instances.
        out_dir: the folder to write into (created when missing).
        seed: makes the run reproducible.
        encrypt_with: a PEM public key; instances are then written encrypted, as Collect does.
        media_dir: the form's attachments (CSV files for pulldata()); default `<form>-media/` next to the
            form file when it exists, else the form's own folder.
        workers: generator processes; default one per core, used from POOL_MIN_INSTANCES instances on.
        progress: called as `progress(done, n)`.
        answers: how often answers are given, by question name (see `load_answers`); others keep the
            default draws.
        errors: the share of submissions (0-1) given one planted fault (see `toolkit.simulate.faults`); the
            clean answers are the same as without errors.
        errors_key: where the answer key CSV (instance_id, path, code) goes; default `<out>-errors.csv`.
    """
    if not 0.0 <= errors <= 1.0:
        raise ValueError(f"errors is a share of submissions between 0 and 1, not {errors}")
    started = time.perf_counter()
    public_pem = None
    if encrypt_with is not None:
        try:
            public_pem = Path(encrypt_with).read_bytes()
            _load_public(public_pem)
        except (OSError, ValueError) as exc:
            raise ToolkitError(
                error(
                    INPUT_UNREADABLE,
                    f"Cannot read the public key: {exc}. Give the PEM public key of the form.",
                    file=str(encrypt_with),
                )
            ) from None
    if media_dir is None:
        media_dir = media_folder(form)
    media = str(media_dir) if media_dir is not None else None
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ToolkitError(
            error(OUTPUT_UNWRITABLE, f"Cannot create the folder: {exc}.", file=str(out_dir))
        ) from None
    tasks = [(start, min(_CHUNK, n - start), seed) for start in range(0, n, _CHUNK)]
    workers = workers or os.cpu_count() or 1
    total = _Chunk()

    def collect(chunk: _Chunk) -> None:
        total.add(chunk)
        if progress is not None:
            progress(len(total.ids), n)

    initargs = (form.xform, str(out_dir), public_pem, media, answers, errors)
    if workers <= 1 or n < POOL_MIN_INSTANCES:
        _init_worker(*initargs)
        for task in tasks:
            collect(_run_chunk(task))
    else:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, initializer=_init_worker, initargs=initargs
        ) as pool:
            for chunk in pool.map(_run_chunk, tasks):
                collect(chunk)
    key = None
    if errors > 0:
        key = Path(errors_key) if errors_key is not None else errors_key_path(Path(out_dir))
        _write_key(key, total.planted)
    issues: list[Issue] = [
        warning(
            EXPRESSION_FAILED,
            f"Evaluating {expression!r} failed ({message}); the node was treated as "
            "relevant/valid or left empty.",
            path=path,
            expression=expression,
        )
        for (path, expression), message in sorted(total.problems.items())
    ]
    issues += [
        warning(
            CONSTRAINT_UNMET,
            f"In {count} instance(s) no drawn value met the constraint; left empty.",
            path=path,
        )
        for path, count in sorted(total.unmet.items())
    ]
    issues += [
        warning(
            UNFINALISABLE,
            f"In {count} instance(s) no draw in {MAX_INSTANCE_ATTEMPTS} gave an interview Collect could finalise; "
            f"the last draw was kept ({reason.split()[0]}). Check the skip logic or the answers file.",
            path=reason.split()[-1],
        )
        for reason, count in sorted(total.unfinalisable.items())
    ]
    seconds = time.perf_counter() - started
    return SimulateResult(
        form_id=form.form_id,
        out_dir=Path(out_dir),
        instance_ids=tuple(total.ids),
        encrypted=encrypt_with is not None,
        stats={
            "instances": len(total.ids),
            "repeat_rows": total.rows,
            "redrawn": total.redrawn,
            "planted": len(total.planted),
            "seconds": round(seconds, 3),
            "instances_per_second": round(len(total.ids) / seconds, 1) if seconds else None,
        },
        issues=tuple(issues),
        planted=tuple(total.planted),
        errors_key=key,
    )
