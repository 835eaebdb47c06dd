"""Prometheus scrape by a real `koban serve`: apps exposing metrics with the real
prometheus_client (in this process, on free ports), scraped every second as koban.toml
says; what arrived is read back from the DuckDB file after the server stops."""

from __future__ import annotations

import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, start_http_server

from e2e.conftest import free_port

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "prom_text"


class App:
    """A prometheus_client registry served on a free port (the app being scraped)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.registry = r = CollectorRegistry()
        self.requests = Counter("shop_requests", "Requests served.", ["path", "code"], registry=r)
        self.in_flight = Gauge("shop_in_flight", "Requests in flight.", registry=r)
        self.latency = Histogram("shop_latency_seconds", "Request latency.", ["path"], buckets=(0.1, 0.5, 1.0),
                                 registry=r)
        self.size = Summary("shop_response_bytes", "Response sizes.", registry=r)
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=r)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _toml(job: str, targets: list[str], interval: str = "500ms", **extra: str) -> str:
    quoted = ", ".join(f'"{t}"' for t in targets)
    lines = [f'[[scrape_jobs]]\njob_name = "{job}"\ntargets = [{quoted}]\nscrape_interval = "{interval}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def _metric(server, name: str, protocol: str = "prom-scrape") -> float:
    """A sample of koban's own /metrics (0 when absent)."""
    total = 0.0
    for line in server.client().metrics_text().splitlines():
        if line.startswith(name) and f'protocol="{protocol}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _db(server):
    return duckdb.connect(str(server.data_dir / "koban.duckdb"), read_only=True)


