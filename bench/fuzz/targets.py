"""Fuzz targets: one per parser of untrusted input, each taking raw bytes.

A target feeds the bytes to migkit's public entry point for that input, the way a user's file reaches it, and lets
through only what the documentation promises: a result (with Issues or a failed status) or a `ToolkitError`. Any
other exception is a crash, and so is a decrypt result with `decrypt.internal_error` (the decrypt run turns an
exception inside migkit into that status so that one file cannot stop a run; here it must never happen).

Each returns the result, or None when migkit refused the input with a ToolkitError. Used by tests/test_fuzz.py (hypothesis, a few seconds per target in `make test`) and by bench/fuzz/run.py (atheris,
long runs). Each target writes its input into one private temporary folder per process, reused between calls.
"""

from __future__ import annotations

import contextlib
import functools
import io
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import ToolkitError

# migkit's stages are imported inside the targets: the atheris harness then starts (and forks) faster.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from toolkit.validate import CompiledForm
    from toolkit.xform import FormModel

FORM_MD = """
| survey |
| | type | name | label | relevant | constraint | calculation |
| | text | name | Name | | | |
| | integer | age | Age | | . >= 0 and . <= 120 | |
| | select_one yn | works | Works? | ${age} >= 15 | | |
| | begin_repeat | hl | Member | | | |
| | text | hl_name | Name | | | |
| | decimal | hl_inc | Income | | . >= 0 | |
| | end_repeat | | | | | |
| | calculate | n | | | | count(${hl}) |
| choices |
| | list_name | name | label |
| | yn | 1 | Yes |
| | yn | 2 | No |
| settings |
| | form_id | version |
| | fz | 1 |
"""

# Seeds: well-formed inputs of each kind, for the mutation strategies and the atheris corpus.
INSTANCE = (
    b'<?xml version="1.0" encoding="UTF-8"?><data xmlns:jr="http://openrosa.org/javarosa" id="fz" version="1">'
    b"<name>Aida</name><age>30</age><works>1</works><hl><hl_name>A</hl_name><hl_inc>10.5</hl_inc></hl>"
    b"<hl><hl_name>B</hl_name><hl_inc/></hl><n>2</n><meta><instanceID>uuid:1</instanceID></meta></data>"
)
MANIFEST = (
    b'<data xmlns="http://opendatakit.org/submissions" encrypted="yes" id="fz" version="1">'
    b"<base64EncryptedKey>"
    + b"QUJD" * 86
    + b"</base64EncryptedKey><orx:meta xmlns:orx=\"http://openrosa.org/xforms\"><orx:instanceID>uuid:1"
    b"</orx:instanceID></orx:meta><media><file>a.jpg.enc</file></media>"
    b"<encryptedXmlFile>submission.xml.enc</encryptedXmlFile><base64EncryptedElementSignature>QUJD"
    b"</base64EncryptedElementSignature></data>"
)
CENTRAL_CSV = (
    b"SubmissionDate,name,age,works,n,meta-instanceID,KEY,SubmitterID,SubmitterName,AttachmentsPresent,"
    b"AttachmentsExpected,Status,ReviewState,DeviceID,Edits,FormVersion\n"
    b"2026-11-20T10:00:00.000Z,Aida,30,1,1,uuid:1,uuid:1,5,e1,0,0,,,,0,1\n"
)
CENTRAL_REPEAT_CSV = b"hl_name,hl_inc,PARENT_KEY,KEY\nA,10.5,uuid:1,uuid:1/hl[1]\n"
MARGINS_CSV = b"variable,level,target\nsex,1,480\nsex,2,520\nregion,north,300\nregion,south,700\n"
SURVEY_TOML = (
    b'[survey]\nname = "fuzz"\nform = "form.md"\nout = "out"\n[ingest]\ninputs = ["subs"]\n'
    b'[validate]\ntoday = "2026-11-20"\n[export]\nformats = ["sav", "csv"]\nlanguage = "English (en)"\n'
)
XLSFORM_ROWS = (
    b"survey|type|name|label\nsurvey|integer|age|Age\nsurvey|select_one yn|ok|OK?\n"
    b"choices|list_name|name|label\nchoices|yn|1|Yes\nchoices|yn|2|No\nsettings|form_id\nsettings|fz\n"
)


@functools.cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="migkit-fuzz-"))


def _fresh(name: str) -> Path:
    """An empty private folder for one call."""
    folder = _workdir() / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    return folder


@functools.cache
def _form() -> tuple[FormModel, CompiledForm]:
    from toolkit.validate import compile_form
    from toolkit.xform import load_form

    path = _workdir() / "form.md"
    path.write_text(FORM_MD.strip() + "\n", encoding="utf-8")
    model = load_form(path)
    return model, compile_form(model)


@functools.cache
def _key() -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def submission_xml(data: bytes) -> object | None:
    """A submission.xml from a tablet or server: ingest (folder input) and validate (instance path)."""
    from toolkit.ingest import ingest
    from toolkit.validate import validate_submissions

    model, form = _form()
    folder = _fresh("xml")
    (folder / "submission.xml").write_bytes(data)
    with contextlib.suppress(ToolkitError):
        ingest([folder], model, workers=1)
    return validate_submissions(form, [("submission.xml", data)], today=None)


