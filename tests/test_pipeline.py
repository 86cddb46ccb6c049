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
    assert (out / "validation" / "findings.csv").read_text(encoding="utf-8-sig").startswith("instance_id,path,code")
    assert len(list((out / "submissions").glob("*/submission.xml"))) == 25


def test_the_codebook_gets_the_rows_skip_logic_asked(survey: Path, tmp_path: Path, monkeypatch) -> None:
    """The run keeps validate's asked rows (one bit per row) until the codebook: the codebook gets them whole."""
    import numpy as np

    import toolkit.codebook
    from toolkit import validate as validation

    handed: dict = {}
    write_codebook = toolkit.codebook.write_codebook

    def spying_write_codebook(*args, **kwargs):  # type: ignore[no-untyped-def]
        handed.update(kwargs["asked"] or {})
        return write_codebook(*args, **kwargs)

    monkeypatch.setattr(toolkit.codebook, "write_codebook", spying_write_codebook)
    config = SurveyConfig.from_file(survey / "survey.toml")
    run_survey(config, out_dir=tmp_path / "out")
    expected = validation.validate(tmp_path / "out" / "data", config.form, today=config.today).asked
    assert handed.keys() == expected.keys() and len(expected) > 3
    for path, rows in expected.items():
        assert handed[path].dtype == bool and np.array_equal(handed[path], rows), path
    assert any(not rows.all() for rows in expected.values())


