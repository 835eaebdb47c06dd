"""GET /api/events: DogStatsD events, newest first, filtered by the search syntax."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban.api import params
from koban.query.events import events_page, events_result


async def events(request: Request) -> Response:
    """`q` (search syntax over title, text and tags), `from`/`to` (default: the last
    15 minutes), `limit` (default 50, at most query_max_rows)."""
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    limit = params.integer(request, "limit", 50, high=rt.settings.query_max_rows)
    result = await rt.run_query("events", events_page(rt.dialect, q, start, end, limit), max_rows=limit)
    return JSONResponse(events_result(result, q))
