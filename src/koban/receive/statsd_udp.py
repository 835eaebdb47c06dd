"""The StatsD/DogStatsD UDP listener.

Datagrams are parsed (`koban.ingest.statsd`) and folded into a `StatsdAggregator` in
the event loop as they arrive; every flush interval the window is closed and the
flushed Batch handed to `submit`, an async callable the app provides (it encodes the
batch as OTLP and sends it through `Intake.receive`, so what StatsD sent is made
durable by the same WAL as everything else). A line that does not parse is counted by
reason and dropped; nothing a client sends stops the listener.

UDP has no back-pressure, so losses are counted where they happen: datagrams the
kernel dropped because the socket buffer was full (`kernel_drops()`, from
/proc/net/udp on Linux), and points lost because `submit` failed (`stats.points_dropped`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from koban.clock import Clock
from koban.ingest.otlp_encode import encode_logs, encode_metrics
from koban.ingest.statsd import parse_datagram
from koban.model import Batch
from koban.pipeline.statsd_aggregator import StatsdAggregator

log = logging.getLogger("koban.receive.statsd")

Submit = Callable[[Batch], Awaitable[object]]
OnParseError = Callable[[str, int], None]

DEFAULT_RCVBUF_BYTES = 8 * 1024 * 1024


@dataclass
class StatsdStats:
    datagrams: int = 0
    bytes: int = 0
    items: int = 0  # samples, events and service checks parsed
    parse_errors: dict[str, int] = field(default_factory=dict)
    flushes: int = 0
    points_submitted: int = 0
    points_dropped: int = 0  # flushed but refused by submit
    socket_errors: int = 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, listener: StatsdListener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.listener.receive(data)

    def error_received(self, exc: Exception) -> None:
        self.listener.stats.socket_errors += 1


class StatsdListener:
    """Open with `await start()`; `await flush()` closes a window now; `await stop()`
    flushes what is left and closes the socket."""

    def __init__(
        self,
        host: str,
        port: int,
        submit: Submit,
        clock: Clock,
        *,
        aggregator: StatsdAggregator | None = None,
        flush_interval_s: float = 10.0,
        rcvbuf_bytes: int = DEFAULT_RCVBUF_BYTES,
        on_parse_error: OnParseError | None = None,
    ) -> None:
        """`on_parse_error(reason, n)` is called for every datagram holding bad lines
        (the app wires it to the /metrics counter). With `flush_interval_s` 0 there is
        no timer: windows close only on `flush()` (for tests)."""
        self.host = host
        self.port = port
        self.submit = submit
        self.clock = clock
        self.aggregator = aggregator or StatsdAggregator(clock.now_ns(), flush_interval_s=flush_interval_s or 10.0)
        self.flush_interval_s = flush_interval_s
        self.rcvbuf_bytes = rcvbuf_bytes
        self.on_parse_error = on_parse_error
        self.stats = StatsdStats()
        self.rcvbuf_granted = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    async def start(self) -> None:
        """Bind the socket and start the flush timer. Raises OSError when the address
        cannot be bound."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # the kernel may grant less (net.core.rmem_max); what it granted is kept
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.rcvbuf_granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.port = sock.getsockname()[1]
        self._inode = os.fstat(sock.fileno()).st_ino
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        if self.flush_interval_s > 0:
            self._timer = asyncio.create_task(self._flush_loop(), name="koban-statsd-flush")

    def receive(self, data: bytes) -> None:
        """Parse one datagram into the current window (what the protocol calls)."""
        stats = self.stats
        stats.datagrams += 1
        stats.bytes += len(data)
        items, errors = parse_datagram(data)
        stats.items += len(items)
        if items:
            self.aggregator.add(items, self.clock.now_ns())
        if errors:
            counted: dict[str, int] = {}
            for e in errors:
                counted[e.reason] = counted.get(e.reason, 0) + 1
            for reason, n in counted.items():
                stats.parse_errors[reason] = stats.parse_errors.get(reason, 0) + n
                if self.on_parse_error is not None:
                    self.on_parse_error(reason, n)

    async def flush(self) -> Batch:
        """Close the current window and submit it; returns the flushed batch (empty
        when nothing came). A failing `submit` is logged and its points counted as
        dropped; it does not raise."""
        async with self._flush_lock:
            batch = self.aggregator.flush(self.clock.now_ns())
            self.stats.flushes += 1
            if batch.record_count == 0:
                return batch
            try:
                await self.submit(batch)
            except Exception as exc:
                self.stats.points_dropped += batch.record_count
                log.warning("statsd: %d flushed records dropped: %s", batch.record_count, exc)
            else:
                self.stats.points_submitted += batch.record_count
            return batch

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # never let one bad window end the timer
                log.exception("statsd flush failed")

    async def stop(self) -> None:
        """Stop listening, then flush the last window."""
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await self.flush()

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for this socket (receive buffer full), from
        /proc/net/udp{,6}; 0 where that is not available."""
        inode = str(getattr(self, "_inode", ""))
        for path in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                with open(path) as f:
                    next(f, None)
                    for line in f:
                        cols = line.split()
                        if len(cols) >= 13 and cols[9] == inode:
                            return int(cols[12])
            except OSError:
                continue
        return 0


class _Intake(Protocol):
    async def receive(self, codec: str, payload: bytes, *, protocol: str, signal: str) -> Batch: ...


def submit_to(intake: _Intake, max_points: int = 5000) -> Submit:
    """A `submit` that makes each flushed window durable through `intake` (the WAL path
    of every receiver): its metric points as OTLP metrics requests of at most
    `max_points` points, its events as one OTLP logs request. Raises what
    `Intake.receive` raises (Overloaded, Unavailable) for the first request refused."""

    async def submit(batch: Batch) -> None:
        for part in _chunks(batch, max_points):
            await intake.receive("otlp-proto/metrics", encode_metrics(part), protocol="statsd", signal="metrics")
        if batch.logs:
            await intake.receive("otlp-proto/logs", encode_logs(batch), protocol="statsd", signal="logs")

    return submit


def _chunks(batch: Batch, max_points: int) -> list[Batch]:
    points = [(name, p) for name in ("gauges", "sums", "exp_histograms") for p in getattr(batch, name)]
    out = []
    for i in range(0, len(points), max_points):
        fields: dict[str, list] = {"gauges": [], "sums": [], "exp_histograms": []}
        for name, p in points[i:i + max_points]:
            fields[name].append(p)
        out.append(Batch(**fields))
    return out
