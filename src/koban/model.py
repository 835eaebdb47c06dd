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

from itertools import accumulate, chain, repeat
from operator import add
from typing import Any, NamedTuple

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


class LogColumns(NamedTuple):
    """Log records held column-wise: what the OTLP/protobuf decoder produces, because
    building a dict and a LogRecord per record cost more than everything else in
    ingest. Column i of every list belongs to record i; `LogColumns.records()` gives the
    same records as LogRecords.

    Each list follows the LogRecord field of the same name, with the same meaning. Record
    i's attributes are `attr_keys[attr_offsets[i]:attr_offsets[i + 1]]` with the
    values at the same positions: keys are unique within a record, in the order the
    equivalent dict would have them. `resources` and `scopes` hold one object per
    record, shared as in LogRecords. Treat the lists as read-only.
    """

    timestamp_ns: list[int]
    observed_ns: list[int]
    trace_id: list[str]
    span_id: list[str]
    trace_flags: list[int]
    severity_text: list[str]
    severity_number: list[int]
    body: list[str]
    attr_keys: list[str]
    attr_values: list[str]
    attr_offsets: list[int]  # len = count + 1, starting at 0
    resources: list[Resource]
    scopes: list[Scope]

    @property
    def count(self) -> int:
        return len(self.timestamp_ns)

    def records(self) -> list[LogRecord]:
        """The same records as LogRecords, in order."""
        keys, values, offsets = self.attr_keys, self.attr_values, self.attr_offsets
        attributes = [dict(zip(keys[a:b], values[a:b])) for a, b in zip(offsets, offsets[1:])]
        return list(
            map(
                LogRecord,
                self.timestamp_ns,
                self.observed_ns,
                self.trace_id,
                self.span_id,
                self.trace_flags,
                self.severity_text,
                self.severity_number,
                self.body,
                attributes,
                self.resources,
                self.scopes,
            )
        )

    @staticmethod
    def from_records(records: tuple[LogRecord, ...] | list[LogRecord]) -> LogColumns:
        """`records` column-wise (the inverse of `records()`)."""
        attributes = [r.attributes for r in records]
        return LogColumns(
            [r.timestamp_ns for r in records],
            [r.observed_ns for r in records],
            [r.trace_id for r in records],
            [r.span_id for r in records],
            [r.trace_flags for r in records],
            [r.severity_text for r in records],
            [r.severity_number for r in records],
            [r.body for r in records],
            list(chain.from_iterable(attributes)),
            list(chain.from_iterable(map(dict.values, attributes))),
            list(accumulate(map(len, attributes), initial=0)),
            [r.resource for r in records],
            [r.scope for r in records],
        )

    @staticmethod
    def concat(parts: list[LogColumns] | tuple[LogColumns, ...]) -> LogColumns:
        """One LogColumns holding the records of all `parts`, in order."""
        if len(parts) == 1:
            return parts[0]
        offsets = [0]
        for p in parts:
            # each part's offsets start at 0: shift them past what is already there
            offsets.extend(map(add, p.attr_offsets[1:], repeat(offsets[-1])))
        return LogColumns._make(
            offsets if name == "attr_offsets" else list(chain.from_iterable(getattr(p, name) for p in parts))
            for name in LogColumns._fields
        )


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


class MetricColumns(NamedTuple):
    """Gauge or sum points held per series, for protocols whose points mostly repeat
    the series of earlier requests (Prometheus remote write): building a point object
    and an attribute dict per sample cost more than everything else in ingest.

    `streams` are distinct; series i has stream `streams[series_stream[i]]`,
    `attributes[i]` and `series_ids[i]`, a 64-bit hash of its labels, the same in every
    process: the series cap counts by it, and the ingest policy and the store's series
    catalogue remember a series by it, so equal ids must mean equal attributes (the
    policy gives a series whose attributes it cleans another id).
    Point j belongs to series `point_series[j]`. The per-series columns are numpy
    arrays (int32, uint64), the point columns pyarrow arrays (int32, int64 nanoseconds,
    float64), to keep both out of Python objects. `aggregation_temporality` 0 means
    gauges; otherwise these are sums with that temporality and `is_monotonic`. Treat
    everything as read-only.
    """

    streams: list[MetricStream]
    series_stream: Any
    attributes: list[Attributes]
    series_ids: Any
    point_series: Any
    time_ns: Any
    values: Any
    aggregation_temporality: int = 0
    is_monotonic: bool = False

    @property
    def num_rows(self) -> int:
        return len(self.time_ns)

    def points(self) -> list[GaugePoint] | list[SumPoint]:
        """The same points as GaugePoints or SumPoints, in order (for tests)."""
        streams = [self.streams[i] for i in self.series_stream.tolist()]
        attributes = self.attributes
        rows = zip(self.point_series.to_pylist(), self.time_ns.to_pylist(), self.values.to_pylist())
        if not self.aggregation_temporality:
            return [GaugePoint(streams[i], attributes[i], 0, t, v) for i, t, v in rows]
        temporality, monotonic = self.aggregation_temporality, self.is_monotonic
        return [SumPoint(streams[i], attributes[i], 0, t, v, temporality, monotonic) for i, t, v in rows]


