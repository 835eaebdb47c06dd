"""Known records every backend stores, and their builders.

tests/query's fixtures use the same logs and spans (so the answers there can be
checked by hand); metrics add one point of each metric table. Times are within the ten minutes
[START, END) after T0.
"""

from __future__ import annotations

from koban.model import (
    Batch,
    Exemplar,
    ExpHistogramPoint,
    GaugePoint,
    HistogramPoint,
    LogRecord,
    MetricStream,
    Resource,
    Scope,
    Span,
    SpanEvent,
    SpanLink,
    SummaryPoint,
    SumPoint,
)

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000
MS = 1_000_000
START, END = T0, T0 + 600 * S

TRACE_A = "0af7651916cd43dd8448eb211c80319c"
TRACE_B = "4bf92f3577b34da6a3ce929d0e0e4736"

WEB = Resource("web", {"service.name": "web", "host.name": "h1", "deployment.environment.name": "prod"})
CHECKOUT = Resource("checkout", {"service.name": "checkout", "host.name": "h2", "deployment.environment": "staging"})
PAYMENTS = Resource("payments", {"service.name": "payments", "host.name": "h3", "k8s.pod.name": "pay-1"})
SCOPE = Scope("koban.tests", "1.2.3")

# (seconds after T0, resource, severity text, severity number, body, attributes, trace id)
LOG_ROWS: list[tuple[int, Resource, str, int, str, dict[str, str], str]] = [
    (10, WEB, "ERROR", 17, "upstream timeout after 30s", {"http.status_code": "500", "user.id": "7"}, TRACE_A),
    (20, WEB, "INFO", 9, "GET /home ok", {"http.status_code": "200"}, ""),
    (30, CHECKOUT, "", 13, "slow payment 50% of the time", {"http.status_code": "500.0"}, ""),
    (40, CHECKOUT, "WARNING", 0, "retrying_later", {}, ""),
    (50, PAYMENTS, "CRITICAL", 0, "disk full", {"user.id": "8"}, ""),
    (60, PAYMENTS, "", 0, "no level here", {}, ""),
    (70, WEB, "debug", 5, "Cache HIT for key", {"cache": "hit"}, ""),
    (130, WEB, "notice", 0, "Deploy Started", {"version": "2"}, ""),
    (135, WEB, "Err", 0, "TIMEOUT calling payments", {"http.status_code": "504"}, TRACE_B),
]


def log(ts_ns: int, resource: Resource, text: str, number: int, body: str, attrs: dict[str, str],
        trace_id: str = "") -> LogRecord:  # fmt: skip
    span_id = "00f067aa0ba902b7" if trace_id else ""
    return LogRecord(ts_ns, ts_ns, trace_id, span_id, 1 if trace_id else 0, text, number, body, attrs, resource, SCOPE)


def logs() -> list[LogRecord]:
    return [log(T0 + s * S, r, t, n, b, a, tr) for s, r, t, n, b, a, tr in LOG_ROWS]


API = Resource("api", {"service.name": "api", "host.name": "h1"})
DB = Resource("db", {"service.name": "db"})
WORKER = Resource("worker", {"service.name": "worker"})

# API request spans: (seconds after T0, name, duration ms, status)
API_REQUESTS = [
    (5, "GET /a", 10, "STATUS_CODE_OK"),
    (6, "GET /a", 20, "STATUS_CODE_UNSET"),
    (7, "GET /a", 35, "STATUS_CODE_ERROR"),
    (8, "GET /b", 40, "STATUS_CODE_UNSET"),
    (9, "GET /b", 250, "STATUS_CODE_UNSET"),
]
ROOT = "a000000000000001"


def span(start_ns: int, resource: Resource, name: str, kind: str, duration_ms: float,
         status: str = "STATUS_CODE_UNSET", trace_id: str = TRACE_A, span_id: str = "", parent: str = "",
         attrs: dict[str, str] | None = None, events: tuple[SpanEvent, ...] = (),
         links: tuple[SpanLink, ...] = (), message: str = "") -> Span:  # fmt: skip
    return Span(start_ns, int(duration_ms * MS), trace_id, span_id, parent, "", name, kind, status, message,
                attrs or {}, events, links, resource, SCOPE)  # fmt: skip


