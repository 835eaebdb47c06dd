"""GET /api/metrics/names and /api/metrics/tags: the metric picker's reads."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban.api import params
from koban.errors import BadRequest
from koban.query import metric_catalog


async def names(request: Request) -> Response:
    """Query parameters: q (substring of the name, case-insensitive), from, to, limit
    (1..1000, default 100). Answers metric_catalog.names_result."""
    rt = request.app.state.runtime
    start, end = params.time_range(request, rt.clock.now_ns())
    limit = params.integer(request, "limit", 100, high=1000)
    stmt = metric_catalog.names(rt.dialect, params.text(request, "q") or "", start, end, limit)
    result = await rt.run_query("metric_names", stmt, max_rows=limit)
    return JSONResponse(metric_catalog.names_result(result))


async def tags(request: Request) -> Response:
    """Query parameters: metric (required), from, to. Answers metric_catalog.tags_result;
    400 without metric."""
    rt = request.app.state.runtime
    metric = params.text(request, "metric")
    if metric is None:
        raise BadRequest("metric is required, e.g. metric=http.server.duration", parameter="metric")
    start, end = params.time_range(request, rt.clock.now_ns())
    stmt = metric_catalog.tags(rt.dialect, metric, start, end, rt.store.metric_rollups_until_ns())
    result = await rt.run_query("metric_tags", stmt, max_rows=metric_catalog.MAX_TAG_ROWS)
    return JSONResponse(metric_catalog.tags_result(result))
