"""Columns of XPath values (`TV`: a JavaRosa type tag per row with its text and number), their coercions, the
levels rows belong to, and the column implementations of library functions (named in toolkit.xpath.functions)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache, partial
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_string_dtype

from toolkit.xpath.instance import EvalEnv, XNode
from toolkit.xpath.syntax import XPathError
from toolkit.xpath.values import (
    EPOCH,
    java_double_str,
    java_pow,
    java_round,
    number_to_string,
    parse_datetime,
    string_to_number,
    substring,
    typed_value,
    wrap_calculated,
    xpath_regex,
)

S, N, B, D, DT = (
    0,
    1,
    2,
    3,
    4,
)  # type tags: string, number, boolean, date (days), dateTime (fractional UTC days)


# The devices' time zone for this validation run. dateTime payloads are instants (fractional days since the epoch,
# UTC); their calendar day, their text and a date's midnight are taken in this zone, as JavaRosa does on the device.
DEVICE_TZ: ContextVar[tzinfo] = ContextVar("migkit_device_tz", default=UTC)


def _local_days(n: np.ndarray) -> np.ndarray:
    """Instants (fractional UTC days) -> the whole local days of the devices' time zone."""
    tz = DEVICE_TZ.get()
    if tz is UTC:
        return np.floor(n)

    def day(x: float) -> float:
        if math.isnan(x):
            return x
        return float((datetime.fromtimestamp(x * 86400.0, tz=tz).date() - EPOCH).days)

    return per_unique(day, n, float)


class NotVectorizable(Exception):
    """The expression's shape is not handled column-wise; the caller validates per instance."""


class TV:
    """A tagged vector: per row a JavaRosa value type `t`, a string payload `s` and a number payload `n`."""

    __slots__ = ("n", "s", "t")

    def __init__(self, t: np.ndarray, s: np.ndarray, n: np.ndarray) -> None:
        self.t, self.s, self.n = t, s, n

    @classmethod
    def const(cls, value: Any, size: int) -> TV:
        if isinstance(value, bool):
            return cls(np.full(size, B, np.int8), no_texts(size), np.full(size, float(value)))
        if isinstance(value, float):
            return cls(np.full(size, N, np.int8), no_texts(size), np.full(size, value))
        if isinstance(value, datetime):
            return cls(np.full(size, DT, np.int8), no_texts(size), np.full(size, value.timestamp() / 86400.0))
        if isinstance(value, date):
            return cls(np.full(size, D, np.int8), no_texts(size), np.full(size, float((value - EPOCH).days)))
        s = np.empty(size, dtype=object)
        s[:] = value
        return cls(np.zeros(size, np.int8), s, no_numbers(size))

    def take(self, index: np.ndarray) -> TV:
        return TV(self.t[index], self.s[index], self.n[index])

    def blank_where(self, mask: np.ndarray) -> TV:
        """Rows in `mask` read as the empty string (non-relevant nodes in JavaRosa)."""
        if not mask.any():
            return self
        t, s, n = self.t.copy(), self.s.copy(), self.n.copy()
        t[mask] = S
        s[mask] = ""
        n[mask] = np.nan
        return TV(t, s, n)

    def __len__(self) -> int:
        return len(self.t)


def empty_strings(size: int) -> np.ndarray:
    s = np.empty(size, dtype=object)
    s[:] = ""
    return s


@lru_cache(maxsize=16)
def no_texts(size: int) -> np.ndarray:
    """The string payload of a tagged vector whose rows are all numbers, booleans or dates: one read-only array
    per size, shared (a level of 600,000 repeat rows would otherwise carry 5 MB of pointers per column)."""
    s = empty_strings(size)
    s.flags.writeable = False
    return s


@lru_cache(maxsize=16)
def no_numbers(size: int) -> np.ndarray:
    """The number payload of a tagged vector whose rows are all texts: one read-only array of NaN per size,
    shared like `no_texts`."""
    n = np.full(size, np.nan)
    n.flags.writeable = False
    return n


