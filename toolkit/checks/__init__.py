"""The checks `migkit validate` makes, below the stages: the rule catalogue and the per-instance evaluator.

- `rules`: each rule once (code, severity, message template, the JavaRosa behaviour it mirrors), `Finding`, and
  `finding()`, the one place findings are made;
- `compiled`: the form with its bind expressions compiled once (`compile_form`);
- `fields`: the checks on one field, written once and run through an evaluator (`FieldBackend`);
- `instance`: the per-instance evaluator (one instance tree at a time); the column evaluator is validate's
  (`toolkit.validate.columns`), over the ingest tables.

Validate runs both; simulate checks every drawn interview with the per-instance one and plants faults under the
catalogue's codes.
"""

from toolkit.checks.compiled import BindRules, CompiledForm, compile_form, stored_volatile
from toolkit.checks.fields import FieldBackend, check_field
from toolkit.checks.instance import instance_tree, validate_submissions, validate_tree
from toolkit.checks.rules import Finding, Rule, ValidationResult, Where, finding

__all__ = [
    "BindRules",
    "CompiledForm",
    "FieldBackend",
    "Finding",
    "Rule",
    "ValidationResult",
    "Where",
    "check_field",
    "compile_form",
    "finding",
    "instance_tree",
    "stored_volatile",
    "validate_submissions",
    "validate_tree",
]
