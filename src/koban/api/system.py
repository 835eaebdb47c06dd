"""Health and self-metrics endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from koban import __version__
from koban.selfmetrics import CONTENT_TYPE


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def metrics(request: Request) -> Response:
    return Response(request.app.state.runtime.metrics.render(), media_type=CONTENT_TYPE)
