"""Cross-form links: every women's questionnaire names an existing household and the woman it selected.

The women's form (`ncamig_women`) is filled in on a separate screen from the household form (`ncamig_household`):
the interviewer copies the household key `id_hh_uid`, the selected roster line `wg_sel_line` (as `wg_line`) and
the number of eligible women `wg_n_elig` from the household form's selection note. A typo there detaches the
interview from its household (no household weight, no roster) or interviews a woman the random pick did not
select (selection bias in the violence and forced-labour modules). This module checks each women's submission
against the household data:

    link_missing   its id_hh_uid is not the key of any household submission
    link_mismatch  the household exists but selected another line, or counted another number of eligible women

    findings = check_links(women_tables, household_tables)   # both IngestResult (ingest or read_tables)

`migkit validate --link FORM=DATA` and `link = "FORM=DATA"` in survey.toml's [validate] section run it next to the
skip-logic checks; the findings are merged into the validation result (`with_link_findings`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit import submissions
from toolkit.dataset import DataFolder
from toolkit.errors import INPUT_MISSING, ToolkitError, define, error
from toolkit.submissions.result import IngestResult
from toolkit.validate import Finding, ValidationResult
from toolkit.xform import load_form

LINK_MISSING = define("link_missing", "A linked submission names a parent record (household) that does not exist")
LINK_MISMATCH = define(
    "link_mismatch", "A linked submission disagrees with its parent record (e.g. not the selected woman)"
)
LINK_USAGE = define("link.usage", "A --link option or [validate] link setting cannot be used")


@dataclass(frozen=True)
class LinkRule:
    """How a child form links to its parent form: the key pair and the fields that must agree."""

    child_form: str
    parent_form: str
    key: tuple[str, str]  # (child field, parent field)
    agree: tuple[tuple[str, str], ...]  # (child field, parent field) pairs that must be equal


# The templates' links (forms/README.md, "Women's questionnaire").
RULES: tuple[LinkRule, ...] = (
    LinkRule(
        child_form="ncamig_women",
        parent_form="ncamig_household",
        key=("id_hh_uid", "id_hh_uid"),
        agree=(("wg_line", "wg_sel_line"), ("wg_n_elig", "wg_n_elig")),
    ),
)


@dataclass(frozen=True)
class LinkSpec:
    """A `FORM=DATA` link argument: the parent form and its submissions (DATA folder or any validate input)."""

    form: Path
    data: Path

    @classmethod
    def parse(cls, text: str, base: Path | None = None) -> LinkSpec:
        """Parse `FORM=DATA`; relative paths are taken from `base` (the survey.toml folder) when given.

        Parameters:
            text: the option value.
            base: folder that relative paths are resolved against.
        """
        form, sep, data = text.partition("=")
        if not sep or not form.strip() or not data.strip():
            raise ToolkitError(
                error(
                    LINK_USAGE,
                    f"--link takes FORM=DATA (the household form and its data), not {text!r}; for example "
                    "--link forms/household.xlsx=out/household/data.",
                )
            )
        root = base or Path()
        return cls(root / form.strip(), root / data.strip())


def rule_for(child_form: str, parent_form: str) -> LinkRule:
    """The link rule between two form ids (ToolkitError when the forms do not link)."""
    for rule in RULES:
        if rule.child_form == child_form and rule.parent_form == parent_form:
            return rule
    known = ", ".join(f"{r.child_form} -> {r.parent_form}" for r in RULES)
    raise ToolkitError(
        error(
            LINK_USAGE,
            f"No link is defined from {child_form} to {parent_form}; known links: {known}. Check that --form "
            "is the women's form and --link names the household form.",
        )
    )


def load_tables(input_path: Path, form_path: Path) -> IngestResult:
    """The tables of `input_path`: a DATA folder as written by `migkit ingest`, or any input ingest reads."""
    if not input_path.exists():
        raise ToolkitError(
            error(INPUT_MISSING, "The linked data does not exist; check the path after '='.", file=str(input_path))
        )
    if input_path.is_dir() and DataFolder.exists(input_path):
        return submissions.read_tables(input_path)
    return submissions.read_submissions([input_path], load_form(form_path))


def _column(tables: IngestResult, name: str) -> tuple[str, str]:
    """(column name, node path) of a top-level variable of the main table; a usage error when the data lack it."""
    for info in tables.columns.get(tables.form_id, ()):
        if info.name == name or (info.path and info.path.rsplit("/", 1)[-1] == name):
            return info.name, info.path
    raise ToolkitError(
        error(
            LINK_USAGE,
            f"The {tables.form_id} data has no column {name}: it was collected with an older version "
            "of the form; the link check needs questionnaires v2 (forms/CHANGES.md, item 5).",
        )
    )


def _text(value: Any) -> str:  # a cell of any dtype
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def check_links(child: IngestResult, parent: IngestResult) -> tuple[Finding, ...]:
    """Findings for child submissions whose link to a parent submission is missing or disagrees.

    Parameters:
        child: the women's tables.
        parent: the household tables.
    """
    rule = rule_for(child.form_id, parent.form_id)
    needed = [(child, rule.key[0]), (parent, rule.key[1])] + [
        (side, name) for pair in rule.agree for side, name in ((child, pair[0]), (parent, pair[1]))
    ]
    for tables, name in needed:
        _column(tables, name)  # every column first: a usage error before any finding
    parent_main = parent.tables[parent.form_id]
    parent_key = _column(parent, rule.key[1])[0]
    by_key: dict[str, list[pd.Series]] = {}
    for _, row in parent_main.iterrows():
        by_key.setdefault(_text(row[parent_key]), []).append(row)
    child_main = child.tables[child.form_id]
    child_key, child_key_path = _column(child, rule.key[0])
    findings: list[Finding] = []
    for _, row in child_main.iterrows():
        instance = _text(row.get("KEY"))
        key = _text(row[child_key])
        parents = by_key.get(key, [])
        if not parents:
            findings.append(
                Finding(
                    instance,
                    child_key_path,
                    LINK_MISSING,
                    key,
                    None,
                    f"{rule.key[0]} {key!r} is not the key of any {parent.form_id} submission: the household "
                    "questionnaire is missing or the country, PSU or household number was mistyped; compare "
                    "with the household form and the listing.",
                    variable=rule.key[0],
                )
            )
            continue
        findings.extend(
            _disagreements(
                rule=rule, child=child, parent=parent, row=row, parents=parents, instance=instance, key=key
            )
        )
    return tuple(findings)


def _disagreements(
    *,
    rule: LinkRule,
    child: IngestResult,
    parent: IngestResult,
    row: pd.Series,
    parents: Sequence[pd.Series],
    instance: str,
    key: str,
) -> Iterable[Finding]:
    for child_name, parent_name in rule.agree:
        column, path = _column(child, child_name)
        parent_column = _column(parent, parent_name)[0]
        ours = _text(row[column])
        theirs = sorted({_text(p[parent_column]) for p in parents})
        if ours in theirs:
            continue
        shown = " or ".join(repr(t) for t in theirs)
        yield Finding(
            instance,
            path,
            LINK_MISMATCH,
            ours,
            None,
            f"{child_name} is {ours!r} but household {key} has {parent_name} {shown}: the interviewer copied "
            "the selection wrongly or interviewed another woman; check the household form's selection note "
            "before using this interview.",
            variable=child_name,
        )


def with_link_findings(result: ValidationResult, findings: Sequence[Finding]) -> ValidationResult:
    """The validation result with the link findings added (statistics and validity updated)."""
    if not findings:
        return result
    merged = (*result.findings, *findings)
    stats = dict(result.stats)
    by_code = dict(stats.get("by_code", {}))
    by_variable = dict(stats.get("by_variable", {}))
    for finding in findings:
        by_code[finding.code] = by_code.get(finding.code, 0) + 1
        if finding.variable:
            by_variable[finding.variable] = by_variable.get(finding.variable, 0) + 1
    stats["findings"] = len(merged)
    stats["by_code"] = dict(sorted(by_code.items()))
    stats["by_variable"] = dict(sorted(by_variable.items(), key=lambda kv: -kv[1]))
    stats["instances_with_findings"] = len({f.instance_id for f in merged if f.instance_id and f.severity == "error"})
    stats["link_findings"] = len(findings)
    return replace(result, valid=False, stats=stats, findings=merged)


def validate_links(
    child_input: Path, child_form: Path, links: Sequence[LinkSpec]
) -> tuple[Finding, ...]:
    """Link findings of the child submissions against every linked parent (see `check_links`).

    Parameters:
        child_input: the submissions being validated (any validate input).
        child_form: their form.
        links: the parent forms and data.
    """
    child = load_tables(child_input, child_form)
    findings: list[Finding] = []
    for link in links:
        findings.extend(check_links(child, load_tables(link.data, link.form)))
    return tuple(findings)
