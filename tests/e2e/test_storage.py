"""The Storage API against a real `koban serve`: disk use per signal and service for
data sent over OTLP (the OpenTelemetry SDK and protobuf requests), retention overrides
that survive a restart and delete at the next retention run, the disk budget deleting
the oldest data first, bad input, and who may see it all (docs/security.md)."""

from __future__ import annotations

import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from e2e.payloads import log_request
from koban.auth.accounts import AccountStore
from koban.pipeline.retention import used_bytes
from koban.store.duckdb import DuckDBStore

pytestmark = pytest.mark.timeout(60)

HOUR_NS = 3600 * 10**9
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def send_logs(server, service: str, n: int, *, at_ns: int | None = None) -> None:
    bodies = [f"{service} request {i} " + "payload " * 20 for i in range(n)]
    r = httpx.post(server.url + "/v1/logs", content=log_request(bodies, service, time_ns=at_ns), headers=PROTOBUF)
    assert r.status_code == 200, r.text


def send_spans(server, service: str, n: int) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.url + "/v1/traces")))
    tracer = provider.get_tracer("storage-test")
    for i in range(n):
        with tracer.start_as_current_span(f"GET /item/{i}"):
            pass
    provider.shutdown()


def storage(server, **kwargs) -> dict:
    r = httpx.get(server.url + "/api/storage", timeout=30, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def put_retention(server, body, **kwargs) -> httpx.Response:
    return httpx.put(server.url + "/api/storage/retention", json=body, timeout=10, **kwargs)


def test_usage_per_signal_and_service_appears(make_server):
    server = make_server().start()
    send_logs(server, "checkout", 40)
    send_logs(server, "web", 10)
    send_spans(server, "web", 5)
    doc = server.wait_for(
        lambda: (d := storage(server))["signals"]["logs"]["rows"] == 50 and d["signals"]["spans"]["rows"] == 5 and d,
        what="the records to be counted",
    )
    assert doc["signals"]["logs"]["live_bytes"] > 0 and doc["signals"]["spans"]["live_bytes"] > 0
    by_service = {s["service"]: s for s in doc["services"]}
    assert by_service["checkout"]["rows"] == {"logs": 40}
    assert by_service["web"]["rows"] == {"logs": 10, "spans": 5}
    # the estimate splits a signal's bytes by rows: checkout has 4x web's log rows
    assert by_service["checkout"]["bytes"]["logs"] == pytest.approx(4 * by_service["web"]["bytes"]["logs"], rel=0.01)
    today = doc["volume"][-1]
    assert today["rows"] == {"logs": 50, "spans": 5, "metrics": 0}
    assert len(doc["volume"]) == 15  # one entry per day of the longest retention
    assert doc["budget"] == {"max_disk_bytes": 0, "used_bytes": doc["budget"]["used_bytes"], "fraction": None,
                             "file_bytes": doc["budget"]["file_bytes"]}  # fmt: skip
    assert doc["budget"]["used_bytes"] == sum(s["live_bytes"] for s in doc["signals"].values())


def test_a_retention_override_persists_across_a_restart(make_server):
    server = make_server().start()
    r = put_retention(server, {"signal": "spans", "days": 2.5})
    assert r.status_code == 200, r.text
    assert r.json()["retention"]["spans"] == {"days": 2.5, "default": 15.0, "override": 2.5}
    server.stop()
    again = make_server(data_dir=server.data_dir, retention_spans_days=7).start()
    spans = storage(again)["signals"]["spans"]
    assert (spans["retention_days"], spans["default_days"], spans["override_days"]) == (2.5, 7.0, 2.5)
    # null puts the setting back
    assert put_retention(again, {"signal": "spans", "days": None}).json()["retention"]["spans"]["days"] == 7.0


def test_a_retention_change_deletes_old_rows_at_the_next_run(make_server):
    server = make_server(retention_interval_s=0.5).start()
    send_logs(server, "old", 7, at_ns=time.time_ns() - 3 * 24 * HOUR_NS)
    send_logs(server, "new", 5)
    server.wait_for(lambda: storage(server)["signals"]["logs"]["rows"] == 12, what="both batches stored")
    time.sleep(1.5)  # two retention runs: 15 days keeps both
    assert storage(server)["signals"]["logs"]["rows"] == 12
    assert put_retention(server, {"signal": "logs", "days": 1}).status_code == 200
    server.wait_for(lambda: storage(server)["signals"]["logs"]["rows"] == 5, what="the 3-day-old rows to go")
    services = {s["service"] for s in storage(server)["services"]}
    assert services == {"new"}
    assert "retention removed 7 logs rows older than 1.0 days" in server.log()


def test_max_disk_bytes_deletes_the_oldest_data_first_and_logs_it(make_server):
    server = make_server().start()
    send_logs(server, "yesterday", 200, at_ns=time.time_ns() - 26 * HOUR_NS)
    send_logs(server, "today", 200)
    server.wait_for(lambda: storage(server)["signals"]["logs"]["rows"] == 400, what="the logs to be stored")
    server.stop()  # DuckDB checkpoints: measure what the data takes in the file, as the server will
    stopped = DuckDBStore(server.data_dir / "koban.duckdb")
    used = used_bytes(stopped.usage())
    stopped.close()
    budget = int(used * 0.6)
    limited = make_server(data_dir=server.data_dir, max_disk_bytes=budget, retention_interval_s=0.5).start()
    doc = limited.wait_for(lambda: (d := storage(limited))["signals"]["logs"]["rows"] == 200 and d,
                           what="the budget to delete the older half")  # fmt: skip
    assert {s["service"] for s in doc["services"]} == {"today"}
    assert doc["budget"]["max_disk_bytes"] == budget
    assert doc["budget"]["used_bytes"] <= budget and 0 < doc["budget"]["fraction"] <= 1
    assert "disk budget: the store's data took" in limited.log()
    time.sleep(1.5)  # later runs find it under the budget and keep the rest
    assert storage(limited)["signals"]["logs"]["rows"] == 200


BAD_BODIES = [
    {"signal": "logs", "days": 0},
    {"signal": "logs", "days": -3},
    {"signal": "logs", "days": "7"},
    {"signal": "logs", "days": True},
    {"signal": "logs", "days": 1e9},
    {"signal": "traces", "days": 7},
    {"signal": None, "days": 7},
    {"signal": ["logs"], "days": 7},
    {"days": 7},
    [1, 2],
]


def test_bad_retention_input_gets_a_400_and_changes_nothing(server):
    for body in BAD_BODIES:
        r = put_retention(server, body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]
    for content in (b"{not json", b"x" * 10_000):
        r = httpx.put(server.url + "/api/storage/retention", content=content, timeout=10)
        assert r.status_code == 400, r.text
    assert all(s["override_days"] is None for s in storage(server)["signals"].values())
    assert not (server.data_dir / "retention.json").exists()


# --- who may see it -------------------------------------------------------------------

ALICE_PW = "correct horse battery"
VICTOR_PW = "viewer password 1"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    from e2e.conftest import KobanServer

    root = tmp_path_factory.mktemp("storage-auth")
    data = root / "data"
    data.mkdir()
    accounts = AccountStore.open(data)
    accounts.create_user("alice", "admin", ALICE_PW)
    accounts.create_user("victor", "viewer", VICTOR_PW)
    tokens = {"viewer": accounts.create_token("dash", "viewer"), "admin": accounts.create_token("ops", "admin")}
    accounts.close()
    server = KobanServer(data, root / "server.log", env={"KOBAN_AUTH": "true"}).start()
    yield server, tokens
    server.stop()


def _login(server, user: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=10)
    form = client.get("/login")
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"csrf_token": token, "username": user, "password": password, "next": "/"})
    assert answer.status_code == 303, answer.text
    return client