def spans() -> list[Span]:
    out = [
        span(T0 + s * S, API, name, "SPAN_KIND_SERVER", ms, status, trace_id=TRACE_B, span_id=f"{i + 1:016x}",
             attrs={"http.status_code": "500" if status == "STATUS_CODE_ERROR" else "200"},
             message="boom: Connection Refused" if status == "STATUS_CODE_ERROR" else "")
        for i, (s, name, ms, status) in enumerate(API_REQUESTS)
    ]  # fmt: skip
    out += [
        span(T0 + 100 * S, API, "GET /checkout", "SPAN_KIND_SERVER", 120, span_id=ROOT,
             events=(SpanEvent(T0 + 100 * S + 5 * MS, "cache miss", {"key": "cart:7"}),),
             links=(SpanLink(TRACE_B, "0000000000000001", "", {"why": "retry"}),)),
        span(T0 + 100 * S + MS, API, "render", "SPAN_KIND_INTERNAL", 3, span_id="a000000000000002", parent=ROOT),
        span(T0 + 100 * S + 10 * MS, DB, "SELECT carts", "SPAN_KIND_CLIENT", 80, span_id="a000000000000003",
             parent=ROOT),
        span(T0 + 200 * S, WORKER, "process order", "SPAN_KIND_CONSUMER", 100, trace_id=TRACE_B,
             span_id="b000000000000001"),
        span(T0 + 210 * S, WORKER, "process order", "SPAN_KIND_CONSUMER", 300, "STATUS_CODE_ERROR",
             trace_id=TRACE_B, span_id="b000000000000002"),
    ]  # fmt: skip
    return out


STREAM = MetricStream("http.server.duration", "time to serve", "ms", WEB, SCOPE)
EXEMPLAR = Exemplar(T0 + 5 * S, 12.5, TRACE_A, "00f067aa0ba902b7", {"route": "/home"})


def metric_batch(at_s: int = 30) -> Batch:
    """One point of each metric table at T0 + at_s seconds."""
    t, start = T0 + at_s * S, T0
    attrs = {"route": "/home"}
    return Batch(
        gauges=[GaugePoint(STREAM, attrs, start, t, 0.75, exemplars=(EXEMPLAR,))],
        sums=[SumPoint(STREAM, attrs, start, t, 42.0, 2, True)],
        histograms=[HistogramPoint(STREAM, attrs, start, t, 3, 60.0, (1, 2, 0), (10.0, 100.0), 5.0, 40.0, 2)],
        exp_histograms=[ExpHistogramPoint(STREAM, attrs, start, t, 4, 10.0, 1, 1, -2, (1, 2), 0, (), 0.5, 6.0, 1)],
        summaries=[SummaryPoint(STREAM, attrs, start, t, 5, 50.0, (0.5, 0.99), (9.0, 20.0))],
    )


def everything() -> Batch:
    return metric_batch()._replace(logs=logs(), spans=spans())


# --- metric series (tests/conformance/test_metric_series.py) ------------------------
# 1-minute buckets over [START, END); the expected numbers are worked out there.

def _stream(name: str, resource: Resource, unit: str = "") -> MetricStream:
    return MetricStream(name, "", unit, resource, SCOPE)


HOST_B = Resource("web", {"service.name": "web", "host.name": "h2", "deployment.environment.name": "prod"})


def series_gauges() -> list[GaugePoint]:
    """sys.cpu: web@h1 10, 20 (minute 0) and 30 (minute 1); web@h2 40; db 100 (minute 0)."""
    h1, h2, db = _stream("sys.cpu", WEB), _stream("sys.cpu", HOST_B), _stream("sys.cpu", DB)
    rows = [(h1, 0, 10.0), (h1, 30, 20.0), (h1, 60, 30.0), (h2, 10, 40.0), (db, 20, 100.0)]
    return [GaugePoint(s, {"core": "0"}, 0, T0 + at * S, v) for s, at, v in rows]


def series_delta_counters() -> list[SumPoint]:
    """jobs.done (delta, as StatsD counters): h1 5 and 7 in minute 0, h2 3 in minute 1."""
    h1, h2 = _stream("jobs.done", WEB), _stream("jobs.done", HOST_B)
    rows = [(h1, 10, 5.0), (h1, 20, 7.0), (h2, 70, 3.0)]
    return [SumPoint(s, {}, T0 + (at - 10) * S, T0 + at * S, v, 1, True) for s, at, v in rows]


