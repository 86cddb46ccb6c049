"""JavaRosa's values: the types of XPath values, their coercions, and the lexical rules of stored answers.

Values follow JavaRosa's types: `str`, `float` (numbers, NaN included), `bool`, `datetime.date` (dates),
`datetime.datetime` (timezone-aware, for dateTime), and `list[XNode]` for node-sets. Coercions are `to_boolean`,
`to_number`, `to_string`, `to_date` (JavaRosa's XPathFuncExpr.toBoolean/toNumeric/toString/toDate);
`wrap_calculated` is what JavaRosa stores for a calculation's result (IAnswerData.wrapData).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import ROUND_HALF_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from toolkit.xpath.syntax import XPathError

NAN = float("nan")
EPOCH = date(1970, 1, 1)
DAY_SECONDS = 86400.0


class XPathEvalError(XPathError):
    """A run-time error that JavaRosa raises too (repeated field as a value, bad date, bad arguments)."""


def typed_value(text: str | None, dtype: str | None) -> Any:  # noqa: PLR0911 (one return per JavaRosa type rule)
    if text is None or text == "":
        return ""
    if dtype is None or dtype == "string":
        return text
    if dtype in ("int", "integer", "long", "decimal"):
        number = parse_decimal(text)
        if number is None:
            return text
        if dtype != "decimal":
            return float(int(number))
        return number
    if dtype == "date":
        parsed = parse_datetime(text.strip())
        if parsed is None:
            return text
        return parsed.date() if isinstance(parsed, datetime) else parsed
    if dtype == "dateTime":
        parsed = parse_datetime(text.strip())
        return parsed if parsed is not None else text
    if dtype == "boolean":
        return text.strip().lower() in ("true", "1")
    return text


# --- the lexical rules of stored answers ----------------------------------------------------------------------
# The one definition of a valid int, decimal, date, time and dateTime answer (XML Schema's lexical forms as ODK
# Collect writes them), used by ingest (typing columns), validate (type checks) and this package. Patterns without
# anchors, over the stripped text, written so that RE2 accepts them too (ingest checks them with Arrow's kernels).
INT_TEXT = r"[+-]?\d+"
# An int that fits the 64-bit integer columns of the DATA tables (ingest).
INT64_TEXT = r"[+-]?\d{1,18}"
DECIMAL_TEXT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
DATE_TEXT = r"\d{4}-\d{2}-\d{2}"
CLOCK_TEXT = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
ZONE_TEXT = r"(?:Z|[+-]\d{2}(?::?\d{2})?)?"
TIME_TEXT = CLOCK_TEXT + ZONE_TEXT
DATETIME_TEXT = f"{DATE_TEXT}T{CLOCK_TEXT}{ZONE_TEXT}"
# JavaRosa's IntegerData/DecimalData cast reads a number with blanks around it.
DECIMAL_RE = re.compile(rf"^\s*{DECIMAL_TEXT}\s*$")


def parse_decimal(text: str) -> float | None:
    """A stored int/decimal answer as JavaRosa's IntegerData/DecimalData cast reads it."""
    if not DECIMAL_RE.match(text):
        return None
    return float(text)


