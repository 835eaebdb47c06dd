"""OTLP/JSON requests in the shape of the specification's examples, over HTTP, gzip
too; read back through the JSON API."""

from __future__ import annotations

import gzip
import time

import httpx
import orjson

TRACE_ID = "5b8efff798038103d269b633813fc60c"
ROOT_ID = "eee19b7ec3c1b174"
CHILD_ID = "eee19b7ec3c1b173"


def _resource(service: str) -> dict:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


def test_spec_shaped_json_logs_and_traces_read_back(server):
    now = time.time_ns()
    logs = {
        "resourceLogs": [{
            "resource": _resource("json-svc"),
            "scopeLogs": [{
                "scope": {"name": "my.library", "version": "1.0.0"},
                "logRecords": [{
                    "timeUnixNano": str(now),  # int64 as a string, as the spec encodes it
                    "observedTimeUnixNano": str(now),
                    "severityNumber": 10,
                    "severityText": "Information",
                    "traceId": TRACE_ID,
                    "spanId": ROOT_ID,
                    "body": {"stringValue": "Example log record"},
                    "attributes": [
                        {"key": "string.attribute", "value": {"stringValue": "some string"}},
                        {"key": "boolean.attribute", "value": {"boolValue": True}},
                        {"key": "int.attribute", "value": {"intValue": "10"}},
                        {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                        {"key": "array.attribute", "value": {"arrayValue": {"values": [
                            {"stringValue": "many"}, {"stringValue": "values"}]}}},
                        {"key": "map.attribute", "value": {"kvlistValue": {"values": [
                            {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}},
                    ],
                }, {
                    # missing optional fields: no severity, no ids, no attributes
                    "timeUnixNano": now - 1000,
                    "body": {"stringValue": "bare record"},
                }],
            }],
        }]
    }
    traces = {
        "resourceSpans": [{
            "resource": _resource("json-svc"),
            "scopeSpans": [{
                "scope": {"name": "my.library"},
                "spans": [
                    {"traceId": TRACE_ID, "spanId": ROOT_ID, "parentSpanId": "", "name": "I'm a server span",
                     "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now),
                     "kind": 2, "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}],
                     "status": {}},
                    {"traceId": TRACE_ID, "spanId": CHILD_ID, "parentSpanId": ROOT_ID, "name": "child",
                     "startTimeUnixNano": str(now - 4_000_000), "endTimeUnixNano": str(now - 1_000_000),
                     "kind": 3, "status": {"code": 2, "message": "boom"},
                     "events": [{"timeUnixNano": str(now - 2_000_000), "name": "retry"}]},
                ],
            }],
        }]
    }
    r1 = httpx.post(server.url + "/v1/logs", content=orjson.dumps(logs), headers={"Content-Type": "application/json"})
    r2 = httpx.post(
        server.url + "/v1/traces",
        content=gzip.compress(orjson.dumps(traces)),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert r1.headers["content-type"].startswith("application/json")
    assert r1.json() == {}  # no partial success: everything accepted

    client = server.client()
    rows = server.wait_for(
        lambda: (page := client.logs("service:json-svc")["rows"]) and len(page) == 2 and page, what="2 logs"
    )
    record, bare = rows
    assert record["body"] == "Example log record"
    assert record["severity"] == "Information" and record["severity_number"] == 10
    assert record["trace_id"] == TRACE_ID and record["span_id"] == ROOT_ID
    assert record["attributes"] == {
        "string.attribute": "some string",
        "boolean.attribute": "true",
        "int.attribute": "10",
        "double.attribute": "637.704",
        "array.attribute": '["many","values"]',
        "map.attribute.some.map.key": "some value",
    }
    assert record["timestamp_ns"] == now
    assert bare["body"] == "bare record" and bare["trace_id"] == "" and bare["attributes"] == {}

    # case-insensitive free text and attribute search over what was sent
    assert [r["body"] for r in client.logs('"EXAMPLE LOG"')["rows"]] == ["Example log record"]
    assert len(client.logs("@int.attribute:[5 TO 10]")["rows"]) == 1
    assert len(client.logs("@map.attribute.some.map.key:*")["rows"]) == 1

    spans = server.wait_for(lambda: len(client.spans("service:json-svc")["rows"]) == 2, what="2 spans")
    assert spans
    trace = client.trace(TRACE_ID.upper())["spans"]
    assert [s["span_id"] for s in trace] == [ROOT_ID, CHILD_ID]
    assert trace[0]["kind"] == "server" and trace[1]["kind"] == "client"
    assert trace[1]["status"] == "error" and trace[1]["status_message"] == "boom"
    assert trace[0]["duration_ns"] == 5_000_000
    assert trace[1]["events"][0]["name"] == "retry"


def test_json_partial_success_reports_rejected_spans(server):
    now = time.time_ns()
    traces = {"resourceSpans": [{"resource": _resource("partial"), "scopeSpans": [{"spans": [
        {"traceId": TRACE_ID, "spanId": "00f067aa0ba902b7", "name": "good",
         "startTimeUnixNano": str(now - 10), "endTimeUnixNano": str(now)},
        {"traceId": "abcd", "spanId": "00f067aa0ba902b8", "name": "short trace id",
         "startTimeUnixNano": str(now - 10), "endTimeUnixNano": str(now)},
    ]}]}]}
    response = httpx.post(server.url + "/v1/traces", json=traces)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and partial["errorMessage"]
    client = server.client()
    rows = server.wait_for(lambda: client.spans("service:partial")["rows"], what="the good span")
    assert [r["name"] for r in rows] == ["good"]
