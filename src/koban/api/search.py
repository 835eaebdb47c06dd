"""JSON endpoints over logs, spans, traces and services. Each: parse, run one read, render."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban.api import params
from koban.errors import BadRequest, NotFound
from koban.query import reads

MAX_BUCKETS = 2000
_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def _json(payload: dict) -> Response:
    return JSONResponse(payload)


async def logs(request: Request) -> Response:
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    limit = params.integer(request, "limit", 50, high=rt.settings.query_max_rows)
    stmt = reads.logs_page(rt.dialect, q, start, end, limit, params.text(request, "cursor"))
    result = await rt.run_query("logs", stmt, max_rows=limit + 1)
    return _json(reads.logs_page_result(result, limit))


async def logs_histogram(request: Request) -> Response:
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    interval = params.duration(request, "interval") or reads.auto_interval(start, end)
    if (end - start) // interval > MAX_BUCKETS:
        raise BadRequest(f"interval is too small for this range: more than {MAX_BUCKETS} buckets", parameter="interval")
    by = params.text(request, "by")
    stmt = reads.logs_histogram(rt.dialect, q, start, end, interval, by)
    result = await rt.run_query("logs_histogram", stmt, max_rows=MAX_BUCKETS * 64)
    return _json(reads.histogram_result(result, start, end, interval, by))


async def logs_facets(request: Request) -> Response:
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    field = params.text(request, "field")
    if field is None:
        raise BadRequest("field is required, e.g. field=service or field=@http.method", parameter="field")
    limit = params.integer(request, "limit", 10, high=1000)
    stmt = reads.logs_facets(rt.dialect, q, start, end, field, limit)
    result = await rt.run_query("logs_facets", stmt, max_rows=limit + 1)
    return _json(reads.facets_result(result, field))


async def spans(request: Request) -> Response:
    rt = request.app.state.runtime
    q = params.search(request)
    start, end = params.time_range(request, rt.clock.now_ns())
    limit = params.integer(request, "limit", 50, high=rt.settings.query_max_rows)
    stmt = reads.spans_page(rt.dialect, q, start, end, limit, params.text(request, "cursor"))
    result = await rt.run_query("spans", stmt, max_rows=limit + 1)
    return _json(reads.spans_page_result(result, limit))


async def trace(request: Request) -> Response:
    rt = request.app.state.runtime
    trace_id = request.path_params["trace_id"]
    if not _TRACE_ID.fullmatch(trace_id):
        raise BadRequest(f"trace id must be 32 hex characters, got {trace_id!r}", parameter="trace_id")
    stmt = reads.trace(rt.dialect, trace_id.lower())
    result = await rt.run_query("trace", stmt, max_rows=100_000)
    payload = reads.trace_result(result)
    if not payload["spans"]:
        raise NotFound(f"no spans with trace id {trace_id.lower()}")
    return _json(payload)


async def services(request: Request) -> Response:
    rt = request.app.state.runtime
    start, end = params.time_range(request, rt.clock.now_ns())
    result = await rt.run_query("services", reads.services(rt.dialect, start, end), max_rows=100_000)
    return _json(reads.services_result(result, start, end))


async def service_resources(request: Request) -> Response:
    rt = request.app.state.runtime
    name = request.path_params["name"]
    start, end = params.time_range(request, rt.clock.now_ns())
    stmt = reads.service_resources(rt.dialect, name, start, end)
    result = await rt.run_query("service_resources", stmt, max_rows=100_000)
    return _json(reads.resources_result(result, name, start, end))
