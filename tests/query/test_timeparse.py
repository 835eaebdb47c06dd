"""Time and duration expressions: every accepted form, exact to the nanosecond."""

from __future__ import annotations

import pytest

from koban.errors import TimeFormatError
from koban.query.timeparse import (
    format_rfc3339_ns,
    parse_duration,
    parse_time,
    resolve_range,
)

S = 10**9
MIN = 60 * S
HOUR = 60 * MIN
DAY = 24 * HOUR
NOW = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    "text, ns",
    [
        pytest.param("10ns", 10, id="nanoseconds"),
        pytest.param("250us", 250_000, id="microseconds"),
        pytest.param("250µs", 250_000, id="micro sign"),
        pytest.param("500ms", 500_000_000, id="milliseconds"),
        pytest.param("30s", 30 * S, id="seconds"),
        pytest.param("15m", 15 * MIN, id="minutes"),
        pytest.param("2h", 2 * HOUR, id="hours"),
        pytest.param("7d", 7 * DAY, id="days"),
        pytest.param("1w", 7 * DAY, id="weeks"),
        pytest.param("30", 30 * S, id="bare number is seconds"),
        pytest.param("1.5h", 90 * MIN, id="fraction"),
        pytest.param("0.1s", 100_000_000, id="fraction without float drift"),
        pytest.param(" 5 m ", 5 * MIN, id="blanks around and inside"),
        pytest.param("0s", 0, id="zero"),
    ],
)
def test_it_reads_durations_as_nanoseconds(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("m", id="unit only"),
        pytest.param("-5m", id="negative"),
        pytest.param("5y", id="unknown unit"),
        pytest.param("5 minutes", id="spelled out"),
        pytest.param("1e3s", id="exponent"),
        pytest.param("5M", id="upper-case unit"),
        pytest.param("nan", id="nan"),
    ],
)
def test_it_rejects_bad_durations_naming_the_text(text):
    with pytest.raises(TimeFormatError) as info:
        parse_duration(text)
    assert repr(text) in info.value.message
    assert "15m" in info.value.message  # the accepted forms are listed


@pytest.mark.parametrize(
    "text, ns",
    [
        pytest.param("2026-01-01T00:00:00Z", NOW, id="rfc3339 utc"),
        pytest.param("2026-01-01T00:00:00z", NOW, id="lower-case z"),
        pytest.param("2026-01-01T00:00:00.5Z", NOW + S // 2, id="one fraction digit"),
        pytest.param(
            "2026-01-01T00:00:00.123456789Z", NOW + 123_456_789, id="nine fraction digits"
        ),
        pytest.param(
            "2026-01-01T00:00:00.000000001Z", NOW + 1, id="one nanosecond is kept"
        ),
        pytest.param("2026-01-01T01:00:00+01:00", NOW, id="positive offset"),
        pytest.param("2025-12-31T19:30:00-04:30", NOW, id="negative offset"),
        pytest.param("2026-01-01 00:00:00Z", NOW, id="space separator"),
        pytest.param("2026-01-01T00:00", NOW, id="minutes only, no offset is utc"),
        pytest.param("2026-01-01", NOW, id="date is midnight utc"),
        pytest.param("2026-01-02", NOW + DAY, id="next day"),
        pytest.param("1969-12-31T23:59:59Z", -S, id="before the epoch"),
        pytest.param("2024-02-29", 1_709_164_800 * S, id="leap day"),
        pytest.param("1767225600", NOW, id="unix seconds"),
        pytest.param("1767225600.25", NOW + S // 4, id="unix seconds with decimals"),
        pytest.param("9000000000", 9 * 10**18, id="unix seconds in 2255"),
        pytest.param("1767225600123", NOW + 123 * 10**6, id="unix milliseconds"),
        pytest.param("1767225600123456", NOW + 123_456_000, id="unix microseconds"),
        pytest.param("1767225600123456789", NOW + 123_456_789, id="unix nanoseconds"),
        pytest.param("0", 0, id="epoch"),
        pytest.param("now", NOW, id="now"),
        pytest.param("NOW", NOW, id="upper-case now"),
        pytest.param("now-15m", NOW - 15 * MIN, id="now minus"),
        pytest.param("now+1h", NOW + HOUR, id="now plus"),
        pytest.param("now-1d", NOW - DAY, id="now minus a day"),
        pytest.param("now - 30", NOW - 30 * S, id="now minus bare seconds"),
        pytest.param("15m", NOW - 15 * MIN, id="bare relative minutes"),
        pytest.param("2h", NOW - 2 * HOUR, id="bare relative hours"),
        pytest.param("7d", NOW - 7 * DAY, id="bare relative days"),
        pytest.param("  now  ", NOW, id="surrounding blanks"),
    ],
)
def test_it_reads_times_as_nanoseconds(text, ns):
    assert parse_time(text, NOW) == ns


def test_the_1e11_boundary_switches_seconds_to_milliseconds():
    assert parse_time("100000000000", NOW) == 100_000_000_000 * 10**6
    with pytest.raises(TimeFormatError, match="out of range"):
        parse_time("99999999999", NOW)  # seconds, so far past year 2262


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("yesterday", id="word"),
        pytest.param("now-", id="now minus nothing"),
        pytest.param("now-5y", id="now minus unknown unit"),
        pytest.param("-5m", id="negative relative"),
        pytest.param("1e9", id="exponent"),
        pytest.param("2026-01-01T00:00:00.1234567890Z", id="ten fraction digits"),
        pytest.param("2026-1-1", id="unpadded date"),
        pytest.param("01/02/2026", id="slashed date"),
    ],
)
def test_it_rejects_unknown_time_forms_listing_the_accepted_ones(text):
    with pytest.raises(TimeFormatError) as info:
        parse_time(text, NOW)
    assert repr(text) in info.value.message
    assert "RFC 3339" in info.value.message and "now-15m" in info.value.message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-13-01", id="month 13"),
        pytest.param("2026-02-30", id="february 30"),
        pytest.param("2025-02-29", id="not a leap year"),
        pytest.param("2026-01-01T24:00:00Z", id="hour 24"),
        pytest.param("2026-01-01T00:00:60Z", id="leap second"),
        pytest.param("2026-01-01T00:00:00+24:00", id="offset of a day"),
        pytest.param("0000-01-01", id="year zero"),
    ],
)
def test_it_rejects_impossible_dates(text):
    with pytest.raises(TimeFormatError) as info:
        parse_time(text, NOW)
    assert repr(text) in info.value.message


