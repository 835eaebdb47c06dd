"""The decode pool gives the same batches as decoding in place, and the same errors."""

from __future__ import annotations

import asyncio
import time

import pyarrow as pa
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


def arrow_tables(codec: str, payload: bytes, received_ns: int) -> tuple[pa.Table, ...]:
    """A worker function giving tables of the shapes the store writer gets: chunks
    whose dictionaries differ, maps, nanosecond timestamps, nulls, no rows at all."""
    maps = pa.array([[("k", "v")], [], [("a", "1"), ("b", None)]], pa.map_(pa.string(), pa.string()))
    first = pa.table({
        "Timestamp": pa.array([1, 2, received_ns], pa.int64()).view(pa.timestamp("ns")),
        "Service": pa.array(["a", "b", "a"]).dictionary_encode(),
        "Attributes": maps,
        "Body": [payload.decode(), None, ""],
    })
    second = first.set_column(1, "Service", pa.array(["z", "z", "y"]).dictionary_encode())
    return pa.concat_tables([first, second]), first.slice(0, 0)


def test_arrow_tables_come_back_from_a_worker_whole():
    pool = DecodePool(arrow_tables, workers=1, inline_below=0)
    try:
        pooled = asyncio.run(pool.decode("any", b"payload", 7))
    finally:
        pool.close()
    expected = arrow_tables("any", b"payload", 7)
    assert [t.schema for t in pooled] == [t.schema for t in expected]
    assert [t.to_pylist() for t in pooled] == [t.to_pylist() for t in expected]
    assert pooled[0].column("Service").num_chunks == 2  # chunks kept, each with its own dictionary
    assert pooled[0].column("Service").chunk(1).dictionary.to_pylist() == ["z", "y"]


@pytest.mark.skipif(not hasattr(__import__("fcntl"), "F_GETPIPE_SZ"), reason="pipe sizes are a Linux feature")
def test_the_pipes_to_the_workers_hold_a_whole_request():
    import fcntl
    from pathlib import Path

    from koban.pipeline.decode_pool import PIPE_BYTES

    if int(Path("/proc/sys/fs/pipe-max-size").read_text()) < PIPE_BYTES:
        pytest.skip("this system caps pipes below PIPE_BYTES")
    pool = DecodePool(decode, workers=1)
    try:
        pipes = (pool._pool._call_queue._reader, pool._pool._result_queue._reader)
        assert [fcntl.fcntl(p.fileno(), fcntl.F_GETPIPE_SZ) for p in pipes] == [PIPE_BYTES, PIPE_BYTES]
    finally:
        pool.close()
