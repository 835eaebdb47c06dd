"""The JSON API's read operations: a Statement builder and a result shaper for each.

Pure: the api layer runs `store.query(stmt.sql, stmt.params, ...)` in between. Times
are integer nanoseconds already resolved by the caller; ranges are half-open
[start_ns, end_ns). Every value is bound; every identifier goes through quote_ident.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from koban.errors import BadRequest
from koban.query import ast
from koban.query.compile import LOGS, SPANS, Source, compile_filter, group_expr, group_inputs, number_level
from koban.query.dialects import Dialect, Params, Statement
from koban.query.timeparse import format_rfc3339_ns
from koban.store import schema
from koban.store.base import QueryResult

_ident = schema.quote_ident

HISTOGRAM_GROUPS = 10
"""`by` histograms keep the 10 values with the most records over the whole range;
the rest are summed under OTHER_GROUP and records without the field under NO_GROUP."""
OTHER_GROUP = "(other)"
NO_GROUP = "(none)"
MAX_BUCKETS = 10_000

_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400)
_NS = 1_000_000_000


# --- shared pieces -------------------------------------------------------------------


def _where(dialect: Dialect, source: Source, q: ast.Node, start_ns: int, end_ns: int, p: Params) -> str:
    ts = _ident("Timestamp")
    start = dialect.ts_from_ns(p.bind(int(start_ns)))
    end = dialect.ts_from_ns(p.bind(int(end_ns)))
    return f"{ts} >= {start} AND {ts} < {end} AND {compile_filter(q, source, dialect, p)}"


def _rows(result: QueryResult) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, row)) for row in result.rows]


def as_dict(value: Any) -> dict[str, str]:
    """A map column as a dict, whatever shape the driver returns it in (JSON text for
    the map columns DuckDB keeps as JSON, schema.DUCKDB_JSON_MAPS)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return json.loads(value)
    if isinstance(value, dict):
        if set(value) == {"key", "value"} and isinstance(value["key"], list):
            return dict(zip(value["key"], value["value"]))  # older DuckDB map shape
        return dict(value)
    return dict(value)  # a list of (key, value) pairs


def _list(value: Any) -> list[Any]:
    return [] if value is None else list(value)


# --- cursors -------------------------------------------------------------------------

_CURSOR = re.compile(r"(\d{1,20})\.(\d{1,12})")


