"""`migkit forms build`: pyxform compile, ODK Validate verdicts, outputs and bad input."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import require_tool, write_md_form
from toolkit import forms, xlsform
from toolkit.cli import app

runner = CliRunner()

GOOD = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) |
| | select_one yn | consent | Consent? | Согласие? |
| | integer | age | Age | Возраст |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) |
| | yn | 1 | Yes | Да |
| | yn | 2 | No | Нет |
| settings |
| | form_id | version | default_language |
| | t_good | 2026112701 | English (en) |
"""

MISSING_TRANSLATION = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | hint::English (en) |
| | integer | age | Age | Возраст | completed years |
| settings |
| | form_id |
| | t_warn |
"""

UNBALANCED_GROUP = """
| survey |
| | type | name | label |
| | begin_group | g | G |
| | integer | age | Age |
"""

# Compiles with pyxform but JavaRosa cannot evaluate the unknown function.
BAD_FOR_JAVAROSA = """
| survey |
| | type | name | label | calculation |
| | integer | age | Age | |
| | calculate | c | | foo(${age}) |
| settings |
| | form_id |
| | t_bad |
"""


def test_compile_and_validate_writes_xform(tmp_path: Path) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    src = write_md_form(tmp_path, GOOD)
    result = forms.build_forms([src], out_dir=tmp_path / "out")
    (form,) = result.forms
    assert form.ok and form.validated is True
    assert form.form_id == "t_good" and form.version == "2026112701"
    assert (tmp_path / "out" / "t_good.xml").read_text(encoding="utf-8").startswith("<?xml")
    assert form.pyxform_version == result.pyxform_version


def test_pyxform_warning_is_warning_or_error_with_strict(tmp_path: Path) -> None:
    src = write_md_form(tmp_path, MISSING_TRANSLATION)
    lenient = forms.compile_form(src, validate=False)
    strict = forms.compile_form(src, validate=False, strict=True)
    assert lenient.ok and any(i.code == forms.FORM_PYXFORM_WARNING for i in lenient.issues)
    assert not strict.ok and strict.issues[0].severity == "error"


def test_unbalanced_group_names_file_and_does_not_crash(tmp_path: Path) -> None:
    src = write_md_form(tmp_path, UNBALANCED_GROUP)
    form = forms.compile_form(src, validate=False)
    assert not form.ok and form.xform is None
    (issue,) = form.issues
    assert issue.code == forms.FORM_INVALID and issue.location.file == str(src)


def test_javarosa_rejection_is_an_error(tmp_path: Path) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    form = forms.compile_form(write_md_form(tmp_path, BAD_FOR_JAVAROSA))
    assert form.validated is False and not form.ok
    assert any(i.code == forms.FORM_ODK_VALIDATE_ERROR for i in form.issues)


def test_missing_java_marks_not_validated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(xlsform, "java_available", lambda: False)
    form = forms.compile_form(write_md_form(tmp_path, GOOD))
    assert form.validated is None and form.ok
    assert [i.code for i in form.issues] == [forms.FORM_NOT_VALIDATED]


def test_cli_build_json_and_exit_codes(tmp_path: Path) -> None:
    require_tool("java", "openjdk-17-jre-headless")
    good = write_md_form(tmp_path, GOOD, "good.md")
    bad = write_md_form(tmp_path, UNBALANCED_GROUP, "bad.md")
    out_dir = str(tmp_path / "o")
    result = runner.invoke(app, ["forms", "build", str(good), str(bad), "--out", out_dir, "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    verdicts = {Path(f["source"]).name: (f["compiled"], f["odk_validate"]) for f in payload["forms"]}
    assert verdicts == {"good.md": (True, "valid"), "bad.md": (False, "not validated")}


def test_cli_missing_file_is_reported_not_raised(tmp_path: Path) -> None:
    result = runner.invoke(app, ["forms", "build", str(tmp_path / "nope.xlsx"), "--no-validate"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_messages_keep_codes_and_brackets_on_stderr(tmp_path: Path) -> None:
    """Issue text is printed literally: rich markup must not swallow `[code]` or brackets in an expression."""
    src = write_md_form(tmp_path, MISSING_TRANSLATION)
    result = runner.invoke(app, ["forms", "build", str(src), "--no-validate", "--out", str(tmp_path / "o")])
    assert f"[{forms.FORM_PYXFORM_WARNING}]" in result.output
