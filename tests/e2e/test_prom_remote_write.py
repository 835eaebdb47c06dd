"""Prometheus remote write 1.0 into a real `koban serve`: the shared workload's
snappy-compressed WriteRequest bodies (../shared/bench/gen_workload.py --remote-write,
encoded by hand there, as Prometheus' wire format) stored point for point; bad bodies
answered with the statuses Prometheus acts on."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import cramjam
import duckdb
import httpx
import pytest

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "Prometheus/2.42.0",
}
REPO = Path(__file__).resolve().parents[2]
# the workload's hour is 2026-01-01; keep its points whatever today is
KEEP = {"retention_metrics_days": 100_000}


def _generator() -> Path:
    env = os.environ.get("KOBAN_WORKLOAD_GEN")
    path = Path(env) if env else REPO.parent / "shared" / "bench" / "gen_workload.py"
    if not path.is_file():
        pytest.skip(f"workload generator not found at {path}; set KOBAN_WORKLOAD_GEN")
    return path


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> Path:
    """20 series x 240 steps: one remote write body of 4,800 samples, and metrics.csv."""
    out = tmp_path_factory.mktemp("workload")
    cmd = [sys.executable, str(_generator()), str(out), "--series", "20", "--logs", "1", "--spans", "1",
           "--remote-write"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def _bodies(workload: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((workload / "remote_write").iterdir())]


def _rows(workload: Path) -> list[tuple[str, dict, int, float]]:
    with open(workload / "metrics.csv", newline="") as f:
        return [(n, json.loads(lj), int(ts), float(v)) for n, lj, ts, v in list(csv.reader(f))[1:]]


def _received(client) -> float:
    for line in client.metrics_text().splitlines():
        if line.startswith("koban_records_received_total") and 'protocol="prom-remote-write"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_workloads_bodies_are_stored_sample_for_sample(make_server, workload):
    server = make_server(**KEEP).start()
    rows = _rows(workload)

    for body in _bodies(workload):
        response = httpx.post(server.url + "/api/v1/write", content=body, headers=HEADERS, timeout=30)
        assert response.status_code == 204, response.text
    server.wait_for(lambda: _received(server.client()) >= len(rows), what=f"{len(rows)} samples received")
    assert server.stop() == 0

    with duckdb.connect(str(server.data_dir / "koban.duckdb"), read_only=True) as db:
        count, services, names = db.execute(
            "SELECT count(*), list(DISTINCT ServiceName), count(DISTINCT MetricName) FROM otel_metrics_gauge"
        ).fetchone()
        assert count == len(rows) == 4800
        assert services == ["prometheus"]
        assert names == len({r[0] for r in rows})
        for name, labels, ts_ms, value in rows[::997]:
            stored = db.execute(
                "SELECT Value, Attributes, ResourceAttributes['service.instance.id'], ScopeName "
                "FROM otel_metrics_gauge WHERE MetricName = ? AND epoch_ns(TimeUnix) = ?",
                [name, ts_ms * 1_000_000],
            ).fetchall()
            this_series = [row for row in stored if row[1] == labels]
            assert this_series == [(value, labels, labels.get("instance"), "koban.prometheus.remote_write")]


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    from e2e.conftest import KobanServer

    tmp = tmp_path_factory.mktemp("rw-bad-input")
    server = KobanServer(tmp / "data", tmp / "server.log", max_body_bytes=4096).start()
    yield server
    server.stop()


def _snappy(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


CASES = [
    ("wrong content type", {**HEADERS, "Content-Type": "application/json"}, _snappy(b""), 415),
    ("remote write 2.0", {**HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
     _snappy(b""), 415),
    ("gzip instead of snappy", {**HEADERS, "Content-Encoding": "gzip"}, _snappy(b""), 415),
    ("not snappy", HEADERS, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 400),
    ("truncated snappy", HEADERS, _snappy(b"\x0a\x02ab" * 100)[:-5], 400),
    ("snappy of something that is not a WriteRequest", HEADERS, _snappy(b"\xff\xff\xff not protobuf"), 400),
    ("decompressing past max_body_bytes", HEADERS, _snappy(b"\x00" * 5000), 413),
    ("compressed body past max_body_bytes", HEADERS, b"\x00" * 5000, 413),
]


@pytest.mark.parametrize("name,headers,body,status", CASES, ids=[c[0] for c in CASES])
def test_bad_bodies_get_the_status_prometheus_acts_on(small_server, name, headers, body, status):
    response = httpx.post(small_server.url + "/api/v1/write", content=body, headers=headers, timeout=10)

    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert small_server.client().health()["status"] == "ok"


def test_an_empty_write_request_is_accepted(small_server):
    response = httpx.post(small_server.url + "/api/v1/write", content=_snappy(b""), headers=HEADERS, timeout=10)

    assert response.status_code == 204


def test_a_full_queue_answers_429_with_retry_after_and_every_204_is_stored(make_server, workload):
    server = make_server(queue_max_records=1000, **KEEP).start()
    (body,) = _bodies(workload)
    outcomes: list[tuple[int, str | None]] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(timeout=30) as http:
            for _ in range(4):
                r = http.post(server.url + "/api/v1/write", content=body, headers=HEADERS)
                with lock:
                    outcomes.append((r.status_code, r.headers.get("retry-after")))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    statuses = [status for status, _ in outcomes]
    assert set(statuses) <= {204, 429}, outcomes
    assert 429 in statuses, "4,800-sample bodies from 6 senders must overflow a queue of 1,000"
    assert all(int(retry) >= 1 for status, retry in outcomes if status == 429)
    acked = statuses.count(204) * 4800
    server.wait_for(lambda: _received(server.client()) >= acked, what=f"{acked} samples received")
    assert server.stop() == 0
    with duckdb.connect(str(server.data_dir / "koban.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM otel_metrics_gauge").fetchone()[0] == acked
