"""An idle DuckDB store gives back the table blocks it cached for queries."""

from __future__ import annotations

import time
import uuid

from koban.model import Batch, LogRecord, Resource, Scope
from koban.store.duckdb import DuckDBStore

T0 = 1_767_225_600_000_000_000


def _cached_table_bytes(store: DuckDBStore) -> int:
    cur = store._db.cursor()  # white-box: duckdb_memory() is DuckDB's own accounting
    try:
        row = cur.execute("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'BASE_TABLE'").fetchone()
        return int(row[0])
    finally:
        cur.close()


def _logs(n: int) -> Batch:
    resource = Resource("trim", {"service.name": "trim"})
    return Batch(logs=[
        LogRecord(T0 + i, T0 + i, "", "", 0, "INFO", 9, f"line {i} {uuid.uuid4().hex}",
                  {f"k{k}": uuid.uuid4().hex for k in range(6)}, resource, Scope())
        for i in range(n)
    ])  # fmt: skip


def test_an_idle_store_gives_back_cached_blocks_but_not_while_in_use(tmp_path):
    store = DuckDBStore(tmp_path / "koban.duckdb", memory_limit="256MB")
    try:
        for lsn in range(1, 3):
            store.write(_logs(50_000), lsn)
        store._writer.execute("CHECKPOINT")  # rows into table blocks on disk, read back by the query below
        result = store.query("SELECT count(*), max(length(\"Body\")) FROM otel_logs WHERE \"Body\" LIKE '%9 a%'"
                             " OR \"LogAttributes\"->>'k1' = 'nothing'",
                             {}, timeout_s=30, max_rows=1)
        assert result.rows[0][0] > 0
        cached = _cached_table_bytes(store)
        assert cached > 10 << 20, "the query should have left table blocks in DuckDB's buffer pool"

        assert store.trim_memory(idle_for_s=3600) is False  # used a moment ago: keep the cache
        assert _cached_table_bytes(store) == cached

        time.sleep(0.2)
        assert store.trim_memory(idle_for_s=0.1) is True
        assert _cached_table_bytes(store) <= 8 << 20  # duckdb.py _TRIM_TO
        # and the store still answers with its full memory budget
        again = store.query("SELECT count(*) FROM otel_logs", {}, timeout_s=30, max_rows=1)
        assert again.rows[0][0] == 100_000
    finally:
        store.close()
