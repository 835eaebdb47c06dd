"""The StatsD/DogStatsD UDP listener, in-process, fed by the real `statsd` and
`datadog` clients over a socket on 127.0.0.1. Windows close on an explicit flush();
`submit` records what the app would make durable."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import statsd
from datadog.dogstatsd import DogStatsd

from koban.clock import FakeClock
from koban.model import Batch
from koban.receive.statsd_udp import StatsdListener

pytestmark = pytest.mark.timeout(30)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.fail = False

    async def __call__(self, batch: Batch) -> None:
        if self.fail:
            raise RuntimeError("queue full")
        self.batches.append(batch)


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Let the loop run until `check()` holds (datagrams are in flight on loopback)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for datagrams")
        await asyncio.sleep(0.002)


def run(scenario: Callable[[StatsdListener, Recorder, list], object], **options: object) -> None:
    async def main() -> None:
        recorder = Recorder()
        errors: list[tuple[str, int]] = []
        listener = StatsdListener(
            "127.0.0.1", 0, recorder, FakeClock(), flush_interval_s=0,
            on_parse_error=lambda reason, n: errors.append((reason, n)), **options,
        )
        await listener.start()
        try:
            await scenario(listener, recorder, errors)
        finally:
            await listener.stop()

    asyncio.run(main())


def points(batch: Batch) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in [*batch.gauges, *batch.sums, *batch.exp_histograms]:
        out.setdefault(p.stream.name, []).append(p)
    return out


def test_the_statsd_client_sends_every_type_and_the_window_holds_them():
    async def scenario(listener, recorder, errors):
        client = statsd.StatsClient("127.0.0.1", listener.port, prefix="shop")
        client.incr("orders")
        client.incr("orders", 4)
        client.decr("orders")
        client.gauge("queue.depth", 10)
        client.gauge("queue.depth", 3, delta=True)
        client.gauge("temperature", -5)  # the client sends "0|g" then "-5|g" in one datagram
        client.timing("checkout.time", 120)
        client.timing("checkout.time", 80)
        client.set("visitors", "alice")
        client.set("visitors", "bob")
        client.set("visitors", "alice")
        with client.pipeline() as pipe:  # several lines in one datagram
            pipe.incr("orders")
            pipe.timing("checkout.time", 100)
        client.close()
        await until(lambda: listener.stats.datagrams >= 12)
        batch = await listener.flush()
        assert recorder.batches == [batch]
        got = points(batch)
        assert got["shop.orders"][0].value == 5.0
        assert got["shop.orders.rate"][0].value > 0
        assert [p.value for p in got["shop.queue.depth"]] == [13.0]
        assert [p.value for p in got["shop.temperature"]] == [-5.0]
        assert [p.value for p in got["shop.visitors"]] == [2.0]
        [timer] = got["shop.checkout.time"]
        assert (timer.count, timer.sum, timer.min, timer.max) == (3, 300.0, 80.0, 120.0)
        assert timer.stream.resource.service_name == "statsd"
        assert errors == []

    run(scenario)


def test_the_dogstatsd_client_sends_every_type_events_and_service_checks():
    async def scenario(listener, recorder, errors):
        dd = DogStatsd(
            host="127.0.0.1", port=listener.port, disable_telemetry=True, origin_detection_enabled=False,
            constant_tags=["service:checkout", "env:prod"],
        )
        dd.increment("http.requests", tags=["route:/pay", "code:200"])
        dd.increment("http.requests", 2, tags=["code:200", "route:/pay"])
        dd.decrement("inflight")
        dd.gauge("cart.size", 7, tags=["host:web-1"])
        dd.histogram("payload.bytes", 512)
        dd.distribution("http.request.duration", 0.25)
        dd.distribution("http.request.duration", 0.75)
        dd.timing("db.query", 12.5)
        dd.set("active.users", "u1")
        dd.event("Deploy finished", "checkout v1.2\nall green", alert_type="success", tags=["team:pay"])
        dd.service_check("db.reachable", DogStatsd.CRITICAL, message="connection refused", hostname="db-1")
        dd.gauge_with_timestamp("backfill.value", 3, timestamp=1_767_225_000)
        dd.close_socket()
        await until(lambda: listener.stats.items >= 12)
        batch = await listener.flush()
        got = points(batch)
        [requests] = got["http.requests"]
        assert requests.value == 3.0 and requests.attributes == {"route": "/pay", "code": "200"}
        assert requests.stream.resource.service_name == "checkout"
        assert requests.stream.resource.attributes["deployment.environment"] == "prod"
        assert got["inflight"][0].value == -1.0
        [cart] = got["cart.size"]
        assert cart.value == 7.0 and cart.stream.resource.attributes["host.name"] == "web-1"
        [duration] = got["http.request.duration"]
        assert (duration.count, duration.min, duration.max) == (2, 0.25, 0.75)
        assert got["payload.bytes"][0].count == 1
        assert got["db.query"][0].stream.unit == "ms"
        assert got["active.users"][0].value == 1.0
        [check] = got["datadog.service_check"]
        assert check.value == 2.0 and check.attributes["check"] == "db.reachable"
        assert check.attributes["message"] == "connection refused"
        assert check.stream.resource.attributes["host.name"] == "db-1"
        [backfill] = got["backfill.value"]
        assert backfill.time_ns == 1_767_225_000 * 10**9
        [event] = batch.events
        assert (event.title, event.text, event.alert_type) == ("Deploy finished", "checkout v1.2\nall green", "success")
        assert event.tags == {"team": "pay", "service": "checkout", "env": "prod"}
        assert event.service_name == "checkout"
        assert errors == []

    run(scenario)


def test_malformed_datagrams_are_counted_by_reason_and_the_listener_goes_on():
    async def scenario(listener, recorder, errors):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for datagram in (b"\xff\xfe\x00garbage", b"no.type:1\n:1|c\nx:1|zz", b"x:1|c|@7", b"_e{9,9}:short"):
                raw.sendto(datagram, ("127.0.0.1", listener.port))
            raw.sendto(b"still.alive:1|c", ("127.0.0.1", listener.port))
        await until(lambda: listener.stats.datagrams >= 5)
        batch = await listener.flush()
        assert [p.stream.name for p in batch.sums] == ["still.alive"]
        assert listener.stats.parse_errors == {
            "not_utf8": 1, "bad_line": 1, "empty_name": 1, "unknown_type": 1, "bad_sample_rate": 1, "bad_event": 1,
        }
        assert sorted(errors) == sorted(listener.stats.parse_errors.items())

    run(scenario)


def test_a_refused_flush_is_counted_and_the_next_window_still_goes_out():
    async def scenario(listener, recorder, errors):
        client = statsd.StatsClient("127.0.0.1", listener.port)
        client.incr("a")
        await until(lambda: listener.stats.datagrams >= 1)
        recorder.fail = True
        await listener.flush()
        assert listener.stats.points_dropped == 2  # the count and its rate
        recorder.fail = False
        client.incr("b")
        client.close()
        await until(lambda: listener.stats.datagrams >= 2)
        await listener.flush()
        assert [p.stream.name for p in recorder.batches[0].sums] == ["b"]
        assert listener.stats.points_submitted == 2

    run(scenario)


def test_stopping_flushes_the_last_window_and_drops_are_readable():
    async def scenario(listener, recorder, errors):
        assert listener.rcvbuf_granted > 0
        assert listener.kernel_drops() == 0
        client = statsd.StatsClient("127.0.0.1", listener.port)
        client.incr("last")
        client.close()
        await until(lambda: listener.stats.datagrams >= 1)
        await listener.stop()
        assert [p.stream.name for p in recorder.batches[0].sums] == ["last"]

    run(scenario)


def test_datagrams_the_kernel_drops_are_counted_not_silent():
    async def scenario(listener, recorder, errors):
        sent = 500
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for _ in range(sent):  # the loop cannot read meanwhile: the small buffer overflows
                raw.sendto(b"burst:1|c\n" * 100, ("127.0.0.1", listener.port))
        await until(lambda: listener.stats.datagrams + listener.kernel_drops() >= sent)
        assert listener.kernel_drops() > 0
        assert listener.stats.datagrams + listener.kernel_drops() == sent
        batch = await listener.flush()
        assert batch.sums[0].value == listener.stats.datagrams * 100

    run(scenario, rcvbuf_bytes=4096)


def test_a_flushed_window_goes_through_the_wal_like_any_otlp_request(tmp_path):
    from koban import ingest
    from koban.pipeline.buffer import IngestBuffer
    from koban.pipeline.decode_pool import DecodePool
    from koban.pipeline.intake import Intake
    from koban.pipeline.wal import WriteAheadLog
    from koban.receive.statsd_udp import submit_to
    from koban.selfmetrics import SelfMetrics

    wal = WriteAheadLog(tmp_path / "wal")
    clock = FakeClock()
    intake = Intake(IngestBuffer(10_000), wal, DecodePool(ingest.decode, 0), clock, SelfMetrics())

    async def main() -> Batch:
        listener = StatsdListener("127.0.0.1", 0, submit_to(intake, max_points=2), clock, flush_interval_s=0)
        await listener.start()
        dd = DogStatsd(host="127.0.0.1", port=listener.port, disable_telemetry=True, origin_detection_enabled=False)
        dd.increment("req", tags=["service:web"])
        dd.gauge("g", 2)
        dd.distribution("lat", 12.0)
        dd.event("Deploy", "done")
        dd.close_socket()
        await until(lambda: listener.stats.items >= 4)
        batch = await listener.flush()
        await listener.stop()
        assert listener.stats.points_dropped == 0
        return batch

    try:
        flushed = asyncio.run(main())
        entries = list(wal.replay(0))
    finally:
        wal.close()
    assert [e.codec for e in entries] == ["otlp-proto/metrics", "otlp-proto/metrics", "koban-events/jsonl"]
    replayed = Batch.merge([ingest.decode(e.codec, e.payload, e.received_ns) for e in entries])
    assert len(replayed.events) == 1
    for field in ("gauges", "sums", "exp_histograms", "events"):
        assert sorted(getattr(replayed, field), key=repr) == sorted(getattr(flushed, field), key=repr), field
