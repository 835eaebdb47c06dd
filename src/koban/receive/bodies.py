"""Reading request bodies within limits: size caps before and after decompression."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from koban.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType


async def read_limited(stream: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it is known to exceed `limit` bytes."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadRequest(f"Content-Length is not a number: {content_length!r}") from None
        if declared > limit:
            raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """`body` decoded per Content-Encoding (identity, gzip, deflate), at most `limit` bytes.

    Raises PayloadTooLarge when the decompressed body would exceed `limit` (a small gzip
    bomb cannot make koban allocate more), BadRequest when the data is not valid for its
    encoding, UnsupportedMediaType for an encoding koban does not take.
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif enc == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or identity")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
        out += inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"body is not valid {enc} data: {exc}") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    if not inflater.eof:
        raise BadRequest(f"body is truncated {enc} data")
    return out
