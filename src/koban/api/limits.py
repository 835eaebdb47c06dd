"""Limits the API enforces per caller, and the page that shows the series cap at work.

- `UserQuerySlots`: at most `query_concurrency_per_user` queries of one caller running
  or waiting for a query slot at once; one more is answered 429. The caller is the
  signed-in user (`request.state.principal`, set by the auth middleware) or, with auth
  off, the client address.
- `RequestContext`: a pure ASGI middleware that remembers the current request's scope
  in a context variable, so `Runtime.run_query` can tell whose query it runs without
  every handler passing the request down. The principal is read from the scope when the
  query starts, after the auth middleware ran, whatever the middleware order.
- `GET /api/limits/cardinality` (admin): the metrics with the most dropped points and
  series, from the store writer's SeriesLimiter (pipeline/limits.py).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from koban.api import params
from koban.errors import Overloaded

_scope: ContextVar[Scope | None] = ContextVar("koban_request_scope", default=None)


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        token = _scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _scope.reset(token)


def current_caller() -> str | None:
    """Who the request being handled is: "user:<name>" for a signed-in user or token,
    else "address:<client ip>"; None outside a request (internal queries)."""
    scope = _scope.get()
    if scope is None:
        return None
    principal = scope.get("state", {}).get("principal")
    # with auth off everyone is the same anonymous principal: tell callers apart by address
    if principal is not None and getattr(principal, "via", "none") != "none":
        return f"user:{principal.name}"
    client = scope.get("client")
    return f"address:{client[0]}" if client else None


class UserQuerySlots:
    """Counts each caller's queries in flight; `hold` refuses one over the limit."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, caller: str | None) -> Iterator[None]:
        """A slot of `caller` for the duration of the block. Raises Overloaded (429)
        when `caller` already has `per_user` queries in flight. None is not limited."""
        if caller is None:
            yield
            return
        with self._lock:
            running = self._running.get(caller, 0)
            if running >= self.per_user:
                raise Overloaded(
                    f"too many queries at once from {caller} (at most {self.per_user}, "
                    "query_concurrency_per_user); wait for one to finish",
                    retry_after=1,
                )
            self._running[caller] = running + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[caller] - 1
                if left:
                    self._running[caller] = left
                else:
                    del self._running[caller]


async def cardinality(request: Request) -> Response:
    """GET /api/limits/cardinality?limit=20: the metrics closest to (or over) their cap."""
    runtime = request.app.state.runtime
    limit = params.integer(request, "limit", 20, low=1, high=1000)
    limiter = runtime.series_limiter
    rows = [o._asdict() for o in limiter.top(limit)]
    body = {
        "max_series_per_metric": limiter.max_series,
        "tracked_series": limiter.tracked_series,
        "metrics": rows,
    }
    return Response(orjson.dumps(body), media_type="application/json")
