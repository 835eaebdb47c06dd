"""GET /api/timeseries: one aggregate of logs, spans or metrics per time bucket, per group."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban.api import params
from koban.errors import BadRequest
from koban.query import metric_series as ms
from koban.query import reads
from koban.query import timeseries as ts
from koban.query.metric_query import MetricQuery, parse_metric_query
from koban.query.metric_result import metric_series_result

_NS_PER_S = 1_000_000_000


async def series(request: Request) -> Response:
    """Query parameters: source (logs|spans|metrics, required), q, agg (default count),
    by (comma-separated fields), interval (default: about 60 buckets), from, to; for
    metrics also metric, or query (a Datadog metric query replacing metric, agg, by
    and q). Answers ts.series_result or metric_series_result; 400 for an unknown
    source or agg (naming the allowed values), a query that does not parse, or a bad
    interval."""
    source = params.text(request, "source") or ""
    if source == "metrics":
        return await _metric_series(request)
    if source not in ts.SOURCE_NAMES:
        raise BadRequest(f"source must be one of {', '.join(ts.SOURCE_NAMES)}, got {source!r}", parameter="source")
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    query = ts.SeriesQuery(
        source=source,
        filter=q,
        start_ns=start,
        end_ns=end,
        interval_ns=params.duration(request, "interval") or reads.auto_interval(start, end),
        aggregation=params.text(request, "agg") or "count",
        by=ts.split_by(params.text(request, "by")),
    )
    stmt = ts.compile_series(query, rt.dialect)
    max_rows = ts.MAX_BUCKETS * ts.MAX_SERIES
    result = await rt.run_query("timeseries", stmt, max_rows=max_rows)
    return JSONResponse(ts.series_result(result, query))


def _metric_query(request: Request) -> MetricQuery:
    """`query=` parsed, else one built from metric, q, agg and by."""
    text = params.text(request, "query")
    if text is not None:
        return parse_metric_query(text)
    metric = params.text(request, "metric")
    if metric is None:
        raise BadRequest("metrics need metric=<name> or query=<metric query>", parameter="metric")
    by = ts.split_by(params.text(request, "by"))
    return MetricQuery(metric, params.search(request), by, space=params.text(request, "agg"))


async def _metric_series(request: Request) -> Response:
    rt = request.app.state.runtime
    mq = _metric_query(request)
    if len(mq.by) > ts.MAX_BY:
        raise BadRequest(f"by takes at most {ts.MAX_BY} fields, got {len(mq.by)}", parameter="by")
    start, end = params.time_range(request, rt.clock.now_ns())
    interval = mq.rollup_s * _NS_PER_S if mq.rollup_s else params.duration(request, "interval")
    interval = interval or reads.auto_interval(start, end)
    ts.check_interval(start, end, interval)
    query = ms.MetricSeriesQuery(mq.metric, mq.filter, start, end, interval, mq.by, mq.space, mq.rollup, mq.mode)
    ms.check_names(query)
    found = await rt.run_query("metric_lookup", ms.compile_lookup(mq.metric, start, end, rt.dialect), max_rows=10)
    kind = ms.choose_kind(found.rows)
    if kind is None:
        return JSONResponse(metric_series_result(found._replace(rows=[]), query, None))
    query = query.resolved(kind)
    stmt = ms.compile_metric_series(query, kind, rt.dialect, rt.store.metric_rollups_until_ns())
    result = await rt.run_query("timeseries", stmt, max_rows=ts.MAX_BUCKETS * ts.MAX_SERIES * 512)
    return JSONResponse(metric_series_result(result, query, kind))
