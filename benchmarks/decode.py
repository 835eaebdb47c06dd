"""Micro-benchmark of the log ingest hot path, in-process: decode of one 1,000-record
OTLP/protobuf request, and batch_to_arrow of ten of them merged (10,000 records).

The requests have benchmarks/ingest.py's shape (the shared workload's log lines plus a
unique request_id and a thread.name: five attributes, two of them numbers).

    .venv/bin/python benchmarks/decode.py [--repeat 20] [--profile decode|arrow]

Times are the best of --repeat runs, in CPU time of the running thread.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _workload  # noqa: E402

from koban.ingest.otlp_proto import decode_logs  # noqa: E402
from koban.model import Batch  # noqa: E402
from koban.store.columns import batch_to_arrow  # noqa: E402

RECORDS = 1000
MERGED = 10


def build_bodies(n: int = MERGED) -> list[bytes]:
    """`n` request bodies of RECORDS log records each."""
    workload = _workload.DATA / "workload-logs200000-spans0-seed42"
    if not (workload / "logs.ndjson").is_file():
        workload = _workload.generate(200_000, 0)
    rows = _workload.read_ndjson(workload / "logs.ndjson", limit=RECORDS * n)
    for i, row in enumerate(rows):
        row["request_id"] = f"{i:016x}"
        row["thread.name"] = f"worker-{i % 16}"
    shift = _workload.shift_to(workload, time.time_ns())
    return [body for body, _ in _workload.encode(rows, _workload.logs_body, shift, RECORDS)]


def best_of(repeat: int, fn) -> float:
    """The fastest of `repeat` runs of `fn()`, in seconds of this thread's CPU time
    (so that other processes on a busy box count less than with wall time)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--profile", choices=["decode", "arrow"])
    args = parser.parse_args(argv)

    bodies = build_bodies()
    received = time.time_ns()
    batches = [decode_logs(b, received) for b in bodies]
    merged = Batch.merge(batches)
    assert merged.record_count == RECORDS * MERGED
    batch_to_arrow(merged, dictionary_maps=True)  # warm up pyarrow's conversions

    if args.profile:
        work = (lambda: [decode_logs(b, received) for b in bodies]) if args.profile == "decode" else (
            lambda: batch_to_arrow(merged, dictionary_maps=True)
        )
        prof = cProfile.Profile()
        prof.runcall(work)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return

    decode_s = best_of(args.repeat, lambda: decode_logs(bodies[0], received))
    arrow_s = best_of(args.repeat, lambda: batch_to_arrow(merged, dictionary_maps=True))
    merge_s = best_of(args.repeat, lambda: Batch.merge(batches))
    total = RECORDS * MERGED
    per_record_us = (decode_s / RECORDS + (arrow_s + merge_s) / total) * 1e6
    print(f"decode_logs, {RECORDS} records:      {decode_s * 1e3:7.2f} ms  ({decode_s / RECORDS * 1e6:.2f} us/record)")
    print(f"Batch.merge, {MERGED} batches:          {merge_s * 1e3:7.2f} ms")
    print(f"batch_to_arrow, {total} records: {arrow_s * 1e3:7.2f} ms  ({arrow_s / total * 1e6:.2f} us/record)")
    print(f"decode + merge + arrow:            {per_record_us:.2f} us/record")

if __name__ == "__main__":
    main()
