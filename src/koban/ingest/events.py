"""Events (`model.Event`) as JSON lines: the WAL payload of codec "koban-events/jsonl".

StatsD has no request to keep: the DogStatsD events of a flush window are encoded here
by the listener, written to the WAL and, like every payload, decoded again on replay.
One JSON object per line, with every field of `model.Event`:

    {"timestamp_ns": 1767225600000000000, "title": "Deploy", "text": "v1.2 is out",
     "alert_type": "info", "priority": "normal", "host": "web-1", "aggregation_key": "",
     "source_type": "", "service_name": "checkout", "tags": {"team": "pay"}}

Pure: `encode(events) -> bytes`, `decode(payload, received_ns) -> Batch`, raising
DecodeError for anything that is not exactly that shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from koban.errors import DecodeError
from koban.model import Batch, Event

CODEC = "koban-events/jsonl"
MAX_TIMESTAMP_NS = 2**63 - 1
_STRING_FIELDS = tuple(f for f in Event._fields if f not in ("timestamp_ns", "tags"))


def encode(events: Iterable[Event]) -> bytes:
    """`events` as JSON lines, each line one event in the shape `decode` reads."""
    return b"".join(json.dumps(e._asdict(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
                    for e in events)


def decode(payload: bytes, received_ns: int) -> Batch:
    """A Batch whose `events` are the lines of `payload`, in order (`received_ns` is not
    needed: each event carries its own time). Raises DecodeError naming the line and
    the field that is wrong."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError(f"events payload is not UTF-8 (byte {e.start})") from None
    events = []
    # split on "\n" only: splitlines() would also cut at U+0085 or U+2028 inside a string
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            events.append(_event(line, n))
    return Batch(events=events)


def _event(line: str, n: int) -> Event:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise DecodeError(f"events line {n} is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"events line {n} is not a JSON object")
    ts = obj.get("timestamp_ns")
    if type(ts) is not int or not 0 <= ts <= MAX_TIMESTAMP_NS:
        raise DecodeError(f"events line {n}: timestamp_ns must be an integer of nanoseconds, got {ts!r}")
    strings = {}
    for name in _STRING_FIELDS:
        value = obj.get(name, "")
        if not isinstance(value, str):
            raise DecodeError(f"events line {n}: {name} must be a string")
        strings[name] = value
    tags = obj.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise DecodeError(f"events line {n}: tags must be an object of strings")
    if not _encodable([*strings.values(), *tags, *tags.values()]):
        raise DecodeError(f"events line {n}: a string holds a lone surrogate (not UTF-8)")
    return Event(timestamp_ns=ts, tags=tags, **strings)


def _encodable(strings: list[str]) -> bool:
    # JSON's \ud800 escapes decode to strings no store column can hold
    try:
        "".join(strings).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
