"""StatsD and DogStatsD datagrams -> samples, events and service checks.

Pure: no sockets, no clock. One datagram holds one or more lines separated by "\\n":

    name:value[:value...]|type[|@rate][|#tag,key:value][|c:container][|T<unix seconds>]
    _e{<title bytes>,<text bytes>}:title|text[|d:ts][|h:host][|k:key][|p:priority][|s:source][|t:alert_type][|#tags]
    _sc|name|status[|d:ts][|h:host][|#tags][|m:message]

Types: c (counter), g (gauge; a leading + or - makes it a delta), ms (timer),
h (histogram), s (set), d (distribution). Several values in one line
(`name:1:2:3|ms`) are DogStatsD protocol v1.1. Fields this parser does not know
(`|e:` external data, `|card:` cardinality, anything newer) are skipped, as the
Datadog Agent skips them.

A line that does not parse becomes a `ParseError` with a reason from `REASONS`; it
never raises, and the other lines of the datagram still count. Aggregation over a
flush interval is `koban.pipeline.statsd_aggregator`'s job, not this module's.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

TYPES = frozenset(("c", "g", "ms", "h", "s", "d"))

# Why a line was dropped; the label values of the parse-error counter.
BAD_LINE = "bad_line"  # no "name:value|type" shape at all
EMPTY_NAME = "empty_name"
BAD_VALUE = "bad_value"  # not a finite number (or an empty set member)
UNKNOWN_TYPE = "unknown_type"
BAD_SAMPLE_RATE = "bad_sample_rate"  # not a number in (0, 1]
BAD_TIMESTAMP = "bad_timestamp"  # not a positive integer number of seconds the store can hold
BAD_EVENT = "bad_event"
BAD_SERVICE_CHECK = "bad_service_check"
NOT_UTF8 = "not_utf8"
REASONS = (
    BAD_LINE, EMPTY_NAME, BAD_VALUE, UNKNOWN_TYPE, BAD_SAMPLE_RATE, BAD_TIMESTAMP, BAD_EVENT,
    BAD_SERVICE_CHECK, NOT_UTF8,
)

MAX_TIMESTAMP_S = (2**63 - 1) // 10**9  # the store keeps times as int64 nanoseconds
_ERROR_LINE_CHARS = 200


class Sample(NamedTuple):
    """One value of one metric line (a v1.1 line with three values gives three samples)."""

    name: str
    type: str  # one of TYPES
    value: float  # 0.0 for sets
    member: str = ""  # the set member, as sent (sets only)
    delta: bool = False  # a gauge value sent with a leading + or -
    rate: float = 1.0  # the sample rate, in (0, 1]
    tags: tuple[str, ...] = ()  # as sent: "key:value" or a bare "tag"
    container: str = ""
    timestamp_s: int = 0  # 0 when the line had no |T field


class Event(NamedTuple):
    title: str
    text: str
    timestamp_s: int = 0
    hostname: str = ""
    aggregation_key: str = ""
    priority: str = "normal"  # normal or low
    source_type: str = ""
    alert_type: str = "info"  # error, warning, info or success
    tags: tuple[str, ...] = ()
    container: str = ""


class ServiceCheck(NamedTuple):
    name: str
    status: int  # 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
    timestamp_s: int = 0
    hostname: str = ""
    tags: tuple[str, ...] = ()
    message: str = ""
    container: str = ""


class ParseError(NamedTuple):
    reason: str  # one of REASONS
    line: str  # the offending line, cut to 200 characters


Item = Sample | Event | ServiceCheck


def parse_datagram(data: bytes) -> tuple[list[Item], list[ParseError]]:
    """The samples, events and service checks of one datagram, in order, and a
    ParseError for each line that does not parse. Empty lines are skipped. Never raises."""
    items: list[Item] = []
    errors: list[ParseError] = []
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = []
        for raw in data.split(b"\n"):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                errors.append(ParseError(NOT_UTF8, raw[:_ERROR_LINE_CHARS].decode("utf-8", "replace")))
    for line in lines:
        error = parse_line(line, items)
        if error is not None:
            errors.append(error)
    return items, errors


def parse_line(line: str, out: list[Item]) -> ParseError | None:
    """Append the sample(s), event or service check of one line (no "\\n") to `out`;
    the ParseError when it does not parse, else None. An empty line adds nothing."""
    if line and line[-1] == "\r":
        line = line[:-1]
    if not line:
        return None
    if line[0] != "_":  # a metric: by far the most lines
        reason = _metric(line, out)
    elif line.startswith("_e{"):
        reason = _add(_event(line), out)
    elif line.startswith("_sc|"):
        reason = _add(_service_check(line), out)
    else:
        reason = _metric(line, out)
    return None if reason is None else ParseError(reason, line[:_ERROR_LINE_CHARS])


def _add(result: Item | str, out: list[Item]) -> str | None:
    if isinstance(result, str):
        return result
    out.append(result)
    return None


# What follows a metric line's values ("ms|@0.5|#env:prod") is the same for every line
# of a series, so its parse is memoised: at 100k+ lines/s re-reading the fields and
# splitting the tags of every line was a third of the parse. Bounded, and pure.
_Shape = tuple[str, float, tuple[str, ...], str, int]  # type, rate, tags, container, timestamp_s
_tuple_new = tuple.__new__  # a Sample without NamedTuple's Python-level __new__


def _metric(line: str, out: list[Item]) -> str | None:
    """Append the samples of metric `line` to `out`; the reason it is bad, or None."""
    head, sep, rest = line.partition("|")
    name, colon, values = head.partition(":")
    if not sep or not colon:
        return BAD_LINE
    if not name.strip():
        return EMPTY_NAME
    shape = _shape(rest)
    if type(shape) is str:
        return shape
    type_, rate, tags, container, timestamp = shape  # type: ignore[misc]
    if type_ == "s":
        members = values.split(":")
        if "" in members:
            return BAD_VALUE
        out.extend(_tuple_new(Sample, (name, "s", 0.0, m, False, rate, tags, container, timestamp)) for m in members)
        return None
    if ":" not in values:  # one value: the common case
        value = _number(values)
        if value != value or value in _INFINITE:
            return BAD_VALUE
        delta = type_ == "g" and values[0] in "+-"
        out.append(_tuple_new(Sample, (name, type_, value, "", delta, rate, tags, container, timestamp)))
        return None
    samples = []
    for text in values.split(":"):
        value = _number(text)
        if not math.isfinite(value):
            return BAD_VALUE
        delta = type_ == "g" and text[:1] in "+-"
        samples.append(_tuple_new(Sample, (name, type_, value, "", delta, rate, tags, container, timestamp)))
    out.extend(samples)
    return None


_INFINITE = (math.inf, -math.inf)


@lru_cache(maxsize=16384)
def _shape(rest: str) -> _Shape | str:
    """The type and fields of a metric line (what follows "name:values|"), or the
    reason they are bad."""
    type_, _, fields = rest.partition("|")
    if type_ not in TYPES:
        return UNKNOWN_TYPE
    rate = 1.0
    tags: tuple[str, ...] = ()
    container = ""
    timestamp = 0
    if fields:
        for field in fields.split("|"):
            first = field[:1]
            if first == "@":
                rate = _number(field[1:])
                if not 0.0 < rate <= 1.0:  # NaN fails too
                    return BAD_SAMPLE_RATE
            elif first == "#":
                tags = _tags(field[1:])
            elif field.startswith("c:"):
                container = field[2:]
            elif first == "T":
                timestamp = _timestamp(field[1:])
                if timestamp <= 0:
                    return BAD_TIMESTAMP
            # anything else (e:, card:, newer fields) is not ours to judge
    return type_, rate, tags, container, timestamp


def _number(text: str) -> float:
    """`text` as a float; NaN when it is not a plain decimal number."""
    try:
        value = float(text)
    except ValueError:
        return math.nan
    # float() also takes " 1", "1_000": not StatsD numbers
    if text[-1].isspace() or text[0].isspace() or "_" in text:
        return math.nan
    return value


def _timestamp(text: str) -> int:
    """Seconds since the epoch, or 0 when `text` is not one the store can hold."""
    if not text.isascii() or not text.isdigit():
        return 0
    value = int(text)
    return value if value <= MAX_TIMESTAMP_S else 0


def _tags(text: str) -> tuple[str, ...]:
    tags = text.split(",")
    if "" in tags:
        tags = [t for t in tags if t]
    return tuple(tags)


def _event(line: str) -> Event | str:
    # _e{<title length>,<text length>}:<title>|<text>[|fields]; lengths count UTF-8 bytes
    close = line.find("}:", 3)
    if close < 0:
        return BAD_EVENT
    lengths = line[3:close].split(",")
    if len(lengths) != 2 or not all(n.isascii() and n.isdigit() for n in lengths):
        return BAD_EVENT
    title_len, text_len = int(lengths[0]), int(lengths[1])
    body = line[close + 2:].encode("utf-8")
    if title_len == 0 or len(body) < title_len + 1 + text_len or body[title_len:title_len + 1] != b"|":
        return BAD_EVENT
    end = title_len + 1 + text_len
    try:
        title = body[:title_len].decode("utf-8")
        text = body[title_len + 1:end].decode("utf-8")
        fields = body[end:].decode("utf-8")
    except UnicodeDecodeError:  # a length that cuts a character in two
        return BAD_EVENT
    if fields and not fields.startswith("|"):
        return BAD_EVENT
    ev = Event(title.replace("\\n", "\n"), text.replace("\\n", "\n"))
    for field in fields.split("|")[1:]:
        key, colon, value = field.partition(":")
        if field.startswith("#"):
            ev = ev._replace(tags=_tags(field[1:]))
        elif not colon:
            continue
        elif key == "d":
            ts = _timestamp(value)
            if ts <= 0:
                return BAD_EVENT
            ev = ev._replace(timestamp_s=ts)
        elif key == "h":
            ev = ev._replace(hostname=value)
        elif key == "k":
            ev = ev._replace(aggregation_key=value)
        elif key == "p":
            ev = ev._replace(priority=value)
        elif key == "s":
            ev = ev._replace(source_type=value)
        elif key == "t":
            ev = ev._replace(alert_type=value)
        elif key == "c":
            ev = ev._replace(container=value)
    return ev


def _service_check(line: str) -> ServiceCheck | str:
    # _sc|<name>|<status>[|d:ts][|h:host][|#tags][|m:message]; the message is last
    # and may itself hold "|", so everything after "|m:" is the message.
    line, _, message = line.partition("|m:")
    parts = line.split("|")
    if len(parts) < 3 or not parts[1] or parts[2] not in ("0", "1", "2", "3"):
        return BAD_SERVICE_CHECK
    sc = ServiceCheck(parts[1], int(parts[2]), message=message.replace("\\n", "\n").replace("m\\:", "m:"))
    for field in parts[3:]:
        if field.startswith("#"):
            sc = sc._replace(tags=_tags(field[1:]))
        elif field.startswith("d:"):
            ts = _timestamp(field[2:])
            if ts <= 0:
                return BAD_SERVICE_CHECK
            sc = sc._replace(timestamp_s=ts)
        elif field.startswith("h:"):
            sc = sc._replace(hostname=field[2:])
        elif field.startswith("c:"):
            sc = sc._replace(container=field[2:])
    return sc
