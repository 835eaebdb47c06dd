"""The KobanError tree.

Each class carries the HTTP status a client should see. Library errors are translated
into these at layer boundaries; `api/errors.py` is the only place that turns them into
responses.
"""

from __future__ import annotations


class KobanError(Exception):
    """Base of every error koban raises on purpose. `status` is the HTTP status."""

    status = 500

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, object]:
        return {"error": self.message, **self.details}


class BadRequest(KobanError):
    """The request is malformed: a bad parameter, an unknown format."""

    status = 400


class DecodeError(BadRequest):
    """A payload could not be decoded by its wire-protocol decoder (malformed bytes/JSON)."""


class QuerySyntaxError(BadRequest):
    """A search query does not parse. `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int, expected: str = "") -> None:
        super().__init__(message, position=position, expected=expected)
        self.position = position
        self.expected = expected


class TimeFormatError(BadRequest):
    """A time or duration expression (`from`, `to`, `interval`, `--since`) is not understood."""


class NotFound(KobanError):
    """The path or the object (a trace id, a service) does not exist."""

    status = 404


class PayloadTooLarge(KobanError):
    """The body (after decompression) is over the configured limit."""

    status = 413


class UnsupportedMediaType(KobanError):
    """The Content-Type or Content-Encoding is not one koban takes on this route."""

    status = 415


class Overloaded(KobanError):
    """The ingest queue is full; the client should retry after `retry_after` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class Unavailable(KobanError):
    """koban cannot accept data right now (WAL write failed, disk full, shutting down)."""

    status = 503

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class QueryTimeout(KobanError):
    """A query ran past its time limit and was cancelled."""

    status = 504  # the server gave up; a narrower query may succeed


class ConfigError(KobanError):
    """A setting has a bad value; the message names the key and the value."""

    status = 500


class StoreError(KobanError):
    """The store failed. `permanent` is True when the data itself can never be stored
    (a value out of its column's range): retrying the same batch cannot succeed, so the
    writer sets it aside instead. False (the default) for failures that may pass: I/O,
    a full disk, a lock. Either way the client sees a 500: by the time a batch reaches
    the store its request was already acknowledged."""

    status = 500

    def __init__(self, message: str, *, permanent: bool = False, **details: object) -> None:
        super().__init__(message, **details)
        self.permanent = permanent  # not in details: it is for the writer, not the client
