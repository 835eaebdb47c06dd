"""The remote write 1.0 decoder: WriteRequest protobuf -> gauge and sum points."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import cramjam
import pytest

from koban.errors import DecodeError
from koban.ingest import decode as decode_codec
from koban.ingest import prom_remote_write
from koban.ingest.prom_remote_write import MESSAGES, SCOPE, STALE_NAN_BITS

RECEIVED = 1_767_225_600_000_000_000
T_MS = 1_767_225_600_123
STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
COUNTER, HISTOGRAM = 1, 3


def decode(payload: bytes, received_ns: int):
    """The decoded batch with every sample as a point, whichever path decoded it."""
    return prom_remote_write.decode(payload, received_ns).with_metric_points()


def request(*series, metadata=()):
    """A WriteRequest built with the decoder's own classes. Each series is
    (labels dict, [(value, timestamp ms), ...], native histogram count)."""
    req = MESSAGES["WriteRequest"]()
    for labels, samples, *histograms in series:
        ts = req.timeseries.add()
        for name, value in labels.items():
            ts.labels.add(name=name, value=value)
        for value, t in samples:
            ts.samples.add(value=value, timestamp=t)
        for _ in range(histograms[0] if histograms else 0):
            ts.histograms.add()
    for family, type_, help_, unit in metadata:
        req.metadata.add(metric_family_name=family, type=type_, help=help_, unit=unit)
    return req.SerializeToString()


# --- independent of the decoder's classes: the wire bytes as gen_workload.py writes them


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def hand_encoded(labels: dict[str, str], samples: list[tuple[float, int]]) -> bytes:
    block = b"".join(_ld(1, _ld(1, k.encode()) + _ld(2, v.encode())) for k, v in sorted(labels.items()))
    points = b"".join(
        _ld(2, b"\x09" + struct.pack("<d", v) + b"\x10" + _varint(t & (2**64 - 1))) for v, t in samples
    )
    return _ld(1, block + points)


def test_it_reads_bytes_encoded_by_hand_as_prometheus_sends_them():
    labels = {"__name__": "up", "job": "node", "instance": "h1:9100"}
    payload = hand_encoded(labels, [(1.0, T_MS), (0.0, T_MS + 15_000)])

    batch = decode(payload, RECEIVED)

    assert [(p.stream.name, p.time_ns, p.value) for p in batch.gauges] == [
        ("up", T_MS * 10**6, 1.0),
        ("up", (T_MS + 15_000) * 10**6, 0.0),
    ]
    assert batch.rejected == 0


def test_it_is_registered_as_the_prom_rw_metrics_codec():
    payload = request(({"__name__": "up"}, [(1.0, T_MS)]))

    assert decode_codec("prom-rw/metrics", payload, RECEIVED).with_metric_points() == decode(payload, RECEIVED)


def test_each_sample_is_a_gauge_named_by_the_name_label_with_the_other_labels_as_attributes():
    payload = request(
        ({"__name__": "http_requests_total", "job": "api", "instance": "10.0.0.1:8080", "method": "GET"},
         [(3.5, T_MS)]),
    )

    (point,) = decode(payload, RECEIVED).gauges

    assert point.stream.name == "http_requests_total"
    assert point.attributes == {"instance": "10.0.0.1:8080", "method": "GET"}
    assert (point.start_ns, point.time_ns, point.value) == (0, T_MS * 1_000_000, 3.5)
    assert point.stream.scope == SCOPE


def test_job_is_the_service_and_instance_is_the_service_instance():
    payload = request(({"__name__": "up", "job": "node", "instance": "h1:9100"}, [(1.0, T_MS)]))

    resource = decode(payload, RECEIVED).gauges[0].stream.resource

    assert resource.service_name == "node"
    assert resource.attributes == {"service.name": "node", "service.instance.id": "h1:9100"}


def test_a_series_without_job_belongs_to_the_prometheus_service():
    resource = decode(request(({"__name__": "up"}, [(1.0, T_MS)])), RECEIVED).gauges[0].stream.resource

    assert (resource.service_name, resource.attributes) == ("prometheus", {"service.name": "prometheus"})


def test_labels_with_empty_values_are_absent_as_in_prometheus():
    point = decode(request(({"__name__": "up", "zone": "", "env": "prod"}, [(1.0, T_MS)])), RECEIVED).gauges[0]

    assert point.attributes == {"env": "prod"}


def test_series_of_one_job_and_instance_share_one_resource_and_one_stream_per_name():
    payload = request(
        ({"__name__": "up", "job": "node", "cpu": "0"}, [(1.0, T_MS)]),
        ({"__name__": "up", "job": "node", "cpu": "1"}, [(1.0, T_MS)]),
        ({"__name__": "load1", "job": "node"}, [(0.5, T_MS)]),
    )

    a, b, c = decode(payload, RECEIVED).gauges

    assert a.stream is b.stream
    assert a.stream.resource is c.stream.resource


def test_metadata_in_the_request_makes_a_counter_a_cumulative_monotonic_sum():
    payload = request(
        ({"__name__": "http_requests_total"}, [(10.0, T_MS), (12.0, T_MS + 15_000)]),
        ({"__name__": "temperature"}, [(21.5, T_MS)]),
        metadata=[("http_requests_total", COUNTER, "Requests served.", "")],
    )

    batch = decode(payload, RECEIVED)

    assert [(p.stream.name, p.value, p.aggregation_temporality, p.is_monotonic) for p in batch.sums] == [
        ("http_requests_total", 10.0, 2, True),
        ("http_requests_total", 12.0, 2, True),
    ]
    assert batch.sums[0].stream.description == "Requests served."
    assert [p.stream.name for p in batch.gauges] == ["temperature"]


def test_a_histograms_bucket_and_count_series_are_monotonic_sums_and_its_sum_is_not():
    payload = request(
        ({"__name__": "latency_seconds_bucket", "le": "0.1"}, [(4.0, T_MS)]),
        ({"__name__": "latency_seconds_count"}, [(5.0, T_MS)]),
        ({"__name__": "latency_seconds_sum"}, [(0.7, T_MS)]),
        metadata=[("latency_seconds", HISTOGRAM, "Latency.", "seconds")],
    )

    sums = decode(payload, RECEIVED).sums

    assert [(p.stream.name, p.is_monotonic, p.stream.unit) for p in sums] == [
        ("latency_seconds_bucket", True, "seconds"),
        ("latency_seconds_count", True, "seconds"),
        ("latency_seconds_sum", False, "seconds"),
    ]


def test_it_drops_stale_markers_and_counts_them_but_keeps_an_ordinary_nan():
    payload = request(({"__name__": "up"}, [(STALE, T_MS), (math.nan, T_MS + 1), (1.0, T_MS + 2)]))

    batch = decode(payload, RECEIVED)

    assert [p.time_ns for p in batch.gauges] == [(T_MS + 1) * 10**6, (T_MS + 2) * 10**6]
    assert math.isnan(batch.gauges[0].value)
    assert (batch.rejected, batch.rejected_reason) == (1, "1 sample rejected: stale marker")


@pytest.mark.parametrize("t_ms", [-1, (2**63 - 1) // 10**6 + 1, 2**63 - 1])
def test_it_rejects_a_sample_whose_time_does_not_fit_int64_nanoseconds(t_ms):
    batch = decode(request(({"__name__": "up"}, [(1.0, t_ms), (2.0, T_MS)])), RECEIVED)

    assert [p.value for p in batch.gauges] == [2.0]
    assert (batch.rejected, batch.rejected_reason) == (1, "1 sample rejected: timestamp out of range")


def test_the_latest_time_that_fits_is_kept():
    last_ms = (2**63 - 1) // 10**6

    assert decode(request(({"__name__": "up"}, [(1.0, last_ms)])), RECEIVED).gauges[0].time_ns == last_ms * 10**6


def test_it_rejects_every_sample_of_a_series_without_a_name():
    payload = request(({"job": "node"}, [(1.0, T_MS), (2.0, T_MS)]), ({"__name__": ""}, [(3.0, T_MS)]))

    batch = decode(payload, RECEIVED)

    assert batch.record_count == 0
    assert (batch.rejected, batch.rejected_reason) == (3, "3 samples rejected: series has no __name__ label")


def test_it_counts_native_histograms_as_rejected_and_keeps_the_samples():
    batch = decode(request(({"__name__": "rpc_seconds"}, [(1.0, T_MS)], 2)), RECEIVED)

    assert len(batch.gauges) == 1
    assert (batch.rejected, batch.rejected_reason) == (2, "2 histograms rejected: native histograms are not supported")


def test_an_empty_request_and_a_metadata_only_request_hold_nothing():
    assert decode(b"", RECEIVED).record_count == 0
    assert decode(request(metadata=[("up", 2, "", "")]), RECEIVED).record_count == 0


NOT_UTF8_LABEL = _ld(1, _ld(1, _ld(1, b"\xff\xfe")))


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff not protobuf", b"\x0a\x05ab", NOT_UTF8_LABEL])
def test_it_raises_decode_error_for_bytes_that_are_not_a_write_request(payload):
    with pytest.raises(DecodeError, match="WriteRequest"):
        decode(payload, RECEIVED)


def test_it_is_pure_decoding_the_same_bytes_twice_gives_the_same_batch():
    payload = request(({"__name__": "up", "job": "a"}, [(1.0, T_MS), (STALE, T_MS)]))

    assert decode(payload, RECEIVED) == decode(payload, RECEIVED + 1)


# --- golden: a body of the shared workload (gen_workload.py --series 3 --remote-write)

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "prom_remote_write" / "workload-3-series.pb.snappy"


def golden_payload() -> bytes:
    return bytes(cramjam.snappy.decompress_raw(GOLDEN.read_bytes()))


def test_the_golden_workload_body_gives_every_sample_with_its_labels_and_value():
    batch = decode(golden_payload(), RECEIVED)

    assert (len(batch.gauges), batch.rejected) == (720, 0)  # 3 series x 240 steps of 15 s
    last = batch.gauges[-1]
    assert last.stream.name == "db_query_duration_seconds"
    assert last.attributes == {"instance": "ip-10-0-1-24.ec2.internal", "op": "insert", "service": "email",
                               "table": "products"}
    assert (last.time_ns, last.value) == (1_767_229_185_000_000_000, 0.0830517)
    assert last.stream.resource.attributes["service.instance.id"] == "ip-10-0-1-24.ec2.internal"


def test_the_golden_body_round_trips_through_the_points():
    original = MESSAGES["WriteRequest"].FromString(golden_payload())
    again = MESSAGES["WriteRequest"]()
    series: dict[tuple, object] = {}
    for p in decode(golden_payload(), RECEIVED).gauges:
        labels = (("__name__", p.stream.name), *sorted(p.attributes.items()))
        ts = series.get(labels)
        if ts is None:
            ts = series[labels] = again.timeseries.add()
            for name, value in labels:
                ts.labels.add(name=name, value=value)
        ts.samples.add(value=p.value, timestamp=p.time_ns // 1_000_000)

    assert again == original
