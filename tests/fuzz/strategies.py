"""Input generators for the fuzz harness: byte-level mutations of valid seeds, syntax
pieces for the text parsers, and structure-aware protobuf messages built from a
message's own descriptor (so every field, nesting and wire type gets exercised, not
only the bytes near a seed)."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from hypothesis import strategies as st

# Bytes that make decoders take unusual paths: varint continuation bytes, 64-bit
# boundaries, protobuf tags of every wire type, JSON structure and number edges.
INTERESTING = [
    b"\xff" * 10, b"\x80" * 9 + b"\x01", b"\x00", b"\x7f", b"\xff\xff\xff\xff\x0f",
    b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x00", b"\x1a\x80\x80\x80\x80\x10", b"\x09" + b"\xff" * 8,
    b"\x0d\xff\xff\xff\x7f", b"\x0b", b"\x0c", b"{", b"}", b"[", b"]", b'"', b"\\u0000", b"\\ud800",
    b"1e999", b"-0", b"NaN", b"18446744073709551616", b"9223372036854775808", b"null", b",",
    b"\xc3\x28", b"\xf0\x9f\x98", b"|", b":", b"#", b"@", b"\n", b"\r\n",
]

_edit = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "splice", "repeat", "interesting"]),
    st.integers(0, 2**20),
    st.integers(0, 2**20),
    st.binary(min_size=1, max_size=8),
)


def mutate(payload: bytes, edits: list[tuple[str, int, int, bytes]], donors: list[bytes]) -> bytes:
    """`payload` with `edits` applied in order; `splice` copies a chunk of a donor (another
    seed) in, so structures of one valid input land inside another."""
    out = bytearray(payload)
    for op, where, extra, data in edits:
        at = where % (len(out) + 1)
        if op == "flip" and at < len(out):
            out[at] ^= data[0] or 0xFF
        elif op == "insert":
            out[at:at] = data
        elif op == "delete":
            del out[at : at + 1 + extra % 16]
        elif op == "truncate":
            del out[at:]
        elif op == "splice" and donors:
            donor = donors[extra % len(donors)]
            start = data[0] * len(donor) // 256
            out[at:at] = donor[start : start + 1 + extra % 64]
        elif op == "repeat" and at < len(out):
            chunk = out[at : at + 1 + extra % 32]
            out[at:at] = chunk * (1 + data[0] % 4)
        elif op == "interesting":
            out[at : at + data[0] % 4] = INTERESTING[extra % len(INTERESTING)]
    return bytes(out)


def mutated(seeds: list[bytes], max_edits: int = 6) -> st.SearchStrategy[bytes]:
    """Valid seeds with 1..max_edits mutations each."""
    return st.builds(
        mutate, st.sampled_from(seeds), st.lists(_edit, min_size=1, max_size=max_edits), st.just(seeds)
    )


QUERY_PIECES = [
    " ", "a", "web", "*", "?", "-", ":", "@f.x:", "@http.status_code:", "service:", "status:",
    "level:", "@duration:", '"', "\\", "(", ")", "[", "]", "{", "}", " TO ", "AND", "OR",
    "NOT", ">", ">=", "<", "<=", "5", "1.5", "-3", "1e308", "1e999", "nan", "inf", "ms", "µs",
    "kb", "%", "_", "'", ";", "--", "/*", "\x00", "\u202e", "\U0001f600",
]
METRIC_QUERY_PIECES = [
    "avg", "sum", "p99", ":", "http.request.duration", "{", "}", "*", ",", "!", "service",
    "env:prod", "host:web-*", " by ", "{resource}", ".rollup(", "max", "60", ")", ".as_rate()",
    ".as_count()", "@http.route", " ", "999999999999", "-", "\x00",
]
TIME_PIECES = [
    "now", "-", "+", " ", "15", "m", "h", "d", "w", "ns", "us", "2026", "-01", "-02", "T",
    ":", "00", ".", "123456789", "Z", "+01:00", "1767225600", "e", "E", "µs", "|", "9" * 25,
]


def text_inputs(pieces: list[str]) -> st.SearchStrategy[bytes]:
    """Arbitrary text and runs of syntax pieces, as UTF-8 (pieces get deep into a grammar
    instead of failing at the first character)."""
    return st.one_of(
        st.text(max_size=60), st.lists(st.sampled_from(pieces), max_size=30).map("".join)
    ).map(lambda s: s.encode("utf-8", "surrogatepass"))


# --- structure-aware protobuf ------------------------------------------------------

_INT_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 2**32 - 1, 2**63 - 1, -(2**63), 2**64 - 1]
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_REALISTIC_NS = st.integers(1_500_000_000 * 10**9, 1_900_000_000 * 10**9)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t in _INT_RANGES:
        low, high = _INT_RANGES[t]
        edges = [v for v in _INT_EDGES if low <= v <= high]
        choices = [st.sampled_from(edges), st.integers(low, high)]
        if "time" in field.name or field.name.endswith("_ns"):
            choices.append(_REALISTIC_NS.filter(lambda v: low <= v <= high))
        return st.one_of(*choices)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if t == FieldDescriptor.TYPE_DOUBLE else 32)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=12), st.sampled_from(["service.name", "http.status_code", "a.b", ""]))
    if t == FieldDescriptor.TYPE_BYTES:
        # trace and span ids are 16 and 8 bytes when valid; other lengths must be refused
        return st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8), st.binary(max_size=20))
    if t == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), st.integers(-5, 50))
    raise TypeError(f"no strategy for protobuf field type {t}")


@st.composite
def _fill(draw: st.DrawFn, message: Any, depth: int) -> None:
    for field in message.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        repeated = field.is_repeated
        count = draw(st.integers(1, 2)) if repeated else 1
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth <= 0:
                continue
            for _ in range(count):
                child = getattr(message, field.name).add() if repeated else getattr(message, field.name)
                child.SetInParent()
                draw(_fill(child, depth - 1))
        elif repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), min_size=1, max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field)))


def protobuf_messages(message_class: type, max_depth: int = 6) -> st.SearchStrategy[bytes]:
    """Serialized instances of `message_class` with random fields set at every depth."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        message = message_class()
        draw(_fill(message, max_depth))
        return message.SerializeToString()

    return build()
