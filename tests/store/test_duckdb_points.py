"""The DuckDB store's narrow metric points (store/duckdb_points.py): per-series points
(MetricColumns, as Prometheus remote write decodes) are kept as (series, time, value)
rows, and otel_metrics_gauge / otel_metrics_sum, now views, show them exactly as the
exporter's wide rows would have."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from koban.model import Batch, GaugePoint, MetricColumns, MetricStream, Resource, Scope
from koban.store import duckdb_points, schema
from koban.store.columns import batch_to_arrow
from koban.store.duckdb import DuckDBStore

S = 1_000_000_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
HOST_A = Resource("node", {"service.name": "node", "service.instance.id": "a"})
HOST_B = Resource("node", {"service.name": "node", "service.instance.id": "b"})
SCOPE = Scope("koban.prometheus.remote_write", "0.1.0")
CPU_A = MetricStream("cpu_seconds", "", "", HOST_A, SCOPE)
CPU_B = MetricStream("cpu_seconds", "CPU time", "s", HOST_B, SCOPE)
CUMULATIVE = 2


def per_series(series: list[tuple[MetricStream, dict[str, str]]], points: list[tuple[int, int, float]],
               temporality: int = 0, monotonic: bool = False) -> MetricColumns:
    """MetricColumns of `series` (stream, attributes) and `points` (series, time ns, value)."""
    keys = [repr((s.name, s.resource.attributes, sorted(a.items()))).encode() for s, a in series]
    streams = list({repr(s): s for s, _ in series}.values())
    return MetricColumns(
        streams=streams,
        series_stream=np.array([streams.index(s) for s, _ in series], np.int32),
        attributes=[a for _, a in series],
        series_ids=np.array([hash(k) & 0xFFFF_FFFF for k in keys], np.uint64),
        point_series=pa.array([p[0] for p in points], pa.int32()),
        time_ns=pa.array([p[1] for p in points], pa.int64()),
        values=pa.array([p[2] for p in points], pa.float64()),
        aggregation_temporality=temporality,
        is_monotonic=monotonic,
    )


SERIES = [(CPU_A, {"mode": "idle"}), (CPU_A, {"mode": "user"}), (CPU_B, {"mode": "idle"})]


def scrape(t: int, value: float = 1.0) -> MetricColumns:
    return per_series(SERIES, [(i, t, value + i) for i in range(len(SERIES))])


def rows(store: DuckDBStore, sql: str, params: dict | None = None) -> list[tuple]:
    return store.query(sql, params or {}, timeout_s=10, max_rows=1_000_000).rows


def table_rows(store: DuckDBStore, table: str) -> list[tuple]:
    """Every row of `table`, sorted: times as ns, maps as sorted item lists."""
    names = ", ".join(
        f"epoch_ns({schema.quote_ident(n)})" if t == "TIMESTAMP_NS" else schema.quote_ident(n)
        for n, t in schema.METRIC_COLUMNS[table]
    )
    return sorted(tuple(map(_plain, row)) for row in rows(store, f"SELECT {names} FROM {table}"))


def arrow_rows(batch: Batch, table: str) -> list[tuple]:
    """The same for the rows batch_to_arrow makes of `batch` (what ClickHouse stores)."""
    data = batch_to_arrow(batch)[table]
    for i, field in enumerate(data.schema):
        if pa.types.is_timestamp(field.type):
            data = data.set_column(i, field.name, data.column(i).cast(pa.int64()))
    return sorted(tuple(map(_plain, row.values())) for row in data.to_pylist())


def _plain(value):
    if isinstance(value, dict):
        return sorted(value.items())
    if isinstance(value, list) and value and isinstance(value[0], tuple):
        return sorted(value)
    return value


@pytest.fixture
def store(tmp_path: Path):
    s = DuckDBStore(tmp_path / "koban.duckdb", memory_limit="256MB", threads=2)
    yield s
    s.close()


def count(store: DuckDBStore, table: str) -> int:
    return rows(store, f"SELECT count(*) FROM {table}")[0][0]


def test_per_series_points_are_narrow_rows_and_the_view_shows_the_exporters_rows(store):
    batch = Batch(metric_columns=(scrape(T0), scrape(T0 + 15 * S, 2.0)))
    store.write(batch, 1)
    assert count(store, duckdb_points.POINTS[schema.GAUGE]) == 6
    assert count(store, duckdb_points.ROWS[schema.GAUGE]) == 0
    assert count(store, schema.METRIC_POINT_SERIES) == 3
    view = table_rows(store, schema.GAUGE)
    assert len(view) == 6
    assert view == arrow_rows(batch, schema.GAUGE)


def test_a_series_sent_again_is_stored_once(store):
    for lsn in range(1, 5):
        store.write(Batch(metric_columns=(scrape(T0 + lsn * 15 * S),)), lsn)
    assert count(store, schema.METRIC_POINT_SERIES) == 3
    assert count(store, schema.GAUGE) == 12
    per_host = rows(store, "SELECT ResourceAttributes['service.instance.id'], count(*) FROM otel_metrics_gauge"
                           " GROUP BY 1 ORDER BY 1")
    assert per_host == [("a", 8), ("b", 4)]


def test_a_series_whose_stream_or_attributes_differ_is_a_new_series(store):
    store.write(Batch(metric_columns=(scrape(T0),)), 1)
    # the same labels with other attributes, as after a new scrub rule (which gives the
    # series another id); and the same labels with a description, as after Prometheus
    # sent the metadata
    masked = per_series([(CPU_A, {"mode": "****"})], [(0, T0 + S, 5.0)])
    described = per_series([(CPU_A._replace(description="CPU time"), {"mode": "idle"})], [(0, T0 + 2 * S, 6.0)])
    store.write(Batch(metric_columns=(masked, described)), 2)
    assert count(store, schema.METRIC_POINT_SERIES) == 5
    got = rows(store, "SELECT Attributes['mode'], MetricDescription, Value FROM otel_metrics_gauge"
                      " WHERE TimeUnix > make_timestamp_ns($t) ORDER BY Value", {"t": T0})
    assert got == [("****", "", 5.0), ("idle", "CPU time", 6.0)]


def test_sums_keep_their_temporality_and_are_apart_from_gauges_of_the_same_labels(store):
    counters = per_series(SERIES[:1], [(0, T0, 10.0)], temporality=CUMULATIVE, monotonic=True)
    store.write(Batch(metric_columns=(scrape(T0), counters)), 1)
    assert rows(store, "SELECT MetricName, Value, AggregationTemporality, IsMonotonic FROM otel_metrics_sum") == [
        ("cpu_seconds", 10.0, CUMULATIVE, True)
    ]
    assert count(store, schema.GAUGE) == 3
    assert rows(store, f"SELECT count(*) FROM {schema.METRIC_POINT_SERIES} GROUP BY MetricTable ORDER BY 1") == [
        (1,), (3,)
    ]


def test_points_built_one_by_one_stay_wide_rows_in_the_same_view(store):
    point = GaugePoint(CPU_A, {"mode": "steal"}, 0, T0, 7.0)
    store.write(Batch(gauges=(point,), metric_columns=(scrape(T0),)), 1)
    assert count(store, duckdb_points.ROWS[schema.GAUGE]) == 1
    assert count(store, duckdb_points.POINTS[schema.GAUGE]) == 3
    assert sorted(rows(store, "SELECT Attributes['mode'] FROM otel_metrics_gauge")) == [
        ("idle",), ("idle",), ("steal",), ("user",)
    ]


def test_retention_removes_old_points_and_the_series_left_without_any(store):
    store.write(Batch(metric_columns=(scrape(T0),)), 1)
    later = per_series(SERIES[:1], [(0, T0 + 60 * S, 1.0)])
    store.write(Batch(metric_columns=(later,)), 2)
    assert store.delete_older_than("metrics", T0 + 30 * S) == 3
    assert count(store, schema.GAUGE) == 1
    assert rows(store, f"SELECT Attributes['mode'] FROM {schema.METRIC_POINT_SERIES}") == [("idle",)]
    # a series removed and sent again is numbered afresh and joins its points
    store.write(Batch(metric_columns=(scrape(T0 + 120 * S),)), 3)
    assert count(store, schema.GAUGE) == 4
    assert count(store, schema.METRIC_POINT_SERIES) == 3


def test_usage_counts_the_points_under_the_views_name(store):
    store.write(Batch(metric_columns=(scrape(T0), scrape(T0 + S))), 1)
    usage = store.usage()
    assert usage[schema.GAUGE].rows == 6
    assert usage[schema.METRIC_POINT_SERIES].rows == 3


def test_narrow_points_are_rolled_up_and_late_ones_mark_their_minute(store):
    minute = 60 * S
    store.write(Batch(metric_columns=(scrape(T0), scrape(T0 + minute))), 1)
    store.roll_up_metrics(T0 + 2 * minute)
    assert store.metric_rollups_until_ns() == T0 + 2 * minute
    store.write(Batch(metric_columns=(scrape(T0 + 30 * S),)), 2)  # late, in the first minute
    assert store.metric_rollups_until_ns() == T0
    store.roll_up_metrics(T0 + 2 * minute)
    counts = rows(store, f"SELECT epoch_ns(TimeUnix), sum(Count) FROM {schema.ROLLUP_1M} GROUP BY 1 ORDER BY 1")
    assert counts == [(T0, 6), (T0 + minute, 3)]


def test_a_database_with_exporter_tables_keeps_their_rows_under_the_views(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for ddl in schema.duckdb_ddl():  # as koban made them before the narrow points
        con.execute(ddl)
    old = batch_to_arrow(Batch(metric_columns=(scrape(T0),)))[schema.GAUGE]
    con.from_arrow(old).insert_into(schema.GAUGE)
    con.close()
    store = DuckDBStore(path, memory_limit="256MB", threads=2)
    try:
        store.write(Batch(metric_columns=(scrape(T0 + S, 2.0),)), 1)
        assert count(store, duckdb_points.ROWS[schema.GAUGE]) == 3
        assert count(store, duckdb_points.POINTS[schema.GAUGE]) == 3
        assert sorted(v for (v,) in rows(store, "SELECT Value FROM otel_metrics_gauge")) == [
            1.0, 2.0, 2.0, 3.0, 3.0, 4.0
        ]
        kinds = rows(store, "SELECT table_name, table_type FROM information_schema.tables"
                            " WHERE table_name LIKE 'otel_metrics_%' ORDER BY 1")
        assert ("otel_metrics_gauge", "VIEW") in kinds and ("otel_metrics_histogram", "BASE TABLE") in kinds
    finally:
        store.close()
