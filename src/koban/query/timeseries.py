"""The time-series IR and its compiler: "aggregate X over the records matching Y, grouped
by Z, every N seconds" (DESIGN.md, Query languages).

A `SeriesQuery` is what charts, the services page, monitors and (later) the PromQL and
metric-query front ends produce; `compile_series` turns it into one Statement for a
dialect and `series_result` shapes the rows into the /api/timeseries JSON.

Table-driven like compile.py: `SOURCES` says, per source, which table and fields it
searches, which records are errors and which number the value aggregations read;
`AGGREGATIONS` says, per aggregation, the SQL columns it needs per bucket and how a
bucket's value comes out of them. A metrics source is one more `SOURCES` entry (its
table, a value column, and a metric name appended to SeriesQuery with a default).
Metrics turned out to need more than one entry: which table holds a metric decides
how its points read (gauge, counter, histogram), so `source=metrics` compiles in
query/metric_series.py (MetricSeriesQuery) and shares the buckets and limits here.

Buckets are aligned to multiples of the interval since the epoch, like
reads.logs_histogram, so the first one may start before `start_ns`. Every value is a
bound parameter; identifiers go through schema.quote_ident.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from koban.errors import BadRequest
from koban.query import ast
from koban.query.compile import LOGS, SPANS, Source, compile_filter, group_expr
from koban.query.dialects import Dialect, Params, Statement
from koban.store import schema
from koban.store.base import QueryResult

_ident = schema.quote_ident

MAX_SERIES = 20
"""Grouped queries keep the series with the most records over the whole range."""
MAX_BUCKETS = 2000
MAX_BY = 4
NO_GROUP = "(none)"
"""The label value of records that lack a `by` field (as in the logs histogram)."""

_MS = 1_000_000
_NS_PER_S = 1_000_000_000


class SeriesQuery(NamedTuple):
    """One time-series question. Times in ns, range half-open [start_ns, end_ns).

    `source` is a key of SOURCES, `aggregation` a key of AGGREGATIONS, `by` field
    names as a user types them (`service`, `@http.route`), which become label keys.
    """

    source: str
    filter: ast.Node
    start_ns: int
    end_ns: int
    interval_ns: int
    aggregation: str
    by: tuple[str, ...] = ()


# --- sources -------------------------------------------------------------------------


class SeriesSource(NamedTuple):
    search: Source
    """The table and the field names filters and `by` resolve against."""
    errors: ast.Node
    """The records `errors` and `error_rate` count."""
    value: Callable[[Dialect], str] | None
    """A float per record for avg/min/max/percentiles; None when the source has none."""
    value_unit: float
    """What a value is divided by for the response (span durations: ns -> ms)."""


SOURCES: dict[str, SeriesSource] = {
    "logs": SeriesSource(
        LOGS, ast.Or((ast.Match("status", "error"), ast.Match("status", "fatal"))), None, 1.0
    ),
    "spans": SeriesSource(
        SPANS, ast.Match("status", "error"), lambda d: d.to_float(_ident("Duration")), float(_MS)
    ),
}


# --- aggregations --------------------------------------------------------------------


class Aggregation(NamedTuple):
    columns: Callable[[Dialect, Params, SeriesSource], dict[str, str]]
    """SQL columns (name -> aggregate expression) needed per bucket, besides `n` (count)."""
    value: Callable[[dict[str, Any], SeriesSource, float], float | int | None]
    """A bucket's value from its row (n and the columns above) and the interval in s."""
    empty: int | None
    """The value of a bucket without records: 0 for counts, None where undefined."""
    needs_value: bool = False


def _errors(d: Dialect, p: Params, s: SeriesSource) -> dict[str, str]:
    return {"errors": d.count_if(compile_filter(s.errors, s.search, d, p))}


def _of_values(fn: str) -> Callable[[Dialect, Params, SeriesSource], dict[str, str]]:
    def columns(d: Dialect, p: Params, s: SeriesSource) -> dict[str, str]:
        assert s.value is not None  # checked by _validate
        return {"v": f"{fn}({s.value(d)})"}

    return columns


