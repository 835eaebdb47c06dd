"""Run by test_pipeline_duckdb.py: the whole ingest pipeline (WAL, buffer, store writer,
DuckDB) fed by concurrent "receivers"; prints the tag of every acknowledged request
until it is killed. Log bodies are `<tag>.<j>`."""

from __future__ import annotations

import asyncio
import json
import sys

from koban.errors import Overloaded
from koban.model import EMPTY_SCOPE, Batch, LogRecord, Resource
from koban.pipeline.buffer import IngestBuffer
from koban.pipeline.wal import WriteAheadLog
from koban.pipeline.writer import StoreWriter
from koban.store.duckdb import DuckDBStore

RESOURCE = Resource("kill9", {})


def decode(codec: str, payload: bytes, received_ns: int) -> Batch:
    bodies = json.loads(payload)
    return Batch(
        logs=tuple(
            LogRecord(received_ns, received_ns, "", "", 0, "INFO", 9, b, {}, RESOURCE, EMPTY_SCOPE) for b in bodies
        )
    )


async def receiver(wal: WriteAheadLog, buffer: IngestBuffer, run: str, worker: int) -> None:
    seq = 0
    while True:
        tag = f"{run}-{worker}-{seq}"
        payload = json.dumps([f"{tag}.{j}" for j in range(5)]).encode()
        batch = decode("kill9", payload, seq)
        try:
            res = buffer.reserve(batch.record_count)
        except Overloaded:
            await asyncio.sleep(0.01)
            continue
        try:
            lsn = await wal.append("kill9", payload, seq)
        except BaseException:
            buffer.release(res)
            raise
        buffer.put(res, lsn, batch)
        sys.stdout.write(f"{tag}\n")
        sys.stdout.flush()
        seq += 1


async def main(directory: str, run: str) -> None:
    store = DuckDBStore(f"{directory}/koban.duckdb")
    wal = WriteAheadLog(f"{directory}/wal", min_lsn=store.applied_lsn(), segment_bytes=64 * 1024)
    buffer = IngestBuffer(5_000)
    writer = StoreWriter(store, buffer, wal, decode, batch_max_records=500, batch_max_delay_s=0.01, truncate_every_s=0.05)
    writer.start()  # replays what the previous run left
    print("ready", flush=True)
    await asyncio.gather(*(receiver(wal, buffer, run, w) for w in range(8)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
