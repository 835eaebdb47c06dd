from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.model import (
    Batch,
    Exemplar,
    ExpHistogramPoint,
    GaugePoint,
    HistogramPoint,
    LogColumns,
    LogRecord,
    MetricStream,
    Resource,
    Scope,
    Span,
    SpanEvent,
    SpanLink,
    SummaryPoint,
    SumPoint,
)
from koban.store import columns, schema
from koban.store.columns import arrow_schema, arrow_type, batch_to_arrow

T0 = 1_700_000_000_123_456_789
WEB = Resource("web", {"service.name": "web", "host.name": "h1"}, "https://res")
DB = Resource("db", {"service.name": "db"})
SCOPE = Scope("lib", "1.2", {"s": "x"}, "https://scope", 3)
STREAM = MetricStream("http.requests", "requests served", "1", WEB, SCOPE)
EXEMPLAR = Exemplar(T0, 2.5, "ab" * 16, "cd" * 8, {"user": "u1"})


def log(i: int, resource: Resource = WEB) -> LogRecord:
    return LogRecord(T0 + i, T0 + i + 1, "ab" * 16, "cd" * 8, 1, "INFO", 9, f"line {i}", {"i": str(i)}, resource, SCOPE)


def span(i: int) -> Span:
    return Span(
        T0 + i, 250, "ab" * 16, f"{i:016x}", "", "", "GET /", "SPAN_KIND_SERVER", "STATUS_CODE_OK", "",
        {"http.route": "/"}, (SpanEvent(T0 + 5, "exception", {"exception.type": "E"}),),
        (SpanLink("ef" * 16, "12" * 8, "k=v", {"l": "1"}),), WEB, SCOPE,
    )  # fmt: skip


def every_table_batch() -> Batch:
    ex = (EXEMPLAR,)
    return Batch(
        logs=[log(0), log(1, DB)],
        spans=[span(0)],
        gauges=[GaugePoint(STREAM, {"a": "1"}, T0, T0 + 1, 1.5, 0, ex)],
        sums=[SumPoint(STREAM, {"a": "1"}, T0, T0 + 1, 3.0, 2, True, 0, ex)],
        histograms=[HistogramPoint(STREAM, {}, T0, T0 + 1, 3, 6.0, (1, 2), (5.0,), None, 4.0, 2, 0, ex)],
        exp_histograms=[
            ExpHistogramPoint(STREAM, {}, T0, T0 + 1, 3, 6.0, 2, 1, -1, (1, 1), 0, (), 0.5, None, 2, 0, ex)
        ],
        summaries=[SummaryPoint(STREAM, {}, T0, T0 + 1, 3, 6.0, (0.5, 0.99), (1.0, 2.0))],
    )


@pytest.mark.parametrize("dictionary_maps", [False, True])
def test_every_table_gets_exactly_its_schema_columns_in_order(dictionary_maps: bool) -> None:
    tables = batch_to_arrow(every_table_batch(), dictionary_maps=dictionary_maps)

    assert set(tables) == set(schema.TABLE_COLUMNS)
    for name, table in tables.items():
        assert table.column_names == [c for c, _ in schema.TABLE_COLUMNS[name]]


def test_without_dictionary_maps_the_types_are_the_arrow_twins_of_the_schema() -> None:
    tables = batch_to_arrow(every_table_batch())

    for name, table in tables.items():
        assert table.schema == arrow_schema(name), name


def test_dictionary_maps_keep_the_values_of_plain_maps() -> None:
    batch = Batch(logs=[log(0), log(1), log(2, DB)])

    plain = batch_to_arrow(batch)[schema.LOGS]
    encoded = batch_to_arrow(batch, dictionary_maps=True)[schema.LOGS]

    assert pa.types.is_dictionary(encoded.schema.field("ResourceAttributes").type)
    assert encoded.to_pylist() == plain.to_pylist()


def test_only_tables_with_rows_appear() -> None:
    assert list(batch_to_arrow(Batch(logs=[log(0)]))) == [schema.LOGS]
    assert batch_to_arrow(Batch()) == {}


def test_log_fields_land_in_their_columns() -> None:
    row = batch_to_arrow(Batch(logs=[log(7)]))[schema.LOGS].to_pylist()[0]

    assert row["Timestamp"] == pa.scalar(T0 + 7, pa.timestamp("ns")).as_py()
    assert row["ServiceName"] == "web"
    assert dict(row["ResourceAttributes"]) == {"service.name": "web", "host.name": "h1"}
    assert row["ResourceSchemaUrl"] == "https://res"
    assert (row["ScopeName"], row["ScopeVersion"], row["ScopeSchemaUrl"]) == ("lib", "1.2", "https://scope")
    assert dict(row["LogAttributes"]) == {"i": "7"}
    assert (row["SeverityText"], row["SeverityNumber"], row["Body"]) == ("INFO", 9, "line 7")


