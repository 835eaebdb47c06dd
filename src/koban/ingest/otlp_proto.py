"""OTLP/protobuf: Export{Logs,Trace,Metrics}ServiceRequest bodies -> `Batch`.

Pure: no clock reads, no I/O. `received_ns` (the server's receive time) fills the
times OTLP leaves to the receiver. Each function raises `DecodeError` for bytes that
are not the request message; records that parse but break OTLP's rules (wrong id
lengths, a metric with no data) or hold a time the store cannot (>= 2**63 ns, see
`otlp_values`) are counted in `Batch.rejected`, not raised.

Resource and Scope records are built once per ResourceX / ScopeX (for logs, once per
distinct one in the request) and shared by all their records: it is both faster and
what lets the store dedupe them cheaply.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from koban.errors import DecodeError
from koban.ingest import otlp_values as v
from koban.ingest.otlp_proto_logs import log_columns
from koban.ingest.otlp_values import Rejections, TooDeep, proto_attributes
from koban.model import (
    Batch,
    Exemplar,
    ExpHistogramPoint,
    GaugePoint,
    HistogramPoint,
    MetricStream,
    Resource,
    Scope,
    Span,
    SpanEvent,
    SpanLink,
    SummaryPoint,
    SumPoint,
)


def _parse(message: Message, payload: bytes, what: str) -> Any:
    try:
        message.ParseFromString(payload)
    except Exception as exc:  # the library's own DecodeError, or anything upb raises
        raise DecodeError(f"{what}: not a valid protobuf message ({exc})") from None
    return message


def _resource(rx: Any) -> Resource:
    attrs = proto_attributes(rx.resource.attributes)
    return Resource(v.service_name(attrs), attrs, rx.schema_url)


def _scope(sx: Any) -> Scope:
    s = sx.scope
    return Scope(s.name, s.version, proto_attributes(s.attributes), sx.schema_url, s.dropped_attributes_count)


def decode_logs(payload: bytes, received_ns: int) -> Batch:
    """The log records of an ExportLogsServiceRequest, as one LogColumns in
    `Batch.log_columns` (none when no record is accepted). Raises DecodeError if it
    does not parse.

    A record's time of 0 becomes its observed time; an observed time of 0 (or one past
    MAX_TIME_NS) becomes `received_ns`. Records with a trace_id or span_id of the wrong
    length, or a time past MAX_TIME_NS, are rejected. See `otlp_proto_logs`.
    """
    req = _parse(ExportLogsServiceRequest(), payload, "ExportLogsServiceRequest")
    records: list[Any] = []
    resources: list[Resource] = []
    scopes: list[Scope] = []
    rejections = Rejections()
    # Requests often hold many ResourceLogs of a few records each, mostly with the same
    # scope: equal resources and scopes are built once (looked up by their bytes, which
    # is cheaper than reading their attributes), and the whole request's records are
    # read column-wise at once.
    seen_resources: dict[tuple[bytes, str], Resource] = {}
    seen_scopes: dict[tuple[bytes, str], Scope] = {}
    try:
        for rl in req.resource_logs:
            key = (rl.resource.SerializeToString(), rl.schema_url)
            resource = seen_resources.get(key)
            if resource is None:
                resource = seen_resources[key] = _resource(rl)
            for sl in rl.scope_logs:
                key = (sl.scope.SerializeToString(), sl.schema_url)
                scope = seen_scopes.get(key)
                if scope is None:
                    scope = seen_scopes[key] = _scope(sl)
                before = len(records)
                records.extend(sl.log_records)
                resources.extend(repeat(resource, len(records) - before))
                scopes.extend(repeat(scope, len(records) - before))
        columns = log_columns(records, resources, scopes, received_ns, rejections, payload)
    except TooDeep:
        raise DecodeError("ExportLogsServiceRequest: attribute values nested too deep") from None
    return Batch(
        rejected=rejections.total,
        rejected_reason=rejections.reason(),
        log_columns=(columns,) if columns.count else (),
    )


def decode_traces(payload: bytes, received_ns: int) -> Batch:
    """The spans of an ExportTraceServiceRequest. Raises DecodeError if it does not parse."""
    req = _parse(ExportTraceServiceRequest(), payload, "ExportTraceServiceRequest")
    spans: list[Span] = []
    rejections = Rejections()
    try:
        for rs in req.resource_spans:
            resource = _resource(rs)
            for ss in rs.scope_spans:
                scope = _scope(ss)
                for s in ss.spans:
                    span = _span(s, resource, scope, rejections)
                    if span is not None:
                        spans.append(span)
    except TooDeep:
        raise DecodeError("ExportTraceServiceRequest: attribute values nested too deep") from None
    return Batch(spans=spans, rejected=rejections.total, rejected_reason=rejections.reason())


def _span(s: Any, resource: Resource, scope: Scope, rejections: Rejections) -> Span | None:
    tid = s.trace_id
    sid = s.span_id
    parent = s.parent_span_id
    if len(tid) != 16:
        rejections.add("span", v.SPAN_TRACE_ID)
        return None
    if len(sid) != 8:
        rejections.add("span", v.SPAN_SPAN_ID)
        return None
    if parent and len(parent) != 8:
        rejections.add("span", v.SPAN_PARENT_ID)
        return None
    start = s.start_time_unix_nano
    end = s.end_time_unix_nano
    events = s.events
    if start > v.MAX_TIME_NS or end > v.MAX_TIME_NS or events:
        problem = v.span_time_problem(start, end, [e.time_unix_nano for e in events])
        if problem:
            rejections.add("span", problem)
            return None
    status = s.status
    return Span(
        start,
        max(0, end - start),
        tid.hex(),
        sid.hex(),
        parent.hex(),
        s.trace_state,
        s.name,
        v.span_kind(s.kind),
        v.status_code(status.code),
        status.message,
        proto_attributes(s.attributes),
        tuple(SpanEvent(e.time_unix_nano, e.name, proto_attributes(e.attributes)) for e in events),
        tuple(
            SpanLink(ln.trace_id.hex(), ln.span_id.hex(), ln.trace_state, proto_attributes(ln.attributes))
            for ln in s.links
        ),
        resource,
        scope,
    )


def decode_metrics(payload: bytes, received_ns: int) -> Batch:
    """The data points of an ExportMetricsServiceRequest. Raises DecodeError if it does not parse.

    A metric with none of the five data kinds counts as one rejected record; a data
    point with a time (its own or an exemplar's) past MAX_TIME_NS is rejected.
    """
    req = _parse(ExportMetricsServiceRequest(), payload, "ExportMetricsServiceRequest")
    out = _MetricLists()
    rejections = out.rejections
    try:
        for rm in req.resource_metrics:
            resource = _resource(rm)
            for sm in rm.scope_metrics:
                scope = _scope(sm)
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind is None:
                        rejections.add("metric", v.METRIC_NO_DATA)
                        continue
                    stream = MetricStream(m.name, m.description, m.unit, resource, scope)
                    _METRIC_KINDS[kind](out, stream, getattr(m, kind))
    except TooDeep:
        raise DecodeError("ExportMetricsServiceRequest: attribute values nested too deep") from None
    return Batch(
        gauges=out.gauges,
        sums=out.sums,
        histograms=out.histograms,
        exp_histograms=out.exp_histograms,
        summaries=out.summaries,
        rejected=rejections.total,
        rejected_reason=rejections.reason(),
    )


class _MetricLists:
    __slots__ = ("gauges", "sums", "histograms", "exp_histograms", "summaries", "rejections")

    def __init__(self) -> None:
        self.gauges: list[GaugePoint] = []
        self.sums: list[SumPoint] = []
        self.histograms: list[HistogramPoint] = []
        self.exp_histograms: list[ExpHistogramPoint] = []
        self.summaries: list[SummaryPoint] = []
        self.rejections = Rejections()

    def times_ok(self, p: Any, exemplars: tuple[Exemplar, ...] = ()) -> bool:
        """Whether data point `p`'s times fit the store; if not, it is counted as rejected."""
        start = p.start_time_unix_nano
        time = p.time_unix_nano
        if start > v.MAX_TIME_NS or time > v.MAX_TIME_NS or exemplars:
            problem = v.point_time_problem(start, time, exemplars)
            if problem:
                self.rejections.add("data point", problem)
                return False
        return True


def _number(p: Any) -> float:
    # as_double / as_int is a oneof; a point with neither reads as 0.0, as the
    # Collector's ClickHouse exporter does.
    if p.WhichOneof("value") == "as_int":
        return float(p.as_int)
    return p.as_double


def _exemplars(p: Any) -> tuple[Exemplar, ...]:
    return tuple(
        Exemplar(
            e.time_unix_nano,
            _number(e),
            e.trace_id.hex(),
            e.span_id.hex(),
            proto_attributes(e.filtered_attributes),
        )
        for e in p.exemplars
    )


def _optional(p: Any, name: str) -> float | None:
    return getattr(p, name) if p.HasField(name) else None


def _gauge(out: _MetricLists, stream: MetricStream, data: Any) -> None:
    for p in data.data_points:
        exemplars = _exemplars(p)
        if not out.times_ok(p, exemplars):
            continue
        out.gauges.append(
            GaugePoint(
                stream,
                proto_attributes(p.attributes),
                p.start_time_unix_nano,
                p.time_unix_nano,
                _number(p),
                p.flags,
                exemplars,
            )
        )


def _sum(out: _MetricLists, stream: MetricStream, data: Any) -> None:
    temporality = data.aggregation_temporality
    monotonic = data.is_monotonic
    for p in data.data_points:
        exemplars = _exemplars(p)
        if not out.times_ok(p, exemplars):
            continue
        out.sums.append(
            SumPoint(
                stream,
                proto_attributes(p.attributes),
                p.start_time_unix_nano,
                p.time_unix_nano,
                _number(p),
                temporality,
                monotonic,
                p.flags,
                exemplars,
            )
        )


def _histogram(out: _MetricLists, stream: MetricStream, data: Any) -> None:
    temporality = data.aggregation_temporality
    for p in data.data_points:
        exemplars = _exemplars(p)
        if not out.times_ok(p, exemplars):
            continue
        out.histograms.append(
            HistogramPoint(
                stream,
                proto_attributes(p.attributes),
                p.start_time_unix_nano,
                p.time_unix_nano,
                p.count,
                p.sum,  # 0.0 when absent (proto3 optional)
                tuple(p.bucket_counts),
                tuple(p.explicit_bounds),
                _optional(p, "min"),
                _optional(p, "max"),
                temporality,
                p.flags,
                exemplars,
            )
        )


def _exp_histogram(out: _MetricLists, stream: MetricStream, data: Any) -> None:
    temporality = data.aggregation_temporality
    for p in data.data_points:
        exemplars = _exemplars(p)
        if not out.times_ok(p, exemplars):
            continue
        pos = p.positive
        neg = p.negative
        out.exp_histograms.append(
            ExpHistogramPoint(
                stream,
                proto_attributes(p.attributes),
                p.start_time_unix_nano,
                p.time_unix_nano,
                p.count,
                p.sum,
                p.scale,
                p.zero_count,
                pos.offset,
                tuple(pos.bucket_counts),
                neg.offset,
                tuple(neg.bucket_counts),
                _optional(p, "min"),
                _optional(p, "max"),
                temporality,
                p.flags,
                exemplars,
            )
        )


def _summary(out: _MetricLists, stream: MetricStream, data: Any) -> None:
    for p in data.data_points:
        if not out.times_ok(p):
            continue
        qs = p.quantile_values
        out.summaries.append(
            SummaryPoint(
                stream,
                proto_attributes(p.attributes),
                p.start_time_unix_nano,
                p.time_unix_nano,
                p.count,
                p.sum,
                tuple(q.quantile for q in qs),
                tuple(q.value for q in qs),
                p.flags,
            )
        )


_METRIC_KINDS = {
    "gauge": _gauge,
    "sum": _sum,
    "histogram": _histogram,
    "exponential_histogram": _exp_histogram,
    "summary": _summary,
}
