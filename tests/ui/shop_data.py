"""A small, fixed data set for the UI tests: one failing checkout trace with its logs,
and plain web logs around it, sent through OTLP/HTTP like any client would."""

from __future__ import annotations

import time

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

TRACE_ID = "5eed0000000000000000000000c0ffee"
ERROR_SPAN = "00000000000000e3"
MS = 1_000_000
STACK = 'Traceback (most recent call last):\n  File "pay.py", line 7, in charge\nCardDeclined: card declined'

# (span id, parent, service, name, kind, start ms, duration ms, error)
SPANS = [
    ("00000000000000a1", "", "frontend", "POST /checkout", Span.SPAN_KIND_SERVER, 0, 120, False),
    ("00000000000000b2", "00000000000000a1", "checkout", "POST /orders", Span.SPAN_KIND_SERVER, 5, 110, False),
    ("00000000000000c1", "00000000000000b2", "inventory", "GET /stock/{sku}", Span.SPAN_KIND_SERVER, 10, 30, False),
    ("00000000000000d1", "00000000000000c1", "inventory", "SELECT stock", Span.SPAN_KIND_CLIENT, 12, 20, False),
    (ERROR_SPAN, "00000000000000b2", "payments", "POST /charge", Span.SPAN_KIND_SERVER, 45, 60, True),
]
SPAN_COUNT = len(SPANS)


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource(service: str, host: str) -> Resource:
    return Resource(attributes=[_kv("service.name", service), _kv("host.name", host)])


def trace_request(start_ns: int) -> bytes:
    resource_spans = []
    for span_id, parent, service, name, kind, start_ms, dur_ms, error in SPANS:
        begin = start_ns + start_ms * MS
        span = Span(
            trace_id=bytes.fromhex(TRACE_ID), span_id=bytes.fromhex(span_id),
            parent_span_id=bytes.fromhex(parent) if parent else b"", name=name, kind=kind,
            start_time_unix_nano=begin, end_time_unix_nano=begin + dur_ms * MS,
            attributes=[_kv("http.route", name)],
            status=Status(code=Status.STATUS_CODE_ERROR, message="card declined") if error else Status(),
        )
        if error:
            span.events.add(time_unix_nano=begin + 50 * MS, name="exception", attributes=[
                _kv("exception.type", "CardDeclined"), _kv("exception.message", "card declined"),
                _kv("exception.stacktrace", STACK)])
        resource_spans.append(ResourceSpans(resource=_resource(service, f"{service}-1"),
                                            scope_spans=[ScopeSpans(spans=[span])]))
    return ExportTraceServiceRequest(resource_spans=resource_spans).SerializeToString()


def log_request(service: str, lines: list[tuple[int, str, str, dict[str, str]]], *,
                trace_id: str = "", span_id: str = "") -> bytes:
    """One resource's log records: (time ns, severity, body, attributes) each."""
    numbers = {"INFO": 9, "WARN": 13, "ERROR": 17}
    records = [
        LogRecord(time_unix_nano=ts, severity_text=sev, severity_number=numbers[sev],
                  body=AnyValue(string_value=body), attributes=[_kv(k, v) for k, v in attrs.items()],
                  trace_id=bytes.fromhex(trace_id) if trace_id else b"",
                  span_id=bytes.fromhex(span_id) if span_id else b"")
        for ts, sev, body, attrs in lines
    ]
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=_resource(service, f"{service}-1"), scope_logs=[ScopeLogs(log_records=records)])]).SerializeToString()


def post(url: str, path: str, body: bytes) -> None:
    r = httpx.post(url + path, content=body, headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    r.raise_for_status()


def load(url: str) -> int:
    """Send the data set, its times within the last two minutes; returns the trace's start."""
    now = time.time_ns()
    start = now - 60 * 10**9
    post(url, "/v1/traces", trace_request(start))
    post(url, "/v1/logs", log_request("payments", [
        (start + 50 * MS, "ERROR", "charge failed: card declined", {"payment.provider": "acme", "order.id": "ord-7"}),
    ], trace_id=TRACE_ID, span_id=ERROR_SPAN))
    post(url, "/v1/logs", log_request("checkout", [
        (start + 6 * MS, "INFO", "checkout started for order ord-7", {"order.id": "ord-7"}),
    ], trace_id=TRACE_ID, span_id="00000000000000b2"))
    web = [(now - (90 - i) * 10**9, "WARN" if i % 5 == 0 else "INFO", f"GET /page/{i} 200",
            {"http.method": "GET" if i % 2 else "POST", "seq": str(i)}) for i in range(30)]
    post(url, "/v1/logs", log_request("web", web))
    return start
