"""Where a request carries its key or token: one function for every protocol."""

from __future__ import annotations

from collections.abc import Callable

DATADOG_KEY_HEADER = "dd-api-key"


def presented_secret(header: Callable[[str], str | None]) -> str | None:
    """The key or token a request presents, or None.

    `header(name)` returns the value of a (lower-case) header or gRPC metadata key. Read
    in order: `Authorization: Bearer <secret>` (what OTLP exporters send through their
    `headers` option, and API clients), then Datadog's `DD-API-KEY: <secret>`.
    """
    auth = header("authorization")
    if auth:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    dd_key = header(DATADOG_KEY_HEADER)
    if dd_key and dd_key.strip():
        return dd_key.strip()
    return None
