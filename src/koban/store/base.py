"""The Store protocol: what every backend (DuckDB today, ClickHouse next) provides.

The store only writes batches and runs SQL it is handed. It does not build queries:
`query/` compiles them for the store's `dialect` (see `query/dialects.py`). Nothing above
`store/` may know which backend it talks to.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from koban.model import Batch

SIGNALS = ("logs", "spans", "metrics")


class QueryResult(NamedTuple):
    columns: list[str]
    rows: list[tuple[Any, ...]]


class TableUsage(NamedTuple):
    """What one of koban's tables takes on disk (Store.usage)."""

    bytes: int
    """Bytes the table's data takes, deleted rows not yet reclaimed included."""
    stored_rows: int
    """Rows those bytes hold, deleted ones included."""
    rows: int
    """Rows a query sees (live rows)."""

    @property
    def live_bytes(self) -> int:
        """`bytes` scaled to the live rows: what the table would take once the engine
        has reclaimed deleted rows (DuckDB rewrites a row group, ClickHouse merges parts).
        Deleting rows lowers this at once, so the disk budget never deletes twice for
        space that is only waiting to be reclaimed."""
        if self.stored_rows <= 0:
            return 0
        return self.bytes * min(self.rows, self.stored_rows) // self.stored_rows


class Store(Protocol):
    dialect: str
    """Name of the SQL dialect for `query.dialects.for_store` ("duckdb", "clickhouse")."""

    def write(self, batch: Batch, lsn: int) -> None:
        """Append every record of `batch` and record `lsn` as applied, atomically where the
        backend allows (DuckDB: one transaction; ClickHouse: insert deduplication tokens
        derived from `lsn`). Writing the same `lsn` twice stores its rows once.
        Raises StoreError on failure; nothing is half-applied."""
        ...

    def applied_lsn(self) -> int:
        """The highest WAL sequence number whose batch is stored; 0 when none is."""
        ...

    def query(self, sql: str, params: dict[str, Any], *, timeout_s: float, max_rows: int) -> QueryResult:
        """Run one read-only statement with bound `params`. Raises QueryTimeout past
        `timeout_s`; returns at most `max_rows` rows. Thread-safe: reads may run
        concurrently with each other and with `write`."""
        ...

    def delete_older_than(self, signal: str, cutoff_ns: int) -> int:
        """Retention: remove `signal` ("logs", "spans", "metrics") records older than
        `cutoff_ns`. Returns the number of rows removed (or -1 when unknown)."""
        ...

    def disk_bytes(self) -> int:
        """Bytes the store uses on disk (0 when not known)."""
        ...

    def usage(self) -> dict[str, TableUsage]:
        """Disk use of each of koban's data tables (schema.ALL_TABLE_COLUMNS names, and
        the schema.DERIVED_TABLES the backend keeps).
        Measured where the engine tells it (DuckDB: the table's blocks plus its share of
        the WAL; ClickHouse: its active parts on every node). Raises StoreError."""
        ...

    def trim_memory(self, idle_for_s: float) -> bool:
        """Give memory kept for speed (caches) back when the store has been idle for
        `idle_for_s` seconds; returns whether it did. Never fails: a no-op where the
        backend keeps nothing in this process."""
        ...

    def roll_up_metrics(self, until_ns: int, *, settle_s: float = 0.0, max_steps: int = 1000) -> int:
        """Bring the metric rollups (schema.ROLLUP_1M) up to the minute before `until_ns`
        and recompute minutes that received late points, once none has come for
        `settle_s`; returns rollup rows written.
        A backend without rollups does nothing. Raises StoreError."""
        ...

    def metric_rollups_until_ns(self) -> int | None:
        """Every metric minute before this time (ns) is in the rollup tables, so queries
        read rollups before it and raw points after; None when the backend has none."""
        ...

    def close(self) -> None:
        ...