def test_it_rejects_times_beyond_64_bit_nanoseconds():
    with pytest.raises(TimeFormatError, match="out of range"):
        parse_time("9999-12-31", NOW)


@pytest.mark.parametrize(
    "ns, text",
    [
        pytest.param(NOW, "2026-01-01T00:00:00.000000000Z", id="whole second"),
        pytest.param(NOW + 123_456_789, "2026-01-01T00:00:00.123456789Z", id="fraction"),
        pytest.param(0, "1970-01-01T00:00:00.000000000Z", id="epoch"),
        pytest.param(-1, "1969-12-31T23:59:59.999999999Z", id="before the epoch"),
    ],
)
def test_it_formats_rfc3339_with_nine_fraction_digits(ns, text):
    assert format_rfc3339_ns(ns) == text


@pytest.mark.parametrize(
    "ns",
    [NOW, NOW + 1, NOW + 999_999_999, -1, 0, 2**63 - 1, -(2**63)],
    ids=["now", "plus 1ns", "last ns of a second", "minus 1ns", "epoch", "max", "min"],
)
def test_formatted_times_parse_back_to_the_same_nanosecond(ns):
    assert parse_time(format_rfc3339_ns(ns), NOW) == ns


@pytest.mark.parametrize(
    "from_text, to_text, expected",
    [
        pytest.param(None, None, (NOW - 15 * MIN, NOW), id="defaults"),
        pytest.param("", "  ", (NOW - 15 * MIN, NOW), id="blank means missing"),
        pytest.param("now-1h", None, (NOW - HOUR, NOW), id="from only"),
        pytest.param(None, "now-1h", (NOW - HOUR - 15 * MIN, NOW - HOUR), id="to only"),
        pytest.param("1h", "30m", (NOW - HOUR, NOW - 30 * MIN), id="both relative"),
        pytest.param(
            "2025-12-31", "2026-01-01", (NOW - DAY, NOW), id="both absolute"
        ),
    ],
)
def test_it_resolves_a_query_window(from_text, to_text, expected):
    assert resolve_range(from_text, to_text, NOW) == expected


def test_it_uses_the_given_default_span():
    assert resolve_range(None, None, NOW, default_span="1h") == (NOW - HOUR, NOW)


@pytest.mark.parametrize(
    "from_text, to_text",
    [
        pytest.param("now", "now", id="empty window"),
        pytest.param("now-5m", "now-1h", id="reversed window"),
        pytest.param("now+1m", None, id="from in the future"),
    ],
)
def test_it_rejects_windows_that_do_not_move_forward(from_text, to_text):
    with pytest.raises(TimeFormatError, match="is not before"):
        resolve_range(from_text, to_text, NOW)


def test_it_passes_on_errors_from_either_bound():
    with pytest.raises(TimeFormatError, match="'soon'"):
        resolve_range("now-1h", "soon", NOW)
