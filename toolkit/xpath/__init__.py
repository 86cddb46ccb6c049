"""The ODK XPath evaluator: parse once, evaluate over a submission, with JavaRosa's semantics.

ODK Collect evaluates skip logic, constraints and calculations with JavaRosa. This module reproduces
JavaRosa's XPath engine closely enough that its verdicts match (tests/test_validate_javarosa.py runs JavaRosa
itself on the same forms and instances), so that `validate` and `simulate` share one evaluator.

Public API (stable; `simulate` and `validate` use it)::

    from toolkit.xpath import compile_xpath, build_tree, EvalEnv, to_boolean, to_number, to_string

    expr = compile_xpath("/data/age >= 18 and selected(/data/langs, 'ru')")   # parsed once, cached
    root = build_tree(lxml_root_element, types={"/data/age": "int"})           # instance tree (XNode)
    env = EvalEnv(root=root, secondary={"yn": build_tree(choices_root)}, today=date(2026, 11, 27))
    value = expr.evaluate(root.find("/data/age"), env=env)                     # Python value, see below
    ok = expr.evaluate_boolean(context_node, env=env)

Values follow JavaRosa's types: `str`, `float` (numbers, NaN included), `bool`, `datetime.date` (dates) and
`datetime.datetime` (timezone-aware, for dateTime), and `list[XNode]` for node-sets. Coercions are `to_boolean`,
`to_number`, `to_string`, `to_date` (JavaRosa's XPathFuncExpr.toBoolean/toNumeric/toString/toDate). A node's value is
typed by its bind type as JavaRosa does (int/decimal nodes are numbers, date nodes dates, empty nodes the empty string);
pass the types when building the tree (`build_tree(..., types=...)`).

Errors: `XPathSyntaxError` (the expression does not parse), `XPathRejectedError` (a subclass: valid XPath 1.0
that JavaRosa refuses when it loads a form, such as unions, `//`, axes other than child/attribute, node tests,
paths after other expressions than instance()/current(), `$variables`, or nesting deeper than
MAX_EXPRESSION_DEPTH; lint gives the same messages), `XPathUnsupportedError` (a function this evaluator does not
implement; raised by `compile_xpath`, so callers report it once per expression), `XPathEvalError` (a run-time
error JavaRosa would also raise, e.g. a repeated field used as a single value).

As in JavaRosa, an absolute path evaluated inside a repeat is pinned to the context's repeat instances
(`/data/hh/age` evaluated in `/data/hh[2]/...` reads `/data/hh[2]/age`). tests/test_xpath_javarosa_cases.py
runs JavaRosa's own expression tests (tests/fixtures/javarosa-xpath) against this module.

The package: `syntax` (the one tokenizer and parser, typed nodes with positions), `values` (JavaRosa's types,
coercions and the lexical rules of stored answers), `instance` (the instance tree and the evaluation
environment), `functions` (the function table: name, arity, scalar and column implementations), `scalar` (the
per-instance evaluator), `columns` and `vector` (the column evaluator). This module re-exports the public names.
"""

from __future__ import annotations

from toolkit.xpath.functions import FUNCTIONS, Function, XPathUnsupportedError, value_function
from toolkit.xpath.instance import EvalEnv, XNode, build_tree, load_secondary_instance
from toolkit.xpath.scalar import VOLATILE_FUNCTIONS, CompiledExpr, compile_tree, compile_xpath
from toolkit.xpath.syntax import (
    MAX_EXPRESSION_DEPTH,
    NODE_TYPE_TESTS,
    XPATH_AXES,
    XPathError,
    XPathRejectedError,
    XPathSyntaxError,
    javarosa_rejection,
    nesting_too_deep,
    parse,
    too_deep_message,
)
from toolkit.xpath.values import (
    EPOCH,
    XPathEvalError,
    java_double_str,
    parse_datetime,
    to_boolean,
    to_date,
    to_number,
    to_string,
    wrap_calculated,
)

__all__ = [
    "EPOCH",
    "FUNCTIONS",
    "MAX_EXPRESSION_DEPTH",
    "NODE_TYPE_TESTS",
    "VOLATILE_FUNCTIONS",
    "XPATH_AXES",
    "CompiledExpr",
    "EvalEnv",
    "Function",
    "XNode",
    "XPathError",
    "XPathEvalError",
    "XPathRejectedError",
    "XPathSyntaxError",
    "XPathUnsupportedError",
    "build_tree",
    "compile_tree",
    "compile_xpath",
    "java_double_str",
    "javarosa_rejection",
    "load_secondary_instance",
    "nesting_too_deep",
    "parse",
    "parse_datetime",
    "to_boolean",
    "to_date",
    "to_number",
    "to_string",
    "too_deep_message",
    "value_function",
    "wrap_calculated",
]
