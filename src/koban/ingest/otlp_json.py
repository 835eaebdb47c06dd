"""OTLP/JSON: Export{Logs,Trace,Metrics}ServiceRequest bodies -> `Batch`.

The OTLP/JSON encoding is ProtoJSON with OTLP's own exceptions: traceId, spanId and
parentSpanId are hex strings (not base64), enums are integers. We accept what the
specification says senders write and what ProtoJSON parsers take besides:
lowerCamelCase or snake_case field names; enum numbers or names ("SPAN_KIND_SERVER");
64-bit integers as numbers or decimal strings; doubles as numbers, numeric strings or
"NaN"/"Infinity"/"-Infinity"; bytesValue as base64 (standard or URL-safe); null as an
absent field. Unknown fields are ignored.

The dicts from orjson are walked straight into model records (a detour through the
protobuf classes would read the hex ids as base64). Pure: no clock, no I/O.
Every function raises `DecodeError` whose message says what is wrong and where, e.g.
"resourceLogs[0].scopeLogs[1].logRecords[3].traceId: not hex". Records that are
well-formed but break OTLP's rules, or hold a time the store cannot (>= 2**63 ns, see
`otlp_values`), are counted in `Batch.rejected`, exactly as the protobuf decoder
counts them. Integers outside their protobuf type's range (a uint64 count past
2**64 - 1, a negative time) are shape errors: DecodeError, as ProtoJSON parsers say.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Callable

import orjson
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span as _ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as _ProtoStatus

from koban.errors import DecodeError
from koban.ingest import otlp_values as v
from koban.ingest.otlp_values import MAX_DEPTH, Rejections, Tagged, put_tagged
from koban.model import (
    Batch,
    Exemplar,
    ExpHistogramPoint,
    GaugePoint,
    HistogramPoint,
    LogRecord,
    MetricStream,
    Resource,
    Scope,
    Span,
    SpanEvent,
    SpanLink,
    SummaryPoint,
    SumPoint,
)

# Enum names as ProtoJSON writes them; only the names come from the generated code.
_SEVERITIES = dict(SeverityNumber.items())
_SPAN_KINDS = dict(_ProtoSpan.SpanKind.items())
_STATUS_CODES = dict(_ProtoStatus.StatusCode.items())
_TEMPORALITIES = dict(AggregationTemporality.items())

_INT = re.compile(r"-?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*", re.ASCII)
_SPECIAL_DOUBLES = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}

_U32 = v.U32
_I32 = v.I32
_U64 = v.U64
_I64 = v.I64


class _Bad(Exception):
    """A shape error inside the document; `path` grows as it travels up the walk."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(path, what)
        self.path = path
        self.what = what

    def at(self, prefix: str) -> _Bad:
        if not self.path:
            self.path = prefix
        elif self.path[0] == "[":
            self.path = prefix + self.path
        else:
            self.path = f"{prefix}.{self.path}"
        return self


# --- the walk ------------------------------------------------------------------------


def _decode(payload: bytes, camel: str, snake: str, fn: Callable[..., None], *args: Any) -> None:
    """Parse `payload` and call fn(item, *args) on each item of its top-level list.

    Raises DecodeError for invalid JSON and, with the path, for any shape error below.
    """
    try:
        doc = orjson.loads(payload)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None
    if type(doc) is not dict:
        raise DecodeError("the request is not a JSON object")
    try:
        _walk(_children(doc, camel, snake), camel, fn, *args)
    except _Bad as exc:
        raise DecodeError(f"{exc.path}: {exc.what}") from None


def _walk(items: list[Any], name: str, fn: Callable[..., None], *args: Any) -> None:
    """Call fn(item, *args) for each item, naming the item in any error it raises."""
    for i, item in enumerate(items):
        try:
            fn(item, *args)
        except _Bad as exc:
            raise exc.at(f"{name}[{i}]") from None


def _children(d: dict[str, Any], camel: str, snake: str) -> list[Any]:
    return _list(_get(d, camel, snake), camel)


# --- logs ----------------------------------------------------------------------------


def decode_logs(payload: bytes, received_ns: int) -> Batch:
    """The log records of an ExportLogsServiceRequest in OTLP/JSON.

    Times of 0 are filled as in `otlp_proto.decode_logs`. Raises DecodeError for
    invalid JSON or a document of the wrong shape.
    """
    logs: list[LogRecord] = []
    rejections = Rejections()
    _decode(payload, "resourceLogs", "resource_logs", _resource_logs, logs, rejections, received_ns)
    return Batch(logs=logs, rejected=rejections.total, rejected_reason=rejections.reason())