def where(cond: np.ndarray, a: TV, b: TV) -> TV:
    # a payload both sides share (the read-only `no_texts`/`no_numbers`, or one column) is kept, not copied
    return TV(
        np.where(cond, a.t, b.t),
        a.s if a.s is b.s else np.where(cond, a.s, b.s),
        a.n if a.n is b.n else np.where(cond, a.n, b.n),
    )


def to_num(v: TV) -> np.ndarray:
    out = v.n.copy()
    strings = v.t == S
    if strings.any():
        out[strings] = per_unique(string_to_number, v.s[strings], float)
    dts = v.t == DT
    if dts.any():
        out[dts] = np.floor(v.n[dts])
    return out


def to_bool(v: TV) -> np.ndarray:
    bools = v.t == B
    if bools.all():  # the result of a comparison or of and/or
        return v.n != 0
    out = np.ones(len(v), dtype=bool)
    strings = v.t == S
    if strings.any():
        out[strings] = v.s[strings].astype(bool)
    nums = v.t == N
    if nums.any():
        x = v.n[nums]
        out[nums] = (np.abs(x) > 1e-12) & ~np.isnan(x)
    if bools.any():
        out[bools] = v.n[bools] != 0
    return out


_NUM_TEXT: dict[float, str] = {}


def _num_text(x: float) -> str:
    text = _NUM_TEXT.get(x)
    if text is None:
        text = number_to_string(x)
        if len(_NUM_TEXT) < 200_000:
            _NUM_TEXT[x] = text
    return text


def _days_text(days: float) -> str:
    return (EPOCH + timedelta(days=math.floor(days))).isoformat()


def to_str(v: TV) -> np.ndarray:
    out = v.s.copy()
    nums = v.t == N
    if nums.any():
        out[nums] = per_unique(_num_text, v.n[nums], object)
    bools = v.t == B
    if bools.any():
        out[bools] = np.where(v.n[bools] != 0, "true", "false")
    dates = v.t == D
    if dates.any():
        out[dates] = per_unique(_days_text, v.n[dates], object)
    moments = v.t == DT
    if moments.any():
        out[moments] = per_unique(_days_text, _local_days(v.n[moments]), object)
    return out


def bool_tv(values: np.ndarray) -> TV:
    return TV(np.full(len(values), B, np.int8), no_texts(len(values)), values.astype(float))


def num_tv(values: np.ndarray) -> TV:
    return TV(np.full(len(values), N, np.int8), no_texts(len(values)), values.astype(float))


def str_tv(values: np.ndarray) -> TV:
    return TV(np.zeros(len(values), np.int8), values.astype(object), np.full(len(values), np.nan))


@dataclass
class Level:
    """One table: the rows of a repeat (or the submissions), with the index of each row's parent row."""

    path: str  # generic path of the repeat, or the root
    size: int
    parent: Level | None
    parent_index: np.ndarray | None  # row in parent level, per row
    position: np.ndarray  # 1-based position among siblings (the `<repeat>_no`)

    def ancestors(self) -> list[Level]:
        chain: list[Level] = []
        cursor: Level | None = self
        while cursor is not None:
            chain.append(cursor)
            cursor = cursor.parent
        return chain

    def index_to(self, ancestor: Level) -> np.ndarray:
        """For each row of this level, the row of `ancestor` (an enclosing level) it sits in."""
        memo = self.__dict__.setdefault("_memo", {})
        found = memo.get(id(ancestor))
        if found is None:
            found = memo[id(ancestor)] = self._index_to(ancestor)
        return found

    def _index_to(self, ancestor: Level) -> np.ndarray:
        index = np.arange(self.size)
        cursor: Level = self
        while cursor is not ancestor:
            if cursor.parent is None or cursor.parent_index is None:
                raise NotVectorizable("not an enclosing level")
            index = cursor.parent_index[index]
            cursor = cursor.parent
        return index


