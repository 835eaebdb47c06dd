"""Decoding requests in worker processes.

Decoding OTLP protobuf is pure Python and holds the GIL for most of its time (about
8 us per log record, mostly the protobuf library building an object per field), so in
the server process it competes with the event loop and the store writer. A worker
process decodes beside them on another core; the decoded Batch comes back pickled,
which costs about a tenth of decoding it. Small payloads are decoded in place: the
round trip would cost more than the work.
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

from koban.model import Batch

log = logging.getLogger("koban.pipeline.decode")

Decode = Callable[[str, bytes, int], Batch]

INLINE_BELOW_BYTES = 16 * 1024


def _worker_init(parent_pid: int) -> None:
    """Each worker ignores Ctrl-C (the server shuts it down) and exits on its own when
    the server is gone, even after a kill -9 that gave the server no time to stop it."""
    import koban.ingest  # noqa: F401  (imported now, not by the first request)
    from koban.store.columns import warm_up

    warm_up()

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="koban-parent-watch", daemon=True).start()


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
        return ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )

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