def test_a_viewer_gets_403_on_the_storage_api_and_page(guarded):
    server, tokens = guarded
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    assert httpx.get(server.url + "/api/storage", headers=viewer).status_code == 403
    assert put_retention(server, {"signal": "logs", "days": 3}, headers=viewer).status_code == 403
    victor = _login(server, "victor", VICTOR_PW)
    try:
        assert victor.get("/storage").status_code == 403
        assert victor.get("/api/storage").status_code == 403
        assert 'href="/storage"' not in victor.get("/logs").text  # the nav offers it to admins only
    finally:
        victor.close()
    assert httpx.get(server.url + "/api/storage").status_code == 401
    assert storage(server, headers={"Authorization": f"Bearer {tokens['admin']}"})["backend"] == "duckdb"


def test_an_admin_session_changes_retention_only_with_its_csrf_token(guarded):
    server, _ = guarded
    alice = _login(server, "alice", ALICE_PW)
    try:
        page = alice.get("/storage")
        assert page.status_code == 200 and "Storage" in page.text
        assert 'href="/storage"' in alice.get("/logs").text
        refused = alice.put("/api/storage/retention", json={"signal": "metrics", "days": 4})
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        token = page.text.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
        ok = alice.put("/api/storage/retention", json={"signal": "metrics", "days": 4},
                       headers={"X-CSRF-Token": token})  # fmt: skip
        assert ok.status_code == 200, ok.text
        assert alice.get("/api/storage").json()["signals"]["metrics"]["retention_days"] == 4.0
    finally:
        alice.close()
