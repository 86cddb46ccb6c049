"""The XPath function library: one table (`FUNCTIONS`) of each function's name, arity, scalar implementation
and, where the column evaluator has one, its column implementation."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

from toolkit.xpath.columns import (
    TV,
    B,
    N,
    S,
    bool_tv,
    choice_name,
    coalesce,
    concat,
    count_selected,
    date_of,
    decimal_date_time,
    int_part,
    num_tv,
    number_function,
    on_values,
    power,
    regex_matches,
    rounded,
    selected,
    selected_at,
    str_tv,
    string_function,
    substring_columns,
    to_bool,
    to_num,
    to_str,
)
from toolkit.xpath.instance import EvalEnv, XNode, pulldata_rows
from toolkit.xpath.syntax import XPathError, XPathSyntaxError
from toolkit.xpath.values import (
    DAY_SECONDS,
    DECIMAL_RE,
    NAN,
    XPathEvalError,
    as_datetime,
    format_date,
    fractional_days,
    java_pow,
    java_round,
    substring,
    to_boolean,
    to_date,
    to_int,
    to_number,
    to_string,
    unpack,
    xpath_regex,
)


class XPathUnsupportedError(XPathError):
    """The expression calls a function this evaluator does not implement."""

    def __init__(self, function: str) -> None:
        super().__init__(f"the function {function}() is not supported by migkit's evaluator")
        self.function = function


def _values_of(value: Any) -> list[Any]:
    return [x.value for x in value] if isinstance(value, list) else [value]


def _split_selection(value: Any) -> list[str]:
    text = unpack(value)
    if not isinstance(text, str):
        text = to_string(text)
    return text.split()


def _nodeset(value: Any, function: str) -> list[XNode]:
    if not isinstance(value, list):
        raise XPathEvalError(f"{function}(): not a node-set")
    return value


def _f_sum(e: EvalEnv, nodes: Any) -> float:
    total = 0.0
    for value in _values_of(_nodeset(nodes, "sum")):
        number = to_number(value, e.tz)
        if not math.isnan(number):
            total += number
    return total


def _extreme(e: EvalEnv, values: list[Any], pick: Callable[[float, float], float], start: float) -> float:
    best = start
    found = False
    for value in values:
        number = to_number(value, e.tz)
        if not math.isnan(number):
            best = pick(best, number)
            found = True
    return best if found else NAN


def _f_max(e: EvalEnv, *args: Any) -> float:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return _extreme(e, values, max, 5e-324)  # JavaRosa starts from Double.MIN_VALUE (the smallest positive)


def _f_min(e: EvalEnv, *args: Any) -> float:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return _extreme(e, values, min, 1.7976931348623157e308)


def _f_concat(e: EvalEnv, *args: Any) -> str:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return "".join(to_string(v, e.tz) for v in values)


def _f_join(e: EvalEnv, sep: Any, *args: Any) -> str:
    values = _values_of(args[0]) if len(args) == 1 and isinstance(args[0], list) else list(args)
    return to_string(sep, e.tz).join(to_string(v, e.tz) for v in values)


def _f_selected(e: EvalEnv, selection: Any, choice: Any) -> bool:
    wanted = unpack(choice)
    if not isinstance(wanted, str):
        raise XPathEvalError("The second parameter to the selected() function must be in quotes (like '1').")
    text = unpack(selection)
    if not isinstance(text, str):
        raise XPathEvalError("selected(): the first argument must be a select answer")
    return f" {wanted.strip()} " in f" {text} "


def _f_count_selected(e: EvalEnv, selection: Any) -> float:
    text = unpack(selection)
    if not isinstance(text, str):
        raise XPathEvalError("count-selected(): the argument must be a select answer")
    return float(len([x for x in text.split(" ") if x]))


def _f_selected_at(e: EvalEnv, selection: Any, index: Any) -> str:
    text = unpack(selection)
    if not isinstance(text, str):
        raise XPathEvalError("selected-at(): the first argument must be a select answer")
    i = to_int(index, e.tz)
    items = [x for x in text.split(" ") if x]
    if math.isnan(i):
        i = 0.0
    k = int(i)
    return items[k] if 0 <= k < len(items) else ""


def _f_choice_name(e: EvalEnv, value: Any, question: Any) -> str:
    if e.choice_name is None:
        raise XPathEvalError("jr:choice-name(): no choice lists available")
    ref = re.sub(r"\[[^\]]*\]", "", to_string(question, e.tz)).strip()
    if not ref.startswith("/"):
        # JavaRosa anchors a relative question reference at the context node.
        parts = [x for x in (e.current.generic_path() if e.current is not None else "").split("/") if x]
        for step in ref.split("/"):
            if step == "..":
                parts = parts[:-1]
            elif step not in (".", ""):
                parts.append(step)
        ref = "/" + "/".join(parts)
    return e.choice_name(to_string(value, e.tz), ref)


def _f_pulldata(e: EvalEnv, *args: Any) -> str:
    if len(args) != 4:
        raise XPathEvalError("pulldata() takes 4 arguments")
    name, column, key_column, key = (to_string(a, e.tz) for a in args)
    for row in pulldata_rows(e, name):
        if row.get(key_column) == key:
            return row.get(column, "")
    return ""


def _f_checklist(e: EvalEnv, low: Any, high: Any, *factors: Any) -> bool:
    values = _values_of(factors[0]) if len(factors) == 1 and isinstance(factors[0], list) else list(factors)
    lo, hi = to_number(low, e.tz), to_number(high, e.tz)
    count = sum(1 for v in values if to_boolean(v))
    lo_i = int(lo) if not math.isnan(lo) else 0
    hi_i = int(hi) if not math.isnan(hi) else 0
    return (lo_i < 0 or count >= lo_i) and (hi_i < 0 or count <= hi_i)


def _f_weighted_checklist(e: EvalEnv, low: Any, high: Any, *rest: Any) -> bool:
    if len(rest) == 2 and isinstance(rest[0], list) and isinstance(rest[1], list):
        flags, weights = _values_of(rest[0]), _values_of(rest[1])
        if len(flags) != len(weights):
            raise XPathEvalError("weighted-checklist: nodesets not same length")
    else:
        flags, weights = list(rest[0::2]), list(rest[1::2])
    total = sum(to_number(w, e.tz) for f, w in zip(flags, weights, strict=False) if to_boolean(f))
    return to_number(low, e.tz) <= total <= to_number(high, e.tz)


def _f_digest(e: EvalEnv, text: Any, algorithm: Any, encoding: Any = "base64") -> str:
    alg = to_string(algorithm, e.tz).upper().replace("-", "")
    names = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
    if alg not in names:
        raise XPathEvalError(f"digest(): unknown algorithm {alg}")
    raw = hashlib.new(names[alg], to_string(text, e.tz).encode("utf-8")).digest()
    enc = to_string(encoding, e.tz).lower()
    return raw.hex() if enc == "hex" else base64.b64encode(raw).decode("ascii")


def _f_format_date(e: EvalEnv, value: Any, fmt: Any) -> str:
    parsed = to_date(value, preserve_time=True, tz=e.tz)
    if not isinstance(parsed, date):
        return ""
    return format_date(parsed, to_string(fmt, e.tz), e.tz)


def _f_decimal_date_time(e: EvalEnv, value: Any) -> Any:
    v = unpack(value)
    if isinstance(v, float):
        if math.isnan(v):
            return v
        return v
    if isinstance(v, str) and v == "":
        return v
    parsed = to_date(v, preserve_time=True, tz=e.tz)
    return fractional_days(parsed, e.tz)


def _f_decimal_time(e: EvalEnv, value: Any) -> Any:
    v = unpack(value)
    if isinstance(v, float):
        return v if math.isnan(v) else v - math.floor(v)
    if isinstance(v, str) and v == "":
        return v
    if isinstance(v, str) and re.match(r"^\d{2}:\d{2}", v.strip()):
        v = "1970-01-01T" + v.strip()
    parsed = to_date(v, preserve_time=True, tz=e.tz)
    moment = as_datetime(parsed, e.tz).astimezone(e.tz)
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6
    return seconds / DAY_SECONDS


def _java_math(fn: Callable[[float], float]) -> Callable[[EvalEnv, Any], float]:
    def apply(e: EvalEnv, value: Any) -> float:
        v = unpack(value)
        x = fractional_days(v, e.tz) if isinstance(v, date) else to_number(v, e.tz)
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return NAN

    return apply


def _java_log(x: float) -> float:
    if x < 0 or math.isnan(x):
        return NAN
    return -math.inf if x == 0 else math.log(x)


def _java_log10(x: float) -> float:
    if x < 0 or math.isnan(x):
        return NAN
    return -math.inf if x == 0 else math.log10(x)


def _java_pow(e: EvalEnv, a: Any, b: Any) -> float:
    va, vb = unpack(a), unpack(b)
    x = fractional_days(va, e.tz) if isinstance(va, date) else to_number(va, e.tz)
    y = fractional_days(vb, e.tz) if isinstance(vb, date) else to_number(vb, e.tz)
    return java_pow(x, y)


STRING_FUNCTIONS: dict[str, Callable[[str], Any]] = {
    "string-length": lambda s: float(len(s)),
    "normalize-space": lambda s: " ".join(s.split()),
}


def _translate(e: EvalEnv, text: Any, src: Any, dst: Any) -> str:
    s, a, b = to_string(text, e.tz), to_string(src, e.tz), to_string(dst, e.tz)
    out = []
    for ch in s:
        k = a.find(ch)
        if k == -1:
            out.append(ch)
        elif k < len(b):
            out.append(b[k])
    return "".join(out)


def _substring_before(e: EvalEnv, text: Any, sub: Any) -> str:
    s, t = to_string(text, e.tz), to_string(sub, e.tz)
    k = s.find(t)
    return s[:k] if k >= 0 else ""


def _substring_after(e: EvalEnv, text: Any, sub: Any) -> str:
    s, t = to_string(text, e.tz), to_string(sub, e.tz)
    k = s.find(t)
    return s[k + len(t) :] if k >= 0 else ""


def _f_count_non_empty(e: EvalEnv, nodes: Any) -> float:
    # XPathNodeset.getNonEmptySize: a node counts when it has children or a value.
    return float(sum(1 for x in _nodeset(nodes, "count-non-empty") if x.children or (x.text or "") != ""))


def _f_round(e: EvalEnv, value: Any, places: Any = 0.0) -> float:
    p = to_number(places, e.tz)
    return java_round(to_number(value, e.tz), int(p) if not math.isnan(p) else 0)


def _f_base64_decode(e: EvalEnv, value: Any) -> str:
    try:
        return base64.b64decode(to_string(value, e.tz)).decode("utf-8", errors="replace")
    except ValueError:
        return ""


def _f_uuid(e: EvalEnv, *args: Any) -> str:
    return str(uuid.uuid4())


EARTH_EQUATORIAL_RADIUS_METERS = 6_378_100.0


EARTH_EQUATORIAL_CIRCUMFERENCE_METERS = 2 * EARTH_EQUATORIAL_RADIUS_METERS * math.pi


def _geopoint(text: str, function: str) -> tuple[float, float]:
    """(latitude, longitude) of a geopoint "lat lon [alt [accuracy]]" (GeoPointData.cast); empty reads as 0 0."""
    parts = [x for x in text.split(" ") if x]
    if len(parts) > 4 or not all(DECIMAL_RE.match(x) for x in parts):
        raise XPathEvalError(f"The function '{function}' received a value that does not represent GPS coordinates")
    numbers = [float(x) for x in parts] + [0.0, 0.0]
    return numbers[0], numbers[1]


def _java_split(text: str, separator: str) -> list[str]:
    """Java's String.split: trailing empty strings are dropped."""
    parts = text.split(separator)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _geo_points(value: Any, function: str) -> list[tuple[float, float]]:
    """The points of a node-set argument: one node is a geoshape/geotrace, several nodes are geopoints."""
    if not isinstance(value, list):
        raise XPathEvalError(f"function '{function}' requires a field as the parameter.")
    if len(value) == 1:
        return [_geopoint(part.strip(), function) for part in _java_split(value[0].string, ";")]
    return [_geopoint(to_string(node.value), function) for node in value]


