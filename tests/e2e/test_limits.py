"""Each limit of docs/security.md "Limits", hit on a real server over real sockets."""

from __future__ import annotations

import contextlib
import re
import threading
import time

import grpc
import httpx
import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from e2e.payloads import kv, log_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _counter(metrics_text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_request_over_the_record_limit_is_refused_whole_on_http_and_grpc(make_server):
    server = make_server(max_records_per_request=10).start()
    over = log_request([f"line {i}" for i in range(11)], "too-many")
    json_body = orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": f"line {i}"}} for i in range(11)]}]}]})

    response = httpx.post(server.url + "/v1/logs", content=json_body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "11 records, over the limit of 10 per request (max_records_per_request)" in response.json()["error"]

    response = httpx.post(server.url + "/v1/logs", content=over, headers=PROTOBUF)
    assert response.status_code == 413
    assert "max_records_per_request" in status_pb2.Status.FromString(response.content).message

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")  # raw bytes
        with pytest.raises(grpc.RpcError) as info:
            export(over, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    ok = log_request([f"line {i}" for i in range(10)], "just-enough")
    assert httpx.post(server.url + "/v1/logs", content=ok, headers=PROTOBUF).status_code == 200
    client = server.client()
    assert server.wait_for(lambda: len(client.logs("service:just-enough", from_="now-1h")["rows"]) == 10)
    assert client.logs("service:too-many", from_="now-1h")["rows"] == []


def test_extra_attributes_are_dropped_and_long_values_truncated(make_server):
    server = make_server(max_attributes_per_record=3, max_attribute_value_length=8).start()
    request = log_request(["many attributes"], "attr-limits")
    message = ExportLogsServiceRequest.FromString(request)
    record: LogRecord = message.resource_logs[0].scope_logs[0].log_records[0]
    del record.attributes[:]
    record.attributes.extend([kv("a", "short"), kv("b", "0123456789abcdef"), kv("c", "x"), kv("d", "y"), kv("e", "z")])
    response = httpx.post(server.url + "/v1/logs", content=message.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    client = server.client()
    rows = server.wait_for(lambda: client.logs("service:attr-limits", from_="now-1h")["rows"], what="the log")
    assert rows[0]["attributes"] == {"a": "short", "b": "01234567", "c": "x"}
    text = client.metrics_text()
    assert _counter(text, "koban_attributes_dropped_total") == 2.0
    assert _counter(text, "koban_attribute_values_truncated_total") == 1.0


def _gauge_request(metric: str, series: list[str]) -> bytes:
    now = time.time_ns()
    points = [
        NumberDataPoint(time_unix_nano=now, as_double=1.0,
                        attributes=[KeyValue(key="pod", value=AnyValue(string_value=pod))])
        for pod in series
    ]
    request = ExportMetricsServiceRequest(resource_metrics=[ResourceMetrics(
        resource=Resource(attributes=[kv("service.name", "cardinality")]),
        scope_metrics=[ScopeMetrics(metrics=[Metric(name=metric, gauge=Gauge(data_points=points))])],
    )])
    return request.SerializeToString()


def _stored_series(data_dir, metric: str) -> set[str]:
    import duckdb

    with duckdb.connect(str(data_dir / "koban.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT DISTINCT Attributes['pod'] FROM otel_metrics_gauge WHERE MetricName = ?",
                          [metric]).fetchall()
    return {pod for (pod,) in rows}


def test_a_metric_over_its_series_cap_loses_new_series_and_is_named(make_server, tmp_path):
    data_dir = tmp_path / "data"
    server = make_server(data_dir, max_series_per_metric=3).start()
    first = _gauge_request("pods.ready", ["p1", "p2", "p3"])
    assert httpx.post(server.url + "/v1/metrics", content=first, headers=PROTOBUF).status_code == 200
    # p1 again is an old series: kept; p4 and p5 are new ones over the cap: dropped
    more = _gauge_request("pods.ready", ["p1", "p4", "p5"])
    assert httpx.post(server.url + "/v1/metrics", content=more, headers=PROTOBUF).status_code == 200
    calm = _gauge_request("queue.depth", ["q1"])
    assert httpx.post(server.url + "/v1/metrics", content=calm, headers=PROTOBUF).status_code == 200

    def offenders():
        # the writer admits each acknowledged request in turn: wait for the last one too
        body = httpx.get(server.url + "/api/limits/cardinality").json()
        names = {m["metric"] for m in body["metrics"]}
        return body if any(m["dropped"] for m in body["metrics"]) and "queue.depth" in names else None

    body = server.wait_for(offenders, what="the cardinality page to name both metrics")
    assert body["max_series_per_metric"] == 3
    assert body["metrics"][0] == {"metric": "pods.ready", "series": 3, "dropped": 2}
    assert {"metric": "queue.depth", "series": 1, "dropped": 0} in body["metrics"]
    assert _counter(server.client().metrics_text(), "koban_series_dropped_total") == 2.0
    assert server.stop() == 0
    assert _stored_series(data_dir, "pods.ready") == {"p1", "p2", "p3"}


def _load_big_attributes(url: str, records: int, per_request: int = 1000, headers: dict | None = None) -> None:
    for start in range(0, records, per_request):
        request = log_request([f"row {start + i}" for i in range(per_request)], "memory")
        message = ExportLogsServiceRequest.FromString(request)
        for i, record in enumerate(message.resource_logs[0].scope_logs[0].log_records):
            record.attributes.append(kv("blob", f"{start + i}-" + "x" * 3000))
        response = httpx.post(url + "/v1/logs", content=message.SerializeToString(),
                              headers={**PROTOBUF, **(headers or {})}, timeout=30)
        assert response.status_code == 200


def test_a_query_over_its_memory_budget_fails_clearly_and_the_server_keeps_answering(make_server, tmp_path):
    data_dir = tmp_path / "data"
    facets = {"field": "@blob", "from": "now-1h"}
    server = make_server(data_dir).start()
    _load_big_attributes(server.url, 2_000)
    client = server.client()
    server.wait_for(lambda: client.logs_histogram("service:memory", from_="now-1h")["total"] == 2_000,
                    what="the rows to be stored")
    assert httpx.get(server.url + "/api/logs/facets", params=facets, timeout=30).status_code == 200  # 512MB: fine
    assert server.stop() == 0

    # the same data with a small budget: grouping 2,000 distinct 3 KB values needs more
    server = make_server(data_dir, duckdb_memory_limit="16MB").start()
    response = httpx.get(server.url + "/api/logs/facets", params=facets, timeout=30)
    assert response.status_code == 500
    body = response.json()
    assert "more memory than the store's budget of 16MB (duckdb_memory_limit)" in body["error"]
    assert body["budget"] == "16MB"
    assert httpx.get(server.url + "/api/health").status_code == 200
    assert server.client().logs_histogram("service:memory", from_="now-1h")["total"] == 2_000


def test_a_tail_beyond_the_connection_limit_gets_429(make_server):
    server = make_server(tail_max_connections=1).start()
    with httpx.Client(base_url=server.url, timeout=10) as http, contextlib.ExitStack() as open_tails:
        # Tails are opened (and kept open, streamed: a 200 is an endless response) until
        # one is refused. The second should be; a third is allowed for a tail the server
        # ended at once (LiveTail can take a fresh stream for a disconnected one).
        refused = None
        for _ in range(3):
            tail = open_tails.enter_context(http.stream("GET", "/api/logs/tail", params={"q": ""}))
            if tail.status_code == 429:
                refused = tail
                break
            assert tail.status_code == 200
            next(tail.iter_raw())  # the stream is open
        assert refused is not None, server.log()
        assert "at most 1, tail_max_connections" in orjson.loads(refused.read())["error"]
        assert refused.headers["Retry-After"]

    # the tails closed: a new one is welcome again
    def reopened():
        with httpx.stream("GET", server.url + "/api/logs/tail", timeout=10) as again:
            return again.status_code == 200

    assert server.wait_for(reopened, what="the tail slot to be free again")


def test_one_caller_over_its_concurrent_queries_gets_429(make_server):
    server = make_server(query_concurrency_per_user=1).start()
    _load_big_attributes(server.url, 1_000)  # so that each query takes a moment
    client = server.client()
    server.wait_for(lambda: client.logs_histogram("service:memory", from_="now-1h")["total"] == 1_000,
                    what="the rows to be stored")
    statuses: list[int] = []
    errors: list[str] = []

    def query() -> None:
        response = httpx.get(server.url + "/api/logs/facets", params={"field": "@blob", "from": "now-1h"}, timeout=30)
        statuses.append(response.status_code)
        if response.status_code == 429:
            errors.append(response.json()["error"])

    threads = [threading.Thread(target=query) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert 200 in statuses, statuses
    assert 429 in statuses, statuses
    assert "at most 1, query_concurrency_per_user" in errors[0]
    assert httpx.get(server.url + "/api/logs/facets", params={"field": "@blob"}, timeout=30).status_code == 200


def test_a_clickhouse_query_over_query_max_memory_bytes_fails_naming_the_budget(tmp_path):
    """The ClickHouse side of the memory budget, on the real engine in-process (chdb):
    every read carries max_memory_usage, and ClickHouse's refusal is named."""
    pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")
    import clickhouse_connect

    from koban.errors import StoreError
    from koban.store.clickhouse import ClickHouseStore

    client = clickhouse_connect.get_client(interface="chdb", path=str(tmp_path / "chdb"))
    store = ClickHouseStore(client, database="limits", retention_days={"logs": 0.0, "spans": 0.0, "metrics": 0.0},
                            query_max_memory_bytes=4_000_000)
    try:
        small = store.query("SELECT count() FROM numbers(1000)", {}, timeout_s=30, max_rows=1)
        assert small.rows == [(1000,)]
        with pytest.raises(StoreError) as info:
            store.query("SELECT length(groupArray(repeat(toString(number), 1000))) FROM numbers(200000)", {},
                        timeout_s=30, max_rows=1)
        assert "budget of 4000000 bytes (query_max_memory_bytes)" in info.value.message
        assert info.value.to_dict()["budget"] == 4_000_000
    finally:
        store.close()


def test_with_auth_on_the_query_limit_is_per_signed_in_user(make_server, tmp_path):
    from koban.auth.accounts import AccountStore

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    accounts = AccountStore.open(data_dir)
    try:
        key = accounts.create_ingest_key("shipper")
        busy = {"Authorization": "Bearer " + accounts.create_token("busy-dashboard", "viewer")}
        calm = {"Authorization": "Bearer " + accounts.create_token("calm-dashboard", "viewer")}
    finally:
        accounts.close()
    server = make_server(data_dir, query_concurrency_per_user=1, env={"KOBAN_AUTH": "true"}).start()
    _load_big_attributes(server.url, 1_000, headers={"Authorization": f"Bearer {key}"})
    facets = {"field": "@blob", "from": "now-1h"}
    server.wait_for(lambda: httpx.get(server.url + "/api/logs/facets", params=facets, headers=calm).json()
                    .get("total") == 1_000, what="the rows to be stored")
    results: dict[str, list] = {"busy": [], "calm": []}

    def query(who: str, headers: dict) -> None:
        response = httpx.get(server.url + "/api/logs/facets", params=facets, headers=headers, timeout=30)
        results[who].append((response.status_code, response.json().get("error", "")))

    threads = [threading.Thread(target=query, args=("busy", busy)) for _ in range(8)]
    threads.append(threading.Thread(target=query, args=("calm", calm)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    refused = [error for status, error in results["busy"] if status == 429]
    assert refused, results
    assert "user:busy-dashboard" in refused[0]
    assert [status for status, _ in results["calm"]] == [200]  # one query of its own: never refused


def test_query_slots_are_counted_per_caller_and_freed_after_each_query():
    from koban.api.limits import UserQuerySlots
    from koban.errors import Overloaded

    slots = UserQuerySlots(1)
    with slots.hold("user:amy"):
        with slots.hold("user:bob"):  # another caller is not held up by amy
            pass
        with pytest.raises(Overloaded, match="at most 1, query_concurrency_per_user"):
            with slots.hold("user:amy"):
                pass
        with slots.hold(None):  # internal queries (no request) are not limited
            pass
    with slots.hold("user:amy"):  # amy's slot came back
        pass
