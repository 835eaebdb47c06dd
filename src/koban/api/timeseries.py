"""GET /api/timeseries: one aggregate of logs or spans per time bucket, per group."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban.api import params
from koban.query import reads
from koban.query import timeseries as ts


async def series(request: Request) -> Response:
    """Query parameters: source (logs|spans, required), q, agg (default count), by
    (comma-separated fields), interval (default: about 60 buckets), from, to. Answers
    ts.series_result; 400 for an unknown source or agg (naming the allowed
    values), a query that does not parse, or a bad interval."""
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    query = ts.SeriesQuery(
        source=params.text(request, "source") or "",
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