def _great_circle(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres between two points by the spherical law of cosines (GeoUtils.distanceBetween)."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    delta = math.radians(a[1] - b[1])
    cosine = math.sin(lat1) * math.sin(lat2) + math.cos(lat1) * math.cos(lat2) * math.cos(delta)
    return (math.acos(cosine) if -1.0 <= cosine <= 1.0 else NAN) * EARTH_EQUATORIAL_RADIUS_METERS


def _path_length(points: list[tuple[float, float]]) -> float:
    return sum((_great_circle(points[i - 1], points[i]) for i in range(1, len(points))), 0.0)


def _f_distance(e: EvalEnv, *args: Any) -> float:
    if not args:
        raise XPathEvalError("function 'distance' requires at least one parameter.")
    if len(args) > 1:
        return _path_length([_geopoint(to_string(a, e.tz), "distance") for a in args])
    (value,) = args
    if isinstance(value, list):
        return _path_length(_geo_points(value, "distance"))
    if isinstance(value, str):
        return _path_length([_geopoint(part, "distance") for part in _java_split(value, ";")])
    raise XPathEvalError("function 'distance' requires a field or text as the parameter.")


def _f_area(e: EvalEnv, shape: Any) -> float:
    """Square metres inside a polygon, by triangles from its first point on a flat projection
    (GeoUtils.calculateAreaOfGPSPolygonOnEarthInSquareMeters)."""
    points = _geo_points(shape, "area")
    if len(points) < 3:
        return 0.0
    lat0, lon0 = points[0]
    ys = [(lat - lat0) * EARTH_EQUATORIAL_CIRCUMFERENCE_METERS / 360.0 for lat, _ in points[1:]]
    xs = [
        (lon - lon0) * EARTH_EQUATORIAL_CIRCUMFERENCE_METERS * math.cos(math.radians(lat)) / 360.0
        for lat, lon in points[1:]
    ]
    total = sum((ys[i - 1] * xs[i] - xs[i - 1] * ys[i]) / 2 for i in range(1, len(xs)))
    return abs(total)


def _f_geofence(e: EvalEnv, point: Any, shape: Any) -> bool:
    """Whether a point lies inside a closed geoshape (GeoUtils.calculateIsPointInGPSPolygon, the pnpoly test
    over consecutive vertices: a geoshape repeats its first point last)."""
    lat, lon = _geopoint(to_string(point, e.tz), "geofence")
    polygon = _geo_points(shape, "geofence")
    inside = False
    for (lat1, lon1), (lat2, lon2) in itertools.pairwise(polygon):
        if (lat2 > lat) != (lat1 > lat) and lon < (lon1 - lon2) * (lat - lat2) / (lat1 - lat2) + lon2:
            inside = not inside
    return inside


_PARK_MILLER_MODULUS = 2147483647


_PARK_MILLER_MULTIPLIER = 16807


def _seed_of(value: Any, tz: tzinfo) -> int:
    """RandomizeHelper.toNumericWithLongHash: the number truncated to a long, or for text that is not a number
    the first 8 bytes (big-endian, signed) of its UTF-8 SHA-256; the empty string is 0."""
    number = to_number(value, tz)
    if not math.isnan(number):
        if math.isinf(number):
            return (2**63 - 1) if number > 0 else -(2**63)
        return max(-(2**63), min(2**63 - 1, int(number)))
    text = to_string(value, tz)
    if text == "":
        return 0
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big", signed=True)


def _park_miller_doubles(seed: int) -> Iterable[float]:
    """ParkMiller.nextDouble(): a Lehmer generator kept in a double, as JavaRosa (and Enketo) compute it."""
    state = math.fmod(float(seed), _PARK_MILLER_MODULUS)
    if state <= 0:
        state += _PARK_MILLER_MODULUS - 1
    while True:
        state = math.fmod(state * _PARK_MILLER_MULTIPLIER, _PARK_MILLER_MODULUS)
        yield (int(state) - 1) / (_PARK_MILLER_MODULUS - 1)


def _f_randomize(e: EvalEnv, nodes: Any, seed: Any = None) -> list[XNode]:
    if not isinstance(nodes, list):
        raise XPathEvalError("First argument to randomize must be a nodeset")
    doubles: Iterable[float] = (
        iter(random.random, None)  # unseeded: a new order every time
        if seed is None
        else _park_miller_doubles(_seed_of(seed, e.tz))
    )
    # FisherYates.shuffle: element i goes to a position drawn from [0, i], the one there moves to i.
    shuffled: list[XNode] = []
    for i, (node, draw) in enumerate(zip(nodes, doubles, strict=False)):
        j = int(draw * (i + 1))
        if j == i:
            shuffled.append(node)
        else:
            shuffled.append(shuffled[j])
            shuffled[j] = node
    return shuffled


def _f_random(e: EvalEnv) -> float:
    return random.random()  # noqa: S311 (the form's random(), not security)


def _f_date(e: EvalEnv, value: Any) -> Any:
    return to_date(value, preserve_time=False, tz=e.tz)


def _f_date_time(e: EvalEnv, value: Any) -> Any:
    return to_date(value, preserve_time=True, tz=e.tz)


@dataclass(frozen=True)
class Function:
    """One function of the XPath library.

    Parameters:
        name: as written in expressions (`jr:choice-name` keeps its prefix; other prefixes are dropped).
        fewest, most: how many arguments it takes (most None: any number from fewest).
        scalar: `body(env, *values)` for the per-instance evaluator; None for the forms the scalar compiler
            builds itself (if, coalesce, current, instance, position, once, indexed-repeat).
        vector: `body(*columns)` (tagged vectors) for the column evaluator, or None: the column evaluator then
            applies `scalar` once per distinct tuple of argument values where `on_values` allows it.
        on_values: False when the result depends on more than the argument values (a draw, the clock, the
            form's version attribute, the order of a node-set).
    """

    name: str
    fewest: int
    most: int | None
    scalar: Callable[..., Any] | None
    vector: Callable[..., TV] | None = None
    on_values: bool = True

    def check_arity(self, count: int) -> None:
        """Raise XPathSyntaxError unless it takes `count` arguments (JavaRosa checks when it loads the form)."""
        if count < self.fewest:
            if self.most is None:
                raise XPathSyntaxError(f"{self.name}() takes at least {self.fewest} arguments")
        elif self.most is None or count <= self.most:
            return
        counts = " or ".join(map(str, range(self.fewest, (self.most or self.fewest) + 1)))
        raise XPathSyntaxError(f"{self.name}() takes {counts} arguments, {count} given")


def _table(*functions: Function) -> Mapping[str, Function]:
    return {function.name: function for function in functions}


FUNCTIONS: Mapping[str, Function] = _table(
    # Compiled by the scalar evaluator itself (short-circuits, node-sets, the context): no body of values.
    Function("if", 3, 3, None),
    Function("coalesce", 2, 2, None, vector=coalesce),
    Function("current", 0, 0, None),
    Function("instance", 1, 1, None),
    Function("position", 0, 1, None),
    Function("once", 1, 1, None),
    Function("indexed-repeat", 3, 11, None),
    # Functions of their argument values.
    Function("true", 0, 0, lambda e: True),
    Function("false", 0, 0, lambda e: False),
    Function("boolean", 1, 1, lambda e, a: to_boolean(a), vector=lambda a: bool_tv(to_bool(a))),
    Function("not", 1, 1, lambda e, a: not to_boolean(a), vector=lambda a: bool_tv(~to_bool(a))),
    Function("number", 1, 1, lambda e, a: to_number(a, e.tz), vector=lambda a: num_tv(to_num(a))),
    Function("int", 1, 1, lambda e, a: to_int(a, e.tz), vector=int_part),
    Function("string", 1, 1, lambda e, a: to_string(a, e.tz), vector=lambda a: str_tv(to_str(a))),
    Function("round", 1, 2, _f_round, vector=rounded),
    # floor() and ceiling() are XPath 1.0 but JavaRosa does not implement them: Collect fails on them, so do
    # we.
    Function("abs", 1, 1, _java_math(abs), vector=number_function(abs)),
    Function("acos", 1, 1, _java_math(math.acos)),
    Function("asin", 1, 1, _java_math(math.asin)),
    Function("atan", 1, 1, _java_math(math.atan)),
    Function("atan2", 2, 2, lambda e, a, b: math.atan2(to_number(a, e.tz), to_number(b, e.tz))),
    Function("cos", 1, 1, _java_math(math.cos)),
    Function("sin", 1, 1, _java_math(math.sin)),
    Function("tan", 1, 1, _java_math(math.tan)),
    Function("exp", 1, 1, _java_math(math.exp)),
    Function("exp10", 1, 1, _java_math(lambda x: math.pow(10.0, x))),
    Function("log", 1, 1, _java_math(_java_log)),
    Function(
        "log10",
        1,
        1,
        _java_math(_java_log10),
        vector=number_function(lambda x: math.log10(x) if x > 0 else (-math.inf if x == 0 else math.nan)),
    ),
    Function(
        "sqrt",
        1,
        1,
        _java_math(lambda x: math.sqrt(x) if x >= 0 else NAN),
        vector=number_function(lambda x: math.sqrt(x) if x >= 0 else math.nan),
    ),
    Function("pi", 0, 0, lambda e: math.pi),
    Function("pow", 2, 2, _java_pow, vector=power),
    Function("date", 1, 1, _f_date, vector=date_of),
    Function("date-time", 1, 1, _f_date_time),
    Function("decimal-date-time", 1, 1, _f_decimal_date_time, vector=decimal_date_time),
    Function("decimal-time", 1, 1, _f_decimal_time),
    Function("format-date", 2, 2, _f_format_date, vector=on_values("format-date", _f_format_date)),
    Function("format-date-time", 2, 2, _f_format_date, vector=on_values("format-date-time", _f_format_date)),
    Function("today", 0, 0, lambda e: e.get_today(), on_values=False),
    Function("now", 0, 0, lambda e: e.get_now(), on_values=False),
    Function(
        "boolean-from-string",
        1,
        1,
        lambda e, a: (s := to_string(a, e.tz)).lower() == "true" or s == "1",
        vector=string_function(lambda a: a.lower() == "true" or a == "1", B),
    ),
    Function("selected", 2, 2, _f_selected, vector=selected),
    Function("is-selected", 2, 2, _f_selected, vector=selected),
    Function("count-selected", 1, 1, _f_count_selected, vector=count_selected),
    Function("selected-at", 2, 2, _f_selected_at, vector=selected_at),
    Function("jr:choice-name", 2, 2, _f_choice_name, vector=choice_name),
    Function("count", 1, 1, lambda e, a: float(len(_nodeset(a, "count")))),
    Function("count-non-empty", 1, 1, _f_count_non_empty),
    Function("sum", 1, 1, _f_sum),
    Function("max", 1, None, _f_max),
    Function("min", 1, None, _f_min),
    Function("concat", 0, None, _f_concat, vector=concat),
    Function("join", 1, None, _f_join),
    Function(
        "substr",
        2,
        3,
        lambda e, text, start, end=None: substring(text, start, end, e.tz),
        vector=substring_columns,
    ),
    Function(
        "substring-before",
        2,
        2,
        _substring_before,
        vector=string_function(lambda a, b: a[: a.find(b)] if b in a else "", S),
    ),
    Function(
        "substring-after",
        2,
        2,
        _substring_after,
        vector=string_function(lambda a, b: a[a.find(b) + len(b) :] if b in a else "", S),
    ),
    Function("translate", 3, 3, _translate),
    Function(
        "contains",
        2,
        2,
        lambda e, a, b: to_string(b, e.tz) in to_string(a, e.tz),
        vector=string_function(lambda a, b: b in a, B),
    ),
    Function(
        "starts-with",
        2,
        2,
        lambda e, a, b: to_string(a, e.tz).startswith(to_string(b, e.tz)),
        vector=string_function(lambda a, b: a.startswith(b), B),
    ),
    Function(
        "ends-with",
        2,
        2,
        lambda e, a, b: to_string(a, e.tz).endswith(to_string(b, e.tz)),
        vector=string_function(lambda a, b: a.endswith(b), B),
    ),
    Function(
        "string-length",
        0,
        1,
        lambda e, a: float(len(to_string(a, e.tz))),
        vector=string_function(lambda a: float(len(a)), N),
    ),
    Function(
        "normalize-space",
        0,
        1,
        lambda e, a: " ".join(to_string(a, e.tz).split()),
        vector=string_function(lambda a: " ".join(a.split()), S),
    ),
    Function("checklist", 2, None, _f_checklist),
    Function("weighted-checklist", 2, None, _f_weighted_checklist),
    Function(
        "regex",
        2,
        2,
        lambda e, a, b: xpath_regex(to_string(b, e.tz)).fullmatch(to_string(a, e.tz)) is not None,
        vector=regex_matches,
    ),
    Function("depend", 1, None, lambda e, *a: a[0]),
    Function("random", 0, 0, _f_random, on_values=False),
    Function("uuid", 0, 1, _f_uuid, on_values=False),
    Function("digest", 2, 3, _f_digest),
    Function("base64-decode", 1, 1, _f_base64_decode),
    Function("pulldata", 4, 4, _f_pulldata),
    Function("distance", 1, None, _f_distance),
    Function("area", 1, 1, _f_area),
    Function("enclosed-area", 1, 1, _f_area),
    Function("geofence", 2, 2, _f_geofence),
    Function("randomize", 1, 2, _f_randomize, on_values=False),
    Function("version", 0, 0, lambda e: e.root.attrs.get("version", ""), on_values=False),
)


def value_function(name: str) -> Callable[..., Any] | None:
    """The implementation `body(env, *values)` of a library function of plain values, or None.

    For evaluators that hold each argument's value rather than a node-set (the column-wise validator): the
    result is the one the compiled expression gives for these argument values. None for the functions
    handled in the compiler itself (if, coalesce, position, ...) and those whose result depends on more than
    their argument values.
    """
    function = FUNCTIONS.get(name)
    if function is None or not function.on_values:
        return None
    return function.scalar
