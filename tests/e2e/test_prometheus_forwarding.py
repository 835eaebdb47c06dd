"""A real Prometheus (Debian's 2.42, installed by .ci/run) scrapes an app that exposes
metrics with prometheus_client and forwards them with remote write to a real
`koban serve`; the values koban stored are the app's."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import duckdb
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, start_http_server

from e2e.conftest import free_port

PROMETHEUS = Path("/usr/bin/prometheus")

pytestmark = pytest.mark.skipif(
    not PROMETHEUS.is_file(), reason="/usr/bin/prometheus is not installed (apt-get install prometheus; .ci/run does)"
)


def _received(server) -> float:
    for line in server.client().metrics_text().splitlines():
        if line.startswith("koban_records_received_total") and 'protocol="prom-remote-write"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _prometheus_config(app_port: int, koban_url: str) -> str:
    return f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: shop
    scrape_interval: 1s
    static_configs:
      - targets: ["127.0.0.1:{app_port}"]
remote_write:
  - url: {koban_url}/api/v1/write
    queue_config:
      batch_send_deadline: 100ms
      min_backoff: 50ms
      max_backoff: 500ms
"""


def test_prometheus_forwards_what_it_scrapes_to_koban(make_server, tmp_path):
    registry = CollectorRegistry()
    orders = Counter("shop_orders", "Orders placed.", ["kind"], registry=registry)
    orders.labels("express").inc(5)
    depth = Gauge("shop_queue_depth", "Jobs waiting.", registry=registry)
    depth.set(12.5)
    app_port = free_port()
    app_server, app_thread = start_http_server(app_port, addr="127.0.0.1", registry=registry)
    server = make_server()  # its port is chosen: Prometheus starts (and retries) while koban starts
    config = tmp_path / "prometheus.yml"
    config.write_text(_prometheus_config(app_port, server.url))
    log = open(tmp_path / "prometheus.log", "wb")
    prometheus = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{free_port()}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        server.start()
        # each Prometheus scrape is the app's samples plus its 5 own series (up, ...)
        per_scrape = sum(1 for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")) + 5
        server.wait_for(lambda: _received(server) >= 3 * per_scrape, timeout_s=25,
                        what="three scrapes forwarded by Prometheus")
    finally:
        prometheus.send_signal(signal.SIGTERM)
        try:
            prometheus.wait(10)
        except subprocess.TimeoutExpired:
            prometheus.kill()
            prometheus.wait()
        log.close()
        app_server.shutdown()
        app_server.server_close()
        app_thread.join(5)
    assert server.stop() == 0

    with duckdb.connect(str(server.data_dir / "koban.duckdb"), read_only=True) as db:
        def latest(name: str) -> tuple:
            return db.execute(
                "SELECT Value, ServiceName, Attributes, ScopeName FROM otel_metrics_gauge WHERE MetricName = ? "
                "ORDER BY TimeUnix DESC LIMIT 1", [name],
            ).fetchone()

        instance = f"127.0.0.1:{app_port}"
        assert latest("shop_orders_total") == (5.0, "shop", {"kind": "express", "instance": instance},
                                               "koban.prometheus.remote_write")
        assert latest("shop_queue_depth")[:3] == (12.5, "shop", {"instance": instance})
        assert latest("up")[:3] == (1.0, "shop", {"instance": instance})
