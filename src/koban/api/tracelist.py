"""GET /api/traces: the traces with a span matching a search, one summary row each."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban.api import params
from koban.errors import BadRequest
from koban.query import tracelist


async def traces(request: Request) -> Response:
    """Query parameters: q, from, to, limit (default 50, at most 1000), sort
    (`recent`, the default, or `duration`). Answers tracelist.trace_list_result."""
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    limit = params.integer(request, "limit", 50, high=1000)
    sort = params.text(request, "sort") or "recent"
    if sort not in tracelist.SORTS:
        raise BadRequest(f"sort must be one of {', '.join(tracelist.SORTS)}, got {sort!r}", parameter="sort")
    stmt = tracelist.trace_list(rt.dialect, q, start, end, limit, sort)
    result = await rt.run_query("traces", stmt, max_rows=limit + 1)
    return JSONResponse(tracelist.trace_list_result(result, sort))