@dataclass
class Ctx:
    """What a vector expression reads: levels, columns (typed values), relevance, secondary instances."""

    levels: Mapping[str, Level]
    level_of: Mapping[str, str]  # generic node path -> its level path
    values: dict[str, TV]  # field path -> typed values at its level (in-memory values, calculations updated)
    relevance: dict[str, np.ndarray]  # node path -> inherited relevance at its level
    secondary: Mapping[str, XNode]
    today: date | np.ndarray  # one date, or per submission (main-table row) days since EPOCH
    labels: Mapping[tuple[str, str], str]
    node_kinds: Mapping[str, str]
    candidate: TV | None = None  # the value `.` reads in a constraint
    media: Any = None  # an EvalEnv whose media_dir serves pulldata()
    item: Mapping[str, str] | None = None  # the choice whose filter is being evaluated
    rows: np.ndarray | None = None  # the rows whose result is used (a per-instance evaluation skips the rest)


VFn = Callable[[Ctx, Level], TV]


# Below this many rows, calling a function on each row costs less than finding the distinct values first.
_HASHING_PAYS_FROM = 256


def per_unique(fn: Callable[[Any], Any], values: np.ndarray, dtype: Any) -> np.ndarray:
    """fn applied once per distinct value (answers repeat a lot across submissions), spread back to rows."""
    if len(values) < _HASHING_PAYS_FROM:
        out = np.empty(len(values), dtype=dtype)
        out[:] = [fn(v) for v in values]
        return out
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return np.array([fn(u) for u in uniques], dtype=dtype)[codes]


def _map_str(fn: Callable[[str], Any], v: TV) -> list[Any]:
    return [fn(x) for x in to_str(v)]


def selected(a: TV, b: TV) -> TV:
    if (b.t != S).any():
        raise NotVectorizable("selected() with a non-string choice")
    wanted = set(b.s.tolist())
    if len(wanted) == 1:
        w = f" {next(iter(wanted)).strip()} "
        return bool_tv(per_unique(lambda x: w in f" {x} ", to_str(a), bool))
    return bool_tv(np.array([f" {w.strip()} " in f" {x} " for x, w in zip(to_str(a), b.s, strict=True)], bool))


def count_selected(a: TV) -> TV:
    return num_tv(per_unique(lambda x: float(len(x.split())), to_str(a), float))


def selected_at(a: TV, i: TV) -> TV:
    idx = to_num(i)
    out = []
    for x, k in zip(to_str(a), idx, strict=True):
        items = x.split()
        j = int(k) if not math.isnan(k) else 0
        out.append(items[j] if 0 <= j < len(items) else "")
    return str_tv(np.array(out, dtype=object))


def regex_matches(a: TV, p: TV) -> TV:
    patterns = set(p.s[p.t == S]) if (p.t == S).all() else None
    if patterns is None or len(patterns) != 1:
        raise NotVectorizable("regex with a computed pattern")
    pattern = xpath_regex(next(iter(patterns)))
    cache: dict[str, bool] = {}
    out = []
    for x in to_str(a):
        r = cache.get(x)
        if r is None:
            r = cache[x] = pattern.fullmatch(x) is not None
        out.append(r)
    return bool_tv(np.array(out, dtype=bool))


def concat(*vs: TV) -> TV:
    parts = [to_str(v) for v in vs]
    if not parts:
        return TV.const("", 0)
    out = parts[0].copy()
    for p in parts[1:]:
        out = out + p
    return str_tv(out)


def int_part(v: TV) -> TV:
    x = to_num(v)
    with np.errstate(invalid="ignore"):
        return num_tv(np.where(np.isfinite(x), np.trunc(x), x))


