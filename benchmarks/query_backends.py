"""The query benchmark (query.py's queries) on both backends, side by side in one run.

Same data, same machine, same process: the shared workload (shifted so its hour ends
now) is encoded as OTLP/protobuf bodies of 1,000 records, decoded once with koban's own
decoder and merged into Batches of ~50,000 records (the writer's batch_max_records),
and the SAME Batches are written with `store.write(batch, lsn)` into

- DuckDB: a DuckDBStore in a temp dir, with `koban serve`'s default settings;
- ClickHouse (chdb): a ClickHouseStore over clickhouse-connect's in-process chdb client
  (the real ClickHouse engine, no HTTP), as tests/conformance opens it.

Then each query is run the way the JSON API runs it, minus HTTP and JSON: the query
text parsed, the statement built by koban.query.reads for the store's dialect, run
with store.query(sql, params, timeout_s=60, max_rows=<what the endpoint asks>) and the
result shaped. One warm-up, then 5 runs (--runs): best and median of the wall time.
One backend is loaded and measured at a time (then closed), so neither's background
work (ClickHouse merges, DuckDB checkpoints) lands in the other's numbers; ClickHouse's
merges are waited out (up to --settle seconds) before its queries are timed.

    .venv/bin/python benchmarks/query_backends.py [--logs 1000000] [--spans 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _server  # noqa: E402
import _workload  # noqa: E402

from koban import __version__ as koban_version  # noqa: E402
from koban.ingest import decode  # noqa: E402
from koban.model import Batch  # noqa: E402
from koban.query import reads  # noqa: E402
from koban.query.dialects import for_store  # noqa: E402
from koban.query.parse import parse  # noqa: E402
from koban.settings import Settings  # noqa: E402

BATCH_RECORDS = 50_000
TIMEOUT_S = 60
HISTOGRAM_MAX_ROWS = 2000 * 64  # api/search.py: MAX_BUCKETS * 64
SERVICES_MAX_ROWS = 100_000
NS = 1_000_000_000


def build_batches(workload: Path, logs: int, spans: int, end_ns: int) -> tuple[list[Batch], list[Batch], dict]:
    """(log Batches, span Batches, expected answers): the workload as koban decodes it."""
    shift = _workload.shift_to(workload, end_ns)
    received = time.time_ns()
    per = BATCH_RECORDS // 1000

    def batches(bodies: list[tuple[bytes, int]], codec: str) -> list[Batch]:
        decoded = [decode(codec, body, received) for body, _ in bodies]
        return [Batch.merge(decoded[i:i + per]) for i in range(0, len(decoded), per)]

    rows = _workload.read_ndjson(workload / "logs.ndjson", limit=logs)
    expected = {
        "timeout_case_sensitive": sum("timeout" in r["message"] for r in rows),
        "timeout_case_insensitive": sum("timeout" in r["message"].lower() for r in rows),
        "api_gateway_errors": sum(r["service"] == "api-gateway" and r["level"] == "error" for r in rows),
        "levels": {lv: sum(r["level"] == lv for r in rows) for lv in _workload.SEVERITY_NUMBER},
    }
    log_batches = batches(_workload.encode(rows, _workload.logs_body, shift), "otlp-proto/logs")
    del rows
    rows = _workload.read_ndjson(workload / "spans.ndjson", limit=spans)
    expected["server_spans"] = sum(r["kind"] == "server" for r in rows)
    expected["services"] = len({r["service"] for r in rows})
    span_batches = batches(_workload.encode(rows, _workload.spans_body, shift), "otlp-proto/traces") if rows else []
    del rows
    assert sum(b.record_count for b in log_batches) == logs, "decoder dropped log records"
    assert sum(b.record_count for b in span_batches) == spans, "decoder dropped spans"
    return log_batches, span_batches, expected


# --- the backends ----------------------------------------------------------------------


class Backend:
    """One store to load and query; `settle()` waits for background work after the load."""

    def __init__(self, name: str, label: str, store: Any, settle: Callable[[], dict] = dict) -> None:
        self.name, self.label, self.store, self.settle = name, label, store, settle
        self.dialect = for_store(store.dialect)


def open_duckdb(tmp: Path) -> Backend:
    from koban.store.factory import open_store

    # exactly what `koban serve` opens with its defaults (memory limit, threads)
    settings = Settings(data_dir=str(tmp / "duckdb"))
    return Backend("duckdb", "DuckDB", open_store(settings))


def open_chdb(tmp: Path, settle_s: float) -> Backend:
    import clickhouse_connect

    from koban.store.clickhouse import ClickHouseStore, instance_id

    defaults = Settings()
    client = clickhouse_connect.get_client(interface="chdb", path=str(tmp / "chdb"))
    store = ClickHouseStore(
        client,
        database="koban_bench",
        retention_days={
            "logs": defaults.retention_logs_days,
            "spans": defaults.retention_spans_days,
            "metrics": defaults.retention_metrics_days,
        },
        instance=instance_id(tmp / "chdb-data"),
    )

    def settle() -> dict:
        """Wait until no merge is running (at most settle_s); report the parts left."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < settle_s:
            running = client.query("SELECT count() FROM system.merges WHERE database = 'koban_bench'").result_rows
            if not running[0][0]:
                break
            time.sleep(0.5)
        parts = client.query(
            "SELECT table, count() FROM system.parts WHERE database = 'koban_bench' AND active"
            " AND rows > 0 GROUP BY table ORDER BY table"
        ).result_rows
        return {"settle_seconds": round(time.monotonic() - t0, 1), "active_parts": {t: int(n) for t, n in parts}}

    return Backend("chdb", "ClickHouse (chdb)", store, settle)


