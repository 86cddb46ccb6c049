"""Companion syntax for what pyreadstat cannot write: `.sps` (SPSS) and `.do` (Stata) files."""

from __future__ import annotations

import re
from collections.abc import Sequence

from toolkit import __version__
from toolkit.export.names import one_line, truncate_bytes, wrap
from toolkit.export.plan import TablePlan, Variable, xlsform_refs
from toolkit.settings import (
    SPSS_NAME_MAX_BYTES,
    SPSS_VARIABLE_LABEL_MAX_BYTES,
)
from toolkit.xform import FormModel, Node

# --- companion syntax ---------------------------------------------------------------------------------------


def _name_lines(names: Sequence[str], tail: str, width: int = 100) -> str:
    lines, current = [], ""
    for name in names:
        if current and len(current) + len(name) + 1 > width:
            lines.append(current)
            current = name
        else:
            current = f"{current} {name}" if current else name
    lines.append(current + tail)
    return "\n    ".join(lines)


def _sps_quote(text: str, chunk: int = 80) -> str:
    """A quoted SPSS string; long text is split into pieces joined with `+` on indented lines, because old
    SPSS versions cut syntax lines at 251 bytes."""
    pieces: list[str] = []
    rest = text
    while len(rest.encode("utf-8")) > chunk:
        head = rest.encode("utf-8")[:chunk].decode("utf-8", "ignore") or rest[0]
        pieces.append(head)
        rest = rest[len(head) :]
    pieces.append(rest)
    return " +\n      ".join("'" + piece.replace("'", "''") + "'" for piece in pieces)


def sps_text(plan: TablePlan, *, form: FormModel, language: str | None, file_name: str) -> str:
    """SPSS syntax for what a .sav written by pyreadstat cannot hold: MRSETS, WEIGHT BY, levels, documents."""
    lines = [
        f"* Companion syntax for {file_name}, written by migkit {__version__}.",
        "* It opens the file (run it from the folder of the file), sets measurement levels, "
        "multiple-response",
        "* sets and the weight, and adds documents. Uncomment the last line to keep the changes in the file.",
        f"GET FILE={_sps_quote(file_name)}.",
    ]
    by_level: dict[str, list[str]] = {}
    for var in plan.variables:
        by_level.setdefault(var.measure.upper(), []).append(var.spss_name)
    # Syntax lines stay short (old SPSS versions cut lines at 251 bytes); continuation lines are indented.
    parts = [_name_lines(names, f" ({level})") for level, names in by_level.items()]
    lines.append("VARIABLE LEVEL\n  " + "\n  /".join(parts) + ".")
    groups: dict[str, list[Variable]] = {}
    for var in plan.variables:
        if var.multiple:
            groups.setdefault(var.multiple, []).append(var)
    # A multiple-dichotomy set needs at least two variables (PSPP and SPSS refuse one).
    groups = {source: dummies for source, dummies in groups.items() if len(dummies) >= 2}
    if groups:
        owner = {var.name: var for var in plan.variables}
        mr = ["MRSETS"]
        for source, dummies in groups.items():
            set_name = "$" + owner[source].spss_name[: SPSS_NAME_MAX_BYTES - 1]
            label, _ = truncate_bytes(owner[source].label, SPSS_VARIABLE_LABEL_MAX_BYTES)
            mr.append(f"  /MDGROUP NAME={set_name} LABEL={_sps_quote(label)}")
            mr.append("    CATEGORYLABELS=VARLABELS VALUE=1")
            mr.append("    VARIABLES=" + _name_lines([d.spss_name for d in dummies], ""))
        lines.append("\n".join(mr) + ".")
    weight = _weight_of(plan)
    if weight is not None:
        lines.append(f"WEIGHT BY {weight.spss_name}.")
    docs = [
        f"Form id {form.form_id}, version {form.version or '-'}, title {form.title or '-'}.",
        f"Table {plan.name}. Labels in {language or 'the form language'}. migkit {__version__}.",
        "Date-times are device local wall-clock time; <name>_tz is the UTC offset in minutes.",
        "Skipped questions are system-missing; don't know/refused codes are user-missing.",
    ]
    # DOCUMENT text runs to the end of the command, and a period at the end of a line ends a command, so no
    # line but the last may end with one; each line is stored as an 80-byte record.
    text = [re.sub(r"[\s.]+$", "", line) or "-" for d in docs for line in wrap(d, 76)]
    lines.append("DOCUMENT\n" + "\n".join("  " + line for line in text) + ".")
    lines.append(f"* SAVE OUTFILE={_sps_quote(file_name)}.")
    return "\n".join(lines) + "\n"


def _do_escape(text: str) -> str:
    """Text safe on one do-file line: no macro expansion (`$`, backtick) and no comment markers.

    A backslash is special to Stata only before `$` and a backtick, where it stops the expansion; elsewhere it
    is an ordinary character and is left alone.
    """
    text = one_line(text).replace("$", "\\$").replace("`", "\\`")
    return text.replace("/*", "/ *").replace("*/", "* /").replace("//", "/ /")


