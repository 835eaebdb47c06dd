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

With `processes` > 1 more processes read the same port (receive/statsd_processes.py),
each datagram going to one of them at random where the kernel allows; each flush first
merges their open windows into this one, so one window is flushed.
DogStatsD events go to the WAL with their own codec (ingest/events.py), for koban_events.
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
from koban.ingest import events as events_codec
from koban.ingest.otlp_encode import encode_logs, encode_metrics
from koban.model import Batch
from koban.pipeline.statsd_aggregator import StatsdAggregator
from koban.receive.statsd_processes import (
    MAX_DATAGRAM_BYTES,
    READS_PER_WAKEUP,
    ReceiverProcess,
    keep_receive_times,
    open_socket,
    receive,
    spread_at_random,
)

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
    datagrams_other_processes: int = 0  # of `datagrams`, those read by the other receiving processes


# The socket is read directly (loop.add_reader), READS_PER_WAKEUP datagrams per wakeup of
# the event loop: asyncio's datagram transport reads one per wakeup, and at 10k+
# datagrams/s the loop's own cost per wakeup (select, callback) outweighed the read.


class StatsdListener:
    """Open with `await start()`; `await flush()` closes a window now; `await stop()`
    flushes what is left and closes the socket."""

    source_allowed: Callable[[object], bool] | None = None
    """Set, datagrams from sources it refuses are dropped and counted (auth/networks.py)."""
    source_networks = ""
    """The networks `source_allowed` admits, as statsd_allowed_networks spells them: what
    the other receiving processes (`processes` > 1) apply."""
    datagrams_refused = 0

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
        processes: int = 1,
    ) -> None:
        """`on_parse_error(reason, n)` is called for every datagram holding bad lines
        (the app wires it to the /metrics counter). With `flush_interval_s` 0 there is
        no timer: windows close only on `flush()` (for tests). `processes` > 1 adds
        receiving processes on the same port (receive/statsd_processes.py); their
        datagrams and parse errors are counted when their windows are taken, at flush."""
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
        self._sock: socket.socket | None = None
        self.processes = processes
        self._receivers: list[ReceiverProcess] = []
        self._inodes: list[int] = []
        self._timer: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self.spread_at_random = False  # datagrams go to a random process, not by sender

    async def start(self) -> None:
        """Bind the socket and start the flush timer. Raises OSError when the address
        cannot be bound."""
        if self.processes > 1 and self.source_allowed is not None and not self.source_networks:
            raise ValueError("source_allowed needs source_networks for the other receiving processes")
        sock = open_socket(self.host, self.port, self.rcvbuf_bytes, reuse_port=self.processes > 1)
        self.rcvbuf_granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.port = sock.getsockname()[1]
        self._inodes = [os.fstat(sock.fileno()).st_ino]
        self._sock = sock
        if self.processes > 1:
            keep_receive_times(sock)  # orders one gauge's updates across processes
        # read while the other processes start (a second or so): until they bind, every
        # datagram comes here, and an unread 8 MiB buffer fills in a fraction of that
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._read_ready)
        try:
            await self._start_receivers()
        except BaseException:
            loop.remove_reader(sock.fileno())
            self._stop_receivers()
            sock.close()
            self._sock = None
            raise
        if self.processes > 1:
            self.spread_at_random = spread_at_random(sock, self.processes)
            if not self.spread_at_random:
                log.info("statsd: cannot spread datagrams at random over the %d receiving processes "
                         "(not Linux, or refused): each client socket stays with one process", self.processes)
        if self.flush_interval_s > 0:
            self._timer = asyncio.create_task(self._flush_loop(), name="koban-statsd-flush")

    async def _start_receivers(self) -> None:
        agg = self.aggregator
        options = {
            "flush_interval_s": agg.flush_interval_s, "default_service": agg.default_service,
            "counter_rates": agg.counter_rates, "gauge_deltas": agg.gauge_deltas, "scale": agg.scale,
            "max_buckets": agg.max_buckets, "max_contexts": agg.max_contexts, "max_events": agg.max_events,
            "gauge_idle_flushes": agg.gauge_idle_flushes,
        }  # fmt: skip
        for _ in range(self.processes - 1):
            receiver = ReceiverProcess(self.host, self.port, self.rcvbuf_bytes, options, self.source_networks)
            self._receivers.append(receiver)
        for receiver in self._receivers:
            await asyncio.to_thread(receiver.wait_ready)
            self._inodes.append(receiver.inode)

    def _stop_receivers(self) -> None:
        for receiver in self._receivers:
            receiver.kill()
        self._receivers = []

    async def _absorb_receivers(self, final: bool = False) -> None:
        """Merge each receiving process's open window into ours, and count what it read."""
        stats = self.stats
        for receiver in list(self._receivers):
            try:
                state, counts = await asyncio.to_thread(receiver.take, final)
            except (EOFError, OSError):
                log.error("a StatsD receiving process is gone; its port share is no longer read")
                self._receivers.remove(receiver)
                continue
            self.aggregator.absorb(state)
            stats.datagrams += counts.datagrams
            stats.datagrams_other_processes += counts.datagrams
            stats.bytes += counts.bytes
            stats.items += counts.items
            self.datagrams_refused += counts.refused
            for reason, n in counts.parse_errors.items():
                stats.parse_errors[reason] = stats.parse_errors.get(reason, 0) + n
                if self.on_parse_error is not None:
                    self.on_parse_error(reason, n)

    def _read_ready(self) -> None:
        """Read what the socket holds, up to READS_PER_WAKEUP datagrams."""
        sock = self._sock
        if sock is None:
            return
        allowed = self.source_allowed
        timed = self.processes > 1
        received_ns = None
        for _ in range(READS_PER_WAKEUP):
            try:
                if timed:
                    data, addr, received_ns = receive(sock)
                elif allowed is None:
                    data = sock.recv(MAX_DATAGRAM_BYTES)
                else:
                    data, addr = sock.recvfrom(MAX_DATAGRAM_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error queued on the socket: count it, go on
                self.stats.socket_errors += 1
                return
            if allowed is not None and not allowed(addr):  # statsd_allowed_networks
                self.datagrams_refused += 1
                continue
            self.receive(data, received_ns)

    def receive(self, data: bytes, received_ns: int | None = None) -> None:
        """Parse one datagram into the current window (what the protocol calls).
        `received_ns`, the kernel's receive time, orders gauge updates across processes."""
        stats = self.stats
        stats.datagrams += 1
        stats.bytes += len(data)
        items, errors = self.aggregator.add_datagram(data, self.clock.now_ns(), received_ns)
        stats.items += items
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
            await self._absorb_receivers()
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
            # not in the middle of a flush: a window taken from a receiving process, or
            # half submitted, would be lost
            async with self._flush_lock:
                self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            async with self._flush_lock:
                await self._absorb_receivers(final=True)
            self._stop_receivers()
            await self.flush()

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for the listener's sockets (receive buffer full),
        from /proc/net/udp{,6}; 0 where that is not available."""
        inodes = {str(i) for i in self._inodes}
        drops = 0
        for path in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                with open(path) as f:
                    next(f, None)
                    for line in f:
                        cols = line.split()
                        if len(cols) >= 13 and cols[9] in inodes:
                            drops += int(cols[12])
            except OSError:
                continue
        return drops


class _Intake(Protocol):
    async def receive(self, codec: str, payload: bytes, *, protocol: str, signal: str) -> Batch: ...


def submit_to(intake: _Intake, max_points: int = 5000) -> Submit:
    """A `submit` that makes each flushed window durable through `intake` (the WAL path
    of every receiver): its metric points as OTLP metrics requests of at most
    `max_points` points, its log records as one OTLP logs request, its DogStatsD events
    as one "koban-events/jsonl" request (koban_events table). Raises what
    `Intake.receive` raises (Overloaded, Unavailable) for the first request refused."""

    async def submit(batch: Batch) -> None:
        for part in _chunks(batch, max_points):
            await intake.receive("otlp-proto/metrics", encode_metrics(part), protocol="statsd", signal="metrics")
        if batch.logs:
            await intake.receive("otlp-proto/logs", encode_logs(batch), protocol="statsd", signal="logs")
        if batch.events:
            payload = events_codec.encode(batch.events)
            await intake.receive(events_codec.CODEC, payload, protocol="statsd", signal="events")

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
