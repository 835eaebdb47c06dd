"""Statements behind the Storage page and the disk budget: rows per time bucket and
rows per service, for every signal, over every table that holds it.

Each table is counted on its own and the small per-table counts are added up, so the
big tables are read once. Table and column names come from `store/schema.py`; every
value is a bound parameter.
"""

from __future__ import annotations

from typing import Any

from koban.query.dialects import Dialect, Params, Statement
from koban.store import schema
from koban.store.base import QueryResult

SIGNALS = tuple(schema.SIGNAL_TABLES)
SIGNAL_OF_TABLE = {table: signal for signal, tables in schema.SIGNAL_TABLES.items() for table in tables}
"""The tables of records, by signal (derived tables: schema.DERIVED_TABLES)."""


def table_signal(table: str) -> str | None:
    """The signal a table's disk counts for: its records' or, for a derived table, the
    records' it is computed from; None for bookkeeping tables."""
    return SIGNAL_OF_TABLE.get(table) or schema.DERIVED_TABLES.get(table)


def _time(table: str) -> str:
    return schema.quote_ident(schema.TIME_COLUMN[table])


def _since(dialect: Dialect, table: str, start_ns: int | None, p: Params) -> str:
    if start_ns is None:
        return ""
    return f" WHERE {_time(table)} >= {dialect.ts_from_ns(p.bind(int(start_ns)))}"


def rows_per_bucket(dialect: Dialect, interval_ns: int, start_ns: int | None = None) -> Statement:
    """Rows (signal, bucket, n): how many rows of each signal fall in each bucket of
    `interval_ns` (aligned to multiples of it since the epoch), oldest bucket first;
    only rows at or after `start_ns` when given. Raises ValueError for a non-positive
    interval."""
    if interval_ns <= 0:
        raise ValueError("interval_ns must be positive")
    p = dialect.new_params()
    iv = p.bind(int(interval_ns))
    parts = []
    for table, signal in SIGNAL_OF_TABLE.items():
        bucket = f"{dialect.int_div(dialect.ts_to_ns(_time(table)), iv)} * {iv}"
        parts.append(
            f"SELECT {p.bind(signal)} AS signal, {bucket} AS bucket, count(*) AS n"
            f" FROM {table}{_since(dialect, table, start_ns, p)} GROUP BY bucket"
        )
    sql = (
        f"SELECT signal, bucket, sum(n) AS n FROM ({' UNION ALL '.join(parts)}) AS per_table"
        " GROUP BY signal, bucket ORDER BY bucket, signal"
    )
    return Statement(sql, p.values)


def bucket_counts(result: QueryResult) -> list[tuple[str, int, int]]:
    """(signal, bucket_ns, rows) from a rows_per_bucket result, oldest first."""
    return [(str(signal), int(bucket), int(n)) for signal, bucket, n in result.rows]


def rows_per_service(dialect: Dialect) -> Statement:
    """Rows (signal, service, n): how many rows each service has of each signal."""
    p = dialect.new_params()
    service = schema.quote_ident("ServiceName")
    parts = [
        f"SELECT {p.bind(signal)} AS signal, {service} AS service, count(*) AS n FROM {table} GROUP BY service"
        for table, signal in SIGNAL_OF_TABLE.items()
    ]
    sql = (
        f"SELECT signal, service, sum(n) AS n FROM ({' UNION ALL '.join(parts)}) AS per_table"
        " GROUP BY signal, service ORDER BY signal, n DESC, service"
    )
    return Statement(sql, p.values)


def service_counts(result: QueryResult) -> dict[str, dict[str, int]]:
    """{signal: {service: rows}} from a rows_per_service result ("" for no service)."""
    out: dict[str, dict[str, int]] = {signal: {} for signal in SIGNALS}
    for signal, service, n in result.rows:
        out.setdefault(str(signal), {})[str(service or "")] = int(n)
    return out


def signal_usage(tables: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{signal: {"bytes", "live_bytes", "rows"}} summed over the signal's tables from a
    Store.usage() answer; tables of no signal are left out. Derived tables (rollups)
    add their bytes, not their rows: deleting a record's row deletes its share of them."""
    out = {signal: {"bytes": 0, "live_bytes": 0, "rows": 0} for signal in SIGNALS}
    for table, use in tables.items():
        signal = table_signal(table)
        if signal is None:
            continue
        out[signal]["bytes"] += use.bytes
        out[signal]["live_bytes"] += use.live_bytes
        if table not in schema.DERIVED_TABLES:
            out[signal]["rows"] += use.rows
    return out