def load(backend: Backend, log_batches: list[Batch], span_batches: list[Batch]) -> dict:
    """Write every batch with store.write(batch, lsn); records/s per signal and overall."""
    out: dict[str, Any] = {}
    lsn = 0
    total_records, total_s = 0, 0.0
    for signal, batches in (("logs", log_batches), ("spans", span_batches)):
        records = sum(b.record_count for b in batches)
        t0 = time.perf_counter()
        for batch in batches:
            lsn += 1
            backend.store.write(batch, lsn)
        took = time.perf_counter() - t0
        total_records += records
        total_s += took
        out[signal] = {"records": records, "seconds": round(took, 2),
                       "records_per_s": round(records / took) if took else None}
    out["all"] = {"records": total_records, "seconds": round(total_s, 2),
                  "records_per_s": round(total_records / total_s) if total_s else None}
    t0 = time.perf_counter()
    out["settle"] = backend.settle()
    out["settle"]["seconds"] = round(time.perf_counter() - t0, 1)
    out["disk_mib"] = round(backend.store.disk_bytes() / 2**20, 1)
    return out


# --- the queries -----------------------------------------------------------------------


def queries(start_ns: int, end_ns: int) -> list[tuple[str, str, Callable[[Backend], Any]]]:
    """(name, what the API call is, run(backend) -> shaped answer), as api/search.py runs them."""

    def logs(q: str, limit: int = 50) -> Callable[[Backend], Any]:
        def run(b: Backend) -> Any:
            stmt = reads.logs_page(b.dialect, parse(q), start_ns, end_ns, limit, None)
            result = b.store.query(stmt.sql, stmt.params, timeout_s=TIMEOUT_S, max_rows=limit + 1)
            return reads.logs_page_result(result, limit)
        return run

    def histogram(q: str, by: str | None) -> Callable[[Backend], Any]:
        def run(b: Backend) -> Any:
            interval = reads.auto_interval(start_ns, end_ns)
            stmt = reads.logs_histogram(b.dialect, parse(q), start_ns, end_ns, interval, by)
            result = b.store.query(stmt.sql, stmt.params, timeout_s=TIMEOUT_S, max_rows=HISTOGRAM_MAX_ROWS)
            return reads.histogram_result(result, start_ns, end_ns, interval, by)
        return run

    def services(b: Backend) -> Any:
        stmt = reads.services(b.dialect, start_ns, end_ns)
        result = b.store.query(stmt.sql, stmt.params, timeout_s=TIMEOUT_S, max_rows=SERVICES_MAX_ROWS)
        return reads.services_result(result, start_ns, end_ns)

    return [
        ("free text `timeout`, 50 rows", "/api/logs?q=timeout&limit=50", logs("timeout")),
        ("`service:api-gateway status:error`, 50 rows", "/api/logs?q=service:api-gateway status:error&limit=50",
         logs("service:api-gateway status:error")),
        ("histogram by severity", "/api/logs/histogram?by=severity", histogram("", "severity")),
        ("services", "/api/services", services),
        ("count `timeout` (histogram total)", "/api/logs/histogram?q=timeout", histogram("timeout", None)),
    ]


def summary(answer: dict) -> dict:
    """Enough of an answer to check it was the right one (and the same on both)."""
    if "rows" in answer:
        return {"rows": len(answer["rows"]), "first_ts_ns": answer["rows"][0]["timestamp_ns"] if answer["rows"] else None}
    if "total" in answer:
        groups: dict[str, int] = {}
        for bucket in answer["buckets"]:
            for key, n in (bucket.get("groups") or {}).items():
                groups[key] = groups.get(key, 0) + n
        return {"total": answer["total"], **({"groups": dict(sorted(groups.items()))} if groups else {})}
    svc = answer["services"]
    return {"services": len(svc), "requests": sum(s["requests"] for s in svc),
            "errors": sum(s["errors"] for s in svc)}


