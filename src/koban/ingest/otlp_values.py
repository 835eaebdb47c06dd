"""Helpers both OTLP decoders share: AnyValue -> str, attribute flattening, rejections,
and the ranges a record's numbers must fit to be stored.

OTLP attribute values are typed (string, int, double, bool, bytes, array, kvlist);
koban keeps attributes as `dict[str, str]` (see `koban.model`). The rules, the same for
protobuf and JSON input:

- string as is; int in decimal; double in Python's shortest repr ("0.5", "250.0");
  bool as "true"/"false"; bytes as standard base64; empty or absent value as "";
- array as a JSON array of the native values (kvlists inside become objects);
- kvlist flattened into dotted keys: `{"user": {"id": 7}}` -> `{"user.id": "7"}`; an
  empty kvlist keeps its key with the value "{}" so the attribute is not lost.

A protobuf AnyValue is read with `WhichOneof`; a JSON AnyValue (already a dict from
orjson) is first turned into a `(kind, payload)` pair by `otlp_json`, so the string and
native conversions below take plain Python values.

Times. OTLP sends times as fixed64 (uint64 nanoseconds) but the store keeps them as
TIMESTAMP_NS, a signed int64, so a time above MAX_TIME_NS (2**63 - 1, in the year 2262)
cannot be stored. Both decoders apply the same rules (`time_ok`):

- a log record whose time_unix_nano is out of range is rejected; an observed time out
  of range is treated as absent (it falls back to the receive time, as 0 does), since
  the observed time is a collector's stamp and the record itself is still good;
- a span whose start or end time, or any of whose event times, is out of range is
  rejected (links carry no time);
- a metric data point whose start or point time, or any of whose exemplar times, is
  out of range is rejected.

Rejections are partial success ("1 span rejected: end_time_unix_nano out of range"),
checked after the id checks, so a record with several faults is counted once, for the
first. Other numbers already fit by construction: protobuf's wire types bound counts
(uint64 -> UBIGINT), flags (uint32 -> UINTEGER), scale and offsets (int32 -> INTEGER),
and the JSON decoder range-checks the same fields to the same widths (DecodeError
otherwise); the trace-flag byte is masked and severity numbers off the 0..24 scale
become 0; a span's duration, end - start of two in-range times, fits UBIGINT.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from koban.model import SPAN_KINDS, STATUS_CODES

# Deeper kvlist/array nesting than this is refused: real telemetry is a few levels deep,
# and a bound keeps the recursion below Python's limit whatever the input.
MAX_DEPTH = 32

UNKNOWN_SERVICE = "unknown_service"

# The largest time (nanoseconds since the epoch) the store's TIMESTAMP_NS can hold.
MAX_TIME_NS = 2**63 - 1
# Integer ranges, inclusive, of the protobuf wire types (and of the store's columns).
U32 = (0, 2**32 - 1)
I32 = (-(2**31), 2**31 - 1)
U64 = (0, 2**64 - 1)
I64 = (-(2**63), 2**63 - 1)


def time_ok(ns: int) -> bool:
    """Whether `ns`, a uint64 OTLP time, fits the store's signed 64-bit TIMESTAMP_NS."""
    return ns <= MAX_TIME_NS


def format_double(value: float) -> str:
    """The shortest text that reads back as `value` ("0.5", "250.0", "1e+20", "nan")."""
    return repr(value)


def format_bytes(value: bytes) -> str:
    """Standard base64 with padding, as OTLP/JSON writes bytesValue."""
    return base64.b64encode(value).decode("ascii")


def to_json(native: Any) -> str:
    """`native` (str/int/float/bool/None/list/dict) as compact JSON text; NaN/inf become null."""
    return orjson.dumps(native).decode()


def service_name(attributes: dict[str, str]) -> str:
    """The resource's `service.name`, or "unknown_service" when absent or empty."""
    return attributes.get("service.name") or UNKNOWN_SERVICE


# --- protobuf AnyValue ---------------------------------------------------------------


class TooDeep(Exception):
    """An AnyValue nests deeper than MAX_DEPTH; the decoders turn it into DecodeError."""


def proto_attributes(kvs: Any) -> dict[str, str]:
    """A repeated KeyValue as a flat `dict[str, str]`; later duplicate keys win.

    Raises TooDeep for kvlists nested deeper than MAX_DEPTH.
    """
    out: dict[str, str] = {}
    for kv in kvs:
        value = kv.value
        # Most attributes are non-empty strings: one field read settles those. Anything
        # else reads "" here and is looked at properly (an empty string comes out "").
        s = value.string_value
        if s:
            out[kv.key] = s
        else:
            _put_proto(out, kv.key, value, value.WhichOneof("value"), 0)
    return out


def _put_proto(out: dict[str, str], key: str, value: Any, which: str | None, depth: int) -> None:
    if which == "kvlist_value":
        if depth >= MAX_DEPTH:
            raise TooDeep(key)
        values = value.kvlist_value.values
        if not values:
            out[key] = "{}"
        for kv in values:
            child = kv.value
            _put_proto(out, f"{key}.{kv.key}", child, child.WhichOneof("value"), depth + 1)
    else:
        out[key] = proto_value_str(value, which, depth)


def proto_value_str(value: Any, which: str | None, depth: int = 0) -> str:
    """A protobuf AnyValue as a string: scalars in their text form, arrays and kvlists as JSON.

    Raises TooDeep for nesting deeper than MAX_DEPTH.
    """
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "bytes_value":
        return format_bytes(value.bytes_value)
    if which == "array_value" or which == "kvlist_value":
        return to_json(proto_native(value, which, depth))
    # unset, or string_value_strindex (only meaningful inside profiles): no value
    return ""


