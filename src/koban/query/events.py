"""Reads of koban's events table (DogStatsD events): the search fields and the newest-first page.

The search syntax is the one logs and spans use (query/parse.py), over the fields in
`EVENTS` below: free text looks in the title and the text; `service:`, `host:`,
`source:`, `alert_type:` (or `status:`), `priority:` and `aggregation_key:` are columns;
any other name (`team:pay`, `@team:pay`) is a tag. Pure, like query/reads.py: the api
layer runs the Statement on the store and hands the result to `events_result`.
"""

from __future__ import annotations

from typing import Any

from koban.query import ast
from koban.query.compile import Column, Source, TextColumn, compile_filter, describe
from koban.query.dialects import Dialect, Statement
from koban.query.reads import as_dict
from koban.query.timeparse import format_rfc3339_ns
from koban.store import schema
from koban.store.base import QueryResult

_ident = schema.quote_ident

_ALERT_TYPE = Column("AlertType")
_SOURCE = Column("SourceType")
_TEXT = TextColumn("Text")
EVENTS = Source(
    table=schema.EVENTS,
    fields={
        "title": TextColumn("Title"),
        "text": _TEXT,
        "message": _TEXT,
        "service": Column("ServiceName"),
        "host": Column("Host"),
        "source": _SOURCE,
        "source_type": _SOURCE,
        "alert_type": _ALERT_TYPE,
        "status": _ALERT_TYPE,
        "priority": Column("Priority"),
        "aggregation_key": Column("AggregationKey"),
    },
    attribute_maps=("Tags",),
    text_columns=("Title", "Text"),
    text_label="title or text",
)

# (SQL column, JSON key), in the order of the result rows
_COLUMNS = (
    ("Title", "title"),
    ("Text", "text"),
    ("AlertType", "alert_type"),
    ("Priority", "priority"),
    ("Host", "host"),
    ("AggregationKey", "aggregation_key"),
    ("SourceType", "source_type"),
    ("ServiceName", "service"),
    ("Tags", "tags"),
)


def events_page(dialect: Dialect, q: ast.Node, start_ns: int, end_ns: int, limit: int) -> Statement:
    """The newest `limit` events in [start_ns, end_ns) that `q` matches, newest first."""
    p = dialect.new_params()
    ts = _ident("Timestamp")
    where = (
        f"{ts} >= {dialect.ts_from_ns(p.bind(int(start_ns)))} AND {ts} < {dialect.ts_from_ns(p.bind(int(end_ns)))}"
        f" AND {compile_filter(q, EVENTS, dialect, p)}"
    )
    columns = [f"{dialect.ts_to_ns(ts)} AS timestamp_ns", *(f"{_ident(c)} AS {key}" for c, key in _COLUMNS)]
    sql = (
        f"SELECT {', '.join(columns)} FROM {schema.EVENTS} WHERE {where}"
        f" ORDER BY {ts} DESC, {_ident('Title')}, {_ident('Text')} LIMIT {p.bind(int(limit))}"
    )
    return Statement(sql, p.values)


def events_result(result: QueryResult, q: ast.Node) -> dict[str, Any]:
    """The JSON body of /api/events: `events` newest first, and the query in words."""
    events = []
    for row in result.rows:
        r = dict(zip(result.columns, row))
        ts = int(r.pop("timestamp_ns"))
        r["tags"] = as_dict(r["tags"])
        events.append({"timestamp": format_rfc3339_ns(ts), "timestamp_ns": ts, **r})
    return {"events": events, "query": describe(q, EVENTS)}
