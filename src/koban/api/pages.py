"""HTTP handlers for the web UI's pages (rendered by koban.ui.pages) and `/`."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from koban.ui import pages

_HEADERS = {"Cache-Control": "no-store"}


async def home(request: Request) -> Response:
    """`/` leads to the log explorer, keeping any query string."""
    query = urlencode(list(request.query_params.multi_items()))
    return RedirectResponse("/logs" + (f"?{query}" if query else ""), status_code=302)


def page(name: str, param: str | None = None):
    """A handler rendering page `name`; `param` names its path parameter, if any."""

    async def handler(request: Request) -> Response:
        value = request.path_params[param] if param else ""
        return HTMLResponse(pages.render(name, request.query_params, value), headers=_HEADERS)

    handler.__name__ = f"{name}_page"
    return handler
