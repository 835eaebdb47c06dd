"""Auth against a real `koban serve`: keys through the OpenTelemetry SDK exporters
(HTTP and gRPC), API tokens and their roles, the login form, CSRF, the `koban admin`
CLI, and the bind rule. Personas: alice (admin), victor (viewer), a shipper (ingest
key), a dashboard (viewer token), a stranger (nothing)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from e2e.conftest import KobanServer
from e2e.payloads import log_request
from koban.auth.accounts import AccountStore
from koban.cli import main as cli_main

ALICE_PW = "correct horse battery"
VICTOR_PW = "viewer password 1"


def koban_admin(data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "koban.cli", "admin", "--data-dir", str(data_dir), *args],
        input=stdin, capture_output=True, text=True, timeout=30,
    )


def _secret(data_dir: Path, *args: str) -> str:
    done = koban_admin(data_dir, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A server with auth on, and the credentials of every persona."""
    root = tmp_path_factory.mktemp("auth")
    data = root / "data"
    data.mkdir()
    # made in this process (the CLI has its own test): another process than the server's
    accounts = AccountStore.open(data)
    accounts.create_user("alice", "admin", ALICE_PW)
    accounts.create_user("victor", "viewer", VICTOR_PW)
    creds = {
        "ingest_key": accounts.create_ingest_key("shipper"),
        "revoked_key": accounts.create_ingest_key("old-shipper"),
        "viewer_token": accounts.create_token("dashboard", "viewer"),
        "admin_token": accounts.create_token("ops-bot", "admin"),
    }
    accounts.revoke("old-shipper")
    server = KobanServer(data, root / "server.log", env={"KOBAN_AUTH": "true"}).start()
    yield server, creds, accounts
    server.stop()
    accounts.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _one_span(service: str):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("auth-test").start_as_current_span("checkout"):
        pass
    provider.shutdown()
    return memory.get_finished_spans()


def _http_exporter(server, headers):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=server.url + "/v1/traces", headers=headers, timeout=5)


def _grpc_exporter(server, headers):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"127.0.0.1:{server.grpc_port}", insecure=True, headers=headers, timeout=5)


@pytest.mark.parametrize("make_exporter", [_http_exporter, _grpc_exporter], ids=["http", "grpc"])
def test_the_sdk_exporter_gets_in_only_with_a_live_ingest_key(world, make_exporter):
    server, creds, _ = world
    service = f"auth-{uuid.uuid4().hex[:8]}"
    spans = _one_span(service)

    def export(headers):
        exporter = make_exporter(server, headers)
        try:
            return exporter.export(spans)
        finally:
            exporter.shutdown()

    assert export({"authorization": f"Bearer {creds['ingest_key']}"}) == SpanExportResult.SUCCESS
    assert export(None) == SpanExportResult.FAILURE
    assert export({"authorization": f"Bearer {creds['revoked_key']}"}) == SpanExportResult.FAILURE
    assert export({"authorization": f"Bearer {creds['viewer_token']}"}) == SpanExportResult.FAILURE

    def found():
        r = httpx.get(server.url + "/api/spans", params={"q": f"service:{service}"},
                      headers=bearer(creds["viewer_token"]))
        return r.status_code == 200 and r.json()["rows"]

    assert len(server.wait_for(found, what="the exported span")) == 1  # exactly the keyed one


def test_ingest_over_http_answers_401_without_a_key_and_403_with_a_read_token(world):
    server, creds, _ = world
    body = b"{}"
    headers = {"content-type": "application/json"}
    assert httpx.post(server.url + "/v1/logs", content=body, headers=headers).status_code == 401
    assert httpx.post(server.url + "/v1/logs", content=body,
                      headers={**headers, **bearer(creds["revoked_key"])}).status_code == 401
    assert httpx.post(server.url + "/v1/logs", content=body,
                      headers={**headers, **bearer(creds["viewer_token"])}).status_code == 403
    dd = httpx.post(server.url + "/v1/logs", content=body, headers={**headers, "DD-API-KEY": creds["ingest_key"]})
    assert dd.status_code == 200


def test_a_viewer_token_reads_logs_but_not_admin_routes(world):
    server, creds, _ = world
    viewer = bearer(creds["viewer_token"])
    assert httpx.get(server.url + "/api/logs", headers=viewer).status_code == 200
    denied = httpx.get(server.url + "/api/admin/users", headers=viewer)
    assert denied.status_code == 403
    assert "admin" in denied.json()["error"]
    assert httpx.post(server.url + "/api/admin/keys", json={"name": "x"}, headers=viewer).status_code == 403
    # an ingest key is write-only
    assert httpx.get(server.url + "/api/logs", headers=bearer(creds["ingest_key"])).status_code == 403


def test_anonymous_api_calls_get_401_json_and_pages_a_redirect_to_login(world):
    server, _, _ = world
    api = httpx.get(server.url + "/api/logs")
    assert api.status_code == 401
    assert api.json()["error"]
    page = httpx.get(server.url + "/traces?q=status%3Aerror")
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Ftraces%3Fq%3Dstatus%253Aerror"
    assert httpx.get(server.url + "/api/health").status_code == 200


