"""Turn the shop's plans into real OpenTelemetry data sent over OTLP/HTTP protobuf.

Each service is its own Resource, so it gets its own tracer, logger and meter
providers, exactly as five separate processes would; the demo therefore exercises
koban's receivers like any OTel client. Nothing is registered globally.
"""

from __future__ import annotations

import threading

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from koban.demo.shop import SERVER, Gauge, LogLine, Plan, Service, Step

SCOPE = "koban.demo"
_KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}
_SEVERITIES = {
    "debug": (SeverityNumber.DEBUG, "DEBUG"),
    "info": (SeverityNumber.INFO, "INFO"),
    "warn": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
}
_EXPORT_TIMEOUT_S = 5.0  # an absent koban should not hold up Ctrl-C for long


class ServiceTelemetry:
    """The three providers of one service, with its request instruments."""

    def __init__(self, target: str, service: Service, gauges: list[Gauge], *,
                 export_delay_ms: int, metric_interval_ms: int, headers: dict[str, str] | None = None) -> None:
        resource = Resource.create({
            "service.name": service.name,
            "service.version": service.version,
            "deployment.environment": "demo",
            "host.name": service.host,
        })
        # shutdown_on_exit=False: run_demo shuts every provider down itself, and a
        # redeployed service must not leave an atexit hook behind.
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{target}/v1/traces", timeout=_EXPORT_TIMEOUT_S, headers=headers),
            schedule_delay_millis=export_delay_ms,
        ))
        self.logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=f"{target}/v1/logs", timeout=_EXPORT_TIMEOUT_S, headers=headers),
            schedule_delay_millis=export_delay_ms,
        ))
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{target}/v1/metrics", timeout=_EXPORT_TIMEOUT_S, headers=headers),
            export_interval_millis=metric_interval_ms,
        )
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)

        self.tracer = self.tracer_provider.get_tracer(SCOPE)
        self.logger = self.logger_provider.get_logger(SCOPE)
        meter = self.meter_provider.get_meter(SCOPE)
        self.requests = meter.create_counter(
            "http.server.requests", unit="{request}", description="HTTP requests served")
        self.duration = meter.create_histogram(
            "http.server.duration", unit="ms", description="Time to serve an HTTP request")
        for gauge in gauges:
            meter.create_observable_gauge(
                gauge.name, callbacks=[_observer(gauge)], unit=gauge.unit, description=gauge.description)

    def log(self, line: LogLine, at_ns: int, context: Context | None = None) -> None:
        number, text = _SEVERITIES[line.severity]
        self.logger.emit(timestamp=at_ns, observed_timestamp=at_ns, context=context, severity_number=number,
                         severity_text=text, body=line.body, attributes=line.attributes)

    def shutdown(self) -> list[threading.Thread]:
        """Flush what is buffered and stop the export threads, each provider in a thread
        of its own (against a koban that is down, each waits out its export timeout);
        returns the threads to join."""
        threads = [threading.Thread(target=p.shutdown, name=f"demo-shutdown-{p.__class__.__name__}")
                   for p in (self.tracer_provider, self.logger_provider, self.meter_provider)]
        for thread in threads:
            thread.start()
        return threads


def _observer(gauge: Gauge):
    def observe(options: CallbackOptions):
        return [Observation(value, attributes) for value, attributes in gauge.read()]

    return observe


class Fleet:
    """The telemetry of every service of the shop, by service name."""

    def __init__(self, target: str, *, export_delay_ms: int = 1000, metric_interval_ms: int = 5000,
                 headers: dict[str, str] | None = None) -> None:
        """`headers` go with every export (an ingest key when the server has auth on)."""
        self.target = target.rstrip("/")
        self._opts = {"export_delay_ms": export_delay_ms, "metric_interval_ms": metric_interval_ms,
                      "headers": headers}
        self._services: dict[str, ServiceTelemetry] = {}
        self._stopping: list[threading.Thread] = []

    def start(self, service: Service, gauges: list[Gauge]) -> None:
        """Start `service`'s providers; a service already running is shut down first,
        as a redeployed process would be (its Resource carries the new version)."""
        old = self._services.pop(service.name, None)
        if old is not None:  # without blocking the requests of the other services
            self._stopping += old.shutdown()
        self._services[service.name] = ServiceTelemetry(self.target, service, gauges, **self._opts)

    def emit(self, plan: Plan, end_ns: int) -> str:
        """Emit `plan` as if its request finished at `end_ns` (so no span lies in the
        future). Returns the trace id, in hex."""
        base = end_ns - plan.root.end
        span = self._emit_step(plan.root, None, base)
        for service, line in plan.loose_logs:
            self.log(service, line, base + line.at)
        return format(span.get_span_context().trace_id, "032x")

    def log(self, service: str, line: LogLine, at_ns: int) -> None:
        """A log line of `service` outside any trace."""
        self._services[service].log(line, at_ns)

    def _emit_step(self, step: Step, parent: Context | None, base: int) -> trace.Span:
        tel = self._services[step.service]
        span = tel.tracer.start_span(step.name, context=parent, kind=_KINDS[step.kind],
                                     attributes=step.attributes, start_time=base + step.start)
        context = trace.set_span_in_context(span)
        for line in step.logs:
            tel.log(line, base + line.at, context)
        for child in step.children:
            self._emit_step(child, context, base)
        if step.exception is not None:
            span.record_exception(step.exception, timestamp=base + step.end, escaped=True)
        if step.error:
            span.set_status(Status(StatusCode.ERROR, step.error))
        span.end(end_time=base + step.end)
        if step.kind == SERVER:
            attrs = {key: step.attributes[key] for key in ("http.method", "http.route", "http.status_code")}
            tel.requests.add(1, attrs)
            tel.duration.record((step.end - step.start) / 1e6, attrs)
        return span

    def shutdown(self) -> None:
        """Flush and stop every service; returns when all are done."""
        for tel in self._services.values():
            self._stopping += tel.shutdown()
        self._services.clear()
        for thread in self._stopping:
            thread.join()
        self._stopping.clear()
