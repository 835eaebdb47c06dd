"""Resident memory of an idle koban holding a day of demo data (issue 5: under 200 MiB).

A day of the demo shop (`koban serve --demo` at its default 5 user requests per second:
its spans and logs, the simulation in koban.demo.shop) is written straight into a DuckDB
store — sending it through OTLP would take as long as the day's worth of ingest — and
kept in benchmarks/data/ for the next run. Then `koban serve` opens that data directory,
the pages' API calls over the last 24 hours are made once (services, log histogram, log
search, a time series), and after an idle minute the resident memory of the server and
its decode workers is read.

    .venv/bin/python benchmarks/idle_rss.py [--rate 5] [--hours 24] [--idle 60]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _server  # noqa: E402

from koban.demo.shop import CLIENT, Plan, Shop, Step  # noqa: E402
from koban.model import Batch, LogRecord, Resource, Scope, Span  # noqa: E402
from koban.store.duckdb import DuckDBStore  # noqa: E402

SEVERITY = {"debug": ("DEBUG", 5), "info": ("INFO", 9), "warn": ("WARN", 13), "error": ("ERROR", 17)}
SCOPE = Scope("koban.demo")
BATCH = 50_000


class DayWriter:
    """Turns shop plans into spans and logs with ids and absolute times, and writes them
    to the store in batches."""

    def __init__(self, store: DuckDBStore, seed: int) -> None:
        self.store, self.rng, self.lsn = store, random.Random(seed), 0
        self.spans: list[Span] = []
        self.logs: list[LogRecord] = []
        self.resources: dict[str, Resource] = {}
        self.written = 0

    def resource(self, service: str) -> Resource:
        if service not in self.resources:
            self.resources[service] = Resource(service, {"service.name": service, "deployment.environment": "demo"})
        return self.resources[service]

    def add(self, plan: Plan, end_ns: int) -> None:
        base = end_ns - plan.root.end
        trace_id = f"{self.rng.getrandbits(128):032x}"
        self._step(plan.root, "", trace_id, base)
        for service, line in plan.loose_logs:
            self._log(service, line, base, "", "")
        if len(self.spans) + len(self.logs) >= BATCH:
            self.flush()

    def _step(self, step: Step, parent: str, trace_id: str, base: int) -> None:
        span_id = f"{self.rng.getrandbits(64):016x}"
        attrs = {k: str(v) for k, v in step.attributes.items()}
        self.spans.append(Span(
            base + step.start, step.end - step.start, trace_id, span_id, parent, "", step.name,
            "SPAN_KIND_CLIENT" if step.kind == CLIENT else "SPAN_KIND_SERVER",
            "STATUS_CODE_ERROR" if step.error else "STATUS_CODE_UNSET", step.error, attrs, (), (),
            self.resource(step.service), SCOPE,
        ))  # fmt: skip
        for line in step.logs:
            self._log(step.service, line, base, trace_id, span_id)
        for child in step.children:
            self._step(child, span_id, trace_id, base)

    def _log(self, service: str, line, base: int, trace_id: str, span_id: str) -> None:
        text, number = SEVERITY[line.severity]
        attrs = {k: str(v) for k, v in line.attributes.items()}
        at = base + line.at
        self.logs.append(LogRecord(at, at, trace_id, span_id, 1 if trace_id else 0, text, number, line.body, attrs,
                                   self.resource(service), SCOPE))

    def flush(self) -> None:
        if self.spans or self.logs:
            self.lsn += 1
            self.store.write(Batch(logs=self.logs, spans=self.spans), self.lsn)
            self.written += len(self.spans) + len(self.logs)
            self.spans, self.logs = [], []


def build_day(data_dir: Path, rate: float, hours: float, end_ns: int) -> int:
    """Write `hours` of the shop at `rate` requests/s ending at `end_ns`; returns records."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = DuckDBStore(data_dir / "koban.duckdb")
    writer = DayWriter(store, seed=42)
    shop = Shop(random.Random(42))
    requests = int(rate * hours * 3600)
    start_ns = end_ns - int(hours * 3600 * 1e9)
    step_ns = int(1e9 / rate)
    for i in range(requests):
        if i % int(rate * 60) == 0:
            shop.advance(60.0)  # deploys happen on the shop's own clock
        writer.add(shop.request(), start_ns + i * step_ns)
        if i and i % 50_000 == 0:
            print(f"  {i:,} / {requests:,} requests, {writer.written:,} records", file=sys.stderr)
    writer.flush()
    store.close()
    return writer.written


def rss_mib(pid: int) -> tuple[float, float]:
    """(server, decode workers) resident memory in MiB."""
    proc = psutil.Process(pid)
    server = proc.memory_info().rss
    workers = sum(c.memory_info().rss for c in proc.children(recursive=True))
    return server / 2**20, workers / 2**20


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=5.0, help="demo user requests per second (koban's default)")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--idle", type=float, default=60.0, help="seconds idle before the reading")
    a = ap.parse_args(argv)

    day = _server.HERE / "data" / f"idle-day-rate{a.rate:g}-hours{a.hours:g}"
    marker = day / "records.txt"
    if not marker.is_file():
        print(f"writing {a.hours:g} h of demo data at {a.rate:g} requests/s ...", file=sys.stderr)
        t = time.monotonic()
        written = build_day(day / "store", a.rate, a.hours, time.time_ns())
        marker.write_text(f"{written}\n{time.time_ns()}\n")
        print(f"  {written:,} records in {time.monotonic() - t:.0f} s", file=sys.stderr)
    written, built_ns = (int(x) for x in marker.read_text().split())
    age_h = (time.time_ns() - built_ns) / 3.6e12
    with _server.KobanServer(data_dir=day) as server:
        assert server.proc is not None
        after_start = rss_mib(server.proc.pid)
        window = {"from": f"now-{a.hours + age_h:.2f}h", "to": "now"}
        with httpx.Client(base_url=server.url, timeout=120) as api:
            for path, extra in (("/api/services", {}), ("/api/logs/histogram", {"by": "status"}),
                                ("/api/logs", {"q": "status:error"}), ("/api/spans", {"q": "service:payments"}),
                                ("/api/timeseries", {"source": "spans", "agg": "p99", "by": "service"})):
                api.get(path, params={**window, **extra}).raise_for_status()
        after_queries = rss_mib(server.proc.pid)
        time.sleep(a.idle)
        idle = rss_mib(server.proc.pid)
        peak = server.peak_rss() / 2**20
    rows = (("after start", after_start), ("after the pages' queries", after_queries), (f"idle {a.idle:g} s", idle))
    print(f"{written:,} records ({a.hours:g} h at {a.rate:g} requests/s); peak RSS {peak:.0f} MiB")
    print("| moment | server MiB | decode workers MiB | total MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, (srv, workers) in rows:
        print(f"| {name} | {srv:.0f} | {workers:.0f} | {srv + workers:.0f} |")


if __name__ == "__main__":
    main()
