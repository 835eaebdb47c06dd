"""The one door every receiver hands a request through.

Order matters for the durability promise: a full queue refuses at once (429, before
the cost of decoding), the payload is decoded (a bad one gets a 4xx and nothing is
kept), capacity is reserved (a full queue answers 429 before anything is
written), the raw request goes to the write-ahead log and is fsynced, then the decoded
batch joins the queue for the store writer. Only after all of that does the receiver
send its 2xx.
"""

from __future__ import annotations

from koban.clock import Clock
from koban.errors import DecodeError, KobanError, Overloaded, PayloadTooLarge
from koban.ingest.guard import Guarded
from koban.model import Batch
from koban.pipeline.buffer import IngestBuffer
from koban.pipeline.decode_pool import DecodePool
from koban.pipeline.wal import WriteAheadLog
from koban.selfmetrics import SelfMetrics


class Intake:
    def __init__(
        self, buffer: IngestBuffer, wal: WriteAheadLog, decoder: DecodePool, clock: Clock, metrics: SelfMetrics,
        *, max_records: int = 0,
    ) -> None:
        """`decoder` yields a Batch, or a Guarded (ingest/guard.py) whose counts go to
        /metrics. `max_records` > 0 refuses larger requests whole (PayloadTooLarge)."""
        self.buffer = buffer
        self.wal = wal
        self.decoder = decoder
        self.clock = clock
        self.metrics = metrics
        self.max_records = max_records

    async def receive(self, codec: str, payload: bytes, *, protocol: str, signal: str) -> Batch:
        """Decode `payload` with `codec`, make it durable and queue it for the store.

        Returns the decoded batch (its `rejected` count is what partial success reports)
        once the request is fsynced in the WAL. Raises DecodeError for a malformed
        payload, PayloadTooLarge for more than `max_records` records, Overloaded when
        the queue is full and Unavailable when the WAL cannot be written; in every one
        of those cases nothing was kept.
        """
        received_ns = self.clock.now_ns()
        try:
            self.buffer.refuse_when_full()
        except Overloaded:
            self.metrics.requests.labels(protocol, "overloaded").inc()
            raise
        try:
            decoded = await self.decoder.decode(codec, payload, received_ns)
        except DecodeError:
            self.metrics.requests.labels(protocol, "malformed").inc()
            raise
        guarded = decoded if isinstance(decoded, Guarded) else None
        batch = guarded.batch if guarded is not None else decoded
        sent = batch.record_count + batch.rejected
        if self.max_records and sent > self.max_records:
            self.metrics.requests.labels(protocol, "too_many_records").inc()
            self.metrics.rejected.labels(signal, protocol, "too_many_records").inc(sent)
            raise PayloadTooLarge(
                f"the request holds {sent} records, over the limit of {self.max_records} per request "
                "(max_records_per_request); send smaller batches",
                records=sent, max_records_per_request=self.max_records,
            )
        try:
            await self._keep(codec, payload, received_ns, batch)
        except KobanError as exc:
            self.metrics.requests.labels(protocol, type(exc).__name__.lower()).inc()
            self.metrics.rejected.labels(signal, protocol, type(exc).__name__.lower()).inc(batch.record_count)
            raise
        self.metrics.requests.labels(protocol, "accepted").inc()
        self.metrics.received.labels(signal, protocol).inc(batch.record_count)
        if guarded is not None:
            self._count_guarded(guarded)
        if batch.rejected:
            self.metrics.rejected.labels(signal, protocol, "invalid_record").inc(batch.rejected)
        return batch

    def _count_guarded(self, guarded: Guarded) -> None:
        for rule, n in guarded.scrubbed.items():
            self.metrics.scrubbed.labels(rule).inc(n)
        if guarded.attributes_dropped:
            self.metrics.attributes_dropped.inc(guarded.attributes_dropped)
        if guarded.values_truncated:
            self.metrics.attribute_values_truncated.inc(guarded.values_truncated)

    async def _keep(self, codec: str, payload: bytes, received_ns: int, batch: Batch) -> None:
        if batch.record_count == 0:
            return  # an empty or fully rejected request: nothing to keep
        reservation = self.buffer.reserve(batch.record_count)
        try:
            lsn = await self.wal.append(codec, payload, received_ns)
        except BaseException:
            self.buffer.release(reservation)
            raise
        self.buffer.put(reservation, lsn, batch)
