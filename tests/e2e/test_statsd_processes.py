"""A second StatsD receiving process on the same port (SO_REUSEPORT): the kernel spreads
datagrams over both (at random, with the BPF program; else by client socket), and every
window of the other process is merged into the server's, so sums, counts, sets, gauges
and sketches come out as if one process had read everything."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from koban.clock import FakeClock
from koban.ingest.sketch import merge, quantile
from koban.model import Batch
from koban.receive.statsd_processes import spread_at_random
from koban.receive.statsd_udp import StatsdListener

pytestmark = pytest.mark.timeout(60)

CLIENTS = 40  # sockets, so the kernel's hash of source ports reaches both processes


async def _read_all(listener: StatsdListener, datagrams: int, timeout_s: float = 20.0) -> None:
    """Flush until every one of `datagrams` was read by one process or the other (the
    other's are counted when its window is taken)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while listener.stats.datagrams < datagrams and loop.time() < deadline:
        await listener.flush()
        await asyncio.sleep(0.02)  # datagrams still in flight on loopback


def _run(scenario) -> tuple[StatsdListener, list[Batch]]:
    """Run `scenario(listener)` on a 2-process listener, then stop it; the listener and
    every window it flushed (the last one at stop)."""
    windows: list[Batch] = []

    async def submit(batch: Batch) -> None:
        windows.append(batch)

    async def main() -> StatsdListener:
        listener = StatsdListener("127.0.0.1", 0, submit, FakeClock(), flush_interval_s=0, processes=2)
        await listener.start()
        try:
            await scenario(listener)
        finally:
            await listener.stop()
        return listener

    return asyncio.run(main()), windows


def _send(port: int, datagrams: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for d in datagrams:
            s.sendto(d, ("127.0.0.1", port))


def test_two_processes_on_one_port_count_every_line_once():
    per_client = 25

    async def scenario(listener: StatsdListener) -> None:
        for c in range(CLIENTS):
            lines = [f"requests:2|c|#route:/r{c % 3}\nlatency:{i + 1}|ms".encode() for i in range(per_client)]
            _send(listener.port, lines)
        _send(listener.port, [b"bad-line"] * 5)
        await _read_all(listener, CLIENTS * per_client + 5)

    listener, windows = _run(scenario)
    assert listener.stats.datagrams == CLIENTS * per_client + 5
    assert 0 < listener.stats.datagrams_other_processes < listener.stats.datagrams  # both read a share
    assert sum(p.value for w in windows for p in w.sums) == 2.0 * CLIENTS * per_client
    assert sum(p.count for w in windows for p in w.exp_histograms) == CLIENTS * per_client
    assert listener.stats.parse_errors == {"bad_line": 5}


def test_a_merged_window_holds_one_sketch_per_series_with_exact_quantiles():
    values = list(range(1, CLIENTS * 10 + 1))

    async def scenario(listener: StatsdListener) -> None:
        for c in range(CLIENTS):
            lines = "\n".join(f"latency:{v}|ms|#env:prod" for v in values[c * 10:(c + 1) * 10])
            _send(listener.port, [lines.encode()])
        await _read_all(listener, CLIENTS)

    _, windows = _run(scenario)
    assert all(len(w.exp_histograms) == 1 for w in windows)  # both processes' shares in one point
    merged = merge([p for w in windows for p in w.exp_histograms])
    assert merged.count == len(values) and merged.min == 1 and merged.max == len(values)
    exact_p90 = values[int(0.9 * len(values)) - 1]
    assert abs(quantile(merged, 0.9) - exact_p90) / exact_p90 < 0.01


async def _drained(listener: StatsdListener, timeout_s: float = 20.0) -> None:
    """Wait until no socket of the port holds a datagram (what the other process read
    is in its window once its socket is empty: it reads and adds in one step)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    inodes = {str(i) for i in listener._inodes}
    while loop.time() < deadline:
        await asyncio.sleep(0.05)  # the event loop reads the server's own socket meanwhile
        queued = 0
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[9] in inodes:
                    queued += int(cols[4].split(":")[1], 16)  # rx_queue
        if queued == 0:
            return


@pytest.mark.skipif(sys.platform != "linux", reason="random spreading is a Linux BPF program")
def test_one_client_socket_reaches_both_processes_and_gauges_sets_and_counters_come_out_right():
    n = 300

    async def scenario(listener: StatsdListener) -> None:
        assert listener.spread_at_random
        datagrams = [f"fuel.{i % 10}:{i}|g\nlevel:+1|g\nusers:u{i % 50}|s\nreq:1|c".encode() for i in range(1, n + 1)]
        _send(listener.port, [b"level:100|g"] + datagrams)  # one socket: one source address
        await _drained(listener)
        await listener.flush()
        await _read_all(listener, n + 1)

    listener, windows = _run(scenario)
    assert listener.stats.datagrams == n + 1
    assert 0 < listener.stats.datagrams_other_processes < n + 1  # one sender, both processes
    [first, *_] = [w for w in windows if w.record_count]
    gauges = {p.stream.name: p.value for p in first.gauges}
    for k in range(10):  # the last value sent, though either process may have read it
        assert gauges[f"fuel.{k}"] == max(i for i in range(1, n + 1) if i % 10 == k)
    assert gauges["level"] == 100 + n  # the deltas of both processes, after the set value
    assert gauges["users"] == 50
    assert [p.value for p in first.sums] == [n]


def test_without_a_reuseport_group_nothing_is_spread_and_nothing_breaks():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        assert spread_at_random(s, 2) is False