def rounded(v: TV, places: TV | None = None) -> TV:
    x = to_num(v)
    p = to_num(places) if places is not None else np.zeros(len(x))
    digits = set(p.tolist())
    if len(digits) <= 1:
        d = next(iter(digits), 0.0)
        k = int(d) if not math.isnan(d) else 0
        return num_tv(per_unique(lambda a: java_round(float(a), k), x, float))
    out = [java_round(float(a), int(b) if not math.isnan(b) else 0) for a, b in zip(x, p, strict=True)]
    return num_tv(np.array(out, dtype=float))


def coalesce(a: TV, b: TV) -> TV:
    empty = ((a.t == S) & (a.s == "")) | ((a.t == N) & np.isnan(a.n))
    return where(empty, b, a)


def date_of(v: TV) -> TV:
    if (v.t == B).any():
        raise NotVectorizable("date() of a boolean")  # a type error in JavaRosa, raised per instance
    t = v.t.copy()
    n = v.n.copy()
    s = v.s.copy()
    strings = (v.t == S) & (v.s != "")
    if strings.any():

        def days_of(text: str) -> float:
            parsed = parse_datetime(str(text).strip())
            if parsed is None:
                raise NotVectorizable("unparseable date")
            if isinstance(parsed, datetime):
                parsed = parsed.date()
            return float((parsed - EPOCH).days)

        rows = np.flatnonzero(strings)
        t[rows], n[rows], s[rows] = D, per_unique(days_of, v.s[rows], float), ""
    nums = v.t == N
    n[nums] = np.where(np.isnan(v.n[nums]), np.nan, np.trunc(v.n[nums]))
    t[nums & ~np.isnan(v.n)] = D
    dts = v.t == DT
    n[dts] = _local_days(v.n[dts])
    t[dts] = D
    return TV(t, s, n)


def string_function(fn: Callable[..., Any], kind: int) -> Callable[..., TV]:
    def apply(*vs: TV) -> TV:
        columns = [to_str(v) for v in vs]
        constant_rest = all(len(set(c.tolist())) <= 1 for c in columns[1:])
        if constant_rest:
            rest = [c[0] if len(c) else "" for c in columns[1:]]
            out_type = bool if kind == B else (float if kind == N else object)
            values: np.ndarray | list[Any] = per_unique(lambda x: fn(x, *rest), columns[0], out_type)
        else:
            values = [fn(*row) for row in zip(*columns, strict=True)]
        if kind == B:
            return bool_tv(np.array(values, dtype=bool))
        if kind == N:
            return num_tv(np.array(values, dtype=float))
        return str_tv(np.array(values, dtype=object))

    return apply


def _question_path(ref_text: str, context_path: str) -> str:
    """The generic path jr:choice-name() names: predicates dropped, a relative path anchored at the context."""
    ref = re.sub(r"\[[^\]]*\]", "", ref_text).strip()
    if ref.startswith("/"):
        return ref
    parts = [x for x in context_path.split("/") if x]
    for step in ref.split("/"):
        if step == "..":
            parts = parts[:-1]
        elif step not in (".", ""):
            parts.append(step)
    return "/" + "/".join(parts)


def _label_of(labels: Mapping[tuple[str, str], str], question_path: str, answer: str) -> str:
    return labels.get((question_path, answer), "")


def choice_name(c: Ctx, context_path: str, value: TV, question: TV) -> TV:
    """jr:choice-name(value, question): the question is nearly always one literal, but may be computed per row."""
    answers = to_str(value)
    out = empty_strings(len(answers))
    codes, refs = pd.factorize(to_str(question), use_na_sentinel=False)
    for k, ref_text in enumerate(refs):
        question_path = _question_path(str(ref_text), context_path)
        rows = np.flatnonzero(codes == k)
        out[rows] = per_unique(partial(_label_of, c.labels, question_path), answers[rows], object)
    return str_tv(out)


