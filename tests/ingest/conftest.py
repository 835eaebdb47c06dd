"""OTLP requests built with the generated protobuf classes, and their OTLP/JSON twins.

`golden_*_request()` build the same content as tests/data/otlp/*.json, field for field,
so the two decoders can be compared on it. `full_*_request()` set every field the
decoders read. `to_otlp_json()` turns any request into OTLP/JSON through protobuf's
own ProtoJSON printer (then rewrites ids from base64 to hex, as OTLP/JSON wants): an
encoder independent of ours, for differential tests. `assert_fits_store()` checks that
every number in a decoded Batch fits its column's type in `koban.store.schema`.
"""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from koban.model import LogColumns

DATA = Path(__file__).resolve().parent.parent / "data" / "otlp"
RECEIVED_NS = 1_767_225_600_000_000_000
T0 = 1_544_712_660_000_000_000
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")


def set_any(av: Any, value: Any) -> None:
    """Fill AnyValue `av` from a Python value (None leaves it empty)."""
    if value is None:
        return
    if isinstance(value, bool):
        av.bool_value = value
    elif isinstance(value, int):
        av.int_value = value
    elif isinstance(value, float):
        av.double_value = value
    elif isinstance(value, str):
        av.string_value = value
    elif isinstance(value, bytes):
        av.bytes_value = value
    elif isinstance(value, list):
        av.array_value.SetInParent()
        for item in value:
            set_any(av.array_value.values.add(), item)
    elif isinstance(value, dict):
        av.kvlist_value.SetInParent()
        set_attrs(av.kvlist_value.values, value)
    else:
        raise TypeError(value)


def set_attrs(repeated: Any, attrs: dict[str, Any] | list[tuple[str, Any]]) -> None:
    """Append `attrs` to a repeated KeyValue; a list of pairs may repeat a key."""
    for key, value in attrs.items() if isinstance(attrs, dict) else attrs:
        kv = repeated.add()
        kv.key = key
        set_any(kv.value, value)


def _resource(rx: Any, attrs: dict[str, Any], schema_url: str = "") -> None:
    rx.resource.SetInParent()
    set_attrs(rx.resource.attributes, attrs)
    rx.schema_url = schema_url


def _scope(sx: Any, name: str = "my.library", version: str = "1.0.0", schema_url: str = "") -> None:
    sx.scope.name = name
    sx.scope.version = version
    set_attrs(sx.scope.attributes, {"my.scope.attribute": "some scope attribute"})
    sx.schema_url = schema_url


# --- goldens: the same content as tests/data/otlp/*.json -----------------------------


def golden_logs_request() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    _resource(rl, {"service.name": "my.service", "host.cpu.count": 8}, "https://opentelemetry.io/schemas/1.24.0")
    sl = rl.scope_logs.add()
    _scope(sl)
    r = sl.log_records.add()
    r.time_unix_nano = 1544712660300000000
    r.observed_time_unix_nano = 1544712660300000001
    r.severity_number = 10
    r.severity_text = "Information"
    r.trace_id = TRACE
    r.span_id = SPAN
    r.flags = 1
    r.body.string_value = "Example log record"
    set_attrs(
        r.attributes,
        {
            "string.attribute": "some string",
            "boolean.attribute": True,
            "int.attribute": 10,
            "double.attribute": 637.704,
            "whole.double.attribute": 250.0,
            "bytes.attribute": b"\x00\x01\x02\xff",
            "empty.attribute": None,
            "array.attribute": ["many", 2, False],
            "map.attribute": {"some.map.key": "some value", "user": {"id": 7}},
        },
    )
    r = sl.log_records.add()
    r.observed_time_unix_nano = 1544712661000000000
    r.severity_number = 17
    r.severity_text = "ERROR"
    set_any(r.body, {"event": "payment failed", "amount": 12.5})
    r = sl.log_records.add()
    r.body.int_value = 42
    rl = req.resource_logs.add()
    rl.resource.SetInParent()
    r = rl.scope_logs.add().log_records.add()
    r.time_unix_nano = 1544712662000000000
    r.severity_number = 13
    r.body.string_value = "no service.name on this resource"
    return req


