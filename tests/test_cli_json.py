"""Every command's `--json` has one shape: command, ok, exit_code, the result fields, and `issues` as
`Issue.flatten()` gives them (docs/architecture.md, "The --json of a command").

One small survey is prepared with the library (form, key pair, encrypted and plain submissions, a DATA folder, a
weights example, a table to rake), then each command runs on it through the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import build_weights_example, write_md_form
from toolkit.cli import app
from toolkit.crypto import generate_keypair
from toolkit.errors import Issue, Location, Severity
from toolkit.ingest import ingest, write_tables
from toolkit.simulate import simulate
from toolkit.xform import load_form

REPO = Path(__file__).resolve().parents[1]

FORM = """
| survey |
| | type | name | label::English (en) | relevant | constraint |
| | select_one yn | consent | Consent? | | |
| | integer | hh_size | Household size | ${consent}='1' | . >= 1 and . <= 30 |
| | begin_repeat | hl | Member | ${consent}='1' | |
| | select_one sex | hl_sex | Sex | | |
| | integer | hl_age | Age | | . >= 0 and . <= 120 |
| | end_repeat | | | | |
| choices |
| | list_name | name | label::English (en) |
| | yn | 1 | Yes |
| | yn | 2 | No |
| | sex | 1 | Male |
| | sex | 2 | Female |
| settings |
| | form_id | version |
| | shape | 2026120701 |
"""

# What every issue of every `--json` holds: Issue.flatten() keys (value only when the issue has one).
ISSUE_KEYS = {"code", "topic", "qualified_code", "severity", "message"} | {
    field.name for field in dataclasses.fields(Location)
}


@pytest.fixture(scope="module")
def survey(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shape")
    form = write_md_form(root, FORM, "shape.md")
    model = load_form(form)
    keys = generate_keypair(root / "keys")
    simulate(model, 4, root / "encrypted", seed=3, encrypt_with=keys.public_path, workers=1)
    simulate(model, 6, root / "plain", seed=5, workers=1)
    simulate(model, 12, root / "faulty", seed=9, workers=1, errors=0.5, errors_key=root / "faulty-key.csv")
    write_tables(ingest([root / "plain"], [model]), root / "DATA")
    (root / "survey.toml").write_text(
        '[survey]\nname = "shape"\nform = "shape.md"\nout = "out"\n'
        '[decrypt]\ninputs = ["encrypted"]\nkey = "keys/private.pem"\n'
        '[export]\nformats = ["csv"]\n',
        encoding="utf-8",
    )
    xlsx = root / "household.xlsx"
    shutil.copy(REPO / "forms" / "household.xlsx", xlsx)
    table = pd.DataFrame({"w": [1.0, 2.0, 1.0, 2.0], "sex": ["1", "1", "2", "2"], "y": [3.0, 4.0, 5.0, 6.0]})
    table.to_csv(root / "table.csv", index=False)
    (root / "margins.csv").write_text("variable,level,target\nsex,1,5\nsex,2,5\n", encoding="utf-8")
    (root / "catalogue.toml").write_text(
        '[levels.household]\ntable = "shape"\nweight = "w"\n\n'
        '[[indicator]]\nid = "size"\ntitle = { en = "Household size" }\ndefinition = { en = "Mean size" }\n'
        'source = "s"\nlevel = "household"\nstatistic = "mean"\nvariable = "hh_size"\nmissing = "exclude"\n',
        encoding="utf-8",
    )
    weighted = root / "DATA-w"
    shutil.copytree(root / "DATA", weighted)
    frame = pd.read_parquet(weighted / "shape.parquet")
    frame["w"] = 1.0
    frame.to_parquet(weighted / "shape.parquet", index=False)
    manifest = json.loads((weighted / "tables.json").read_text(encoding="utf-8"))
    manifest["design"] = {"weight": "w", "strata": None, "psu": None, "replicates": None}
    (weighted / "tables.json").write_text(json.dumps(manifest), encoding="utf-8")
    example = build_weights_example(root / "wex")
    return {
        "root": root,
        "form": form,
        "public": keys.public_path,
        "private": keys.private_path,
        "xlsx": xlsx,
        "weights_data": example["DATA"],
        "weights_design": example["design.toml"],
    }


# Command path, its `--json` command name, the arguments after it (names of the survey's files in braces) and the
# exit code on this survey.
CASES: list[tuple[tuple[str, ...], str, list[str], int]] = [
    (("forms", "build"), "forms build", ["{form}", "--out", "{root}/xforms", "--no-validate"], 0),
    (("forms", "lint"), "forms lint", ["{form}"], 0),
    (("keys", "new"), "keys new", ["--out", "{root}/keys-new"], 0),
    (("keys", "attach"), "keys attach", ["{xlsx}", "--public", "{public}"], 0),
    (("decrypt",), "decrypt", ["{root}/encrypted", "--key", "{private}", "--out", "{root}/dec", "--workers", "1"], 0),
    (("ingest",), "ingest", ["{root}/plain", "--form", "{form}", "--out", "{root}/DATA2"], 0),
    (("simulate",), "simulate", ["{form}", "--n", "3", "--out", "{root}/sim"], 0),
    (("validate",), "validate", ["{root}/faulty", "--form", "{form}"], 1),
    (("weights", "run"), "weights", ["{weights_data}", "--design", "{weights_design}", "--out", "{root}/w"], 0),
    (
        ("weights", "rake"),
        "weights rake",
        ["{root}/table.csv", "--weight", "w", "--margins", "{root}/margins.csv", "--out", "{root}/raked.csv"],
        0,
    ),
    (("estimate",), "estimate", ["{root}/table.csv", "--weight", "w", "--mean", "y"], 0),
    (
        ("indicators",),
        "indicators",
        ["{root}/DATA-w", "--catalogue", "{root}/catalogue.toml", "--out", "{root}/ind"],
        0,
    ),
    (("export",), "export", ["{root}/DATA", "--form", "{form}", "--format", "csv", "--out", "{root}/exp"], 0),
    (("codebook",), "codebook", ["{form}", "--out", "{root}/cb", "--format", "html"], 0),
    (("run",), "run", ["{root}/survey.toml", "--out", "{root}/run"], 0),
]


def _leaf_paths(command: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    subs = getattr(command, "commands", {})  # Typer vendors click: duck-type its Group
    if not subs:
        return {path}
    return set().union(*(_leaf_paths(sub, (*path, name)) for name, sub in subs.items()))


def test_the_table_has_every_command() -> None:
    assert _leaf_paths(typer.main.get_command(app)) == {path for path, *_ in CASES}


@pytest.mark.parametrize(("path", "name", "arguments", "exit_code"), CASES, ids=[name for _, name, *_ in CASES])
def test_json_has_the_one_shape(
    survey: dict[str, Path], path: tuple[str, ...], name: str, arguments: list[str], exit_code: int
) -> None:
    filled = [argument.format_map({key: str(value) for key, value in survey.items()}) for argument in arguments]
    done = CliRunner().invoke(app, [*path, *filled, "--json"], env={"MIGKIT_PASSPHRASE": ""})
    assert done.exit_code == exit_code, done.output
    payload = json.loads(done.stdout, parse_constant=lambda constant: pytest.fail(f"{constant} is not JSON"))
    assert list(payload)[:3] == ["command", "ok", "exit_code"] and list(payload)[-1] == "issues"
    assert (payload["command"], payload["ok"], payload["exit_code"]) == (name, exit_code == 0, exit_code)
    for issue in payload["issues"]:
        assert ISSUE_KEYS <= set(issue) <= ISSUE_KEYS | {"value", "absent"}, issue
        assert issue["qualified_code"] == f"{issue['topic']}.{issue['code'].removeprefix(issue['topic'] + '.')}"


def test_validate_findings_are_issues_with_short_codes_and_the_validate_topic(survey: dict[str, Path]) -> None:
    done = CliRunner().invoke(
        app, ["validate", str(survey["root"] / "faulty"), "--form", str(survey["form"]), "--json"]
    )
    payload = json.loads(done.stdout)
    planted = pd.read_csv(survey["root"] / "faulty-key.csv", dtype=str)
    found = {(i["instance"], i["path"], i["code"]) for i in payload["issues"]}
    assert found == set(zip(planted["instance_id"], planted["path"], planted["code"], strict=True))
    assert {i["qualified_code"] for i in payload["issues"]} == {f"validate.{code}" for code in planted["code"]}
    assert payload["stats"]["findings"] == len(payload["issues"]) and payload["valid"] is False


@pytest.mark.parametrize(
    ("issue", "topic", "qualified"),
    [
        (Issue("required_missing", Severity.ERROR, "m", topic="validate"), "validate", "validate.required_missing"),
        (Issue("decrypt.wrong_key", Severity.ERROR, "m"), "decrypt", "decrypt.wrong_key"),
        (Issue("decrypt.wrong_key", Severity.ERROR, "m", topic="validate"), "decrypt", "decrypt.wrong_key"),
        (Issue("required_missing", Severity.ERROR, "m"), None, "required_missing"),
    ],
)
def test_flatten_keeps_the_short_code_and_adds_topic_and_qualified_code(
    issue: Issue, topic: str | None, qualified: str
) -> None:
    flat = issue.flatten()
    assert (flat["code"], flat["topic"], flat["qualified_code"]) == (issue.code, topic, qualified)


def test_enumerator_is_part_of_the_location() -> None:
    issue = Issue("required_missing", Severity.ERROR, "m", Location(instance="uuid:1", enumerator="E07"))
    assert issue.format() == "instance uuid:1, enumerator E07: m [required_missing]"
    assert issue.flatten()["enumerator"] == "E07"


@pytest.mark.parametrize(
    "issue",
    [
        Issue("duplicate_instance", Severity.ERROR, "m", Location(instance="uuid:1", file="a.xml")),
        Issue("required_missing", Severity.WARNING, "m", Location(enumerator="E1"), value="5", topic="validate"),
        Issue("ingest.unknown_field", Severity.WARNING, "m", Location(path="/data/x", row=3)),
    ],
)
def test_an_issue_comes_back_from_its_flat_form(issue: Issue) -> None:
    assert Issue.from_flat(json.loads(json.dumps(issue.flatten()))) == issue


def test_a_flat_issue_of_an_older_tables_json_still_reads() -> None:
    # tables.json written before topics and enumerators: code, severity, message and the location fields of then
    older = {"code": "duplicate_instance", "severity": "error", "message": "m", "file": "a.xml", "instance": "uuid:1"}
    assert Issue.from_flat(older) == Issue(
        "duplicate_instance", Severity.ERROR, "m", Location(file="a.xml", instance="uuid:1")
    )
