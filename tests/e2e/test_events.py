"""DogStatsD events through a real `koban serve`: the `datadog` client's event() lands in
koban_events, /api/events finds it, and a kill -9 loses and repeats none that were in the WAL."""

from __future__ import annotations

import socket
from collections import Counter

import duckdb
import httpx
import pytest
from datadog.dogstatsd import DogStatsd

pytestmark = pytest.mark.timeout(60)


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dogstatsd(port: int) -> DogStatsd:
    return DogStatsd(host="127.0.0.1", port=port, disable_telemetry=True, origin_detection_enabled=False)


def _events_received(server) -> float:
    """koban_records_received_total for StatsD events: events made durable in the WAL."""
    for line in server.client().metrics_text().splitlines():
        if line.startswith("koban_records_received_total") and 'signal="events"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _events(server, **query: str) -> dict:
    response = httpx.get(server.url + "/api/events", params=query, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_dogstatsd_event_shows_in_the_events_api_with_its_fields(make_server):
    port = _udp_port()
    server = make_server(statsd_port=port, statsd_flush_interval_s=0.2).start()
    dd = _dogstatsd(port)
    dd.event(
        "Deploy finished", "checkout v1.2\nall green", alert_type="success", priority="low",
        aggregation_key="deploy-42", source_type_name="jenkins", hostname="web-1",
        tags=["service:checkout", "team:pay"],
    )  # fmt: skip
    dd.event("Database down", "primary unreachable", alert_type="error", tags=["team:data"])
    dd.close_socket()

    server.wait_for(lambda: len(_events(server)["events"]) == 2, what="two events in /api/events")
    page = _events(server, q="team:pay")
    [deploy] = page["events"]
    assert {k: deploy[k] for k in ("title", "text", "alert_type", "priority", "host", "aggregation_key",
                                   "source_type", "service", "tags")} == {
        "title": "Deploy finished", "text": "checkout v1.2\nall green", "alert_type": "success",
        "priority": "low", "host": "web-1", "aggregation_key": "deploy-42", "source_type": "jenkins",
        "service": "checkout", "tags": {"service": "checkout", "team": "pay"},
    }  # fmt: skip
    assert [e["title"] for e in _events(server, q="unreachable")["events"]] == ["Database down"]
    assert [e["title"] for e in _events(server, limit="1")["events"]] == ["Database down"]  # newest first
    assert page["query"] == "team is pay"


def test_a_bad_events_query_is_a_400_that_says_why(server):
    for query, says in (({"q": "title:("}, "position"), ({"limit": "0"}, "limit"), ({"from": "yesterday-ish"}, "")):
        response = httpx.get(server.url + "/api/events", params=query, timeout=10)
        assert response.status_code == 400, query
        assert "error" in response.json() and says in response.text, query


def _send(port: int, titles: list[str]) -> None:
    dd = _dogstatsd(port)
    for title in titles:
        dd.event(title, "text", tags=["team:durable"])
    dd.close_socket()


def test_events_in_the_wal_survive_kill_9_exactly_once(make_server, tmp_path):
    data_dir = tmp_path / "data"
    port = _udp_port()
    # the writer waits up to 2 s to fill a batch, so a kill right after the WAL write
    # lands before the store has the events
    server = make_server(
        data_dir, statsd_port=port, statsd_flush_interval_s=0.2, batch_max_delay_ms=2000, batch_idle_ms=2000
    ).start()
    stored_before = [f"stored {i}" for i in range(20)]
    _send(port, stored_before)
    server.wait_for(lambda: len(_events(server, q="team:durable")["events"]) == 20, what="events in the store")
    in_wal_only = [f"in the WAL {i}" for i in range(20)]
    _send(port, in_wal_only)
    server.wait_for(lambda: _events_received(server) >= 40, what="events in the WAL")
    server.kill()

    server = make_server(data_dir, statsd_port=port).start()
    assert server.stop() == 0
    assert "replayed 20 records from the write-ahead log" in server.log()  # the second 20, from the WAL
    with duckdb.connect(str(data_dir / "koban.duckdb"), read_only=True) as db:
        stored = Counter(t for (t,) in db.execute("SELECT Title FROM koban_events").fetchall())
    assert stored == Counter(stored_before + in_wal_only)  # each once: none lost, none replayed twice
