"""The DuckDB store's 1-minute metric rollups (store/rollups.py): what is rolled up,
the watermark across a reopen, catching up in chunks, late points and retention. The
query-level promise (rollups answer what raw points answer) is in
tests/conformance/test_metric_rollups.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from koban.model import Batch, GaugePoint, MetricStream, Resource, Scope, SumPoint
from koban.store import rollups, schema
from koban.store.duckdb import DuckDBStore

MINUTE = rollups.MINUTE_NS
S = 1_000_000_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z, a whole minute
WEB = Resource("web", {"service.name": "web"})
SCOPE = Scope("lib", "1")
CPU = MetricStream("cpu", "", "", WEB, SCOPE)
REQS = MetricStream("reqs", "", "", WEB, SCOPE)
CUMULATIVE, DELTA = 2, 1


def gauges(minutes: range, hosts: int = 3, per_minute: int = 2, value: float = 1.0) -> list[GaugePoint]:
    return [
        GaugePoint(CPU, {"host": f"h{h}"}, 0, T0 + m * MINUTE + k * 20 * S, value + m + h + k)
        for m in minutes for h in range(hosts) for k in range(per_minute)
    ]  # fmt: skip


def rows(store: DuckDBStore, sql: str) -> list[tuple]:
    return store.query(sql, {}, timeout_s=10, max_rows=1_000_000).rows


def rollup_rows(store: DuckDBStore) -> dict[tuple, tuple]:
    """(metric table, name, host, minute offset) -> (count, sum, min, max)."""
    out = rows(
        store,
        f"SELECT r.MetricTable, r.MetricName, s.Attributes['host'], epoch_ns(r.TimeUnix), r.Count, r.Sum, r.Min,"
        f" r.Max FROM {schema.ROLLUP_1M} r JOIN {schema.METRIC_SERIES} s USING (SeriesId)",
    )
    return {(t, n, h, (m - T0) // MINUTE): (c, total, lo, hi) for t, n, h, m, c, total, lo, hi in out}


def raw_per_minute(store: DuckDBStore) -> dict[tuple, tuple]:
    out = rows(
        store,
        "SELECT MetricName, Attributes['host'], epoch_ns(TimeUnix) // 60000000000 * 60000000000 AS m, count(*),"
        " sum(Value), min(Value), max(Value) FROM otel_metrics_gauge GROUP BY ALL",
    )
    return {("gauge", n, h, (m - T0) // MINUTE): (c, total, lo, hi) for n, h, m, c, total, lo, hi in out}


@pytest.fixture
def store(tmp_path: Path):
    s = DuckDBStore(tmp_path / "koban.duckdb", memory_limit="256MB", threads=2)
    yield s
    s.close()


def test_nothing_is_rolled_up_until_asked(store):
    store.write(Batch(gauges=gauges(range(3))), lsn=1)
    assert store.metric_rollups_until_ns() is None
    assert rollup_rows(store) == {}


def test_closed_minutes_are_rolled_up_one_row_per_series_and_minute(store):
    store.write(Batch(gauges=gauges(range(5))), lsn=1)
    written = store.roll_up_metrics(T0 + 3 * MINUTE + 30 * S)  # minute 3 is not over
    assert store.metric_rollups_until_ns() == T0 + 3 * MINUTE
    assert written == 3 * 3
    expected = {k: v for k, v in raw_per_minute(store).items() if k[3] < 3}
    assert rollup_rows(store) == expected
    assert expected[("gauge", "cpu", "h1", 2)] == (2, (1 + 2 + 1) + (1 + 2 + 1 + 1), 4.0, 5.0)
    series = rows(store, f"SELECT SeriesId, Attributes['host'], ServiceName FROM {schema.METRIC_SERIES}")
    assert sorted(i for i, _, _ in series) == [1, 2, 3]  # dense numbers
    assert sorted((h, svc) for _, h, svc in series) == [("h0", "web"), ("h1", "web"), ("h2", "web")]


def test_cumulative_counters_are_not_rolled_up_and_delta_ones_are(store):
    cumulative = [SumPoint(REQS, {"host": "h0"}, T0, T0 + m * MINUTE, 10.0 * m, CUMULATIVE, True) for m in range(3)]
    delta = [SumPoint(CPU, {"host": "h0"}, T0, T0 + m * MINUTE, 2.0, DELTA, True) for m in range(3)]
    store.write(Batch(sums=cumulative + delta), lsn=1)
    store.roll_up_metrics(T0 + 3 * MINUTE)
    assert sorted(rollup_rows(store)) == [("sum", "cpu", "h0", m) for m in range(3)]


def test_a_backlog_is_rolled_up_in_chunks_and_the_watermark_survives_a_reopen(tmp_path):
    minutes = 2 * rollups.CHUNK_MINUTES + 5
    path = tmp_path / "koban.duckdb"
    store = DuckDBStore(path, memory_limit="256MB")
    store.write(Batch(gauges=gauges(range(minutes), hosts=2, per_minute=1)), lsn=1)
    store.roll_up_metrics(T0 + (minutes + 1) * MINUTE)
    assert store.metric_rollups_until_ns() == T0 + (minutes + 1) * MINUTE
    assert rollup_rows(store) == raw_per_minute(store)
    store.close()
    reopened = DuckDBStore(path, memory_limit="256MB")
    try:
        assert reopened.metric_rollups_until_ns() == T0 + (minutes + 1) * MINUTE
        assert reopened.roll_up_metrics(T0 + (minutes + 1) * MINUTE) == 0  # nothing twice
        assert len(rollup_rows(reopened)) == minutes * 2
    finally:
        reopened.close()


def test_late_points_mark_their_minute_and_the_next_roll_up_recomputes_it(store):
    store.write(Batch(gauges=gauges(range(4))), lsn=1)
    store.roll_up_metrics(T0 + 4 * MINUTE)
    late = GaugePoint(CPU, {"host": "h9"}, 0, T0 + MINUTE + 5 * S, 500.0)
    also_late = GaugePoint(CPU, {"host": "h0"}, 0, T0 + 2 * MINUTE + 59 * S, -5.0)
    store.write(Batch(gauges=[late, also_late]), lsn=2)
    assert store.metric_rollups_until_ns() == T0 + MINUTE  # minutes 1 and 2 are read raw meanwhile
    store.roll_up_metrics(T0 + 4 * MINUTE)
    assert store.metric_rollups_until_ns() == T0 + 4 * MINUTE
    assert rollup_rows(store) == raw_per_minute(store)
    assert rollup_rows(store)[("gauge", "cpu", "h9", 1)] == (1, 500.0, 500.0, 500.0)
    assert rows(store, f"SELECT count(*) FROM {rollups.DIRTY}") == [(0,)]


def test_points_ahead_of_the_watermark_are_not_late(store):
    store.roll_up_metrics(T0 + 2 * MINUTE)  # an empty store: the watermark still moves
    assert store.metric_rollups_until_ns() == T0 + 2 * MINUTE
    store.write(Batch(gauges=gauges(range(2, 4))), lsn=1)
    assert store.metric_rollups_until_ns() == T0 + 2 * MINUTE
    assert rows(store, f"SELECT count(*) FROM {rollups.DIRTY}") == [(0,)]


def test_retention_drops_old_rollups_and_series_and_recomputes_the_cut_minute(store):
    old = [GaugePoint(CPU, {"host": "old"}, 0, T0 + k * 20 * S, 1.0) for k in range(3)]
    store.write(Batch(gauges=old + gauges(range(1, 3))), lsn=1)
    store.roll_up_metrics(T0 + 3 * MINUTE)
    store.delete_older_than("metrics", T0 + MINUTE + 30 * S)  # halfway through minute 1
    assert store.metric_rollups_until_ns() == T0 + MINUTE
    store.roll_up_metrics(T0 + 3 * MINUTE)
    assert rollup_rows(store) == raw_per_minute(store)
    assert all(k[3] >= 1 for k in rollup_rows(store))
    hosts = [h for (h,) in rows(store, f"SELECT Attributes['host'] FROM {schema.METRIC_SERIES} ORDER BY 1")]
    assert hosts == ["h0", "h1", "h2"]


def test_a_point_stored_while_a_step_reads_is_rolled_up_by_the_next_step(store):
    """A step reads raw points outside the write lock; a point stored meanwhile for one
    of its minutes is late, so the next step computes that minute again."""
    store.write(Batch(gauges=gauges(range(3))), lsn=1)
    step = rollups.plan(store._writer, 0, T0 + 3 * MINUTE)
    store._rollup_watermark = step.next_watermark_ns  # as roll_up_metrics does under the lock
    computed = store._compute_rollups(step)
    store.write(Batch(gauges=[GaugePoint(CPU, {"host": "h7"}, 0, T0 + MINUTE + S, 7.0)]), lsn=2)
    store._apply_rollups(step, computed)
    assert ("gauge", "cpu", "h7", 1) not in rollup_rows(store)
    assert store.metric_rollups_until_ns() == T0 + MINUTE  # so queries read minute 1 raw
    store.roll_up_metrics(T0 + 3 * MINUTE)
    assert rollup_rows(store) == raw_per_minute(store)
    assert store.metric_rollups_until_ns() == T0 + 3 * MINUTE


def test_a_dirty_minute_waits_until_late_points_stop_coming(store):
    store.write(Batch(gauges=gauges(range(3))), lsn=1)
    store.roll_up_metrics(T0 + 3 * MINUTE)
    store.write(Batch(gauges=[GaugePoint(CPU, {"host": "h8"}, 0, T0 + 5 * S, 8.0)]), lsn=2)
    store.roll_up_metrics(T0 + 3 * MINUTE, settle_s=3600)  # marked just now: not yet
    assert store.metric_rollups_until_ns() == T0
    assert ("gauge", "cpu", "h8", 0) not in rollup_rows(store)
    store.roll_up_metrics(T0 + 3 * MINUTE, settle_s=0)
    assert store.metric_rollups_until_ns() == T0 + 3 * MINUTE
    assert rollup_rows(store) == raw_per_minute(store)


def test_rollups_count_towards_the_metrics_disk_use_but_not_its_rows(store):
    from koban.query.storage import signal_usage

    store.write(Batch(gauges=gauges(range(3))), lsn=1)
    before = signal_usage(store.usage())["metrics"]
    store.roll_up_metrics(T0 + 3 * MINUTE)
    usage = store.usage()
    assert usage[schema.ROLLUP_1M].rows == 9 and usage[schema.METRIC_SERIES].rows == 3
    after = signal_usage(usage)["metrics"]
    assert after["rows"] == before["rows"] == 18
    assert usage[schema.ROLLUP_1M].bytes > 0
    assert after["bytes"] == sum(usage[t].bytes for t in (*schema.METRIC_TABLES, *schema.DERIVED_TABLES))
