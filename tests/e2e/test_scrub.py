"""Secrets sent in telemetry are masked before they are stored, on receipt and on WAL
replay, and counted in /metrics, with a real server, OTLP over HTTP, and kill -9."""

from __future__ import annotations

import re

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from e2e.payloads import kv, log_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJl"
PADDING = 300  # records of filler: the request is over 16 KiB, so a decode worker process takes it


def _request_with_secrets(service: str) -> bytes:
    """One OTLP log request: a body with a password, an attribute with a bearer token,
    and enough other records that it is decoded in a worker process."""
    request = ExportLogsServiceRequest.FromString(
        log_request([f"filler line {i} " + "." * 60 for i in range(PADDING)], service)
    )
    records = request.resource_logs[0].scope_logs[0].log_records
    secret = records.add()
    secret.CopyFrom(records[0])
    secret.body.string_value = "login failed for bob password=hunter2 from 10.0.0.7"
    del secret.attributes[:]
    secret.attributes.extend([kv("upstream.request", f"GET /me with Bearer {TOKEN}"), kv("user", "bob")])
    payload = request.SerializeToString()
    assert len(payload) > 16 * 1024
    return payload


def _scrubbed(metrics_text: str) -> dict[str, float]:
    return {m[0]: float(m[1]) for m in re.findall(r'^koban_scrubbed_values_total\{rule="(\w+)"\} (\S+)$',
                                                    metrics_text, re.M)}


def _secret_record(client, service: str) -> dict | None:
    rows = client.logs(f"service:{service} bob", from_="now-1h")["rows"]
    return next((r for r in rows if "login failed" in r["body"]), None)


def test_secrets_are_masked_before_they_are_stored_and_counted(make_server):
    server = make_server().start()
    body = _request_with_secrets("scrubbed")
    # the first request to a decode worker waits for it to start: a generous timeout
    response = httpx.post(server.url + "/v1/logs", content=body, headers=PROTOBUF, timeout=30)
    assert response.status_code == 200
    client = server.client()
    row = server.wait_for(lambda: _secret_record(client, "scrubbed"), what="the record with secrets")
    assert row["body"] == "login failed for bob password=[REDACTED] from 10.0.0.7"
    assert row["attributes"]["upstream.request"] == "GET /me with Bearer [REDACTED]"
    assert row["attributes"]["user"] == "bob"
    assert client.logs("hunter2", from_="now-1h")["rows"] == []
    counts = _scrubbed(client.metrics_text())
    assert counts.get("password") == 1.0
    assert counts.get("bearer_token") == 1.0


def test_wal_replay_after_kill_9_stores_masked_values(make_server, tmp_path):
    data_dir = tmp_path / "data"
    # the writer waits a minute to fill its batch: the record is acknowledged (in the
    # WAL) but not in the store when the server is killed
    server = make_server(data_dir, batch_max_delay_ms=60_000, batch_idle_ms=60_000).start()
    body = _request_with_secrets("replayed")
    response = httpx.post(server.url + "/v1/logs", content=body, headers=PROTOBUF, timeout=30)
    assert response.status_code == 200
    server.kill()

    server = make_server(data_dir).start()
    assert "replayed" in server.log() and "from the write-ahead log" in server.log()
    client = server.client()
    row = server.wait_for(lambda: _secret_record(client, "replayed"), what="the replayed record")
    assert row["body"] == "login failed for bob password=[REDACTED] from 10.0.0.7"
    assert row["attributes"]["upstream.request"] == "GET /me with Bearer [REDACTED]"
    assert client.logs("hunter2", from_="now-1h")["rows"] == []


def test_a_user_rule_from_koban_toml_masks_what_it_names(make_server):
    config = '[[scrub_rules]]\nname = "ticket"\npattern = "TICKET-\\\\d+"\nreplacement = "TICKET-?"\n'
    server = make_server(config_toml=config).start()
    body = log_request(["closed TICKET-4711 for bob"], "tickets")
    assert httpx.post(server.url + "/v1/logs", content=body, headers=PROTOBUF, timeout=30).status_code == 200
    client = server.client()
    rows = server.wait_for(lambda: client.logs("service:tickets", from_="now-1h")["rows"], what="the log")
    assert rows[0]["body"] == "closed TICKET-? for bob"
    assert _scrubbed(client.metrics_text()).get("ticket") == 1.0


def test_a_bad_rule_in_koban_toml_stops_the_server_naming_it(make_server):
    server = make_server(config_toml='[[scrub_rules]]\nname = "broken"\npattern = "(unclosed"\n')
    try:
        server.start(timeout_s=20)
    except RuntimeError as exc:
        assert "scrub_rules[0] ('broken'): invalid regular expression" in str(exc)
    else:
        raise AssertionError("the server started with an invalid scrub rule")
