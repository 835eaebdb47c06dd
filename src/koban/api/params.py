"""Parsing query-string parameters into typed values, with 400s that say what was wrong."""

from __future__ import annotations

import orjson
from starlette.requests import Request

from koban.errors import BadRequest
from koban.query import ast
from koban.query.parse import parse
from koban.query.timeparse import parse_duration, resolve_range


def search(request: Request) -> ast.Node:
    """The `q` parameter as an AST; QuerySyntaxError (400, with position) when it does not parse."""
    return parse(request.query_params.get("q", ""))


def time_range(request: Request, now_ns: int) -> tuple[int, int]:
    """`from`/`to` resolved to ns; the last 15 minutes by default."""
    return resolve_range(request.query_params.get("from"), request.query_params.get("to"), now_ns)


def integer(request: Request, name: str, default: int, *, low: int = 1, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}", parameter=name) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}", parameter=name)
    return value


def duration(request: Request, name: str) -> int | None:
    """A duration parameter (`interval=1m`) in ns, or None when absent."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    value = parse_duration(raw)
    if value <= 0:
        raise BadRequest(f"{name} must be positive, got {raw!r}", parameter=name)
    return value


def text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    return raw if raw else None


async def json_object(request: Request, *, max_bytes: int) -> dict:
    """The request body as a JSON object (an empty body is {}). Raises BadRequest when it
    is larger than `max_bytes`, not JSON, or not an object."""
    body = await request.body()
    if len(body) > max_bytes:
        raise BadRequest(f"the body may be at most {max_bytes} bytes")
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data
