"""Load generators for the reliability tests that remember exactly which records a
server acknowledged, and the check that each of them was stored exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import duckdb
import grpc
import httpx
import orjson
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from e2e.payloads import log_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}


def json_log_request(bodies: list[str], service: str) -> bytes:
    """The OTLP/JSON twin of e2e.payloads.log_request."""
    now = time.time_ns()
    records = [{"timeUnixNano": str(now + i), "severityText": "INFO", "body": {"stringValue": b}}
               for i, b in enumerate(bodies)]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return orjson.dumps({"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": records}]}]})


class Acks:
    """Thread-safe record of what clients sent and what the server acknowledged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: list[str] = []
        self.statuses: Counter = Counter()
        self.retry_after: list[str | None] = []
        self.offered_bytes = 0

    def offer(self, payload: bytes) -> None:
        with self.lock:
            self.offered_bytes += len(payload)

    def record(self, status: object, bodies: list[str], ok: bool, retry_after: str | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
            if ok:
                self.acked.extend(bodies)
            elif retry_after is not None or status in (429, 503, grpc.StatusCode.RESOURCE_EXHAUSTED):
                self.retry_after.append(retry_after)


def send_http(url: str, name: str, service: str, stop: threading.Event, acks: Acks, *,
              per_request: int = 20, padding: int = 0, as_json: bool = False, pause_s: float = 0.0) -> None:
    """POSTs batches of unique bodies to /v1/logs until `stop` or the server is gone."""
    seq = 0
    with httpx.Client(timeout=30) as http:
        while not stop.is_set():
            bodies = [f"{name}-{seq}-{i}" + "." * padding for i in range(per_request)]
            seq += 1
            payload = json_log_request(bodies, service) if as_json else log_request(bodies, service)
            acks.offer(payload)
            try:
                r = http.post(url + "/v1/logs", content=payload, headers=JSON if as_json else PROTOBUF)
            except httpx.TransportError:
                # unanswered (killed, or too slow on a loaded machine): not acknowledged,
                # so it may or may not be stored
                if stop.wait(0.05):
                    return
                continue
            acks.record(r.status_code, bodies, r.status_code == 200, r.headers.get("retry-after"))
            if r.status_code != 200 or pause_s:
                time.sleep(pause_s or 0.01)


def send_grpc(target: str, name: str, service: str, stop: threading.Event, acks: Acks, *,
              per_request: int = 20, padding: int = 0, pause_s: float = 0.0) -> None:
    """OTLP/gRPC Export calls of unique bodies until `stop` or the server is gone."""
    seq = 0
    with grpc.insecure_channel(target) as channel:
        stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        while not stop.is_set():
            bodies = [f"{name}-{seq}-{i}" + "." * padding for i in range(per_request)]
            seq += 1
            payload = log_request(bodies, service)
            acks.offer(payload)
            request = logs_service_pb2.ExportLogsServiceRequest.FromString(payload)
            try:
                stub.Export(request, timeout=30)
            except grpc.RpcError as exc:
                code = exc.code()
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and stop.is_set():
                    return
                retry = next((v for k, v in (exc.trailing_metadata() or ()) if k == "grpc-status-details-bin"), None)
                acks.record(code, bodies, False, "details" if retry is not None else None)
                if code == grpc.StatusCode.UNAVAILABLE:
                    time.sleep(0.05)  # the server is down or restarting; refused calls are not acked
                continue
            acks.record(grpc.StatusCode.OK, bodies, True)
            if pause_s:
                time.sleep(pause_s)


def stored_bodies(data_dir: Path, service: str) -> Counter:
    """Bodies of `service`'s log records in the DuckDB file (the server must be stopped)."""
    with duckdb.connect(str(data_dir / "koban.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT Body FROM otel_logs WHERE ServiceName = ?", [service]).fetchall()
    return Counter(body for (body,) in rows)


def assert_exactly_once(acked: list[str], stored: Counter) -> None:
    missing = [b for b in acked if stored[b] == 0]
    duplicated = [b for b, n in stored.items() if n > 1]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged records lost, e.g. {missing[:3]}"
    assert not duplicated, f"{len(duplicated)} records stored more than once, e.g. {duplicated[:3]}"