def number_function(fn: Callable[[float], float]) -> Callable[[TV], TV]:
    def apply(v: TV) -> TV:
        x = v.n.copy() if (v.t == D).all() else to_num(v)
        with np.errstate(all="ignore"):
            return num_tv(np.array([_safe(fn, a) for a in x], dtype=float))

    return apply


def _safe(fn: Callable[[float], float], a: float) -> float:
    try:
        return fn(a)
    except (ValueError, OverflowError):
        return math.nan


def power(a: TV, b: TV) -> TV:
    x, y = to_num(a), to_num(b)
    return num_tv(np.array([java_pow(float(p), float(q)) for p, q in zip(x, y, strict=True)], float))


def substring_columns(*vs: TV) -> TV:
    """substr() over columns: the text as a string, the positions as numbers (true() is 1), as the scalar one."""
    texts, positions = to_str(vs[0]), [to_num(v) for v in vs[1:]]
    values = [substring(text, *numbers) for text, *numbers in zip(texts, *positions, strict=True)]
    return str_tv(np.array(values, dtype=object))


def scalar_at(v: TV, row: int) -> Any:
    """One row's value as the scalar evaluator holds it (str, float, bool, date, an aware datetime)."""
    tag = v.t[row]
    if tag == S:
        return v.s[row]
    x = float(v.n[row])
    if tag == N:
        return x
    if tag == B:
        return x != 0
    if tag == D:
        return EPOCH + timedelta(days=int(x))
    return datetime.fromtimestamp(x * 86400.0, tz=DEVICE_TZ.get())


def tv_of_scalars(values: list[Any]) -> TV:
    """Scalar results (str, float, bool, date, datetime) as a tagged vector."""
    size = len(values)
    t = np.zeros(size, np.int8)
    s = empty_strings(size)
    n = np.full(size, np.nan)
    for i, value in enumerate(values):
        if isinstance(value, bool):
            t[i], n[i] = B, float(value)
        elif isinstance(value, float | int):
            t[i], n[i] = N, float(value)
        elif isinstance(value, datetime):
            t[i], n[i] = DT, value.timestamp() / 86400.0
        elif isinstance(value, date):
            t[i], n[i] = D, float((value - EPOCH).days)
        else:
            s[i] = value if isinstance(value, str) else str(value)
    return TV(t, s, n)


def on_values(name: str, body: Callable[..., Any]) -> Callable[..., TV]:
    """A library function of plain values applied row by row, once per distinct tuple of argument values.

    Its result is the scalar evaluator's own; where that raises for a row (a date that does not parse), the
    expression is handed to the per-instance evaluator, which reports the error on that submission.
    """

    def apply(*vs: TV) -> TV:
        env = EvalEnv(root=XNode("x"), tz=DEVICE_TZ.get())
        size = len(vs[0])
        # Each row's argument tuple as one small integer: the codes of (type tag, text, number) of each argument,
        # combined and renumbered argument by argument.
        combined = np.zeros(size, dtype=np.int64)
        for v in vs:
            texts, _ = pd.factorize(np.where(v.t == S, v.s, ""), use_na_sentinel=False)
            numbers, _ = pd.factorize(v.n, use_na_sentinel=False)
            for codes in (v.t.astype(np.int64), texts, numbers):
                combined = np.unique(combined * (int(codes.max(initial=0)) + 1) + codes, return_inverse=True)[1]
        _, first, back = np.unique(combined, return_index=True, return_inverse=True)
        results: list[Any] = []
        for row in first.tolist():
            try:
                results.append(body(env, *(scalar_at(v, row) for v in vs)))
            except XPathError as exc:
                raise NotVectorizable(f"{name}: {exc}") from None
        return tv_of_scalars(results).take(back.reshape(-1))

    return apply