def proto_native(value: Any, which: str | None, depth: int = 0) -> Any:
    """A protobuf AnyValue as a JSON-ready Python value (None when unset).

    Raises TooDeep for nesting deeper than MAX_DEPTH.
    """
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "bytes_value":
        return format_bytes(value.bytes_value)
    if which == "array_value" or which == "kvlist_value":
        if depth >= MAX_DEPTH:
            raise TooDeep(which)
        if which == "array_value":
            return [proto_native(v, v.WhichOneof("value"), depth + 1) for v in value.array_value.values]
        return {
            kv.key: proto_native(kv.value, kv.value.WhichOneof("value"), depth + 1)
            for kv in value.kvlist_value.values
        }
    return None


# --- JSON AnyValue, already reduced to (kind, payload) by otlp_json -------------------
#
# kinds: "s" str, "i" int, "d" float, "b" bool, "y" bytes, "a" list of (kind, payload),
# "k" list of (key, (kind, payload)), "" no value.

Tagged = tuple[str, Any]


def tagged_str(tagged: Tagged) -> str:
    """A reduced JSON AnyValue as a string, by the same rules as `proto_value_str`."""
    kind, payload = tagged
    if kind == "s":
        return payload
    if kind == "i":
        return str(payload)
    if kind == "d":
        return repr(payload)
    if kind == "b":
        return "true" if payload else "false"
    if kind == "y":
        return format_bytes(payload)
    if kind == "a" or kind == "k":
        return to_json(tagged_native(tagged))
    return ""


def tagged_native(tagged: Tagged) -> Any:
    """A reduced JSON AnyValue as a JSON-ready Python value (None when there is no value)."""
    kind, payload = tagged
    if kind == "a":
        return [tagged_native(t) for t in payload]
    if kind == "k":
        return {key: tagged_native(t) for key, t in payload}
    if kind == "y":
        return format_bytes(payload)
    if kind == "":
        return None
    return payload


def put_tagged(out: dict[str, str], key: str, tagged: Tagged) -> None:
    """Store `tagged` under `key` in `out`, flattening kvlists into dotted keys."""
    if tagged[0] == "k":
        pairs = tagged[1]
        if not pairs:
            out[key] = "{}"
        for child_key, child in pairs:
            put_tagged(out, f"{key}.{child_key}", child)
    else:
        out[key] = tagged_str(tagged)


# --- partial success -----------------------------------------------------------------


class Rejections:
    """Counts the records a decoder refused, by what they were and why."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, noun: str, reason: str) -> None:
        key = (noun, reason)
        self._counts[key] = self._counts.get(key, 0) + 1

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def reason(self) -> str:
        """A short sentence per reason ("2 spans rejected: trace_id must be 16 bytes"); "" if none."""
        parts = []
        for (noun, why), n in self._counts.items():
            parts.append(f"{n} {noun if n == 1 else noun + 's'} rejected: {why}")
        return "; ".join(parts)


# Reasons shared by both decoders, so protobuf and JSON report the same words.
SPAN_TRACE_ID = "trace_id must be 16 bytes"
SPAN_SPAN_ID = "span_id must be 8 bytes"
SPAN_PARENT_ID = "parent_span_id must be empty or 8 bytes"
LOG_TRACE_ID = "trace_id must be empty or 16 bytes"
LOG_SPAN_ID = "span_id must be empty or 8 bytes"
METRIC_NO_DATA = "metric has none of gauge, sum, histogram, exponential_histogram, summary"
# Times past MAX_TIME_NS (see the module docstring).
TIME_RANGE = "time_unix_nano out of range"
START_TIME_RANGE = "start_time_unix_nano out of range"
END_TIME_RANGE = "end_time_unix_nano out of range"
EVENT_TIME_RANGE = "an event's time_unix_nano out of range"
EXEMPLAR_TIME_RANGE = "an exemplar's time_unix_nano out of range"


def span_time_problem(start: int, end: int, event_times: Any) -> str:
    """Why a span's times cannot be stored (a reason above), or "" when they can."""
    if start > MAX_TIME_NS:
        return START_TIME_RANGE
    if end > MAX_TIME_NS:
        return END_TIME_RANGE
    for t in event_times:
        if t > MAX_TIME_NS:
            return EVENT_TIME_RANGE
    return ""


def point_time_problem(start: int, time: int, exemplars: Any = ()) -> str:
    """Why a data point's times (and its exemplars', `Exemplar`s) cannot be stored, or ""."""
    if start > MAX_TIME_NS:
        return START_TIME_RANGE
    if time > MAX_TIME_NS:
        return TIME_RANGE
    for e in exemplars:
        if e.time_ns > MAX_TIME_NS:
            return EXEMPLAR_TIME_RANGE
    return ""


def span_kind(number: int) -> str:
    """The exporter's name for a SpanKind number; unknown numbers are SPAN_KIND_UNSPECIFIED."""
    return SPAN_KINDS[number] if 0 <= number < len(SPAN_KINDS) else SPAN_KINDS[0]


def status_code(number: int) -> str:
    """The exporter's name for a Status.code number; unknown numbers are STATUS_CODE_UNSET."""
    return STATUS_CODES[number] if 0 <= number < len(STATUS_CODES) else STATUS_CODES[0]


def severity(number: int) -> int:
    """`number` if it is on OpenTelemetry's 0..24 scale, else 0 (unset)."""
    return number if 0 <= number <= 24 else 0