class Target:
    """A hand-written exposition served on a free port; records the Accept headers it got."""

    def __init__(self, body: bytes = b"", content_type: str = "text/plain; version=0.0.4") -> None:
        self.body, self.content_type, self.accepts = body, content_type, []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                target.accepts.append(self.headers.get("Accept", ""))
                body = target.body
                self.send_response(200)
                self.send_header("Content-Type", target.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


OPENMETRICS_BODY = b"""# TYPE build info
build_info{version="1.2.3"} 1
# TYPE queue_depth gauge
# UNIT queue_depth_items items
queue_depth_items 12 1767225600.250
# TYPE jobs counter
# HELP jobs Jobs run.
jobs_total{kind="x"} 42 # {trace_id="abc"} 1.0 1767225600.0
jobs_created{kind="x"} 1767225000.5
# EOF
"""
TEXT_BODY = b'# TYPE temperature gauge\ntemperature{room="a\\"b"} -3.5 1767225600250\n'
CORPUS_FILES = sorted(CORPUS.glob("*.txt"))
# one file per reason is served (tests/ingest/test_prom_text.py parses them all)
SERVED = list({p.name.split("--")[0]: p for p in CORPUS_FILES}.values())


def _serve_next(target: Target, server, body: bytes, content_type: str = "text/plain; version=0.0.4") -> None:
    """Serve `body` from now on and wait until koban has fetched it twice (on a loaded
    machine one scrape may time out: koban then keeps nothing of it)."""
    target.body, target.content_type = body, content_type
    seen = len(target.accepts)  # the handler counts a request before it reads the body
    server.wait_for(lambda: len(target.accepts) >= seen + 2, what="two scrapes of the new body")


class Scenario(SimpleNamespace):
    """What the module's one koban saw: its targets, its /metrics at the end, its store."""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """One `koban serve` (starting one costs seconds on a loaded machine) scraping every
    target of this module every 500 ms: a prometheus_client app and a dead address in
    job "shop"; hand-written expositions in jobs "orders" (a counter that resets), "om"
    (OpenMetrics), "text" (0.0.4) and "bad" (the malformed corpus, then a good body)."""
    from e2e.conftest import KobanServer

    tmp = tmp_path_factory.mktemp("scrape")
    app = App()
    app.requests.labels("/checkout", "200").inc(7)
    app.requests.labels("/cart", "500").inc(2)
    app.in_flight.set(3)
    for v in (0.05, 0.3, 0.3, 2.0):
        app.latency.labels("/checkout").observe(v)
    app.size.observe(100)
    app.size.observe(300)
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    orders = Target(b"# TYPE orders counter\norders_total 10\n")
    om = Target(OPENMETRICS_BODY, "application/openmetrics-text; version=1.0.0; charset=utf-8")
    text = Target(TEXT_BODY)
    bad = Target(b"good 1\n")
    config = (
        _toml("shop", [f"127.0.0.1:{app.port}", dead], labels='{ env = "test" }')
        + _toml("orders", [orders.address]) + _toml("om", [om.address]) + _toml("text", [text.address])
        + _toml("bad", [bad.address])
    )
    server = KobanServer(tmp / "data", tmp / "server.log", config_toml=config, retention_metrics_days=100_000)
    try:
        server.start()
        server.wait_for(lambda: len(orders.accepts) >= 2, what="two scrapes")
        _serve_next(orders, server, b"# TYPE orders counter\norders_total 25\n")
        _serve_next(orders, server, b"# TYPE orders counter\norders_total 3\n")  # the app restarted
        for path in SERVED:
            content_type = "application/openmetrics-text; version=1.0.0" if ".om." in path.name else None
            _serve_next(bad, server, path.read_bytes(), *([content_type] if content_type else []))
        _serve_next(bad, server, b"good 2\n")
        server.wait_for(lambda: _metric(server, "koban_ingest_requests_total") >= 60, what="the scrapes kept")
        metrics = server.client().metrics_text()
        health = server.client().health()
        assert server.stop() == 0
        yield Scenario(server=server, app=app, dead=dead, orders=orders, om=om, text=text, bad=bad,
                       metrics=metrics, health=health)
    finally:
        server.stop()
        app.stop()
        for t in (orders, om, text, bad):
            t.stop()


def test_counters_gauges_histograms_and_summaries_arrive_with_their_types(scenario):
    app = scenario.app
    target = f"127.0.0.1:{app.port}"

    with _db(scenario.server) as db:
        rows = db.execute(
            "SELECT Attributes, Value, IsMonotonic, AggregationTemporality, ServiceName, "
            "ResourceAttributes['service.instance.id'], MetricDescription, ScopeName "
            "FROM otel_metrics_sum WHERE MetricName = 'shop_requests_total' ORDER BY TimeUnix DESC LIMIT 2"
        ).fetchall()
        by_path = {r[0]["path"]: r for r in rows}
        assert by_path["/checkout"][0] == {"path": "/checkout", "code": "200", "instance": target, "env": "test"}
        assert by_path["/checkout"][1:] == (7.0, True, 2, "shop", target, "Requests served.", "koban.prometheus.scrape")
        assert by_path["/cart"][1] == 2.0
        gauge = db.execute(
            "SELECT Value FROM otel_metrics_gauge WHERE MetricName = 'shop_in_flight' ORDER BY TimeUnix DESC"
        ).fetchone()
        assert gauge == (3.0,)
        hist = db.execute(
            "SELECT Count, Sum, BucketCounts, ExplicitBounds, Attributes['path'] FROM otel_metrics_histogram "
            "WHERE MetricName = 'shop_latency_seconds' ORDER BY TimeUnix DESC"
        ).fetchone()
        assert hist[0] == 4 and math.isclose(hist[1], 2.65)
        assert hist[2:] == ([1, 2, 0, 1], [0.1, 0.5, 1.0], "/checkout")
        summary = db.execute(
            "SELECT Count, Sum FROM otel_metrics_summary WHERE MetricName = 'shop_response_bytes' ORDER BY TimeUnix DESC"
        ).fetchone()
        assert summary == (2, 400.0)
        # prometheus_client's `_created` values are start times, not series of their own
        created = db.execute("SELECT count(*) FROM otel_metrics_gauge WHERE MetricName LIKE '%_created'").fetchone()
        assert created == (0,)
        starts = db.execute(
            "SELECT DISTINCT epoch_ns(StartTimeUnix) FROM otel_metrics_sum "
            "WHERE MetricName = 'shop_requests_total' AND Attributes['path'] = '/checkout'"
        ).fetchall()
        assert len(starts) == 1 and abs(starts[0][0] - app.requests.labels("/checkout", "200")._created * 1e9) < 1e6


def _up(db, instance: str) -> list[float]:
    return [r[0] for r in db.execute(
        "SELECT Value FROM otel_metrics_gauge WHERE MetricName = 'up' AND Attributes['instance'] = ? ORDER BY TimeUnix",
        [instance],
    ).fetchall()]


def test_a_dead_target_is_up_0_and_does_not_stop_the_live_one(scenario):
    live = f"127.0.0.1:{scenario.app.port}"

    with _db(scenario.server) as db:
        assert set(_up(db, scenario.dead)) == {0.0} and len(_up(db, scenario.dead)) >= 2
        assert 1.0 in _up(db, live)[-3:]  # (one scrape may time out on a loaded machine)
        scraped = db.execute(
            "SELECT MetricName, Value, Attributes, ServiceName FROM otel_metrics_gauge "
            "WHERE MetricName IN ('scrape_samples_scraped', 'scrape_duration_seconds') "
            "AND Attributes['instance'] = ? ORDER BY TimeUnix DESC LIMIT 2", [scenario.orders.address],
        ).fetchall()
        values = {r[0]: r[1] for r in scraped}
        assert values["scrape_samples_scraped"] == 1.0
        assert 0 < values["scrape_duration_seconds"] < 1
        assert scraped[0][2] == {"instance": scenario.orders.address} and scraped[0][3] == "orders"


def test_a_counter_reset_starts_a_new_start_time(scenario):
    with _db(scenario.server) as db:
        rows = db.execute(
            "SELECT Value, epoch_ns(StartTimeUnix), epoch_ns(TimeUnix) FROM otel_metrics_sum "
            "WHERE MetricName = 'orders_total' ORDER BY TimeUnix",
        ).fetchall()
    before = [r for r in rows if r[0] in (10.0, 25.0)]
    after = [r for r in rows if r[0] == 3.0]
    assert {r[0] for r in before} == {10.0, 25.0} and after
    assert len({r[1] for r in before}) == 1, "no reset while the value grows"
    assert before[0][1] == before[0][2], "a new series starts at its first scrape"
    assert len({r[1] for r in after}) == 1
    assert after[0][1] == after[0][2] > before[-1][2], "the reset point starts a new run"


def test_openmetrics_is_asked_for_first_and_read_as_openmetrics(scenario):
    accept = scenario.om.accepts[0]

    assert accept.startswith("application/openmetrics-text;version=1.0.0,")
    assert "text/plain;version=0.0.4;q=0.5" in accept
    with _db(scenario.server) as db:
        depth = db.execute(
            "SELECT Value, epoch_ns(TimeUnix), MetricUnit FROM otel_metrics_gauge WHERE MetricName = 'queue_depth_items'"
        ).fetchall()
        assert depth[0] == (12.0, 1_767_225_600_250_000_000, "items")  # OpenMetrics times are seconds
        jobs = db.execute(
            "SELECT Value, epoch_ns(StartTimeUnix), MetricDescription FROM otel_metrics_sum WHERE MetricName = 'jobs_total'"
        ).fetchall()
        assert jobs[0] == (42.0, 1_767_225_000_500_000_000, "Jobs run.")  # started at its _created time
        assert db.execute("SELECT Attributes['version'] FROM otel_metrics_gauge WHERE MetricName = 'build_info'"
                          ).fetchone() == ("1.2.3",)


def test_the_text_format_reads_timestamps_as_milliseconds(scenario):
    with _db(scenario.server) as db:
        row = db.execute("SELECT Value, epoch_ns(TimeUnix), Attributes['room'] FROM otel_metrics_gauge "
                         "WHERE MetricName = 'temperature'").fetchone()
    assert row == (-3.5, 1_767_225_600_250_000_000, 'a"b')


def test_malformed_expositions_are_counted_by_reason_and_the_scraper_carries_on(scenario):
    reasons = {p.name.split("--")[0] for p in SERVED}

    for reason in reasons:
        assert f'protocol="prom-scrape",reason="{reason}"' in scenario.metrics, reason
    assert scenario.health["status"] == "ok"
    with _db(scenario.server) as db:
        ups = _up(db, scenario.bad.address)
        assert 0.0 in ups  # not_utf8 / missing_eof fail the whole scrape
        assert 1.0 in ups[len(ups) - ups[::-1].index(0.0):], "up again after the failed scrapes"
        good = db.execute("SELECT Value FROM otel_metrics_gauge WHERE MetricName = 'good' ORDER BY TimeUnix").fetchall()
        assert good[-1] == (2.0,)
        kept = db.execute(
            "SELECT count(*) FROM (SELECT TimeUnix FROM otel_metrics_sum WHERE MetricName = 'ok_total' "
            "UNION ALL SELECT TimeUnix FROM otel_metrics_gauge WHERE MetricName = 'ok_total')"
        ).fetchone()[0]
        assert kept >= len(SERVED) - 2, "the good line of a body with a bad line is kept"


# --- configuration -------------------------------------------------------------------

BAD_JOBS = [
    ({"targets": ["a:1"]}, "scrape_jobs[0]: job_name"),
    ({"job_name": "web"}, "scrape job 'web': targets"),
    ({"job_name": "web", "targets": ["localhost"]}, "target 'localhost' is not host:port"),
    ({"job_name": "web", "targets": ["a:1"], "scrape_interval": "15 sec"}, "scrape job 'web': scrape_interval"),
    ({"job_name": "web", "targets": ["a:1"], "scrape_interval": "5s", "scrape_timeout": "10s"},
     "scrape_timeout (10s) is longer than scrape_interval (5s)"),
    ({"job_name": "web", "targets": ["a:1"], "metrics_path": "metrics"}, "metrics_path must start with '/'"),
    ({"job_name": "web", "targets": ["a:1"], "scheme": "ftp"}, "scheme must be 'http' or 'https'"),
    ({"job_name": "web", "targets": ["a:1"], "labels": {"job": "x"}}, "labels: 'job' cannot be a label name"),
    ({"job_name": "web", "targets": ["a:1"], "labels": {"env": 1}}, "labels must be a table of strings"),
    ({"job_name": "web", "targets": ["a:1"], "interval": "5s"}, "scrape job 'web': unknown key 'interval'"),
]


@pytest.mark.parametrize("table,message", BAD_JOBS, ids=[m for _, m in BAD_JOBS])
def test_a_bad_scrape_job_is_refused_naming_the_job_and_key(table, message):
    from koban.errors import ConfigError
    from koban.receive.prom_scrape import parse_jobs

    with pytest.raises(ConfigError) as caught:
        parse_jobs((table,))
    assert message in str(caught.value)


def test_scrape_jobs_take_prometheus_durations_and_defaults():
    from koban.receive.prom_scrape import parse_jobs

    fast, default = parse_jobs((
        {"job_name": "fast", "targets": ["a:1"], "scrape_interval": "1m30s", "scrape_timeout": "500ms",
         "labels": {"env": "prod"}},
        {"job_name": "default", "targets": ["b:2", "[::1]:3"]},
    ))
    assert (fast.interval_s, fast.timeout_s, fast.labels) == (90.0, 0.5, (("env", "prod"),))
    assert (default.interval_s, default.timeout_s, default.metrics_path, default.scheme) == (15.0, 10.0, "/metrics",
                                                                                             "http")


def test_koban_serve_stops_with_the_message_when_a_scrape_job_is_bad(make_server):
    server = make_server(config_toml='[[scrape_jobs]]\njob_name = "web"\ntargets = ["a:1"]\nscheme = "gopher"\n')

    with pytest.raises(RuntimeError) as caught:
        server.start()
    assert "scrape job 'web': scheme must be 'http' or 'https'" in str(caught.value)


def test_start_times_renew_only_when_a_value_drops():
    from koban.ingest.prom_text import Cumulative
    from koban.receive.prom_scrape import StartTimes

    times = StartTimes()

    def starts(series, now):
        common, overrides = times.update([Cumulative(k, v, c) for k, v, c in series], now)
        return {k: overrides.get(k, common) for k, _, c in series if not c}

    assert starts([("a", 1, 0), ("b", 5, 0)], 100) == {"a": 100, "b": 100}
    assert starts([("a", 2, 0), ("b", 5, 0), ("c", 1, 0)], 200) == {"a": 100, "b": 100, "c": 200}
    assert starts([("a", 0, 0), ("b", 6, 0), ("c", 1, 0)], 300) == {"a": 300, "b": 100, "c": 200}
    # a series with a _created time is dated by the body; one that disappears is forgotten
    assert starts([("a", 1, 0), ("d", 1, 7)], 400) == {"a": 300}
    assert starts([("a", 2, 0), ("b", 7, 0)], 500) == {"a": 300, "b": 500}
    # the envelope names only the series off the most common start
    fresh = StartTimes()
    fresh.update([Cumulative(k, 1, 0) for k in "xyz"], 100)
    assert fresh.update([Cumulative(k, 2, 0) for k in "xyzw"], 200) == (100, {"w": 200})
