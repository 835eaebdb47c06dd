"""Retention removes exactly the records older than the cutoff, per signal."""

from __future__ import annotations

import pytest

from conformance import records
from conformance.backends import run
from koban.query.dialects import Statement
from koban.store import schema

T0, S = records.T0, records.S


def _count(store, table):
    return int(run(store, Statement(f"SELECT count(*) AS n FROM {table}", {})).rows[0][0])


def test_retention_removes_only_the_signal_older_than_the_cutoff(store):
    store.write(records.everything(), lsn=1)
    removed = store.delete_older_than("logs", T0 + 60 * S)
    assert removed in (5, -1)  # -1: the backend cannot say how many (ClickHouse)
    assert _count(store, schema.LOGS) == 4
    assert _count(store, schema.TRACES) == 10  # other signals untouched


def test_retention_of_metrics_covers_every_metric_table(store):
    store.write(records.everything(), lsn=1)
    store.delete_older_than("metrics", T0 + 29 * S)  # the points are at T0 + 30 s
    assert all(_count(store, t) == 1 for t in schema.METRIC_TABLES)
    store.delete_older_than("metrics", T0 + 31 * S)
    assert all(_count(store, t) == 0 for t in schema.METRIC_TABLES)
    store.delete_older_than("spans", T0 + 600 * S)
    assert _count(store, schema.TRACES) == 0


def test_retention_refuses_an_unknown_signal(loaded):
    with pytest.raises(ValueError, match="unknown signal"):
        loaded.delete_older_than("events", T0)


def test_disk_bytes_is_a_count_of_bytes(loaded):
    # DuckDB in a file and ClickHouse's parts both take room once data is written
    assert loaded.disk_bytes() > 0
