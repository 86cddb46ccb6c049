"""XLSForm -> XForm with pyxform's Python API, checked by ODK Validate (JavaRosa, as in ODK Collect).

Below the form model: loading an XLSForm (`toolkit.xform.load_form`) compiles it here, and `migkit forms` builds
and lints on top of it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pyxform
from pyxform.errors import PyXFormError
from pyxform.validators import odk_validate
from pyxform.xls2xform import convert

from toolkit.errors import INPUT_MISSING, Issue, Location, Severity, define, error, warning
from toolkit.xml import UntrustedXMLError, parse_untrusted

FORM_SUFFIXES = (".xlsx", ".xls", ".md", ".csv")

FORM_INVALID = define("form.invalid", "pyxform could not compile the XLSForm")
FORM_PYXFORM_WARNING = define(
    "form.pyxform_warning", "pyxform warned about the XLSForm (e.g. a missing translation)"
)
FORM_NOT_VALIDATED = define(
    "form.not_validated", "ODK Validate could not run (Java missing), the XForm is unchecked"
)
FORM_ODK_VALIDATE_ERROR = define("form.odk_validate_error", "ODK Validate (JavaRosa) rejected the XForm")
FORM_ODK_VALIDATE_WARNING = define(
    "form.odk_validate_warning", "ODK Validate (JavaRosa) warned about the XForm"
)
FORM_NOT_FOUND = define("form.none_found", "No XLSForm was found where one was expected")

PYXFORM_VERSION = pyxform.__version__
ODK_VALIDATE_JAR = Path(odk_validate.ODK_VALIDATE_PATH)
ODK_VALIDATE_TIMEOUT_SECONDS = 180

_ROW_IN_MESSAGE = re.compile(r"\[row\s*:\s*(\d+)\]", re.IGNORECASE)
_SHEET_IN_MESSAGE = re.compile(
    r"'?\b(survey|choices|settings|external_choices|entities)\b'?\s+sheet", re.IGNORECASE
)


@dataclass(frozen=True)
class CompiledForm:
    """One XLSForm compiled to an XForm, with pyxform's and ODK Validate's verdicts.

    `xform` holds the XForm text (None when compilation failed); `validated` is True when ODK Validate
    accepted it, False when it rejected it, None when it was not run.
    """

    source: str
    form_id: str | None
    version: str | None
    title: str | None
    xform: str | None = field(repr=False)
    itemsets_csv: str | None = field(repr=False)
    validated: bool | None
    issues: tuple[Issue, ...]
    xform_path: str | None = None
    pyxform_version: str = PYXFORM_VERSION

    @property
    def ok(self) -> bool:
        return self.xform is not None and not any(i.severity == Severity.ERROR for i in self.issues)


def issue_from_pyxform(message: str, source: str, severity: Severity, code: str) -> Issue:
    row_match = _ROW_IN_MESSAGE.search(message)
    sheet_match = _SHEET_IN_MESSAGE.search(message)
    row = int(row_match.group(1)) if row_match else None
    sheet = sheet_match.group(1).lower() if sheet_match else ("survey" if row is not None else None)
    text = " ".join(message.split())
    return Issue(code, severity, text, _location(source, sheet, row))


def _location(source: str, sheet: str | None, row: int | None) -> Location:
    return Location(file=source, sheet=sheet, row=row)


def java_available() -> bool:
    return shutil.which("java") is not None


def run_odk_validate(xform: str) -> tuple[bool | None, list[Issue]]:
    """Run ODK Validate (pyxform's bundled JavaRosa validator) on XForm text.

    Returns (verdict, issues): True valid, False invalid, None when Java is missing or the run did not finish.
    """
    if not java_available():
        return None, [
            warning(
                FORM_NOT_VALIDATED,
                "Java was not found, so ODK Validate (JavaRosa) did not check this form. Install Java 17 "
                "(Debian: apt-get install openjdk-17-jre-headless) and build again before fieldwork.",
            )
        ]
    with tempfile.TemporaryDirectory(prefix="migkit-validate-") as tmp:
        path = Path(tmp) / "form.xml"
        path.write_text(xform, encoding="utf-8")
        try:
            proc = subprocess.run(
                ["java", "-Djava.awt.headless=true", "-jar", str(ODK_VALIDATE_JAR), str(path)],
                capture_output=True,
                text=True,
                timeout=ODK_VALIDATE_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None, [
                warning(
                    FORM_NOT_VALIDATED, f"ODK Validate did not finish in {ODK_VALIDATE_TIMEOUT_SECONDS} s."
                )
            ]
    stderr = proc.stderr.replace(str(path), "form.xml").strip()
    if proc.returncode == 0:
        issues = [warning(FORM_ODK_VALIDATE_WARNING, " ".join(stderr.split()))] if stderr else []
        return True, issues
    cleaned = odk_validate.ErrorCleaner.odk_validate(stderr) if stderr else "no message"
    return False, [
        error(FORM_ODK_VALIDATE_ERROR, "ODK Validate rejected the form: " + " ".join(cleaned.split()))
    ]


def _settings_of(xform: str) -> tuple[str | None, str | None, str | None]:
    root = parse_untrusted(xform)
    ns = {"h": "http://www.w3.org/1999/xhtml", "x": "http://www.w3.org/2002/xforms"}
    title = root.findtext("h:head/h:title", namespaces=ns)
    instance = root.find("h:head/x:model/x:instance", namespaces=ns)
    data = instance[0] if instance is not None and len(instance) else None
    if data is None:
        return None, None, title
    return data.get("id"), data.get("version"), title


def compile_form(
    path: str | os.PathLike[str], *, validate: bool = True, strict: bool = False
) -> CompiledForm:
    """Compile one XLSForm (.xlsx, .xls, .md, .csv) to an XForm, optionally checked by ODK Validate.

    Parameters:
        path: the XLSForm file.
        validate: run ODK Validate (needs Java); without Java the form is reported "not validated".
        strict: make pyxform warnings (such as missing translations) errors.

    Returns a CompiledForm; compilation problems are issues in it, never exceptions.
    """
    source = Path(path)
    name = str(source)

    def failed(issue: Issue) -> CompiledForm:
        return CompiledForm(name, None, None, None, None, None, None, (issue,))

    if not source.is_file():
        return failed(error(INPUT_MISSING, "The XLSForm file does not exist; check the path.", file=name))
    if source.suffix.lower() not in FORM_SUFFIXES:
        suffixes = ", ".join(FORM_SUFFIXES)
        message = f"Not an XLSForm: the file name must end in {suffixes}."
        return failed(error(FORM_INVALID, message, file=name))
    pyxform_warnings: list[str] = []
    try:
        result = convert(xlsform=source, warnings=pyxform_warnings, validate=False, pretty_print=True)
    except PyXFormError as exc:
        return failed(issue_from_pyxform(str(exc), name, Severity.ERROR, FORM_INVALID))
    except Exception as exc:  # pyxform raises plain exceptions for unreadable workbooks
        reason = f"{type(exc).__name__}: {exc}"
        message = f"pyxform could not read this file as an XLSForm ({reason})."
        return failed(error(FORM_INVALID, message, file=name))
    severity = Severity.ERROR if strict else Severity.WARNING
    issues = [issue_from_pyxform(w, name, severity, FORM_PYXFORM_WARNING) for w in pyxform_warnings]
    try:
        form_id, version, title = _settings_of(result.xform)
    except UntrustedXMLError as exc:
        # pyxform copies extra column headers (of the choices sheet, say) into element names unchecked.
        message = (
            f"pyxform wrote an XForm that is not well-formed XML ({exc}). A column header is probably not a "
            "valid XML name: use letters, digits, _ and - only, starting with a letter."
        )
        return failed(error(FORM_INVALID, message, file=name))
    validated: bool | None = None
    if validate:
        validated, validate_issues = run_odk_validate(result.xform)
        issues.extend(
            Issue(i.code, i.severity, i.message, _location(name, None, None)) for i in validate_issues
        )
    return CompiledForm(
        name, form_id, version, title, result.xform, result.itemsets, validated, tuple(issues)
    )
