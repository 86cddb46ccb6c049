"""`migkit run`: the configured stages in order, from encrypted submissions to labelled files and a codebook."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import write_md_form
from toolkit.cli import app
from toolkit.crypto import generate_keypair
from toolkit.errors import ToolkitError
from toolkit.pipeline import SurveyConfig, run_survey
from toolkit.simulate import simulate
from toolkit.xform import load_form

FORM = """
| survey |
| | type | name | label::English (en) | label::Russian (ru) | relevant | constraint |
| | select_one yn | consent | Consent? | Согласие? | | |
| | integer | hh_size | Household size | Размер домохозяйства | ${consent}='1' | . >= 1 and . <= 30 |
| | begin_repeat | hl | Member | Член семьи | ${consent}='1' | |
| | select_one sex | hl_sex | Sex | Пол | | |
| | integer | hl_age | Age | Возраст | | . >= 0 and . <= 120 |
| | end_repeat | | | | | |
| choices |
| | list_name | name | label::English (en) | label::Russian (ru) |
| | yn | 1 | Yes | Да |
| | yn | 2 | No | Нет |
| | sex | 1 | Male | Мужской |
| | sex | 2 | Female | Женский |
| settings |
| | form_id | version | default_language |
| | pipe | 2026112701 | English (en) |
"""


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    """A survey folder: form, key pair, 25 encrypted simulated submissions and a survey.toml."""
    root = tmp_path_factory.mktemp("survey")
    form_path = write_md_form(root, FORM, "pipe.md")
    keys = generate_keypair(root / "keys")
    simulate(load_form(form_path), 25, root / "submissions", seed=7, encrypt_with=keys.public_path, workers=1)
    (root / "survey.toml").write_text(
        '[survey]\nname = "pipeline test"\nform = "pipe.md"\nout = "out"\n'
        '[decrypt]\ninputs = ["submissions"]\nkey = "keys/private.pem"\n'
        '[validate]\ntoday = "2026-11-20"\n'
        '[export]\nformats = ["sav", "dta", "csv"]\nlanguage = "Russian (ru)"\n',
        encoding="utf-8",
    )
    return root


def test_run_all_stages(survey: Path) -> None:
    config = SurveyConfig.from_file(survey / "survey.toml")
    started: list[str] = []
    result = run_survey(config, on_stage=started.append)
    by_name = {stage.name: stage for stage in result.stages}
    assert started == ["decrypt", "ingest", "validate", "export", "codebook"]
    assert by_name["weights"].status == "skipped"
    assert by_name["decrypt"].figures == {"ok": 25}
    assert by_name["ingest"].figures["rows"]["pipe"] == 25
    assert by_name["validate"].status == "ok", by_name["validate"].issues
    assert result.ok and not result.failed
    out = survey / "out"
    assert (out / "export" / "pipe.sav").is_file() and (out / "export" / "pipe-hl.dta").is_file()
    assert (out / "codebook" / "pipe-ddi.xml").is_file()
    assert "<!DOCTYPE html>" in (out / "validation" / "report.html").read_text(encoding="utf-8")
    assert (
        (out / "validation" / "findings.csv")
        .read_text(encoding="utf-8-sig")
        .startswith("instance_id,path,code")
    )
    assert len(list((out / "submissions").glob("*/submission.xml"))) == 25


def test_cli_json_and_wrong_key(survey: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(survey / "survey.toml"), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    stages = {s["name"]: s["status"] for s in json.loads(result.stdout)["stages"]}
    assert stages["export"] == "ok"
    # Decrypting with another key: every submission fails, so nothing downstream can run (exit 3).
    other = generate_keypair(tmp_path / "other")
    config = (
        (survey / "survey.toml")
        .read_text(encoding="utf-8")
        .replace("keys/private.pem", str(other.private_path))
    )
    (survey / "wrong.toml").write_text(config, encoding="utf-8")
    result = runner.invoke(app, ["run", str(survey / "wrong.toml"), "--out", str(tmp_path / "w")])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[survey]\nname='x'\n", "needs form"),
        ("[survey]\nform='f.md'\n", "Say where the submissions are"),
        ("[survey]\nform='f.md'\n[decrypt]\ninputs=['s']\n", "needs key"),
        ("[survey]\nform='f.md'\n[ingest]\ninputs=['s']\n[validate]\ntoday='soon'\n", "must be a date"),
        ("[survey\n", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "survey.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ToolkitError, match=message):
        SurveyConfig.from_file(path)