def test_an_admin_token_creates_a_key_shown_once_that_works_at_once(world):
    server, creds, _ = world
    admin = bearer(creds["admin_token"])
    made = httpx.post(server.url + "/api/admin/keys", json={"name": "made-by-api"}, headers=admin)
    assert made.status_code == 201
    key = made.json()["key"]
    assert key.startswith("kbi_")
    listed = httpx.get(server.url + "/api/admin/users", headers=admin).json()["accounts"]
    row = next(a for a in listed if a["name"] == "made-by-api")
    assert row["kind"] == "ingest_key" and key not in str(listed) and key.startswith(row["shown"].rstrip("…"))
    sent = httpx.post(server.url + "/v1/logs", content=b"{}", headers={"content-type": "application/json",
                                                                       **bearer(key)})
    assert sent.status_code == 200
    again = httpx.post(server.url + "/api/admin/keys", json={"name": "made-by-api"}, headers=admin)
    assert again.status_code == 409
    assert httpx.post(server.url + "/api/admin/keys", content=b"[", headers=admin).status_code == 400


def _login(server, user: str, password: str, next_: str = "/logs") -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=server.url)
    form = client.get("/login", params={"next": next_})
    assert form.status_code == 200
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/login", data={"csrf_token": token, "username": user, "password": password,
                                         "next": next_})
    return client, answer


def test_the_login_form_refuses_a_wrong_password_and_sets_a_safe_cookie_for_the_right_one(world):
    server, _, _ = world
    client, wrong = _login(server, "alice", "not her password")
    assert wrong.status_code == 401
    assert "koban_session" not in client.cookies
    client.close()

    client, right = _login(server, "alice", ALICE_PW, next_="/traces")
    assert right.status_code == 303
    assert right.headers["location"] == "/traces"
    cookie = right.headers["set-cookie"]
    assert "koban_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    assert client.get("/traces").status_code == 200
    assert client.get("/api/admin/users").status_code == 200
    client.close()


def test_the_login_form_without_its_token_is_refused(world):
    server, _, _ = world
    answer = httpx.post(server.url + "/login", data={"username": "alice", "password": ALICE_PW})
    assert answer.status_code == 403
    assert "koban_session" not in answer.headers.get("set-cookie", "")


def test_a_login_never_redirects_off_site(world):
    server, _, _ = world
    client, answer = _login(server, "alice", ALICE_PW, next_="//evil.example.com/x")
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    client.close()


