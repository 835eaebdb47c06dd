"""Whatever the bytes, every codec returns a Batch the store can hold, or raises DecodeError."""

from __future__ import annotations

import cramjam
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.strategies import mutated
from koban.errors import DecodeError
from koban.ingest import CODECS, decode, events, prom_text
from koban.model import Batch, Event

RECEIVED = 1_767_225_600_000_000_000
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOLDEN_FILES = {"logs": "logs.json", "traces": "trace.json", "metrics": "metrics.json"}


def _decodes_or_refuses(otlp, codec: str, payload: bytes) -> None:
    try:
        batch = decode(codec, payload, RECEIVED)
    except DecodeError as exc:
        assert exc.status == 400 and exc.message
    else:
        assert isinstance(batch, Batch)
        assert batch.rejected >= 0 and (batch.rejected == 0) == (batch.rejected_reason == "")
        otlp.assert_fits_store(batch)


@FUZZ
@given(st.sampled_from(sorted(CODECS)), st.binary(max_size=300))
def test_it_never_raises_anything_but_decode_error_for_random_bytes(otlp, codec, payload):
    _decodes_or_refuses(otlp, codec, payload)


def _golden_payloads(otlp) -> dict[str, bytes]:
    payloads = {}
    for signal, filename in GOLDEN_FILES.items():
        payloads[f"otlp-json/{signal}"] = (otlp.DATA / filename).read_bytes()
    payloads["otlp-proto/logs"] = otlp.golden_logs_request().SerializeToString()
    payloads["otlp-proto/traces"] = otlp.golden_trace_request().SerializeToString()
    payloads["otlp-proto/metrics"] = otlp.golden_metrics_request().SerializeToString()
    snappy_body = (otlp.DATA.parent / "prom_remote_write" / "workload-3-series.pb.snappy").read_bytes()
    payloads["prom-rw/metrics"] = bytes(cramjam.snappy.decompress_raw(snappy_body))
    header = prom_text.ScrapeHeader("shop", "127.0.0.1:9100", {}, RECEIVED, False, RECEIVED, {}, 1, 0.01, 2)
    payloads["prom-text/metrics"] = prom_text.encode_envelope(header, b"# TYPE c counter\nc_total 4\ng 1.5\n")
    payloads["koban-events/jsonl"] = events.encode([
        Event(RECEIVED, "deploy", "checkout 1.4.1", "info", "normal", "web-1", "deploys", "ci", "checkout",
              {"env": "prod", "canary": ""}),
    ])  # fmt: skip
    return payloads


@FUZZ
@given(st.sampled_from(sorted(CODECS)), st.data())
def test_it_never_raises_anything_but_decode_error_for_mutated_payloads(otlp, codec, data):
    payload = data.draw(mutated([_golden_payloads(otlp)[codec]], max_edits=4))  # the fuzz harness's mutations
    _decodes_or_refuses(otlp, codec, payload)


_boundary = st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64])
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | _boundary
    | _boundary.map(str)
    | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _nodes(doc, path=()):
    """Every (path, node) in a JSON document, the root included."""
    yield path, doc
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, child in children:
        yield from _nodes(child, (*path, key))


@FUZZ
@given(st.sampled_from(sorted(GOLDEN_FILES)), st.integers(0, 10**6), _json)
def test_it_never_raises_anything_but_decode_error_for_json_of_any_shape(otlp, signal, pick, replacement):
    doc = orjson.loads((otlp.DATA / GOLDEN_FILES[signal]).read_bytes())
    nodes = list(_nodes(doc))
    path, _ = nodes[pick % len(nodes)]
    if path:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = replacement
    else:
        doc = replacement
    try:
        payload = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # integers past 64 bits: JSON text orjson cannot write
        payload = repr(doc).encode()

    _decodes_or_refuses(otlp, f"otlp-json/{signal}", payload)
