"""The backends the conformance suite runs against, each opened the way koban opens it.

- "duckdb": DuckDBStore on a file in the test's temp dir.
- "chdb": ClickHouseStore over clickhouse-connect's in-process chdb client: the real
  ClickHouse engine and koban's ClickHouse code, without HTTP.
- "chdb-http": ClickHouseStore.from_settings with a clickhouse_url pointing at
  tests/chdb_http's ClickHouse-HTTP-compatible endpoint over the same engine: the
  whole HTTP client path, URL parsing and authentication included.
- "clickhouse": a real server at $KOBAN_TEST_CLICKHOUSE_URL (skipped when unset).

Each ClickHouse store gets a database of its own, dropped when the test ends.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from koban.settings import Settings
from koban.store.base import Store

NAMES = ("duckdb", "chdb", "chdb-http", "clickhouse")
URL_ENV = "KOBAN_TEST_CLICKHOUSE_URL"
# No TTL: the fixture records are dated 2026-01-01 and would expire on insert.
NO_RETENTION = {"logs": 0.0, "spans": 0.0, "metrics": 0.0}


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


class Backend:
    """Opens stores of one backend; `open()` again reopens the same data (a restart)."""

    def __init__(self, name: str, tmp: Path, *, engine: Any = None, http: Any = None) -> None:
        self.name = name
        self.tmp = tmp
        self.engine = engine
        self.http = http
        self.database = f"koban_conf_{uuid.uuid4().hex[:12]}"
        self.data_dir = tmp / "data"
        self._opened: list[Store] = []

    def open(self) -> Store:
        store = self._open()
        self._opened.append(store)
        return store

    def _open(self) -> Store:
        if self.name == "duckdb":
            from koban.store.duckdb import DuckDBStore

            return DuckDBStore(self.data_dir / "koban.duckdb", memory_limit="256MB", threads=2)
        from koban.store.clickhouse import ClickHouseStore, instance_id

        if self.name == "chdb":
            import clickhouse_connect

            client = clickhouse_connect.get_client(interface="chdb", path=self.engine.path)
            return ClickHouseStore(
                client, database=self.database, retention_days=NO_RETENTION, instance=instance_id(self.data_dir)
            )
        url = self.http.url() if self.name == "chdb-http" else os.environ[URL_ENV]
        settings = Settings(
            store="clickhouse",
            clickhouse_url=with_database(url, self.database),
            data_dir=str(self.data_dir),
            retention_logs_days=0.0,
            retention_spans_days=0.0,
            retention_metrics_days=0.0,
        )
        return ClickHouseStore.from_settings(settings)

    def close(self) -> None:
        for store in self._opened:
            store.close()
        if self.name in ("chdb", "chdb-http"):
            conn = self.engine.connect()
            try:
                conn.query(f"DROP DATABASE IF EXISTS {self.database} SYNC", "TabSeparated")
            finally:
                conn.close()
        elif self.name == "clickhouse":
            import clickhouse_connect

            from koban.store.clickhouse import parse_url

            args = parse_url(os.environ[URL_ENV])
            args.pop("database")
            client = clickhouse_connect.get_client(**args)
            try:
                client.command(f"DROP DATABASE IF EXISTS {self.database} SYNC")
            finally:
                client.close()


def run(store: Store, stmt: Any, max_rows: int = 10_000) -> Any:
    """`store.query` of a query.dialects.Statement, with generous limits."""
    return store.query(stmt.sql, stmt.params, timeout_s=10, max_rows=max_rows)


def backend_for(name: str, request: Any, tmp: Path) -> Backend:
    """The Backend `name` for a test or fixture `request` (a pytest FixtureRequest),
    skipping when the backend cannot run here."""
    if name == "clickhouse" and not os.environ.get(URL_ENV):
        pytest.skip(f"no real ClickHouse server: set {URL_ENV}=http://user:pass@host:8123/ to run against one")
    if name in ("chdb", "chdb-http"):
        engine = request.getfixturevalue("chdb_engine")
        http = request.getfixturevalue("chdb_http") if name == "chdb-http" else None
        return Backend(name, tmp, engine=engine, http=http)
    if name == "clickhouse":
        pytest.importorskip("clickhouse_connect", reason="clickhouse-connect (koban[clickhouse]) is not installed")
    return Backend(name, tmp)
