"""UI benchmark: how long the logs page, a 50-span trace view and the services page take
to draw their data in a real browser, with 1,000,000 log records and 200,000 spans loaded.

Loads the shared workload (its hour shifted to end now) over OTLP/HTTP like query.py,
adds one 50-span trace with 20 logs, then opens each page in headless Debian chromium
(Playwright, `executable_path=/usr/bin/chromium`; never `playwright install`), each
run in a fresh browser context (no cache). The time is from navigation start to the
page's "data drawn" mark: the page script calls `K.markDrawn()` once its data is
rendered, which sets `body[data-ready="1"]` and the User Timing mark `koban-ready`
(`koban-charts` once the charts and sparklines are drawn too). One warm-up, then
5 runs (`--runs`), best and median.

    .venv/bin/python benchmarks/ui.py [--logs 1000000] [--spans 200000] [--runs 5] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _server  # noqa: E402
import _workload  # noqa: E402
import query  # noqa: E402

GOAL_MS = 1000
CHROMIUM = os.environ.get("KOBAN_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
TRACE_ID = "b1e50000000000000000000000000050"
TRACE_SPANS = 50
TRACE_LOGS = 20
MS = 1_000_000


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def trace_bodies(start_ns: int) -> tuple[bytes, bytes]:
    """One trace of TRACE_SPANS spans over 5 services (a tree three levels deep, the last
    span failing) and TRACE_LOGS logs carrying its id: (traces body, logs body)."""
    services = ["api-gateway", "checkout", "inventory", "payments", "pricing"]
    request = ExportTraceServiceRequest()
    scopes = {}
    for svc in services:
        rs = request.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", svc))
        scopes[svc] = rs.scope_spans.add()
    ids = [f"{0xb1e5000000000000 + i:016x}" for i in range(TRACE_SPANS)]
    for i, span_id in enumerate(ids):
        svc = services[i % len(services)]
        parent = "" if i == 0 else ids[0] if i < 8 else ids[1 + (i % 7)]
        begin = start_ns + (i * 7 if i else 0) * MS
        duration = (400 if i == 0 else 20 + (i * 13) % 60) * MS
        span = scopes[svc].spans.add(
            trace_id=bytes.fromhex(TRACE_ID), span_id=bytes.fromhex(span_id),
            parent_span_id=bytes.fromhex(parent) if parent else b"",
            name=f"GET /bench/{i}" if i % 3 else f"SELECT bench_{i}",
            kind=Span.SPAN_KIND_SERVER if i % 3 else Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=begin, end_time_unix_nano=begin + duration)
        span.attributes.append(_kv("bench.index", str(i)))
        if i == TRACE_SPANS - 1:
            span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="bench failure"))
    logs = ExportLogsServiceRequest()
    records = logs.resource_logs.add()
    records.resource.attributes.append(_kv("service.name", "checkout"))
    scope = records.scope_logs.add()
    for i in range(TRACE_LOGS):
        rec = scope.log_records.add(time_unix_nano=start_ns + i * 10 * MS, severity_text="INFO", severity_number=9,
                                    trace_id=bytes.fromhex(TRACE_ID), span_id=bytes.fromhex(ids[i % TRACE_SPANS]))
        rec.body.string_value = f"bench trace log line {i}"
    return request.SerializeToString(), logs.SerializeToString()


def load_trace(url: str, timeout_s: float) -> None:
    spans, logs = trace_bodies(time.time_ns() - 5 * 60 * 10**9)
    with httpx.Client(base_url=url, timeout=60, headers=_server.PROTOBUF) as c:
        c.post("/v1/traces", content=spans).raise_for_status()
        c.post("/v1/logs", content=logs).raise_for_status()

    def ready() -> bool:
        r = httpx.get(f"{url}/api/traces/{TRACE_ID}", timeout=30)
        return r.status_code == 200 and len(r.json()["spans"]) == TRACE_SPANS

    if not _server.wait_until(ready, timeout_s, 0.2):
        raise SystemExit(f"the {TRACE_SPANS}-span trace did not become queryable in {timeout_s:g}s")


def pages() -> list[tuple[str, str, str]]:
    """(name, path, JavaScript returning what was drawn) of every timed page."""
    return [
        ("logs page, last hour", "/logs?from=now-1h",
         "({total: +document.querySelector('#histogram').dataset.total,"
         " rows: document.querySelectorAll('#log-rows tr.row').length})"),
        (f"trace view, {TRACE_SPANS} spans", f"/traces/{TRACE_ID}",
         "({spans: document.querySelectorAll('#wf-rows .wf-row').length,"
         " errors: document.querySelectorAll('#wf-rows .wf-row.error').length})"),
        ("services page, last hour", "/services?from=now-1h",
         "({services: document.querySelectorAll('#service-rows tr').length,"
         " sparklines: document.querySelectorAll('#service-rows svg.spark').length})"),
        ("service page (api-gateway), last hour", "/services/api-gateway?from=now-1h",
         "({resources: document.querySelectorAll('#resource-rows tr').length,"
         " charts: document.querySelectorAll('.chart canvas').length})"),
    ]


def _mark(page, name: str) -> float | None:
    return page.evaluate(f"(performance.getEntriesByName('koban-{name}')[0] || {{}}).startTime ?? null")


def time_pages(url: str, runs: int) -> list[dict]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, path, drawn_js in pages():
                ready, charts, walls, drawn = [], [], [], None
                for i in range(runs + 1):
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
                    t0 = time.perf_counter()
                    page.goto(url + path, wait_until="commit")
                    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                    wall = (time.perf_counter() - t0) * 1000
                    has_charts = page.evaluate("!!document.querySelector('.chart, .spark-slot')")
                    if has_charts and "/services" in path:
                        page.wait_for_selector("body[data-charts='1']", timeout=60_000)
                    ready_ms, charts_ms = _mark(page, "ready"), _mark(page, "charts")
                    drawn = page.evaluate(drawn_js)
                    context.close()
                    if errors:
                        raise SystemExit(f"JavaScript errors on {path}: {errors}")
                    if i:  # the first run warms up
                        ready.append(ready_ms)
                        walls.append(wall)
                        if charts_ms is not None:
                            charts.append(charts_ms)
                out.append({
                    "page": name,
                    "path": path,
                    "ready_best_ms": round(min(ready), 1),
                    "ready_median_ms": round(statistics.median(ready), 1),
                    "charts_median_ms": round(statistics.median(charts), 1) if charts else None,
                    "wall_median_ms": round(statistics.median(walls), 1),
                    "under_goal": max(ready) < GOAL_MS,
                    "drawn": drawn,
                })
                print(f"  {name}: median {out[-1]['ready_median_ms']} ms", file=sys.stderr)
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", type=int, default=8, help="concurrent senders while loading")
    ap.add_argument("--url", help="a koban that is already running (and empty over the last hour)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds to wait for the data to be queryable")
    a = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no chromium at {CHROMIUM} (apt-get install -y chromium, or set KOBAN_TEST_CHROMIUM)")

    workload = _workload.generate(logs=a.logs, spans=a.spans)
    if a.url:
        url, server = a.url.rstrip("/"), None
    else:
        server = _server.KobanServer()
        server.start()
        url = server.url
    try:
        loaded = query.load(url, workload, a.logs, a.spans, a.clients, a.timeout)
        load_trace(url, a.timeout)
        print("opening pages ...", file=sys.stderr)
        timings = time_pages(url, a.runs)
        version = _server.koban_version(url)
        peak = round(server.peak_rss() / 2**20) if server else None
    finally:
        if server:
            server.stop()
    doc = {"benchmark": "ui", "date": _server.today(), "machine": _server.machine(), "koban": version,
           "params": {"logs": a.logs, "spans": a.spans, "runs": a.runs, "clients": a.clients, "goal_ms": GOAL_MS},
           "load": loaded, "peak_rss_mib": peak, "pages": timings}
    path = _server.write_results("ui", doc)
    print(f"results: {path}", file=sys.stderr)
    m = doc["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, {doc['date']}, {a.logs:,} logs / {a.spans:,} spans, "
          f"headless chromium, goal < {GOAL_MS} ms from navigation to data drawn\n")
    print("| page | best ms | median ms | charts drawn, median ms | under goal | drawn |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for t in timings:
        charts = "" if t["charts_median_ms"] is None else t["charts_median_ms"]
        print(f"| {t['page']} | {t['ready_best_ms']} | {t['ready_median_ms']} | {charts} | "
              f"{'yes' if t['under_goal'] else 'NO'} | {t['drawn']} |")


if __name__ == "__main__":
    main()