def decimal_date_time(v: TV) -> TV:
    out = v.n.copy()
    t = np.where((v.t == D) | (v.t == DT) | (v.t == N), N, S).astype(np.int8)
    s = empty_strings(len(v))
    for i in np.flatnonzero(v.t == S):
        text = str(v.s[i])
        if text == "":
            continue
        tz = DEVICE_TZ.get()
        parsed = parse_datetime(text.strip(), tz)
        if parsed is None:
            raise NotVectorizable("unparseable date")
        moment = parsed if isinstance(parsed, datetime) else datetime(parsed.year, parsed.month, parsed.day, tzinfo=tz)
        out[i], t[i] = moment.timestamp() / 86400.0, N
    dates = v.t == D
    tz = DEVICE_TZ.get()
    if dates.any() and tz is not UTC:  # a date is its local midnight

        def midnight(days: float) -> float:
            day = EPOCH + timedelta(days=int(days))
            return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() / 86400.0

        out[dates] = per_unique(midnight, v.n[dates], float)
    bools = v.t == B
    if bools.any():
        raise NotVectorizable("decimal-date-time of a boolean")
    return TV(t, s, out)


def wrap(result: TV, dtype: str | None) -> tuple[TV, np.ndarray]:
    """The in-memory values and serialized texts JavaRosa stores for calculated results of a bind type.

    The result's arrays are shared with the values returned where nothing changes (a calculation's values live
    until the end of validation: copies of a 600,000-row level add up)."""
    size = len(result)
    texts = np.empty(size, dtype=object)
    t, s, n = result.t, result.s, result.n
    dtype = dtype or "string"
    strings = t == S
    nums = t == N
    bools = t == B
    if dtype == "boolean":
        flags = to_bool(result)
        empty = (strings & (s == "")) | (nums & np.isnan(n))
        t = np.where(empty, S, B).astype(np.int8)
        n = np.where(empty, np.nan, flags.astype(float))
        texts[:] = np.where(flags, "1", "0")
        texts[empty] = ""
        return TV(t, _blanked(s, empty), n), texts
    if bools.any():
        texts[bools] = np.where(n[bools] != 0, "1", "0")
    if nums.any():
        n = n.copy()
        texts[nums] = _number_texts(n, nums, dtype)
        nan = nums & np.isnan(n)
        if nan.any():
            t = t.copy()
            t[nan] = S
            s = _blanked(s, nan)
    if strings.any():
        values = s[strings]
        blank = per_unique(_is_blank, values, bool) & (values != "")
        if blank.any():  # whitespace only: no answer
            values[blank] = ""
            s = s.copy()
            s[strings] = values
        if strings.all():  # texts only: the stored texts are the values themselves
            return TV(t, s, n), s
        texts[strings] = values
    dates = t >= D
    if dates.any():
        texts[dates] = _date_texts(t[dates], n[dates], dtype)
    return TV(t, s, n), texts


