"""toolkit.files: the one atomic writer every stage writes its outputs through."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import write_md_form
from toolkit.cli import app
from toolkit.files import (
    NotRegularFile,
    make_private_folder,
    read_regular_file,
    write_atomic,
    write_bytes_atomic,
    write_text_atomic,
)

# Each helper as (target, text, **options) -> None, and the bytes it should leave on disk for that text.
Helper = Callable[..., None]
HELPERS: dict[str, Helper] = {
    "write_atomic": lambda target, text, **kw: write_atomic(
        target, lambda p: p.write_bytes(text.encode("utf-8")), **kw
    ),
    "write_text_atomic": write_text_atomic,
    "write_bytes_atomic": lambda target, text, **kw: write_bytes_atomic(target, text.encode("utf-8"), **kw),
}
# Newlines kept as given, Cyrillic as UTF-8, a BOM when the caller puts one first.
TEXTS = ["", "a,b\r\n1,2\n", "\ufeffимя;возраст\nАнна;34\n"]


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """os.umask, with the test process's umask restored afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("helper", HELPERS)
def test_content_written_and_folder_created(tmp_path: Path, helper: str, text: str) -> None:
    target = tmp_path / "out" / "deeper" / "findings.csv"
    HELPERS[helper](target, text)
    assert target.read_bytes() == text.encode("utf-8")
    assert _listing(target.parent) == ["findings.csv"]  # no temporary file left


@pytest.mark.parametrize("helper", HELPERS)
def test_existing_target_replaced_by_rename(tmp_path: Path, helper: str) -> None:
    target = tmp_path / "report.html"
    target.write_text("old", encoding="utf-8")
    inode = target.stat().st_ino
    with target.open(encoding="utf-8") as reader:  # a reader that opened the old file keeps reading all of it
        HELPERS[helper](target, "new")
        assert reader.read() == "old"
    assert target.read_text(encoding="utf-8") == "new"
    assert target.stat().st_ino != inode  # renamed into place, not rewritten in place
    assert _listing(tmp_path) == ["report.html"]


def _partial_then(exc: BaseException) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text("half", encoding="utf-8")
        raise exc

    return write


