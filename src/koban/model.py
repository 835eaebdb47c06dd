"""Immutable record types that travel through every layer.

They follow OpenTelemetry's data model, field for field, so that `store/` can map them
onto the columns of the OpenTelemetry Collector's ClickHouse exporter schema
(otel_logs, otel_traces, otel_metrics_*). Decoders of every wire protocol produce
them; nothing else does.

Conventions:
- times are integers, nanoseconds since the Unix epoch;
- trace and span ids are lower-case hex strings, "" when absent;
- attributes are `dict[str, str]` (read-only by convention): OTLP values are turned
  into strings (ints and doubles in their decimal form, bools as "true"/"false",
  arrays as JSON), and nested key/value lists are flattened into dotted keys
  (`{"user": {"id": 7}}` becomes `{"user.id": "7"}`), which is what `@user.id:7` searches;
- span kinds and status codes use the exporter's strings ("SPAN_KIND_SERVER",
  "STATUS_CODE_ERROR"), see SPAN_KINDS and STATUS_CODES.
"""

from __future__ import annotations

from typing import NamedTuple

Attributes = dict[str, str]

SPAN_KINDS = (
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
)
STATUS_CODES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")


class Resource(NamedTuple):
    """Who emitted the data. `service_name` is `attributes["service.name"]` or "unknown_service"."""

    service_name: str
    attributes: Attributes
    schema_url: str = ""


class Scope(NamedTuple):
    """The instrumentation scope (library) that produced the data."""

    name: str = ""
    version: str = ""
    attributes: Attributes = {}
    schema_url: str = ""
    dropped_attributes_count: int = 0


EMPTY_SCOPE = Scope()


class LogRecord(NamedTuple):
    timestamp_ns: int  # the event time, or the observed time when the event time is 0
    observed_ns: int
    trace_id: str
    span_id: str
    trace_flags: int
    severity_text: str
    severity_number: int  # 0 (unset) .. 24, OpenTelemetry's scale
    body: str  # a string body as is; any other body as JSON
    attributes: Attributes
    resource: Resource
    scope: Scope


class SpanEvent(NamedTuple):
    timestamp_ns: int
    name: str
    attributes: Attributes


class SpanLink(NamedTuple):
    trace_id: str
    span_id: str
    trace_state: str
    attributes: Attributes


class Span(NamedTuple):
    start_ns: int
    duration_ns: int  # end - start, never negative
    trace_id: str
    span_id: str
    parent_span_id: str
    trace_state: str
    name: str
    kind: str  # one of SPAN_KINDS
    status_code: str  # one of STATUS_CODES
    status_message: str
    attributes: Attributes
    events: tuple[SpanEvent, ...]
    links: tuple[SpanLink, ...]
    resource: Resource
    scope: Scope


class Exemplar(NamedTuple):
    time_ns: int
    value: float
    trace_id: str
    span_id: str
    filtered_attributes: Attributes


class MetricStream(NamedTuple):
    """What every point of one metric from one resource and scope shares."""

    name: str
    description: str
    unit: str
    resource: Resource
    scope: Scope


class GaugePoint(NamedTuple):
    stream: MetricStream
    attributes: Attributes
    start_ns: int
    time_ns: int
    value: float
    flags: int = 0
    exemplars: tuple[Exemplar, ...] = ()


class SumPoint(NamedTuple):
    stream: MetricStream
    attributes: Attributes
    start_ns: int
    time_ns: int
    value: float
    aggregation_temporality: int  # 1 delta, 2 cumulative (OTLP's enum)
    is_monotonic: bool
    flags: int = 0
    exemplars: tuple[Exemplar, ...] = ()


class HistogramPoint(NamedTuple):
    stream: MetricStream
    attributes: Attributes
    start_ns: int
    time_ns: int
    count: int
    sum: float
    bucket_counts: tuple[int, ...]
    explicit_bounds: tuple[float, ...]
    min: float | None
    max: float | None
    aggregation_temporality: int
    flags: int = 0
    exemplars: tuple[Exemplar, ...] = ()


class ExpHistogramPoint(NamedTuple):
    stream: MetricStream
    attributes: Attributes
    start_ns: int
    time_ns: int
    count: int
    sum: float
    scale: int
    zero_count: int
    positive_offset: int
    positive_bucket_counts: tuple[int, ...]
    negative_offset: int
    negative_bucket_counts: tuple[int, ...]
    min: float | None
    max: float | None
    aggregation_temporality: int
    flags: int = 0
    exemplars: tuple[Exemplar, ...] = ()


class SummaryPoint(NamedTuple):
    stream: MetricStream
    attributes: Attributes
    start_ns: int
    time_ns: int
    count: int
    sum: float
    quantiles: tuple[float, ...]
    quantile_values: tuple[float, ...]
    flags: int = 0


class Batch(NamedTuple):
    """What one decoded request holds. `rejected` counts records the decoder refused
    (reported to OTLP clients as partial success, with `rejected_reason`)."""

    logs: tuple[LogRecord, ...] | list[LogRecord] = ()
    spans: tuple[Span, ...] | list[Span] = ()
    gauges: tuple[GaugePoint, ...] | list[GaugePoint] = ()
    sums: tuple[SumPoint, ...] | list[SumPoint] = ()
    histograms: tuple[HistogramPoint, ...] | list[HistogramPoint] = ()
    exp_histograms: tuple[ExpHistogramPoint, ...] | list[ExpHistogramPoint] = ()
    summaries: tuple[SummaryPoint, ...] | list[SummaryPoint] = ()
    rejected: int = 0
    rejected_reason: str = ""

    @property
    def metric_points(self) -> int:
        return (
            len(self.gauges)
            + len(self.sums)
            + len(self.histograms)
            + len(self.exp_histograms)
            + len(self.summaries)
        )

    @property
    def record_count(self) -> int:
        """Records accepted (log records + spans + metric points)."""
        return len(self.logs) + len(self.spans) + self.metric_points

    @staticmethod
    def merge(batches: list[Batch]) -> Batch:
        """One batch holding the records of all `batches`, in order."""
        if len(batches) == 1:
            return batches[0]
        fields = {name: [] for name in SIGNAL_FIELDS}
        for b in batches:
            for name in SIGNAL_FIELDS:
                part = getattr(b, name)
                if part:
                    fields[name].extend(part)
        return Batch(**fields, rejected=sum(b.rejected for b in batches))


SIGNAL_FIELDS = ("logs", "spans", "gauges", "sums", "histograms", "exp_histograms", "summaries")