def test_a_cookie_authenticated_post_needs_the_csrf_token(world):
    server, _, _ = world
    client, _ = _login(server, "alice", ALICE_PW)
    no_token = client.post("/api/admin/keys", json={"name": "csrf-probe"})
    assert no_token.status_code == 403
    assert "CSRF" in no_token.json()["error"]
    csrf = client.get("/api/auth/me").json()["csrf_token"]
    wrong = client.post("/api/admin/keys", json={"name": "csrf-probe"}, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    ok = client.post("/api/admin/keys", json={"name": "csrf-probe"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201
    # a form post carries it as a field (the sign-out page has it); without it, sign-out is refused
    assert f'value="{csrf}"' in client.get("/logout").text
    assert client.post("/logout", data={}).status_code == 403
    out = client.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert "koban_session" not in client.cookies
    assert client.get("/api/logs").status_code == 401
    client.close()


def test_a_viewer_session_is_refused_admin_routes_and_ends_when_the_user_is_deleted(world):
    server, _, accounts = world
    client, answer = _login(server, "victor", VICTOR_PW)
    assert answer.status_code == 303
    me = client.get("/api/auth/me").json()
    assert (me["name"], me["role"], me["via"]) == ("victor", "viewer", "session")
    assert client.get("/api/admin/users").status_code == 403
    assert accounts.delete_user("victor")
    assert client.get("/api/logs").status_code == 401
    client.close()


def test_a_forged_session_cookie_is_ignored(world):
    server, _, _ = world
    cookies = {"koban_session": "eyJ1IjoiYWxpY2UiLCJyIjoiYWRtaW4ifQ.forged.signature"}
    assert httpx.get(server.url + "/api/admin/users", cookies=cookies).status_code == 401


def test_the_admin_cli_round_trip(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    key = _secret(data, "create-key", "ci")  # the real command, in its own process
    assert key.startswith("kbi_")

    def admin(*args: str, stdin: str = "") -> tuple[int, str, str]:  # the rest in-process: same code, faster
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli_main(["admin", "--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert admin("create-user", "carol", "--role", "editor", "--password-stdin", stdin="long enough pw\n")[0] == 0
    code, out, err = admin("create-user", "dave", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 8" in err
    code, token, _ = admin("create-token", "grafana", "--role", "viewer")
    assert code == 0 and token.strip().startswith("kbt_")
    listing = admin("list")[1]
    assert "carol" in listing and "editor" in listing and "ci" in listing and "grafana" in listing
    assert key not in listing and token.strip() not in listing
    assert admin("revoke", "ci")[0] == 0
    code, _, err = admin("revoke", "ci")
    assert code == 1 and "no key or token named 'ci'" in err
    assert admin("delete-user", "carol")[0] == 0
    assert "carol" not in admin("list")[1]
    assert (data / "auth.sqlite3").stat().st_mode & 0o077 == 0


def _serve_fails(tmp_path: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "koban.cli", "serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "data"),
         "--port", "0", "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--statsd-port", "0"],
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin", **env},
    )
    assert done.returncode != 0
    return done.stderr


def test_binding_beyond_loopback_needs_auth_and_an_admin(tmp_path, make_server):
    started = time.monotonic()
    no_auth = _serve_fails(tmp_path, {})
    assert "refusing to listen on 0.0.0.0: set auth = true" in no_auth
    no_admin = _serve_fails(tmp_path, {"KOBAN_AUTH": "true"})
    assert "auth is on but there is no admin user" in no_admin
    assert time.monotonic() - started < 25
    (tmp_path / "data").mkdir()
    accounts = AccountStore.open(tmp_path / "data")
    accounts.create_user("alice", "admin", ALICE_PW)
    accounts.close()
    server = make_server(tmp_path / "data", host="0.0.0.0", env={"KOBAN_AUTH": "true"}).start()
    assert httpx.get(server.url + "/api/logs").status_code == 401


def test_with_auth_off_all_is_open_and_statsd_takes_only_the_allowed_networks(make_server):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = make_server(statsd_port=port, statsd_allowed_networks="127.0.0.2/32").start()
    # auth is off here: everyone is the anonymous admin, with no credential at all
    assert httpx.get(server.url + "/api/auth/me").json() == {"name": "anonymous", "role": "admin", "via": "none",
                                                             "csrf_token": None}
    assert httpx.get(server.url + "/api/admin/users").status_code == 200
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    friend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    friend.bind(("127.0.0.2", 0))  # all of 127/8 is loopback on Linux
    try:
        for _ in range(5):
            stranger.sendto(b"shop.orders:1|c", ("127.0.0.1", port))
        friend.sendto(b"shop.orders:1|c", ("127.0.0.1", port))
        server.wait_for(lambda: server.gauge("koban_statsd_datagrams_refused") == 5, what="5 refused datagrams")
        server.wait_for(lambda: server.gauge("koban_statsd_datagrams_received") == 1, what="1 received datagram")
    finally:
        stranger.close()
        friend.close()


def test_grpc_answers_unauthenticated_without_a_key_and_permission_denied_for_a_read_token(world):
    import grpc

    server, creds, _ = world
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")

        def code(metadata):
            try:
                export(b"", metadata=metadata, timeout=10)
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        assert code(None) == grpc.StatusCode.UNAUTHENTICATED
        assert code((("authorization", "Bearer kbi_not-a-key"),)) == grpc.StatusCode.UNAUTHENTICATED
        assert code((("authorization", f"Bearer {creds['viewer_token']}"),)) == grpc.StatusCode.PERMISSION_DENIED
        assert code((("authorization", f"Bearer {creds['ingest_key']}"),)) == grpc.StatusCode.OK


def test_koban_query_reads_with_koban_token_and_says_why_without(world):
    server, creds, _ = world
    shipped = httpx.post(server.url + "/v1/logs", content=log_request(["cli token probe"], "cli-auth"),
                         headers={"Content-Type": "application/x-protobuf", **bearer(creds["ingest_key"])})
    assert shipped.status_code == 200

    def query(token: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOBAN_")}
        env["KOBAN_URL"] = server.url
        if token:
            env["KOBAN_TOKEN"] = token
        return subprocess.run([sys.executable, "-m", "koban.cli", "query", "service:cli-auth", "--since", "1h"],
                              env=env, capture_output=True, text=True, timeout=60)

    server.wait_for(lambda: "cli token probe" in query(creds["viewer_token"]).stdout, what="the record via the CLI")
    refused = query(None)
    assert refused.returncode != 0 and "cli token probe" not in refused.stdout
    assert "401" in refused.stderr or "auth" in refused.stderr.lower(), refused.stderr


def test_the_demo_load_gets_in_with_its_own_key_when_auth_is_on(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    accounts = AccountStore.open(data)
    token = accounts.create_token("reader", "viewer")
    accounts.close()
    server = KobanServer(data, tmp_path / "server.log", env={"KOBAN_AUTH": "true"}, demo=True, demo_rate=20).start()
    try:
        def frontend_seen() -> bool:
            rows = httpx.get(server.url + "/api/services", headers=bearer(token)).json().get("services", [])
            return "frontend" in {row["service"] for row in rows}

        # the services appear one by one as their spans are exported: wait for the frontend
        assert server.wait_for(frontend_seen, timeout_s=60, what="the demo's frontend service")
    finally:
        server.stop()
    listed = AccountStore.open(data)
    assert [a.name for a in listed.list() if a.name == "koban-demo"] == ["koban-demo"]  # replaced, not piled up
    listed.close()
