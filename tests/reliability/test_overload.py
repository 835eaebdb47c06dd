"""Clients offering many times what a small queue takes, over HTTP and gRPC at once and
with decode workers on: refusals carry a retry hint, the memory of the server and its
decode workers stays bounded the whole time (sampled, not only at the end), queries
answer within a time bound during the load, and once it stops every acknowledged
record is stored exactly once.

tests/e2e/test_overload.py checks each protocol alone with in-process decoding and
RSS at the end; this is the mixed, sampled, query-during-load complement.
"""

from __future__ import annotations

import threading
import time

import grpc
import httpx
import psutil

from reliability.clients import Acks, assert_exactly_once, send_grpc, send_http, stored_bodies

SERVICE = "overload"
LOAD_S = 6.0  # at least this long, and until REFUSALS requests were refused (60 s at most)
REFUSALS = 10
QUERY_BOUND_S = 10.0
# Growth over the warmed-up baseline (server + decode workers, ~560-575 MiB of RSS counted
# per process): at most 200 MiB, and the whole tree under the 1 GiB the issue allows.
# What may legitimately be added under load: the queue (1,000 records, under 1 MiB
# decoded), request bodies being read or decoded (10 clients x ~90 KiB, plus a pickled
# Batch per decode worker), DuckDB's buffers for a few MiB of rows and allocator slack:
# tens of MiB (32 and 68 MiB measured on a shared, loaded machine). A queue that grew without
# bound, or refused requests kept around, would cross 200 MiB quickly at full speed.
RSS_HEADROOM = 200 * 2**20
WARM_UP_S = 3.0  # of load from four clients, after the decode workers exist
RSS_CEILING = 2**30
QUERIES = [
    ("/api/logs", {"q": f"service:{SERVICE}", "from": "1h", "limit": "50"}),
    ("/api/timeseries", {"source": "logs", "q": f"service:{SERVICE}", "from": "1h", "by": "service"}),
]


def _tree_rss(pid: int) -> int:
    """RSS of the server and its children (the decode workers)."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def _warm_up(server, acks: Acks) -> int:
    """Large requests from several threads at once, so the decode workers (spawned on
    demand) are running and have decoded for a while before the baseline is taken; the
    baseline is the highest RSS of the tree while they did. A worker that was still
    importing its libraries when a single reading was taken made the baseline up to
    150 MiB low, and the test fail on a fast machine."""
    stop = threading.Event()
    threads = [threading.Thread(target=send_http, args=(server.url, f"w{c}", SERVICE, stop, acks),
                                kwargs={"per_request": 400, "padding": 200}) for c in range(4)]
    for t in threads:
        t.start()
    server.wait_for(lambda: len(psutil.Process(server.proc.pid).children()) >= 2 and acks.statuses[200] >= 4,
                    timeout_s=60, what="decode workers to start")
    highest = 0
    until = time.monotonic() + WARM_UP_S
    while time.monotonic() < until:
        highest = max(highest, _tree_rss(server.proc.pid))
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(60)
    return max(highest, _tree_rss(server.proc.pid))


def test_overload_is_refused_with_bounded_memory_while_queries_still_answer(make_server):
    # A 1,000-record queue and ten clients sending 400-record requests back to back:
    # three requests waiting fill it, so while the writer is busy storing a batch (it
    # gathers for up to 500 ms) the clients offer several times what it drains,
    # whatever the machine's speed.
    server = make_server(queue_max_records=1000, decode_workers=2, batch_max_delay_ms=500, batch_idle_ms=500).start()
    acks = Acks()
    baseline = _warm_up(server, acks)
    stop = threading.Event()
    samples: list[int] = []
    query_times: list[tuple[str, int, float]] = []

    def sample_memory() -> None:
        while not stop.wait(0.1):
            samples.append(_tree_rss(server.proc.pid))

    def query() -> None:
        with httpx.Client(base_url=server.url, timeout=QUERY_BOUND_S * 3) as http:
            while not stop.is_set():
                for path, params in QUERIES:
                    started = time.monotonic()
                    r = http.get(path, params=params)
                    query_times.append((path, r.status_code, time.monotonic() - started))
                stop.wait(0.2)

    def send(name: str) -> None:
        # 400 records of ~200 bytes: over the 16 KiB line, so decode workers do the work
        send_http(server.url, name, SERVICE, stop, acks, per_request=400, padding=200)

    threads = [threading.Thread(target=send, args=(f"h{c}",)) for c in range(8)]
    threads += [threading.Thread(target=send_grpc, args=(f"127.0.0.1:{server.grpc_port}", f"g{c}", SERVICE, stop, acks),
                                 kwargs={"per_request": 400, "padding": 200}) for c in range(2)]
    threads += [threading.Thread(target=sample_memory), threading.Thread(target=query)]
    for t in threads:
        t.start()
    started = time.monotonic()
    while time.monotonic() - started < 60:
        time.sleep(0.2)
        if time.monotonic() - started >= LOAD_S and len(acks.retry_after) >= REFUSALS:
            break
    stop.set()
    for t in threads:
        t.join(60)
        assert not t.is_alive()

    http_codes = {s for s in acks.statuses if isinstance(s, int)}
    grpc_codes = {s for s in acks.statuses if isinstance(s, grpc.StatusCode)}
    assert http_codes <= {200, 429, 503} and 429 in http_codes, acks.statuses
    # a deadline can pass on a loaded machine: the request is decoded before the queue is
    # checked, so refusals cost a decode too; such a call is simply not acknowledged
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
    assert grpc_codes <= allowed and grpc.StatusCode.OK in grpc_codes, acks.statuses
    assert acks.retry_after and all(r is not None for r in acks.retry_after), "every refusal carries a retry hint"
    assert all(r == "details" or int(r) >= 1 for r in acks.retry_after)
    assert len(acks.retry_after) >= REFUSALS

    peak = max(samples)
    assert peak < min(baseline + RSS_HEADROOM, RSS_CEILING), (
        f"peak RSS {peak / 2**20:.0f} MiB over a baseline of {baseline / 2**20:.0f} MiB "
        f"({acks.offered_bytes / 2**20:.0f} MiB offered)"
    )

    assert query_times, "no query finished during the load"
    assert all(status == 200 for _, status, _ in query_times), query_times
    slowest = max(took for _, _, took in query_times)
    assert slowest < QUERY_BOUND_S, f"a query took {slowest:.1f}s under load: {query_times}"

    print(f"overload: baseline {baseline / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, "
          f"{acks.offered_bytes / 2**20:.0f} MiB offered, {dict(acks.statuses)}, slowest query {slowest:.2f}s")
    assert server.stop() == 0  # drains the queue into the store
    assert_exactly_once(acks.acked, stored_bodies(server.data_dir, SERVICE))

