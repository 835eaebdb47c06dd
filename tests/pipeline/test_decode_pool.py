"""The decode pool gives the same batches as decoding in place, and the same errors."""

from __future__ import annotations

import asyncio
import time

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from e2e.payloads import log_request
from koban.errors import DecodeError
from koban.ingest import decode
from koban.pipeline.decode_pool import DecodePool


@pytest.fixture(scope="module")
def pool():
    pool = DecodePool(decode, workers=1, inline_below=0)  # every payload goes to the worker
    yield pool
    pool.close()


def test_a_worker_decodes_exactly_what_decoding_in_place_gives(pool):
    body = log_request([f"line {i}" for i in range(500)], "pooled", time_ns=1_790_000_000 * 10**9)
    received = time.time_ns()
    pooled = asyncio.run(pool.decode("otlp-proto/logs", body, received))
    assert pooled == decode("otlp-proto/logs", body, received)
    assert pooled.record_count == 500


def test_a_malformed_payload_raises_decode_error_from_the_worker(pool):
    with pytest.raises(DecodeError) as info:
        asyncio.run(pool.decode("otlp-proto/logs", b"\xff\xff\xff not protobuf", 0))
    assert "ExportLogsServiceRequest" in str(info.value)


def test_small_payloads_are_decoded_in_place_without_workers():
    inline = DecodePool(decode, workers=0)
    body = ExportLogsServiceRequest().SerializeToString()
    assert asyncio.run(inline.decode("otlp-proto/logs", body, 0)).record_count == 0
    inline.close()
