"""OTLP/protobuf log records -> `LogColumns`, one column at a time.

This is the hot path of log ingest. Building a dict and a LogRecord per record cost
about 20 µs per record with five attributes; here each column is read from every record
by one `map` with an `attrgetter`, a loop that runs in C, and the results are the flat
lists Arrow takes as they are (see `store/columns.py`). The attributes, the bulk of the
work, are read from the request bytes a second time as two flat columns
(`otlp_log_attributes`), with no Python object per attribute. Python code runs per
record, or per attribute, only for what is rare or unavoidable:

- non-string attribute values and bodies, converted one by one by the rules of
  `otlp_values` (ints and doubles inline, the rest through `proto_value_str`);
- records with a kvlist attribute (flattened into dotted keys by `proto_attributes`)
  or with a key that repeats (the later value wins, as in a dict);
- records to reject, found by one cheap check over the whole request.

The result is the same, record for record, as building LogRecords one by one would
give; tests/ingest/test_otlp_differential.py checks it against the JSON decoder.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate, chain, compress, count
from operator import attrgetter, not_
from typing import Any

from koban.ingest import otlp_values as v
from koban.ingest.otlp_log_attributes import flat_attributes
from koban.ingest.otlp_values import MAX_TIME_NS, Rejections, proto_attributes
from koban.model import LogColumns, Resource, Scope

_TIME = attrgetter("time_unix_nano")
_OBSERVED = attrgetter("observed_time_unix_nano")
_TRACE_ID = attrgetter("trace_id")
_SPAN_ID = attrgetter("span_id")
_FLAGS = attrgetter("flags")
_SEVERITY_TEXT = attrgetter("severity_text")
_SEVERITY_NUMBER = attrgetter("severity_number")
_BODY_STRING = attrgetter("body.string_value")
_ATTRIBUTES = attrgetter("attributes")
_KEY = attrgetter("key")
_VALUE = attrgetter("value")
_STRING_VALUE = attrgetter("string_value")
_INT_VALUE = attrgetter("int_value")
_DOUBLE_VALUE = attrgetter("double_value")

_TRACE_ID_LENGTHS = frozenset((0, 16))
_SPAN_ID_LENGTHS = frozenset((0, 8))


def log_columns(
    records: list[Any],
    resources: list[Resource],
    scopes: list[Scope],
    received_ns: int,
    rejections: Rejections,
    payload: bytes | None = None,
) -> LogColumns:
    """The protobuf LogRecord messages `records`, whose resource and scope are
    `resources[i]` and `scopes[i]`, as LogColumns, by the rules of
    `otlp_proto.decode_logs`. Records to reject are counted in `rejections` and left
    out. Raises TooDeep for attribute or body values nested deeper than MAX_DEPTH.

    `payload`, the request the records were parsed from (all of its records, in
    order), lets their attributes be read as flat columns (`otlp_log_attributes`).
    """
    tids = list(map(_TRACE_ID, records))
    sids = list(map(_SPAN_ID, records))
    times = list(map(_TIME, records))
    if (
        not _TRACE_ID_LENGTHS.issuperset(map(len, tids))
        or not _SPAN_ID_LENGTHS.issuperset(map(len, sids))
        or max(times, default=0) > MAX_TIME_NS
    ):
        keep = _keep(tids, sids, times, rejections)
        payload = None  # its attributes include the rejected records'
        records, tids, sids, times, resources, scopes = (
            [column[i] for i in keep] for column in (records, tids, sids, times, resources, scopes)
        )

    observed = list(map(_OBSERVED, records))
    if 0 in observed or max(observed, default=0) > MAX_TIME_NS:
        observed = [o if 0 < o <= MAX_TIME_NS else received_ns for o in observed]
    if 0 in times:
        times = [t or o for t, o in zip(times, observed)]
    flags = list(map(_FLAGS, records))
    if max(flags, default=0) > 0xFF:
        flags = [f & 0xFF for f in flags]  # the low byte is the W3C trace flags
    severities = list(map(_SEVERITY_NUMBER, records))
    if severities and (min(severities) < 0 or max(severities) > 24):
        severities = list(map(v.severity, severities))
    bodies = list(map(_BODY_STRING, records))
    if "" in bodies:
        _fill_bodies(bodies, records)
    keys, values, offsets = _attributes(records, payload)
    return LogColumns(
        times,
        observed,
        list(map(bytes.hex, tids)),
        list(map(bytes.hex, sids)),
        flags,
        list(map(_SEVERITY_TEXT, records)),
        severities,
        bodies,
        keys,
        values,
        offsets,
        resources,
        scopes,
    )


def _keep(tids: list[bytes], sids: list[bytes], times: list[int], rejections: Rejections) -> list[int]:
    """Indices of the records to keep; the others are counted in `rejections` for
    their first fault."""
    keep = []
    for i, (tid, sid, time) in enumerate(zip(tids, sids, times)):
        if tid and len(tid) != 16:
            rejections.add("log record", v.LOG_TRACE_ID)
        elif sid and len(sid) != 8:
            rejections.add("log record", v.LOG_SPAN_ID)
        elif time > MAX_TIME_NS:
            rejections.add("log record", v.TIME_RANGE)
        else:
            keep.append(i)
    return keep


def _fill_bodies(bodies: list[str], records: list[Any]) -> None:
    # An unset body reads as an empty AnyValue, which proto_value_str turns into "".
    for i in compress(count(), map(not_, bodies)):
        body = records[i].body
        bodies[i] = v.proto_value_str(body, body.WhichOneof("value"))


def _attributes(records: list[Any], payload: bytes | None) -> tuple[list[str], list[str], list[int]]:
    """(keys, values, offsets) of the records' attributes, flattened as
    `proto_attributes` does; read from `payload` as flat columns when it is given and
    they allow it."""
    containers = list(map(_ATTRIBUTES, records))
    offsets = list(accumulate(map(len, containers), initial=0))
    flat = flat_attributes(payload, offsets[-1]) if payload is not None else None
    if flat is not None:
        keys, values = flat
        if _keys_repeat(keys, offsets):
            return _rebuild(records, keys, values, offsets, [])
        return keys, values, offsets
    kvs = list(chain.from_iterable(containers))
    keys = list(map(_KEY, kvs))
    anys = list(map(_VALUE, kvs))
    # Most values are non-empty strings: one read settles those. Anything else reads ""
    # and is looked at properly.
    values = list(map(_STRING_VALUE, anys))
    kvlists = _fill_values(values, anys) if "" in values else []
    if kvlists or _keys_repeat(keys, offsets):
        return _rebuild(records, keys, values, offsets, kvlists)
    return keys, values, offsets


def _fill_values(values: list[str], anys: list[Any]) -> list[int]:
    """Replaces the "" of each non-string AnyValue in `values` by its string form,
    except for kvlists: returns their positions instead."""
    # A non-zero int or double is known by reading it, which is much cheaper than
    # WhichOneof; only zeros and the other kinds need to ask which field is set.
    positions = list(compress(count(), map(not_, values)))
    unknown = []
    for i, n in zip(positions, map(_INT_VALUE, map(anys.__getitem__, positions))):
        if n:
            values[i] = str(n)
        else:
            unknown.append(i)
    positions = unknown
    unknown = []
    for i, d in zip(positions, map(_DOUBLE_VALUE, map(anys.__getitem__, positions))):
        if d:  # also true for NaN
            values[i] = repr(d)
        else:
            unknown.append(i)
    kvlists = []
    for i in unknown:
        value = anys[i]
        which = value.WhichOneof("value")
        if which == "kvlist_value":
            kvlists.append(i)
        elif which is not None:
            values[i] = v.proto_value_str(value, which)
    return kvlists


def _keys_repeat(keys: list[str], offsets: list[int]) -> bool:
    """Whether some record has a key twice. Records mostly share their list of keys, so
    this checks each distinct list once (the lists are made and hashed in C)."""
    width = offsets[1] if len(offsets) > 1 else 0
    if width and offsets == list(range(0, len(keys) + 1, width)) and keys[width:] == keys[:-width]:
        # every record has the same keys in the same order (one list comparison in C,
        # a third of the cost of making and hashing a tuple per record)
        return len(set(keys[:width])) != width
    signatures = set(map(tuple, map(keys.__getitem__, map(slice, offsets, offsets[1:]))))
    return any(len(set(signature)) != len(signature) for signature in signatures)


def _rebuild(
    records: list[Any], keys: list[str], values: list[str], offsets: list[int], kvlists: list[int]
) -> tuple[list[str], list[str], list[int]]:
    """(keys, values, offsets) again, with the records that hold a kvlist flattened by
    `proto_attributes` and each repeated key of a record kept once, at its first
    position, with its last value (what assigning them to a dict in order gives)."""
    flatten = {bisect_right(offsets, i) - 1 for i in kvlists}
    out_keys: list[str] = []
    out_values: list[str] = []
    out_offsets = [0]
    for n, (a, b) in enumerate(zip(offsets, offsets[1:])):
        if n in flatten:
            attrs = proto_attributes(records[n].attributes)
            out_keys.extend(attrs)
            out_values.extend(attrs.values())
        else:
            ks = keys[a:b]
            if len(set(ks)) == len(ks):
                out_keys.extend(ks)
                out_values.extend(values[a:b])
            else:
                attrs = dict(zip(ks, values[a:b]))
                out_keys.extend(attrs)
                out_values.extend(attrs.values())
        out_offsets.append(len(out_keys))
    return out_keys, out_values, out_offsets
