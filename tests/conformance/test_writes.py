"""Every backend stores each signal as written, exactly once per WAL position."""

from __future__ import annotations

import pytest

from conformance import records
from conformance.backends import run
from koban.errors import StoreError
from koban.model import Batch
from koban.query import reads
from koban.query.dialects import Statement, for_store
from koban.query.parse import parse
from koban.store import schema
from koban.store.base import Store

T0, S = records.T0, records.S


def _count(store: Store, table: str) -> int:
    return int(run(store, Statement(f"SELECT count(*) AS n FROM {table}", {})).rows[0][0])


def _counts(store: Store) -> dict[str, int]:
    return {table: _count(store, table) for table in schema.TABLE_COLUMNS}


def _assert_known_logs(store: Store) -> dict:
    """The known log records read back as written; returns the oldest row."""
    d = for_store(store.dialect)
    page = reads.logs_page_result(run(store, reads.logs_page(d, parse(""), records.START, records.END, 100, None)), 100)
    assert [r["body"] for r in page["rows"]] == [row[4] for row in reversed(records.LOG_ROWS)]
    first = page["rows"][-1]
    assert first["attributes"] == {"http.status_code": "500", "user.id": "7"}
    assert first["resource"] == records.WEB.attributes
    return first


def test_each_signal_reads_back_as_written(loaded):
    store = loaded
    d = for_store(store.dialect)
    first = _assert_known_logs(store)
    assert (first["trace_id"], first["severity"], first["scope"]) == (
        records.TRACE_A, "ERROR", {"name": "koban.tests", "version": "1.2.3"})  # fmt: skip
    spans = reads.spans_page_result(run(store, reads.spans_page(d, parse(""), records.START, records.END, 100, None)), 100)
    assert len(spans["rows"]) == len(records.spans())
    assert _counts(store) == {
        schema.LOGS: 9, schema.TRACES: 10, **{t: 1 for t in schema.METRIC_TABLES}}  # fmt: skip


_METRIC_READS = {
    schema.GAUGE: ('"Value"', 0.75),
    schema.SUM: ('"Value", "AggregationTemporality", "IsMonotonic"', (42.0, 2, True)),
    schema.HISTOGRAM: ('"Count", "Sum", "BucketCounts", "ExplicitBounds", "Min", "Max"',
                       (3, 60.0, [1, 2, 0], [10.0, 100.0], 5.0, 40.0)),
    schema.EXP_HISTOGRAM: ('"Scale", "ZeroCount", "PositiveOffset", "PositiveBucketCounts", "NegativeBucketCounts"',
                           (1, 1, -2, [1, 2], [])),
    schema.SUMMARY: ('"ValueAtQuantiles.Quantile", "ValueAtQuantiles.Value"', ([0.5, 0.99], [9.0, 20.0])),
}  # fmt: skip


def test_each_metric_table_reads_back_as_written(loaded):
    d = for_store(loaded.dialect)
    common = f'"ServiceName", "MetricName", "MetricUnit", "Attributes", {d.ts_to_ns(chr(34) + "TimeUnix" + chr(34))}'
    for table, (columns, expected) in _METRIC_READS.items():
        rows = run(loaded, Statement(f"SELECT {common}, {columns} FROM {table}", {})).rows
        assert len(rows) == 1, table
        row = rows[0]
        assert row[:5] == ("web", "http.server.duration", "ms", {"route": "/home"}, T0 + 30 * S), table
        got = row[5] if len(row) == 6 else tuple(row[5:])
        assert got == expected, table


def test_exemplars_keep_their_trace_and_time(loaded):
    store = loaded
    d = for_store(store.dialect)
    sql = (f'SELECT "Exemplars.Value", "Exemplars.TraceId", {d.ts_list_to_ns(chr(34) + "Exemplars.TimeUnix" + chr(34))},'
           f' "Exemplars.FilteredAttributes" FROM {schema.GAUGE}')  # fmt: skip
    assert run(store, Statement(sql, {})).rows == [([12.5], [records.TRACE_A], [T0 + 5 * S], [{"route": "/home"}])]


def test_writing_the_same_lsn_again_stores_nothing_more(store):
    store.write(records.everything(), lsn=7)
    store.write(records.everything(), lsn=7)
    store.write(records.everything(), lsn=3)  # an older lsn: already applied
    assert store.applied_lsn() == 7
    assert _count(store, schema.LOGS) == 9 and _count(store, schema.TRACES) == 10


def test_an_empty_batch_only_moves_the_applied_lsn(store):
    store.write(Batch(logs=records.logs()), lsn=1)
    store.write(Batch(), lsn=2)
    assert store.applied_lsn() == 2
    assert _count(store, schema.LOGS) == 9


def test_a_reopened_store_remembers_what_it_applied(backend):
    first = backend.open()
    assert first.applied_lsn() == 0
    first.write(Batch(spans=records.spans()), lsn=41)
    first.close()
    again = backend.open()
    assert again.applied_lsn() == 41
    again.write(Batch(spans=records.spans()), lsn=41)  # a WAL replay after restart
    assert _count(again, schema.TRACES) == 10


def test_a_record_that_cannot_fit_its_column_is_a_permanent_error(store):
    bad = records.span(T0, records.API, "negative", "SPAN_KIND_SERVER", -5)
    with pytest.raises(StoreError) as err:
        store.write(Batch(spans=[bad]), lsn=1)
    assert err.value.permanent
    assert store.applied_lsn() == 0
    assert _count(store, schema.TRACES) == 0


def test_query_returns_at_most_max_rows(loaded):
    sql = f'SELECT "Body" FROM {schema.LOGS} ORDER BY "Timestamp"'
    result = loaded.query(sql, {}, timeout_s=10, max_rows=3)
    assert result.columns == ["Body"]
    assert [r[0] for r in result.rows] == [row[4] for row in records.LOG_ROWS[:3]]


def test_query_refuses_statements_that_change_data(loaded):
    with pytest.raises(StoreError):
        loaded.query(f"DELETE FROM {schema.LOGS} WHERE 1 = 0", {}, timeout_s=10, max_rows=1)
    assert _count(loaded, schema.LOGS) == 9


def test_logs_prepared_by_a_decode_worker_store_the_same_rows(store):
    """Decode workers hand the writer Arrow tables (columns.prepare_logs) instead of
    records; merged with records of other requests they must store what records would."""
    from koban.store.columns import prepare_logs

    everything = records.everything()
    logs = everything.with_log_records().logs
    half = len(logs) // 2
    prepared = prepare_logs(Batch(logs=logs[:half]))
    assert prepared.prepared_logs and not prepared.logs and prepared.record_count == half
    mixed = Batch.merge([prepared, everything._replace(logs=logs[half:], log_columns=())])
    store.write(mixed, lsn=1)
    _assert_known_logs(store)
    assert _count(store, schema.TRACES) == 10
