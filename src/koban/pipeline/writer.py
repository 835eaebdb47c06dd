"""The one store writer: takes batches from the ingest buffer, merges them and writes
them to the store under the highest lsn of the merge, so the store's applied_lsn says
exactly which WAL entries are stored. On start, `replay` stores what the WAL holds past
applied_lsn, so every acknowledged record is stored exactly once, even after kill -9.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import closing

from koban.clock import Clock, SystemClock
from koban.errors import ConfigError, DecodeError
from koban.model import Batch
from koban.pipeline.buffer import IngestBuffer
from koban.pipeline.wal import WalEntry, WriteAheadLog
from koban.store.base import Store

log = logging.getLogger(__name__)

Decode = Callable[[str, bytes, int], Batch]


class StoreWriter:
    """Owns the writer thread. Counters below are for /metrics."""

    def __init__(
        self,
        store: Store,
        buffer: IngestBuffer,
        wal: WriteAheadLog,
        decode: Decode,
        *,
        batch_max_records: int = 50_000,
        batch_max_delay_s: float = 0.2,
        truncate_every_s: float = 5.0,
        clock: Clock | None = None,
        gap_grace_s: float = 1.0,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self.store = store
        self.buffer = buffer
        self.wal = wal
        self.decode = decode
        self.batch_max_records = batch_max_records
        self.batch_max_delay_s = batch_max_delay_s
        self.truncate_every_s = truncate_every_s
        self.clock = clock or SystemClock()
        self.gap_grace_s = gap_grace_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s

        self.batches_written = 0
        self.records_written = 0
        self.records_replayed = 0
        self.append_seconds_total = 0.0
        self.last_append_seconds = 0.0
        self.write_errors_total = 0
        self.last_error: str | None = None
        self.gaps_filled = 0

        self._replayed = False
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._abandon = threading.Event()  # stop() gave up waiting: exit without draining
        self._gap: tuple[int, float] | None = None  # (missing lsn, when first seen)
        self._last_truncate = self.clock.monotonic()

    # -- lifecycle ----------------------------------------------------------------

    def replay(self) -> int:
        """Stores every WAL entry after store.applied_lsn(), merged in chunks of up to
        batch_max_records, and points the buffer at the WAL's next lsn. Returns the
        number of records replayed. An entry that fails to decode is logged and skipped
        (it cannot happen for data that was acknowledged, but must not block startup).
        Raises ConfigError when the WAL is behind the store (open it with
        min_lsn=store.applied_lsn()); a store error propagates (the WAL keeps the data)."""
        applied = self.store.applied_lsn()
        if self.wal.last_lsn < applied:
            raise ConfigError(
                f"the WAL ends at lsn {self.wal.last_lsn} but the store has applied lsn "
                f"{applied}: open the WAL with min_lsn=store.applied_lsn()"
            )
        # Entries appended while we replay (receivers opened early) go through the
        # buffer instead: the buffer starts right after `end`.
        end = self.wal.last_lsn
        total = 0
        chunk: list[Batch] = []
        records, chunk_lsn = 0, 0
        with closing(self.wal.replay(applied)) as entries:
            for entry in entries:
                if entry.lsn > end:
                    break
                batch = self._decode(entry)
                chunk_lsn = entry.lsn
                if batch is not None:
                    chunk.append(batch)
                    records += batch.record_count
                if records >= self.batch_max_records:
                    total += self._write(Batch.merge(chunk), chunk_lsn)
                    chunk, records = [], 0
                    chunk_lsn = 0
        if chunk_lsn:
            # may be an empty batch when the last entries did not decode: it still
            # moves applied_lsn past them
            total += self._write(Batch.merge(chunk) if chunk else Batch(), chunk_lsn)
        if total:
            log.info("replayed %d records from the WAL (lsn %d..%d)", total, applied + 1, end)
        self.records_replayed += total
        self.buffer.start_at(end + 1)
        self._replayed = True
        return total

    def start(self) -> None:
        """Starts the writer thread (replaying first if `replay` was not called)."""
        if self._thread is not None:
            raise RuntimeError("the store writer is already started")
        if not self._replayed:
            self.replay()
        self._thread = threading.Thread(target=self._run, name="koban-store-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Writes what is queued, then stops the thread. If that takes longer than
        `timeout_s` (the store keeps failing) it gives up: the WAL still holds the data
        and the next start replays it."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning(
                "store writer did not drain in %.1fs (%s); the WAL keeps the rest for replay",
                timeout_s, self.last_error,
            )
            self._abandon.set()
            thread.join(timeout_s)
        self._thread = None

    # -- the writer thread ------------------------------------------------------------

    def _run(self) -> None:
        while not self._abandon.is_set():
            try:
                if not self._step():
                    break
            except Exception as e:  # a bug here must not silently end ingest
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("store writer loop failed; continuing")
                self._abandon.wait(self.retry_initial_s)
        self._maybe_truncate(force=True)

    def _step(self) -> bool:
        """One round: write what is ready, fill a stuck gap, truncate. False when done."""
        stopping = self._stopping.is_set()
        items = self._collect(timeout_s=0.0 if stopping else self.batch_max_delay_s)
        if items:
            lsn = items[-1][0]
            if not self._write_retrying(Batch.merge([b for _, b in items]), lsn):
                return False
        elif self._fill_gap(force=stopping):
            pass
        elif stopping:
            return False
        self._maybe_truncate(force=False)
        return True

    def _collect(self, timeout_s: float) -> list[tuple[int, Batch]]:
        """The next items to write: waits up to `timeout_s` for the first, then keeps
        taking for up to batch_max_delay_s more while the batch is not full."""
        items = self.buffer.take(self.batch_max_records, timeout_s)
        if not items:
            return items
        records = sum(b.record_count for _, b in items)
        # real time, not self.clock: this bounds how long we block on the buffer
        deadline = time.monotonic() + self.batch_max_delay_s
        while records < self.batch_max_records and not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = self.buffer.take(self.batch_max_records - records, left)
            if not more:
                break
            items.extend(more)
            records += sum(b.record_count for _, b in more)
        return items

    def _write_retrying(self, batch: Batch, lsn: int) -> bool:
        """Writes until the store takes it, backing off between attempts. False when
        stop() gave up first."""
        delay = self.retry_initial_s
        failing = False
        while True:
            try:
                self._write(batch, lsn)
            except Exception as e:  # any store failure: keep the batch and retry
                self.write_errors_total += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if not failing:
                    log.exception("store write failed (lsn %d, %d records); retrying", lsn, batch.record_count)
                    failing = True
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * 2, self.retry_max_s)
                continue
            if failing:
                log.info("store write recovered after %d errors", self.write_errors_total)
            self.last_error = None
            return True

    def _write(self, batch: Batch, lsn: int) -> int:
        started = self.clock.monotonic()
        self.store.write(batch, lsn)
        took = self.clock.monotonic() - started
        self.last_append_seconds = took
        self.append_seconds_total += took
        self.batches_written += 1
        self.records_written += batch.record_count
        return batch.record_count

    def _fill_gap(self, *, force: bool) -> bool:
        """Stores the missing head lsn from the WAL once it has been missing for
        gap_grace_s (at once when `force`). True when it filled one."""
        gap = self.buffer.head_gap()
        now = self.clock.monotonic()
        if gap is None:
            self._gap = None
            return False
        if self._gap is None or self._gap[0] != gap:
            self._gap = (gap, now)
        if not force and now - self._gap[1] < self.gap_grace_s:
            return False
        with closing(self.wal.replay(gap - 1)) as entries:
            entry = next(entries, None)
        if entry is None or entry.lsn != gap:
            log.error("lsn %d is neither queued nor in the WAL: skipping it", gap)
        else:
            log.warning("lsn %d was acknowledged but never queued: storing it from the WAL", gap)
            batch = self._decode(entry)
            if not self._write_retrying(batch if batch is not None else Batch(), gap):
                return False
            self.gaps_filled += 1
        self.buffer.skip_through(gap)
        self._gap = None
        return True

    def _maybe_truncate(self, *, force: bool) -> None:
        now = self.clock.monotonic()
        if not force and now - self._last_truncate < self.truncate_every_s:
            return
        self._last_truncate = now
        try:
            self.wal.truncate_through(self.store.applied_lsn())
        except Exception:
            log.exception("WAL truncation failed; will retry")

    def _decode(self, entry: WalEntry) -> Batch | None:
        try:
            return self.decode(entry.codec, entry.payload, entry.received_ns)
        except DecodeError as e:
            log.error("WAL entry %d (%s) does not decode, skipping it: %s", entry.lsn, entry.codec, e)
            return None
        except Exception:  # a decoder bug: same outcome, but with the traceback
            log.exception("WAL entry %d (%s) does not decode, skipping it", entry.lsn, entry.codec)
            return None
