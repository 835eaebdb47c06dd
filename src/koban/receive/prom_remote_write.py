"""Prometheus remote write 1.0: POST /api/v1/write (snappy-compressed WriteRequest).

The body is snappy block format (not the framed format), as the protocol says. Its
header states the uncompressed size, so a body that would decompress past
`max_body_bytes` is refused (413) before anything is allocated. The decompressed
protobuf is what intake decodes and the WAL keeps, under the codec "prom-rw/metrics".

Responses are what Prometheus' remote-write queue acts on: 204 when the samples are
durable; 400 (bad snappy, bad protobuf) and 413/415, which it drops without retrying;
429 (queue full) and 503, which it retries with back-off. Refused samples (stale
markers, times out of range) do not fail the request: they are counted in `/metrics`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from koban.errors import BadRequest, KobanError, PayloadTooLarge, UnsupportedMediaType
from koban.receive.bodies import read_limited
from koban.receive.otlp_http import PROTOBUF, media_type

try:
    import cramjam
except ImportError:  # pragma: no cover - cramjam is a dependency; this names it if missing
    cramjam = None

CODEC = "prom-rw/metrics"
PROTOCOL = "prom-remote-write"
# Remote write 2.0 sends `application/x-protobuf;proto=io.prometheus.write.v2.Request`.
V1_PROTO = "prometheus.WriteRequest"


async def write(request: Request) -> Response:
    runtime = request.app.state.runtime
    _check_headers(request)
    limit = runtime.settings.max_body_bytes
    raw = await read_limited(request.stream(), request.headers.get("content-length"), limit)
    body = snappy_decompress(raw, limit)
    await runtime.intake.receive(CODEC, body, protocol=PROTOCOL, signal="metrics")
    return Response(status_code=204)


def _check_headers(request: Request) -> None:
    """UnsupportedMediaType unless the request is a remote write 1.0 body."""
    if media_type(request) != PROTOBUF:
        raise UnsupportedMediaType(
            f"Content-Type {media_type(request) or '(none)'!r} is not supported on {request.url.path}; "
            f"use {PROTOBUF} (Prometheus remote write 1.0)"
        )
    params = request.headers.get("content-type", "").split(";")[1:]
    proto = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in params)}.get("proto")
    if proto not in (None, V1_PROTO):
        raise UnsupportedMediaType(f"remote write message {proto!r} is not supported; koban takes {V1_PROTO}")
    encoding = request.headers.get("content-encoding", "snappy").strip().lower()
    if encoding != "snappy":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported here; remote write uses snappy")


def snappy_decompress(body: bytes, limit: int) -> bytes:
    """`body` (snappy block format) decompressed, at most `limit` bytes.

    Raises PayloadTooLarge when the size in the snappy header is over `limit` (checked
    before decompressing) and BadRequest when the data is not valid snappy.
    """
    if cramjam is None:  # pragma: no cover
        raise KobanError("Prometheus remote write needs the cramjam package: pip install cramjam")
    try:
        size = cramjam.snappy.decompress_raw_len(body)
        if size > limit:
            raise PayloadTooLarge(f"decompressed body of {size} bytes is over the limit of {limit} bytes")
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise BadRequest(f"body is not valid snappy (block format) data: {exc}") from None
