"""Pure wire-protocol decoders: bytes in, `Batch` out, `DecodeError` for bad input.

`CODECS` and `decode` (the registry of every decoder by codec name, in
`ingest/codecs.py`) are loaded on first use, not with the package: a process that only
needs one light module (the second StatsD reader needs `statsd` and `sketch`) then does
not import protobuf, pyarrow and every OTLP decoder (about 90 MB of memory).
"""

from __future__ import annotations

from typing import Any

_REGISTRY = ("CODECS", "Decoder", "decode")


def __getattr__(name: str) -> Any:
    if name in _REGISTRY:
        from koban.ingest import codecs

        return getattr(codecs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