def _resource_logs(rl: Any, *args: Any) -> None:
    rl = _obj(rl, "")
    resource = _resource(rl)
    _walk(_children(rl, "scopeLogs", "scope_logs"), "scopeLogs", _scope_logs, resource, *args)


def _scope_logs(sl: Any, resource: Resource, *args: Any) -> None:
    sl = _obj(sl, "")
    scope = _scope(sl)
    _walk(_children(sl, "logRecords", "log_records"), "logRecords", _log, resource, scope, *args)


def _log(
    r: Any, resource: Resource, scope: Scope, out: list[LogRecord], rejections: Rejections, received_ns: int
) -> None:
    r = _obj(r, "")
    tid = _hex(_get(r, "traceId", "trace_id"), "traceId")
    sid = _hex(_get(r, "spanId", "span_id"), "spanId")
    observed = _int(_get(r, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano", _U64)
    time = _int(_get(r, "timeUnixNano", "time_unix_nano"), "timeUnixNano", _U64)
    flags = _int(r.get("flags"), "flags", _U32)
    severity_number = _enum(_get(r, "severityNumber", "severity_number"), "severityNumber", _SEVERITIES)
    severity_text = _str(_get(r, "severityText", "severity_text"), "severityText")
    body = r.get("body")
    body = "" if body is None else v.tagged_str(_any_at(body, 0, "body"))
    attributes = _attributes(r.get("attributes"), "attributes")
    if tid and len(tid) != 32:
        rejections.add("log record", v.LOG_TRACE_ID)
        return
    if sid and len(sid) != 16:
        rejections.add("log record", v.LOG_SPAN_ID)
        return
    if time > v.MAX_TIME_NS:
        rejections.add("log record", v.TIME_RANGE)
        return
    if not observed or observed > v.MAX_TIME_NS:
        observed = received_ns
    out.append(
        LogRecord(
            time or observed,
            observed,
            tid,
            sid,
            flags & 0xFF,
            severity_text,
            v.severity(severity_number),
            body,
            attributes,
            resource,
            scope,
        )
    )


# --- traces --------------------------------------------------------------------------


def decode_traces(payload: bytes, received_ns: int) -> Batch:
    """The spans of an ExportTraceServiceRequest in OTLP/JSON.

    Raises DecodeError for invalid JSON or a document of the wrong shape.
    """
    spans: list[Span] = []
    rejections = Rejections()
    _decode(payload, "resourceSpans", "resource_spans", _resource_spans, spans, rejections)
    return Batch(spans=spans, rejected=rejections.total, rejected_reason=rejections.reason())


def _resource_spans(rs: Any, *args: Any) -> None:
    rs = _obj(rs, "")
    resource = _resource(rs)
    _walk(_children(rs, "scopeSpans", "scope_spans"), "scopeSpans", _scope_spans, resource, *args)


def _scope_spans(ss: Any, resource: Resource, *args: Any) -> None:
    ss = _obj(ss, "")
    scope = _scope(ss)
    _walk(_children(ss, "spans", "spans"), "spans", _span, resource, scope, *args)


def _span(s: Any, resource: Resource, scope: Scope, out: list[Span], rejections: Rejections) -> None:
    s = _obj(s, "")
    tid = _hex(_get(s, "traceId", "trace_id"), "traceId")
    sid = _hex(_get(s, "spanId", "span_id"), "spanId")
    parent = _hex(_get(s, "parentSpanId", "parent_span_id"), "parentSpanId")
    start = _int(_get(s, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano", _U64)
    end = _int(_get(s, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano", _U64)
    kind = _enum(s.get("kind"), "kind", _SPAN_KINDS)
    status = _obj(s.get("status"), "status")
    code = _enum(status.get("code"), "status.code", _STATUS_CODES)
    events: list[SpanEvent] = []
    links: list[SpanLink] = []
    _walk(_list(s.get("events"), "events"), "events", _event, events)
    _walk(_list(s.get("links"), "links"), "links", _link, links)
    span = Span(
        start,
        max(0, end - start),
        tid,
        sid,
        parent,
        _str(_get(s, "traceState", "trace_state"), "traceState"),
        _str(s.get("name"), "name"),
        v.span_kind(kind),
        v.status_code(code),
        _str(status.get("message"), "status.message"),
        _attributes(s.get("attributes"), "attributes"),
        tuple(events),
        tuple(links),
        resource,
        scope,
    )
    if len(tid) != 32:
        rejections.add("span", v.SPAN_TRACE_ID)
    elif len(sid) != 16:
        rejections.add("span", v.SPAN_SPAN_ID)
    elif parent and len(parent) != 16:
        rejections.add("span", v.SPAN_PARENT_ID)
    elif problem := v.span_time_problem(start, end, [e.timestamp_ns for e in events]):
        rejections.add("span", problem)
    else:
        out.append(span)


def _event(e: Any, out: list[SpanEvent]) -> None:
    e = _obj(e, "")
    out.append(
        SpanEvent(
            _int(_get(e, "timeUnixNano", "time_unix_nano"), "timeUnixNano", _U64),
            _str(e.get("name"), "name"),
            _attributes(e.get("attributes"), "attributes"),
        )
    )


def _link(ln: Any, out: list[SpanLink]) -> None:
    ln = _obj(ln, "")
    out.append(
        SpanLink(
            _hex(_get(ln, "traceId", "trace_id"), "traceId"),
            _hex(_get(ln, "spanId", "span_id"), "spanId"),
            _str(_get(ln, "traceState", "trace_state"), "traceState"),
            _attributes(ln.get("attributes"), "attributes"),
        )
    )


# --- metrics -------------------------------------------------------------------------


class _MetricLists:
    __slots__ = ("gauges", "sums", "histograms", "exp_histograms", "summaries", "rejections")

    def __init__(self) -> None:
        self.gauges: list[GaugePoint] = []
        self.sums: list[SumPoint] = []
        self.histograms: list[HistogramPoint] = []
        self.exp_histograms: list[ExpHistogramPoint] = []
        self.summaries: list[SummaryPoint] = []
        self.rejections = Rejections()

    def times_ok(self, point: Any) -> bool:
        """Whether a decoded point's times fit the store; if not, it is counted as rejected."""
        exemplars = () if type(point) is SummaryPoint else point.exemplars
        problem = v.point_time_problem(point.start_ns, point.time_ns, exemplars)
        if problem:
            self.rejections.add("data point", problem)
            return False
        return True


def decode_metrics(payload: bytes, received_ns: int) -> Batch:
    """The data points of an ExportMetricsServiceRequest in OTLP/JSON.

    A metric with none of the five data kinds counts as one rejected record; a data
    point with a time (its own or an exemplar's) past MAX_TIME_NS is rejected. Raises
    DecodeError for invalid JSON or a document of the wrong shape (including a metric
    that holds two data kinds at once, which ProtoJSON forbids for a oneof).
    """
    out = _MetricLists()
    _decode(payload, "resourceMetrics", "resource_metrics", _resource_metrics, out)
    return Batch(
        gauges=out.gauges,
        sums=out.sums,
        histograms=out.histograms,
        exp_histograms=out.exp_histograms,
        summaries=out.summaries,
        rejected=out.rejections.total,
        rejected_reason=out.rejections.reason(),
    )


def _resource_metrics(rm: Any, out: _MetricLists) -> None:
    rm = _obj(rm, "")
    resource = _resource(rm)
    _walk(_children(rm, "scopeMetrics", "scope_metrics"), "scopeMetrics", _scope_metrics, resource, out)


def _scope_metrics(sm: Any, resource: Resource, out: _MetricLists) -> None:
    sm = _obj(sm, "")
    scope = _scope(sm)
    _walk(_children(sm, "metrics", "metrics"), "metrics", _metric, resource, scope, out)


def _metric(m: Any, resource: Resource, scope: Scope, out: _MetricLists) -> None:
    m = _obj(m, "")
    found = [(camel, data) for camel, snake in _DATA_KINDS if (data := _get(m, camel, snake)) is not None]
    if not found:
        out.rejections.add("metric", v.METRIC_NO_DATA)
        return
    if len(found) > 1:
        raise _Bad("", f"more than one data kind ({', '.join(name for name, _ in found)})")
    camel, data = found[0]
    name = _str(m.get("name"), "name")
    description = _str(m.get("description"), "description")
    stream = MetricStream(name, description, _str(m.get("unit"), "unit"), resource, scope)
    try:
        data = _obj(data, "")
        points = _children(data, "dataPoints", "data_points")
        temporality = _get(data, "aggregationTemporality", "aggregation_temporality")
        temporality = _enum(temporality, "aggregationTemporality", _TEMPORALITIES)
        if camel == "gauge":
            _walk(points, "dataPoints", _gauge_point, stream, out)
        elif camel == "sum":
            monotonic = _bool(_get(data, "isMonotonic", "is_monotonic"), "isMonotonic")
            _walk(points, "dataPoints", _sum_point, stream, temporality, monotonic, out)
        elif camel == "histogram":
            _walk(points, "dataPoints", _histogram_point, stream, temporality, out)
        elif camel == "exponentialHistogram":
            _walk(points, "dataPoints", _exp_histogram_point, stream, temporality, out)
        else:
            _walk(points, "dataPoints", _summary_point, stream, out)
    except _Bad as exc:
        raise exc.at(camel) from None


_DATA_KINDS = (
    ("gauge", "gauge"),
    ("sum", "sum"),
    ("histogram", "histogram"),
    ("exponentialHistogram", "exponential_histogram"),
    ("summary", "summary"),
)


def _point_common(p: dict[str, Any]) -> tuple[dict[str, str], int, int, int]:
    return (
        _attributes(p.get("attributes"), "attributes"),
        _int(_get(p, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano", _U64),
        _int(_get(p, "timeUnixNano", "time_unix_nano"), "timeUnixNano", _U64),
        _int(p.get("flags"), "flags", _U32),
    )


def _number(p: dict[str, Any]) -> float:
    # as_double / as_int is a oneof; a point with neither reads as 0.0, as in otlp_proto.
    as_int = _get(p, "asInt", "as_int")
    if as_int is not None:
        return float(_int(as_int, "asInt", _I64))
    return _f64(_get(p, "asDouble", "as_double"), "asDouble")


def _exemplars(p: dict[str, Any]) -> tuple[Exemplar, ...]:
    out: list[Exemplar] = []
    _walk(_list(p.get("exemplars"), "exemplars"), "exemplars", _exemplar, out)
    return tuple(out)


def _exemplar(e: Any, out: list[Exemplar]) -> None:
    e = _obj(e, "")
    out.append(
        Exemplar(
            _int(_get(e, "timeUnixNano", "time_unix_nano"), "timeUnixNano", _U64),
            _number(e),
            _hex(_get(e, "traceId", "trace_id"), "traceId"),
            _hex(_get(e, "spanId", "span_id"), "spanId"),
            _attributes(_get(e, "filteredAttributes", "filtered_attributes"), "filteredAttributes"),
        )
    )


def _gauge_point(p: Any, stream: MetricStream, out: _MetricLists) -> None:
    p = _obj(p, "")
    attrs, start, time, flags = _point_common(p)
    point = GaugePoint(stream, attrs, start, time, _number(p), flags, _exemplars(p))
    if out.times_ok(point):
        out.gauges.append(point)


def _sum_point(p: Any, stream: MetricStream, temporality: int, monotonic: bool, out: _MetricLists) -> None:
    p = _obj(p, "")
    attrs, start, time, flags = _point_common(p)
    point = SumPoint(stream, attrs, start, time, _number(p), temporality, monotonic, flags, _exemplars(p))
    if out.times_ok(point):
        out.sums.append(point)


def _histogram_point(p: Any, stream: MetricStream, temporality: int, out: _MetricLists) -> None:
    p = _obj(p, "")
    attrs, start, time, flags = _point_common(p)
    point = HistogramPoint(
        stream,
        attrs,
        start,
        time,
        _int(p.get("count"), "count", _U64),
        _f64(p.get("sum"), "sum"),  # 0.0 when absent, as in otlp_proto
        _ints(_get(p, "bucketCounts", "bucket_counts"), "bucketCounts"),
        _floats(_get(p, "explicitBounds", "explicit_bounds"), "explicitBounds"),
        _optional_f64(p.get("min"), "min"),
        _optional_f64(p.get("max"), "max"),
        temporality,
        flags,
        _exemplars(p),
    )
    if out.times_ok(point):
        out.histograms.append(point)


def _exp_histogram_point(p: Any, stream: MetricStream, temporality: int, out: _MetricLists) -> None:
    p = _obj(p, "")
    attrs, start, time, flags = _point_common(p)
    pos = _obj(p.get("positive"), "positive")
    neg = _obj(p.get("negative"), "negative")
    point = ExpHistogramPoint(
        stream,
        attrs,
        start,
        time,
        _int(p.get("count"), "count", _U64),
        _f64(p.get("sum"), "sum"),
        _int(p.get("scale"), "scale", _I32),
        _int(_get(p, "zeroCount", "zero_count"), "zeroCount", _U64),
        _int(pos.get("offset"), "positive.offset", _I32),
        _ints(_get(pos, "bucketCounts", "bucket_counts"), "positive.bucketCounts"),
        _int(neg.get("offset"), "negative.offset", _I32),
        _ints(_get(neg, "bucketCounts", "bucket_counts"), "negative.bucketCounts"),
        _optional_f64(p.get("min"), "min"),
        _optional_f64(p.get("max"), "max"),
        temporality,
        flags,
        _exemplars(p),
    )
    if out.times_ok(point):
        out.exp_histograms.append(point)


def _summary_point(p: Any, stream: MetricStream, out: _MetricLists) -> None:
    p = _obj(p, "")
    attrs, start, time, flags = _point_common(p)
    quantiles: list[float] = []
    values: list[float] = []
    for i, q in enumerate(_list(_get(p, "quantileValues", "quantile_values"), "quantileValues")):
        q = _obj(q, f"quantileValues[{i}]")
        quantiles.append(_f64(q.get("quantile"), f"quantileValues[{i}].quantile"))
        values.append(_f64(q.get("value"), f"quantileValues[{i}].value"))
    point = SummaryPoint(
        stream,
        attrs,
        start,
        time,
        _int(p.get("count"), "count", _U64),
        _f64(p.get("sum"), "sum"),
        tuple(quantiles),
        tuple(values),
        flags,
    )
    if out.times_ok(point):
        out.summaries.append(point)


def _ints(x: Any, field: str) -> tuple[int, ...]:
    return tuple(_int(n, f"{field}[{i}]", _U64) for i, n in enumerate(_list(x, field)))


def _floats(x: Any, field: str) -> tuple[float, ...]:
    return tuple(_f64(n, f"{field}[{i}]") for i, n in enumerate(_list(x, field)))


# --- resource, scope, attributes, AnyValue -------------------------------------------


def _resource(rx: dict[str, Any]) -> Resource:
    res = _obj(rx.get("resource"), "resource")
    attrs = _attributes(res.get("attributes"), "resource.attributes")
    return Resource(v.service_name(attrs), attrs, _str(_get(rx, "schemaUrl", "schema_url"), "schemaUrl"))


def _scope(sx: dict[str, Any]) -> Scope:
    s = _obj(sx.get("scope"), "scope")
    return Scope(
        _str(s.get("name"), "scope.name"),
        _str(s.get("version"), "scope.version"),
        _attributes(s.get("attributes"), "scope.attributes"),
        _str(_get(sx, "schemaUrl", "schema_url"), "schemaUrl"),
        _int(
            _get(s, "droppedAttributesCount", "dropped_attributes_count"),
            "scope.droppedAttributesCount",
            _U32,
        ),
    )


def _attributes(x: Any, field: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if x is None:
        return out
    if type(x) is not list:
        raise _Bad(field, "not a list")
    for i, kv in enumerate(x):
        if type(kv) is not dict:
            raise _Bad(f"{field}[{i}]", "not an object")
        key = kv.get("key")
        if type(key) is not str:
            if key is not None:
                raise _Bad(f"{field}[{i}].key", "not a string")
            key = ""
        value = kv.get("value")
        # The common case first: a plain string value.
        if type(value) is dict:
            s = value.get("stringValue")
            if type(s) is str:
                out[key] = s
                continue
        put_tagged(out, key, _any_at(value, 0, f"{field}[{i}].value"))
    return out


def _any_at(x: Any, depth: int, where: str) -> Tagged:
    """_any(x, depth), with any error inside placed at `where`."""
    try:
        return _any(x, depth)
    except _Bad as exc:
        raise exc.at(where) from None


# AnyValue field name -> the kind letter of otlp_values.Tagged.
_ANY_KINDS = {
    "stringValue": "s", "string_value": "s",
    "boolValue": "b", "bool_value": "b",
    "intValue": "i", "int_value": "i",
    "doubleValue": "d", "double_value": "d",
    "bytesValue": "y", "bytes_value": "y",
    "arrayValue": "a", "array_value": "a",
    "kvlistValue": "k", "kvlist_value": "k",
}  # fmt: skip


def _any(x: Any, depth: int) -> Tagged:
    """A JSON AnyValue reduced to (kind, payload); ("", None) when it holds no value."""
    if x is None:
        return ("", None)
    if type(x) is not dict:
        raise _Bad("", "not an AnyValue object")
    for name, val in x.items():
        kind = _ANY_KINDS.get(name)
        if kind is None or val is None:
            continue  # unknown fields (and stringValueStrindex, a profiles-only index)
        if kind == "s":
            return ("s", _str(val, name))
        if kind == "b":
            if type(val) is not bool:
                raise _Bad(name, "not a boolean")
            return ("b", val)
        if kind == "i":
            return ("i", _int(val, name, _I64))
        if kind == "d":
            return ("d", _f64(val, name))
        if kind == "y":
            return ("y", _b64(val, name))
        if depth >= MAX_DEPTH:
            raise _Bad(name, "nested too deep")
        items = _list(_obj(val, name).get("values"), "values")
        try:
            if kind == "a":
                return ("a", [_any_at(item, depth + 1, f"values[{i}]") for i, item in enumerate(items)])
            return ("k", [_kv(item, i, depth + 1) for i, item in enumerate(items)])
        except _Bad as exc:
            raise exc.at(name) from None
    return ("", None)


def _kv(item: Any, i: int, depth: int) -> tuple[str, Tagged]:
    if type(item) is not dict:
        raise _Bad(f"values[{i}]", "not an object")
    key = _str(item.get("key"), f"values[{i}].key")
    return key, _any_at(item.get("value"), depth, f"values[{i}].value")


# --- scalar fields -------------------------------------------------------------------


def _get(d: dict[str, Any], camel: str, snake: str) -> Any:
    value = d.get(camel)
    return d.get(snake) if value is None else value


def _obj(x: Any, field: str) -> dict[str, Any]:
    if x is None:
        return {}
    if type(x) is not dict:
        raise _Bad(field, "not an object")
    return x


def _list(x: Any, field: str) -> list[Any]:
    if x is None:
        return []
    if type(x) is not list:
        raise _Bad(field, "not a list")
    return x


def _str(x: Any, field: str) -> str:
    if type(x) is str:
        return x
    if x is None:
        return ""
    raise _Bad(field, "not a string")


def _bool(x: Any, field: str) -> bool:
    if x is None:
        return False
    if type(x) is not bool:
        raise _Bad(field, "not a boolean")
    return x


def _int(x: Any, field: str, bounds: tuple[int, int]) -> int:
    t = type(x)
    if t is int:
        n = x
    elif x is None:
        return 0
    elif t is str and _INT.fullmatch(x):
        n = int(x)
    elif t is float and x.is_integer():
        n = int(x)
    else:
        raise _Bad(field, "not an integer")
    if not bounds[0] <= n <= bounds[1]:
        raise _Bad(field, "integer out of range")
    return n


def _f64(x: Any, field: str) -> float:
    t = type(x)
    if t is float:
        return x
    if t is int:
        return float(x)
    if x is None:
        return 0.0
    if t is str:
        special = _SPECIAL_DOUBLES.get(x)
        if special is not None:
            return special
        if _FLOAT.fullmatch(x):
            return float(x)
    raise _Bad(field, "not a number")


def _optional_f64(x: Any, field: str) -> float | None:
    return None if x is None else _f64(x, field)


def _enum(x: Any, field: str, names: dict[str, int]) -> int:
    """An enum given by number or by name; an unknown name reads as 0, like an unknown number."""
    if x is None:
        return 0
    if type(x) is str:
        return names.get(x, 0)
    return _int(x, field, _I32)


def _hex(x: Any, field: str) -> str:
    """A hex id in lower case; "" when absent. The length is the caller's rule to check."""
    if x is None:
        return ""
    if type(x) is not str:
        raise _Bad(field, "not a string")
    if not _HEX.fullmatch(x):
        raise _Bad(field, "not hex")
    return x.lower()


def _b64(x: Any, field: str) -> bytes:
    if type(x) is not str:
        raise _Bad(field, "not a base64 string")
    # ProtoJSON parsers take standard or URL-safe base64, padded or not.
    text = x.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad(field, "not base64") from None