def series_cumulative_counters() -> list[SumPoint]:
    """http_requests_total (cumulative, as Prometheus sends it: no start time).
    Series a: 90 a minute before START, 100, 110 (minute 0), 130, 5 = reset (minute 1),
    25 (minute 2). Series b started at T0 + 5 s: 7 (minute 0), 9 (minute 1)."""
    a = _stream("http_requests_total", Resource("api", {"service.name": "api"}))
    b = _stream("http_requests_total", Resource("api", {"service.name": "api", "host.name": "h9"}))
    rows = [(a, 0, -60, 90.0), (a, 0, 0, 100.0), (a, 0, 30, 110.0), (a, 0, 60, 130.0), (a, 0, 90, 5.0),
            (a, 0, 150, 25.0), (b, T0 + 5 * S, 40, 7.0), (b, T0 + 5 * S, 100, 9.0)]  # fmt: skip
    return [SumPoint(s, {"code": "200"}, st, T0 + at * S, v, 2, True) for s, st, at, v in rows]


def series_histograms() -> list[HistogramPoint]:
    """rpc.latency (cumulative explicit buckets 10, 100, 1000; started at T0):
    counts (1, 2, 1, 0) sum 300 at 30 s, (1, 4, 3, 0) sum 900 at 90 s."""
    s = _stream("rpc.latency", API, "ms")
    return [
        HistogramPoint(s, {}, T0, T0 + 30 * S, 4, 300.0, (1, 2, 1, 0), (10.0, 100.0, 1000.0), 5.0, 500.0, 2),
        HistogramPoint(s, {}, T0, T0 + 90 * S, 8, 900.0, (1, 4, 3, 0), (10.0, 100.0, 1000.0), 5.0, 500.0, 2),
    ]


def timer_values(host: int) -> list[float]:
    """Deterministic, spread latencies in ms for one host (600 values, 0.5 to ~2000)."""
    return [0.5 + ((i * 7919 + host * 104729) % 1000) ** 1.2 / (1 + host) for i in range(600)]


def series_exp_histograms() -> list[ExpHistogramPoint]:
    """checkout.time (delta, as StatsD timers): three hosts' timer_values in minute 0,
    the third at scale 6 so merging must downscale."""
    from koban.ingest.sketch import ExpHistogram

    out = []
    for host in range(3):
        h = ExpHistogram(scale=7 if host < 2 else 6)
        for v in timer_values(host):
            h.add(v)
        s = _stream("checkout.time", Resource("checkout", {"service.name": "checkout", "host.name": f"t{host}"}), "ms")
        out.append(ExpHistogramPoint(s, {}, T0, T0 + 10 * S, aggregation_temporality=1, **h.fields()))
    return out


def series_summaries() -> list[SummaryPoint]:
    """rpc.summary (cumulative, started at T0): count 4 sum 40 at 30 s, count 10 sum 130 at 90 s."""
    s = _stream("rpc.summary", API, "ms")
    return [SummaryPoint(s, {}, T0, T0 + 30 * S, 4, 40.0, (0.5,), (9.0,)),
            SummaryPoint(s, {}, T0, T0 + 90 * S, 10, 130.0, (0.5,), (12.0,))]  # fmt: skip


def series_cumulative_exp_histograms() -> list[ExpHistogramPoint]:
    """queue.wait (cumulative, as the OTel SDK exports exponential histograms; started at
    T0): timer_values(3) by 30 s, then timer_values(3) + timer_values(4) by 90 s, at
    scale 7 first and 6 after, as the SDK downscales a growing histogram."""
    from koban.ingest.sketch import ExpHistogram

    s = _stream("queue.wait", Resource("worker", {"service.name": "worker"}), "ms")
    h = ExpHistogram(scale=7)
    for v in timer_values(3):
        h.add(v)
    first = ExpHistogramPoint(s, {}, T0, T0 + 30 * S, aggregation_temporality=2, **h.fields())
    for v in timer_values(4):
        h.add(v)
    h.downscale(1)
    return [first, ExpHistogramPoint(s, {}, T0, T0 + 90 * S, aggregation_temporality=2, **h.fields())]


def metric_series_batch() -> Batch:
    return Batch(
        gauges=series_gauges(),
        sums=series_delta_counters() + series_cumulative_counters(),
        histograms=series_histograms(),
        exp_histograms=series_exp_histograms() + series_cumulative_exp_histograms(),
        summaries=series_summaries(),
    )
