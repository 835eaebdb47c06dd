"""`koban.ingest.decode` and CODECS: the names receivers and the WAL replay use."""

from __future__ import annotations

import pytest

from koban.errors import DecodeError
from koban.ingest import CODECS, decode

RECEIVED = 1_767_225_600_000_000_000


def test_it_offers_exactly_the_known_codecs():
    assert set(CODECS) == {
        "otlp-proto/logs",
        "otlp-proto/traces",
        "otlp-proto/metrics",
        "otlp-json/logs",
        "otlp-json/traces",
        "otlp-json/metrics",
        "prom-rw/metrics",
        "prom-text/metrics",  # a Prometheus scrape: envelope + exposition body
        "koban-events/jsonl",  # DogStatsD events
    }


def test_it_dispatches_to_the_named_codec(otlp):
    batch = decode("otlp-proto/traces", otlp.golden_trace_request().SerializeToString(), RECEIVED)

    assert len(batch.spans) == 3 and not batch.logs


@pytest.mark.parametrize("codec", ["otlp-xml/logs", "", "OTLP-PROTO/LOGS"])
def test_it_raises_decode_error_for_an_unknown_codec(codec):
    with pytest.raises(DecodeError, match="unknown codec"):
        decode(codec, b"", RECEIVED)


def test_it_is_pure_decoding_the_same_bytes_twice_gives_the_same_batch(otlp):
    payload = (otlp.DATA / "logs.json").read_bytes()

    assert decode("otlp-json/logs", payload, RECEIVED) == decode("otlp-json/logs", payload, RECEIVED)
