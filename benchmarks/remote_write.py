"""Prometheus remote write benchmark: samples per second accepted and stored.

Uses the shared workload's remote write bodies (`gen_workload.py --remote-write`:
snappy-compressed remote write 1.0 WriteRequests of 5,000 samples each, 10,000 series
x 240 steps), generated with its hour ending now so retention keeps them. N clients
POST them to /api/v1/write, after a few warm-up requests that start the server's decode
workers; reports samples/s acknowledged (first request to last 2xx),
samples/s stored (until koban's own `koban_store_records_written` counts them all), the
CPU time per sample of the server and its decode workers over that span (a cost that,
unlike a rate, barely moves when other work loads the machine) and the server's peak RSS.
For comparison (issue 4): Prometheus 2.42 accepts ~334,000 samples/s of the same bodies
on this machine, VictoriaMetrics ~1.2 million/s. `--receiver prometheus` measures a real
Prometheus (`_prometheus.py`) the same way instead of koban, so the two can be run
alternately (the machine's speed swings, so only runs minutes apart compare):

    .venv/bin/python benchmarks/remote_write.py [--series 10000] [--clients 4] [--warmup 4] [--url URL]
    .venv/bin/python benchmarks/remote_write.py --receiver prometheus
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _prometheus  # noqa: E402
import _server  # noqa: E402
import _workload  # noqa: E402

HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def build_bodies(series: int) -> list[tuple[bytes, int]]:
    """The workload's remote write bodies, its hour ending about now: (body, samples).
    They are generated into a temporary directory (dated now, they are of no use to a
    later run: ~440 MB each)."""
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
    with tempfile.TemporaryDirectory(prefix="koban-remote-write-") as tmp:
        out = Path(tmp)
        cmd = [sys.executable, str(_workload.generator_path()), str(out), "--logs", "0", "--spans", "0",
               "--series", str(series), "--start", start.strftime("%Y-%m-%dT%H:%M:%SZ"), "--remote-write"]
        print(f"generating remote write bodies for {series:,} series ...", file=sys.stderr)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        files = sorted((out / "remote_write").iterdir())
        per_body = 5000
        total = series * 240
        bodies = []
        for i, f in enumerate(files):
            samples = min(per_body, total - i * per_body)
            bodies.append((f.read_bytes(), samples))
    return bodies


def stored_records(api: httpx.Client) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith("koban_store_records_written "):
            return float(line.split()[1])
    return 0.0


def warm_up(url: str, bodies: list[tuple[bytes, int]], clients: int, timeout_s: float) -> None:
    """Sends `bodies` before the clock starts (see `_server.warm_up`); their samples are
    stored twice, and the rates count only the timed run."""
    with httpx.Client(base_url=url, timeout=60) as api:
        _server.warm_up(url + "/api/v1/write", bodies, clients, lambda: stored_records(api), timeout_s, HEADERS)


def measure(url: str, bodies: list[tuple[bytes, int]], clients: int, timeout_s: float,
            server: _server.KobanServer | _prometheus.PrometheusServer | None = None) -> dict:
    total = sum(n for _, n in bodies)
    with httpx.Client(base_url=url, timeout=60) as api:
        stored = server.stored_samples if isinstance(server, _prometheus.PrometheusServer) else stored_records
        before = stored(api)
        cpu_before = server.cpu_seconds() if server else None
        sent = _server.post_all(url + "/api/v1/write", bodies, clients, headers=HEADERS)
        seen = _server.wait_until(lambda: stored(api) - before >= total, timeout_s, 0.05)
        stored_s = time.monotonic() - sent.started
        cpu_after = server.cpu_seconds() if server else None
    cpu = {}
    if cpu_before and cpu_after:
        main_s, workers_s = (after - b for after, b in zip(cpu_after, cpu_before))
        cpu = {
            "cpu_us_per_sample": round((main_s + workers_s) / total * 1e6, 2),
            "cpu_us_per_sample_server": round(main_s / total * 1e6, 2),
            "cpu_us_per_sample_workers": round(workers_s / total * 1e6, 2),
        }
    return {
        "samples": total,
        "requests": sent.requests,
        "retries_429": sent.retries,
        "mib_sent": round(sum(len(b) for b, _ in bodies) / 2**20, 1),
        "ack_seconds": round(sent.seconds, 3),
        "ack_samples_per_s": round(total / sent.seconds),
        "stored_seconds": round(stored_s, 3) if seen else None,
        "stored_samples_per_s": round(total / stored_s) if seen else None,
        **cpu,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--url", default=None, help="measure a running koban instead of starting one")
    ap.add_argument("--receiver", choices=("koban", "prometheus"), default="koban",
                    help="what to start and measure: koban, or a real Prometheus for comparison")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--warmup", type=int, default=4,
                    help="requests sent (again) before the clock starts, so that the decode workers are running")
    args = ap.parse_args(argv)
    bodies = build_bodies(args.series)
    print(f"sending {len(bodies)} requests from {args.clients} clients ...", file=sys.stderr)
    peak = None
    if args.receiver == "prometheus":
        with _prometheus.PrometheusServer() as server:  # no workers to start: no warm-up
            result = measure(server.url, bodies, args.clients, args.timeout, server)
            peak = server.peak_rss()
    elif args.url:
        warm_up(args.url, bodies[: args.warmup], args.clients, args.timeout)
        result = measure(args.url, bodies, args.clients, args.timeout)
    else:
        with _server.KobanServer(extra_args=tuple(os.environ.get("KOBAN_BENCH_SERVER_ARGS", "").split())) as server:
            warm_up(server.url, bodies[: args.warmup], args.clients, args.timeout)
            result = measure(server.url, bodies, args.clients, args.timeout, server)
            peak = server.peak_rss()
    result["peak_rss_mib"] = round(peak / 2**20) if peak else None
    name = "remote-write" if args.receiver == "koban" else "remote-write-prometheus"
    path = _server.write_results(name, {"params": vars(args), "result": result})
    print(f"results: {path}", file=sys.stderr)
    print("| receiver | machine | date | series | samples | clients | acked samples/s | stored samples/s "
          "| CPU µs/sample (server + workers) | load avg | peak RSS MiB |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    m = _server.machine()
    stored = f"{result['stored_samples_per_s']:,}" if result["stored_samples_per_s"] else "n/a"
    print(f"| {args.receiver} | {m['cpu']}, {m['cores']} cores | {_server.today()} | {args.series:,} | "
          f"{result['samples']:,} | {args.clients} | {result['ack_samples_per_s']:,} | {stored} | {_cpu_cell(result)} | "
          f"{result['load_average'][0]} | {result['peak_rss_mib'] or 'n/a'} |")
    return 0


def _cpu_cell(result: dict) -> str:
    if "cpu_us_per_sample" not in result:
        return "n/a"
    return (f"{result['cpu_us_per_sample']} ({result['cpu_us_per_sample_server']} + "
            f"{result['cpu_us_per_sample_workers']})")


if __name__ == "__main__":
    sys.exit(main())
