"""The function table (toolkit.xpath.functions): every function's arity is checked when the expression is
compiled, and each column implementation gives what the scalar implementation gives, row by row."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from toolkit.xpath import FUNCTIONS, EvalEnv, XNode, XPathError, XPathSyntaxError, compile_xpath
from toolkit.xpath.columns import NotVectorizable, scalar_at, tv_of_scalars

# Column implementations that need more than argument columns (the form's choice labels).
NEEDS_CONTEXT = {"jr:choice-name"}
COMPARED = sorted(
    name
    for name, function in FUNCTIONS.items()
    if function.vector is not None and function.scalar is not None and name not in NEEDS_CONTEXT
)
# Where the column implementation differs from the scalar one (the reference, checked against JavaRosa), found by
# the test below when the table was made; to be fixed in the column implementations.
# Functions whose column implementation is known to differ from the scalar one (none now: keep it so).
KNOWN_DIFFERENCES: dict[str, str] = {}


def _call(name: str, count: int) -> str:
    return f"{name}({', '.join(['1'] * count)})"


def _wrong_counts(fewest: int, most: int | None) -> list[int]:
    return [count for count in (fewest - 1, None if most is None else most + 1) if count is not None and count >= 0]


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_refuses_a_wrong_number_of_arguments(name: str) -> None:
    function = FUNCTIONS[name]
    counts = _wrong_counts(function.fewest, function.most)
    for count in counts:
        with pytest.raises(XPathSyntaxError):
            compile_xpath(_call(name, count))
    assert counts or (function.fewest == 0 and function.most is None)  # only variadic ones take any number


def test_the_table_names_every_column_implementation_it_compares() -> None:
    assert {"selected", "concat", "substr", "round", "regex", "decimal-date-time", "format-date"} <= set(COMPARED)


TEXTS = st.sampled_from(["", "a", "a b", " b  c ", "1", "2.5", "-3", "x y z", "2026-11-27", "true", "0", "abc"])
VALUES = st.one_of(
    TEXTS,
    st.integers(-100, 100).map(float) | st.sampled_from([0.5, -2.25, 1e-3, 12345.678, math.nan]),
    st.booleans(),
    st.dates(min_value=date(1950, 1, 1), max_value=date(2060, 12, 31)),
)


def _same(scalar: Any, column: Any) -> bool:
    if isinstance(scalar, float) and isinstance(column, float):
        return (math.isnan(scalar) and math.isnan(column)) or math.isclose(scalar, column, rel_tol=1e-12)
    if isinstance(scalar, datetime) and isinstance(column, datetime):
        return abs((scalar - column).total_seconds()) < 1e-3
    return type(scalar) is type(column) and scalar == column


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_DIFFERENCES[n])) if n in KNOWN_DIFFERENCES else n
        for n in COMPARED
    ],
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_column_implementation_equals_the_scalar_one(name: str, data: st.DataObject) -> None:
    function = FUNCTIONS[name]
    assert function.vector is not None and function.scalar is not None
    count = data.draw(st.integers(max(function.fewest, 1), function.most or function.fewest + 2), label="arguments")
    rows = data.draw(st.lists(st.tuples(*[VALUES] * count), min_size=1, max_size=6), label="rows")
    env = EvalEnv(root=XNode("data"), tz=UTC)
    try:
        expected = [function.scalar(env, *row) for row in rows]
    except XPathError:
        assume(False)  # the scalar evaluator reports the error on the submission; nothing to compare
    columns = [tv_of_scalars([row[i] for row in rows]) for i in range(count)]
    try:
        result = function.vector(*columns)
    except NotVectorizable:
        assume(False)  # the column evaluator hands such data to the scalar one
    got = [scalar_at(result, i) for i in range(len(rows))]
    assert all(_same(a, b) for a, b in zip(expected, got, strict=True)), list(zip(rows, expected, got, strict=True))
