"""OTLP request bodies built with the official generated protobuf classes."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


def kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def log_request(bodies: list[str], service: str = "loadgen", *, time_ns: int | None = None) -> bytes:
    """An ExportLogsServiceRequest with one INFO record per body, all at about now."""
    now = time_ns or time.time_ns()
    records = [
        LogRecord(
            time_unix_nano=now + i,
            severity_number=9,
            severity_text="INFO",
            body=AnyValue(string_value=body),
            attributes=[kv("seq", str(i)), kv("component", "e2e")],
        )
        for i, body in enumerate(bodies)
    ]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=[kv("service.name", service)]),
                scope_logs=[ScopeLogs(log_records=records)],
            )
        ]
    )
    return request.SerializeToString()
