"""The protobuf and JSON decoders give identical Batches for the same content.

Batches are compared by repr, with their log records as LogRecords (the protobuf
decoder gives them column-wise): repr is stricter than == (1 vs 1.0, list vs tuple)
and, unlike ==, treats two NaNs as the same value.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koban.ingest import decode
from koban.model import Batch

RECEIVED = 1_767_225_600_000_000_000
SIGNALS = (("logs", "logs.json"), ("traces", "trace.json"), ("metrics", "metrics.json"))


def _same(a: Batch, b: Batch) -> None:
    assert repr(a.with_log_records()) == repr(b.with_log_records())


def _golden_request(otlp, signal: str):
    return {
        "logs": otlp.golden_logs_request,
        "traces": otlp.golden_trace_request,
        "metrics": otlp.golden_metrics_request,
    }[signal]()


def test_it_decodes_the_golden_json_files_like_the_same_protobuf(otlp):
    for signal, filename in SIGNALS:
        from_json = decode(f"otlp-json/{signal}", (otlp.DATA / filename).read_bytes(), RECEIVED)
        from_proto = decode(f"otlp-proto/{signal}", _golden_request(otlp, signal).SerializeToString(), RECEIVED)

        _same(from_json, from_proto)
        assert from_json.record_count > 0


def test_it_decodes_protojson_spellings_like_the_protobuf(otlp):
    for signal, _ in SIGNALS:
        req = _golden_request(otlp, signal)
        from_proto = decode(f"otlp-proto/{signal}", req.SerializeToString(), RECEIVED)
        for options in ({}, {"snake": True}, {"enum_names": True, "upper": True}):
            from_json = decode(f"otlp-json/{signal}", otlp.to_otlp_json(req, **options), RECEIVED)
            _same(from_json, from_proto)


# --- random requests -----------------------------------------------------------------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_u64 = st.integers(0, 2**64 - 1)
# Times over all of uint64, with the edges of the store's int64 range drawn often.
_time = st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 1]) | st.integers(0, 2**63 - 1) | _u64
_i64 = st.integers(-(2**63), 2**63 - 1)
_double = st.floats(allow_nan=True, allow_infinity=True)
_scalar = st.none() | st.booleans() | _i64 | _double | _text | st.binary(max_size=6)
_value = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_attrs = st.dictionaries(st.sampled_from(["a", "a.b", "service.name", "k", ""]) | _text, _value, max_size=4)
# Ids of the right length mostly, sometimes empty or wrong (rejected, not an error).
_trace_id = st.sampled_from([bytes(range(16)), b"\xab" * 16, b"", b"\x01" * 3])
_span_id = st.sampled_from([bytes(range(8)), b"\xcd" * 8, b"", b"\x02" * 9])


def _fill_resource_and_scope(otlp, data, rx, sx) -> None:
    otlp.set_attrs(rx.resource.attributes, data.draw(_attrs))
    rx.schema_url = data.draw(_text)
    sx.scope.name = data.draw(_text)
    sx.scope.version = data.draw(_text)
    sx.scope.dropped_attributes_count = data.draw(st.integers(0, 2**32 - 1))
    otlp.set_attrs(sx.scope.attributes, data.draw(_attrs))
    sx.schema_url = data.draw(_text)


# Log attributes as a list of pairs: keys often repeat (the later value wins, at the
# first key's place), and a kvlist may flatten onto a key that is also set directly.
# Mostly scalars: the decoder takes another path for requests that hold a kvlist.
_attr_pairs = st.lists(
    st.tuples(st.sampled_from(["a", "a.b", "k", ""]) | _text, st.one_of(_scalar, _scalar, _scalar, _value)),
    max_size=5,
)


def _random_logs(otlp, data):
    """Up to two resources of up to two scopes each, of records that the decoder
    takes or rejects, in any order."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    req = ExportLogsServiceRequest()
    for _ in range(data.draw(st.integers(1, 2))):
        rl = req.resource_logs.add()
        for n in range(data.draw(st.integers(1, 2))):
            sl = rl.scope_logs.add()
            _fill_resource_and_scope(otlp, data, rl if n == 0 else type(rl)(), sl)
            for _ in range(data.draw(st.integers(0, 3))):
                r = sl.log_records.add()
                r.time_unix_nano = data.draw(_time)
                r.observed_time_unix_nano = data.draw(_time)
                r.severity_number = data.draw(st.integers(-5, 30))
                r.severity_text = data.draw(_text)
                r.flags = data.draw(st.integers(0, 2**32 - 1))
                r.trace_id = data.draw(_trace_id)
                r.span_id = data.draw(_span_id)
                otlp.set_any(r.body, data.draw(_value))
                otlp.set_attrs(r.attributes, data.draw(_attr_pairs))
    return req


