"""A small DuckDB store with known logs and spans, shared by the compiler and read tests."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from conformance import records
from koban.model import Batch
from koban.query.dialects import Statement
from koban.store.base import QueryResult
from koban.store.duckdb import DuckDBStore

# The known records are the conformance suite's (one data set for every store test);
# the names below are the ones these tests reach through the `fx` fixture.
T0, S, MS, START, END = records.T0, records.S, records.MS, records.START, records.END
TRACE_A, TRACE_B = records.TRACE_A, records.TRACE_B
log_record = records.log
fixture_logs = records.logs
fixture_spans = records.spans


@pytest.fixture(scope="session")
def store() -> DuckDBStore:
    s = DuckDBStore(":memory:")
    s.write(Batch(logs=fixture_logs(), spans=fixture_spans()), lsn=1)
    yield s
    s.close()


def run(store: Any, stmt: Statement) -> QueryResult:
    return store.query(stmt.sql, stmt.params, timeout_s=10, max_rows=100_000)


@pytest.fixture(scope="session")
def fx() -> Any:
    """This module, so tests reach its constants and builders (importlib mode keeps
    test directories off sys.path, so they cannot import it by name)."""
    return sys.modules[__name__]


# --- ClickHouse in-process (optional) ------------------------------------------------

_CH_TYPES = {
    "TIMESTAMP_NS": "DateTime64(9)",
    "VARCHAR": "String",
    "UTINYINT": "UInt8",
    "UBIGINT": "UInt64",
    "MAP(VARCHAR, VARCHAR)": "Map(String, String)",
}


def _ch_type(duckdb_type: str) -> str:
    if duckdb_type.endswith("[]"):
        return f"Array({_ch_type(duckdb_type[:-2])})"
    return _CH_TYPES[duckdb_type]


def _ch_param(value: Any) -> str:
    # Server-side parameters travel as text in ClickHouse's escaped format.
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
    return str(value)


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A runner `(Statement) -> QueryResult` over the same fixture records in ClickHouse
    (chdb, in-process); skips when chdb is not installed."""
    chdb_session = pytest.importorskip("chdb.session", reason="chdb (in-process ClickHouse) is not installed")
    import json

    import pyarrow.parquet as pq

    from koban.store import schema
    from koban.store.columns import batch_to_arrow

    root = tmp_path_factory.mktemp("chdb")
    session = chdb_session.Session(str(root / "db"))
    tables = batch_to_arrow(Batch(logs=fixture_logs(), spans=fixture_spans()))
    for table in (schema.LOGS, schema.TRACES):
        cols = ", ".join(f"{schema.quote_ident(c)} {_ch_type(t)}" for c, t in schema.TABLE_COLUMNS[table])
        session.query(f"CREATE TABLE {table} ({cols}) ENGINE = MergeTree ORDER BY tuple()")
        path = root / f"{table}.parquet"
        pq.write_table(tables[table], path)
        session.query(f"INSERT INTO {table} SELECT * FROM file('{path}', Parquet)")

    def run_clickhouse(stmt: Statement) -> QueryResult:
        params = {k: _ch_param(v) for k, v in stmt.params.items()}
        out = json.loads(session.query(stmt.sql, "JSONCompact", params=params).bytes())
        return QueryResult([m["name"] for m in out["meta"]], [tuple(r) for r in out["data"]])

    yield run_clickhouse
    session.close()
