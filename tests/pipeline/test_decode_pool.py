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


def test_workers_run_the_worker_function_and_small_payloads_the_inline_one():
    """Workers prepare the logs for the store (Arrow); the server process does not."""
    import functools

    from koban.ingest.guard import IngestPolicy
    from koban.ingest.scrub import rule_set
    from koban.pipeline.guarded_decode import decode_for_intake, decode_in_worker

    policy = IngestPolicy(rule_set(False, ()), 128, 1000)
    pool = DecodePool(functools.partial(decode_for_intake, policy), workers=1, inline_below=1024,
                      worker_decode=functools.partial(decode_in_worker, policy))
    try:
        big = log_request([f"line {i}" for i in range(200)], "pooled")
        small = log_request(["one"], "pooled")
        assert len(big) >= 1024 > len(small)
        from_worker = asyncio.run(pool.decode("otlp-proto/logs", big, 1)).batch
        in_place = asyncio.run(pool.decode("otlp-proto/logs", small, 1)).batch
    finally:
        pool.close()
    assert from_worker.prepared_logs and not from_worker.log_columns and from_worker.record_count == 200
    assert not in_place.prepared_logs and in_place.record_count == 1