def manifest(data: bytes) -> object | None:
    """An ODK submission manifest (or any XML decrypt meets): one decrypt_submission with a key that fits none."""
    from toolkit.crypto import INTERNAL_ERROR, decrypt_submission

    folder = _fresh("manifest")
    (folder / "in").mkdir()
    path = folder / "in" / "submission.xml"
    path.write_bytes(data)
    (folder / "in" / "submission.xml.enc").write_bytes(b"\0" * 48)
    (folder / "in" / "a.jpg.enc").write_bytes(b"\0" * 32)
    try:
        result = decrypt_submission(path, key=_key(), out_dir=folder / "out")
    except ToolkitError:
        return None
    if result.reason_code == INTERNAL_ERROR:
        raise AssertionError(f"decrypt failed inside migkit: {result.message}")
    return result


def central_zip(data: bytes) -> object | None:
    """An ODK Central "All data" CSV export: the first byte says whether `data` is the whole zip or the CSV of
    the main table inside a well-formed zip (beside a fixed repeat table)."""
    from toolkit.ingest import ingest

    model, _ = _form()
    folder = _fresh("central")
    target = folder / "fz.zip"
    if data[:1] == b"Z":
        target.write_bytes(data[1:])
    else:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("fz.csv", data[1:])
            archive.writestr("fz-hl.csv", CENTRAL_REPEAT_CSV)
        target.write_bytes(buffer.getvalue())
    try:
        return ingest([target], model, workers=1)
    except ToolkitError:
        return None


def xlsform(data: bytes) -> object | None:
    """An XLSForm: the first byte says whether `data` is the .xlsx file itself or rows of cells (`sheet|a|b|c`
    per line) written into a workbook."""
    from openpyxl import Workbook

    from toolkit.xform import load_form

    folder = _fresh("xlsform")
    target = folder / "form.xlsx"
    if data[:1] == b"X":
        target.write_bytes(data[1:])
    else:
        book = Workbook()
        book.remove(book.active)
        for line in data[1:].decode("utf-8", "replace").splitlines()[:200]:
            sheet, _, rest = line.partition("|")
            sheet = "".join(ch for ch in sheet if ch.isprintable() and ch not in "[]:*?/\\")[:31] or "survey"
            ws = book[sheet] if sheet in book.sheetnames else book.create_sheet(sheet)
            ws.append([_cell(text) for text in rest.split("|")[:30]])
        if not book.sheetnames:
            book.create_sheet("survey")
        book.save(target)
    try:
        return load_form(target)
    except ToolkitError:
        return None


def _cell(text: str) -> str:
    # openpyxl refuses control characters in cells; a spreadsheet cannot hold them either.
    return "".join(ch for ch in text if ch.isprintable() or ch in "\t\n")


def margins_csv(data: bytes) -> object | None:
    """A margins CSV for `weights rake` (variable, level, target)."""
    from toolkit.weights import margins_from_frame, read_table

    target = _fresh("margins") / "margins.csv"
    target.write_bytes(data)
    try:
        return margins_from_frame(read_table(target), source=target.name)
    except ToolkitError:
        return None


def survey_toml(data: bytes) -> object | None:
    """A survey.toml for `migkit run` (read and checked only; no stage runs)."""
    from toolkit.pipeline import SurveyConfig

    folder = _fresh("toml")
    (folder / "form.md").write_text(FORM_MD.strip() + "\n", encoding="utf-8")
    (folder / "subs").mkdir()
    (folder / "survey.toml").write_bytes(data)
    try:
        return SurveyConfig.from_file(folder / "survey.toml")
    except ToolkitError:
        return None


TARGETS: dict[str, Callable[[bytes], object | None]] = {
    "manifest": manifest,
    "submission_xml": submission_xml,
    "central_zip": central_zip,
    "xlsform": xlsform,
    "margins_csv": margins_csv,
    "survey_toml": survey_toml,
}


def _xlsx_seed() -> bytes:
    buffer = io.BytesIO()
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for line in XLSFORM_ROWS.decode().splitlines():
        sheet, *cells = line.split("|")
        ws = book[sheet] if sheet in book.sheetnames else book.create_sheet(sheet)
        ws.append(cells)
    book.save(buffer)
    return buffer.getvalue()


def seeds(name: str) -> list[bytes]:
    """Well-formed inputs of a target, to start mutating from."""
    if name == "xlsform":
        return [b"R" + XLSFORM_ROWS, b"X" + _xlsx_seed()]
    if name == "central_zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("fz.csv", CENTRAL_CSV)
            archive.writestr("fz-hl.csv", CENTRAL_REPEAT_CSV)
        return [b"C" + CENTRAL_CSV, b"Z" + buffer.getvalue()]
    return {
        "manifest": [MANIFEST, INSTANCE],
        "submission_xml": [INSTANCE, INSTANCE.decode().encode("utf-16")],
        "margins_csv": [MARGINS_CSV],
        "survey_toml": [SURVEY_TOML],
    }[name]
