"""Times the store cannot hold (TIMESTAMP_NS is a signed int64) are refused, the same
way from protobuf and from JSON: the record is rejected as partial success, or, for a
log's observed time, replaced by the receive time. Every request here is decoded by
both decoders and the two Batches must agree."""

from __future__ import annotations

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from koban.errors import DecodeError
from koban.ingest import decode, otlp_json
from koban.ingest.otlp_values import MAX_TIME_NS

RECEIVED = 1_767_225_600_000_000_000
T0 = 1_544_712_660_000_000_000
LARGEST = 2**63 - 1
TOO_LATE = [2**63, 2**64 - 1]


def _decode_both(otlp, signal: str, req):
    from_proto = decode(f"otlp-proto/{signal}", req.SerializeToString(), RECEIVED)
    from_json = decode(f"otlp-json/{signal}", otlp.to_otlp_json(req), RECEIVED)
    from_proto = from_proto.with_log_records()
    assert repr(from_json.with_log_records()) == repr(from_proto)
    otlp.assert_fits_store(from_proto)
    return from_proto


def test_the_largest_storable_time_is_int64_max():
    assert MAX_TIME_NS == LARGEST


# --- logs ----------------------------------------------------------------------------


def _logs(time: int, observed: int = 0) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    records.add().time_unix_nano = T0  # a good neighbour, always kept
    r = records.add()
    r.time_unix_nano, r.observed_time_unix_nano = time, observed
    return req


@pytest.mark.parametrize("time", TOO_LATE)
def test_it_rejects_a_log_record_whose_time_is_past_int64(otlp, time):
    batch = _decode_both(otlp, "logs", _logs(time, observed=T0))

    assert [r.timestamp_ns for r in batch.logs] == [T0]
    assert batch.rejected == 1
    assert batch.rejected_reason == "1 log record rejected: time_unix_nano out of range"


def test_it_keeps_a_log_record_at_the_largest_storable_time(otlp):
    batch = _decode_both(otlp, "logs", _logs(LARGEST, observed=LARGEST))

    assert (batch.logs[1].timestamp_ns, batch.logs[1].observed_ns) == (LARGEST, LARGEST)
    assert batch.rejected == 0


@pytest.mark.parametrize("observed", TOO_LATE)
def test_it_replaces_an_observed_time_past_int64_with_the_receive_time(otlp, observed):
    with_time = _decode_both(otlp, "logs", _logs(T0, observed)).logs[1]
    without_time = _decode_both(otlp, "logs", _logs(0, observed)).logs[1]

    assert (with_time.timestamp_ns, with_time.observed_ns) == (T0, RECEIVED)
    assert (without_time.timestamp_ns, without_time.observed_ns) == (RECEIVED, RECEIVED)


# --- spans ---------------------------------------------------------------------------