def encode_cursor(ts_ns: int, skip: int) -> str:
    """An opaque, url-safe cursor: the last row's time and how many rows at exactly that
    time were returned so far."""
    return base64.urlsafe_b64encode(f"{ts_ns}.{skip}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(ts_ns, skip) from `encode_cursor`'s output. Raises BadRequest when malformed."""
    if len(cursor) > 64 or not re.fullmatch(r"[A-Za-z0-9_-]+", cursor):
        raise BadRequest("malformed cursor", cursor=cursor[:64])
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("malformed cursor", cursor=cursor) from None
    m = _CURSOR.fullmatch(text)
    if m is None:
        raise BadRequest("malformed cursor", cursor=cursor)
    return int(m.group(1)), int(m.group(2))


def _page(
    dialect: Dialect,
    source: Source,
    columns: list[str],
    tiebreak: list[str],
    q: ast.Node,
    start_ns: int,
    end_ns: int,
    limit: int,
    cursor: str | None,
) -> Statement:
    # Keyset on time plus OFFSET over the rows sharing the cursor's timestamp: nothing is
    # lost or repeated across pages even when many rows share a nanosecond.
    cursor_ts, skip = decode_cursor(cursor) if cursor is not None else (-1, 0)
    p = dialect.new_params()
    where = _where(dialect, source, q, start_ns, end_ns, p)
    if cursor is not None:
        where += f" AND {_ident('Timestamp')} <= {dialect.ts_from_ns(p.bind(cursor_ts))}"
    # The cursor comes back with every row so the result shaper can carry `skip` forward.
    echo = f"{p.bind(cursor_ts)} AS cursor_ts, {p.bind(skip)} AS cursor_skip"
    order = ", ".join([f"{_ident('Timestamp')} DESC", *tiebreak])
    sql = (
        f"SELECT {', '.join(columns)}, {echo} FROM {source.table} WHERE {where}"
        f" ORDER BY {order} LIMIT {p.bind(int(limit) + 1)} OFFSET {p.bind(skip)}"
    )
    return Statement(sql, p.values)


def _next_cursor(rows: list[dict[str, Any]], limit: int, ts_key: str) -> str | None:
    if len(rows) <= limit or limit <= 0:
        return None
    page = rows[:limit]
    last = page[-1][ts_key]
    same = sum(1 for r in page if r[ts_key] == last)
    if last == page[0]["cursor_ts"]:
        same += page[0]["cursor_skip"]  # the run of equal times started on an earlier page
    return encode_cursor(last, same)


# --- logs ----------------------------------------------------------------------------


def _log_columns(dialect: Dialect) -> list[str]:
    c = _ident
    return [
        f"{dialect.ts_to_ns(c('Timestamp'))} AS timestamp_ns",
        f"{c('ServiceName')} AS service",
        f"{c('SeverityText')} AS severity_text",
        f"{c('SeverityNumber')} AS severity_number",
        f"{c('Body')} AS body",
        f"{c('TraceId')} AS trace_id",
        f"{c('SpanId')} AS span_id",
        f"{c('LogAttributes')} AS attributes",
        f"{c('ResourceAttributes')} AS resource",
        f"{c('ScopeName')} AS scope_name",
        f"{c('ScopeVersion')} AS scope_version",
    ]


def logs_page(
    dialect: Dialect, q: ast.Node, start_ns: int, end_ns: int, limit: int, cursor: str | None
) -> Statement:
    """Newest log records first, `limit` of them (one more is fetched to know whether
    there is a next page). Raises BadRequest for a malformed cursor."""
    c = _ident
    tiebreak = [c(n) for n in ("ServiceName", "TraceId", "SpanId", "SeverityNumber", "Body")]
    tiebreak.append(dialect.row_hash(c("LogAttributes")))
    return _page(dialect, LOGS, _log_columns(dialect), tiebreak, q, start_ns, end_ns, limit, cursor)


def _log_row(r: dict[str, Any]) -> dict[str, Any]:
    number = int(r["severity_number"] or 0)
    ts = int(r["timestamp_ns"])
    return {
        "timestamp": format_rfc3339_ns(ts),
        "timestamp_ns": ts,
        "service": r["service"],
        "severity": r["severity_text"] or number_level(number),
        "severity_number": number,
        "body": r["body"],
        "trace_id": r["trace_id"],
        "span_id": r["span_id"],
        "attributes": as_dict(r["attributes"]),
        "resource": as_dict(r["resource"]),
        "scope": {"name": r["scope_name"], "version": r["scope_version"]},
    }


def logs_page_result(result: QueryResult, limit: int) -> dict[str, Any]:
    """{"rows": [log row, ...], "next_cursor": str | None (None on the last page)}."""
    rows = _rows(result)
    return {
        "rows": [_log_row(r) for r in rows[:limit]],
        "next_cursor": _next_cursor(rows, limit, "timestamp_ns"),
    }


# --- histogram -----------------------------------------------------------------------


def auto_interval(start_ns: int, end_ns: int, target_buckets: int = 60) -> int:
    """A round bucket width in ns giving about `target_buckets` buckets (at least 1 s;
    whole days past one day)."""
    wanted = max(end_ns - start_ns, 0) / max(target_buckets, 1)
    for step in _STEPS_S:
        if step * _NS >= wanted:
            return step * _NS
    day = 86400 * _NS
    return -(-int(wanted) // day) * day


def _bucket_range(start_ns: int, end_ns: int, interval_ns: int) -> range:
    if end_ns <= start_ns:
        return range(0)
    first = start_ns // interval_ns * interval_ns
    last = (end_ns - 1) // interval_ns * interval_ns
    return range(first, last + 1, interval_ns)


def logs_histogram(
    dialect: Dialect, q: ast.Node, start_ns: int, end_ns: int, interval_ns: int, by: str | None
) -> Statement:
    """Counts per bucket (aligned to multiples of `interval_ns` since the epoch), split
    by the field `by` when given. Raises BadRequest for a non-positive interval or one
    that would make more than MAX_BUCKETS buckets."""
    if interval_ns <= 0:
        raise BadRequest("interval must be positive", interval_ns=interval_ns)
    if len(_bucket_range(start_ns, end_ns, interval_ns)) > MAX_BUCKETS:
        raise BadRequest(f"interval too small: more than {MAX_BUCKETS} buckets", interval_ns=interval_ns)
    p = dialect.new_params()
    iv = p.bind(int(interval_ns))
    bucket = f"{dialect.int_div(dialect.ts_to_ns(_ident('Timestamp')), iv)} * {iv}"
    where = _where(dialect, LOGS, q, start_ns, end_ns, p)
    if by is None:
        sql = (
            f"SELECT {bucket} AS bucket, count(*) AS n FROM {LOGS.table} WHERE {where}"
            " GROUP BY bucket ORDER BY bucket"
        )
        return Statement(sql, p.values)
    counted = _grouped_counts(dialect, by, LOGS, where, p, {"bucket": bucket})
    # The top groups are picked from the small aggregate, so the table is read once.
    top = "SELECT grp FROM top_groups"
    sql = (
        f"WITH counted AS ({counted}),"
        f" top_groups AS (SELECT grp FROM counted WHERE grp IS NOT NULL GROUP BY grp"
        f" ORDER BY sum(n) DESC, grp LIMIT {p.bind(HISTOGRAM_GROUPS)})"
        f" SELECT bucket,"
        f" CASE WHEN grp IS NULL THEN 0 WHEN grp IN ({top}) THEN 1 ELSE 2 END AS kind,"
        f" CASE WHEN grp IN ({top}) THEN grp END AS grp_value, sum(n) AS n"
        f" FROM counted GROUP BY bucket, kind, grp_value ORDER BY bucket"
    )
    return Statement(sql, p.values)


def _grouped_counts(
    dialect: Dialect, field: str, source: Source, where: str, p: Params, keys: dict[str, str]
) -> str:
    """SQL yielding columns (*keys, grp, n): matching records counted per `keys`
    (name -> expression) and per value of `field`. When the field's group expression
    reads only a few plain columns (severity), records are first counted per raw value
    of those columns and the expression runs over that small result, not every row."""
    key_select = "".join(f"{expr} AS {name}, " for name, expr in keys.items())
    key_names = "".join(f"{name}, " for name in keys)
    inputs = group_inputs(field, source)
    grp = group_expr(field, source, dialect, p)
    if inputs is None:
        return (
            f"SELECT {key_select}{grp} AS grp, count(*) AS n FROM {source.table}"
            f" WHERE {where} GROUP BY {key_names}grp"
        )
    raw = ", ".join(_ident(c) for c in inputs)
    return (
        f"SELECT {key_names}{grp} AS grp, sum(n) AS n FROM"
        f" (SELECT {key_select}{raw}, count(*) AS n FROM {source.table} WHERE {where}"
        f" GROUP BY {key_names}{raw}) AS raw_counts GROUP BY {key_names}grp"
    )


def histogram_result(
    result: QueryResult, start_ns: int, end_ns: int, interval_ns: int, by: str | None
) -> dict[str, Any]:
    """{"interval_ms", "by", "total", "buckets": [{"ts", "ts_ms", "count", "groups"?}]}
    with every bucket of the range, zero-filled; "groups" ({value: count}, see
    HISTOGRAM_GROUPS) only when `by` is set."""
    counts: dict[int, int] = {}
    groups: dict[int, dict[str, int]] = {}
    for r in _rows(result):
        b, n = int(r["bucket"]), int(r["n"])
        counts[b] = counts.get(b, 0) + n
        if by is not None:
            name = (NO_GROUP, str(r["grp_value"]), OTHER_GROUP)[int(r["kind"])]
            g = groups.setdefault(b, {})
            g[name] = g.get(name, 0) + n
    buckets = []
    for b in _bucket_range(start_ns, end_ns, interval_ns):
        bucket: dict[str, Any] = {
            "ts": format_rfc3339_ns(b),
            "ts_ms": b // 1_000_000,
            "count": counts.get(b, 0),
        }
        if by is not None:
            bucket["groups"] = groups.get(b, {})
        buckets.append(bucket)
    return {
        "interval_ms": interval_ns // 1_000_000,
        "by": by,
        "total": sum(counts.values()),
        "buckets": buckets,
    }


# --- facets --------------------------------------------------------------------------


def logs_facets(
    dialect: Dialect, q: ast.Node, start_ns: int, end_ns: int, field: str, limit: int = 10
) -> Statement:
    """The `limit` most frequent values of `field` among matching records."""
    p = dialect.new_params()
    where = _where(dialect, LOGS, q, start_ns, end_ns, p)
    counted = _grouped_counts(dialect, field, LOGS, where, p, {})
    # The window total runs before LIMIT, so it counts every matching record; records
    # without the field form the NULL group, sorted last (so it never displaces a value)
    # and dropped by the shaper.
    sql = (
        f"SELECT grp AS value, n, sum(n) OVER () AS total FROM ({counted}) AS counted"
        f" ORDER BY value IS NULL, n DESC, value LIMIT {p.bind(int(limit))}"
    )
    return Statement(sql, p.values)


def facets_result(result: QueryResult, field: str) -> dict[str, Any]:
    """{"field", "values": [{"value", "count"}], "total": records matching in range}."""
    rows = _rows(result)
    values = [{"value": str(r["value"]), "count": int(r["n"])} for r in rows if r["value"] is not None]
    total = int(rows[0]["total"]) if rows else 0
    return {"field": field, "values": values, "total": total}


# --- spans ---------------------------------------------------------------------------

_KINDS = {f"SPAN_KIND_{k.upper()}": k for k in ("server", "client", "internal", "producer", "consumer")}
_STATUSES = {"STATUS_CODE_OK": "ok", "STATUS_CODE_ERROR": "error"}


def _span_columns(dialect: Dialect) -> list[str]:
    c = _ident
    return [
        f"{dialect.ts_to_ns(c('Timestamp'))} AS start_ns",
        f"{c('TraceId')} AS trace_id",
        f"{c('SpanId')} AS span_id",
        f"{c('ParentSpanId')} AS parent_span_id",
        f"{c('ServiceName')} AS service",
        f"{c('SpanName')} AS name",
        f"{c('SpanKind')} AS kind",
        f"{c('Duration')} AS duration_ns",
        f"{c('StatusCode')} AS status",
        f"{c('StatusMessage')} AS status_message",
        f"{c('SpanAttributes')} AS attributes",
        f"{c('ResourceAttributes')} AS resource",
        f"{dialect.ts_list_to_ns(c('Events.Timestamp'))} AS event_times",
        f"{c('Events.Name')} AS event_names",
        f"{c('Events.Attributes')} AS event_attributes",
        f"{c('Links.TraceId')} AS link_trace_ids",
        f"{c('Links.SpanId')} AS link_span_ids",
        f"{c('Links.Attributes')} AS link_attributes",
    ]


def _span(r: dict[str, Any]) -> dict[str, Any]:
    start = int(r["start_ns"])
    events = [
        {"timestamp": format_rfc3339_ns(int(t)), "timestamp_ns": int(t), "name": n, "attributes": as_dict(a)}
        for t, n, a in zip(_list(r["event_times"]), _list(r["event_names"]), _list(r["event_attributes"]))
    ]
    links = [
        {"trace_id": t, "span_id": s, "attributes": as_dict(a)}
        for t, s, a in zip(_list(r["link_trace_ids"]), _list(r["link_span_ids"]), _list(r["link_attributes"]))
    ]
    return {
        "trace_id": r["trace_id"],
        "span_id": r["span_id"],
        "parent_span_id": r["parent_span_id"],
        "service": r["service"],
        "name": r["name"],
        "kind": _KINDS.get(r["kind"], "unspecified"),
        "start": format_rfc3339_ns(start),
        "start_ns": start,
        "duration_ns": int(r["duration_ns"]),
        "status": _STATUSES.get(r["status"], "unset"),
        "status_message": r["status_message"],
        "attributes": as_dict(r["attributes"]),
        "resource": as_dict(r["resource"]),
        "events": events,
        "links": links,
    }


def spans_page(
    dialect: Dialect, q: ast.Node, start_ns: int, end_ns: int, limit: int, cursor: str | None
) -> Statement:
    """Newest spans first (by start). Raises BadRequest for a malformed cursor."""
    tiebreak = [_ident("TraceId"), _ident("SpanId")]
    return _page(dialect, SPANS, _span_columns(dialect), tiebreak, q, start_ns, end_ns, limit, cursor)


def spans_page_result(result: QueryResult, limit: int) -> dict[str, Any]:
    """{"rows": [span, ...], "next_cursor": str | None (None on the last page)}."""
    rows = _rows(result)
    return {"rows": [_span(r) for r in rows[:limit]], "next_cursor": _next_cursor(rows, limit, "start_ns")}


def trace(dialect: Dialect, trace_id: str) -> Statement:
    """Every span of one trace (any time), by start then span id."""
    p = dialect.new_params()
    sql = (
        f"SELECT {', '.join(_span_columns(dialect))} FROM {SPANS.table}"
        f" WHERE {_ident('TraceId')} = {p.bind(trace_id.strip().lower())}"
        f" ORDER BY {_ident('Timestamp')}, {_ident('SpanId')}"
    )
    return Statement(sql, p.values)


def trace_result(result: QueryResult, trace_id: str = "") -> dict[str, Any]:
    """{"trace_id", "spans": [span, ...]}; "spans" is empty when the trace is unknown
    (the caller decides whether that is a 404), and "trace_id" is then `trace_id`."""
    spans = [_span(r) for r in _rows(result)]
    return {"trace_id": spans[0]["trace_id"] if spans else trace_id.lower(), "spans": spans}


# --- services ------------------------------------------------------------------------

_PERCENTILES = (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99))


def _request_metrics(dialect: Dialect, p: Params) -> tuple[str, str]:
    """(SELECT list of the metric columns, the request condition)."""
    c = _ident
    is_request = f"{c('SpanKind')} IN ({p.bind('SPAN_KIND_SERVER')}, {p.bind('SPAN_KIND_CONSUMER')})"
    is_error = f"{c('StatusCode')} = {p.bind('STATUS_CODE_ERROR')}"
    duration = dialect.to_float(c("Duration"))
    cols = [
        f"{dialect.count_if(is_request)} AS requests",
        f"{dialect.count_if(f'{is_request} AND {is_error}')} AS errors",
        *(f"{dialect.quantile_if(duration, qv, is_request)} AS {name}" for name, qv in _PERCENTILES),
    ]
    return ", ".join(cols), is_request


def _metrics(r: dict[str, Any], seconds: float) -> dict[str, Any]:
    requests, errors = int(r["requests"]), int(r["errors"])
    out: dict[str, Any] = {
        "requests": requests,
        "rps": requests / seconds if seconds > 0 else 0.0,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
    }
    for name, _ in _PERCENTILES:
        # Engines disagree on a quantile over no rows (NULL vs NaN); no requests, no value.
        out[name] = float(r[name]) / 1e6 if requests and r[name] is not None else None
    return out


def services(dialect: Dialect, start_ns: int, end_ns: int) -> Statement:
    """Request metrics per service; services with no request spans are listed too."""
    p = dialect.new_params()
    metrics, _ = _request_metrics(dialect, p)
    where = _where(dialect, SPANS, ast.MatchAll(), start_ns, end_ns, p)
    sql = (
        f"SELECT {_ident('ServiceName')} AS service, {metrics} FROM {SPANS.table} WHERE {where}"
        f" GROUP BY {_ident('ServiceName')} ORDER BY requests DESC, service"
    )
    return Statement(sql, p.values)


def services_result(result: QueryResult, start_ns: int, end_ns: int) -> dict[str, Any]:
    """{"services": [{"service", "requests", "rps", "errors", "error_rate", "p50_ms",
    "p90_ms", "p99_ms"}]}, by requests (most first) then name; percentiles are None
    when a service had no requests."""
    seconds = (end_ns - start_ns) / _NS
    rows = [{"service": r["service"], **_metrics(r, seconds)} for r in _rows(result)]
    rows.sort(key=lambda s: (-s["requests"], s["service"]))
    return {"services": rows}


def service_resources(dialect: Dialect, service: str, start_ns: int, end_ns: int) -> Statement:
    """The same metrics per SpanName over `service`'s request spans."""
    p = dialect.new_params()
    metrics, is_request = _request_metrics(dialect, p)
    where = _where(dialect, SPANS, ast.MatchAll(), start_ns, end_ns, p)
    sql = (
        f"SELECT {_ident('SpanName')} AS resource, {metrics} FROM {SPANS.table}"
        f" WHERE {where} AND {_ident('ServiceName')} = {p.bind(service)} AND {is_request}"
        f" GROUP BY {_ident('SpanName')} ORDER BY requests DESC, resource"
    )
    return Statement(sql, p.values)


def resources_result(result: QueryResult, service: str, start_ns: int, end_ns: int) -> dict[str, Any]:
    """{"service", "resources": [{"resource", "requests", "rps", ...}]}, ordered like
    services_result."""
    seconds = (end_ns - start_ns) / _NS
    rows = [{"resource": r["resource"], **_metrics(r, seconds)} for r in _rows(result)]
    rows.sort(key=lambda s: (-s["requests"], s["resource"]))
    return {"service": service, "resources": rows}
