"""Every kind of bad input gets a 4xx with a reason, and the server keeps serving."""

from __future__ import annotations

import gzip

import httpx
import pytest

from e2e.payloads import log_request

PROTOBUF = "application/x-protobuf"


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    from e2e.conftest import KobanServer

    tmp = tmp_path_factory.mktemp("bad-input")
    server = KobanServer(tmp / "data", tmp / "server.log", max_body_bytes=4096).start()
    yield server
    server.stop()


CASES = [
    ("malformed protobuf", "POST", "/v1/logs", {"Content-Type": PROTOBUF}, b"\xff\xff\xff\xff not protobuf", 400),
    ("malformed JSON", "POST", "/v1/traces", {"Content-Type": "application/json"}, b'{"resourceSpans": [', 400),
    ("JSON of the wrong shape", "POST", "/v1/logs", {"Content-Type": "application/json"},
     b'{"resourceLogs": {"not": "a list"}}', 400),
    ("wrong content type", "POST", "/v1/logs", {"Content-Type": "text/plain"}, b"hello", 415),
    ("no content type", "POST", "/v1/metrics", {}, b"hello", 415),
    ("body over the limit", "POST", "/v1/logs", {"Content-Type": PROTOBUF}, b"\x00" * 5000, 413),
    ("gzip bomb", "POST", "/v1/logs", {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
     gzip.compress(b"\x00" * 2_000_000), 413),
    ("invalid gzip", "POST", "/v1/logs", {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}, b"not gzip", 400),
    ("unknown encoding", "POST", "/v1/logs", {"Content-Type": PROTOBUF, "Content-Encoding": "br"}, b"x", 415),
    ("unknown path", "GET", "/api/nope", {}, b"", 404),
    ("wrong method", "GET", "/v1/logs", {}, b"", 405),
    ("query that does not parse", "GET", "/api/logs?q=service:(web", {}, b"", 400),
    ("unknown time format", "GET", "/api/logs?from=yesterday-ish", {}, b"", 400),
    ("range that ends before it starts", "GET", "/api/logs?from=now-1h&to=now-2h", {}, b"", 400),
    ("limit that is not a number", "GET", "/api/logs?limit=lots", {}, b"", 400),
    ("limit over the cap", "GET", "/api/spans?limit=100000", {}, b"", 400),
    ("bad cursor", "GET", "/api/logs?cursor=%%%garbage", {}, b"", 400),
    ("histogram interval too small", "GET", "/api/logs/histogram?from=now-7d&interval=1s", {}, b"", 400),
    ("facets without a field", "GET", "/api/logs/facets", {}, b"", 400),
    ("trace id that is not hex", "GET", "/api/traces/not-a-trace", {}, b"", 400),
    ("trace that does not exist", "GET", "/api/traces/" + "ab" * 16, {}, b"", 404),
]


@pytest.mark.parametrize("name,method,path,headers,body,status", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_4xx_with_a_reason(small_server, name, method, path, headers, body, status):
    response = httpx.request(method, small_server.url + path, headers=headers, content=body, timeout=10)
    assert response.status_code == status, response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        payload = response.json()
        assert payload.get("error") or payload.get("message")
    else:  # OTLP protobuf errors are a google.rpc.Status
        from google.rpc import status_pb2

        assert status_pb2.Status.FromString(response.content).message
    assert small_server.client().health()["status"] == "ok"


def test_a_syntax_error_names_the_position_and_what_was_expected(small_server):
    query = "service:web AND (status:error"
    response = httpx.get(small_server.url + "/api/logs", params={"q": query})
    assert response.status_code == 400
    body = response.json()
    assert body["position"] == len(query)  # where the ')' was expected
    assert body["expected"] == "')'"
    assert "opened at 16" in body["error"]


def test_the_server_still_ingests_after_bad_input(small_server):
    ok = httpx.post(
        small_server.url + "/v1/logs", content=log_request(["still alive"], "after-bad"),
        headers={"Content-Type": PROTOBUF},
    )
    assert ok.status_code == 200
    client = small_server.client()
    rows = small_server.wait_for(lambda: client.logs("service:after-bad")["rows"], what="the record")
    assert rows[0]["body"] == "still alive"