def test_span_events_and_links_become_parallel_lists() -> None:
    row = batch_to_arrow(Batch(spans=[span(0)]))[schema.TRACES].to_pylist()[0]

    assert row["Duration"] == 250
    assert row["Events.Name"] == ["exception"]
    assert [dict(m) for m in row["Events.Attributes"]] == [{"exception.type": "E"}]
    assert row["Links.TraceId"] == ["ef" * 16]
    assert row["Links.TraceState"] == ["k=v"]


def test_missing_histogram_min_and_max_become_nulls() -> None:
    table = batch_to_arrow(every_table_batch())[schema.EXP_HISTOGRAM]

    assert table["Min"].to_pylist() == [0.5]
    assert table["Max"].to_pylist() == [None]


def test_log_trace_flags_keep_only_the_w3c_byte() -> None:
    record = log(0)._replace(trace_flags=0x101)

    table = batch_to_arrow(Batch(logs=[record]))[schema.LOGS]

    assert table["TraceFlags"].to_pylist() == [1]


def test_a_value_that_does_not_fit_its_column_raises() -> None:
    with pytest.raises((pa.ArrowException, OverflowError)):
        batch_to_arrow(Batch(spans=[span(0)._replace(duration_ns=-1)]))


def test_nested_schema_types_become_arrow_lists() -> None:
    assert arrow_type("MAP(VARCHAR, VARCHAR)[]") == pa.list_(pa.map_(pa.string(), pa.string()))
    assert arrow_type("TIMESTAMP_NS[]") == pa.list_(pa.timestamp("ns"))


# --- logs decoded column-wise ---------------------------------------------------------


def _many_logs() -> list[LogRecord]:
    other_scope = Scope("other", "", {"t": "y"})
    return [
        log(i, WEB if i % 3 else DB)._replace(
            attributes={"i": str(i), "even": str(i % 2 == 0)} if i % 4 else {},
            scope=SCOPE if i % 5 else other_scope,
            trace_flags=0x101 if i == 7 else 1,
        )
        for i in range(20)
    ]


@pytest.mark.parametrize("dictionary_maps", [False, True])
def test_log_columns_give_the_table_of_the_same_records(dictionary_maps: bool) -> None:
    records = _many_logs()
    columns = (LogColumns.from_records(records[:12]), LogColumns.from_records(records[12:]))

    from_records = batch_to_arrow(Batch(logs=records), dictionary_maps=dictionary_maps)[schema.LOGS]
    from_columns = batch_to_arrow(Batch(log_columns=columns), dictionary_maps=dictionary_maps)[schema.LOGS]

    assert from_columns.equals(from_records)
    if not dictionary_maps:
        assert from_columns.schema == arrow_schema(schema.LOGS)


def test_records_and_log_columns_of_one_batch_make_one_table_records_first() -> None:
    records = _many_logs()
    batch = Batch(logs=records[:5], log_columns=(LogColumns.from_records(records[5:]),))

    table = batch_to_arrow(batch)[schema.LOGS]

    assert table.equals(batch_to_arrow(Batch(logs=records))[schema.LOGS])
    assert table["Body"].to_pylist() == [f"line {i}" for i in range(20)]


def test_log_columns_repeat_each_distinct_resource_and_scope_map_once() -> None:
    columns = LogColumns.from_records(_many_logs())

    table = batch_to_arrow(Batch(log_columns=(columns,)), dictionary_maps=True)[schema.LOGS]

    assert len(table["ResourceAttributes"].chunk(0).dictionary) == 2
    assert len(table["ScopeAttributes"].chunk(0).dictionary) == 2
    assert table["TraceFlags"].to_pylist()[7] == 1


def test_empty_log_columns_make_no_table() -> None:
    assert batch_to_arrow(Batch(log_columns=(LogColumns.from_records([]),))) == {}


@given(st.lists(st.integers(0, 5), max_size=60), st.booleans())
@settings(max_examples=300, deadline=None)
def test_distinct_owners_number_each_object_once_in_order_of_first_appearance(picks, equal_twins) -> None:
    # six resources; with equal_twins, two of them are equal objects that are not the same
    pool = [Resource(f"s{i}", {"n": str(i)}) for i in range(6)]
    if equal_twins:
        pool[5] = Resource("s4", {"n": "4"})
    owners = [pool[i] for i in picks]

    found = columns._distinct(owners)

    indices = range(len(owners)) if found.indices is None else found.indices.to_pylist()
    assert [found.distinct[i] for i in indices] == owners  # each record gets its owner back
    assert all(a is not b for n, a in enumerate(found.distinct) for b in found.distinct[n + 1:])
    first_seen = list({id(o): o for o in owners}.values())  # by identity, in order of first appearance
    if len(first_seen) == len(found.distinct):  # (equal twins may have been taken as one)
        assert [id(o) for o in found.distinct] == [id(o) for o in first_seen]
