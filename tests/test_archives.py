"""`toolkit.archives.SafeZip`, the one reader of zips from outside: member names that escape, links and special files
are refused; a zip bomb (by ratio, by total, or by a header that lies about sizes) is stopped while it streams."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.archives import RATIO_FLOOR_BYTES, ArchiveRefused, SafeZip, member_problem


def member(name: str, mode: int = 0) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


@pytest.mark.parametrize(
    ("name", "mode", "refused"),
    [
        ("instances/a/submission.xml", stat.S_IFREG | 0o644, False),
        ("media/photo 1.jpg", 0, False),
        ("instances/", stat.S_IFDIR | 0o755, False),
        ("../escape.xml", 0, True),
        ("a/../../escape.xml", 0, True),
        ("..\\windows.xml", 0, True),
        ("/etc/cron.d/x", 0, True),
        ("\\\\server\\share.xml", 0, True),
        ("C:/drive.xml", 0, True),
        ("c:drive.xml", 0, True),
        ("", 0, True),
        ("link.xml", stat.S_IFLNK | 0o777, True),
        ("fifo", stat.S_IFIFO | 0o644, True),
        ("device", stat.S_IFCHR | 0o644, True),
    ],
)
def test_member_names_and_kinds(name: str, mode: int, refused: bool) -> None:
    assert bool(member_problem(member(name, mode))) is refused


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "..", ".", "", "b.xml", "C:", "\\", "/"]), min_size=1, max_size=6))
def test_an_accepted_name_never_leaves_the_folder(parts: list[str]) -> None:
    name = "/".join(parts)
    if not member_problem(member(name)):
        root = Path("/extract")
        assert (root / name.replace("\\", "/")).resolve().is_relative_to(root.resolve())


def test_refused_members_are_listed_and_the_rest_extracted(tmp_path: Path) -> None:
    archive = tmp_path / "pull.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("instances/a/submission.xml", "<data/>")
        zf.writestr("../escape.xml", "x")
        zf.writestr(member("instances/link.xml", stat.S_IFLNK | 0o777), "/etc/passwd")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("instances/a/submission.xml", "<other/>")  # listed twice
    target = tmp_path / "out"
    target.mkdir()
    with SafeZip(archive) as pulled:
        assert sorted(r.name for r in pulled.refused) == [
            "../escape.xml",
            "instances/a/submission.xml",
            "instances/link.xml",
        ]
        assert pulled.extract(target) == []
    assert (target / "instances" / "a" / "submission.xml").read_text() == "<data/>"
    assert not (tmp_path / "escape.xml").exists()
    assert not (target / "instances" / "link.xml").exists()


def _bomb(path: Path, size: int) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("instances/big.xml", b"\0" * size)


def test_a_member_expanding_past_the_ratio_is_refused_before_writing(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    _bomb(archive, 4 * RATIO_FLOOR_BYTES)  # deflates ~1000x
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ArchiveRefused) as refused, SafeZip(archive) as pulled:
        pulled.extract(target)
    assert refused.value.reason == "too_large" and "zip bomb" in refused.value.message
    assert not any(p.is_file() for p in target.rglob("*"))


def _lie_about_size(archive: Path, declared: int) -> None:
    """Rewrite the uncompressed size in the local and central headers (a crafted bomb that passes the ratio check)."""
    data = bytearray(archive.read_bytes())
    local = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, local + 22, declared)
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, declared)
    archive.write_bytes(bytes(data))


def test_a_member_larger_than_its_header_says_is_stopped_while_streaming(tmp_path: Path) -> None:
    archive = tmp_path / "liar.zip"
    _bomb(archive, 3 * RATIO_FLOOR_BYTES)
    _lie_about_size(archive, 1000)
    target = tmp_path / "out"
    target.mkdir()
    with SafeZip(archive) as pulled, pytest.raises(ArchiveRefused):
        pulled.extract(target)
    written = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    assert written <= 1000


def test_the_total_cap_counts_every_member(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(5):
            zf.writestr(f"m{n}.xml", b"x" * 1000)
    with pytest.raises(ArchiveRefused, match="unpack"):
        SafeZip(archive, max_total_bytes=3000)
    with SafeZip(archive, max_total_bytes=5000) as pulled:
        assert [len(pulled.read(info, 1000)) for info in pulled.members] == [1000] * 5
        with pytest.raises(ArchiveRefused):
            pulled.read(pulled.members[0], 10)


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_damaged_or_truncated_zips_are_unreadable(tmp_path: Path, cut: int) -> None:
    archive = tmp_path / "cut.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("instances/a.xml", bytes(range(256)) * 40)
    data = archive.read_bytes()
    archive.write_bytes(data[:cut] if cut > 0 else data[:cut] + b"\0" * 30)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ArchiveRefused) as refused, SafeZip(archive) as pulled:  # opening or reading may fail
        pulled.extract(target)
    assert refused.value.reason == "unreadable"
