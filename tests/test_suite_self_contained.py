"""The suite reads nothing outside the repository: a plain clone (no `../shared` beside it) must pass `make test`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import DDI_SCHEMA, ODK_FIXTURES, REPO

TESTS = REPO / "tests"
OUTSIDE = re.compile(
    "|".join(
        (
            re.escape("../shared"),
            re.escape("REPO.parent"),
            r"parent\s*/\s*['\"]shared['\"]",  # ....parent / "shared"
            r"parents\[[2-9]\]",  # from tests/x.py, parents[2] is above the repository
            re.escape(".parent" * 3),  # three levels up from tests/x.py is above the repository
            r"['\"]/work/",  # the build machine's folders
        )
    )
)


def _test_sources() -> list[Path]:
    """Every test module and conftest but this one (which names the patterns)."""
    here = Path(__file__).resolve()
    return sorted(
        p for p in TESTS.rglob("*.py") if "fixtures" not in p.relative_to(TESTS).parts and p.resolve() != here
    )


@pytest.mark.parametrize("path", _test_sources(), ids=lambda p: p.relative_to(TESTS).as_posix())
def test_no_test_module_reads_outside_the_repository(path: Path) -> None:
    hits = [
        f"line {n}: {line.strip()}"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, f"{path.name} refers outside the repository; copy the file into tests/fixtures/: {hits}"


def test_the_pattern_catches_what_it_is_for() -> None:
    caught = [
        'SHARED = REPO.parent / "shared"',
        'x = Path("../shared/fixtures")',
        'Path(__file__).parent.parent.parent / "shared" / "odk"',
        'Path(__file__).resolve().parents[2] / "shared"',
        'Path("/work/shared/specs")',
    ]
    assert all(OUTSIDE.search(line) for line in caught)
    for fine in ('write_atomic(t, data, shared=True)', '(tmp_path / "shared").mkdir()', 'REPO / "tests" / "fixtures"'):
        assert not OUTSIDE.search(fine)


@pytest.mark.parametrize(
    ("fixture", "notice"),
    [
        (ODK_FIXTURES / "central" / "priv.pem", ODK_FIXTURES / "LICENSE-Apache-2.0.txt"),
        (DDI_SCHEMA, DDI_SCHEMA.parent / "LICENSE.txt"),
    ],
    ids=["odk", "ddi-2.5"],
)
def test_copied_fixtures_are_in_the_repository_with_their_licence(fixture: Path, notice: Path) -> None:
    assert fixture.is_file() and fixture.resolve().is_relative_to(REPO)
    assert notice.is_file()