def do_text(plan: TablePlan, *, form: FormModel, language: str | None, file_name: str) -> str:
    """A do-file with what .dta written by pyreadstat cannot hold: notes and characteristics, and svyset."""
    lines = [
        f"* Companion do-file for {file_name}, written by migkit {__version__}.",
        "* Run it from the folder of the file. It adds notes and characteristics (full question text, "
        "XLSForm",
        "* name, type, relevance, constraint, calculation) and declares the survey design when it is known.",
        f'use "{file_name}", clear',
        "notes: " + _do_escape(f"Form {form.form_id} version {form.version or '-'}: {form.title or '-'}"),
        "notes: "
        + _do_escape(f"Labels in {language or '-'}. Date-times are device local time; _tz = UTC offset."),
    ]
    for var in plan.variables:
        name = var.stata_name
        node = form.nodes.get(var.path) if var.path else None
        lines.append(f"notes {name}: {_do_escape(var.label)}")
        lines.append(f"char {name}[Odk_name] {_do_escape(var.name)}")
        if var.path:
            lines.append(f"char {name}[Odk_path] {_do_escape(var.path)}")
        if var.question_type:
            qtype = var.question_type + (
                f" {node.choice_list}" if node is not None and node.choice_list else ""
            )
            lines.append(f"char {name}[Odk_type] {_do_escape(qtype)}")
        if node is not None:
            relevant = _relevance(form, node)
            for key, value in (
                ("Odk_relevant", xlsform_refs(form, relevant)),
                ("Odk_constraint", xlsform_refs(form, node.constraint)),
                ("Odk_calculate", xlsform_refs(form, node.calculate)),
            ):
                if value:
                    lines.append(f"char {name}[{key}] {_do_escape(value)}")
    weight = _weight_of(plan)
    if weight is not None:
        names = {var.name: var.stata_name for var in plan.variables}
        psu = names.get(plan.design.psu or "") or "_n"
        strata = names.get(plan.design.strata or "")
        option = f", strata({strata})" if strata else ""
        lines.append(f"svyset {psu} [pweight={weight.stata_name}]{option}")
        replicates = [var.stata_name for var in plan.variables if var.replicate]
        if replicates:
            lines.extend(_replicate_svyset(plan, weight.stata_name, replicates))
    else:
        lines.append(
            "* No weight variable in this table: run `migkit weights` (or merge the household weight on "
            "hh_id)."
        )
    lines.append(f'* save "{file_name}", replace')
    return "\n".join(lines) + "\n"


# Stata's replicate-weight options per `migkit weights` method. Jackknife replicates need per-replicate
# multipliers (JK1: (R-1)/R; JKn: (n_h-1)/n_h of the replicate's stratum), so that line stays a comment.
_REPLICATE_OPTIONS = {"bootstrap": "bsrweight", "brr": "brrweight", "jk1": "jkrweight", "jkn": "jkrweight"}
_REPLICATE_VCE = {"bsrweight": "bootstrap", "brrweight": "brr", "jkrweight": "jackknife"}


def _replicate_svyset(plan: TablePlan, weight: str, replicates: list[str]) -> list[str]:
    settings = plan.design.replicates or {}
    method = str(settings.get("method") or "").lower()
    option = _REPLICATE_OPTIONS.get(method)
    if option is None:
        return [f"* Replicate weights {replicates[0]}-{replicates[-1]} (method {method or 'unknown'})."]
    span = f"{replicates[0]}-{replicates[-1]}"
    fay = settings.get("fay")
    extra = f" fay({fay})" if option == "brrweight" and fay else ""
    # No `mse`: like `migkit estimate` and R's svrepdesign by default, the variance is centred on the mean of the
    # replicate estimates; add `mse` to centre on the full-sample estimate (`migkit estimate --mse`).
    line = f"svyset [pweight={weight}], {option}({span}) vce({_REPLICATE_VCE[option]}){extra}"
    note = (
        f"* Replicate weights from `migkit weights` ({method}, {len(replicates)} replicates); for "
        "design-based standard errors from them (as `migkit estimate`; add mse for its --mse):"
    )
    if option == "jkrweight":
        return [note, "* (set multiplier() per replicate: (R-1)/R for JK1, (n_h-1)/n_h for JKn)", "* " + line]
    return [note, "* " + line]


def _relevance(form: FormModel, node: Node) -> str | None:
    """The question's own relevance and that of its enclosing groups, joined with `and`."""
    parts = [n.relevant for n in form.ancestors(node.path) if n.relevant]
    if node.relevant:
        parts.append(node.relevant)
    return " and ".join(f"({p})" for p in parts) if len(parts) > 1 else (parts[0] if parts else None)


def _weight_of(plan: TablePlan) -> Variable | None:
    weights = [var for var in plan.variables if var.weight]
    if plan.design.weight:
        chosen = [var for var in plan.variables if var.name == plan.design.weight]
        weights = chosen or weights
    return weights[0] if weights else None
