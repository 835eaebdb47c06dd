"""Time series (query.timeseries) give the same numbers on every backend."""

from __future__ import annotations

import pytest

from conformance import records
from conformance.backends import run
from koban.query.dialects import for_store
from koban.query.parse import parse
from koban.query.timeseries import SeriesQuery, compile_series, series_result

START, END, S = records.START, records.END, records.S
MINUTE = 60 * S


def _series(store, source, agg, text="", by=()):
    q = SeriesQuery(source, parse(text), START, END, MINUTE, agg, tuple(by))
    out = series_result(run(store, compile_series(q, for_store(store.dialect))), q)
    return {tuple(s["labels"].values()): [v for _, v in s["points"]][:4] for s in out["series"]}


def _approx(values):
    return [None if v is None else pytest.approx(v, rel=1e-9) for v in values]


# First four 1-minute buckets. Logs: 5, 2, 2 records, errors 2, 0, 1. Spans: 5 (10 20
# 35e 40 250 ms), 3 (3 80 120 ms), none, 2 (100 300e ms).
CASES = [
    ("logs", "count", [5, 2, 2, 0]),
    ("logs", "errors", [2, 0, 1, 0]),
    ("logs", "error_rate", [0.4, 0.0, 0.5, None]),
    ("logs", "rate", [5 / 60, 2 / 60, 2 / 60, 0]),
    ("spans", "count", [5, 3, 0, 2]),
    ("spans", "errors", [1, 0, 0, 1]),
    ("spans", "error_rate", [0.2, 0.0, None, 0.5]),
    ("spans", "rate", [5 / 60, 3 / 60, 0, 2 / 60]),
    ("spans", "p50", [35.0, 80.0, None, 200.0]),
    ("spans", "p75", [40.0, 100.0, None, 250.0]),
    ("spans", "p90", [166.0, 112.0, None, 280.0]),
    ("spans", "p95", [208.0, 116.0, None, 290.0]),
    ("spans", "p99", [241.6, 119.2, None, 298.0]),
    ("spans", "avg", [71.0, 203 / 3, None, 200.0]),
    ("spans", "max", [250.0, 120.0, None, 300.0]),
    ("spans", "min", [10.0, 3.0, None, 100.0]),
]


@pytest.mark.parametrize(("source", "agg", "expected"), CASES, ids=[f"{s}-{a}" for s, a, _ in CASES])
def test_each_aggregation_gives_the_same_values(loaded, source, agg, expected):
    assert _series(loaded, source, agg) == {(): _approx(expected)}


def test_grouping_by_one_field_gives_the_same_series(loaded):
    assert _series(loaded, "spans", "p50", by=["service"]) == {
        ("api",): _approx([35.0, 61.5, None, None]),
        ("db",): [None, 80.0, None, None],
        ("worker",): [None, None, None, 200.0],
    }
    assert _series(loaded, "logs", "errors", "service:web OR service:payments", by=["service"]) == {
        ("payments",): [1, 0, 0, 0], ("web",): [1, 0, 1, 0]}  # fmt: skip


def test_grouping_by_two_fields_gives_the_same_series(loaded):
    assert _series(loaded, "spans", "count", by=["service", "@http.status_code"]) == {
        ("api", "(none)"): [0, 2, 0, 0],
        ("api", "200"): [4, 0, 0, 0],
        ("api", "500"): [1, 0, 0, 0],
        ("db", "(none)"): [0, 1, 0, 0],
        ("worker", "(none)"): [0, 0, 0, 2],
    }
    assert _series(loaded, "logs", "count", by=["service", "status"]) == {
        ("checkout", "warn"): [2, 0, 0, 0],
        ("payments", "(none)"): [0, 1, 0, 0],
        ("payments", "fatal"): [1, 0, 0, 0],
        ("web", "debug"): [0, 1, 0, 0],
        ("web", "error"): [1, 0, 1, 0],
        ("web", "info"): [1, 0, 1, 0],
    }
