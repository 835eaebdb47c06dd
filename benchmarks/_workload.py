"""The shared workload (../shared/bench/gen_workload.py) as OTLP protobuf request bodies.

Generated files are kept in benchmarks/data/ (git-ignored) and reused while their
manifest matches. Timestamps are shifted so the workload's hour ends at a given time
(now, normally), because koban's default range and retention are relative to now.

Mapping of a log line: service -> resource service.name, host -> resource host.name,
level -> severity_text and severity_number, message -> body, trace_id -> trace_id,
every other field -> a log attribute (ints and floats keep their type).
Mapping of a span: trace_id, span_id, parent_span_id, name, kind (server/client),
start/end, status (ERROR -> STATUS_CODE_ERROR, OK -> STATUS_CODE_OK), service ->
resource service.name, http.* fields -> span attributes.
"""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import ScopeLogs
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SEED = 42
HOUR_NS = 3600 * 10**9
SEVERITY_NUMBER = {"debug": 5, "info": 9, "warn": 13, "error": 17}
_LOG_FIELDS = {"timestamp", "service", "host", "level", "message", "trace_id"}
_SPAN_KIND = {"server": Span.SPAN_KIND_SERVER, "client": Span.SPAN_KIND_CLIENT}
_STATUS = {"ERROR": Status.STATUS_CODE_ERROR, "OK": Status.STATUS_CODE_OK}
_SCOPE = InstrumentationScope(name="gen_workload")


def generator_path() -> Path:
    """Where gen_workload.py is: $KOBAN_WORKLOAD_GEN, else ../shared/bench/ beside the repo.
    Raises SystemExit naming both when neither exists."""
    env = os.environ.get("KOBAN_WORKLOAD_GEN")
    path = Path(env) if env else HERE.parent.parent / "shared" / "bench" / "gen_workload.py"
    if not path.is_file():
        raise SystemExit(f"workload generator not found at {path}; set KOBAN_WORKLOAD_GEN to gen_workload.py")
    return path


def generate(logs: int, spans: int, out: Path | None = None) -> Path:
    """The directory holding a workload of `logs` log lines and `spans` spans (seed 42),
    generated unless a previous run left one with the same parameters there."""
    out = out or DATA / f"workload-logs{logs}-spans{spans}-seed{SEED}"
    manifest = out / "manifest.json"
    if manifest.is_file():
        args = json.loads(manifest.read_text())["args"]
        if (args["logs"], args["spans"], args["seed"]) == (logs, spans, SEED):
            return out
    # metrics are not part of these benchmarks: one series keeps generation short
    cmd = [sys.executable, str(generator_path()), str(out), "--logs", str(logs), "--spans", str(spans),
           "--series", "1", "--seed", str(SEED)]
    print(f"generating {logs:,} logs and {spans:,} spans into {out} ...", file=sys.stderr)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return out


def shift_to(workload: Path, end_ns: int) -> int:
    """Nanoseconds to add to the workload's times so that its hour ends at `end_ns`."""
    manifest = json.loads((workload / "manifest.json").read_text())
    return end_ns - manifest["end_unix_s"] * 10**9


def read_ndjson(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            rows.append(json.loads(line))
    return rows


class _Clock:
    """RFC 3339 with ns ("2026-01-01T00:00:00.123456789Z") -> unix ns, plus a shift;
    caches the seconds part, which repeats (the workload is one hour)."""

    def __init__(self, shift_ns: int) -> None:
        self.shift_ns = shift_ns
        self._seconds: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        head = text[:19]
        sec = self._seconds.get(head)
        if sec is None:
            sec = self._seconds[head] = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        frac = text[20:-1].ljust(9, "0") if len(text) > 20 else "0"
        return sec * 10**9 + int(frac) + self.shift_ns


def _set(value: AnyValue, v: object) -> None:
    if isinstance(v, bool):
        value.bool_value = v
    elif isinstance(v, int):
        value.int_value = v
    elif isinstance(v, float):
        value.double_value = v
    else:
        value.string_value = str(v)


def _add_attributes(target, items) -> None:
    for key, v in items:
        kv = target.add()
        kv.key = key
        _set(kv.value, v)


# Messages are filled in place (`.add()`, field assignment) rather than built from
# constructor keywords: with the upb backend that is about twice as fast.


def logs_body(records: list[dict], clock: _Clock) -> bytes:
    """One ExportLogsServiceRequest holding `records`, one ResourceLogs per (service, host)."""
    request = ExportLogsServiceRequest()
    scopes: dict[tuple[str, str], ScopeLogs] = {}
    for rec in records:
        key = (rec["service"], rec["host"])
        scope = scopes.get(key)
        if scope is None:
            rl = request.resource_logs.add()
            _add_attributes(rl.resource.attributes, (("service.name", key[0]), ("host.name", key[1])))
            scope = scopes[key] = rl.scope_logs.add()
            scope.scope.CopyFrom(_SCOPE)
        lr = scope.log_records.add()
        lr.time_unix_nano = lr.observed_time_unix_nano = clock(rec["timestamp"])
        lr.severity_number = SEVERITY_NUMBER[rec["level"]]
        lr.severity_text = rec["level"]
        lr.body.string_value = rec["message"]
        lr.trace_id = bytes.fromhex(rec["trace_id"])
        _add_attributes(lr.attributes, ((k, v) for k, v in rec.items() if k not in _LOG_FIELDS))
    return request.SerializeToString()


def spans_body(records: list[dict], clock: _Clock) -> bytes:
    """One ExportTraceServiceRequest holding `records`, one ResourceSpans per service."""
    request = ExportTraceServiceRequest()
    scopes: dict[str, ScopeSpans] = {}
    for rec in records:
        scope = scopes.get(rec["service"])
        if scope is None:
            rs = request.resource_spans.add()
            _add_attributes(rs.resource.attributes, (("service.name", rec["service"]),))
            scope = scopes[rec["service"]] = rs.scope_spans.add()
            scope.scope.CopyFrom(_SCOPE)
        span = scope.spans.add()
        span.trace_id = bytes.fromhex(rec["trace_id"])
        span.span_id = bytes.fromhex(rec["span_id"])
        span.parent_span_id = bytes.fromhex(rec["parent_span_id"])
        span.name = rec["name"]
        span.kind = _SPAN_KIND[rec["kind"]]
        span.start_time_unix_nano = clock(rec["start_time"])
        span.end_time_unix_nano = clock(rec["end_time"])
        span.status.code = _STATUS[rec["status"]]
        _add_attributes(span.attributes, ((k, v) for k, v in rec.items() if k.startswith("http.")))
    return request.SerializeToString()


def batches(records: list[dict], size: int) -> Iterator[list[dict]]:
    for i in range(0, len(records), size):
        yield records[i:i + size]


def encode(records: list[dict], encoder, shift_ns: int, size: int = 1000) -> list[tuple[bytes, int]]:
    """(body, record count) per batch of `size` records, encoded with `encoder`."""
    clock = _Clock(shift_ns)
    return [(encoder(batch, clock), len(batch)) for batch in batches(records, size)]
