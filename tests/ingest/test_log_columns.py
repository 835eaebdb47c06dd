"""Log records decoded column-wise (`LogColumns`): what they hold, how they turn back
into LogRecords, and how batches holding them merge and count."""

from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from koban.ingest import otlp_proto
from koban.model import EMPTY_SCOPE, Batch, LogColumns, LogRecord, Resource, Scope

RECEIVED = 1_767_225_600_000_000_000
WEB = Resource("web", {"service.name": "web"})
LIB = Scope("lib", "1.0")


def _record(i: int, attributes: dict[str, str], resource: Resource = WEB, scope: Scope = LIB) -> LogRecord:
    return LogRecord(i, i + 1, "", "", 0, "INFO", 9, f"line {i}", attributes, resource, scope)


def _columns(*records: LogRecord) -> LogColumns:
    return LogColumns.from_records(list(records))


def _request(*attribute_lists: list[tuple[str, object]], otlp) -> bytes:
    req = ExportLogsServiceRequest()
    records = req.resource_logs.add().scope_logs.add().log_records
    for attributes in attribute_lists:
        otlp.set_attrs(records.add().attributes, attributes)
    return req.SerializeToString()


def _decoded_attributes(payload: bytes) -> list[dict[str, str]]:
    (columns,) = otlp_proto.decode_logs(payload, RECEIVED).log_columns
    assert LogColumns.from_records(columns.records()) == columns  # no key twice in a record
    return [r.attributes for r in columns.records()]


def test_the_protobuf_decoder_gives_one_log_columns_per_request(otlp):
    batch = otlp_proto.decode_logs(otlp.golden_logs_request().SerializeToString(), RECEIVED)

    assert batch.logs == ()
    assert [c.count for c in batch.log_columns] == [4]
    assert batch.log_columns[0].attr_offsets[0] == 0
    assert len(batch.log_columns[0].attr_offsets) == 5


def test_a_repeated_attribute_key_keeps_its_first_place_and_its_last_value(otlp):
    payload = _request([("a", "1"), ("b", 2), ("a", "3")], [("a", "x")], otlp=otlp)

    attributes = _decoded_attributes(payload)

    assert [list(a.items()) for a in attributes] == [[("a", "3"), ("b", "2")], [("a", "x")]]


def test_a_kvlist_is_flattened_in_its_record_only(otlp):
    payload = _request(
        [("plain", "p"), ("n", 1.5)],
        [("user", {"id": 7, "name": "ann"}), ("user.id", "8"), ("empty", {})],
        [("k", True), ("k", b"\x00")],
        otlp=otlp,
    )

    attributes = _decoded_attributes(payload)

    assert attributes == [
        {"plain": "p", "n": "1.5"},
        {"user.id": "8", "user.name": "ann", "empty": "{}"},
        {"k": "AA=="},
    ]


def test_zero_numbers_and_empty_values_read_as_their_text(otlp):
    payload = _request([("i", 0), ("d", 0.0), ("f", False), ("s", ""), ("none", None), ("arr", [1, "x"])], otlp=otlp)

    assert _decoded_attributes(payload) == [
        {"i": "0", "d": "0.0", "f": "false", "s": "", "none": "", "arr": '[1,"x"]'}
    ]


def test_records_without_attributes_get_empty_slices(otlp):
    payload = _request([], [("a", "1")], [], otlp=otlp)

    (columns,) = otlp_proto.decode_logs(payload, RECEIVED).log_columns

    assert columns.attr_offsets == [0, 0, 1, 1]
    assert [r.attributes for r in columns.records()] == [{}, {"a": "1"}, {}]


def test_a_request_with_every_record_rejected_has_no_log_columns(otlp):
    req = ExportLogsServiceRequest()
    req.resource_logs.add().scope_logs.add().log_records.add().trace_id = b"\x01"

    batch = otlp_proto.decode_logs(req.SerializeToString(), RECEIVED)

    assert (batch.log_columns, batch.record_count, batch.rejected) == ((), 0, 1)


def test_records_round_trip_through_columns() -> None:
    records = [_record(0, {"a": "1", "b": "2"}), _record(1, {}), _record(2, {"c": "3"}, scope=EMPTY_SCOPE)]

    columns = _columns(*records)

    assert columns.count == 3
    assert columns.attr_offsets == [0, 2, 2, 3]
    assert columns.records() == records


def test_concat_keeps_each_records_attributes() -> None:
    first = _columns(_record(0, {"a": "1"}), _record(1, {"b": "2", "c": "3"}))
    second = _columns(_record(2, {}), _record(3, {"d": "4"}))

    joined = LogColumns.concat([first, second])

    assert joined.attr_offsets == [0, 1, 3, 3, 4]
    assert joined.records() == first.records() + second.records()


def test_merge_keeps_records_and_columns_and_counts_both() -> None:
    columns = _columns(_record(1, {"a": "1"}), _record(2, {}))
    batches = [Batch(logs=[_record(0, {})], rejected=1), Batch(log_columns=(columns,)), Batch(log_columns=(columns,))]

    merged = Batch.merge(batches)

    assert merged.record_count == 5 and merged.rejected == 1
    assert merged.log_columns == (columns, columns)
    assert [r.timestamp_ns for r in merged.with_log_records().logs] == [0, 1, 2, 1, 2]


def test_with_log_records_puts_records_first_then_columns_in_order() -> None:
    batch = Batch(logs=(_record(0, {}),), log_columns=(_columns(_record(1, {})), _columns(_record(2, {}))))

    flat = batch.with_log_records()

    assert [r.timestamp_ns for r in flat.logs] == [0, 1, 2]
    assert flat.log_columns == () and flat.record_count == batch.record_count == 3
