"""OTLP/gRPC: the three collector services (logs, traces, metrics) on one aio server.

Requests arrive as raw bytes (no deserializer) so the same bytes that were decoded are
the ones written to the write-ahead log, exactly as on the HTTP path. Overload answers
RESOURCE_EXHAUSTED with a google.rpc.RetryInfo in the status details, which is what
tells OTLP exporters the request may be retried.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from koban.auth import policy
from koban.errors import BadRequest, KobanError, Overloaded, PayloadTooLarge, Unavailable
from koban.receive.otlp_http import SIGNALS

log = logging.getLogger("koban.receive.grpc")

SERVICES = {
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}

_GRPC_CODES = {
    Overloaded: (grpc.StatusCode.RESOURCE_EXHAUSTED, code_pb2.RESOURCE_EXHAUSTED),
    Unavailable: (grpc.StatusCode.UNAVAILABLE, code_pb2.UNAVAILABLE),
    BadRequest: (grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
    # too many records: retrying the same request cannot help, and OTLP exporters
    # retry RESOURCE_EXHAUSTED, so the non-retryable INVALID_ARGUMENT (as HTTP's 413)
    PayloadTooLarge: (grpc.StatusCode.INVALID_ARGUMENT, code_pb2.INVALID_ARGUMENT),
}


def _codes_for(exc: KobanError) -> tuple[grpc.StatusCode, int]:
    for cls, codes in _GRPC_CODES.items():
        if isinstance(exc, cls):
            return codes
    return grpc.StatusCode.INTERNAL, code_pb2.INTERNAL


async def _check_ingest_key(auth, context: grpc.aio.ServicerContext) -> None:
    """Abort with UNAUTHENTICATED / PERMISSION_DENIED unless the call's metadata carries
    an ingest key (`authorization: Bearer kbi_...`, as OTLP exporters' `headers` send)."""
    metadata = {key.lower(): value for key, value in context.invocation_metadata() or () if isinstance(value, str)}
    verdict = auth.ingest_verdict(metadata.get)
    if verdict == policy.UNAUTHENTICATED:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "send an ingest key as 'authorization: Bearer kbi_...'")
    if verdict != policy.ALLOW:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "this credential may not send telemetry")


def _export_handler(runtime, signal: str):
    spec = SIGNALS[signal]

    async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if runtime.settings.auth:
            await _check_ingest_key(runtime.auth, context)
        try:
            batch = await runtime.intake.receive(
                f"otlp-proto/{signal}", request, protocol="otlp-grpc", signal=spec.name
            )
        except KobanError as exc:
            code, rpc_code = _codes_for(exc)
            status = status_pb2.Status(code=rpc_code, message=exc.message)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after)))
                status.details.add().Pack(info)
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            await context.abort(code, exc.message)
        response = spec.response_type()
        if batch.rejected:
            setattr(response.partial_success, spec.rejected_field, batch.rejected)
            response.partial_success.error_message = batch.rejected_reason
        return response.SerializeToString()

    return export


async def start_grpc_server(runtime, host: str, port: int) -> grpc.aio.Server:
    """Start the OTLP/gRPC server on host:port; returns it (call `stop` on it)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", runtime.settings.max_body_bytes),
            ("grpc.so_reuseport", 0),
        ]
    )
    handlers = []
    for signal, service in SERVICES.items():
        method = grpc.unary_unary_rpc_method_handler(_export_handler(runtime, signal))
        handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
    server.add_generic_rpc_handlers(handlers)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot bind OTLP/gRPC to {address}")
    await server.start()
    log.info("OTLP/gRPC listening on %s", address)
    return server