def time_queries(backend: Backend, start_ns: int, end_ns: int, runs: int) -> list[dict]:
    out = []
    for name, call, run in queries(start_ns, end_ns):
        times, answer = [], None
        for i in range(runs + 1):
            gc.collect()
            t0 = time.perf_counter()
            answer = run(backend)
            took = (time.perf_counter() - t0) * 1000
            if i:  # the first run warms up
                times.append(took)
        out.append({"query": name, "api": call, "best_ms": round(min(times), 1),
                    "median_ms": round(statistics.median(times), 1), "runs_ms": [round(t, 1) for t in times],
                    "answer": summary(answer)})
        print(f"  {backend.name}: {name}: best {min(times):.1f} ms, median {statistics.median(times):.1f} ms",
              file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=1_000_000)
    ap.add_argument("--spans", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--settle", type=float, default=120, help="most seconds to wait for ClickHouse merges after the load")
    ap.add_argument("--backends", default="duckdb,chdb", help="comma-separated: duckdb, chdb")
    a = ap.parse_args(argv)

    workload = _workload.generate(logs=a.logs, spans=a.spans)
    end_ns = time.time_ns()
    # query.py's range: the workload's hour, ending a second after it
    end_q = end_ns // 1_000_000 * 1_000_000 + NS
    start_q = end_q - 3601 * NS
    print(f"encoding and decoding {a.logs:,} logs and {a.spans:,} spans ...", file=sys.stderr)
    t0 = time.perf_counter()
    log_batches, span_batches, expected = build_batches(workload, a.logs, a.spans, end_ns)
    prepare_s = time.perf_counter() - t0

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="koban-bench-backends-") as tmp:
        for name in a.backends.split(","):
            tmp_path = Path(tmp)
            backend = open_duckdb(tmp_path) if name == "duckdb" else open_chdb(tmp_path, a.settle)
            try:
                print(f"{backend.label}: loading ...", file=sys.stderr)
                loaded = load(backend, log_batches, span_batches)
                print(f"{backend.label}: {loaded['all']['records_per_s']:,} records/s written; querying ...",
                      file=sys.stderr)
                timings = time_queries(backend, start_q, end_q, a.runs)
            finally:
                backend.store.close()
            results[name] = {"label": backend.label, "load": loaded, "queries": timings}

    import chdb
    import clickhouse_connect
    import duckdb

    doc = {
        "benchmark": "query-backends", "date": _server.today(), "machine": _server.machine(), "koban": koban_version,
        "versions": {"duckdb": duckdb.__version__, "chdb": chdb.__version__,
                     "clickhouse_connect": clickhouse_connect.__version__},
        "params": {"logs": a.logs, "spans": a.spans, "runs": a.runs, "batch_records": BATCH_RECORDS,
                   "timeout_s": TIMEOUT_S, "range_ns": [start_q, end_q]},
        "prepare_seconds": round(prepare_s, 1), "expected": expected, "backends": results,
    }
    path = _server.write_results("query-backends", doc)
    print(f"results: {path}", file=sys.stderr)

    m = doc["machine"]
    names = list(results)
    print(f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, {doc['date']}, {a.logs:,} logs / {a.spans:,} spans,"
          f" koban {koban_version}, DuckDB {duckdb.__version__}, chdb {chdb.__version__}\n")
    print("| query | " + " | ".join(f"{results[n]['label']} best / median ms" for n in names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    for i, (qname, _, _) in enumerate(queries(start_q, end_q)):
        cells = [f"{results[n]['queries'][i]['best_ms']} / {results[n]['queries'][i]['median_ms']}" for n in names]
        print(f"| {qname} | " + " | ".join(cells) + " |")
    print("| load, records/s (logs / spans) | " + " | ".join(
        f"{results[n]['load']['logs']['records_per_s']:,} / {results[n]['load']['spans']['records_per_s'] or 0:,}"
        for n in names) + " |")
    for i, (qname, _, _) in enumerate(queries(start_q, end_q)):
        answers = [results[n]["queries"][i]["answer"] for n in names]
        if any(x != answers[0] for x in answers[1:]):
            print(f"\nWARNING: answers differ for {qname}: {answers}", file=sys.stderr)


if __name__ == "__main__":
    main()
