"""OTLP/protobuf decoding, read back field by field."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from koban.errors import DecodeError
from koban.ingest import otlp_proto
from koban.model import LogRecord, Resource, Scope, Span, SpanEvent, SpanLink

RECEIVED = 1_767_225_600_000_000_000


def test_it_reads_every_log_record_field(otlp):
    batch = otlp_proto.decode_logs(otlp.golden_logs_request().SerializeToString(), RECEIVED)

    first = batch.with_log_records().logs[0]
    assert first == LogRecord(
        timestamp_ns=1544712660300000000,
        observed_ns=1544712660300000001,
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        trace_flags=1,
        severity_text="Information",
        severity_number=10,
        body="Example log record",
        attributes={
            "string.attribute": "some string",
            "boolean.attribute": "true",
            "int.attribute": "10",
            "double.attribute": "637.704",
            "whole.double.attribute": "250.0",
            "bytes.attribute": "AAEC/w==",
            "empty.attribute": "",
            "array.attribute": '["many",2,false]',
            "map.attribute.some.map.key": "some value",
            "map.attribute.user.id": "7",
        },
        resource=Resource(
            "my.service",
            {"service.name": "my.service", "host.cpu.count": "8"},
            "https://opentelemetry.io/schemas/1.24.0",
        ),
        scope=Scope("my.library", "1.0.0", {"my.scope.attribute": "some scope attribute"}, "", 0),
    )
    assert batch.rejected == 0 and batch.rejected_reason == ""


def test_it_fills_log_times_from_observed_then_received(otlp):
    logs = otlp_proto.decode_logs(otlp.golden_logs_request().SerializeToString(), RECEIVED).with_log_records().logs

    assert (logs[1].timestamp_ns, logs[1].observed_ns) == (1544712661000000000, 1544712661000000000)
    assert (logs[2].timestamp_ns, logs[2].observed_ns) == (RECEIVED, RECEIVED)
    assert (logs[3].timestamp_ns, logs[3].observed_ns) == (1544712662000000000, RECEIVED)


def test_it_writes_non_string_bodies_as_json_or_text(otlp):
    logs = otlp_proto.decode_logs(otlp.golden_logs_request().SerializeToString(), RECEIVED).with_log_records().logs

    assert logs[1].body == '{"event":"payment failed","amount":12.5}'
    assert logs[2].body == "42"
    assert (logs[2].trace_id, logs[2].span_id, logs[2].severity_number) == ("", "", 0)


def test_it_names_a_resource_without_service_name_unknown_service(otlp):
    logs = otlp_proto.decode_logs(otlp.golden_logs_request().SerializeToString(), RECEIVED).with_log_records().logs

    assert logs[3].resource == Resource("unknown_service", {}, "")
    assert logs[3].scope == Scope()


def test_it_shares_resource_and_scope_objects_across_records(otlp):
    logs = otlp_proto.decode_logs(otlp.golden_logs_request().SerializeToString(), RECEIVED).with_log_records().logs

    assert logs[0].resource is logs[1].resource is logs[2].resource
    assert logs[0].scope is logs[1].scope


def test_it_keeps_the_scope_dropped_attributes_count_and_trace_flag_byte():
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    sl.scope.dropped_attributes_count = 3
    sl.schema_url = "s"
    rec = sl.log_records.add()
    rec.flags = 0x101  # bits above the low byte are not trace flags
    rec.severity_number = 99  # not on the 0..24 scale

    log = otlp_proto.decode_logs(req.SerializeToString(), RECEIVED).with_log_records().logs[0]

    assert log.scope == Scope("", "", {}, "s", 3)
    assert (log.trace_flags, log.severity_number) == (1, 0)


def test_it_reads_every_span_field(otlp):
    batch = otlp_proto.decode_traces(otlp.golden_trace_request().SerializeToString(), RECEIVED)

    assert batch.spans[0] == Span(
        start_ns=1544712660000000000,
        duration_ns=1_000_000_000,
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        parent_span_id="eee19b7ec3c1b173",
        trace_state="vendor=value",
        name="I'm a server span",
        kind="SPAN_KIND_SERVER",
        status_code="STATUS_CODE_ERROR",
        status_message="boom",
        attributes={"my.span.attr": "some value", "http.response.status_code": "500"},
        events=(SpanEvent(1544712660500000000, "exception", {"exception.type": "ValueError"}),),
        links=(SpanLink("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "other=1", {"link.reason": "batch"}),),
        resource=Resource("my.service", {"service.name": "my.service"}, ""),
        scope=Scope(
            "my.library", "1.0.0", {"my.scope.attribute": "some scope attribute"}, "https://opentelemetry.io/schemas/1.24.0"
        ),
    )
    second, third = batch.spans[1], batch.spans[2]
    assert (second.kind, second.status_code, second.parent_span_id) == (
        "SPAN_KIND_CLIENT",
        "STATUS_CODE_OK",
        "eee19b7ec3c1b174",
    )
    assert (third.kind, third.status_code, third.parent_span_id, third.duration_ns) == (
        "SPAN_KIND_UNSPECIFIED",
        "STATUS_CODE_UNSET",
        "",
        0,  # end before start: never negative
    )


def test_it_maps_unknown_span_kind_and_status_numbers_to_the_defaults(otlp):
    req = ExportTraceServiceRequest()
    s = req.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id = otlp.TRACE, otlp.SPAN
    s.kind = 42
    s.status.code = 9

    span = otlp_proto.decode_traces(req.SerializeToString(), RECEIVED).spans[0]

    assert (span.kind, span.status_code) == ("SPAN_KIND_UNSPECIFIED", "STATUS_CODE_UNSET")


def test_it_reads_every_metric_type(otlp):
    batch = otlp_proto.decode_metrics(otlp.golden_metrics_request().SerializeToString(), RECEIVED)

    (total,) = batch.sums
    assert total.stream.name == "my.counter" and total.stream.unit == "1"
    assert total.stream.description == "I'm a Counter"
    assert total.stream.resource.service_name == "my.service"
    assert (total.value, total.aggregation_temporality, total.is_monotonic) == (5.0, 1, True)
    assert total.attributes == {"my.counter.attr": "some value"}
    assert (total.start_ns, total.time_ns, total.flags) == (1544712660300000000, 1544712660300000000, 0)
    (exemplar,) = total.exemplars
    assert exemplar == (1544712660250000000, 3.0, "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", {"user.id": "u-1"})

    as_int, nan = batch.gauges
    assert (as_int.value, as_int.start_ns, as_int.exemplars) == (10.0, 0, ())
    assert math.isnan(nan.value) and nan.flags == 1

    full, empty = batch.histograms
    assert (full.count, full.sum, full.bucket_counts, full.explicit_bounds) == (3, 3.0, (1, 1, 1), (1.0, 2.5))
    assert (full.min, full.max, full.aggregation_temporality) == (1.0, 1.0, 2)
    assert (empty.count, empty.sum, empty.min, empty.max) == (0, 0.0, None, None)

    (exp,) = batch.exp_histograms
    assert (exp.count, exp.sum, exp.scale, exp.zero_count) == (6, 10.5, -2, 1)
    assert (exp.positive_offset, exp.positive_bucket_counts) == (3, (2, 1))
    assert (exp.negative_offset, exp.negative_bucket_counts) == (-1, (2,))
    assert (exp.min, exp.max, exp.aggregation_temporality) == (-4.0, 7.25, 1)

    (summary,) = batch.summaries
    assert (summary.count, summary.sum) == (4, 100.0)
    assert (summary.quantiles, summary.quantile_values) == ((0.5, 0.99), (20.0, 45.5))
    assert batch.metric_points == 7 and batch.rejected == 0


def test_it_rejects_spans_with_bad_ids_and_keeps_the_rest(otlp):
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for trace_id, span_id, parent in [
        (otlp.TRACE, otlp.SPAN, b""),  # fine
        (b"\x01" * 15, otlp.SPAN, b""),
        (b"", otlp.SPAN, b""),
        (otlp.TRACE, b"\x01" * 9, b""),
        (otlp.TRACE, otlp.SPAN, b"\x01" * 4),
    ]:
        s = spans.add()
        s.trace_id, s.span_id, s.parent_span_id = trace_id, span_id, parent

    batch = otlp_proto.decode_traces(req.SerializeToString(), RECEIVED)

    assert len(batch.spans) == 1 and batch.rejected == 4
    assert batch.rejected_reason == (
        "2 spans rejected: trace_id must be 16 bytes; 1 span rejected: span_id must be 8 bytes; "
        "1 span rejected: parent_span_id must be empty or 8 bytes"
    )


def test_it_rejects_log_records_with_bad_ids_but_takes_empty_ones(otlp):
    req = ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    for trace_id, span_id in [(b"", b""), (otlp.TRACE, otlp.SPAN), (b"\x01" * 8, b""), (b"", b"\x01")]:
        r = records.add()
        r.trace_id, r.span_id = trace_id, span_id

    batch = otlp_proto.decode_logs(req.SerializeToString(), RECEIVED)

    assert batch.record_count == 2 and batch.rejected == 2
    assert batch.rejected_reason == (
        "1 log record rejected: trace_id must be empty or 16 bytes; "
        "1 log record rejected: span_id must be empty or 8 bytes"
    )


def test_it_counts_a_metric_without_data_as_one_rejected():
    req = ExportMetricsServiceRequest()
    metrics = req.resource_metrics.add().scope_metrics.add().metrics
    metrics.add().name = "nothing"
    ok = metrics.add()
    ok.gauge.data_points.add().as_double = 1.5

    batch = otlp_proto.decode_metrics(req.SerializeToString(), RECEIVED)

    assert [p.value for p in batch.gauges] == [1.5]
    assert batch.rejected == 1
    assert batch.rejected_reason.startswith("1 metric rejected: metric has none of gauge")


def test_it_decodes_an_empty_request_to_an_empty_batch():
    for decode in (otlp_proto.decode_logs, otlp_proto.decode_traces, otlp_proto.decode_metrics):
        batch = decode(b"", RECEIVED)
        assert batch.record_count == 0 and batch.rejected == 0


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05abc", b"{}", b"\x0a\x80\x80\x80\x80\x10"])
def test_it_raises_decode_error_for_malformed_protobuf(payload):
    for decode in (otlp_proto.decode_logs, otlp_proto.decode_traces, otlp_proto.decode_metrics):
        with pytest.raises(DecodeError, match="not a valid protobuf message"):
            decode(payload, RECEIVED)


def test_it_raises_decode_error_for_attributes_nested_too_deep(otlp):
    req = ExportLogsServiceRequest()
    rec = req.resource_logs.add().scope_logs.add().log_records.add()
    value: object = "bottom"
    for _ in range(40):
        value = [value]
    kv = rec.attributes.add()
    kv.key = "deep"
    otlp.set_any(kv.value, value)
    payload = req.SerializeToString()

    with pytest.raises(DecodeError):
        otlp_proto.decode_logs(payload, RECEIVED)