def _random_traces(otlp, data):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    ss = rs.scope_spans.add()
    _fill_resource_and_scope(otlp, data, rs, ss)
    for _ in range(data.draw(st.integers(0, 3))):
        s = ss.spans.add()
        s.trace_id = data.draw(_trace_id)
        s.span_id = data.draw(_span_id)
        s.parent_span_id = data.draw(_span_id)
        s.trace_state, s.name = data.draw(_text), data.draw(_text)
        s.kind = data.draw(st.integers(-1, 8))
        s.start_time_unix_nano = data.draw(_time)
        s.end_time_unix_nano = data.draw(_time)
        otlp.set_attrs(s.attributes, data.draw(_attrs))
        for _ in range(data.draw(st.integers(0, 2))):
            e = s.events.add()
            e.time_unix_nano, e.name = data.draw(_time), data.draw(_text)
            otlp.set_attrs(e.attributes, data.draw(_attrs))
        for _ in range(data.draw(st.integers(0, 2))):
            ln = s.links.add()
            ln.trace_id, ln.span_id = data.draw(_trace_id), data.draw(_span_id)
            ln.trace_state = data.draw(_text)
            otlp.set_attrs(ln.attributes, data.draw(_attrs))
        s.status.code = data.draw(st.integers(0, 4))
        s.status.message = data.draw(_text)
    return req


def _number_point(otlp, data, p) -> None:
    otlp.set_attrs(p.attributes, data.draw(_attrs))
    p.start_time_unix_nano, p.time_unix_nano = data.draw(_time), data.draw(_time)
    p.flags = data.draw(st.integers(0, 2**32 - 1))
    which = data.draw(st.sampled_from(["as_int", "as_double", None]))
    if which == "as_int":
        p.as_int = data.draw(_i64)
    elif which == "as_double":
        p.as_double = data.draw(_double)


def _random_metrics(otlp, data):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    sm = rm.scope_metrics.add()
    _fill_resource_and_scope(otlp, data, rm, sm)
    for _ in range(data.draw(st.integers(0, 3))):
        m = sm.metrics.add()
        m.name, m.description, m.unit = data.draw(_text), data.draw(_text), data.draw(_text)
        kind = data.draw(st.sampled_from(["gauge", "sum", "histogram", "exponential_histogram", "summary", None]))
        if kind is None:
            continue
        body = getattr(m, kind)
        body.SetInParent()
        if kind != "gauge" and kind != "summary":
            body.aggregation_temporality = data.draw(st.integers(0, 3))
        if kind == "sum":
            body.is_monotonic = data.draw(st.booleans())
        for _ in range(data.draw(st.integers(0, 2))):
            p = body.data_points.add()
            if kind in ("gauge", "sum"):
                _number_point(otlp, data, p)
                for _ in range(data.draw(st.integers(0, 1))):
                    ex = p.exemplars.add()
                    ex.time_unix_nano = data.draw(_time)
                    if data.draw(st.booleans()):
                        ex.as_int = data.draw(_i64)
                    else:
                        ex.as_double = data.draw(_double)
                    ex.trace_id, ex.span_id = data.draw(_trace_id), data.draw(_span_id)
                    otlp.set_attrs(ex.filtered_attributes, data.draw(_attrs))
                continue
            otlp.set_attrs(p.attributes, data.draw(_attrs))
            p.start_time_unix_nano, p.time_unix_nano = data.draw(_time), data.draw(_time)
            p.count = data.draw(_u64)
            p.sum = data.draw(_double)
            if kind == "summary":
                for _ in range(data.draw(st.integers(0, 2))):
                    q = p.quantile_values.add()
                    q.quantile, q.value = data.draw(_double), data.draw(_double)
                continue
            if data.draw(st.booleans()):
                p.min, p.max = data.draw(_double), data.draw(_double)
            counts = st.lists(_u64, max_size=3)
            if kind == "histogram":
                p.bucket_counts.extend(data.draw(counts))
                p.explicit_bounds.extend(data.draw(st.lists(_double, max_size=3)))
            else:
                p.scale = data.draw(st.integers(-(2**31), 2**31 - 1))
                p.zero_count = data.draw(_u64)
                p.positive.offset = data.draw(st.integers(-10, 10))
                p.positive.bucket_counts.extend(data.draw(counts))
                p.negative.offset = data.draw(st.integers(-10, 10))
                p.negative.bucket_counts.extend(data.draw(counts))
    return req


_RANDOM = {"logs": _random_logs, "traces": _random_traces, "metrics": _random_metrics}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(_RANDOM)), st.sampled_from([{}, {"snake": True, "enum_names": True}]), st.data())
def test_it_decodes_any_request_identically_from_protobuf_and_json(otlp, signal, options, data):
    req = _RANDOM[signal](otlp, data)

    from_proto = decode(f"otlp-proto/{signal}", req.SerializeToString(), RECEIVED)
    from_json = decode(f"otlp-json/{signal}", otlp.to_otlp_json(req, **options), RECEIVED)

    _same(from_json, from_proto)
    assert from_proto.record_count + from_proto.rejected == _records_in(signal, req)
    otlp.assert_fits_store(from_proto)


def _records_in(signal: str, req) -> int:
    """Records a request holds: each is either accepted or counted as rejected."""
    if signal == "logs":
        return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
    if signal == "traces":
        return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    metrics = [m for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    return sum(len(getattr(m, kind).data_points) if (kind := m.WhichOneof("data")) else 1 for m in metrics)
