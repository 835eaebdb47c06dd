"""The one place that turns an exception into a response.

Every route's errors come through `error_response`: KobanErrors keep their status and
message; Starlette's own HTTP errors (unknown path, wrong method) become the same JSON
shape; anything else is a bug, logged with its traceback and answered with a 500 that
leaks nothing. OTLP routes answer in the request's encoding, as google.rpc.Status.
"""

from __future__ import annotations

import logging

import orjson
from google.rpc import code_pb2, status_pb2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from koban.errors import KobanError

log = logging.getLogger("koban.api")

_RPC_CODES = {400: code_pb2.INVALID_ARGUMENT, 413: code_pb2.INVALID_ARGUMENT, 415: code_pb2.INVALID_ARGUMENT,
              429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE, 404: code_pb2.NOT_FOUND,
              401: code_pb2.UNAUTHENTICATED, 403: code_pb2.PERMISSION_DENIED}


def _classify(exc: Exception) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body, extra headers) for any exception."""
    if isinstance(exc, KobanError):
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        return exc.status, exc.to_dict(), headers
    if isinstance(exc, HTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            detail = "no such path"
        return exc.status_code, {"error": detail}, dict(exc.headers or {})
    log.exception("unhandled error", exc_info=exc)
    return 500, {"error": "internal error; see the server log"}, {}


async def error_response(request: Request, exc: Exception) -> Response:
    status, body, headers = _classify(exc)
    if status >= 500 and isinstance(exc, KobanError):
        log.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc.message)
    if request.url.path.startswith("/v1/"):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/x-protobuf":
            message = status_pb2.Status(code=_RPC_CODES.get(status, code_pb2.INTERNAL), message=body["error"])
            return Response(message.SerializeToString(), status, headers, media_type="application/x-protobuf")
        body = {"code": _RPC_CODES.get(status, code_pb2.INTERNAL), "message": body["error"], **body}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
