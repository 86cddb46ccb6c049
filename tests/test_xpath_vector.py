"""The column evaluator's building blocks: which choice filters are the same on every row, and the values and texts
a calculation stores (`wrap`), row by row equal to the scalar rule (`wrap_calculated`)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.xpath import compile_xpath, wrap_calculated
from toolkit.xpath.columns import DEVICE_TZ, no_texts, tv_of_scalars, wrap
from toolkit.xpath.vector import reads_only_the_choice


@pytest.mark.parametrize(
    ("condition", "same_on_every_row"),
    [
        ("name != 'XXA'", True),
        ("nca = '1'", True),
        ("name = '1' or name = '2'", True),
        ("string-length(name) > 2 and not(starts-with(label, 'Other'))", True),
        ("if(name = '1', true(), false())", True),
        ("region = /data/region", False),  # a row's answer
        ("selected(/data/uses, name)", False),
        ("region = current()/../region", False),
        ("name = ../other", False),  # a relative path with more than the choice's column
        ("position() = 1", False),  # reads the context
        ("name != random()", False),  # a draw
        ("today() > date(name)", False),  # the interview day
        ("name[1] = 'a'", False),
    ],
)
def test_a_filter_is_the_same_on_every_row_only_when_it_reads_nothing_but_the_choice(
    condition: str, same_on_every_row: bool
) -> None:
    assert reads_only_the_choice(compile_xpath(condition).ast) is same_on_every_row


def test_the_shared_empty_texts_refuse_writes() -> None:
    """Tagged vectors of numbers share one array of empty texts: writing into it would change every one of them."""
    shared = no_texts(5)
    assert no_texts(5) is shared
    with pytest.raises(ValueError, match="read-only"):
        shared[0] = "x"


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(2**40), max_value=2**40).map(float),
    st.sampled_from(["", " ", "a", " b ", "\t", "12"]),
    st.booleans(),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(_VALUES, min_size=1, max_size=12),
    dtype=st.sampled_from([None, "int", "decimal", "boolean", "date", "dateTime", "string"]),
)
def test_wrap_stores_what_the_scalar_rule_stores_row_by_row(values: list, dtype: str | None) -> None:
    column = tv_of_scalars(values)
    before = (column.t.copy(), column.s.copy(), column.n.copy())
    typed, texts = wrap(column, dtype)
    tz = DEVICE_TZ.get()
    assert texts.tolist() == [wrap_calculated(value, dtype, tz)[0] for value in values]
    # the input is left as it was (wrap shares arrays that do not change instead of copying them)
    assert np.array_equal(column.t, before[0])
    assert column.s.tolist() == before[1].tolist()
    assert np.array_equal(column.n, before[2], equal_nan=True)
    assert len(typed) == len(values)
