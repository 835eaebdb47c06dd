"""Open the configured store. The only place that chooses a backend by name."""

from __future__ import annotations

from pathlib import Path

from koban.settings import Settings
from koban.store.base import Store


def open_store(settings: Settings) -> Store:
    """The store named by `settings.store`, opened and with its tables created.

    Backends are imported lazily so that DuckDB-only installs never import
    clickhouse_connect. Raises StoreError when the store cannot be opened.
    """
    if settings.store == "clickhouse":
        from koban.store.clickhouse import ClickHouseStore

        return ClickHouseStore.from_settings(settings)
    from koban.store.duckdb import DuckDBStore

    return DuckDBStore(
        Path(settings.data_dir) / "koban.duckdb",
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads or None,
    )
