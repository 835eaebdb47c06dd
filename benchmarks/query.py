"""Query benchmark: 1,000,000 log records and 200,000 spans over one hour.

Loads the shared workload (shifted so its hour ends now) through OTLP/HTTP protobuf,
waits until all of it is queryable, then times each query through the JSON API (the
client's wall time: HTTP, query and JSON), one warm-up then 5 runs, best and median.

    .venv/bin/python benchmarks/query.py [--logs 1000000] [--spans 200000] [--runs 5] [--url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _server  # noqa: E402
import _workload  # noqa: E402

GOAL_MS = 300


def queries(start_ms: int, end_ms: int) -> list[tuple[str, str, dict]]:
    """(name, path, params) of every timed query, all over the workload's hour."""
    hour = {"from": start_ms, "to": end_ms}
    return [
        ("free text `timeout`, 50 rows", "/api/logs", {**hour, "q": "timeout", "limit": 50}),
        ("`service:api-gateway status:error`, 50 rows", "/api/logs",
         {**hour, "q": "service:api-gateway status:error", "limit": 50}),
        ("histogram by severity", "/api/logs/histogram", {**hour, "by": "severity"}),
        ("/api/services", "/api/services", hour),
        # not a goal, but what the issue compares with Loki: count the lines with "timeout"
        ("count `timeout` (histogram)", "/api/logs/histogram", {**hour, "q": "timeout"}),
        # not goals either: lookups in the log attributes (JSON text on DuckDB)
        ("count `@http.status_code:[500 TO 599]`", "/api/logs/histogram",
         {**hour, "q": "@http.status_code:[500 TO 599]"}),
        ("top 10 `@user_id` (facets)", "/api/logs/facets", {**hour, "field": "@user_id", "limit": 10}),
    ]


def load(url: str, workload: Path, logs: int, spans: int, clients: int, timeout_s: float) -> dict:
    """Send the workload; returns what was sent and how long it took to be queryable."""
    end_ns = time.time_ns()
    shift = _workload.shift_to(workload, end_ns)
    print("encoding ...", file=sys.stderr)
    log_rows = _workload.read_ndjson(workload / "logs.ndjson", limit=logs)
    expected = {
        "timeout_case_sensitive": sum("timeout" in r["message"] for r in log_rows),
        "timeout_case_insensitive": sum("timeout" in r["message"].lower() for r in log_rows),
        "api_gateway_errors": sum(r["service"] == "api-gateway" and r["level"] == "error" for r in log_rows),
    }
    log_bodies = _workload.encode(log_rows, _workload.logs_body, shift)
    del log_rows
    span_rows = _workload.read_ndjson(workload / "spans.ndjson", limit=spans)
    server_spans = sum(r["kind"] == "server" for r in span_rows)
    span_bodies = _workload.encode(span_rows, _workload.spans_body, shift)
    del span_rows
    end_ms = end_ns // 1_000_000 + 1000
    start_ms = end_ms - 3_601_000
    print(f"loading {logs:,} logs and {spans:,} spans ...", file=sys.stderr)
    sent_logs = _server.post_all(f"{url}/v1/logs", log_bodies, clients)
    sent_spans = _server.post_all(f"{url}/v1/traces", span_bodies, clients)
    with httpx.Client(base_url=url, timeout=120) as api:
        logs_ready = _server.wait_until(lambda: _server.log_count(api, "", start_ms, end_ms) >= logs, timeout_s, 0.2)
        spans_ready = _server.wait_until(
            lambda: _service_requests(api, start_ms, end_ms) >= server_spans, timeout_s, 0.2)
    return {
        "start_ms": start_ms,
        "end_ms": end_ms,
        "logs": logs,
        "spans": spans,
        "server_spans": server_spans,
        "expected": expected,
        "load_seconds": round(time.monotonic() - sent_logs.started, 1),
        "logs_ack_records_per_s": round(sent_logs.records / sent_logs.seconds),
        "spans_ack_records_per_s": round(sent_spans.records / sent_spans.seconds),
        "all_queryable": logs_ready and spans_ready,
    }


def _service_requests(api: httpx.Client, start_ms: int, end_ms: int) -> int:
    r = api.get("/api/services", params={"from": start_ms, "to": end_ms})
    r.raise_for_status()
    doc = r.json()
    rows = doc.get("services", doc.get("rows", [])) if isinstance(doc, dict) else doc
    return sum(int(row.get("requests", 0)) for row in rows)


def time_queries(url: str, start_ms: int, end_ms: int, runs: int) -> list[dict]:
    out = []
    with httpx.Client(base_url=url, timeout=120) as api:
        for name, path, params in queries(start_ms, end_ms):
            times, response = [], None
            for i in range(runs + 1):
                t0 = time.perf_counter()
                response = api.get(path, params=params)
                took = (time.perf_counter() - t0) * 1000
                if i:  # the first run warms up
                    times.append(took)
            out.append({
                "query": name,
                "path": path,
                "params": {k: v for k, v in params.items() if k not in ("from", "to")},
                "status": response.status_code,
                "best_ms": round(min(times), 1),
                "median_ms": round(statistics.median(times), 1),
                "answer": _summary(response),
            })
    return out


def _summary(response: httpx.Response) -> object:
    """Enough of the answer to check it was the right one."""
    try:
        doc = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(doc, dict):
        return {"items": len(doc)}
    if "error" in doc:
        return doc
    if "rows" in doc:
        return {"rows": len(doc["rows"])}
    if "values" in doc:  # facets
        return {"values": len(doc["values"]), "top": doc["values"][0] if doc["values"] else None}
    if "total" in doc:
        groups: dict[str, int] = {}
        for bucket in doc.get("buckets", []):
            for key, n in (bucket.get("groups") or {}).items():
                groups[key] = groups.get(key, 0) + n
        return {"total": doc["total"], **({"groups": groups} if groups else {})}
    services = doc.get("services", [])
    return {"services": len(services)} if services else {k: doc[k] for k in list(doc)[:5]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8, help="concurrent senders while loading")
    ap.add_argument("--url", help="a koban that is already running (and empty over the last hour)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the data to be queryable")
    a = ap.parse_args(argv)

    workload = _workload.generate(logs=a.logs, spans=a.spans)
    if a.url:
        url, server = a.url.rstrip("/"), None
    else:
        server = _server.KobanServer()
        server.start()
        url = server.url
    try:
        loaded = load(url, workload, a.logs, a.spans, a.clients, a.timeout)
        print("querying ...", file=sys.stderr)
        timings = time_queries(url, loaded["start_ms"], loaded["end_ms"], a.runs)
        version = _server.koban_version(url)
        peak = round(server.peak_rss() / 2**20) if server else None
    finally:
        if server:
            server.stop()
    doc = {"benchmark": "query", "date": _server.today(), "machine": _server.machine(), "koban": version,
           "params": {"logs": a.logs, "spans": a.spans, "runs": a.runs, "clients": a.clients},
           "load": loaded, "peak_rss_mib": peak, "queries": timings}
    path = _server.write_results("query", doc)
    print(f"results: {path}", file=sys.stderr)
    m = doc["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, {doc['date']}, {a.logs:,} logs / {a.spans:,} spans, goal < {GOAL_MS} ms\n")
    print("| query | best ms | median ms | answer |")
    print("| --- | ---: | ---: | --- |")
    for t in timings:
        print(f"| {t['query']} | {t['best_ms']} | {t['median_ms']} | {t['answer']} |")


if __name__ == "__main__":
    main()
