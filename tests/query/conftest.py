"""A small DuckDB store with known logs and spans, shared by the compiler and read tests."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from koban.model import Batch, LogRecord, Resource, Scope, Span, SpanEvent, SpanLink
from koban.query.dialects import Statement
from koban.store.base import QueryResult
from koban.store.duckdb import DuckDBStore

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000
MS = 1_000_000
START, END = T0, T0 + 600 * S  # the ten minutes every fixture record lies in

TRACE_A = "0af7651916cd43dd8448eb211c80319c"
TRACE_B = "4bf92f3577b34da6a3ce929d0e0e4736"

WEB = Resource("web", {"service.name": "web", "host.name": "h1", "deployment.environment.name": "prod"})
CHECKOUT = Resource(
    "checkout", {"service.name": "checkout", "host.name": "h2", "deployment.environment": "staging"}
)
PAYMENTS = Resource("payments", {"service.name": "payments", "host.name": "h3", "k8s.pod.name": "pay-1"})
SCOPE = Scope("koban.tests", "1.2.3")

# (seconds after T0, resource, severity text, severity number, body, attributes, trace id)
LOG_ROWS: list[tuple[int, Resource, str, int, str, dict[str, str], str]] = [
    (10, WEB, "ERROR", 17, "upstream timeout after 30s", {"http.status_code": "500", "user.id": "7"}, TRACE_A),
    (20, WEB, "INFO", 9, "GET /home ok", {"http.status_code": "200"}, ""),
    (30, CHECKOUT, "", 13, "slow payment 50% of the time", {"http.status_code": "500.0"}, ""),
    (40, CHECKOUT, "WARNING", 0, "retrying_later", {}, ""),
    (50, PAYMENTS, "CRITICAL", 0, "disk full", {"user.id": "8"}, ""),
    (60, PAYMENTS, "", 0, "no level here", {}, ""),
    (70, WEB, "debug", 5, "Cache HIT for key", {"cache": "hit"}, ""),
    (130, WEB, "notice", 0, "Deploy Started", {"version": "2"}, ""),
    (135, WEB, "Err", 0, "TIMEOUT calling payments", {"http.status_code": "504"}, TRACE_B),
]


def log_record(
    ts_ns: int, resource: Resource, text: str, number: int, body: str, attrs: dict[str, str], trace_id: str = ""
) -> LogRecord:
    span_id = "00f067aa0ba902b7" if trace_id else ""
    return LogRecord(ts_ns, ts_ns, trace_id, span_id, 0, text, number, body, attrs, resource, SCOPE)


def fixture_logs() -> list[LogRecord]:
    return [log_record(T0 + s * S, r, t, n, b, a, tr) for s, r, t, n, b, a, tr in LOG_ROWS]


API = Resource("api", {"service.name": "api", "host.name": "h1"})
DB = Resource("db", {"service.name": "db"})
WORKER = Resource("worker", {"service.name": "worker"})

# API request spans: (seconds after T0, name, duration ms, status)
API_REQUESTS = [
    (5, "GET /a", 10, "STATUS_CODE_OK"),
    (6, "GET /a", 20, "STATUS_CODE_UNSET"),
    (7, "GET /a", 35, "STATUS_CODE_ERROR"),
    (8, "GET /b", 40, "STATUS_CODE_UNSET"),
    (9, "GET /b", 250, "STATUS_CODE_UNSET"),
]


def span(
    start_ns: int,
    resource: Resource,
    name: str,
    kind: str,
    duration_ms: float,
    status: str = "STATUS_CODE_UNSET",
    trace_id: str = TRACE_A,
    span_id: str = "",
    parent: str = "",
    attrs: dict[str, str] | None = None,
    events: tuple[SpanEvent, ...] = (),
    links: tuple[SpanLink, ...] = (),
    message: str = "",
) -> Span:
    return Span(start_ns, int(duration_ms * MS), trace_id, span_id, parent, "", name, kind, status, message,
                attrs or {}, events, links, resource, SCOPE)


def fixture_spans() -> list[Span]:
    spans = [
        span(T0 + s * S, API, name, "SPAN_KIND_SERVER", ms, status, trace_id=TRACE_B, span_id=f"{i + 1:016x}",
             attrs={"http.status_code": "500" if status == "STATUS_CODE_ERROR" else "200"},
             message="boom: Connection Refused" if status == "STATUS_CODE_ERROR" else "")
        for i, (s, name, ms, status) in enumerate(API_REQUESTS)
    ]
    root = "a000000000000001"
    spans += [
        span(T0 + 100 * S, API, "GET /checkout", "SPAN_KIND_SERVER", 120, span_id=root,
             events=(SpanEvent(T0 + 100 * S + 5 * MS, "cache miss", {"key": "cart:7"}),),
             links=(SpanLink(TRACE_B, "0000000000000001", "", {"why": "retry"}),)),
        span(T0 + 100 * S + MS, API, "render", "SPAN_KIND_INTERNAL", 3, span_id="a000000000000002", parent=root),
        span(T0 + 100 * S + 10 * MS, DB, "SELECT carts", "SPAN_KIND_CLIENT", 80, span_id="a000000000000003",
             parent=root),
        span(T0 + 200 * S, WORKER, "process order", "SPAN_KIND_CONSUMER", 100, trace_id=TRACE_B,
             span_id="b000000000000001"),
        span(T0 + 210 * S, WORKER, "process order", "SPAN_KIND_CONSUMER", 300, "STATUS_CODE_ERROR",
             trace_id=TRACE_B, span_id="b000000000000002"),
    ]
    return spans


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
