"""GET /api/logs/tail: new log lines matching a search, as server-sent events.

The store has no change feed, so each stream polls it: every `poll_s` it reads the
newest matching records of the last `lag_s` seconds (records may arrive a little after
their timestamp) and sends those it has not sent yet. The first poll only records
what is already there: a tail shows lines that arrive after it opened.

Events: `lines` with data {"rows": [log row, newest last]} (the shape of /api/logs
rows); `error` with data {"error": message} just before the server ends the stream.
A `: ping` comment every few seconds lets a dead connection be noticed. At most
`tail_max_connections` tails are open at once (429 beyond), and each ends after `max_stream_s`
(EventSource clients reconnect by themselves).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from koban.api import params
from koban.errors import KobanError, Overloaded
from koban.query import ast, reads

log = logging.getLogger("koban.api.tail")

_NS = 1_000_000_000


def _key(row: dict) -> tuple:
    return (row["timestamp_ns"], row["service"], row["trace_id"], row["span_id"], row["body"],
            tuple(sorted(row["attributes"].items())))


def _event(name: str, payload: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class LiveTail:
    """The tail endpoint with its own bound on open streams (one per app)."""

    def __init__(self, *, poll_s: float = 0.5, lag_s: float = 10.0,
                 batch: int = 500, max_stream_s: float = 600.0, ping_s: float = 5.0) -> None:
        self.poll_s = poll_s
        self.lag_ns = int(lag_s * _NS)
        self.batch = batch
        self.max_stream_s = max_stream_s
        self.ping_s = ping_s
        self.open_streams = 0

    async def endpoint(self, request: Request) -> Response:
        q = params.search(request)  # a syntax error is a 400 before any stream opens
        limit = self._limit(request)
        if self.open_streams >= limit:
            raise Overloaded(f"too many live tails open (at most {limit}, tail_max_connections)", retry_after=5)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(self._events(request, q), media_type="text/event-stream", headers=headers)

    def _limit(self, request: Request) -> int:
        """The bound on open streams: the server's `tail_max_connections`."""
        return request.app.state.runtime.settings.tail_max_connections

    async def _events(self, request: Request, q: ast.Node) -> AsyncIterator[bytes]:
        limit = self._limit(request)
        if self.open_streams >= limit:  # the hard bound, checked without awaiting
            yield _event("error", {"error": f"too many live tails open (at most {limit}, tail_max_connections)"})
            return
        self.open_streams += 1
        try:
            yield b"retry: 1000\n\n"
            async for chunk in self._poll(request, q):
                yield chunk
        finally:
            self.open_streams -= 1

    async def _poll(self, request: Request, q: ast.Node) -> AsyncIterator[bytes]:
        rt = request.app.state.runtime
        seen: dict[tuple, int] = {}
        first = True
        opened = last_sent = time.monotonic()
        while time.monotonic() - opened < self.max_stream_s:
            now = rt.clock.now_ns()
            low = now - self.lag_ns
            stmt = reads.logs_page(rt.dialect, q, low, now + 60 * _NS, self.batch, None)
            try:
                result = await rt.run_query("logs_tail", stmt, max_rows=self.batch + 1)
            except KobanError as exc:
                yield _event("error", {"error": exc.message})
                return
            except Exception:
                log.exception("live tail query failed")
                yield _event("error", {"error": "internal error; see the server log"})
                return
            rows = reads.logs_page_result(result, self.batch)["rows"]
            fresh = []
            for row in reversed(rows):  # oldest first, as a terminal tail prints
                key = _key(row)
                if key not in seen:
                    seen[key] = row["timestamp_ns"]
                    fresh.append(row)
            for key in [k for k, ts in seen.items() if ts < low]:
                del seen[key]
            if fresh and not first:
                yield _event("lines", {"rows": fresh})
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= self.ping_s:
                yield b": ping\n\n"
                last_sent = time.monotonic()
            first = False
            if await request.is_disconnected():
                return
            await asyncio.sleep(self.poll_s)