FAILURES: list[tuple[str, Callable[[Path], None], type[BaseException]]] = [
    ("writer raises", lambda t: write_atomic(t, _partial_then(RuntimeError("disk full"))), RuntimeError),
    ("interrupted", lambda t: write_atomic(t, _partial_then(KeyboardInterrupt())), KeyboardInterrupt),
    ("shared, writer raises", lambda t: write_atomic(t, _partial_then(OSError()), shared=True), OSError),
    ("text not encodable", lambda t: write_text_atomic(t, "half \ud800"), UnicodeEncodeError),
    ("bytes not bytes", lambda t: write_bytes_atomic(t, "text", shared=True), TypeError),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("call", "raised"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
@pytest.mark.parametrize("existing", [True, False], ids=["target exists", "no target"])
def test_failure_removes_temporary_and_keeps_target(
    tmp_path: Path, call: Callable[[Path], None], raised: type[BaseException], existing: bool
) -> None:
    target = tmp_path / "weights.sav"
    if existing:
        target.write_bytes(b"previous run")
    with pytest.raises(raised):
        call(target)
    assert _listing(tmp_path) == (["weights.sav"] if existing else [])
    if existing:
        assert target.read_bytes() == b"previous run"


@pytest.mark.parametrize("helper", HELPERS)
def test_failed_rename_removes_temporary(tmp_path: Path, helper: str) -> None:
    target = tmp_path / "media"
    target.mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        HELPERS[helper](target, "photo")
    assert _listing(tmp_path) == ["media"]
    assert _listing(target) == []


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("helper", HELPERS)
def test_permissions(tmp_path: Path, umask: Callable[[int], int], helper: str, shared: bool, mask: int) -> None:
    umask(mask)
    target = tmp_path / "out.xml"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o644)  # the old file's mode is not carried over
    HELPERS[helper](target, "<data/>", shared=shared)
    assert target.stat().st_mode & 0o777 == (0o666 & ~mask if shared else 0o600)


def test_temporary_name_is_hidden_beside_the_target(tmp_path: Path) -> None:
    seen: list[Path] = []

    def write(path: Path) -> None:
        seen.append(path)
        path.write_bytes(b"x")

    target = tmp_path / "hh.sav"
    write_atomic(target, write)
    (temporary,) = seen
    assert temporary.parent == target.parent  # same folder, so the rename is atomic
    assert temporary.name.startswith(".hh.sav.")  # hidden while it is incomplete
    assert target.read_bytes() == b"x"


def _sav(frame: pd.DataFrame, path: Path) -> None:
    import pyreadstat

    pyreadstat.write_sav(frame, str(path))


def _dta(frame: pd.DataFrame, path: Path) -> None:
    import pyreadstat

    pyreadstat.write_dta(frame, str(path), version=14)


def _read_stat(path: Path) -> pd.DataFrame:
    import pyreadstat

    return (pyreadstat.read_sav if path.suffix == ".sav" else pyreadstat.read_dta)(str(path))[0]


# The stages' writers, given the temporary name (which does not end in the target's extension).
WRITERS: list[tuple[str, Callable[[pd.DataFrame, Path], None], Callable[[Path], pd.DataFrame]]] = [
    ("hh.sav", _sav, _read_stat),
    ("hh.dta", _dta, _read_stat),
    ("hh.csv", lambda f, p: f.to_csv(p, index=False, encoding="utf-8-sig"), pd.read_csv),
    ("hh.parquet", lambda f, p: f.to_parquet(p, index=False), pd.read_parquet),
    ("hh.xlsx", lambda f, p: f.to_excel(p, index=False), pd.read_excel),
]


@pytest.mark.parametrize(("name", "writer", "reader"), WRITERS, ids=[w[0] for w in WRITERS])
def test_writers_do_not_need_the_extension(
    tmp_path: Path,
    name: str,
    writer: Callable[[pd.DataFrame, Path], None],
    reader: Callable[[Path], pd.DataFrame],
) -> None:
    frame = pd.DataFrame({"name": ["Анна", "Олег"], "age": [34.0, 51.0]})
    target = tmp_path / name
    write_atomic(target, lambda p: writer(frame, p))
    assert reader(target).to_dict("records") == frame.to_dict("records")
    assert _listing(tmp_path) == [name]


FORM = """
| survey |
| | type | name | label | constraint |
| | text | name | Name | |
| | integer | age | Age | . >= 0 and . <= 110 |
| | select_one yn | consent | Consent | |
| choices |
| | list_name | name | label |
| | yn | 1 | Yes |
| | yn | 2 | No |
"""


def test_stage_outputs_holding_answers_stay_private(tmp_path: Path, umask: Callable[[int], int]) -> None:
    """Submissions, attachments, ingested and exported tables and findings are 0600 whatever the umask, and no temporary
    file is left beside them."""
    from toolkit.export import export_tables
    from toolkit.ingest import ingest, write_tables
    from toolkit.simulate import simulate
    from toolkit.xform import load_form

    umask(0o002)
    form_path = write_md_form(tmp_path, FORM)
    form = load_form(form_path)
    submissions = tmp_path / "submissions"
    simulate(form, 3, submissions, workers=1)
    (next(submissions.iterdir()) / "1561432532482.jpg").write_bytes(b"\xff\xd8jpeg")
    result = ingest([submissions], form, attachments_dir=tmp_path / "media")
    write_tables(result, tmp_path / "data", csv=True)
    export_tables(result, form, out_dir=tmp_path / "export")
    findings, report = tmp_path / "findings" / "findings.csv", tmp_path / "findings" / "report.html"
    run = CliRunner().invoke(
        app, ["validate", str(submissions), "--form", str(form_path), "--csv", str(findings), "--report", str(report)]
    )
    assert run.exit_code in (0, 1), run.output
    assert findings.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM, so that Excel shows Cyrillic

    written = {
        "submissions": sorted(submissions.glob("*/submission.xml")),
        "media": sorted((tmp_path / "media").iterdir()),
        "tables": sorted((tmp_path / "data").iterdir()),
        "export": sorted((tmp_path / "export").iterdir()),
        "findings": sorted(findings.parent.iterdir()),
    }
    assert [len(written["submissions"]), [p.name for p in written["media"]]] == [3, ["1561432532482.jpg"]]
    assert {p.suffix for p in written["export"]} >= {".sav", ".dta", ".csv", ".sps", ".do"}
    modes = {stage: {p.name: oct(p.stat().st_mode & 0o777) for p in paths} for stage, paths in written.items()}
    assert modes == {stage: {p.name: "0o600" for p in paths} for stage, paths in written.items()}


def test_a_target_name_near_the_file_name_limit_still_gets_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / ("д" * 120 + ".csv")  # 244 bytes: the name itself is allowed
    write_text_atomic(target, "x")
    assert target.read_text(encoding="utf-8") == "x" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_read_regular_file_never_follows_a_link(tmp_path: Path) -> None:
    secret = tmp_path / "private.pem"
    secret.write_bytes(b"-----BEGIN PRIVATE KEY-----")
    (tmp_path / "photo.jpg").symlink_to(secret)
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "big.xml").write_bytes(b"x" * 100)
    assert read_regular_file(secret) == b"-----BEGIN PRIVATE KEY-----"
    for name, why in [("photo.jpg", "symbolic link"), ("folder", "not a regular file"), ("pipe", "not a regular file")]:
        with pytest.raises(NotRegularFile, match=why):
            read_regular_file(tmp_path / name)
    with pytest.raises(NotRegularFile, match="limit 10"):
        read_regular_file(tmp_path / "big.xml", max_bytes=10)
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing.xml")


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_private_folders_are_0700_whatever_the_umask(tmp_path: Path, umask: Callable[[int], int], mask: int) -> None:
    umask(mask)
    make_private_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
    (tmp_path / "shared").mkdir(mode=0o755)
    make_private_folder(tmp_path / "shared")  # an existing folder keeps its permissions
    assert (tmp_path / "shared").stat().st_mode & 0o777 == 0o755 & ~mask