def golden_trace_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    _resource(rs, {"service.name": "my.service"})
    ss = rs.scope_spans.add()
    _scope(ss, schema_url="https://opentelemetry.io/schemas/1.24.0")
    s = ss.spans.add()
    s.trace_id = TRACE
    s.span_id = SPAN
    s.parent_span_id = bytes.fromhex("eee19b7ec3c1b173")
    s.trace_state = "vendor=value"
    s.name = "I'm a server span"
    s.start_time_unix_nano = 1544712660000000000
    s.end_time_unix_nano = 1544712661000000000
    s.kind = 2
    set_attrs(s.attributes, {"my.span.attr": "some value", "http.response.status_code": 500})
    e = s.events.add()
    e.time_unix_nano = 1544712660500000000
    e.name = "exception"
    set_attrs(e.attributes, {"exception.type": "ValueError"})
    ln = s.links.add()
    ln.trace_id = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    ln.span_id = bytes.fromhex("b7ad6b7169203331")
    ln.trace_state = "other=1"
    set_attrs(ln.attributes, {"link.reason": "batch"})
    s.status.code = 2
    s.status.message = "boom"
    s = ss.spans.add()
    s.trace_id = TRACE
    s.span_id = bytes.fromhex("eee19b7ec3c1b175")
    s.parent_span_id = SPAN
    s.name = "SELECT orders"
    s.start_time_unix_nano = 1544712660100000000
    s.end_time_unix_nano = 1544712660200000000
    s.kind = 3
    s.status.code = 1
    s = ss.spans.add()
    s.trace_id = TRACE
    s.span_id = bytes.fromhex("eee19b7ec3c1b176")
    s.name = "clock skew"
    s.start_time_unix_nano = 1544712660300000000
    s.end_time_unix_nano = 1544712660200000000
    return req


def golden_metrics_request() -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    _resource(rm, {"service.name": "my.service"})
    sm = rm.scope_metrics.add()
    _scope(sm)
    t = 1544712660300000000

    m = sm.metrics.add()
    m.name, m.unit, m.description = "my.counter", "1", "I'm a Counter"
    m.sum.aggregation_temporality = 1
    m.sum.is_monotonic = True
    p = m.sum.data_points.add()
    p.as_double = 5
    p.start_time_unix_nano = p.time_unix_nano = t
    set_attrs(p.attributes, {"my.counter.attr": "some value"})
    ex = p.exemplars.add()
    ex.time_unix_nano = 1544712660250000000
    ex.as_int = 3
    ex.trace_id = TRACE
    ex.span_id = SPAN
    set_attrs(ex.filtered_attributes, {"user.id": "u-1"})

    m = sm.metrics.add()
    m.name, m.unit, m.description = "my.gauge", "1", "I'm a Gauge"
    p = m.gauge.data_points.add()
    p.as_int = 10
    p.time_unix_nano = t
    set_attrs(p.attributes, {"my.gauge.attr": "some value"})
    p = m.gauge.data_points.add()
    p.as_double = float("nan")
    p.time_unix_nano = 1544712660400000000
    p.flags = 1

    m = sm.metrics.add()
    m.name, m.unit, m.description = "my.histogram", "ms", "I'm a Histogram"
    m.histogram.aggregation_temporality = 2
    p = m.histogram.data_points.add()
    p.start_time_unix_nano = p.time_unix_nano = t
    p.count = 3
    p.sum = 3
    p.bucket_counts.extend([1, 1, 1])
    p.explicit_bounds.extend([1, 2.5])
    p.min = 1
    p.max = 1
    set_attrs(p.attributes, {"my.histogram.attr": "some value"})
    p = m.histogram.data_points.add()
    p.time_unix_nano = 1544712660400000000

    m = sm.metrics.add()
    m.name, m.unit = "my.exponential.histogram", "s"
    m.exponential_histogram.aggregation_temporality = 1
    p = m.exponential_histogram.data_points.add()
    p.start_time_unix_nano = p.time_unix_nano = t
    p.count = 6
    p.sum = 10.5
    p.scale = -2
    p.zero_count = 1
    p.zero_threshold = 0.001
    p.positive.offset = 3
    p.positive.bucket_counts.extend([2, 1])
    p.negative.offset = -1
    p.negative.bucket_counts.extend([2])
    p.min = -4.0
    p.max = 7.25

    m = sm.metrics.add()
    m.name, m.unit = "my.summary", "ms"
    p = m.summary.data_points.add()
    p.start_time_unix_nano = p.time_unix_nano = t
    p.count = 4
    p.sum = 100.0
    for q, value in ((0.5, 20.0), (0.99, 45.5)):
        qv = p.quantile_values.add()
        qv.quantile, qv.value = q, value
    return req


