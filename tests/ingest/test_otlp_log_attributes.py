"""The flat view of log attributes (ingest/otlp_log_attributes.py) reads exactly what the
standard OTLP classes read, or declines (None) so that the decoder reads the standard
way."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from koban.ingest import otlp_log_attributes, otlp_proto, otlp_proto_logs
from koban.ingest.otlp_log_attributes import flat_attributes

RECEIVED = 1_767_225_600_000_000_000


def _request(*records: list[tuple[str, Any]], otlp, scopes: int = 1) -> bytes:
    """One request whose records (attribute lists) are dealt round-robin over
    `scopes` ResourceLogs of one ScopeLogs each."""
    req = ExportLogsServiceRequest()
    containers = [req.resource_logs.add().scope_logs.add().log_records for _ in range(scopes)]
    for i, attributes in enumerate(records):
        record = containers[i % scopes].add()
        record.body.string_value = f"line {i}"
        otlp.set_attrs(record.attributes, attributes)
    return req.SerializeToString()


def _records(payload: bytes) -> list[Any]:
    req = ExportLogsServiceRequest.FromString(payload)
    return [r for rl in req.resource_logs for sl in rl.scope_logs for r in sl.log_records]


def _both_ways(payload: bytes) -> tuple[Any, Any]:
    """The attributes (keys, values, offsets) read through the flat view and the
    standard way."""
    records = _records(payload)
    return otlp_proto_logs._attributes(records, payload), otlp_proto_logs._attributes(records, None)


def _count(payload: bytes) -> int:
    return sum(len(r.attributes) for r in _records(payload))


def test_mixed_kinds_read_through_the_view_as_the_standard_classes_read_them(otlp):
    payload = _request(
        [("s", "text"), ("i", 42), ("neg", -7), ("d", 2.5), ("t", True), ("f", False)],
        [("zero", 0), ("dz", 0.0), ("nan", math.nan), ("inf", -math.inf), ("empty", ""), ("big", 2**63 - 1)],
        [],
        [("unicode", "héllo ✓"), ("long", "x" * 300)],
        otlp=otlp,
        scopes=2,
    )

    flat = flat_attributes(payload, _count(payload))
    viewed, standard = _both_ways(payload)

    assert flat is not None  # the view itself read these, not the fallback
    assert viewed == standard
    assert standard[1][:6] == ["text", "42", "-7", "2.5", "true", "false"]
    assert standard[1][6:12] == ["0", "0.0", "nan", "-inf", "", str(2**63 - 1)]


def test_all_string_values_are_read_in_order_across_resources(otlp):
    records = [[("k", f"v{i}"), ("id", f"{i:04d}")] for i in range(50)]
    payload = _request(*records, otlp=otlp, scopes=7)

    keys, values = flat_attributes(payload, 100)

    order = [i for s in range(7) for i in range(s, 50, 7)]  # records grouped by scope, as on the wire
    assert values == [v for i in order for v in (f"v{i}", f"{i:04d}")]
    assert keys == ["k", "id"] * 50


def test_repeated_keys_keep_first_place_and_last_value_through_the_view(otlp):
    payload = _request([("a", "1"), ("b", 2), ("a", "3")], [("a", "x")], otlp=otlp)

    viewed, standard = _both_ways(payload)

    assert flat_attributes(payload, 4) is not None
    assert viewed == standard == (["a", "b", "a"], ["3", "2", "x"], [0, 2, 3])


def test_what_the_view_cannot_read_exactly_is_left_to_the_standard_classes(otlp):
    cases = {
        "kvlist": [("user", {"id": 7})],
        "array": [("arr", [1, "x"])],
        "bytes": [("b", b"\x00\x01")],
        "unset value": [("none", None)],
        "empty key": [("", "v")],
    }
    for what, attributes in cases.items():
        payload = _request([("ok", "1")], attributes, otlp=otlp)

        viewed, standard = _both_ways(payload)

        assert flat_attributes(payload, _count(payload)) is None, what
        assert viewed == standard, what


def _with_raw_value(raw_any_value: bytes) -> bytes:
    """A request of one record whose one attribute "k" has the AnyValue bytes given,
    written by hand: encodings the generated classes would never write."""
    key_value = b"\x0a\x01k" + b"\x12" + bytes([len(raw_any_value)]) + raw_any_value
    record = b"\x32" + bytes([len(key_value)]) + key_value
    scope_logs = b"\x12" + bytes([len(record)]) + record
    resource_logs = b"\x12" + bytes([len(scope_logs)]) + scope_logs
    return b"\x0a" + bytes([len(resource_logs)]) + resource_logs


def test_hand_written_any_values_the_view_declines_or_reads_like_the_standard_classes():
    cases = {
        "empty AnyValue": (b"", None),
        "string, then an int (the int wins)": (b"\x0a\x01x\x18\x05", None),
        "the same string field twice (the last wins)": (b"\x0a\x01x\x0a\x01y", None),
        "an int, then a string (the string wins)": (b"\x18\x05\x0a\x01x", None),
        "string_value_strindex": (b"\x40\x03", None),
        "a string, then string_value_strindex (the index wins)": (b"\x0a\x01x\x40\x03", None),
        "an unknown field first": (b"\x50\x01\x0a\x01x", None),
        "an unknown field after the string": (b"\x0a\x01x\x50\x01", (["k"], ["x"])),
    }
    for what, (raw, expected) in cases.items():
        payload = _with_raw_value(raw)
        ExportLogsServiceRequest.FromString(payload)  # valid for the standard classes

        viewed, standard = _both_ways(payload)

        assert flat_attributes(payload, 1) == expected, what
        assert viewed == standard, what


def test_a_rejected_record_does_not_shift_the_attributes_of_the_others(otlp):
    req = ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    for i in range(3):
        record = records.add()
        otlp.set_attrs(record.attributes, {"n": str(i)})
    records[1].trace_id = b"short"  # rejected: a trace id must be 16 bytes

    batch = otlp_proto.decode_logs(req.SerializeToString(), RECEIVED)

    assert batch.rejected == 1
    assert [r.attributes for r in batch.log_columns[0].records()] == [{"n": "0"}, {"n": "2"}]


_VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.binary(max_size=4),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.sampled_from(["a", "b"]), st.text(max_size=3), max_size=2),
)
_ATTRIBUTES = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d.e", ""]), _VALUES), max_size=6)


@settings(max_examples=300, deadline=None)
@given(records=st.lists(_ATTRIBUTES, max_size=8), scopes=st.integers(1, 3))
def test_any_request_reads_the_same_through_the_view_as_the_standard_way(otlp, records, scopes):
    payload = _request(*records, otlp=otlp, scopes=scopes)

    viewed, standard = _both_ways(payload)

    assert viewed == standard


_KINDS = st.sampled_from([otlp_log_attributes._STRING, otlp_log_attributes._INT,
                          otlp_log_attributes._DOUBLE, otlp_log_attributes._BOOL])


@st.composite
def _value_kinds(draw) -> bytes:
    """A sequence of value kinds: any sequence, or one layout repeated (what records
    of one shape give), maybe cut short inside its last repeat."""
    pattern = draw(st.lists(_KINDS, min_size=1, max_size=9))
    if draw(st.booleans()):
        return bytes(pattern)
    repeated = pattern * draw(st.integers(1, 12))
    return bytes(repeated[: len(repeated) - draw(st.integers(0, len(pattern) - 1))])


@given(_value_kinds())
@settings(max_examples=300, deadline=None)
def test_values_interleave_back_into_wire_order_whatever_the_layout(kinds):
    texts = {kind: [f"{kind}:{i}" for i in range(kinds.count(kind))] for kind in set(kinds)}
    taken = dict.fromkeys(texts, 0)
    expected = []
    for kind in kinds:  # value i is the next unused text of its kind
        expected.append(texts[kind][taken[kind]])
        taken[kind] += 1

    assert otlp_log_attributes._interleaved(kinds, texts) == expected


@st.composite
def _record_keys(draw) -> list[list[str]]:
    """Each record's attribute keys: records of one layout (maybe repeating a key), or
    of layouts of their own."""
    key = st.sampled_from(["a", "b", "c", "d"])
    if draw(st.booleans()):
        layout = draw(st.lists(key, min_size=1, max_size=5))
        return [list(layout) for _ in range(draw(st.integers(1, 20)))]
    return draw(st.lists(st.lists(key, max_size=5), max_size=20))


@given(_record_keys())
@settings(max_examples=300, deadline=None)
def test_a_repeated_key_is_found_in_whichever_record_holds_it(records):
    keys = [k for record in records for k in record]
    offsets = [0]
    for record in records:
        offsets.append(offsets[-1] + len(record))

    assert otlp_proto_logs._keys_repeat(keys, offsets) == any(len(set(r)) != len(r) for r in records)
