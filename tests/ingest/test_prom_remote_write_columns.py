"""The remote write decoder's columnar path (MetricColumns): the same points, the same
rejections and the same stored rows as the per-point path, for every request it takes;
and it leaves any other request to the per-point path."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import cramjam
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.ingest import prom_remote_write
from koban.ingest.guard import IngestPolicy, apply_policy
from koban.ingest.prom_remote_write import MESSAGES, STALE_NAN_BITS, _columns, _points
from koban.ingest.scrub import DEFAULT_RULES
from koban.model import Batch
from koban.store.columns import _decode_dictionaries, batch_to_arrow, prepare_metrics

T_MS = 1_767_225_600_123
STALE = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
COUNTER, HISTOGRAM = 1, 3
GOLDEN = Path(__file__).resolve().parent.parent / "data" / "prom_remote_write" / "workload-3-series.pb.snappy"


def request(*series, metadata=()):
    """A WriteRequest: each series is (labels dict, [(value, timestamp ms), ...])."""
    req = MESSAGES["WriteRequest"]()
    for labels, samples in series:
        ts = req.timeseries.add()
        for name, value in labels.items():
            ts.labels.add(name=name, value=value)
        for value, t in samples:
            ts.samples.add(value=value, timestamp=t)
    for family, type_, help_, unit in metadata:
        req.metadata.add(metric_family_name=family, type=type_, help=help_, unit=unit)
    return req.SerializeToString()


def rows(tables: dict[str, pa.Table]) -> dict[str, tuple]:
    """Each table's schema (dictionaries decoded) and rows, as text (so that NaN equals
    NaN), in any order: the columnar path stores monotonic sums before other sums."""
    out = {}
    for name, t in tables.items():
        plain = _decode_dictionaries(t)
        out[name] = (str(plain.schema), sorted(map(repr, plain.to_pylist())))
    return out


def same_points(a: Batch, b: Batch) -> bool:
    """The same gauges and sums, in any order (NaN equal to NaN)."""
    return sorted(map(repr, a.gauges)) == sorted(map(repr, b.gauges)) and sorted(map(repr, a.sums)) == sorted(
        map(repr, b.sums)
    )


def golden() -> bytes:
    return bytes(cramjam.snappy.decompress_raw(GOLDEN.read_bytes()))


def golden_steps(n: int) -> list[bytes]:
    """The golden body's samples as `n` requests of one sample per series, like
    Prometheus sends them."""
    whole = MESSAGES["WriteRequest"].FromString(golden())
    out = []
    for step in range(n):
        req = MESSAGES["WriteRequest"]()
        for ts in whole.timeseries:
            one = req.timeseries.add()
            one.labels.extend(ts.labels)
            one.samples.append(ts.samples[step])
        out.append(req.SerializeToString())
    return out


ONE_SAMPLE_REQUESTS = {
    "workload": golden_steps(1)[0],
    "zero values": request(({"__name__": "a", "job": "j"}, [(0.0, T_MS)]), ({"__name__": "b"}, [(2.5, T_MS)])),
    "stale and nan": request(({"__name__": "up", "i": "1"}, [(STALE, T_MS)]), ({"__name__": "up"}, [(math.nan, T_MS)])),
    "no name": request(({"job": "j"}, [(1.0, T_MS)]), ({"__name__": "up"}, [(1.0, T_MS)])),
    "empty label values": request(({"__name__": "up", "zone": "", "env": "prod"}, [(1.0, T_MS)])),
    "a series twice": request(
        ({"__name__": "up", "job": "j"}, [(1.0, T_MS)]), ({"__name__": "up", "job": "j"}, [(2.0, T_MS + 1)]),
        ({"__name__": "down"}, [(3.0, T_MS)]),
    ),
    "counters and histograms": request(
        ({"__name__": "http_requests_total", "job": "api", "instance": "h:1"}, [(7.0, T_MS)]),
        ({"__name__": "rpc_seconds_bucket", "job": "api", "le": "0.5"}, [(3.0, T_MS)]),
        ({"__name__": "rpc_seconds_sum", "job": "api"}, [(1.5, T_MS)]),
        ({"__name__": "temperature", "job": "api"}, [(21.0, T_MS)]),
        metadata=[("http_requests_total", COUNTER, "Requests.", ""), ("rpc_seconds", HISTOGRAM, "RPCs.", "s")],
    ),
}


@pytest.mark.parametrize("payload", ONE_SAMPLE_REQUESTS.values(), ids=ONE_SAMPLE_REQUESTS.keys())
def test_the_columnar_path_gives_the_points_and_rejections_of_the_per_point_path(payload):
    columns = _columns(payload)

    assert columns is not None and columns.metric_columns and not columns.gauges
    expected = _points(payload)
    assert same_points(columns.with_metric_points(), expected)
    assert columns.rejected == expected.rejected
    assert sorted(columns.rejected_reason.split("; ")) == sorted(expected.rejected_reason.split("; "))


@pytest.mark.parametrize("payload", ONE_SAMPLE_REQUESTS.values(), ids=ONE_SAMPLE_REQUESTS.keys())
def test_the_columnar_path_stores_the_same_rows(payload):
    expected = rows(batch_to_arrow(_points(payload)))

    assert rows(batch_to_arrow(_columns(payload))) == expected
    assert rows(batch_to_arrow(prepare_metrics(_columns(payload)), dictionary_maps=True)) == expected


def test_requests_merged_for_one_write_share_their_series_maps_and_store_the_same_rows():
    payloads = golden_steps(3)
    merged = Batch.merge([prepare_metrics(prom_remote_write.decode(p, 0)) for p in payloads])

    tables = batch_to_arrow(merged, dictionary_maps=True)
    attributes = tables["otel_metrics_gauge"].column("Attributes").combine_chunks()
    assert pa.types.is_dictionary(attributes.type) and len(attributes.dictionary) == 3  # 3 series, 9 points
    assert rows(tables) == rows(batch_to_arrow(Batch.merge([_points(p) for p in payloads])))


def test_a_time_out_of_range_goes_the_per_point_path_and_is_rejected():
    # a millisecond time past 2**63 ns is past the varint length the columnar path reads
    payload = request(({"__name__": "up"}, [(1.0, 2**62)]), ({"__name__": "up", "x": "y"}, [(1.0, T_MS)]))

    assert _columns(payload) is None
    batch = prom_remote_write.decode(payload, 0)
    assert (len(batch.gauges), batch.rejected) == (1, 1)


def test_a_series_with_several_samples_goes_the_per_point_path():
    payload = golden()  # 240 samples per series

    assert _columns(payload) is None
    assert len(prom_remote_write.decode(payload, 0).gauges) == 720


def test_a_label_value_that_looks_like_a_sample_is_not_taken_for_one():
    # the series' last 18 bytes have the shape of a sample field, inside a label value
    mimic = "\x12\x10\x09abcdefgh\x10€éa"
    payload = request(({"__name__": "up", "zone": mimic}, []))
    assert payload.endswith(mimic.encode())

    assert _columns(payload) is None
    assert prom_remote_write.decode(payload, 0).record_count == 0


def test_the_same_label_set_decodes_the_same_in_every_request():
    first, second = golden_steps(2)
    a = prom_remote_write.decode(first, 0).metric_columns[0]
    b = prom_remote_write.decode(second, 0).metric_columns[0]

    assert a.series_ids.tolist() == b.series_ids.tolist() and a.attributes == b.attributes
    assert a.streams == b.streams and a.series_stream.tolist() == b.series_stream.tolist()
    assert a.time_ns != b.time_ns


def test_scrubbing_and_limits_apply_to_label_values_in_every_request():
    payload = request(
        ({"__name__": "logins", "db_password": "hunter2", "note": "x" * 20}, [(1.0, T_MS)]),
        ({"__name__": "logins", "note": "short"}, [(1.0, T_MS)]),
    )
    policy = IngestPolicy(DEFAULT_RULES, max_value_length=10)

    for _ in range(2):  # the second time the series are known: still cleaned, still counted
        guarded = apply_policy(policy, prom_remote_write.decode(payload, 0))
        secret, plain = guarded.batch.with_metric_points().gauges
        assert secret.attributes == {"db_password": "[REDACTED]", "note": "x" * 10}
        assert plain.attributes == {"note": "short"}
        assert (guarded.scrubbed, guarded.values_truncated) == ({"sensitive_key": 1}, 1)


def test_a_series_the_policy_cleans_gets_another_id_and_its_own_stored_row():
    payload = request(({"__name__": "logins", "db_password": "hunter2"}, [(1.0, T_MS)]),
                      ({"__name__": "logins", "db_password": ""}, [(1.0, T_MS)]))
    masking = IngestPolicy(DEFAULT_RULES)

    raw = prepare_metrics(apply_policy(IngestPolicy(), prom_remote_write.decode(payload, 0)).batch)
    cleaned = [prepare_metrics(apply_policy(masking, prom_remote_write.decode(payload, 0)).batch) for _ in range(2)]

    # the same series in the same process, first as sent, then masked: the masked one
    # has an id of its own (the same in every request), and its row is not the raw one
    raw_ids, *cleaned_ids = (b.metric_columns[0].series.column("SeriesId").to_pylist() for b in (raw, *cleaned))
    assert cleaned_ids[0] == cleaned_ids[1]
    assert cleaned_ids[0][0] != raw_ids[0] and cleaned_ids[0][1] == raw_ids[1]  # the empty label is not a secret
    stored = [rows(batch_to_arrow(b))["otel_metrics_gauge"][1] for b in (raw, *cleaned)]
    assert "hunter2" in stored[0][0] + stored[0][1]
    assert stored[1] == stored[2] and "hunter2" not in "".join(stored[1]) and "[REDACTED]" in "".join(stored[1])


_label_names = st.sampled_from(["__name__", "job", "instance", "pod", "le", "zone"])
_label_values = st.sampled_from(["", "up", "api", "h:1", "0.5", "é€", "http_requests_total", "rpc_seconds_sum"])
_values = st.one_of(st.floats(allow_nan=True), st.just(0.0), st.just(STALE))
_times = st.integers(min_value=2**35, max_value=2**42 - 1)  # the times the columnar path reads


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(_label_names, _label_values, max_size=5), _values, _times), max_size=8),
       st.booleans())
def test_any_one_sample_request_decodes_to_the_same_points_on_both_paths(series, with_metadata):
    metadata = [("http_requests_total", COUNTER, "h", ""), ("rpc_seconds", HISTOGRAM, "", "s")] if with_metadata else []
    payload = request(*[(labels, [(value, t)]) for labels, value, t in series], metadata=metadata)

    columns = _columns(payload)
    expected = _points(payload)
    if columns is not None:
        assert same_points(columns.with_metric_points(), expected)
        assert columns.rejected == expected.rejected
        assert rows(batch_to_arrow(prepare_metrics(columns), dictionary_maps=True)) == rows(batch_to_arrow(expected))