def _quantile(q: float) -> Callable[[Dialect, Params, SeriesSource], dict[str, str]]:
    def columns(d: Dialect, p: Params, s: SeriesSource) -> dict[str, str]:
        assert s.value is not None
        return {"v": d.quantile_if(s.value(d), q, "TRUE")}

    return columns


def _scaled(r: dict[str, Any], s: SeriesSource, interval_s: float) -> float | None:
    # Every row has at least one record, so the value is defined; None only defensively
    # (engines disagree on NULL vs NaN for an aggregate over nothing).
    v = r["v"]
    return None if v is None or v != v else float(v) / s.value_unit


def _value_aggregation(columns: Callable[[Dialect, Params, SeriesSource], dict[str, str]]) -> Aggregation:
    return Aggregation(columns, _scaled, None, needs_value=True)


AGGREGATIONS: dict[str, Aggregation] = {
    "count": Aggregation(lambda d, p, s: {}, lambda r, s, i: int(r["n"]), 0),
    "errors": Aggregation(_errors, lambda r, s, i: int(r["errors"]), 0),
    "error_rate": Aggregation(_errors, lambda r, s, i: int(r["errors"]) / int(r["n"]), None),
    "rate": Aggregation(lambda d, p, s: {}, lambda r, s, i: int(r["n"]) / i, 0),
    **{f"p{pct}": _value_aggregation(_quantile(pct / 100)) for pct in (50, 75, 90, 95, 99)},
    "avg": _value_aggregation(_of_values("avg")),
    "max": _value_aggregation(_of_values("max")),
    "min": _value_aggregation(_of_values("min")),
}


def allowed_aggregations(source: str) -> tuple[str, ...]:
    """The aggregation names `source` answers (all of them when it has values)."""
    src = SOURCES[source]
    return tuple(name for name, a in AGGREGATIONS.items() if src.value is not None or not a.needs_value)


# --- buckets -------------------------------------------------------------------------


