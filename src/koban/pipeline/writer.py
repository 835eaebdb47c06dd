"""The one store writer: takes batches from the ingest buffer, merges them and writes
them to the store under the highest lsn of the merge, so the store's applied_lsn says
exactly which WAL entries are stored. On start, `replay` stores what the WAL holds past
applied_lsn, so every acknowledged record is stored exactly once, even after kill -9.

Before each store write the writer records the lsn range it is about to write in
`<wal>/in-flight.json` (fsynced, atomically by rename), and replay's first chunk ends
exactly where that write ended. A store without cross-table transactions (ClickHouse)
makes a write idempotent by deriving insert-deduplication tokens from the lsn, which is
only exact if a write that may have half-happened is repeated with the same records:
so a crash mid-write, then a restart with other batch limits, still stores each record
once (docs/scaling.md, "Exactly once").

A batch the store refuses for good (a permanent StoreError: a value that does not fit
its column) must not wedge ingest: the merge is split into its requests, each written
under its own lsn, and a request the store still refuses is copied to the quarantine
directory and skipped (docs/ingest.md, "Poison batches").
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path

from koban.clock import Clock, SystemClock
from koban.errors import ConfigError, DecodeError, StoreError
from koban.model import Batch
from koban.pipeline.buffer import IngestBuffer
from koban.pipeline.files import fsync_dir, write_durably
from koban.pipeline.wal import WalEntry, WriteAheadLog
from koban.store.base import Store

log = logging.getLogger(__name__)

Decode = Callable[[str, bytes, int], Batch]

IN_FLIGHT_FILE = "in-flight.json"
"""In the WAL directory: {"first_lsn", "last_lsn"} of the latest store write begun."""


class StoreWriter:
    """Owns the writer thread. Counters below are for /metrics."""

    def __init__(
        self,
        store: Store,
        buffer: IngestBuffer,
        wal: WriteAheadLog,
        decode: Decode,
        *,
        batch_max_records: int = 150_000,
        batch_max_delay_s: float = 1.0,
        batch_idle_s: float = 0.05,
        truncate_every_s: float = 5.0,
        clock: Clock | None = None,
        gap_grace_s: float = 1.0,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        quarantine_dir: Path | None = None,
        admit: Callable[[Batch], Batch] | None = None,
    ) -> None:
        """`quarantine_dir` receives the requests the store refuses for good; by default
        `quarantine/` next to the WAL directory (so `<data_dir>/quarantine`). `admit`
        filters each batch before it is stored (the series cap, pipeline/limits.py):
        it runs here because this one thread sees every batch."""
        self.store = store
        self.buffer = buffer
        self.wal = wal
        self.decode = decode
        self.batch_max_records = batch_max_records
        self.batch_max_delay_s = batch_max_delay_s
        self.batch_idle_s = batch_idle_s
        self.truncate_every_s = truncate_every_s
        self.clock = clock or SystemClock()
        self.gap_grace_s = gap_grace_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        if quarantine_dir is None:
            quarantine_dir = wal.directory.parent / "quarantine"
        self.quarantine_dir = Path(quarantine_dir)
        self.admit = admit

        self.batches_written = 0
        self.records_written = 0
        self.records_replayed = 0
        self.append_seconds_total = 0.0
        self.last_append_seconds = 0.0
        self.write_errors_total = 0
        self.last_error: str | None = None
        self.gaps_filled = 0
        self.batches_quarantined = 0
        self.records_quarantined = 0

        self._replayed = False
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._abandon = threading.Event()  # stop() gave up waiting: exit without draining
        self._gap: tuple[int, float] | None = None  # (missing lsn, when first seen)
        self._last_truncate = self.clock.monotonic()
        self._in_flight: tuple[int, int] | None = None  # the range last recorded on disk

    # -- lifecycle ----------------------------------------------------------------

    def replay(self) -> int:
        """Stores every WAL entry after store.applied_lsn(), merged in chunks of up to
        batch_max_records, and points the buffer at the WAL's next lsn. Returns the
        number of records replayed. An entry that fails to decode is logged and skipped
        (it cannot happen for data that was acknowledged, but must not block startup);
        an entry the store refuses for good is quarantined (neither may block startup).
        The first chunk ends at the last lsn of the write that was in flight when the
        previous process stopped (see IN_FLIGHT_FILE), whatever batch_max_records is
        now, so a half-done write is repeated with the same records.
        Raises ConfigError when the WAL is behind the store (open it with
        min_lsn=store.applied_lsn()); a transient StoreError propagates, as does an
        OSError writing the quarantine or the in-flight record (the WAL keeps the data
        either way)."""
        applied = self.store.applied_lsn()
        if self.wal.last_lsn < applied:
            raise ConfigError(
                f"the WAL ends at lsn {self.wal.last_lsn} but the store has applied lsn "
                f"{applied}: open the WAL with min_lsn=store.applied_lsn()"
            )
        # Entries appended while we replay (receivers opened early) go through the
        # buffer instead: the buffer starts right after `end`.
        end = self.wal.last_lsn
        written_before = self.records_written
        boundary = self._unfinished_write(applied)
        chunk: list[tuple[int, Batch]] = []
        records = 0
        with closing(self.wal.replay(applied)) as entries:
            for entry in entries:
                if entry.lsn > end:
                    break
                # an entry that does not decode stays in the chunk as an empty batch, so
                # the write still moves applied_lsn past it
                batch = self._decode(entry)
                if batch is None:
                    batch = Batch()
                chunk.append((entry.lsn, batch))
                records += batch.record_count
                if boundary is not None:
                    if entry.lsn >= boundary:  # the unfinished write, exactly as it was
                        self._store(chunk, retry=False)
                        chunk, records, boundary = [], 0, None
                    continue
                if records >= self.batch_max_records:
                    self._store(chunk, retry=False)
                    chunk, records = [], 0
        if chunk:
            self._store(chunk, retry=False)
        total = self.records_written - written_before
        if total:
            log.info("replayed %d records from the WAL (lsn %d..%d)", total, applied + 1, end)
        self.records_replayed += total
        self.buffer.start_at(end + 1)
        self._replayed = True
        return total

    def _unfinished_write(self, applied: int) -> int | None:
        """The last lsn of the store write that was begun but not finished (its
        last_lsn is past `applied`), from IN_FLIGHT_FILE; None when every recorded
        write finished, or nothing is recorded. An unreadable file is logged and
        treated as none: it can only be a leftover of a crash while writing it, and
        then its write had not begun."""
        path = self.wal.directory / IN_FLIGHT_FILE
        try:
            meta = json.loads(path.read_bytes())
            first, last = int(meta["first_lsn"]), int(meta["last_lsn"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("ignoring unreadable %s: %s", path, e)
            return None
        if last <= applied:
            return None
        if first != applied + 1:
            log.warning(
                "the write in flight at the last stop covered lsn %d..%d but the store has "
                "applied lsn %d; replaying through lsn %d as one write", first, last, applied, last,
            )
        log.info("repeating the unfinished store write of lsn %d..%d", max(first, applied + 1), last)
        return last

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
            if not self._store(items, retry=True):
                return False
        elif self._fill_gap(force=stopping):
            pass
        elif stopping:
            return False
        self._maybe_truncate(force=False)
        return True

    def _collect(self, timeout_s: float) -> list[tuple[int, Batch]]:
        """The next items to write: waits up to `timeout_s` for the first, then keeps
        taking for up to batch_max_delay_s more while the batch is not full and requests
        keep coming (none for batch_idle_s: the batch is written now)."""
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
            more = self.buffer.take(self.batch_max_records - records, min(left, self.batch_idle_s))
            if not more:
                break
            items.extend(more)
            records += sum(b.record_count for _, b in more)
        return items

    def _store(self, items: list[tuple[int, Batch]], *, retry: bool) -> bool:
        """Stores `items` (consecutive (lsn, batch)) merged under the last lsn. When the
        store refuses the merge for good, stores them one lsn at a time instead and
        quarantines each one it still refuses, so applied_lsn always ends at the last
        lsn. With `retry`, transient failures are retried with backoff; without, they
        propagate (StoreError, or OSError from the quarantine). Returns False when
        stop() gave up first."""
        if self.admit is not None:
            items = [(lsn, self.admit(batch)) for lsn, batch in items]
        first, lsn = items[0][0], items[-1][0]
        try:
            merged = Batch.merge([b for _, b in items])
            return self._attempt(partial(self._write, merged, first, lsn), retry, f"store write (lsn {lsn})")
        except StoreError as e:
            if not e.permanent:
                raise
            if len(items) == 1:
                return self._quarantine(lsn, items[0][1], e, retry)
            log.warning(
                "the store refuses the batch of lsn %d..%d for good (%s); writing them one by one",
                items[0][0], lsn, e,
            )
        for one_lsn, batch in items:
            try:
                write = partial(self._write, batch, one_lsn, one_lsn)
                done = self._attempt(write, retry, f"store write (lsn {one_lsn})")
            except StoreError as e:
                if not e.permanent:
                    raise
                done = self._quarantine(one_lsn, batch, e, retry)
            if not done:
                return False
        return True

    def _attempt(self, action: Callable[[], object], retry: bool, what: str) -> bool:
        """Runs `action` once, or with `retry` until it stops raising, backing off
        between attempts. Returns False when stop() gave up first. A permanent
        StoreError is raised at once (retrying cannot help); without `retry` any error is."""
        delay = self.retry_initial_s
        failing = False
        while True:
            try:
                action()
            except Exception as e:
                self.write_errors_total += 1
                permanent = isinstance(e, StoreError) and e.permanent
                if permanent or not retry:
                    raise
                self.last_error = f"{type(e).__name__}: {e}"
                if not failing:
                    log.exception("%s failed; retrying", what)
                    failing = True
                if self._abandon.wait(delay):
                    return False
                delay = min(delay * 2, self.retry_max_s)
                continue
            if failing:
                log.info("%s recovered after %d errors", what, self.write_errors_total)
            self.last_error = None
            return True

    def _quarantine(self, lsn: int, batch: Batch, error: StoreError, retry: bool) -> bool:
        """Sets aside the request at `lsn`, which the store refuses for good: copies its
        WAL entry to the quarantine directory, then moves applied_lsn past it with an
        empty batch. Returns False when stop() gave up first; raises like `_attempt`."""
        save = partial(self._save_quarantined, lsn, str(error))
        if not self._attempt(save, retry, f"quarantining lsn {lsn}"):
            return False
        # an empty batch stores nothing but moves applied_lsn past the refused request
        if not self._attempt(partial(self._write, Batch(), lsn, lsn), retry, f"store write (lsn {lsn})"):
            return False
        self.batches_quarantined += 1
        self.records_quarantined += batch.record_count
        log.error(
            "the store refuses lsn %d (%d records) for good, so it is quarantined in %s: %s",
            lsn, batch.record_count, self.quarantine_dir, error,
        )
        return True

    def _save_quarantined(self, lsn: int, reason: str) -> None:
        """Writes `<lsn>.bin` (the request as received) and then `<lsn>.json` (codec,
        lsn, received_ns, error) under quarantine_dir, fsynced: once applied_lsn moves
        past `lsn` the WAL may delete its copy. Raises OSError when that fails."""
        with closing(self.wal.replay(lsn - 1)) as entries:
            entry = next(entries, None)
        if entry is None or entry.lsn != lsn:
            # only a corrupt WAL gets here; keep what is known about the request
            log.error("lsn %d is not in the WAL: its quarantine record has no payload", lsn)
            entry = WalEntry(lsn, 0, "", b"")
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stem = self.quarantine_dir / f"{lsn:020d}"
        meta = {"lsn": lsn, "codec": entry.codec, "received_ns": entry.received_ns,
                "payload_bytes": len(entry.payload), "error": reason}  # fmt: skip
        # the .json is written last: a .json means its .bin is complete
        write_durably(stem.with_suffix(".bin"), entry.payload)
        write_durably(stem.with_suffix(".json"), json.dumps(meta, indent=2).encode())
        fsync_dir(self.quarantine_dir)

    def _write(self, batch: Batch, first: int, lsn: int) -> int:
        """Records (first, lsn) as in flight, then stores `batch` (the merge of those
        entries) under `lsn`. Raises what store.write raises, or OSError."""
        self._record_in_flight(first, lsn)
        started = self.clock.monotonic()
        self.store.write(batch, lsn)
        took = self.clock.monotonic() - started
        self.last_append_seconds = took
        self.append_seconds_total += took
        self.batches_written += 1
        self.records_written += batch.record_count
        return batch.record_count

    def _record_in_flight(self, first: int, lsn: int) -> None:
        """Makes (first, lsn) the durable IN_FLIGHT_FILE before the store sees the write
        (a retry of the same range does not rewrite it). Raises OSError."""
        if self._in_flight == (first, lsn):
            return
        path = self.wal.directory / IN_FLIGHT_FILE
        write_durably(path, json.dumps({"first_lsn": first, "last_lsn": lsn}).encode())
        fsync_dir(self.wal.directory)
        self._in_flight = (first, lsn)

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
            if not self._store([(gap, batch if batch is not None else Batch())], retry=True):
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
