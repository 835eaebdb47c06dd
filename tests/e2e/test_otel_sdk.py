"""The real OpenTelemetry Python SDK exporting to a real `koban serve`, over OTLP/HTTP
protobuf and over OTLP/gRPC; everything read back through the JSON API."""

from __future__ import annotations

import logging

import duckdb
import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def _exporters(transport: str, server):
    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return (
            OTLPSpanExporter(endpoint=server.url + "/v1/traces"),
            OTLPLogExporter(endpoint=server.url + "/v1/logs"),
            OTLPMetricExporter(endpoint=server.url + "/v1/metrics"),
        )
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    endpoint = f"127.0.0.1:{server.grpc_port}"
    return (
        OTLPSpanExporter(endpoint=endpoint, insecure=True),
        OTLPLogExporter(endpoint=endpoint, insecure=True),
        OTLPMetricExporter(endpoint=endpoint, insecure=True),
    )


def _send_telemetry(transport: str, server, service: str) -> dict:
    """Emit one trace (server span + failing client child), two correlated logs and
    three metric kinds with the SDK; returns what was sent."""
    resource = Resource.create({"service.name": service, "host.name": "box-1", "deployment.environment": "test"})
    span_exporter, log_exporter, metric_exporter = _exporters(transport, server)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])

    py_logger = logging.getLogger(f"koban-e2e-{service}")
    py_logger.propagate = False
    py_logger.setLevel(logging.INFO)
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    py_logger.addHandler(handler)
    tracer = tracer_provider.get_tracer("e2e")
    meter = meter_provider.get_meter("e2e")
    try:
        with tracer.start_as_current_span(
            "POST /checkout", kind=SpanKind.SERVER, attributes={"http.route": "/checkout", "http.status_code": 500}
        ) as root:
            py_logger.info("checkout started", extra={"order.id": "o-42", "cart.items": 3})
            with tracer.start_as_current_span("charge card", kind=SpanKind.CLIENT) as child:
                try:
                    raise TimeoutError("gateway timed out")
                except TimeoutError as exc:
                    child.record_exception(exc)
                    child.set_status(Status(StatusCode.ERROR, "gateway timed out"))
                py_logger.error("payment failed: gateway timed out", extra={"order.id": "o-42"})
            root.set_status(Status(StatusCode.ERROR))
            trace_id = format(root.get_span_context().trace_id, "032x")
            root_span_id = format(root.get_span_context().span_id, "016x")
            child_span_id = format(child.get_span_context().span_id, "016x")
        meter.create_counter("orders.placed").add(3, {"region": "eu"})
        meter.create_histogram("checkout.latency", unit="ms").record(120.0, {"region": "eu"})
        meter.create_up_down_counter("queue.depth").add(7)
    finally:
        py_logger.removeHandler(handler)
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()  # exports the metrics once
    return {"trace_id": trace_id, "root": root_span_id, "child": child_span_id}


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_telemetry_reads_back_field_by_field(transport, server):
    service = f"sdk-{transport}"
    sent = _send_telemetry(transport, server, service)
    client = server.client()

    logs = server.wait_for(
        lambda: client.logs(f"service:{service}")["rows"] if len(client.logs(f"service:{service}")["rows"]) == 2 else None,
        what="two log records",
    )
    newest, oldest = logs
    assert newest["body"] == "payment failed: gateway timed out"
    assert newest["severity"].lower() == "error"
    assert newest["trace_id"] == sent["trace_id"]
    assert newest["span_id"] == sent["child"]
    assert newest["attributes"]["order.id"] == "o-42"
    assert newest["resource"]["service.name"] == service
    assert newest["resource"]["host.name"] == "box-1"
    assert newest["service"] == service
    assert newest["timestamp"].endswith("Z") and len(newest["timestamp"]) == len("2026-01-01T00:00:00.000000000Z")
    assert oldest["body"] == "checkout started"
    assert oldest["severity"].lower() == "info"
    assert oldest["attributes"]["cart.items"] == "3"
    assert oldest["span_id"] == sent["root"]

    spans = server.wait_for(
        lambda: client.trace(sent["trace_id"])["spans"] if _has_trace(client, sent["trace_id"], 2) else None,
        what="the trace's two spans",
    )
    root, child = spans
    assert root["span_id"] == sent["root"] and root["parent_span_id"] == ""
    assert root["name"] == "POST /checkout" and root["kind"] == "server"
    assert root["attributes"]["http.status_code"] == "500"
    assert root["status"] == "error"
    assert child["parent_span_id"] == sent["root"]
    assert child["kind"] == "client" and child["status"] == "error"
    assert child["status_message"] == "gateway timed out"
    assert child["events"][0]["name"] == "exception"
    assert child["events"][0]["attributes"]["exception.type"] == "TimeoutError"
    assert "Traceback" in child["events"][0]["attributes"]["exception.stacktrace"]
    assert root["start_ns"] <= child["start_ns"]
    assert child["duration_ns"] <= root["duration_ns"]

    errors = client.spans(f"service:{service} status:error kind:server")["rows"]
    assert [s["span_id"] for s in errors] == [sent["root"]]

    services = {s["service"]: s for s in client.services()["services"]}
    assert services[service]["requests"] == 1 and services[service]["errors"] == 1

    server.wait_for(lambda: _metric_received(client), what="metric points acknowledged")
    assert server.stop() == 0
    with duckdb.connect(str(server.data_dir / "koban.duckdb"), read_only=True) as db:
        sums = db.execute(
            "SELECT MetricName, Value, IsMonotonic, Attributes['region'] FROM otel_metrics_sum "
            "WHERE ServiceName = ? ORDER BY MetricName",
            [service],
        ).fetchall()
        hist = db.execute(
            "SELECT Count, Sum, MetricUnit FROM otel_metrics_histogram WHERE ServiceName = ? AND MetricName = ?",
            [service, "checkout.latency"],
        ).fetchall()
    assert sums == [("orders.placed", 3.0, True, "eu"), ("queue.depth", 7.0, False, None)]
    assert hist == [(1, 120.0, "ms")]


def _has_trace(client, trace_id: str, n: int) -> bool:
    from koban.client import KobanAPIError

    try:
        return len(client.trace(trace_id)["spans"]) == n
    except KobanAPIError as exc:
        if exc.status == 404:
            return False
        raise


def _metric_received(client) -> bool:
    for line in client.metrics_text().splitlines():
        if line.startswith("koban_records_received_total") and 'signal="metrics"' in line:
            return float(line.rsplit(" ", 1)[1]) >= 3
    return False