class Event(NamedTuple):
    """A DogStatsD event (`_e{...}`): something that happened (a deploy, an alert), kept
    in koban's own events table. `tags` maps each `key:value` tag to its value (a bare
    tag to ""); `service_name` and `host` are also among them when they came as tags."""

    timestamp_ns: int
    title: str
    text: str
    alert_type: str  # error, warning, info or success
    priority: str  # normal or low
    host: str
    aggregation_key: str
    source_type: str
    service_name: str
    tags: Attributes


class Batch(NamedTuple):
    """What one decoded request holds. `rejected` counts records the decoder refused
    (reported to OTLP clients as partial success, with `rejected_reason`).

    Log records come either as LogRecords in `logs` or column-wise in `log_columns`
    (the OTLP/protobuf decoder's fast path), or both: they are the log records of the
    batch together, `logs` first. `with_log_records()` puts them all in `logs`.
    """

    logs: tuple[LogRecord, ...] | list[LogRecord] = ()
    spans: tuple[Span, ...] | list[Span] = ()
    gauges: tuple[GaugePoint, ...] | list[GaugePoint] = ()
    sums: tuple[SumPoint, ...] | list[SumPoint] = ()
    histograms: tuple[HistogramPoint, ...] | list[HistogramPoint] = ()
    exp_histograms: tuple[ExpHistogramPoint, ...] | list[ExpHistogramPoint] = ()
    summaries: tuple[SummaryPoint, ...] | list[SummaryPoint] = ()
    rejected: int = 0
    rejected_reason: str = ""
    # last, so that positional construction of the fields above keeps working
    log_columns: tuple[LogColumns, ...] = ()
    events: tuple[Event, ...] | list[Event] = ()
    prepared_logs: tuple[Any, ...] = ()
    """Log records already converted to the store's Arrow table (store/columns.py
    `prepare_logs`, run in the decode workers so the server process does not pay for
    it); opaque here, read through `num_rows`. They come after `logs` and `log_columns`."""
    metric_columns: tuple[Any, ...] = ()
    """Gauge and sum points held per series: MetricColumns, or the same already turned
    into Arrow tables in a decode worker (store/columns.py `PreparedMetrics`); opaque
    here, read through `num_rows`. They come after `gauges` and `sums`."""

    @property
    def metric_points(self) -> int:
        return (
            len(self.gauges)
            + len(self.sums)
            + len(self.histograms)
            + len(self.exp_histograms)
            + len(self.summaries)
            + sum(c.num_rows for c in self.metric_columns)
        )

    @property
    def record_count(self) -> int:
        """Records accepted (log records + spans + metric points + events)."""
        logs = len(self.logs) + sum(c.count for c in self.log_columns)
        logs += sum(t.num_rows for t in self.prepared_logs)
        return logs + len(self.spans) + self.metric_points + len(self.events)

    def with_log_records(self) -> Batch:
        """This batch with every log record in `logs`, a list of LogRecords in order,
        and no `log_columns` (for tests, and for code that wants records). Raises
        ValueError for a batch whose logs were already prepared for the store."""
        if self.prepared_logs:
            raise ValueError("prepared logs are Arrow tables, not records")
        logs = list(self.logs)
        for c in self.log_columns:
            logs.extend(c.records())
        return self._replace(logs=logs, log_columns=())

    def with_metric_points(self) -> Batch:
        """This batch with the points of its MetricColumns appended to `gauges` and
        `sums`, and no `metric_columns` (for tests, and for code that wants points).
        Raises ValueError for a batch whose metrics were already prepared for the store."""
        gauges, sums = list(self.gauges), list(self.sums)
        for c in self.metric_columns:
            if not isinstance(c, MetricColumns):
                raise ValueError("prepared metrics are Arrow tables, not points")
            (sums if c.aggregation_temporality else gauges).extend(c.points())
        return self._replace(gauges=gauges, sums=sums, metric_columns=())

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
        return Batch(
            **fields,
            rejected=sum(b.rejected for b in batches),
            log_columns=tuple(chain.from_iterable(b.log_columns for b in batches)),
            prepared_logs=tuple(chain.from_iterable(b.prepared_logs for b in batches)),
            metric_columns=tuple(chain.from_iterable(b.metric_columns for b in batches)),
        )


SIGNAL_FIELDS = ("logs", "spans", "gauges", "sums", "histograms", "exp_histograms", "summaries", "events")
