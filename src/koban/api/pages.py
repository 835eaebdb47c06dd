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


def _session_model(request: Request) -> dict[str, object]:
    """What the base template shows of a signed-in user: the name (with a sign-out
    link) and the CSRF token page scripts send with state-changing requests."""
    principal = getattr(request.state, "principal", None)
    signed_in = principal is not None and principal.via == "session"
    return {
        "user": principal.name if signed_in else "",
        "role": principal.role if principal is not None else "",
        "csrf_token": getattr(request.state, "csrf_token", "") or "",
    }


def page(name: str, param: str | None = None):
    """A handler rendering page `name`; `param` names its path parameter, if any."""

    async def handler(request: Request) -> Response:
        value = request.path_params[param] if param else ""
        html = pages.render(name, request.query_params, value, **_session_model(request))
        return HTMLResponse(html, headers=_HEADERS)

    handler.__name__ = f"{name}_page"
    return handler
