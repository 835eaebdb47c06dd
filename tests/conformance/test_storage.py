"""What the Storage page and the disk budget read from a store: each table's disk use
and rows (Store.usage), rows per time bucket and per service (query/storage.py), and a
budget run that deletes the oldest data first. Over every backend."""

from __future__ import annotations

from conformance import records
from conformance.backends import run
from koban.clock import FakeClock
from koban.model import Batch
from koban.pipeline.retention import HOUR_NS, Retention, RetentionOverrides, budget_cutoff, used_bytes
from koban.query.dialects import for_store
from koban.query.storage import bucket_counts, rows_per_bucket, rows_per_service, service_counts, signal_usage
from koban.settings import Settings
from koban.store import schema

T0, S = records.T0, records.S


def test_usage_names_every_table_with_its_live_rows_and_some_bytes(store):
    store.write(records.everything(), lsn=1)
    usage = store.usage()
    assert set(schema.ALL_TABLE_COLUMNS) <= set(usage) <= {*schema.ALL_TABLE_COLUMNS, *schema.DERIVED_TABLES}
    assert usage[schema.LOGS].rows == len(records.LOG_ROWS)
    assert usage[schema.TRACES].rows == 10
    assert all(usage[t].rows == 1 for t in schema.METRIC_TABLES)
    assert usage[schema.EVENTS].rows == 0
    assert usage[schema.LOGS].bytes > 0 and usage[schema.TRACES].bytes > 0
    assert usage[schema.LOGS].stored_rows >= usage[schema.LOGS].rows
    assert 0 < usage[schema.LOGS].live_bytes <= usage[schema.LOGS].bytes


def test_live_bytes_drop_as_soon_as_rows_are_deleted(store):
    store.write(records.everything(), lsn=1)
    before = store.usage()[schema.LOGS]
    store.delete_older_than("logs", T0 + 60 * S)  # 5 of the 9 log records
    after = store.usage()[schema.LOGS]
    assert after.rows == 4
    # the engine may keep the deleted rows' bytes for a while; the live estimate does not
    assert after.live_bytes < before.live_bytes
    assert after.live_bytes <= after.bytes * 4 // max(after.stored_rows, 1) + 1


def test_rows_per_bucket_counts_each_signal_in_its_bucket(loaded):
    dialect = for_store(loaded.dialect)
    counts = bucket_counts(run(loaded, rows_per_bucket(dialect, 60 * S)))
    totals: dict[str, int] = {}
    for signal, bucket, n in counts:
        assert bucket % (60 * S) == 0
        totals[signal] = totals.get(signal, 0) + n
    assert totals == {"logs": len(records.LOG_ROWS), "spans": 10, "metrics": 5}
    assert ("logs", T0 + 120 * S, 2) in counts  # the records at 130 s and 135 s
    assert [b for _, b, _ in counts] == sorted(b for _, b, _ in counts)


def test_rows_per_bucket_from_a_start_leaves_older_rows_out(loaded):
    dialect = for_store(loaded.dialect)
    counts = bucket_counts(run(loaded, rows_per_bucket(dialect, 60 * S, T0 + 130 * S)))
    logs = sum(n for s, _, n in counts if s == "logs")
    assert logs == 2


def test_rows_per_service_counts_each_service_of_each_signal(loaded):
    counts = service_counts(run(loaded, rows_per_service(for_store(loaded.dialect))))
    assert counts["logs"] == {"web": 5, "checkout": 2, "payments": 2}
    assert sum(counts["spans"].values()) == 10
    assert sum(counts["metrics"].values()) == 5


def _logs_at(start_ns: int, n: int) -> list:
    return [records.log(start_ns + i * S, records.WEB, "INFO", 9, f"request {i} " + "x" * 200, {"i": str(i)})
            for i in range(n)]  # fmt: skip


def test_the_disk_budget_deletes_the_oldest_hours_first(backend, tmp_path):
    store = backend.open()
    old, new = _logs_at(T0, 300), _logs_at(T0 + 5 * 3600 * S, 300)
    store.write(Batch(logs=old + new), lsn=1)
    used = used_bytes(store.usage())
    settings = Settings(data_dir=str(tmp_path), max_disk_bytes=int(used * 0.6))
    retention = Retention(store, for_store(store.dialect), settings, FakeClock(T0 + 6 * 3600 * S),
                          RetentionOverrides(tmp_path / "retention.json"))  # fmt: skip
    retention.run()
    dialect = for_store(store.dialect)
    left = bucket_counts(run(store, rows_per_bucket(dialect, HOUR_NS)))
    assert left == [("logs", T0 + 5 * 3600 * S, 300)]  # the old hour went, the new one stayed
    after = store.usage()
    assert signal_usage(after)["logs"]["rows"] == 300
    assert used_bytes(after) < used


def test_the_disk_budget_leaves_a_store_under_it_alone(backend, tmp_path):
    store = backend.open()
    store.write(Batch(logs=_logs_at(T0, 50)), lsn=1)
    settings = Settings(data_dir=str(tmp_path), max_disk_bytes=10 * 2**30)
    Retention(store, for_store(store.dialect), settings, FakeClock(T0 + 3600 * S),
              RetentionOverrides(tmp_path / "retention.json")).run()  # fmt: skip
    assert store.usage()[schema.LOGS].rows == 50


def test_the_budget_cutoff_takes_whole_hours_oldest_first_across_signals():
    h = HOUR_NS
    buckets = [("logs", 0, 10), ("metrics", 0, 100), ("spans", h, 10), ("logs", 2 * h, 10)]
    per_row = {"logs": 10.0, "spans": 20.0, "metrics": 1.0}
    assert budget_cutoff(buckets, per_row, 150) == h  # hour 0 holds 100 + 100 bytes
    assert budget_cutoff(buckets, per_row, 201) == 2 * h  # hour 1 adds 200
    assert budget_cutoff(buckets, per_row, 10**9) == 3 * h  # not enough anywhere: all of it
    assert budget_cutoff([], per_row, 1) is None
