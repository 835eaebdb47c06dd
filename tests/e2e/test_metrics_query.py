"""Metric queries over data sent by real clients to a real `koban serve`: the `statsd`
package (a counter and a timer, through the flush window) and the OpenTelemetry SDK
(a cumulative counter exported twice, and an explicit-bucket histogram), read back
through /api/timeseries, /api/metrics/names and /api/metrics/tags."""

from __future__ import annotations

import math
import socket
import time

import httpx
import statsd
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

TIMER_MS = [float(i) for i in range(1, 201)]  # 1..200 ms
HIST_VALUES = [3.0, 7.0, 12.0, 30.0, 60.0, 80.0, 120.0, 400.0]
OTEL_BOUNDS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)  # the SDK's default


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _received(server, protocol_or_signal: str, at_least: float) -> bool:
    for line in server.client().metrics_text().splitlines():
        if line.startswith("koban_records_received_total") and protocol_or_signal in line:
            if float(line.rsplit(" ", 1)[1]) >= at_least:
                return True
    return False


def _send_statsd(port: int) -> None:
    client = statsd.StatsClient("127.0.0.1", port)
    for _ in range(10):
        client.incr("e2e.orders", 2)
    for ms in TIMER_MS:
        client.timing("e2e.checkout.time", ms)


def _send_otel(server) -> None:
    resource = Resource.create({"service.name": "checkout", "deployment.environment": "prod"})
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=server.url + "/v1/metrics"), export_interval_millis=3_600_000
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("e2e")
    requests = meter.create_counter("e2e.requests")
    latency = meter.create_histogram("e2e.latency", unit="ms")
    requests.add(5, {"route": "/a"})
    requests.add(3, {"route": "/b"})
    for v in HIST_VALUES:
        latency.record(v, {"route": "/a"})
    reader.force_flush()  # first cumulative point: 5 and 3
    requests.add(2, {"route": "/a"})
    provider.shutdown()  # second cumulative point: 7 and 3, exported once more


def _values(body: dict) -> list[float]:
    """The non-null points of the single series: at most one (a 1-day bucket)."""
    (series,) = body["series"]
    points = [v for _, v in series["points"] if v is not None]
    assert len(points) <= 1, body
    return points


def test_metric_queries_answer_what_real_clients_sent(make_server):
    port = _udp_port()
    server = make_server(statsd_port=port, statsd_flush_interval_s=0.5).start()
    _send_statsd(port)
    _send_otel(server)
    server.wait_for(lambda: _received(server, 'protocol="statsd"', 2), what="a flushed StatsD window")
    server.wait_for(lambda: _received(server, 'signal="metrics"', 6), what="the OTLP metric exports")
    now_s = int(time.time())
    base = {"source": "metrics", "from": str(now_s - 3600), "to": str(now_s + 3600)}

    def get(path: str, **params: str) -> dict:
        r = httpx.get(server.url + path, params={**base, **params}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def one(query: str) -> float:
        # wait until the writer has stored what was acknowledged
        return server.wait_for(lambda: _values(get("/api/timeseries", query=query)), what=query)[0]

    exact = sorted(TIMER_MS)
    # StatsD counter: delta sums, counted
    assert one("sum:e2e.orders{*}.rollup(sum, 86400)") == 20.0
    # StatsD timer: exponential histograms, p99 within 1% of the exact nearest-rank p99
    p99 = one("p99:e2e.checkout.time{*}.rollup(sum, 86400)")
    assert math.isclose(p99, exact[math.ceil(0.99 * len(exact)) - 1], rel_tol=0.01)
    assert one("avg:e2e.checkout.time{*}.rollup(sum, 86400)") == sum(TIMER_MS) / len(TIMER_MS)
    # OTel cumulative counter exported twice: increases add up to what was added
    assert one("sum:e2e.requests{service:checkout,env:prod}.rollup(sum, 86400)") == 10.0
    by_route = get("/api/timeseries", query="sum:e2e.requests{*} by {route}.rollup(sum, 86400)")
    totals = {s["labels"]["route"]: sum(v for _, v in s["points"] if v) for s in by_route["series"]}
    assert totals == {"/a": 7.0, "/b": 3.0}
    # OTel explicit histogram: count and avg exact, p50 inside the bucket holding the median
    assert one("count:e2e.latency{*}.rollup(sum, 86400)") == len(HIST_VALUES)
    assert one("avg:e2e.latency{route:/a}.rollup(sum, 86400)") == sum(HIST_VALUES) / len(HIST_VALUES)
    p50 = one("p50:e2e.latency{*}.rollup(sum, 86400)")
    assert 25 <= p50 <= 50  # ranks 4 and 5 (30 and 60) are in (25, 50] and (50, 75]; rank 4 -> (25, 50]

    names = get("/api/metrics/names", q="E2E.")["metrics"]
    assert {(m["name"], m["type"]) for m in names} == {
        ("e2e.orders", "sum"), ("e2e.orders.rate", "gauge"), ("e2e.checkout.time", "exponential_histogram"),
        ("e2e.requests", "sum"), ("e2e.latency", "histogram"),
    }  # fmt: skip
    tags = get("/api/metrics/tags", metric="e2e.requests")["tags"]
    assert (tags["service"], tags["env"], sorted(tags["route"])) == (["checkout"], ["prod"], ["/a", "/b"])


def test_bad_metric_queries_get_a_400_that_points_at_the_problem(server):
    r = httpx.get(server.url + "/api/timeseries", params={"source": "metrics", "query": "p99:x{service:web"})
    assert r.status_code == 400
    assert (r.json()["position"], r.json()["expected"]) == (17, "',' or '}'")
    r = httpx.get(server.url + "/api/timeseries", params={"source": "metrics"})
    assert r.status_code == 400 and "metric" in r.json()["error"]
    r = httpx.get(server.url + "/api/metrics/tags")
    assert r.status_code == 400
    r = httpx.get(server.url + "/api/timeseries", params={"source": "metrics", "metric": "x", "agg": "p42"})
    assert r.status_code == 400 and "p99" in r.json()["error"]  # the message names the allowed ones
    r = httpx.get(server.url + "/api/timeseries", params={"source": "metrics", "metric": "no.such.metric"})
    assert r.status_code == 200 and r.json()["metric_type"] is None
