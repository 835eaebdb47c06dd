"""Batch -> OTLP/protobuf request bytes: the inverse of `otlp_proto.decode_metrics`
and `decode_logs`.

Receivers that aggregate before anything is durable (the StatsD listener) encode what
they flushed and hand it to `Intake.receive` as "otlp-proto/metrics" and
"otlp-proto/logs", so it goes through the same WAL, replay and decoder as any OTLP
request. Pure. `decode(encode(batch))` gives `batch` back for every point kind and
log record (attributes are strings in the model, so they are written as strings).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from koban.model import Attributes, Batch, Resource, Scope


def _attrs(repeated: Any, attributes: Attributes) -> None:
    for key, value in attributes.items():
        kv = repeated.add()
        kv.key = key
        kv.value.string_value = value


class _Tree:
    """ResourceX -> ScopeX messages, one per distinct resource and scope, in first-seen order."""

    def __init__(self, resource_list: Any, scope_field: str) -> None:
        self._list = resource_list
        self._scope_field = scope_field
        self._resources: dict[int, tuple[Resource, Any]] = {}
        self._scopes: dict[tuple[int, int], tuple[Scope, Any]] = {}

    def scope_message(self, resource: Resource, scope: Scope) -> Any:
        # keyed by identity first (the decoders and the aggregator share these objects),
        # then checked by value, so equal-but-distinct objects still get one message
        entry = self._resources.get(id(resource))
        if entry is None or entry[0] != resource:
            rx = self._list.add()
            rx.resource.SetInParent()
            _attrs(rx.resource.attributes, resource.attributes)
            rx.schema_url = resource.schema_url
            entry = self._resources[id(resource)] = (resource, rx)
        rx = entry[1]
        skey = (id(resource), id(scope))
        sentry = self._scopes.get(skey)
        if sentry is None or sentry[0] != scope:
            sx = getattr(rx, self._scope_field).add()
            sx.scope.name = scope.name
            sx.scope.version = scope.version
            _attrs(sx.scope.attributes, scope.attributes)
            sx.scope.dropped_attributes_count = scope.dropped_attributes_count
            sx.schema_url = scope.schema_url
            sentry = self._scopes[skey] = (scope, sx)
        return sentry[1]


def encode_metrics(batch: Batch) -> bytes:
    """An ExportMetricsServiceRequest holding every metric point of `batch`."""
    req = ExportMetricsServiceRequest()
    tree = _Tree(req.resource_metrics, "scope_metrics")
    metrics: dict[tuple[Any, ...], Any] = {}

    def metric(stream: Any, kind: str, *extra: Any) -> Any:
        key = (kind, stream.name, stream.description, stream.unit, id(stream.resource), id(stream.scope), *extra)
        m = metrics.get(key)
        if m is None:
            m = tree.scope_message(stream.resource, stream.scope).metrics.add()
            m.name, m.description, m.unit = stream.name, stream.description, stream.unit
            data = getattr(m, kind)
            data.SetInParent()
            if kind in ("sum", "histogram", "exponential_histogram"):
                data.aggregation_temporality = extra[0]
            if kind == "sum":
                data.is_monotonic = extra[1]
            metrics[key] = m
        return getattr(m, kind).data_points.add()

    for p in batch.gauges:
        _number_point(metric(p.stream, "gauge"), p)
    for p in batch.sums:
        _number_point(metric(p.stream, "sum", p.aggregation_temporality, p.is_monotonic), p)
    for p in batch.histograms:
        dp = metric(p.stream, "histogram", p.aggregation_temporality)
        _common(dp, p)
        dp.count, dp.sum = p.count, p.sum
        dp.bucket_counts.extend(p.bucket_counts)
        dp.explicit_bounds.extend(p.explicit_bounds)
        _min_max(dp, p)
    for p in batch.exp_histograms:
        dp = metric(p.stream, "exponential_histogram", p.aggregation_temporality)
        _common(dp, p)
        dp.count, dp.sum, dp.scale, dp.zero_count = p.count, p.sum, p.scale, p.zero_count
        dp.positive.offset = p.positive_offset
        dp.positive.bucket_counts.extend(p.positive_bucket_counts)
        dp.negative.offset = p.negative_offset
        dp.negative.bucket_counts.extend(p.negative_bucket_counts)
        _min_max(dp, p)
    for p in batch.summaries:
        dp = metric(p.stream, "summary")
        _common(dp, p)
        dp.count, dp.sum = p.count, p.sum
        for q, v in zip(p.quantiles, p.quantile_values):
            qv = dp.quantile_values.add()
            qv.quantile, qv.value = q, v
    return req.SerializeToString()


def _common(dp: Any, p: Any) -> None:
    _attrs(dp.attributes, p.attributes)
    dp.start_time_unix_nano = p.start_ns
    dp.time_unix_nano = p.time_ns
    dp.flags = p.flags
    for e in getattr(p, "exemplars", ()):
        ex = dp.exemplars.add()
        ex.time_unix_nano = e.time_ns
        ex.as_double = e.value
        ex.trace_id = bytes.fromhex(e.trace_id)
        ex.span_id = bytes.fromhex(e.span_id)
        _attrs(ex.filtered_attributes, e.filtered_attributes)


def _number_point(dp: Any, p: Any) -> None:
    _common(dp, p)
    dp.as_double = p.value


def _min_max(dp: Any, p: Any) -> None:
    if p.min is not None:
        dp.min = p.min
    if p.max is not None:
        dp.max = p.max


def encode_logs(batch: Batch) -> bytes:
    """An ExportLogsServiceRequest holding every log record of `batch` (both `logs`
    and `log_columns`). String bodies are written as strings."""
    req = ExportLogsServiceRequest()
    tree = _Tree(req.resource_logs, "scope_logs")
    records: Iterable[Any] = batch.with_log_records().logs
    for r in records:
        lr = tree.scope_message(r.resource, r.scope).log_records.add()
        lr.time_unix_nano = r.timestamp_ns
        lr.observed_time_unix_nano = r.observed_ns
        if r.trace_id:
            lr.trace_id = bytes.fromhex(r.trace_id)
        if r.span_id:
            lr.span_id = bytes.fromhex(r.span_id)
        lr.flags = r.trace_flags
        lr.severity_text = r.severity_text
        lr.severity_number = r.severity_number
        lr.body.string_value = r.body
        _attrs(lr.attributes, r.attributes)
    return req.SerializeToString()


# the name the StatsD brief asked for
batch_to_otlp_metrics = encode_metrics
