"""The trace list: traces with at least one span matching a search, one row each.

Pure, like reads.py: a Statement builder and a result shaper. Used by /api/traces,
which the web UI's trace search and service pages read.
"""

from __future__ import annotations

from typing import Any

from koban.query import ast
from koban.query.compile import SPANS, compile_filter
from koban.query.dialects import Dialect, Statement
from koban.query.timeparse import format_rfc3339_ns
from koban.store import schema

_ident = schema.quote_ident

SORTS = ("recent", "duration")
"""`recent`: traces whose newest matching span started last come first;
`duration`: traces holding the longest matching span come first."""


def trace_list(
    dialect: Dialect, q: ast.Node, start_ns: int, end_ns: int, limit: int, sort: str = "recent"
) -> Statement:
    """Up to `limit` traces with a span in [start_ns, end_ns) matching `q`, summarised
    over all their spans (any time). Raises ValueError for a sort not in SORTS (the
    caller validates user input first)."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    c = _ident
    p = dialect.new_params()
    ts = c("Timestamp")
    where = (
        f"{ts} >= {dialect.ts_from_ns(p.bind(int(start_ns)))} AND {ts} < {dialect.ts_from_ns(p.bind(int(end_ns)))}"
        f" AND {compile_filter(q, SPANS, dialect, p)}"
    )
    rank = f"max({ts})" if sort == "recent" else f"max({c('Duration')})"
    start = dialect.ts_to_ns(ts)
    is_root = f"{c('ParentSpanId')} = {p.bind('')}"
    is_error = f"{c('StatusCode')} = {p.bind('STATUS_CODE_ERROR')}"
    sql = (
        f"WITH matched AS (SELECT {c('TraceId')} AS tid, {rank} AS rank FROM {SPANS.table}"
        f" WHERE {where} GROUP BY {c('TraceId')} ORDER BY rank DESC LIMIT {p.bind(int(limit))})"
        f" SELECT {c('TraceId')} AS trace_id, min({start}) AS start_ns,"
        f" max({start} + CAST({c('Duration')} AS BIGINT)) AS end_ns, count(*) AS span_count,"
        f" {dialect.count_if(is_error)} AS error_count,"
        f" max(CASE WHEN {is_root} THEN {c('ServiceName')} END) AS root_service,"
        f" max(CASE WHEN {is_root} THEN {c('SpanName')} END) AS root_name,"
        f" min({c('ServiceName')}) AS any_service"
        f" FROM {SPANS.table} WHERE {c('TraceId')} IN (SELECT tid FROM matched)"
        f" GROUP BY {c('TraceId')}"
    )
    return Statement(sql, p.values)


def trace_list_result(result: Any, sort: str = "recent") -> dict[str, Any]:
    """{"traces": [{"trace_id", "start", "start_ns", "duration_ns", "span_count",
    "error_count", "error", "root_service", "root_name"}]}. `root_service` and
    `root_name` are None when the trace's root span has not arrived (a partial trace)."""
    rows = [dict(zip(result.columns, row)) for row in result.rows]
    traces = []
    for r in rows:
        start, end = int(r["start_ns"]), int(r["end_ns"])
        traces.append({
            "trace_id": r["trace_id"],
            "start": format_rfc3339_ns(start),
            "start_ns": start,
            "duration_ns": max(0, end - start),
            "span_count": int(r["span_count"]),
            "error_count": int(r["error_count"]),
            "error": int(r["error_count"]) > 0,
            "root_service": r["root_service"],
            "root_name": r["root_name"],
        })
    key = (lambda t: -t["start_ns"]) if sort == "recent" else (lambda t: -t["duration_ns"])
    traces.sort(key=key)
    return {"traces": traces}
