"""Time and duration expressions: `from`, `to`, `interval`, `--since`.

All results are integer nanoseconds, computed without floats so an RFC 3339 fraction
of nine digits comes back exact. Accepted times:

- RFC 3339, `2026-01-02T15:04:05.123456789Z` or with `+hh:mm`/`-hh:mm`; seconds,
  fraction (up to 9 digits) and offset may be left out (no offset means UTC), and a
  space may replace the `T`;
- a date, `2026-01-02`, meaning midnight UTC;
- a unix timestamp whose size says its unit: seconds below 1e11 (decimals allowed),
  milliseconds below 1e14, microseconds below 1e17, nanoseconds above;
- `now`, `now-15m`, `now+1h`;
- a bare duration with a unit, `15m`, meaning that long before now.

Durations are a number with a unit (ns, us, µs, ms, s, m, h, d, w); a bare number is
seconds. Every failure raises TimeFormatError naming the text and the accepted forms.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from koban.errors import TimeFormatError

NS_PER_S = 10**9
_UNITS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 7 * 86400 * NS_PER_S,
}
# Digit counts are capped so no input can build a huge number (or hit int's
# string-length limit); 30 digits is far beyond any real time or duration.
_DURATION_RE = re.compile(
    r"([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*(ns|us|µs|μs|ms|s|m|h|d|w)?"
)
_UNIX_RE = re.compile(r"[0-9]{1,30}(?:\.[0-9]{1,30})?")
_RELATIVE_RE = re.compile(r"now\s*(?:([+-])\s*(.+))?", re.IGNORECASE)
_RFC3339_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?)?"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_DURATION_FORMS = "a number with a unit (500ms, 30s, 15m, 2h, 7d, 1w) or bare seconds"
_TIME_FORMS = (
    "RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02), a unix timestamp "
    "(seconds, ms, us or ns), 'now', 'now-15m', 'now+1h' or a duration ago ('15m')"
)


def parse_duration(text: str) -> int:
    """The duration `text` in nanoseconds ("500ms", "15m", "7d"; "30" is seconds).

    Fractions are allowed ("1.5h") and rounded to the nearest nanosecond.
    Raises TimeFormatError for anything else, including negative durations.
    """
    ns = _duration_ns(text.strip())
    if ns is None:
        raise TimeFormatError(
            f"cannot read duration {text!r}: expected {_DURATION_FORMS}", value=text
        )
    return ns


def parse_time(text: str, now_ns: int) -> int:
    """The time `text` as nanoseconds since the epoch, relative forms counted from `now_ns`.

    Raises TimeFormatError when `text` is none of the accepted forms, names an
    impossible date, or falls outside the signed 64-bit nanosecond range.
    """
    ns = _time_ns(text.strip(), now_ns)
    if ns is None:
        raise TimeFormatError(
            f"cannot read time {text!r}: expected {_TIME_FORMS}", value=text
        )
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise TimeFormatError(f"time {text!r} is out of range", value=text)
    return ns


def format_rfc3339_ns(ns: int) -> str:
    """`ns` since the epoch as RFC 3339 in UTC with nine fraction digits.

    Raises OverflowError for times outside the years 1..9999.
    """
    seconds, fraction = divmod(ns, NS_PER_S)
    when = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def resolve_range(
    from_text: str | None,
    to_text: str | None,
    now_ns: int,
    default_span: str = "15m",
) -> tuple[int, int]:
    """The (from, to) nanosecond window for a query's `from` and `to` parameters.

    A missing (None or blank) `to` is now; a missing `from` is `default_span` before
    `to`. Raises TimeFormatError when either does not parse or when from >= to.
    """
    to_ns = parse_time(to_text, now_ns) if to_text and to_text.strip() else now_ns
    if from_text and from_text.strip():
        from_ns = parse_time(from_text, now_ns)
    else:
        from_ns = to_ns - parse_duration(default_span)
    if from_ns >= to_ns:
        raise TimeFormatError(
            f"the time range is empty: from {_describe(from_ns)} "
            f"is not before to {_describe(to_ns)}",
            from_ns=from_ns,
            to_ns=to_ns,
        )
    return from_ns, to_ns


def _describe(ns: int) -> str:
    try:
        return format_rfc3339_ns(ns)
    except OverflowError:
        return f"{ns} ns"


def _duration_ns(text: str) -> int | None:
    m = _DURATION_RE.fullmatch(text)
    if not m:
        return None
    number, unit = m.groups()
    return round(Decimal(number) * _UNITS[unit or "s"])


def _time_ns(text: str, now_ns: int) -> int | None:
    relative = _RELATIVE_RE.fullmatch(text)
    if relative:
        sign, span = relative.groups()
        if sign is None:
            return now_ns
        ns = _duration_ns(span.strip())
        if ns is None:
            return None
        return now_ns - ns if sign == "-" else now_ns + ns
    if _UNIX_RE.fullmatch(text):
        return _unix_ns(Decimal(text))
    m = _DURATION_RE.fullmatch(text)
    if m and m.group(2):  # a bare number is a unix time (above), so a unit is required
        return now_ns - _duration_ns(text)  # type: ignore[operator]
    if _RFC3339_RE.fullmatch(text):
        return _rfc3339_ns(text)
    return None


def _unix_ns(value: Decimal) -> int:
    """A unix timestamp whose unit is guessed from its size, in nanoseconds."""
    if value < Decimal("1e11"):
        scale = NS_PER_S
    elif value < Decimal("1e14"):
        scale = 10**6
    elif value < Decimal("1e17"):
        scale = 10**3
    else:
        scale = 1
    return round(value * scale)


def _rfc3339_ns(text: str) -> int:
    """RFC 3339 `text` (already matched) in ns; TimeFormatError for impossible dates."""
    m = _RFC3339_RE.fullmatch(text)
    assert m is not None
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = m.groups()
    offset = dt.timedelta(0)
    if sign:
        if int(off_h) > 23 or int(off_m) > 59:
            raise TimeFormatError(
                f"time {text!r} has an impossible UTC offset", value=text
            )
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
    try:
        when = dt.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=dt.timezone(offset),
        )
    except ValueError as exc:  # month 13, February 30, second 60, year 0
        message = f"time {text!r} is not a real date: {exc}"
        raise TimeFormatError(message, value=text) from None
    # timedelta arithmetic is exact integers; no float on the way to nanoseconds.
    delta = when - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return seconds * NS_PER_S + int((fraction or "").ljust(9, "0") or 0)
