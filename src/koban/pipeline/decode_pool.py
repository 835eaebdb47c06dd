"""Decoding requests in worker processes.

Decoding OTLP protobuf is pure Python and holds the GIL for most of its time (about
8 us per log record, mostly the protobuf library building an object per field), so in
the server process it competes with the event loop and the store writer. A worker
process decodes beside them on another core; the decoded Batch comes back pickled,
its Arrow tables as IPC streams, which costs about a tenth of decoding it. Small
payloads are decoded in place: the round trip would cost more than the work.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.reduction import ForkingPickler

import pyarrow as pa

from koban.model import Batch

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("koban.pipeline.decode")

Decode = Callable[[str, bytes, int], Batch]

INLINE_BELOW_BYTES = 16 * 1024


def _worker_init(parent_pid: int) -> None:
    """Each worker ignores Ctrl-C (the server shuts it down) and exits on its own when
    the server is gone, even after a kill -9 that gave the server no time to stop it."""
    import koban.ingest  # noqa: F401  (imported now, not by the first request)
    from koban.store.columns import warm_up

    warm_up()
    ForkingPickler.register(pa.Table, _table_as_ipc)

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="koban-parent-watch", daemon=True).start()


def _table_as_ipc(table: pa.Table) -> tuple[Callable[[bytes], pa.Table], tuple[bytes]]:
    """How a worker pickles an Arrow table for the server: as one Arrow IPC stream.
    Pickling the table itself costs ~17 us per column in Python, whatever its size,
    which made it half of the cost of sending a decoded batch back."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return _table_from_ipc, (sink.getvalue().to_pybytes(),)


def _table_from_ipc(stream: bytes) -> pa.Table:
    return pa.ipc.open_stream(stream).read_all()  # its buffers point into `stream`


PIPE_BYTES = 1 << 20
"""Pipe size asked for between the server and its workers: a request (~250 KB for
1,000 log records) or its decoded batch (~330 KB) then crosses in one write and one
read. Through Linux's default 64 KiB pipe it took six or more, each waking the other
side, and the server's reading thread spent three times the CPU (benchmarks/README.md)."""


def _widen_pipes(pool: ProcessPoolExecutor) -> None:
    """Asks for PIPE_BYTES on the pool's request and result pipes (Linux only; the pool
    works as well without, only slower)."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # None without fcntl too
    if set_size is None:
        return
    # Private attributes of concurrent.futures (3.11-3.13): missing ones are skipped.
    for queue in (getattr(pool, "_call_queue", None), getattr(pool, "_result_queue", None)):
        reader = getattr(queue, "_reader", None)
        if reader is None:
            continue
        try:
            fcntl.fcntl(reader.fileno(), set_size, PIPE_BYTES)
        except OSError as e:  # above /proc/sys/fs/pipe-max-size, or not a pipe
            log.debug("decode pool pipe keeps its size: %s", e)


class DecodePool:
    def __init__(
        self, decode: Decode, workers: int, *, worker_decode: Decode | None = None,
        inline_below: int = INLINE_BELOW_BYTES,
    ) -> None:
        """`decode` runs in this process (small payloads, or `workers` 0); the workers
        run `worker_decode` (default: `decode`), which may do more for the same result
        (prepare the batch for the store) since its time is not this process's. Both
        must pickle: module-level functions or partials of them."""
        self._decode = decode
        self._worker_decode = worker_decode or decode
        self._workers = workers
        self._inline_below = inline_below
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the server process has threads (gRPC, the writer, DuckDB).
        pool = ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
        _widen_pipes(pool)
        return pool

    async def decode(self, codec: str, payload: bytes, received_ns: int) -> Batch:
        """The decoded batch; raises what `decode` raises (DecodeError for bad input).
        If a worker dies, the pool is rebuilt and this payload is decoded in place."""
        if self._pool is None or len(payload) < self._inline_below:
            return self._decode(codec, payload, received_ns)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, self._worker_decode, codec, payload, received_ns)
        except BrokenProcessPool:
            log.error("a decode worker died; starting new ones and decoding this request in place")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._decode(codec, payload, received_ns)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
