"""The demo shop, played for a few seconds against a recording OTLP/HTTP endpoint."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from koban.demo import run_demo
from koban.demo.shop import Shop

RUN_S = 3.0
# With this seed the first charge failures come within the first 20 requests, long
# before the first deploy makes the request sequence depend on timing.
SEED = 31


class Recorder(BaseHTTPRequestHandler):
    """Keeps every POSTed body by path, answers 200 with an empty (valid) response."""

    bodies: dict[str, list[bytes]]
    lock: threading.Lock

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.bodies[self.path].append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _attrs(kvs) -> dict[str, object]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs}


@pytest.fixture(scope="module")
def sent():
    handler = type("H", (Recorder,), {"bodies": defaultdict(list), "lock": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    messages: list[str] = []
    target = f"http://127.0.0.1:{server.server_address[1]}"
    demo = threading.Thread(target=run_demo, args=(target,),
                            kwargs={"stop": stop, "rate": 300.0, "seed": SEED, "deploy_every_s": 1.5,
                                    "log": messages.append})
    demo.start()
    stop.wait(RUN_S)
    stop.set()
    demo.join(timeout=30)
    server.shutdown()
    server.server_close()
    assert not demo.is_alive()
    spans, logs, metrics = [], [], []
    for body in handler.bodies["/v1/traces"]:
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            res = _attrs(rs.resource.attributes)
            spans += [(res, span) for ss in rs.scope_spans for span in ss.spans]
    for body in handler.bodies["/v1/logs"]:
        for rl in ExportLogsServiceRequest.FromString(body).resource_logs:
            res = _attrs(rl.resource.attributes)
            logs += [(res, rec) for sl in rl.scope_logs for rec in sl.log_records]
    for body in handler.bodies["/v1/metrics"]:
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics:
            res = _attrs(rm.resource.attributes)
            metrics += [(res, m) for sm in rm.scope_metrics for m in sm.metrics]
    return {"spans": spans, "logs": logs, "metrics": metrics, "messages": messages}


def test_spans_come_from_each_service_with_its_own_resource(sent):
    services = {res["service.name"] for res, _ in sent["spans"]}
    assert {"frontend", "checkout", "payments", "inventory"} <= services
    res = next(res for res, _ in sent["spans"] if res["service.name"] == "payments")
    assert res["deployment.environment"] == "demo"
    assert res["host.name"] and res["service.version"]


def test_a_checkout_trace_crosses_services_with_consistent_parent_links(sent):
    traces = defaultdict(list)
    for res, span in sent["spans"]:
        traces[span.trace_id].append((res["service.name"], span))
    crossing = [t for t in traces.values() if {"frontend", "checkout", "payments", "inventory"} <= {s for s, _ in t}]
    assert crossing, "no trace went through all four services"
    trace = crossing[0]
    by_id = {span.span_id: (svc, span) for svc, span in trace}
    roots = [span for _, span in trace if not span.parent_span_id]
    assert len(roots) == 1 and roots[0].kind == Span.SPAN_KIND_SERVER
    for svc, span in trace:
        if span.parent_span_id:
            parent_svc, parent = by_id[span.parent_span_id]
            assert parent.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
            assert span.end_time_unix_nano <= parent.end_time_unix_nano
            if parent_svc != svc:  # a hop: the caller's client span is the parent of the callee's server span
                assert (parent.kind, span.kind) == (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_SERVER)
    charge = next(span for svc, span in trace if svc == "payments" and span.kind == Span.SPAN_KIND_SERVER)
    assert _attrs(charge.attributes)["http.route"] == "/charge"
    db = [span for _, span in trace if _attrs(span.attributes).get("db.system") == "postgresql"]
    assert db and all(span.kind == Span.SPAN_KIND_CLIENT for span in db)


def test_logs_carry_the_ids_of_the_span_they_were_written_in(sent):
    span_ids = {(span.trace_id, span.span_id) for _, span in sent["spans"]}
    correlated = [rec for _, rec in sent["logs"] if rec.trace_id]
    assert len(correlated) > 100
    assert all((rec.trace_id, rec.span_id) in span_ids for rec in correlated)
    assert {"INFO", "WARN", "ERROR"} <= {rec.severity_text for _, rec in sent["logs"]}


def test_failed_charges_are_errors_with_a_stack_trace_and_an_error_log(sent):
    failed = [span for res, span in sent["spans"] if res["service.name"] == "payments"
              and span.status.code == Status.STATUS_CODE_ERROR and span.kind == Span.SPAN_KIND_SERVER]
    assert failed
    event = next(e for e in failed[0].events if e.name == "exception")
    assert "Traceback" in _attrs(event.attributes)["exception.stacktrace"]
    bodies = [rec.body.string_value for res, rec in sent["logs"] if res["service.name"] == "payments"
              and rec.severity_text == "ERROR"]
    assert any("card declined" in b or "gateway timeout" in b for b in bodies)


def test_stock_lookups_are_sometimes_slow(sent):
    stock = [span for res, span in sent["spans"] if res["service.name"] == "inventory"
             and span.name == "GET /stock/{sku}" and span.kind == Span.SPAN_KIND_SERVER]
    slow = [s for s in stock if s.end_time_unix_nano - s.start_time_unix_nano >= 400_000_000]
    assert stock and 0 < len(slow) < len(stock) / 2


def test_a_deploy_logs_and_brings_a_new_checkout_version(sent):
    deploys = [rec.body.string_value for res, rec in sent["logs"] if res["service.name"] == "checkout"
               and rec.body.string_value.startswith("deploying checkout v")]
    assert deploys
    versions = {res["service.version"] for res, _ in sent["spans"] if res["service.name"] == "checkout"}
    assert len(versions) >= 2
    assert any(m.startswith("koban demo: deploying checkout") for m in sent["messages"])


def test_it_reports_a_request_counter_a_latency_histogram_and_gauges(sent):
    kinds = {m.name: m.WhichOneof("data") for _, m in sent["metrics"]}
    assert kinds["http.server.requests"] == "sum"
    assert kinds["http.server.duration"] == "histogram"
    assert kinds["inventory.stock_level"] == "gauge"
    assert kinds["process.memory.usage"] == "gauge"
    counter = next(m for res, m in sent["metrics"] if m.name == "http.server.requests")
    assert counter.sum.is_monotonic and counter.sum.data_points[0].as_int > 0


def test_the_same_seed_plans_the_same_requests():
    def plans(seed):
        shop = Shop(random.Random(seed))
        return [[(s.service, s.name, s.start, s.end) for s in shop.request().root.walk()] for _ in range(50)]

    assert plans(3) == plans(3)
    assert plans(3) != plans(4)