# How the evaluator reads a date or dateTime value (JavaRosa's DateUtils): more leniently than the lexical rules
# above (signed and longer years, a space for the T, a comma before the fraction), with the parts captured.
_DATE_RE = re.compile(r"^(-?\d{4,})-(\d{2})-(\d{2})$")
_DATETIME_RE = re.compile(
    r"^(-?\d{4,})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def parse_datetime(text: str, tz: tzinfo | None = None) -> date | datetime | None:
    """ISO 8601 date or dateTime; a dateTime without offset is local time (`tz`, UTC by default)."""
    m = _DATE_RE.match(text)
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    m = _DATETIME_RE.match(text)
    if not m:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    fraction = (m.group(7) or "0")[:6].ljust(6, "0")
    offset = m.group(8)
    if offset is None:
        zone = tz or UTC
    elif offset == "Z":
        zone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours = int(digits[:2])
        minutes = int(digits[2:4] or 0)
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(year, month, day, hour, minute, second, int(fraction), tzinfo=zone)
    except ValueError:
        return None


def as_datetime(value: date, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=tz)


def days_since_epoch(value: date, tz: tzinfo) -> float:
    """JavaRosa's toNumeric(Date): whole local days since 1970-01-01."""
    if isinstance(value, datetime):
        value = value.astimezone(tz).date()
    return float((value - EPOCH).days)


def fractional_days(value: date, tz: tzinfo) -> float:
    """JavaRosa's decimal-date-time: (milliseconds since the epoch) / day, local midnight for dates."""
    moment = as_datetime(value, tz)
    return moment.timestamp() / DAY_SECONDS


def format_iso(value: date, tz: tzinfo) -> str:
    """JavaRosa's toString(Date): the ISO date (yyyy-mm-dd) in local time."""
    if isinstance(value, datetime):
        value = value.astimezone(tz).date()
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def format_date(value: date, fmt: str, tz: tzinfo) -> str:  # noqa: PLR0912
    """JavaRosa's DateUtils.format: %Y %y %m %n %b %d %e %H %h %M %S %3 %a %W."""
    moment = as_datetime(value, tz).astimezone(tz)
    out: list[str] = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%" or i + 1 >= len(fmt):
            out.append(ch)
            i += 1
            continue
        code = fmt[i + 1]
        i += 2
        if code == "Y":
            out.append(f"{moment.year:04d}")
        elif code == "y":
            out.append(f"{moment.year % 100:02d}")
        elif code == "m":
            out.append(f"{moment.month:02d}")
        elif code == "n":
            out.append(str(moment.month))
        elif code == "b":
            out.append(_MONTHS[moment.month - 1])
        elif code == "d":
            out.append(f"{moment.day:02d}")
        elif code == "e":
            out.append(str(moment.day))
        elif code == "H":
            out.append(f"{moment.hour:02d}")
        elif code == "h":
            out.append(str(moment.hour))
        elif code == "M":
            out.append(f"{moment.minute:02d}")
        elif code == "S":
            out.append(f"{moment.second:02d}")
        elif code == "3":
            out.append(f"{moment.microsecond // 1000:03d}")
        elif code == "a":
            out.append(_DAYS[moment.weekday()])
        elif code == "W":
            # Week of the year as JavaRosa's DateUtilsFormatTests state it: ISO 8601 weeks (Monday first, week 1
            # holds the first Thursday), which is also what Calendar gives on devices in ISO-week locales
            # (ru, kk, ky, tg, uz and most of Europe); en-US devices count Sunday-first weeks instead.
            out.append(str(moment.isocalendar().week))
        elif code == "%":
            out.append("%")
        else:
            raise XPathEvalError(f"format-date: unknown format code %{code}")
    return "".join(out)


def unpack(value: Any) -> Any:
    """A node-set as a single value: "" when empty, the node's value when one, an error when several."""
    if isinstance(value, list):
        if not value:
            return ""
        if len(value) > 1:
            raise XPathEvalError(f"This field is repeated: {value[0].path()} ... use indexed-repeat() or a predicate")
        return value[0].value
    return value


def to_boolean(value: Any) -> bool:
    value = unpack(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return abs(value) > 1.0e-12 and not math.isnan(value)
    if isinstance(value, str):
        return len(value) > 0
    if isinstance(value, date):
        return True
    raise XPathEvalError(f"cannot convert {value!r} to a boolean")


_NUMERIC_CHARS = frozenset("-.0123456789")


def to_number(value: Any, tz: tzinfo = UTC) -> float:
    value = unpack(value)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return string_to_number(value)
    if isinstance(value, date):
        return days_since_epoch(value, tz)
    if isinstance(value, int):
        return float(value)
    raise XPathEvalError(f"cannot convert {value!r} to a number")


@lru_cache(maxsize=65536)
def string_to_number(text: str) -> float:
    # XPath does not read scientific notation or Infinity from strings; JavaRosa also accepts a decimal comma.
    s = text.replace(",", ".").strip()
    if not s or not set(s) <= _NUMERIC_CHARS:
        return NAN
    try:
        return _java_parse_double(s)
    except ValueError:
        return NAN


def _java_parse_double(s: str) -> float:
    # Double.parseDouble accepts "1.", ".5", "-.5"; rejects "-", ".", "1-2", "1.2.3".
    if s.count("-") > 1 or ("-" in s and not s.startswith("-")) or s.count(".") > 1:
        raise ValueError(s)
    body = s.lstrip("-")
    if not body or body == ".":
        raise ValueError(s)
    return float(s)


def to_int(value: Any, tz: tzinfo = UTC) -> float:
    number = to_number(value, tz)
    if math.isnan(number) or math.isinf(number) or abs(number) >= 9.2e18:
        return number
    truncated = float(int(number))
    if truncated == 0 and (number < 0 or math.copysign(1, number) < 0):
        return -0.0
    return truncated


def java_double_str(d: float) -> str:
    """Java's Double.toString."""
    d = float(d)
    if d == 0:
        return "-0.0" if math.copysign(1, d) < 0 else "0.0"
    r = repr(d)
    a = abs(d)
    if 1e-3 <= a < 1e7:
        if "e" in r:  # repr chose exponent form
            r = f"{d:.17f}".rstrip("0")
        return r if "." in r else r + ".0"
    mantissa, _, exp = f"{d:.17e}".partition("e")
    digits = repr(d)
    # shortest digits from repr, re-laid as d.dddE<exp>
    if "e" in digits:
        mant, _, ex = digits.partition("e")
        exponent = int(ex)
    else:
        mant, exponent = digits, 0
    sign = "-" if mant.startswith("-") else ""
    mant = mant.lstrip("-").replace(".", "")
    if "e" not in digits:
        # digits like 12345678.0 or 0.0001234 -> normalise
        intpart, _, frac = digits.lstrip("-").partition(".")
        if intpart != "0":
            exponent = len(intpart) - 1
            mant = (intpart + frac).rstrip("0") or "0"
        else:
            stripped = frac.lstrip("0")
            exponent = -(len(frac) - len(stripped) + 1)
            mant = stripped.rstrip("0")
    else:
        whole, _, frac = repr(abs(d)).partition("e")[0].partition(".")
        mant = (whole + frac).rstrip("0") or "0"
    del mantissa, exp
    lead, rest = mant[0], mant[1:] or "0"
    return f"{sign}{lead}.{rest}E{exponent}"


def to_string(value: Any, tz: tzinfo = UTC) -> str:
    value = unpack(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_to_string(value)
    if isinstance(value, str):
        return value
    if isinstance(value, date):
        return format_iso(value, tz)
    if isinstance(value, int):
        return str(value)
    raise XPathEvalError(f"cannot convert {value!r} to a string")


def number_to_string(d: float) -> str:
    if math.isnan(d):
        return "NaN"
    if abs(d) < 1.0e-12:
        return "0"
    if math.isinf(d):
        return "-Infinity" if d < 0 else "Infinity"
    # Java's (int) cast saturates at the int range.
    as_int = max(-2147483648, min(2147483647, int(d)))
    if abs(d - as_int) < 1.0e-12:
        return str(as_int)
    return java_double_str(d)


def to_date(value: Any, *, preserve_time: bool = False, tz: tzinfo = UTC) -> Any:  # noqa: PLR0911 (one return per JavaRosa type rule)
    """JavaRosa's toDate: a date (or dateTime), or "" / NaN passed through."""
    value = unpack(value)
    if isinstance(value, bool):
        raise XPathEvalError(f'The value "{to_string(value)}" can\'t be converted to a date.')
    if isinstance(value, float):
        if math.isnan(value):
            return value
        if math.isinf(value) or abs(value) > 2147483647:
            raise XPathEvalError(f'The value "{value}" is out of range for representing a date.')
        if preserve_time:
            return datetime.fromtimestamp(int(value * DAY_SECONDS * 1000) / 1000.0, tz=UTC).astimezone(tz)
        return EPOCH + timedelta(days=int(to_int(value)))
    if isinstance(value, str):
        if value == "":
            return value
        parsed = parse_datetime(value.strip(), tz)
        if parsed is None:
            raise XPathEvalError(f'The value "{value}" can\'t be converted to a date.')
        return parsed
    if isinstance(value, date):
        if preserve_time or not isinstance(value, datetime):
            return value
        return value.astimezone(tz).date()
    raise XPathEvalError(f'The value "{value}" can\'t be converted to a date.')


def java_round(number: float, places: int) -> float:
    if math.isnan(number) or math.isinf(number):
        return number
    if places > 30 or places < -30:
        return NAN
    if places >= 0:
        mode = ROUND_HALF_DOWN if number < 0 else ROUND_HALF_UP
        try:
            text = java_double_str(number)
            return float(Decimal(text).quantize(Decimal(1).scaleb(-places), rounding=mode))
        except InvalidOperation:
            return NAN
    scaled = float(Decimal(repr(number)).scaleb(places))
    rounded = float(int(scaled + 0.5))
    return float(Decimal(repr(rounded)).scaleb(-places))


def xpath_regex(pattern: str) -> re.Pattern[str]:
    return _compiled_regex(pattern)


@lru_cache(maxsize=1024)
def _compiled_regex(pattern: str) -> re.Pattern[str]:
    # Java's regex dialect is close to Python's for what forms use; \p{L} style classes are mapped.
    translated = pattern.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{Lu}", r"[^\W\d_]")
    try:
        return re.compile(translated)
    except re.error as exc:
        raise XPathEvalError(f"regex(): invalid pattern {pattern!r}: {exc}") from None


def wrap_calculated(result: Any, dtype: str | None, tz: tzinfo = UTC) -> tuple[str, Any]:  # noqa: PLR0911 (one return per JavaRosa type rule)
    """What JavaRosa stores for a calculation's result in a node of this bind type (IAnswerData.wrapData).

    Returns the serialized text (as written to the instance XML, "" for no value) and the in-memory value
    later expressions read (booleans stay booleans, numbers numbers, dates dates).
    """
    if isinstance(result, list):
        result = unpack(result)
    if (isinstance(result, str) and result == "") or (isinstance(result, float) and math.isnan(result)):
        return "", ""
    dtype = dtype or "string"
    if dtype == "boolean" or isinstance(result, bool):
        flag = to_boolean(result)
        return ("1" if flag else "0"), flag
    if isinstance(result, float):
        if math.isinf(result):
            return ("Infinity" if result > 0 else "-Infinity"), result
        whole = int(result)
        if dtype == "int":
            whole = max(-2147483648, min(2147483647, whole))
            return str(whole), float(whole)
        if abs(result - whole) < 1.0e-9:
            return str(whole), float(whole)
        return java_double_str(result), result
    if isinstance(result, datetime | date):
        if dtype == "date":
            day = result.astimezone(tz).date() if isinstance(result, datetime) else result
            return day.isoformat(), day
        moment = result if isinstance(result, datetime) else datetime(result.year, result.month, result.day, tzinfo=tz)
        moment = moment.astimezone(tz)
        offset = moment.strftime("%z")
        offset = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + offset
        return text, moment
    text = to_string(result, tz)
    if not text.strip():
        return "", ""
    return text, text


def java_pow(x: float, y: float) -> float:
    """pow(x, y) as Java's Math.pow (JavaRosa's): where Python's math.pow raises, Java returns an infinity or NaN.
    0 to a negative power is +Infinity (-Infinity for -0 and an odd integer power); a negative base to a
    fractional power is NaN; an overflow is an infinity signed as the exact result would be."""
    odd_integer = y.is_integer() and y % 2 == 1
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and odd_integer else math.inf
    except ValueError:
        if x == 0:
            return -math.inf if odd_integer and math.copysign(1.0, x) < 0 else math.inf
        return math.nan


def substring(text: Any, start: Any, end: Any = None, tz: tzinfo = UTC) -> str:
    """substr(text, start, end) as JavaRosa reads it: 0-based, negative positions count from the end."""
    s = to_string(text, tz)
    length = len(s)
    begin = int(to_int(start, tz)) if not math.isnan(to_int(start, tz)) else 0
    stop = length if end is None else (int(to_int(end, tz)) if not math.isnan(to_int(end, tz)) else 0)
    if begin < 0:
        begin += length
    if stop < 0:
        stop += length
    stop = min(max(0, stop), length)
    begin = min(max(0, begin), length)
    return s[begin:stop] if begin <= stop else ""
