"""Shared test helpers: compiling markdown-table forms, and where the fixtures are (all inside the repository)."""

from __future__ import annotations

import importlib.util
import shutil
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
# Real ODK encrypted submissions (Apache-2.0) and the DDI 2.5 schema (LGPL), copied in with their notices.
ODK_FIXTURES = FIXTURES / "odk"
DDI_SCHEMA = FIXTURES / "schemas" / "ddi-codebook-2.5" / "codebook.xsd"
FORMS_DIR = REPO / "forms"


@pytest.fixture(autouse=True)
def _free_validated_columns_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """Column validation frees a column after its last use only in levels of 50,000 rows and more; the suite's
    data are small, so every test frees from the first row: each column-vs-instance and JavaRosa comparison then
    also checks that nothing is read after it was freed."""
    from toolkit.validate import columns

    monkeypatch.setattr(columns, "FREE_COLUMNS_FROM_ROWS", 0)


def write_md_form(tmp_path: Path, md: str, name: str = "form.md") -> Path:
    """Write a pyxform markdown-table form to a file and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(md).strip() + "\n", encoding="utf-8")
    return path


def build_weights_example(folder: Path) -> dict[str, Path]:
    """The weighting example of examples/weights/ (a DATA folder, design.toml, frame, controls) built in `folder`;
    file names to paths."""
    spec = importlib.util.spec_from_file_location("make_example", REPO / "examples" / "weights" / "make_example.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_example(folder)


def require_tool(name: str, package: str) -> str:
    """Return the path of a command-line tool, failing (not skipping) when it is missing: CI must have it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is required for this test; install the Debian package {package} (make test does).")
    return found


# Modules whose every test runs an independent implementation (R `survey`, JavaRosa on the templates) or the
# whole `migkit run`: the full suite's (`make test`, CI), not the inner loop's (`make test-fast`, under a minute).
_WHOLE_MODULES_SLOW = frozenset(
    {
        "test_pipeline.py",
        "test_template_household.py",
        "test_template_domestic.py",
        "test_template_women.py",
        "test_templates.py",
        "test_estimate_r.py",
        "test_estimate_replicates_r.py",
        "test_estimate_multistage_r.py",
        "test_indicators_r.py",
        "test_validate_links.py",
        "test_weights_design.py",
        "test_export_templates.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in _WHOLE_MODULES_SLOW:
            item.add_marker(pytest.mark.slow)
