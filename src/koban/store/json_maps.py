"""String maps as JSON object text, built column-wise with Arrow.

The DuckDB store keeps log record and span attributes as JSON text rather than
MAP(VARCHAR, VARCHAR) (docs/architecture.md, "Record attributes on DuckDB"): appending
a MAP column costs DuckDB about 6 us more per log record than a text column, the
largest single cost of log ingest. This module turns an Arrow map column into that
text without a Python object per record: keys and values are escaped as whole arrays,
and each record's object is joined from them by Arrow kernels.

`{"k1":"v1","k2":"v2"}`: keys in their order, values always strings; an empty or
null map is `{}`, a null value (which koban's decoders never produce) is "".
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# What JSON needs escaped in a string: the quote, the backslash and control characters.
_NEEDS_ESCAPE_RE2 = r'["\\\x00-\x1f]'


def maps_to_json(column: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """`column` (map<string, string>) as one JSON object text per row."""
    if not isinstance(column, pa.ChunkedArray):
        return pa.chunked_array([_chunk_to_json(column)], pa.string())
    # A batch has a chunk per request (~1,000 records), and the dozen kernel calls per
    # chunk cost a third of the whole at that size: chunks are combined first, in
    # groups small enough for 32-bit string offsets.
    return pa.chunked_array([_chunk_to_json(group) for group in _combined(column.chunks)], pa.string())


_GROUP_BYTES = 256 << 20


def _combined(chunks: list[pa.Array]) -> list[pa.Array]:
    groups: list[list[pa.Array]] = []
    size = _GROUP_BYTES
    for chunk in chunks:
        if size + chunk.nbytes > _GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(chunk)
        size += chunk.nbytes
    return [group[0] if len(group) == 1 else pa.concat_arrays(group) for group in groups]


def _chunk_to_json(maps: pa.MapArray) -> pa.Array:
    offsets = np.asarray(maps.offsets, dtype=np.int64)
    base, end = int(offsets[0]), int(offsets[-1])
    offsets = offsets - base
    # .keys/.items are the whole children, whatever slice of them this array views
    keys = maps.keys.slice(base, end - base)
    values = pc.fill_null(maps.items.slice(base, end - base), "")
    count = end - base
    if count == 0:
        return pa.repeat(pa.scalar("{}", pa.string()), len(maps))  # no attributes at all: common
    prefixes = _key_prefixes(keys, offsets)
    # pieces alternate: prefix 0, value 0, prefix 1, value 1, ... so that each record's
    # pieces are one slice, joined by Arrow per record
    order = np.empty(2 * count, dtype=np.int64)
    order[0::2] = np.arange(count)
    order[1::2] = np.arange(count, 2 * count)
    pieces = pa.concat_arrays([prefixes, _escaped(values)]).take(pa.array(order))
    per_record = pa.ListArray.from_arrays(pa.array(offsets * 2, pa.int32()), pieces)
    joined = pc.binary_join_element_wise(pc.binary_join(per_record, ""), '"}', "")
    empty = pc.equal(pc.list_value_length(per_record), 0)
    if maps.null_count:
        empty = pc.or_(empty, maps.is_null())
    return pc.if_else(empty, "{}", joined)


def _key_prefixes(keys: pa.Array, offsets: np.ndarray) -> pa.Array:
    """What comes before each value: `{"key":"` for a record's first key, `","key":"`
    (closing the value before) for the others. Keys repeat a lot, so each distinct key
    is escaped once."""
    encoded = keys.dictionary_encode()
    names = [_escape_one(k) for k in encoded.dictionary.to_pylist()]
    table = pa.array([p for k in names for p in ('","' + k + '":"', '{"' + k + '":"')], pa.string())
    first = np.zeros(len(keys), dtype=np.int64)
    starts = offsets[:-1][offsets[1:] > offsets[:-1]]
    first[starts] = 1
    index = np.asarray(encoded.indices, dtype=np.int64) * 2 + first
    return table.take(pa.array(index))


def _escaped(strings: pa.Array) -> pa.Array:
    """`strings` with what JSON needs escaped escaped (without the quotes). Checks the
    whole data buffer first: most batches have nothing to escape."""
    data = strings.buffers()[2]
    if data is None or not _any_needs_escape(np.frombuffer(data, dtype=np.uint8)):
        return strings
    needs = np.asarray(pc.match_substring_regex(strings, _NEEDS_ESCAPE_RE2).fill_null(False), dtype=bool)
    if not needs.any():  # the hit was in bytes outside this slice
        return strings
    values = strings.to_pylist()
    for i in np.flatnonzero(needs):
        values[i] = _escape_one(values[i])
    return pa.array(values, pa.string())


def _any_needs_escape(data: np.ndarray) -> bool:
    # numpy compares the whole buffer at memory speed (a regex scan was 10x slower)
    return bool((data < 0x20).any() or (data == ord('"')).any() or (data == ord("\\")).any())


def _escape_one(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]
