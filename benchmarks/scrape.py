"""Prometheus scrape benchmark: the CPU koban spends scraping 10,000 series every 15 s.

Serves an exposition of about 10,000 series rendered by prometheus_client (counters
and gauges with two labels, and histograms: a mix like a busy service's) from this
process, starts `koban serve` with one scrape job for it, waits for the first scrape
to be stored, then measures the CPU time (user + system) of the koban process and its
children (the decode workers) over `--scrapes` intervals (psutil cpu_times deltas), as
a percentage of one core. That is the whole cost of scraping: fetch, parse, WAL,
decode and the store's insert, and the idle server's own floor, which is measured
separately afterwards (a koban with no scrape job). The bar (issue 4) is under 10%.

    .venv/bin/python benchmarks/scrape.py [--series 10000] [--interval 15] [--scrapes 4]

Prints a JSON summary and writes it to benchmarks/results/scrape-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _server  # noqa: E402


def build_registry(series: int) -> tuple[CollectorRegistry, Counter]:
    """About `series` series: 45% counter, 45% gauge, 10% histogram samples (each
    histogram label set is 8 buckets + +Inf + _count + _sum = 11 series)."""
    # no `_created` series: koban then dates every series itself (its costlier path),
    # and the body holds exactly the series counted here
    disable_created_metrics()
    r = CollectorRegistry()
    counter = Counter("bench_requests", "Requests.", ["route", "code"], registry=r)
    gauge = Gauge("bench_queue_depth", "Queue depth.", ["queue", "shard"], registry=r)
    hist = Histogram("bench_latency_seconds", "Latency.", ["route"], registry=r,
                     buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10))
    n = int(series * 0.45)
    for i in range(n):
        counter.labels(f"/route/{i // 10}", str(200 + i % 10)).inc(i)
        gauge.labels(f"q{i // 10}", str(i % 10)).set(i * 0.5)
    for i in range((series - 2 * n) // 11):
        hist.labels(f"/route/{i}").observe(i % 7 * 0.03)
    return r, counter


class Target:
    """Renders the registry on every GET, as an instrumented app does."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.scrapes = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = generate_latest(registry)
                target.scrapes += 1
                target.body_bytes = len(body)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def received(url: str) -> float:
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("koban_records_received_total") and 'protocol="prom-scrape"' in line)


def idle_cpu_percent(seconds: float) -> float:
    """The CPU a koban with no scrape job uses over `seconds`, as % of one core (the
    floor under the number above: its writer, retention and event loop)."""
    with _server.KobanServer() as server:
        time.sleep(2.0)
        cpu0, wall0 = sum(server.cpu_seconds()), time.monotonic()
        time.sleep(seconds)
        return round(100 * (sum(server.cpu_seconds()) - cpu0) / (time.monotonic() - wall0), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--interval", type=float, default=15.0, help="scrape interval, seconds")
    ap.add_argument("--scrapes", type=int, default=4, help="intervals measured (at least 4)")
    args = ap.parse_args()

    registry, counter = build_registry(args.series)
    samples = sum(1 for line in generate_latest(registry).decode().splitlines() if not line.startswith("#"))
    target = Target(registry)
    server = _server.KobanServer()
    server.data_dir.mkdir(parents=True, exist_ok=True)
    config = server.data_dir / "koban.toml"
    config.write_text(f'[[scrape_jobs]]\njob_name = "bench"\ntargets = ["{target.address}"]\n'
                      f'scrape_interval = "{args.interval:g}s"\n')
    server.extra_args = ("--config", str(config))
    with server:
        if not _server.wait_until(lambda: received(server.url) > 0, timeout_s=args.interval + 60):
            raise SystemExit(f"the first scrape never arrived:\n{server.output_tail()}")
        # from the moment one scrape is stored to the moment `--scrapes` more are
        per_scrape = received(server.url)
        first = target.scrapes
        cpu0, wall0 = server.cpu_seconds(), time.monotonic()
        goal = per_scrape * (1 + args.scrapes)
        time.sleep(args.interval * args.scrapes - 2)  # polling /metrics costs koban CPU too: poll only at the end
        if not _server.wait_until(lambda: received(server.url) >= goal, args.interval * 2 + 30, 0.1):
            raise SystemExit(f"{args.scrapes} more scrapes did not arrive in time:\n{server.output_tail()}")
        cpu1, wall1 = server.cpu_seconds(), time.monotonic()
        scraped = target.scrapes - first
        stored = received(server.url)
    cpu_s = sum(cpu1) - sum(cpu0)
    idle = idle_cpu_percent(args.interval)
    results = {
        "benchmark": "scrape",
        "date": _server.today(),
        "machine": _server.machine(),
        "note": "measured on a shared machine under load from other work; CPU time, not wall time",
        "series_exposed": samples,
        "body_bytes": getattr(target, "body_bytes", 0),
        "interval_s": args.interval,
        "scrapes_measured": scraped,
        "points_per_scrape": per_scrape,
        "points_stored_total": stored,
        "cpu_seconds": round(cpu_s, 3),
        "cpu_seconds_server_process": round(cpu1[0] - cpu0[0], 3),
        "cpu_seconds_decode_workers": round(cpu1[1] - cpu0[1], 3),
        "wall_seconds": round(wall1 - wall0, 3),
        "cpu_percent_of_one_core": round(100 * cpu_s / (wall1 - wall0), 2),
        "cpu_ms_per_scrape": round(1000 * cpu_s / max(scraped, 1), 1),
        "idle_server_cpu_percent": idle,
    }
    print(json.dumps(results, indent=2))
    print("written to", _server.write_results("scrape", results))


if __name__ == "__main__":
    main()
