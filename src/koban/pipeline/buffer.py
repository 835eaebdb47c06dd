"""The bounded ingest buffer between the receivers and the store writer.

A receiver reserves room before it writes the WAL (so an overloaded koban answers 429
before spending a disk write), then puts the decoded batch under the lsn the WAL gave
it. The writer takes batches out in lsn order.

Ordering: concurrent requests may put slightly out of lsn order, and the writer must
never store lsn N+1 before N (the store would then report applied_lsn = N+1 and a
replay would skip N). So items are keyed by lsn and `take` hands out only the
contiguous run starting at the next expected lsn. This works because the WAL never
leaves a gap among acknowledged lsns (a failed group's lsns are reused). An lsn can
still go missing when a receiver loses its batch after the WAL acknowledged it (its
task was cancelled while awaiting the append): `head_gap` shows such a hole, the
writer fills it from the WAL and calls `skip_through`; a put that arrives after that is
dropped (its records are already stored) and counted in `late_puts_dropped`.
"""

from __future__ import annotations

import threading
import time

from koban.errors import Overloaded
from koban.model import Batch

RETRY_AFTER_S = 1


class Reservation:
    """Room for `n` records, held from before the WAL append until put or release."""

    __slots__ = ("n", "_settled")

    def __init__(self, n: int) -> None:
        self.n = n
        self._settled = False


class IngestBuffer:
    """A bounded, thread-safe, lsn-ordered queue of decoded batches."""

    def __init__(self, max_records: int) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be >= 1, got {max_records}")
        self.max_records = max_records
        self._cond = threading.Condition()
        self._items: dict[int, Batch] = {}
        self._next: int | None = None  # the lsn take() hands out next
        self._queued = 0
        self._reserved = 0
        self.rejected_total = 0
        self.late_puts_dropped = 0

    @property
    def depth(self) -> int:
        """Records queued plus records reserved by requests in flight."""
        return self._queued + self._reserved

    @property
    def queued_records(self) -> int:
        return self._queued

    @property
    def next_lsn(self) -> int | None:
        """The lsn `take` returns next; None before `start_at`."""
        return self._next

    def refuse_when_full(self) -> None:
        """Raises Overloaded when no record fits now: lets a receiver refuse a request
        before paying to decode it (under overload, decoding refused requests would
        take the time the store writer needs to drain the queue)."""
        with self._cond:
            depth = self._queued + self._reserved
            if depth >= self.max_records:
                self.rejected_total += 1
                raise Overloaded(
                    f"ingest buffer full ({depth} of {self.max_records} records)",
                    retry_after=RETRY_AFTER_S,
                )

    def reserve(self, n: int) -> Reservation:
        """Returns room for `n` records. Raises Overloaded when it does not fit; a request
        larger than the whole buffer fits only when the buffer is empty."""
        with self._cond:
            depth = self._queued + self._reserved
            if depth + n > self.max_records and depth > 0:
                self.rejected_total += 1
                raise Overloaded(
                    f"ingest buffer full ({depth} of {self.max_records} records)",
                    retry_after=RETRY_AFTER_S,
                )
            self._reserved += n
            return Reservation(n)

    def release(self, reservation: Reservation) -> None:
        """Gives the room back (the WAL append failed). A no-op after put or release."""
        with self._cond:
            if reservation._settled:
                return
            reservation._settled = True
            self._reserved -= reservation.n
            self._cond.notify_all()

    def put(self, reservation: Reservation, lsn: int, batch: Batch) -> None:
        """Queues `batch` (now durable in the WAL under `lsn`) in place of its reservation.
        Raises ValueError when the reservation was already used or `lsn` is queued."""
        with self._cond:
            if reservation._settled:
                raise ValueError("reservation already put or released")
            if lsn in self._items:
                raise ValueError(f"lsn {lsn} is already queued")
            reservation._settled = True
            self._reserved -= reservation.n
            if self._next is not None and lsn < self._next:
                self.late_puts_dropped += 1  # the writer already stored it from the WAL
            else:
                self._items[lsn] = batch
                self._queued += batch.record_count
            self._cond.notify_all()

    def start_at(self, lsn: int) -> None:
        """Sets the first lsn `take` hands out (the WAL's last lsn + 1 after replay)."""
        with self._cond:
            self._next = lsn
            self._discard_below(lsn)
            self._cond.notify_all()

    def skip_through(self, lsn: int) -> None:
        """Marks every lsn <= `lsn` as stored by other means (filled from the WAL);
        drops any such item still queued."""
        with self._cond:
            if self._next is None or lsn >= self._next:
                self._next = lsn + 1
                self._discard_below(lsn + 1)
                self._cond.notify_all()

    def head_gap(self) -> int | None:
        """The expected lsn when it is missing while later lsns are queued; else None."""
        with self._cond:
            if self._next is None or not self._items or self._next in self._items:
                return None
            return self._next

    def take(self, max_records: int, timeout_s: float) -> list[tuple[int, Batch]]:
        """Waits up to `timeout_s` for the next lsn, then returns the contiguous run of
        (lsn, batch) from it, up to about `max_records` records (at least one item).
        Returns [] on timeout, or when `start_at` was not called yet."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._next is None or self._next not in self._items:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            out: list[tuple[int, Batch]] = []
            records = 0
            while self._next in self._items:
                batch = self._items[self._next]
                if out and records + batch.record_count > max_records:
                    break
                del self._items[self._next]
                out.append((self._next, batch))
                records += batch.record_count
                self._next += 1
            self._queued -= records
            self._cond.notify_all()
            return out

    def wait_until_empty(self, timeout_s: float) -> bool:
        """True once nothing is queued or reserved; False after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queued + self._reserved > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _discard_below(self, lsn: int) -> None:
        for old in [k for k in self._items if k < lsn]:
            self._queued -= self._items.pop(old).record_count