def test_cli_json_and_wrong_key(survey: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(survey / "survey.toml"), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    stages = {s["name"]: s["status"] for s in json.loads(result.stdout)["stages"]}
    assert stages["export"] == "ok"
    # Decrypting with another key: every submission fails, so nothing downstream can run (exit 3).
    other = generate_keypair(tmp_path / "other")
    config = (survey / "survey.toml").read_text(encoding="utf-8").replace("keys/private.pem", str(other.private_path))
    (survey / "wrong.toml").write_text(config, encoding="utf-8")
    result = runner.invoke(app, ["run", str(survey / "wrong.toml"), "--out", str(tmp_path / "w")])
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    # The same as JSON: the decrypt stage's problems are Issues, one per submission, in the shape of every command.
    result = runner.invoke(app, ["run", str(survey / "wrong.toml"), "--out", str(tmp_path / "w2"), "--json"])
    payload = json.loads(result.stdout)
    assert (payload["command"], payload["ok"], payload["exit_code"]) == ("run", False, 3)
    (decrypt,) = [stage for stage in payload["stages"] if stage["name"] == "decrypt"]
    assert decrypt["issues"] == payload["issues"][:25] and len(decrypt["issues"]) == 25
    assert {(i["qualified_code"], i["topic"], i["severity"]) for i in decrypt["issues"]} == {
        ("decrypt.wrong_key", "decrypt", "error")
    }
    assert all(i["instance"] and i["file"] for i in decrypt["issues"])
    assert [i["code"] for i in payload["issues"][25:]] == ["ingest.no_submissions"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[survey]\nname='x'\n", r"\[survey\] form: is required"),
        ("[survey]\nform='f.md'\n", "Say where the submissions are"),
        ("[survey]\nform='f.md'\n[decrypt]\ninputs=['s']\n", r"\[decrypt\] key: is required"),
        ("[survey]\nform='f.md'\n[ingest]\ninputs=['s']\n[validate]\ntoday='soon'\n", "must be a date"),
        ("[survey\n", "not valid TOML"),
    ],
)
def test_config_errors(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "survey.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ToolkitError, match=message):
        SurveyConfig.from_file(path)


# A typo in survey.toml must stop the run before anything runs, naming the file, the line and the likely key.
TYPO_CASES = [
    ("[decrpyt]\ninputs = ['s']\nkey = 'k.pem'\n", 3, "[decrpyt]: unknown section; did you mean 'decrypt'?"),
    (
        "[decrypt]\ninputs = ['s']\nkey = 'k.pem'\npassphrase_fle = 'p'\n",
        6,
        "[decrypt] passphrase_fle: unknown key; did you mean 'passphrase_file'?",
    ),
    # desing is unknown, so [weights] (line 5) also lacks its design
    ("[ingest]\ninputs = ['s']\n[weights]\ndesing = 'design.toml'\n", (6, 5), "[weights] desing: unknown key"),
    ("[ingest]\ninputs = ['s']\n[export]\nformats = ['spss']\n", 6, "'spss' is not one of: sav, dta, csv"),
    ("[decrypt]\ninputs = ['s']\nkey = 'k.pem'\nworkers = 0\n", 6, "workers: must be at least 1"),
    ("[decrypt]\ninputs = ['s']\nkey = 'k.pem'\nworkers = 'two'\n", 6, "workers: must be a whole number, not 'two'"),
]


@pytest.mark.parametrize(("tail", "line", "message"), TYPO_CASES)
def test_survey_config_typos_are_errors_with_file_and_line(
    tmp_path: Path, tail: str, line: int | tuple[int, ...], message: str
) -> None:
    path = tmp_path / "survey.toml"
    path.write_text("[survey]\nform = 'f.md'\n" + tail, encoding="utf-8")
    with pytest.raises(ToolkitError) as caught:
        SurveyConfig.from_file(path)
    assert caught.value.exit_code == 2
    assert tuple(issue.location.line for issue in caught.value.issues) == (line if isinstance(line, tuple) else (line,))
    assert message in caught.value.issues[0].message


def test_every_problem_of_a_survey_config_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "survey.toml"
    path.write_text(
        "\ufeff[survey]\nfrom = 'f.md'\n[decrpyt]\nworkers = 2\n[export]\nformats = 'sav'\n[codebook]\nformats = ['pdf']\n",
        encoding="utf-8",
    )
    with pytest.raises(ToolkitError) as caught:
        SurveyConfig.from_file(path)
    problems = {(issue.code, issue.location.line) for issue in caught.value.issues}
    assert problems == {
        ("config.unknown_key", 2),  # from (for form)
        ("config.missing_key", 1),  # [survey] form
        ("config.unknown_key", 3),  # [decrpyt]
        ("config.wrong_value", 6),  # formats must be a list
        ("config.wrong_value", 8),  # pdf
    }
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert result.output.count("error:") == 5


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "survey"


@pytest.mark.parametrize(
    ("edit", "failed", "exit_code"),
    [
        (None, set(), 0),
        (("keys/passphrase.txt", "wrong-passphrase.txt"), {"key"}, 3),  # the passphrase does not open the key
        (('inputs = ["submissions"]', 'inputs = ["tablets"]'), {"inputs"}, 3),
        (('design = "design.toml"', 'design = "missing.toml"'), {"weights design"}, 3),
        (('language = "Russian (ru)"', 'language = "Klingon"'), {"form"}, 3),
    ],
)
def test_run_check_runs_nothing_and_names_what_would_fail(
    tmp_path: Path, edit: tuple[str, str] | None, failed: set[str], exit_code: int
) -> None:
    survey = tmp_path / "survey"
    survey.mkdir()
    (survey / "wrong-passphrase.txt").write_text("not the passphrase\n", encoding="utf-8")
    text = (EXAMPLE / "survey.toml").read_text(encoding="utf-8")
    for name in ("submissions", "keys", "design.toml", "psu_sample.csv", "listing.csv"):
        (survey / name).symlink_to(EXAMPLE / name)
    text = text.replace('"../../forms', f'"{EXAMPLE.parent.parent / "forms"}').replace('"../../demo-out"', '"out"')
    text = text.replace('"../../indicators', f'"{EXAMPLE.parent.parent / "indicators"}')
    for name in ("controls_households.csv", "controls_persons.csv"):
        (survey / name).symlink_to(EXAMPLE / name)
    if edit:
        text = text.replace(*edit)
    (survey / "survey.toml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(survey / "survey.toml"), "--check", "--json"])
    assert result.exit_code == exit_code, result.output
    checks = json.loads(result.stdout)["stages"]
    assert {c["name"] for c in checks if c["status"] == "failed"} == failed
    assert not (survey / "out").exists()  # nothing ran


def test_docs_survey_toml_reference_is_the_schema() -> None:
    """docs/survey-toml.md's reference block passes the schema and documents every key of it."""
    import tomllib

    from toolkit.config import check_config, line_numbers, schema_paths
    from toolkit.pipeline import SURVEY_SCHEMA

    text = (Path(__file__).resolve().parent.parent / "docs" / "survey-toml.md").read_text(encoding="utf-8")
    block = text.split("```toml", 1)[1].split("```", 1)[0]
    assert check_config(tomllib.loads(block), SURVEY_SCHEMA, source=Path("docs/survey-toml.md"), text=block) == []
    documented = set(line_numbers(block))
    assert [path for path, _ in schema_paths(SURVEY_SCHEMA) if path not in documented] == []


def test_run_summary_names_each_report_and_every_output_folder_once(tmp_path: Path) -> None:
    """#16 item 8 on the bundled example survey: each stage's summary names its own report, the closing lines list
    every output folder (the decrypted submissions and DATA included), and no file is written twice."""
    result = CliRunner().invoke(app, ["run", str(EXAMPLE / "survey.toml"), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output  # the example has findings on purpose (EDITS.md)
    stages = {s["name"]: s for s in json.loads(result.stdout)["stages"]}
    assert stages["validate"]["summary"].endswith("; report validation/report.html")
    assert "report data/weights-report.json" in stages["weights"]["summary"]
    assert "indicators/indicators.html" in stages["indicators"]["summary"]
    assert (
        "labels shortened" in stages["export"]["summary"] and "renamed or shortened" not in stages["export"]["summary"]
    )
    assert "open codebook/ncamig_household-codebook.html" in stages["codebook"]["summary"]
    written = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.relative_to(tmp_path).parts[0] != "submissions"]
    assert len(written) == len(set(written)), "a file was written twice"
    shown = CliRunner().invoke(app, ["run", str(EXAMPLE / "survey.toml"), "--out", str(tmp_path / "again")])
    closing = shown.stdout.split("Outputs in", 1)[1]
    for folder in ("submissions/", "data/", "validation/", "indicators/", "export/", "codebook/"):
        assert folder in closing
    assert "index.html" in closing