# --- what the store's columns can hold ----------------------------------------------

_TIME = (0, 2**63 - 1)  # TIMESTAMP_NS
_UBIGINT = (0, 2**64 - 1)
_UINTEGER = (0, 2**32 - 1)
_UTINYINT = (0, 255)
_INTEGER = (-(2**31), 2**31 - 1)


def _within(value: int, bounds: tuple[int, int], what: str) -> None:
    assert type(value) is int and bounds[0] <= value <= bounds[1], f"{what}={value!r} outside {bounds}"


def assert_fits_store(batch: Any) -> None:
    """Every integer of every record in `batch` is within its store column's type, and
    log columns hold what their records do (so no key twice in a record's MAP)."""
    for columns in batch.log_columns:
        assert LogColumns.from_records(columns.records()) == columns
    batch = batch.with_log_records()
    scopes = [r.scope for r in (*batch.logs, *batch.spans)]
    for log in batch.logs:
        _within(log.timestamp_ns, _TIME, "log timestamp")
        _within(log.observed_ns, _TIME, "log observed")
        _within(log.trace_flags, _UTINYINT, "log trace_flags")
        _within(log.severity_number, _UTINYINT, "log severity_number")
    for span in batch.spans:
        _within(span.start_ns, _TIME, "span start")
        _within(span.duration_ns, _UBIGINT, "span duration")
        _within(span.start_ns + span.duration_ns, _TIME, "span end")
        for event in span.events:
            _within(event.timestamp_ns, _TIME, "event time")
    points = [*batch.gauges, *batch.sums, *batch.histograms, *batch.exp_histograms, *batch.summaries]
    for p in points:
        scopes.append(p.stream.scope)
        _within(p.start_ns, _TIME, "point start")
        _within(p.time_ns, _TIME, "point time")
        _within(p.flags, _UINTEGER, "point flags")
        for e in getattr(p, "exemplars", ()):
            _within(e.time_ns, _TIME, "exemplar time")
    for p in (*batch.sums, *batch.histograms, *batch.exp_histograms):
        _within(p.aggregation_temporality, _INTEGER, "aggregation_temporality")
    for p in (*batch.histograms, *batch.exp_histograms, *batch.summaries):
        _within(p.count, _UBIGINT, "count")
    for p in batch.histograms:
        for n in p.bucket_counts:
            _within(n, _UBIGINT, "bucket count")
    for p in batch.exp_histograms:
        for n in (p.zero_count, *p.positive_bucket_counts, *p.negative_bucket_counts):
            _within(n, _UBIGINT, "exponential bucket count")
        for n in (p.scale, p.positive_offset, p.negative_offset):
            _within(n, _INTEGER, "scale or offset")
    for scope in scopes:
        _within(scope.dropped_attributes_count, _UINTEGER, "scope dropped_attributes_count")


# --- OTLP/JSON through protobuf's own printer ----------------------------------------

_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


def _ids_to_hex(node: Any, upper: bool) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                hexed = base64.b64decode(value).hex()
                out[key] = hexed.upper() if upper else hexed
            else:
                out[key] = _ids_to_hex(value, upper)
        return out
    if isinstance(node, list):
        return [_ids_to_hex(item, upper) for item in node]
    return node


def to_otlp_json(msg: Any, *, snake: bool = False, enum_names: bool = False, upper: bool = False) -> bytes:
    """`msg` as OTLP/JSON: ProtoJSON with hex ids. `snake` keeps proto field names,
    `enum_names` writes enums by name, `upper` writes ids in upper-case hex."""
    doc = MessageToDict(msg, preserving_proto_field_name=snake, use_integers_for_enums=not enum_names)
    return orjson.dumps(_ids_to_hex(doc, upper))


@pytest.fixture(scope="session")
def otlp() -> SimpleNamespace:
    """The builders above, for tests (conftest modules are not importable by name)."""
    return SimpleNamespace(
        DATA=DATA,
        RECEIVED_NS=RECEIVED_NS,
        TRACE=TRACE,
        SPAN=SPAN,
        T0=T0,
        set_any=set_any,
        set_attrs=set_attrs,
        golden_logs_request=golden_logs_request,
        golden_trace_request=golden_trace_request,
        golden_metrics_request=golden_metrics_request,
        to_otlp_json=to_otlp_json,
        assert_fits_store=assert_fits_store,
    )
