"""OTLP/HTTP: POST /v1/logs, /v1/traces, /v1/metrics (protobuf or JSON, optionally gzip).

Responses follow the OTLP/HTTP specification: the same Content-Type as the request,
an Export*ServiceResponse body with `partial_success` when some records were refused,
429/503 with Retry-After when koban cannot take the data now (errors are rendered by
api/errors.py as google.rpc.Status).
"""

from __future__ import annotations

from typing import NamedTuple

import orjson
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.requests import Request
from starlette.responses import Response

from koban.errors import UnsupportedMediaType
from koban.receive.bodies import decompress, read_limited

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


class SignalSpec(NamedTuple):
    name: str  # the signal in metric labels: logs, spans, metrics
    response_type: type
    rejected_field: str  # field of partial_success in the protobuf response
    rejected_json: str  # the same field in OTLP/JSON


SIGNALS = {
    "logs": SignalSpec("logs", logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
    "traces": SignalSpec("spans", trace_service_pb2.ExportTraceServiceResponse, "rejected_spans", "rejectedSpans"),
    "metrics": SignalSpec(
        "metrics", metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points", "rejectedDataPoints"
    ),
}


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _format(request: Request) -> str:
    mt = media_type(request)
    if mt == PROTOBUF:
        return "proto"
    if mt == JSON:
        return "json"
    raise UnsupportedMediaType(
        f"Content-Type {mt or '(none)'!r} is not supported on {request.url.path}; "
        f"use {PROTOBUF} or {JSON}"
    )


def export_endpoint(path_signal: str):
    """The Starlette endpoint for one OTLP signal ("logs", "traces", "metrics")."""
    spec = SIGNALS[path_signal]

    async def export(request: Request) -> Response:
        runtime = request.app.state.runtime
        fmt = _format(request)
        limit = runtime.settings.max_body_bytes
        raw = await read_limited(request.stream(), request.headers.get("content-length"), limit)
        body = decompress(raw, request.headers.get("content-encoding"), limit)
        codec = f"otlp-{fmt}/{path_signal}"
        batch = await runtime.intake.receive(codec, body, protocol=f"otlp-http-{fmt}", signal=spec.name)
        return _success(spec, fmt, batch.rejected, batch.rejected_reason)

    return export


def _success(spec: SignalSpec, fmt: str, rejected: int, reason: str) -> Response:
    if fmt == "json":
        payload: dict = {}
        if rejected:
            payload["partialSuccess"] = {spec.rejected_json: str(rejected), "errorMessage": reason}
        return Response(orjson.dumps(payload), media_type=JSON)
    message = spec.response_type()
    if rejected:
        setattr(message.partial_success, spec.rejected_field, rejected)
        message.partial_success.error_message = reason
    return Response(message.SerializeToString(), media_type=PROTOBUF)


