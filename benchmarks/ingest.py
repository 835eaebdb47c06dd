"""Ingest benchmark: OTLP/HTTP protobuf log batches from concurrent clients.

Batches of 1,000 log records with 5 attributes each (the workload's http.status_code,
duration_ms and user_id, plus a unique request_id and a thread.name), encoded before
the clock starts, are POSTed to /v1/logs by N clients, after a few warm-up requests
that start the server's decode workers. Reports records/s acknowledged
(first request to last 2xx), records/s queryable (first request until a count through
the API sees every record) and the server's peak RSS.

With `--signal spans`, the workload's spans instead (batches of 1,000 to /v1/traces,
three http.* attributes each), counted through /api/timeseries?source=spans.

    .venv/bin/python benchmarks/ingest.py [--records 500000] [--clients 8] [--warmup 8] [--url URL]
    .venv/bin/python benchmarks/ingest.py --signal spans --records 200000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _server  # noqa: E402
import _workload  # noqa: E402


class Signal(NamedTuple):
    bodies: Callable[[int, int], tuple[list[tuple[bytes, int]], int]]  # (records, batch) -> (bodies, end ms)
    path: str  # the OTLP/HTTP path they are POSTed to
    count: Callable[[httpx.Client, str, int, int], int]  # stored records matching a query in [from, to) ms


def build_bodies(records: int, batch: int) -> tuple[list[tuple[bytes, int]], int]:
    """The request bodies and the unix ms at which the workload's hour ends (now)."""
    workload = _workload.generate(logs=records, spans=0)
    rows = _workload.read_ndjson(workload / "logs.ndjson", limit=records)
    for i, row in enumerate(rows):
        row["request_id"] = f"{i:016x}"
        row["thread.name"] = f"worker-{i % 16}"
    return _ending_now(workload, rows, _workload.logs_body, batch)


def build_span_bodies(spans: int, batch: int) -> tuple[list[tuple[bytes, int]], int]:
    """Like build_bodies, for the workload's spans."""
    workload = _workload.generate(logs=0, spans=spans)
    rows = _workload.read_ndjson(workload / "spans.ndjson", limit=spans)
    return _ending_now(workload, rows, _workload.spans_body, batch)


def _ending_now(workload: Path, rows: list[dict], encoder, batch: int) -> tuple[list[tuple[bytes, int]], int]:
    end_ns = time.time_ns()
    bodies = _workload.encode(rows, encoder, _workload.shift_to(workload, end_ns), batch)
    return bodies, end_ns // 1_000_000


SIGNALS = {
    "logs": Signal(build_bodies, "/v1/logs", _server.log_count),
    "spans": Signal(build_span_bodies, "/v1/traces", _server.span_count),
}


def _stored(api: httpx.Client, signal: str, end_ms: int) -> Callable[[], int]:
    """The count of `signal`'s records stored in the workload's hour (ending `end_ms`)."""
    count = SIGNALS[signal].count
    return lambda: count(api, "", end_ms - 3_600_000, end_ms + 1000)


def warm_up(
    url: str, signal: str, bodies: list[tuple[bytes, int]], end_ms: int, clients: int, timeout_s: float
) -> None:
    """Sends `bodies` before the clock starts (see `_server.warm_up`)."""
    with httpx.Client(base_url=url, timeout=60) as api:
        _server.warm_up(f"{url}{SIGNALS[signal].path}", bodies, clients, _stored(api, signal, end_ms), timeout_s)


def measure(
    url: str, signal: str, bodies: list[tuple[bytes, int]], end_ms: int, clients: int, timeout_s: float
) -> dict:
    total = sum(n for _, n in bodies)
    with httpx.Client(base_url=url, timeout=60) as api:
        stored = _stored(api, signal, end_ms)
        before = stored()
        sent = _server.post_all(f"{url}{SIGNALS[signal].path}", bodies, clients)
        seen = _server.wait_until(lambda: stored() - before >= total, timeout_s, 0.05)
        queryable_s = time.monotonic() - sent.started
        counted = stored() - before
    return {
        "records": total,
        "requests": sent.requests,
        "retries_429": sent.retries,
        "mib_sent": round(sum(len(b) for b, _ in bodies) / 2**20, 1),
        "ack_seconds": round(sent.seconds, 3),
        "ack_records_per_s": round(total / sent.seconds),
        "queryable_seconds": round(queryable_s, 3) if seen else None,
        "queryable_records_per_s": round(total / queryable_s) if seen else None,
        "records_counted": counted,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=1000, help="records per request")
    ap.add_argument("--clients", type=int, default=8, help="concurrent senders")
    ap.add_argument("--url", help="a koban that is already running (peak RSS is then not measured)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for every record to be queryable")
    ap.add_argument("--warmup", type=int, default=8,
                    help="requests sent (again) before the clock starts, so that the decode workers are running")
    ap.add_argument("--signal", choices=sorted(SIGNALS), default="logs", help="log records (default) or spans")
    a = ap.parse_args(argv)

    print(f"encoding {a.records:,} {a.signal} ...", file=sys.stderr)
    bodies, end_ms = SIGNALS[a.signal].bodies(a.records, a.batch)
    print(f"sending {len(bodies)} requests from {a.clients} clients ...", file=sys.stderr)
    warmup = bodies[: a.warmup]
    if a.url:
        warm_up(a.url.rstrip("/"), a.signal, warmup, end_ms, a.clients, a.timeout)
        result = measure(a.url.rstrip("/"), a.signal, bodies, end_ms, a.clients, a.timeout)
        result["peak_rss_mib"] = None
        version = _server.koban_version(a.url)
    else:
        with _server.KobanServer(extra_args=tuple(os.environ.get("KOBAN_BENCH_SERVER_ARGS", "").split())) as server:
            warm_up(server.url, a.signal, warmup, end_ms, a.clients, a.timeout)
            cpu_before = server.cpu_seconds()
            result = measure(server.url, a.signal, bodies, end_ms, a.clients, a.timeout)
            cpu_after = server.cpu_seconds()
            server_s, workers_s = (after - before for after, before in zip(cpu_after, cpu_before))
            result["cpu_us_per_record_server"] = round(server_s / result["records"] * 1e6, 2)
            result["cpu_us_per_record_workers"] = round(workers_s / result["records"] * 1e6, 2)
            version = _server.koban_version(server.url)
            result["peak_rss_mib"] = round(server.peak_rss() / 2**20)
    name = "ingest" if a.signal == "logs" else f"ingest-{a.signal}"
    doc = {"benchmark": name, "date": _server.today(), "machine": _server.machine(), "koban": version,
           "params": {"signal": a.signal, "records": a.records, "batch": a.batch, "clients": a.clients,
                      "attributes": 5 if a.signal == "logs" else 3,
                      "warmup_requests": len(warmup)},
           "result": result}
    path = _server.write_results(name, doc)
    print(f"results: {path}", file=sys.stderr)
    m = doc["machine"]
    print("| machine | date | records | clients | acked rec/s | queryable rec/s | peak RSS MiB "
          "| CPU us/record server + workers |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {m['cpu']}, {m['cores']} cores | {doc['date']} | {result['records']:,} | {a.clients} "
          f"| {result['ack_records_per_s']:,} | {_num(result['queryable_records_per_s'])} "
          f"| {_num(result['peak_rss_mib'])} | {result.get('cpu_us_per_record_server', 'n/a')} + "
          f"{result.get('cpu_us_per_record_workers', 'n/a')} |")


def _num(v: int | None) -> str:
    return "n/a" if v is None else f"{v:,}"


if __name__ == "__main__":
    main()
