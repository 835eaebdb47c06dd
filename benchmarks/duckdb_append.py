"""Micro-benchmark of DuckDB appends, in-process, without the server: what one row costs
DuckDB (insert + commit + its checkpoints) as koban's store writes it.

    .venv/bin/python benchmarks/duckdb_append.py logs [--rounds 2] [--threads N]
    .venv/bin/python benchmarks/duckdb_append.py metrics [--rounds 3] [--threads N]

`logs`: the ingest benchmark's prepared log rows (decode, policy, Arrow, attributes as
JSON text, as the DuckDB store writes them), 491,520 rows appended in appends of
10,000 to 245,760 rows, then a CHECKPOINT: CPU us/row (user + system of the process,
DuckDB's threads included) by rows per append.

`metrics`: 120,000 Prometheus remote write samples of the shared workload (24 requests
of 5,000) as rows of otel_metrics_gauge, appended 4 times, against the same samples as
a narrow (series id, time, value) table, and against koban's DuckDBStore.write of the
same requests, which keeps them narrow (store/duckdb_points.py; the series are new in
the first of its 4 writes only): docs/metrics.md, "Throughput".
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

import decode as decode_bench  # noqa: E402

from koban.ingest.guard import IngestPolicy  # noqa: E402
from koban.ingest.scrub import rule_set  # noqa: E402
from koban.model import Batch  # noqa: E402
from koban.pipeline.guarded_decode import decode_in_worker  # noqa: E402
from koban.store import schema  # noqa: E402
from koban.store.columns import batch_to_arrow, prepare_metrics  # noqa: E402
from koban.store.duckdb import DuckDBStore  # noqa: E402
from koban.store.json_maps import maps_to_json  # noqa: E402

ROW_GROUP = 122_880
APPEND_SIZES = (10_000, 20_000, 40_000, 60_000, 80_000, ROW_GROUP, 150_000, 2 * ROW_GROUP)
POLICY = IngestPolicy(rule_set(True, ()), 128, 4096)
CONFIG = {"preserve_insertion_order": False, "checkpoint_threshold": "64MB"}  # as store/duckdb.py opens it


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def us_per_row(table: pa.Table, ddl: list[str], name: str, appends: int) -> float:
    """CPU per row of `appends` appends of `table` into a new database's table `name`,
    each in its own transaction, then a CHECKPOINT."""
    path = os.path.join(tempfile.mkdtemp(prefix="koban-append-"), "bench.duckdb")
    con = duckdb.connect(path, config=CONFIG)
    for statement in ddl:
        con.execute(statement)
    start = _cpu_s()
    for _ in range(appends):
        con.begin()
        con.from_arrow(table).insert_into(name)
        con.commit()
    con.execute("CHECKPOINT")
    spent = _cpu_s() - start
    con.close()
    return spent / (appends * table.num_rows) * 1e6


def _log_rows() -> pa.Table:
    """The ingest benchmark's log rows as the DuckDB store appends them."""
    bodies = decode_bench.build_bodies(20)
    batches = [decode_in_worker(POLICY, "otlp-proto/logs", b, time.time_ns()).batch for b in bodies]
    table = batch_to_arrow(Batch.merge(batches), dictionary_maps=True)[schema.LOGS]
    i = table.schema.get_field_index("LogAttributes")
    table = table.set_column(i, "LogAttributes", maps_to_json(table.column(i)))
    return pa.concat_tables([table] * (2 * ROW_GROUP // table.num_rows + 1))


def bench_logs(rounds: int) -> None:
    rows = _log_rows()
    ddl = [d for d in schema.duckdb_ddl() if f"{schema.LOGS} " in d or f"{schema.LOGS}(" in d]
    print("| rows per append | " + " | ".join(f"{n:,}" for n in APPEND_SIZES) + " |")
    print("| --- |" + " ---: |" * len(APPEND_SIZES))
    for _ in range(rounds):
        cells = [us_per_row(rows.slice(0, n), ddl, schema.LOGS, max(1, 4 * ROW_GROUP // n)) for n in APPEND_SIZES]
        print("| us/row | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)


def _remote_write_batches() -> list[Batch]:
    """24 requests (120,000 samples) of the shared workload as the decode workers hand
    them to the store."""
    import cramjam
    import remote_write

    bodies = remote_write.build_bodies(10_000)[:24]
    raw = [bytes(cramjam.snappy.decompress_raw(body)) for body, _ in bodies]
    return [prepare_metrics(decode_in_worker(POLICY, "prom-rw/metrics", b, time.time_ns()).batch) for b in raw]


def store_us_per_sample(batch: Batch, appends: int) -> float:
    """CPU per sample of DuckDBStore.write of `batch` `appends` times (the series are new
    in the first write only), then closing the store (a checkpoint)."""
    path = os.path.join(tempfile.mkdtemp(prefix="koban-append-"), "bench.duckdb")
    store = DuckDBStore(path)
    start = _cpu_s()
    for lsn in range(1, appends + 1):
        store.write(batch, lsn)
    store.close()
    samples = sum(p.num_rows for p in batch.metric_columns)
    return (_cpu_s() - start) / (appends * samples) * 1e6


def bench_metrics(rounds: int) -> None:
    batch = Batch.merge(_remote_write_batches())
    wide = batch_to_arrow(batch, dictionary_maps=True)[schema.GAUGE]
    narrow = pa.table({
        "SeriesId": pa.array(range(wide.num_rows), pa.uint64()),
        "TimeUnix": wide.column("TimeUnix"),
        "Value": wide.column("Value"),
    })
    wide_ddl = [d for d in schema.duckdb_ddl() if schema.GAUGE in d]
    narrow_ddl = ["CREATE TABLE points (SeriesId UBIGINT, TimeUnix TIMESTAMP_NS, Value DOUBLE)"]
    print(f"| round | {schema.GAUGE} (exporter schema) us/row | narrow (series id, time, value) us/row"
          " | DuckDBStore.write us/sample |")
    print("| ---: | ---: | ---: | ---: |")
    for n in range(rounds):
        w = us_per_row(wide, wide_ddl, schema.GAUGE, 4)
        s = us_per_row(narrow, narrow_ddl, "points", 4)
        k = store_us_per_sample(batch, 4)
        print(f"| {n + 1} | {w:.2f} | {s:.2f} | {k:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", choices=["logs", "metrics"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, help="DuckDB threads (default: DuckDB's, one per core)")
    args = parser.parse_args(argv)
    if args.threads:
        CONFIG["threads"] = args.threads
    (bench_logs if args.rows == "logs" else bench_metrics)(args.rounds)


if __name__ == "__main__":
    main()
