"""`migkit forms`: build the XLSForms of a folder into XForms (compiled and checked by `toolkit.xlsform`) and lint
them (`toolkit.forms.lint`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import ToolkitError, error
from toolkit.files import write_text_atomic
from toolkit.forms.lint import (
    LINT_CHOICE_DUPLICATE_LABEL,
    LINT_CHOICE_DUPLICATE_NAME,
    LINT_CHOICE_NOT_INTEGER,
    LINT_CHOICE_UNKNOWN,
    LINT_EXPRESSION_INVALID,
    LINT_FORM_INVALID,
    LINT_FORWARD_REFERENCE,
    LINT_LIST_UNUSED,
    LINT_NAME_CASE_COLLISION,
    LINT_NAME_INVALID,
    LINT_NAME_TOO_LONG,
    LINT_NAME_TOO_LONG_WIDE,
    LINT_NO_PUBLIC_KEY,
    LINT_REPEAT_REFERENCE,
    LINT_RESERVED_WORD,
    LINT_SELECT_MULTIPLE_EQUALS,
    LINT_TRANSLATION_MISSING,
    LINT_TYPE_MISMATCH,
    lint_form,
)
from toolkit.xlsform import (
    FORM_INVALID,
    FORM_NOT_FOUND,
    FORM_NOT_VALIDATED,
    FORM_ODK_VALIDATE_ERROR,
    FORM_ODK_VALIDATE_WARNING,
    FORM_PYXFORM_WARNING,
    FORM_SUFFIXES,
    ODK_VALIDATE_JAR,
    ODK_VALIDATE_TIMEOUT_SECONDS,
    PYXFORM_VERSION,
    CompiledForm,
    compile_form,
    java_available,
    run_odk_validate,
)


@dataclass(frozen=True)
class BuildResult:
    """Every form of a `migkit forms build` run."""

    forms: tuple[CompiledForm, ...]
    pyxform_version: str = PYXFORM_VERSION

    @property
    def ok(self) -> bool:
        return all(form.ok for form in self.forms)


def find_forms(folder: str | os.PathLike[str]) -> list[Path]:
    """The XLSForms directly in a folder (temporary Excel lock files `~$…` left out), sorted by name."""
    root = Path(folder)
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file() and p.suffix.lower() in {".xlsx", ".xls"} and not p.name.startswith(("~$", "."))
    )


def build_forms(
    paths: Sequence[str | os.PathLike[str]] | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    validate: bool = True,
    strict: bool = False,
    forms_dir: str | os.PathLike[str] = "forms",
) -> BuildResult:
    """Compile XLSForms and write `<form_id>.xml` (+ `<form_id>-media/itemsets.csv`) for each that compiles.

    Parameters:
        paths: the XLSForms; default every .xlsx/.xls in `forms_dir`.
        out_dir: where XForms go; default next to each XLSForm.
        validate: run ODK Validate on each XForm.
        strict: pyxform warnings become errors.
        forms_dir: the folder searched when `paths` is empty.
    """
    sources: Iterable[Path]
    if paths:
        sources = [Path(p) for p in paths]
    else:
        folder = Path(forms_dir)
        if not folder.is_dir():
            raise ToolkitError(
                error(FORM_NOT_FOUND, "No forms folder here; name the XLSForms to build.", file=str(folder))
            )
        sources = find_forms(folder)
    compiled: list[CompiledForm] = []
    for source in sources:
        form = compile_form(source, validate=validate, strict=strict)
        if form.xform is not None and form.form_id and form.ok:
            target_dir = Path(out_dir) if out_dir is not None else source.parent
            xform_path = target_dir / f"{form.form_id}.xml"
            write_text_atomic(xform_path, form.xform, shared=True)
            if form.itemsets_csv:
                write_text_atomic(target_dir / f"{form.form_id}-media" / "itemsets.csv", form.itemsets_csv, shared=True)
            form = CompiledForm(
                form.source,
                form.form_id,
                form.version,
                form.title,
                form.xform,
                form.itemsets_csv,
                form.validated,
                form.issues,
                str(xform_path),
                form.pyxform_version,
            )
        compiled.append(form)
    return BuildResult(tuple(compiled))


__all__ = [
    "FORM_INVALID",
    "FORM_NOT_FOUND",
    "FORM_NOT_VALIDATED",
    "FORM_ODK_VALIDATE_ERROR",
    "FORM_ODK_VALIDATE_WARNING",
    "FORM_PYXFORM_WARNING",
    "FORM_SUFFIXES",
    "LINT_CHOICE_DUPLICATE_LABEL",
    "LINT_CHOICE_DUPLICATE_NAME",
    "LINT_CHOICE_NOT_INTEGER",
    "LINT_CHOICE_UNKNOWN",
    "LINT_EXPRESSION_INVALID",
    "LINT_FORM_INVALID",
    "LINT_FORWARD_REFERENCE",
    "LINT_LIST_UNUSED",
    "LINT_NAME_CASE_COLLISION",
    "LINT_NAME_INVALID",
    "LINT_NAME_TOO_LONG",
    "LINT_NAME_TOO_LONG_WIDE",
    "LINT_NO_PUBLIC_KEY",
    "LINT_REPEAT_REFERENCE",
    "LINT_RESERVED_WORD",
    "LINT_SELECT_MULTIPLE_EQUALS",
    "LINT_TRANSLATION_MISSING",
    "LINT_TYPE_MISMATCH",
    "ODK_VALIDATE_JAR",
    "ODK_VALIDATE_TIMEOUT_SECONDS",
    "PYXFORM_VERSION",
    "BuildResult",
    "CompiledForm",
    "build_forms",
    "compile_form",
    "find_forms",
    "java_available",
    "lint_form",
    "run_odk_validate",
]
