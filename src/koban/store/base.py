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

    def close(self) -> None:
        ...
