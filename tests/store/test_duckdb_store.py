from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from koban.errors import QueryTimeout, StoreError
from koban.model import (
    Batch,
    Exemplar,
    ExpHistogramPoint,
    GaugePoint,
    HistogramPoint,
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
from koban.store import schema
from koban.store.duckdb import DuckDBStore

T0 = 1_700_000_000_123_456_789
SECOND = 1_000_000_000
TRACE, SPAN_ID = "ab" * 16, "cd" * 8
WEB = Resource("web", {"service.name": "web", "host.name": "h1"}, "https://res")
SCOPE = Scope("lib", "1.2", {"s": "x"}, "https://scope", 3)
STREAM = MetricStream("http.requests", "requests served", "1", WEB, SCOPE)
EXEMPLAR = Exemplar(T0 + 2, 2.5, TRACE, SPAN_ID, {"user": "u1"})


def dt(ns: int) -> datetime:
    """How DuckDB hands a TIMESTAMP_NS to Python: naive, to the microsecond."""
    return datetime(1970, 1, 1) + timedelta(microseconds=ns // 1000)


def log(i: int = 0, ts: int = T0) -> LogRecord:
    return LogRecord(ts + i, ts + i + 1, TRACE, SPAN_ID, 1, "ERROR", 17, f"boom {i}", {"i": str(i)}, WEB, SCOPE)


def span(ts: int = T0) -> Span:
    return Span(
        ts, 250_000, TRACE, SPAN_ID, "ef" * 8, "k=v", "GET /items", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR",
        "bad", {"http.route": "/items"},
        (SpanEvent(ts + 5, "exception", {"exception.type": "E"}), SpanEvent(ts + 6, "retry", {})),
        (SpanLink("12" * 16, "34" * 8, "a=b", {"l": "1"}),), WEB, SCOPE,
    )  # fmt: skip


def gauge(ts: int = T0) -> GaugePoint:
    return GaugePoint(STREAM, {"route": "/"}, ts - 1, ts, 1.5, 1, (EXEMPLAR,))


def metric_batch() -> Batch:
    ex = (EXEMPLAR,)
    return Batch(
        gauges=[gauge()],
        sums=[SumPoint(STREAM, {"route": "/"}, T0 - 1, T0, 3.0, 2, True, 0, ex)],
        histograms=[HistogramPoint(STREAM, {}, T0 - 1, T0, 3, 6.0, (1, 2), (5.0,), None, 4.0, 1, 0, ex)],
        exp_histograms=[
            ExpHistogramPoint(STREAM, {}, T0 - 1, T0, 3, 6.0, 2, 1, -1, (1, 1), 3, (2,), 0.5, None, 2, 0, ex)
        ],
        summaries=[SummaryPoint(STREAM, {}, T0 - 1, T0, 3, 6.0, (0.5, 0.99), (1.0, 2.0), 0)],
    )


@pytest.fixture
def store() -> Iterator[DuckDBStore]:
    s = DuckDBStore(":memory:", threads=1)
    yield s
    s.close()


def rows(store: DuckDBStore, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    result = store.query(sql, params or {}, timeout_s=10, max_rows=10_000)
    return [dict(zip(result.columns, r, strict=True)) for r in result.rows]


def count(store: DuckDBStore, table: str) -> int:
    return store.query(f"SELECT count(*) FROM {table}", {}, timeout_s=10, max_rows=1).rows[0][0]


# --- every column of every table -----------------------------------------------------

METRIC_COMMON = {
    "ResourceAttributes": {"service.name": "web", "host.name": "h1"},
    "ResourceSchemaUrl": "https://res",
    "ScopeName": "lib",
    "ScopeVersion": "1.2",
    "ScopeAttributes": {"s": "x"},
    "ScopeDroppedAttrCount": 3,
    "ScopeSchemaUrl": "https://scope",
    "ServiceName": "web",
    "MetricName": "http.requests",
    "MetricDescription": "requests served",
    "MetricUnit": "1",
    "StartTimeUnix": dt(T0 - 1),
    "TimeUnix": dt(T0),
}
EXEMPLAR_COLUMNS = {
    "Exemplars.FilteredAttributes": [{"user": "u1"}],
    "Exemplars.TimeUnix": [dt(T0 + 2)],
    "Exemplars.Value": [2.5],
    "Exemplars.SpanId": [SPAN_ID],
    "Exemplars.TraceId": [TRACE],
}


def test_a_log_record_is_read_back_column_by_column(store: DuckDBStore) -> None:
    store.write(Batch(logs=[log(3)]), lsn=1)

    assert rows(store, "SELECT * FROM otel_logs") == [
        {
            "Timestamp": dt(T0 + 3),
            "TraceId": TRACE,
            "SpanId": SPAN_ID,
            "TraceFlags": 1,
            "SeverityText": "ERROR",
            "SeverityNumber": 17,
            "ServiceName": "web",
            "Body": "boom 3",
            "ResourceSchemaUrl": "https://res",
            "ResourceAttributes": {"service.name": "web", "host.name": "h1"},
            "ScopeSchemaUrl": "https://scope",
            "ScopeName": "lib",
            "ScopeVersion": "1.2",
            "ScopeAttributes": {"s": "x"},
            "LogAttributes": '{"i":"3"}',  # JSON text on DuckDB (schema.DUCKDB_JSON_MAPS)
        }
    ]


def test_timestamps_keep_their_nanoseconds(store: DuckDBStore) -> None:
    store.write(Batch(logs=[log(0)], spans=[span()]), lsn=1)

    assert rows(store, 'SELECT epoch_ns("Timestamp") AS ns FROM otel_logs') == [{"ns": T0}]
    assert rows(store, 'SELECT epoch_ns("Events.Timestamp"[1]) AS ns FROM otel_traces') == [{"ns": T0 + 5}]


def test_a_span_with_events_and_links_is_read_back_column_by_column(store: DuckDBStore) -> None:
    store.write(Batch(spans=[span()]), lsn=1)

    assert rows(store, "SELECT * FROM otel_traces") == [
        {
            "Timestamp": dt(T0),
            "TraceId": TRACE,
            "SpanId": SPAN_ID,
            "ParentSpanId": "ef" * 8,
            "TraceState": "k=v",
            "SpanName": "GET /items",
            "SpanKind": "SPAN_KIND_SERVER",
            "ServiceName": "web",
            "ResourceAttributes": {"service.name": "web", "host.name": "h1"},
            "ScopeName": "lib",
            "ScopeVersion": "1.2",
            "SpanAttributes": '{"http.route":"/items"}',  # JSON text on DuckDB (schema.DUCKDB_JSON_MAPS)
            "Duration": 250_000,
            "StatusCode": "STATUS_CODE_ERROR",
            "StatusMessage": "bad",
            "Events.Timestamp": [dt(T0 + 5), dt(T0 + 6)],
            "Events.Name": ["exception", "retry"],
            "Events.Attributes": [{"exception.type": "E"}, {}],
            "Links.TraceId": ["12" * 16],
            "Links.SpanId": ["34" * 8],
            "Links.TraceState": ["a=b"],
            "Links.Attributes": [{"l": "1"}],
        }
    ]


@pytest.mark.parametrize(
    ("table", "own"),
    [
        (schema.GAUGE, {"Attributes": {"route": "/"}, "Value": 1.5, "Flags": 1, **EXEMPLAR_COLUMNS}),
        (
            schema.SUM,
            {
                "Attributes": {"route": "/"},
                "Value": 3.0,
                "Flags": 0,
                **EXEMPLAR_COLUMNS,
                "AggregationTemporality": 2,
                "IsMonotonic": True,
            },
        ),
        (
            schema.HISTOGRAM,
            {
                "Attributes": {},
                "Count": 3,
                "Sum": 6.0,
                "BucketCounts": [1, 2],
                "ExplicitBounds": [5.0],
                **EXEMPLAR_COLUMNS,
                "Flags": 0,
                "Min": None,
                "Max": 4.0,
                "AggregationTemporality": 1,
            },
        ),
        (
            schema.EXP_HISTOGRAM,
            {
                "Attributes": {},
                "Count": 3,
                "Sum": 6.0,
                "Scale": 2,
                "ZeroCount": 1,
                "PositiveOffset": -1,
                "PositiveBucketCounts": [1, 1],
                "NegativeOffset": 3,
                "NegativeBucketCounts": [2],
                **EXEMPLAR_COLUMNS,
                "Flags": 0,
                "Min": 0.5,
                "Max": None,
                "AggregationTemporality": 2,
            },
        ),
        (
            schema.SUMMARY,
            {
                "Attributes": {},
                "Count": 3,
                "Sum": 6.0,
                "ValueAtQuantiles.Quantile": [0.5, 0.99],
                "ValueAtQuantiles.Value": [1.0, 2.0],
                "Flags": 0,
            },
        ),
    ],
)
def test_each_metric_kind_is_read_back_column_by_column(store: DuckDBStore, table: str, own: dict) -> None:
    store.write(metric_batch(), lsn=1)

    [row] = rows(store, f"SELECT * FROM {table}")

    assert list(row) == [c for c, _ in schema.TABLE_COLUMNS[table]]
    assert row == {**METRIC_COMMON, **own}


# --- exactly once --------------------------------------------------------------------


def test_a_fresh_store_has_applied_nothing(store: DuckDBStore) -> None:
    assert store.applied_lsn() == 0


def test_writing_the_same_lsn_twice_stores_it_once(store: DuckDBStore) -> None:
    store.write(Batch(logs=[log(0)]), lsn=5)
    store.write(Batch(logs=[log(0)]), lsn=5)

    assert count(store, schema.LOGS) == 1
    assert store.applied_lsn() == 5


def test_a_lower_lsn_is_ignored(store: DuckDBStore) -> None:
    store.write(Batch(logs=[log(0)]), lsn=5)
    store.write(Batch(logs=[log(1), log(2)]), lsn=4)

    assert count(store, schema.LOGS) == 1
    assert store.applied_lsn() == 5


def test_a_batch_that_does_not_fit_is_refused_whole(store: DuckDBStore) -> None:
    bad = Batch(logs=[log(0)], spans=[span()._replace(duration_ns=-1)])

    with pytest.raises(StoreError) as caught:
        store.write(bad, lsn=1)

    assert caught.value.__cause__ is not None
    assert count(store, schema.LOGS) == 0
    assert store.applied_lsn() == 0


def test_reopening_the_file_keeps_data_and_lsn(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "koban.duckdb"
    first = DuckDBStore(path, threads=1)
    first.write(Batch(logs=[log(0)], spans=[span()]), lsn=7)
    first.close()

    again = DuckDBStore(path, threads=1)
    try:
        assert again.applied_lsn() == 7
        assert count(again, schema.LOGS) == 1
        assert count(again, schema.TRACES) == 1
    finally:
        again.close()


# --- retention -----------------------------------------------------------------------


def test_retention_removes_only_old_rows_of_that_signal(store: DuckDBStore) -> None:
    old, new = T0, T0 + 60 * SECOND
    store.write(Batch(logs=[log(0, old), log(0, new)], spans=[span(old)], gauges=[gauge(old)]), lsn=1)

    removed = store.delete_older_than("logs", T0 + SECOND)

    assert removed == 1
    assert rows(store, 'SELECT epoch_ns("Timestamp") AS ns FROM otel_logs') == [{"ns": new}]
    assert count(store, schema.TRACES) == 1
    assert count(store, schema.GAUGE) == 1


def test_metric_retention_covers_every_metric_table(store: DuckDBStore) -> None:
    store.write(metric_batch(), lsn=1)

    assert store.delete_older_than("metrics", T0 + 1) == len(schema.METRIC_TABLES)
    assert all(count(store, t) == 0 for t in schema.METRIC_TABLES)


def test_retention_of_an_unknown_signal_is_refused(store: DuckDBStore) -> None:
    with pytest.raises(ValueError, match="profiles"):
        store.delete_older_than("profiles", T0)


# --- queries -------------------------------------------------------------------------


def test_params_are_bound_by_name(store: DuckDBStore) -> None:
    store.write(Batch(logs=[log(1), log(2)]), lsn=1)

    result = store.query(
        "SELECT Body FROM otel_logs WHERE LogAttributes->>'i' = $i", {"i": "2"}, timeout_s=5, max_rows=10
    )

    assert result.columns == ["Body"]
    assert result.rows == [("boom 2",)]


def test_max_rows_caps_the_rows_returned(store: DuckDBStore) -> None:
    result = store.query("SELECT * FROM range(1000000000)", {}, timeout_s=5, max_rows=3)

    assert result.rows == [(0,), (1,), (2,)]


def test_a_slow_query_is_interrupted_with_query_timeout(store: DuckDBStore) -> None:
    slow = "SELECT count(*) FROM range(100000000) a, range(100000000) b WHERE a.range + b.range < 0"
    started = time.monotonic()

    with pytest.raises(QueryTimeout):
        store.query(slow, {}, timeout_s=0.2, max_rows=1)

    assert time.monotonic() - started < 5
    assert store.query("SELECT 42", {}, timeout_s=5, max_rows=1).rows == [(42,)]


def test_invalid_sql_is_a_store_error(store: DuckDBStore) -> None:
    with pytest.raises(StoreError) as caught:
        store.query("SELECT nope FROM otel_logs", {}, timeout_s=5, max_rows=1)

    assert not isinstance(caught.value, QueryTimeout)


def test_a_query_cannot_change_data(store: DuckDBStore) -> None:
    store.write(Batch(logs=[log(0)]), lsn=1)

    for sql in ("DELETE FROM otel_logs", "SELECT 1; DELETE FROM otel_logs", "DROP TABLE otel_logs"):
        with pytest.raises(StoreError):
            store.query(sql, {}, timeout_s=5, max_rows=1)

    assert count(store, schema.LOGS) == 1


def test_reads_in_other_threads_see_whole_batches_during_writes(store: DuckDBStore) -> None:
    per_batch, batches = 50, 40
    seen: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                seen.append(count(store, schema.LOGS))
        except BaseException as e:  # reported by the assertion below
            failures.append(e)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for lsn in range(1, batches + 1):
        store.write(Batch(logs=[log(i) for i in range(per_batch)]), lsn=lsn)
    done.set()
    for t in readers:
        t.join()

    assert failures == []
    assert seen and all(n % per_batch == 0 for n in seen)
    assert count(store, schema.LOGS) == per_batch * batches


# --- housekeeping --------------------------------------------------------------------


def test_disk_bytes_counts_the_database_file(tmp_path: Path) -> None:
    s = DuckDBStore(tmp_path / "k.duckdb", threads=1)
    try:
        s.write(Batch(logs=[log(i) for i in range(100)]), lsn=1)
        assert s.disk_bytes() > 0
    finally:
        s.close()


def test_an_in_memory_store_uses_no_disk(store: DuckDBStore) -> None:
    assert store.disk_bytes() == 0


def test_the_memory_limit_is_applied() -> None:
    s = DuckDBStore(":memory:", memory_limit="100MB", threads=1)
    try:
        [(limit,)] = s.query("SELECT current_setting('memory_limit')", {}, timeout_s=5, max_rows=1).rows
        assert limit.replace(" ", "") in ("95.3MiB", "100.0MB", "100MB")
    finally:
        s.close()


def test_a_closed_store_refuses_work() -> None:
    s = DuckDBStore(":memory:", threads=1)
    s.close()
    s.close()  # a second close is harmless

    with pytest.raises(StoreError):
        s.write(Batch(logs=[log(0)]), lsn=1)
    with pytest.raises(StoreError):
        s.query("SELECT 1", {}, timeout_s=5, max_rows=1)


def test_a_setting_duckdb_refuses_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        DuckDBStore(":memory:", memory_limit="lots")


# --- permanent and transient failures --------------------------------------------------


@pytest.mark.parametrize("timestamp_ns", [2**63 + 5, 2**64 - 1], ids=["past-int64", "max-uint64"])
def test_a_timestamp_beyond_int64_is_refused_for_good(store: DuckDBStore, timestamp_ns: int) -> None:
    store.write(Batch(logs=[log(0)]), lsn=1)

    with pytest.raises(StoreError, match="does not fit the schema") as caught:
        store.write(Batch(logs=[log(1), log(2)._replace(timestamp_ns=timestamp_ns)]), lsn=2)

    assert caught.value.permanent is True
    assert "permanent" not in caught.value.to_dict()
    assert count(store, schema.LOGS) == 1
    assert store.applied_lsn() == 1


@pytest.mark.parametrize(
    "bad",
    [log(0)._replace(severity_number=300), log(0)._replace(body="\ud800")],
    ids=["severity-over-utinyint", "lone-surrogate"],
)
def test_a_value_that_does_not_fit_its_column_is_refused_for_good(store: DuckDBStore, bad: LogRecord) -> None:
    with pytest.raises(StoreError) as caught:
        store.write(Batch(logs=[bad]), lsn=1)

    assert caught.value.permanent is True
    assert store.applied_lsn() == 0


def test_a_failure_that_is_not_about_the_data_is_not_permanent() -> None:
    s = DuckDBStore(":memory:", threads=1)
    s.close()

    with pytest.raises(StoreError) as caught:
        s.write(Batch(logs=[log(0)]), lsn=1)

    assert caught.value.permanent is False


def test_an_empty_batch_only_moves_the_applied_lsn(store: DuckDBStore) -> None:
    store.write(Batch(logs=[log(0)]), lsn=1)
    store.write(Batch(), lsn=2)

    assert store.applied_lsn() == 2
    assert count(store, schema.LOGS) == 1
