"""End to end with the real store: kill -9 the whole pipeline, restart, and every
acknowledged record is in DuckDB exactly once."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("koban.store.duckdb")

from koban.pipeline.buffer import IngestBuffer  # noqa: E402
from koban.pipeline.wal import WriteAheadLog  # noqa: E402
from koban.pipeline.writer import StoreWriter  # noqa: E402
from koban.store.duckdb import DuckDBStore  # noqa: E402

APPENDER = Path(__file__).with_name("pipeline_appender.py")


def run_and_kill(directory: Path, run: str, acks_before_kill: int) -> list[str]:
    proc = subprocess.Popen([sys.executable, str(APPENDER), str(directory), run], stdout=subprocess.PIPE, text=True)
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        while len(acked) < acks_before_kill:
            line = proc.stdout.readline()
            assert line, "the pipeline died on its own"
            acked.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        acked.extend(line.strip() for line in proc.stdout if line.endswith("\n"))
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    return acked


@pytest.mark.timeout(120)
def test_killed_pipeline_stores_every_acknowledged_record_exactly_once(tmp_path: Path) -> None:
    # the child's own codec, so both sides decode alike
    spec = importlib.util.spec_from_file_location("pipeline_appender", APPENDER)
    pipeline_appender = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline_appender)

    rng = random.Random()
    acked: list[str] = []
    for run in range(2):
        acked += run_and_kill(tmp_path, f"r{run}", rng.randint(100, 1500))

    store = DuckDBStore(tmp_path / "koban.duckdb")
    wal = WriteAheadLog(tmp_path / "wal", min_lsn=store.applied_lsn())
    writer = StoreWriter(store, IngestBuffer(10_000), wal, pipeline_appender.decode)
    writer.replay()
    rows = store.query("SELECT Body FROM otel_logs", {}, timeout_s=30, max_rows=10**7).rows
    assert store.applied_lsn() == wal.last_lsn
    wal.close()
    store.close()

    stored = Counter(body for (body,) in rows)
    duplicates = [b for b, n in stored.items() if n > 1]
    assert not duplicates, f"stored twice: {duplicates[:5]}"
    missing = {f"{tag}.{j}" for tag in acked for j in range(5)} - set(stored)
    assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"
