"""An acknowledged record survives kill -9 and is stored exactly once after restart."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import duckdb
import httpx

from e2e.payloads import log_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _load(url: str, client_id: int, stop: threading.Event, acked: list[str], per_request: int = 50) -> None:
    """Send batches until `stop` or the server dies; record the bodies of acknowledged ones."""
    seq = 0
    with httpx.Client(timeout=5) as http:
        while not stop.is_set():
            bodies = [f"c{client_id}-r{seq}-{i}" for i in range(per_request)]
            seq += 1
            try:
                response = http.post(url + "/v1/logs", content=log_request(bodies, "durable"), headers=PROTOBUF)
            except httpx.TransportError:
                return  # the server is gone: whatever was not acknowledged may or may not be stored
            if response.status_code == 200:
                acked.extend(bodies)
            elif response.status_code in (429, 503):
                time.sleep(0.01)


def _stored_bodies(data_dir) -> Counter:
    with duckdb.connect(str(data_dir / "koban.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT Body FROM otel_logs WHERE ServiceName = 'durable'").fetchall()
    return Counter(body for (body,) in rows)


def test_acknowledged_records_survive_kill_9_exactly_once(make_server, tmp_path):
    rng = random.Random(7)
    data_dir = tmp_path / "data"
    acked: list[str] = []
    rounds = 3
    for round_no in range(rounds):
        server = make_server(data_dir).start()
        stop = threading.Event()
        clients = [
            threading.Thread(target=_load, args=(server.url, round_no * 10 + c, stop, acked)) for c in range(4)
        ]
        for t in clients:
            t.start()
        time.sleep(rng.uniform(0.4, 1.2))  # let load build, then kill at an arbitrary moment
        server.kill()
        stop.set()
        for t in clients:
            t.join(10)
    assert len(acked) > 500, "the load generator should have had requests acknowledged"

    server = make_server(data_dir).start()  # replays the WAL
    assert server.stop() == 0
    stored = _stored_bodies(data_dir)
    missing = [b for b in acked if stored[b] == 0]
    duplicated = [b for b, n in stored.items() if n > 1]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    assert not duplicated, f"{len(duplicated)} records stored twice, e.g. {duplicated[:3]}"