def _spans(otlp, start: int, end: int, event_time: int | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for span_start, span_end, event in ((T0, T0 + 5, None), (start, end, event_time)):
        s = spans.add()
        s.trace_id, s.span_id = otlp.TRACE, otlp.SPAN
        s.start_time_unix_nano, s.end_time_unix_nano = span_start, span_end
        if event is not None:
            s.events.add().time_unix_nano = event
    return req


@pytest.mark.parametrize("late", TOO_LATE)
@pytest.mark.parametrize(
    ("times", "reason"),
    [
        (lambda late: (late, late), "start_time_unix_nano out of range"),
        (lambda late: (T0, late), "end_time_unix_nano out of range"),
        (lambda late: (T0, T0, late), "an event's time_unix_nano out of range"),
    ],
    ids=["start", "end", "event"],
)
def test_it_rejects_a_span_with_a_time_past_int64(otlp, late, times, reason):
    batch = _decode_both(otlp, "traces", _spans(otlp, *times(late)))

    assert [s.start_ns for s in batch.spans] == [T0]
    assert (batch.rejected, batch.rejected_reason) == (1, f"1 span rejected: {reason}")


def test_it_keeps_a_span_whose_times_are_at_the_largest_storable_time(otlp):
    batch = _decode_both(otlp, "traces", _spans(otlp, 0, LARGEST, LARGEST))

    span = batch.spans[1]
    assert (span.start_ns, span.duration_ns, span.events[0].timestamp_ns) == (0, LARGEST, LARGEST)
    assert batch.rejected == 0


# --- metric points -------------------------------------------------------------------

KINDS = ["gauge", "sum", "histogram", "exponential_histogram", "summary"]


def _points(kind: str, start: int, time: int, exemplar_time: int | None = None) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    m = req.resource_metrics.add().scope_metrics.add().metrics.add()
    m.name = "m"
    body = getattr(m, kind)
    for point_start, point_time, ex_time in ((T0, T0, None), (start, time, exemplar_time)):
        p = body.data_points.add()
        p.start_time_unix_nano, p.time_unix_nano = point_start, point_time
        if ex_time is not None:
            p.exemplars.add().time_unix_nano = ex_time
    return req


def _all_points(batch):
    return [*batch.gauges, *batch.sums, *batch.histograms, *batch.exp_histograms, *batch.summaries]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("late", TOO_LATE)
def test_it_rejects_a_data_point_whose_start_or_time_is_past_int64(otlp, kind, late):
    late_start = _decode_both(otlp, "metrics", _points(kind, late, T0))
    late_time = _decode_both(otlp, "metrics", _points(kind, T0, late))

    assert [p.time_ns for p in _all_points(late_start)] == [T0]
    assert late_start.rejected_reason == "1 data point rejected: start_time_unix_nano out of range"
    assert [p.time_ns for p in _all_points(late_time)] == [T0]
    assert late_time.rejected_reason == "1 data point rejected: time_unix_nano out of range"


@pytest.mark.parametrize("kind", ["gauge", "sum", "histogram", "exponential_histogram"])
@pytest.mark.parametrize("late", TOO_LATE)
def test_it_rejects_a_data_point_whose_exemplar_time_is_past_int64(otlp, kind, late):
    batch = _decode_both(otlp, "metrics", _points(kind, T0, T0, late))

    assert len(_all_points(batch)) == 1
    assert (batch.rejected, batch.rejected_reason) == (
        1,
        "1 data point rejected: an exemplar's time_unix_nano out of range",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_it_keeps_a_data_point_at_the_largest_storable_time(otlp, kind):
    exemplar_time = None if kind == "summary" else LARGEST
    batch = _decode_both(otlp, "metrics", _points(kind, LARGEST, LARGEST, exemplar_time))

    point = _all_points(batch)[1]
    assert (point.start_ns, point.time_ns, batch.rejected) == (LARGEST, LARGEST, 0)
    if exemplar_time is not None:
        assert point.exemplars[0].time_ns == LARGEST


# --- JSON: numbers past uint64 are shape errors, not rejections ----------------------


def _json_metric(point: str) -> bytes:
    # Written by hand: orjson cannot write integers past 64 bits.
    return b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"histogram":{"dataPoints":[%s]}}]}]}]}' % (
        point.encode()
    )


@pytest.mark.parametrize(
    ("point", "field"),
    [
        ('{"count": "18446744073709551616"}', "count"),
        ('{"count": 18446744073709551616}', "count"),
        ('{"bucketCounts": [1, "18446744073709551616"]}', "bucketCounts[1]"),
        ('{"timeUnixNano": 18446744073709551616}', "timeUnixNano"),
        ('{"startTimeUnixNano": "-1"}', "startTimeUnixNano"),
    ],
)
def test_it_refuses_json_integers_outside_uint64(point, field):
    with pytest.raises(DecodeError) as caught:
        otlp_json.decode_metrics(_json_metric(point), RECEIVED)

    assert f"dataPoints[0].{field}: integer out of range" in caught.value.message


def test_it_takes_json_counts_up_to_uint64_max_as_numbers_or_strings():
    point = '{"count": 18446744073709551615, "bucketCounts": ["18446744073709551615"], "timeUnixNano": 5}'

    (histogram,) = otlp_json.decode_metrics(_json_metric(point), RECEIVED).histograms

    assert (histogram.count, histogram.bucket_counts) == (2**64 - 1, (2**64 - 1,))


def test_it_rejects_rather_than_refuses_a_json_time_past_int64_written_as_a_number():
    payload = orjson.dumps(
        {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": 2**64 - 1}, {"timeUnixNano": 2**63}]}]}]}
    )

    batch = otlp_json.decode_logs(payload, RECEIVED)

    assert (len(batch.logs), batch.rejected) == (0, 2)
    assert batch.rejected_reason == "2 log records rejected: time_unix_nano out of range"