def bucket_starts(start_ns: int, end_ns: int, interval_ns: int) -> range:
    """The start of every bucket overlapping [start_ns, end_ns), aligned to multiples
    of `interval_ns` since the epoch; empty when the range is."""
    if end_ns <= start_ns:
        return range(0)
    first = start_ns // interval_ns * interval_ns
    return range(first, (end_ns - 1) // interval_ns * interval_ns + 1, interval_ns)


def split_by(text: str | None) -> tuple[str, ...]:
    """`service,@http.route` as ("service", "@http.route"); blanks and repeats dropped."""
    fields = (f.strip() for f in (text or "").split(","))
    return tuple(dict.fromkeys(f for f in fields if f))


SOURCE_NAMES = (*SOURCES, "metrics")
"""Every `source` of /api/timeseries; metrics compile in query/metric_series.py."""


def check_interval(start_ns: int, end_ns: int, interval_ns: int) -> None:
    """Raise BadRequest unless `interval_ns` is whole milliseconds and makes at most
    MAX_BUCKETS buckets over [start_ns, end_ns)."""
    if interval_ns < _MS or interval_ns % _MS:
        raise BadRequest("interval must be a positive whole number of milliseconds", parameter="interval")
    if len(bucket_starts(start_ns, end_ns, interval_ns)) > MAX_BUCKETS:
        raise BadRequest(
            f"interval is too small for this range: more than {MAX_BUCKETS} buckets", parameter="interval"
        )


def _validate(q: SeriesQuery) -> SeriesSource:
    if q.source not in SOURCES:
        raise BadRequest(
            f"source must be one of {', '.join(SOURCES)}, got {q.source!r}", parameter="source"
        )
    allowed = allowed_aggregations(q.source)
    if q.aggregation not in allowed:
        raise BadRequest(
            f"agg {q.aggregation!r} is not available for {q.source}; use one of {', '.join(allowed)}",
            parameter="agg",
        )
    check_interval(q.start_ns, q.end_ns, q.interval_ns)
    if len(q.by) > MAX_BY:
        raise BadRequest(f"by takes at most {MAX_BY} fields, got {len(q.by)}", parameter="by")
    return SOURCES[q.source]


# --- compile -------------------------------------------------------------------------


def compile_series(q: SeriesQuery, dialect: Dialect) -> Statement:
    """One statement yielding (bucket, g0.., n, aggregate columns) per bucket and group
    that has records; when `by` is set, only the MAX_SERIES groups with the most records
    over the range. Raises BadRequest for an unknown source, an aggregation the source
    cannot answer, an interval that is not whole milliseconds or makes more than
    MAX_BUCKETS buckets, or more than MAX_BY `by` fields."""
    src = _validate(q)
    p = dialect.new_params()
    ts = _ident("Timestamp")
    iv = p.bind(int(q.interval_ns))
    bucket = f"{dialect.int_div(dialect.ts_to_ns(ts), iv)} * {iv}"
    where = (
        f"{ts} >= {dialect.ts_from_ns(p.bind(int(q.start_ns)))}"
        f" AND {ts} < {dialect.ts_from_ns(p.bind(int(q.end_ns)))}"
        f" AND {compile_filter(q.filter, src.search, dialect, p)}"
    )
    groups = [f"g{i}" for i in range(len(q.by))]
    group_cols = "".join(
        f", {group_expr(field, src.search, dialect, p)} AS {g}" for field, g in zip(q.by, groups)
    )
    extra = AGGREGATIONS[q.aggregation].columns(dialect, p, src)
    measures = ", ".join(["count(*) AS n", *(f"{expr} AS {name}" for name, expr in extra.items())])
    keys = ", ".join(["bucket", *groups])
    per_bucket = (
        f"SELECT {bucket} AS bucket{group_cols}, {measures} FROM {src.search.table}"
        f" WHERE {where} GROUP BY {keys}"
    )
    if not groups:
        return Statement(f"{per_bucket} ORDER BY bucket", p.values)
    # The top groups are ranked over the small per-bucket result, so the table is read
    # once; PARTITION BY keeps records without a field (NULL) as one group of their own.
    out_cols = ", ".join([keys, "n", *extra])
    group_list = ", ".join(groups)
    sql = (
        f"WITH per_bucket AS ({per_bucket}),"
        f" totals AS (SELECT *, sum(n) OVER (PARTITION BY {group_list}) AS group_total FROM per_bucket),"
        f" ranked AS (SELECT *, dense_rank() OVER (ORDER BY group_total DESC, {group_list}) AS series_rank"
        f" FROM totals)"
        f" SELECT {out_cols} FROM ranked WHERE series_rank <= {p.bind(MAX_SERIES)} ORDER BY bucket"
    )
    return Statement(sql, p.values)


# --- shape ---------------------------------------------------------------------------


def series_result(result: QueryResult, q: SeriesQuery) -> dict[str, Any]:
    """{"source", "agg", "interval_ms", "from_ms", "to_ms", "series": [{"labels",
    "points": [[ts_ms, value], ...]}]}: every bucket of the range in every series (the
    aggregation's `empty` value, 0 or None, where a series has no records), series
    sorted by their label values. Without `by`, exactly one series with labels {};
    with `by`, one per group that has records (none when nothing matched)."""
    src = SOURCES[q.source]
    agg = AGGREGATIONS[q.aggregation]
    interval_s = q.interval_ns / _NS_PER_S
    values: dict[tuple[str, ...], dict[int, float | int | None]] = {}
    if not q.by:
        values[()] = {}
    for row in result.rows:
        r = dict(zip(result.columns, row))
        labels = tuple(NO_GROUP if r[f"g{i}"] is None else str(r[f"g{i}"]) for i in range(len(q.by)))
        values.setdefault(labels, {})[int(r["bucket"])] = agg.value(r, src, interval_s)
    buckets = bucket_starts(q.start_ns, q.end_ns, q.interval_ns)
    series = [
        {
            "labels": dict(zip(q.by, labels)),
            "points": [[b // _MS, by_bucket.get(b, agg.empty)] for b in buckets],
        }
        for labels, by_bucket in sorted(values.items())
    ]
    return {
        "source": q.source,
        "agg": q.aggregation,
        "interval_ms": q.interval_ns // _MS,
        "from_ms": q.start_ns // _MS,
        "to_ms": q.end_ns // _MS,
        "series": series,
    }
