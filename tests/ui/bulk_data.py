"""A larger data set for the UI's load test: many logs and spans over the last hour
and one 50-span trace, the shape benchmarks/ui.py uses with 1,000,000 logs."""

from __future__ import annotations

import random
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ui.shop_data import post

SERVICES = ("api-gateway", "checkout", "inventory", "payments", "pricing")
SEVERITIES = (("INFO", 9), ("INFO", 9), ("INFO", 9), ("DEBUG", 5), ("WARN", 13), ("ERROR", 17))
TRACE_ID = "b1e50000000000000000000000000050"
TRACE_SPANS = 50
MS = 1_000_000
HOUR_NS = 3600 * 10**9


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def logs_body(rng: random.Random, n: int, now_ns: int) -> bytes:
    request = ExportLogsServiceRequest()
    for svc in SERVICES:
        rl = request.resource_logs.add()
        rl.resource.attributes.extend([_kv("service.name", svc), _kv("host.name", f"{svc}-1")])
        scope = rl.scope_logs.add()
        for _ in range(n // len(SERVICES)):
            sev, num = rng.choice(SEVERITIES)
            rec = scope.log_records.add(time_unix_nano=now_ns - rng.randrange(HOUR_NS - 60 * 10**9),
                                        severity_text=sev, severity_number=num)
            rec.body.string_value = f"request {rng.randrange(10**6)} handled in {rng.randrange(900)}ms"
            rec.attributes.append(_kv("http.method", rng.choice(("GET", "POST"))))
    return request.SerializeToString()


def spans_body(rng: random.Random, n: int, now_ns: int) -> bytes:
    request = ExportTraceServiceRequest()
    for svc in SERVICES:
        scope = request.resource_spans.add()
        scope.resource.attributes.append(_kv("service.name", svc))
        spans = scope.scope_spans.add()
        for _ in range(n // len(SERVICES)):
            begin = now_ns - rng.randrange(HOUR_NS - 60 * 10**9)
            span = spans.spans.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                                   name=f"GET /{svc}/{rng.randrange(5)}", kind=Span.SPAN_KIND_SERVER,
                                   start_time_unix_nano=begin, end_time_unix_nano=begin + rng.randrange(1, 500) * MS)
            if rng.random() < 0.05:
                span.status.code = Status.STATUS_CODE_ERROR
    return request.SerializeToString()


def trace_body(start_ns: int) -> bytes:
    """TRACE_SPANS spans over five services, three levels deep, the last one failing."""
    request = ExportTraceServiceRequest()
    scopes = {}
    for svc in SERVICES:
        rs = request.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", svc))
        scopes[svc] = rs.scope_spans.add()
    ids = [f"{0xb1e5000000000000 + i:016x}" for i in range(TRACE_SPANS)]
    for i, span_id in enumerate(ids):
        parent = "" if i == 0 else ids[0] if i < 8 else ids[1 + (i % 7)]
        begin = start_ns + i * 7 * MS
        span = scopes[SERVICES[i % len(SERVICES)]].spans.add(
            trace_id=bytes.fromhex(TRACE_ID), span_id=bytes.fromhex(span_id),
            parent_span_id=bytes.fromhex(parent) if parent else b"", name=f"GET /bench/{i}",
            kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=begin,
            end_time_unix_nano=begin + (400 if i == 0 else 20 + (i * 13) % 60) * MS)
        if i == TRACE_SPANS - 1:
            span.status.code = Status.STATUS_CODE_ERROR
    return request.SerializeToString()


def load(url: str, logs: int, spans: int, batch: int = 2000) -> None:
    rng = random.Random(42)
    now = time.time_ns()
    for _ in range(logs // batch):
        post(url, "/v1/logs", logs_body(rng, batch, now))
    for _ in range(spans // batch):
        post(url, "/v1/traces", spans_body(rng, batch, now))
    post(url, "/v1/traces", trace_body(now - 5 * 60 * 10**9))