def _blanked(s: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`s` with "" at `rows` (a copy only when one of them holds a text)."""
    if not (s[rows] != "").any():
        return s
    s = s.copy()
    s[rows] = ""
    return s


def _number_texts(n: np.ndarray, nums: np.ndarray, dtype: str) -> np.ndarray:
    """The stored texts of calculated numbers at `nums`; `n` takes the stored values (int: truncated, clipped)."""
    x = n[nums]
    finite = np.isfinite(x)
    whole = np.where(finite, np.trunc(x), 0)
    if dtype == "int":
        whole = np.clip(whole, -2147483648, 2147483647)
        values = np.where(finite, whole, x)
        integral = finite
        n[nums] = np.where(np.isnan(x), np.nan, values)
    else:
        integral = finite & (np.abs(x - whole) < 1e-9)
        values = np.where(integral, whole, x)
        n[nums] = values
    text = np.empty(len(x), dtype=object)
    text[integral] = per_unique(_integral_text, values[integral], object)
    others = ~integral
    text[others] = per_unique(
        lambda v: "" if math.isnan(v) else _number_text_wrapped(float(v), False), values[others], object
    )
    return text


def _date_texts(tags: np.ndarray, days: np.ndarray, dtype: str) -> np.ndarray:
    """The stored texts of calculated dates and dateTimes (days since EPOCH), once per distinct value."""
    tz = DEVICE_TZ.get()

    def text(tagged: complex) -> str:
        day, tag = tagged.real, tagged.imag
        value: Any = (EPOCH + timedelta(days=int(day))) if tag == D else datetime.fromtimestamp(day * 86400.0, tz=tz)
        return str(wrap_calculated(value, dtype, tz)[0])

    # a date and a dateTime on the same day are different texts: the type tag rides along as the imaginary part
    return per_unique(text, days + 1j * tags, object)


def _integral_text(value: float) -> str:
    return str(int(value))


def _is_blank(text: str) -> bool:
    return not text or text.isspace()


def _number_text_wrapped(value: float, integral: bool) -> str:
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if integral:
        return str(int(value))
    return java_double_str(value)


def column_texts(series: pd.Series | None, size: int, dtype: str | None) -> np.ndarray:
    """Stored texts of one table column ("" when empty)."""
    if series is None:
        return empty_strings(size)
    if dtype == "date" and pd.api.types.is_datetime64_any_dtype(series.dtype):
        out = np.datetime_as_string(series.to_numpy(dtype="datetime64[D]"), unit="D").astype(object)
        out[series.isna().to_numpy()] = ""
        return out
    if series.dtype == object:
        return series.to_numpy(dtype=object, na_value="")
    if pd.api.types.is_string_dtype(series.dtype):
        return _shared_texts(series)
    out = empty_strings(size)
    present = ~series.isna().to_numpy()
    if pd.api.types.is_integer_dtype(series.dtype):
        out[present] = series.to_numpy(dtype="float64", na_value=0)[present].astype(np.int64).astype(str)
    elif pd.api.types.is_float_dtype(series.dtype):
        out[present] = [repr(v) for v in series.to_numpy(dtype="float64", na_value=0)[present].tolist()]
    else:
        out[present] = [str(v) for v in series[present].tolist()]
    return out


def _shared_texts(series: pd.Series) -> np.ndarray:
    """A text column as Python strings, one string object per distinct answer: hundreds of thousands of rows
    repeat a few dozen answers, and a string object per row would cost tens of megabytes per column."""
    if len(series) < _HASHING_PAYS_FROM:
        return series.to_numpy(dtype=object, na_value="")
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = uniques.to_numpy(dtype=object, na_value="")
    table[-1] = ""  # code -1: no answer
    return table[codes]


def column_typed(  # noqa: PLR0911 (one return per JavaRosa type rule)
    series: pd.Series | None, column: TextColumn, dtype: str | None
) -> TV:
    """Typed values of one column as JavaRosa reads them (numbers, dates, booleans; "" when empty)."""
    size = column.size
    if series is None:
        return TV.const("", size)
    present = column.present
    t = np.zeros(size, np.int8)
    if dtype in ("int", "decimal") and pd.api.types.is_numeric_dtype(series.dtype):
        n = np.full(size, np.nan)
        x = series.to_numpy(dtype=float, na_value=np.nan)
        t[present], n[present] = N, x[present]
        return TV(t, no_texts(size), n)
    if dtype == "date" and pd.api.types.is_datetime64_any_dtype(series.dtype):
        n = np.full(size, np.nan)
        days = series.to_numpy(dtype="datetime64[D]").astype("int64").astype(float)
        t[present], n[present] = D, days[present]
        return TV(t, no_texts(size), n)
    texts = column.full
    if dtype not in ("dateTime", "boolean", "int", "decimal", "date") or not present.any():
        # texts as they are: the values share the column's texts (read-only) and the shared NaN payload
        return TV(t, texts, no_numbers(size))
    n = np.full(size, np.nan)
    s = texts.copy()
    if dtype == "dateTime" and present.any():
        stamps = pd.to_datetime(pd.Series(texts[present], dtype=object), utc=True, format="ISO8601", errors="coerce")
        ok = ~stamps.isna().to_numpy()
        rows = np.flatnonzero(present)[ok]
        t[rows] = DT
        n[rows] = stamps[ok].to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9 / 86400.0
        s[rows] = ""
        return TV(t, s, n)
    if dtype == "boolean":
        rows = np.flatnonzero(present)
        t[rows] = B
        n[rows] = [float(x.strip().lower() in ("true", "1")) for x in texts[rows]]
        s[rows] = ""
        return TV(t, s, n)
    if dtype in ("int", "decimal", "date"):
        # A column that ingest could not type: read the texts as the scalar evaluator would.
        for i in np.flatnonzero(present):
            value = typed_value(texts[i], dtype)
            if isinstance(value, float):
                t[i], n[i], s[i] = N, value, ""
            elif isinstance(value, date):
                t[i], n[i], s[i] = D, float((value - EPOCH).days), ""
        return TV(t, s, n)
    return TV(t, s, n)


# From this many rows a text column's Python strings are made only when something reads them (a large table holds
# hundreds of text columns that no expression reads); below it, at once (cheaper than asking Arrow twice).
_TEXTS_ON_DEMAND_FROM = 50_000


class TextColumn:
    """Stored texts of one column: which rows are answered at once, the texts only when needed."""

    def __init__(self, series: pd.Series | None, size: int, dtype: str | None) -> None:
        self.series, self.size, self.dtype = series, size, dtype
        self._full: np.ndarray | None = None
        self.present: np.ndarray
        if series is None or series.dtype == object or (size < _TEXTS_ON_DEMAND_FROM and is_string_dtype(series.dtype)):
            full = empty_strings(size) if series is None else column_texts(series, size, dtype)
            self._full, self.present = full, np.not_equal(full, "")
        elif is_string_dtype(series.dtype):  # Arrow-backed: the texts only when read
            self.present = series.ne("").fillna(False).to_numpy(dtype=bool)
        else:
            self.present = ~series.isna().to_numpy()

    @property
    def full(self) -> np.ndarray:
        if self._full is None:
            self._full = column_texts(self.series, self.size, self.dtype)
        # shared by the typed values of text columns (`column_typed`): never changed in place
        self._full.flags.writeable = False
        return self._full

    def forget(self) -> None:
        """Drop the texts made from the table (read again when next needed)."""
        if self.series is not None:
            self._full = None

    def take(self, rows: np.ndarray) -> np.ndarray:
        if self._full is not None or self.series is None:  # no series: _full was set at the start
            return self.full[rows]
        return column_texts(self.series.iloc[rows], len(rows), self.dtype)

    def __getitem__(self, row: int | np.integer) -> str:
        if self._full is not None or self.series is None:  # no series: _full was set at the start
            return self.full[row]
        return column_texts(self.series.iloc[[int(row)]], 1, self.dtype)[0]


class LazyValues(dict):
    """Typed column values built on first use (most columns are only ever read as texts)."""

    def __init__(self, sources: dict[str, tuple[pd.Series | None, TextColumn, str | None]]) -> None:
        super().__init__()
        self.sources = sources
        self.retired: set[str] = set()

    def retire(self, path: str) -> None:
        """Free a calculation's values after their last use; reading them again is a bug, not a table read."""
        self.pop(path, None)
        self.retired.add(path)

    def __setitem__(self, path: str, value: TV) -> None:
        self.retired.discard(path)
        super().__setitem__(path, value)

    def __missing__(self, path: str) -> TV:
        if path in self.retired:
            raise RuntimeError(f"the calculated values of {path} were read after their last use was planned")
        series, texts, dtype = self.sources[path]
        value = self[path] = column_typed(series, texts, dtype)
        return value
