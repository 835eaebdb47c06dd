"""StatsD/DogStatsD benchmark: metrics per second accepted, and the loss, on loopback.

Starts `koban serve` with the StatsD listener on a free UDP port, then N sender
processes send DogStatsD lines over raw UDP sockets, each paced to its share of the
target rate: a mix of counters (50%, value 1), gauges (25%) and timers (25%) with tags,
over `--series` series (name x tags), packed `--lines` lines to a datagram as the
DogStatsD clients pack them (the `datadog` client fills a datagram up to 1,432 bytes).

After the run the server is stopped (a clean stop flushes the last window) and what it
counted is compared with what was sent: datagrams received and dropped by the kernel
(koban's /metrics), and the stored sums: every counter line adds 1 to otel_metrics_sum
and every timer line 1 to the Count of otel_metrics_exponential_histogram, so the
stored totals say exactly how many of those lines arrived. Gauges are sent for the mix
but cannot be counted after aggregation (a gauge keeps its last value).

    .venv/bin/python benchmarks/statsd.py [--rate 200000] [--seconds 10] [--senders 2]
        [--lines 20] [--series 1000] [--flush 2] [--server-args "--statsd-processes 2"]
    .venv/bin/python benchmarks/statsd.py --micro   # parse + aggregate only, in process

`--micro` times, over the same datagrams in this process, parse_datagram alone,
parse_datagram + StatsdAggregator.add, and StatsdAggregator.add_datagram (what the
listener runs), in lines per CPU-second (process time): the per-core ceiling of the
listener, and a number that a loaded machine moves far less than a rate.

Prints a JSON summary and writes it to benchmarks/results/statsd-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _server  # noqa: E402

PREFIX = "bench"


def series_lines(series: int, seed: int = 1) -> list[tuple[str, str]]:
    """(kind, line) for each series: kind is "c", "g" or "ms"; the line has the value
    a sender sends every time (1 for counters, so stored sums count lines)."""
    rng = random.Random(seed)
    out = []
    for i in range(series):
        kind = ("c", "c", "g", "ms")[i % 4]
        name = f"{PREFIX}.{('requests', 'requests', 'queue.depth', 'latency')[i % 4]}.{i % 50}"
        tags = f"#env:bench,service:svc{i % 7},host:h{i % 13},route:/r{i}"
        value = {"c": "1", "g": str(rng.randint(0, 500)), "ms": f"{rng.uniform(0.1, 900):.3f}"}[kind]
        out.append((kind, f"{name}:{value}|{kind}|{tags}"))
    return out


def sender(port: int, rate: float, seconds: float, lines_per_datagram: int, series: int, seed: int,
           results: mp.Queue) -> None:  # fmt: skip
    """Send for `seconds` at `rate` lines/s; put (datagrams, lines by kind, send errors) in `results`."""
    rng = random.Random(seed)
    work = series_lines(series)
    rng.shuffle(work)
    # datagrams cycle through every series; pre-built so sending costs one syscall each
    datagrams: list[tuple[bytes, dict[str, int]]] = []
    for i in range(0, len(work), lines_per_datagram):
        chunk = work[i:i + lines_per_datagram]
        kinds = {"c": 0, "g": 0, "ms": 0}
        for kind, _ in chunk:
            kinds[kind] += 1
        datagrams.append(("\n".join(line for _, line in chunk).encode(), kinds))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sent = {"c": 0, "g": 0, "ms": 0}
    count = errors = 0
    per_s = rate / lines_per_datagram  # datagrams per second
    start = time.perf_counter()
    n = 0
    while True:
        now = time.perf_counter() - start
        if now >= seconds:
            break
        due = int(now * per_s) + 1  # datagrams that should have gone out by now
        while n < due:
            data, kinds = datagrams[n % len(datagrams)]
            try:
                sock.send(data)
            except OSError:  # ENOBUFS and the like: not sent, so not counted as sent
                errors += 1
            else:
                count += 1
                for k, v in kinds.items():
                    sent[k] += v
            n += 1
        time.sleep(0.0005)
    sock.close()
    results.put((count, sent, errors, time.perf_counter() - start))


def server_counters(url: str) -> dict[str, float]:
    wanted = ("koban_statsd_datagrams_received", "koban_statsd_datagrams_dropped", "koban_statsd_points_dropped",
              "koban_statsd_series_dropped")  # fmt: skip
    out = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        name = line.split(" ", 1)[0]
        if name in wanted:
            out[name] = float(line.rsplit(" ", 1)[1])
    return out


def stored(db_path: Path) -> dict[str, float]:
    with duckdb.connect(str(db_path), read_only=True) as db:
        counters = db.execute(
            "SELECT coalesce(sum(Value), 0) FROM otel_metrics_sum WHERE MetricName LIKE $p", {"p": PREFIX + ".%"}
        ).fetchone()[0]
        timers = db.execute(
            "SELECT coalesce(sum(Count), 0) FROM otel_metrics_exponential_histogram WHERE MetricName LIKE $p",
            {"p": PREFIX + ".%"},
        ).fetchone()[0]
    return {"c": float(counters), "ms": float(timers)}


def micro(series: int, lines_per_datagram: int, rounds: int = 200) -> dict:
    """Lines per CPU-second of parse_datagram alone, of parse_datagram + add, and of
    add_datagram (the listener's one pass from datagram to window)."""
    from koban.ingest.statsd import parse_datagram
    from koban.pipeline.statsd_aggregator import StatsdAggregator

    work = series_lines(series)
    random.Random(1).shuffle(work)
    datagrams = ["\n".join(line for _, line in work[i:i + lines_per_datagram]).encode()
                 for i in range(0, len(work), lines_per_datagram)]  # fmt: skip
    lines = rounds * len(work)
    t = time.process_time()
    for _ in range(rounds):
        for d in datagrams:
            parse_datagram(d)
    parse_s = time.process_time() - t
    aggregator = StatsdAggregator(0)
    t = time.process_time()
    for _ in range(rounds):
        for d in datagrams:
            items, _ = parse_datagram(d)
            aggregator.add(items, 1)
    both_s = time.process_time() - t
    aggregator = StatsdAggregator(0)
    t = time.process_time()
    for _ in range(rounds):
        for d in datagrams:
            aggregator.add_datagram(d, 1)
    one_pass_s = time.process_time() - t
    return {"lines": lines, "parse_lines_per_cpu_s": round(lines / parse_s),
            "parse_aggregate_lines_per_cpu_s": round(lines / both_s),
            "one_pass_lines_per_cpu_s": round(lines / one_pass_s)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200_000, help="metric lines per second, all senders together")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--lines", type=int, default=20, help="lines per datagram")
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--flush", type=float, default=2.0, help="statsd_flush_interval_s of the server")
    ap.add_argument("--server-args", default="", help="extra `koban serve` flags, space-separated")
    ap.add_argument("--micro", action="store_true", help="time parse + aggregate in this process, no server")
    args = ap.parse_args()
    if args.micro:
        print(json.dumps(micro(args.series, args.lines), indent=2))
        return

    with tempfile.TemporaryDirectory(prefix="koban-bench-statsd-") as tmp:
        port = _free_udp_port()
        extra = ("--statsd-port", str(port), "--statsd-flush-interval-s", str(args.flush), *args.server_args.split())
        server = _server.KobanServer(Path(tmp), extra_args=extra)
        server.start()
        try:
            cpu_before = server.cpu_seconds()
            results: mp.Queue = mp.Queue()
            procs = [
                mp.Process(target=sender, args=(port, args.rate / args.senders, args.seconds, args.lines, args.series,
                                                 i, results))  # fmt: skip
                for i in range(args.senders)
            ]
            for p in procs:
                p.start()
            outcomes = [results.get() for _ in procs]
            for p in procs:
                p.join()
            time.sleep(0.5)  # what is still in the socket buffer
            counters = server_counters(server.url)
            cpu_after = server.cpu_seconds()
        finally:
            server.stop()  # flushes the last window through the WAL into the store
        kept = stored(Path(tmp) / "store" / "koban.duckdb")

    datagrams = sum(o[0] for o in outcomes)
    sent = {k: sum(o[1][k] for o in outcomes) for k in ("c", "g", "ms")}
    send_errors = sum(o[2] for o in outcomes)
    seconds = max(o[3] for o in outcomes)
    lines = sum(sent.values())
    counted_sent = sent["c"] + sent["ms"]
    counted_kept = kept["c"] + kept["ms"]
    loss = 1 - counted_kept / counted_sent if counted_sent else 0.0
    server_cpu = sum(cpu_after) - sum(cpu_before)
    summary = {
        "date": dt.date.today().isoformat(),
        "args": vars(args),
        "sent": {"datagrams": datagrams, "lines": lines, "by_type": sent, "send_errors": send_errors,
                 "seconds": round(seconds, 2), "lines_per_s": round(lines / seconds)},  # fmt: skip
        "server": {
            "datagrams_received": counters.get("koban_statsd_datagrams_received"),
            "kernel_drops": counters.get("koban_statsd_datagrams_dropped"),
            "points_dropped": counters.get("koban_statsd_points_dropped"),
            "series_dropped": counters.get("koban_statsd_series_dropped"),
            "cpu_seconds": round(server_cpu, 2),
        },
        "stored": {"counter_lines": kept["c"], "timer_lines": kept["ms"]},
        "loss_pct": round(100 * loss, 3),
        "accepted_metrics_per_s": round(lines * (1 - loss) / seconds),
        "metrics_per_server_cpu_s": round(lines * (1 - loss) / server_cpu) if server_cpu > 0 else None,
    }
    print(json.dumps(summary, indent=2))
    _server.RESULTS.mkdir(exist_ok=True)
    (_server.RESULTS / f"statsd-{summary['date']}.json").write_text(json.dumps(summary, indent=2) + "\n")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
