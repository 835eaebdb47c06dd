"""A real `koban serve` on the ClickHouse backend: OTLP in, the JSON API and the pages
out, as on DuckDB. ClickHouse is tests/chdb_http's HTTP endpoint over the real engine
(chdb), run in this test process; koban reaches it over HTTP with --store clickhouse."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")
pytest.importorskip("clickhouse_connect", reason="clickhouse-connect (koban[clickhouse]) is not installed")

from chdb_http.engine import Engine  # noqa: E402
from chdb_http.server import ChdbHttpServer  # noqa: E402

pytestmark = pytest.mark.timeout(90)

TRACE_ID = "7c1e0d3b9a8f4e2d8c6b5a4f3e2d1c0b"
ROOT_ID, CHILD_ID = "a1b2c3d4e5f60718", "a1b2c3d4e5f60719"


class Statements:
    """Every statement the endpoint runs, seen through its fault-injection hook."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, sql: str) -> bool:
        self.seen.append(sql)
        return False  # never fail

    def deletes(self) -> list[str]:
        return [s for s in list(self.seen) if s.lstrip().upper().startswith("DELETE")]


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbHttpServer]:
    engine = Engine(tmp_path_factory.mktemp("chdb") / "engine")
    server = ChdbHttpServer(engine, user="koban", password="pw").start()
    yield server
    server.stop()
    engine.close()


@pytest.fixture
def database(clickhouse: ChdbHttpServer) -> Iterator[str]:
    name = f"koban_e2e_{uuid.uuid4().hex[:12]}"
    statements = Statements()
    clickhouse.fail_when = statements
    yield name
    clickhouse.fail_when = None
    conn = clickhouse.engine.connect()
    try:
        conn.query(f"DROP DATABASE IF EXISTS {name} SYNC", "TabSeparated")
    finally:
        conn.close()


def _resource(service: str) -> dict:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


def send_demo_data(url: str, now: int) -> None:
    logs = {"resourceLogs": [{"resource": _resource("shop"), "scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(now - 2_000_000), "severityNumber": 9, "severityText": "INFO",
         "traceId": TRACE_ID, "spanId": ROOT_ID, "body": {"stringValue": "order placed"}},
        {"timeUnixNano": str(now - 1_000_000), "severityNumber": 17, "severityText": "ERROR",
         "traceId": TRACE_ID, "spanId": CHILD_ID, "body": {"stringValue": "payment declined"}},
    ]}]}]}  # fmt: skip
    traces = {"resourceSpans": [{"resource": _resource("shop"), "scopeSpans": [{"spans": [
        {"traceId": TRACE_ID, "spanId": ROOT_ID, "name": "POST /checkout", "kind": 2,
         "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now), "status": {}},
        {"traceId": TRACE_ID, "spanId": CHILD_ID, "parentSpanId": ROOT_ID, "name": "charge card", "kind": 3,
         "startTimeUnixNano": str(now - 4_000_000), "endTimeUnixNano": str(now - 1_000_000),
         "status": {"code": 2, "message": "declined"}},
    ]}]}]}  # fmt: skip
    assert httpx.post(url + "/v1/logs", json=logs).status_code == 200
    assert httpx.post(url + "/v1/traces", json=traces).status_code == 200


def test_the_api_and_pages_answer_from_clickhouse(make_server, clickhouse, database):
    server = make_server(store="clickhouse", clickhouse_url=clickhouse.url(database)).start()
    send_demo_data(server.url, time.time_ns())
    client = server.client()

    rows = server.wait_for(lambda: (r := client.logs("service:shop")["rows"]) and len(r) == 2 and r, what="2 logs")
    assert [r["body"] for r in rows] == ["payment declined", "order placed"]
    histogram = client.logs_histogram("service:shop", by="severity")
    assert histogram["total"] == 2
    groups: dict[str, int] = {}
    for bucket in histogram["buckets"]:
        for name, n in bucket["groups"].items():
            groups[name.lower()] = groups.get(name.lower(), 0) + n
    assert groups == {"info": 1, "error": 1}

    server.wait_for(lambda: len(client.spans("service:shop")["rows"]) == 2, what="2 spans")
    trace = client.trace(TRACE_ID)["spans"]
    assert [s["span_id"] for s in trace] == [ROOT_ID, CHILD_ID]
    assert trace[1]["status"] == "error" and trace[0]["duration_ns"] == 5_000_000
    (shop,) = [s for s in client.services()["services"] if s["service"] == "shop"]
    assert shop["requests"] == 1

    for page in ("/logs", f"/traces/{TRACE_ID}", "/services"):
        response = httpx.get(server.url + page)
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html"), page

    # the one scheduling process (scheduler = true, the default) runs retention on ClickHouse
    assert server.wait_for(clickhouse.fail_when.deletes, what="a retention DELETE")
    assert server.stop() == 0


def test_a_process_without_the_scheduler_setting_ingests_but_runs_no_retention(
    make_server, clickhouse, database, tmp_path: Path
):
    config = tmp_path / "koban.toml"
    config.write_text("scheduler = false\n")
    server = make_server(store="clickhouse", clickhouse_url=clickhouse.url(database), config=config).start()
    send_demo_data(server.url, time.time_ns())
    client = server.client()
    server.wait_for(lambda: len(client.spans("service:shop")["rows"]) == 2, what="2 spans")
    # retention would have run at start, before the HTTP listener was up
    assert server.stop() == 0
    assert clickhouse.fail_when.deletes() == []
