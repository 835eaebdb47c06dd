"""Metric time series (query.metric_series) give the same, hand-checked numbers on
every backend: gauges, delta and cumulative counters (with resets), explicit and
exponential histograms, and a metric name held by two tables."""

from __future__ import annotations

import math

import pytest

from conformance import records
from conformance.backends import NAMES, backend_for, run
from koban.model import Batch, GaugePoint
from koban.query import metric_series as ms
from koban.query.dialects import for_store
from koban.query.metric_query import parse_metric_query
from koban.query.metric_result import metric_series_result

START, END, S, T0 = records.START, records.END, records.S, records.T0
MINUTE = 60 * S


@pytest.fixture(scope="module", params=NAMES)
def mstore(request, tmp_path_factory):
    """One store per backend holding records.metric_series_batch(), plus one gauge
    point of `jobs.done` (a name also held by the sum table)."""
    b = backend_for(request.param, request, tmp_path_factory.mktemp(f"metrics-{request.param}"))
    store = b.open()
    store.write(records.metric_series_batch(), lsn=1)
    stray = GaugePoint(records._stream("jobs.done", records.WEB), {}, 0, T0 + 15 * S, 99.0)
    store.write(Batch(gauges=[stray]), lsn=2)
    yield store
    b.close()


def query(store, text, start=START, end=END, interval=MINUTE):
    mq = parse_metric_query(text)
    dialect = for_store(store.dialect)
    q = ms.MetricSeriesQuery(mq.metric, mq.filter, start, end, interval, mq.by, mq.space, mq.rollup, mq.mode)
    found = run(store, ms.compile_lookup(mq.metric, start, end, dialect))
    kind = ms.choose_kind(found.rows)
    if kind is None:
        return metric_series_result(found._replace(rows=[]), q, None)
    q = q.resolved(kind)
    return metric_series_result(run(store, ms.compile_metric_series(q, kind, dialect), max_rows=1_000_000), q, kind)


def values(out, n=3):
    return {tuple(s["labels"].values()): [v for _, v in s["points"]][:n] for s in out["series"]}


def approx(xs):
    return [None if x is None else pytest.approx(x, rel=1e-9) for x in xs]


# --- gauges: per-series rollup (avg by default), then across series ------------------

GAUGES = [
    ("avg:sys.cpu{*}", {(): approx([155 / 3, 30.0, None])}),
    ("sys.cpu{*}", {(): approx([155 / 3, 30.0, None])}),  # avg is the default
    ("max:sys.cpu{*} by {service}", {("db",): [100.0, None, None], ("web",): [40.0, 30.0, None]}),
    ("avg:sys.cpu{*} by {host}", {("(none)",): [100.0, None, None], ("h1",): [15.0, 30.0, None],
                                  ("h2",): [40.0, None, None]}),  # fmt: skip
    ("p50:sys.cpu{*}", {(): approx([30.0, 30.0, None])}),  # of the values 10 20 40 100
    ("count:sys.cpu{*}", {(): [3, 1, None]}),  # series reporting
    ("avg:sys.cpu{host:h1}", {(): [15.0, 30.0, None]}),
    ("avg:sys.cpu{!service:db}", {(): [27.5, 30.0, None]}),
    ("avg:sys.cpu{env:prod,core:0}", {(): [27.5, 30.0, None]}),
    ("avg:sys.cpu{host:h*}", {(): [27.5, 30.0, None]}),
    ("avg:sys.cpu{*}.rollup(max)", {(): approx([160 / 3, 30.0, None])}),
    ("sum:sys.cpu{*}.rollup(count)", {(): [4.0, 1.0, None]}),
]


@pytest.mark.parametrize(("text", "expected"), GAUGES, ids=[t for t, _ in GAUGES])
def test_gauges_roll_up_per_series_then_aggregate_across(mstore, text, expected):
    out = query(mstore, text)
    assert out["metric_type"] == "gauge"
    assert values(out) == expected


# --- counters ----------------------------------------------------------------------


def test_delta_counters_count_by_default_and_rate_on_request(mstore):
    out = query(mstore, "sum:jobs.done{*}")
    assert (out["metric_type"], out["also_in"], out["mode"]) == ("sum", ["gauge"], "count")
    assert values(out) == {(): [12.0, 3.0, None]}
    assert values(query(mstore, "sum:jobs.done{*}.as_rate()")) == {(): approx([0.2, 0.05, None])}
    assert values(query(mstore, "sum:jobs.done{*} by {host}")) == {("h1",): [12.0, None, None],
                                                                   ("h2",): [None, 3.0, None]}  # fmt: skip


def test_cumulative_counters_become_increases_with_resets(mstore):
    # a: 90 (before the range), 100, 110 | 130, 5 (reset) | 25; b (started in range): 7 | 9
    assert values(query(mstore, "sum:http_requests_total{*}"), 4) == {(): [27.0, 27.0, 20.0, None]}
    assert values(query(mstore, "sum:http_requests_total{code:200} by {host}"), 4) == {
        ("(none)",): [20.0, 25.0, 20.0, None],
        ("h9",): [7.0, 2.0, None, None],
    }


def test_a_range_starting_later_still_knows_the_previous_point(mstore):
    out = query(mstore, "sum:http_requests_total{*}", start=START + MINUTE)
    assert values(out, 2) == {(): [27.0, 20.0]}


# --- histograms ----------------------------------------------------------------------


def test_explicit_histograms_interpolate_within_the_bucket(mstore):
    # minute 0: counts 1 2 1 0 over (0,10] (10,100] (100,1000] +Inf; minute 1: + 0 2 2 0
    assert values(query(mstore, "p50:rpc.latency{*}")) == {(): approx([55.0, 100.0, None])}
    assert values(query(mstore, "p99:rpc.latency{*}")) == {(): approx([964.0, 982.0, None])}
    assert values(query(mstore, "avg:rpc.latency{*}")) == {(): approx([75.0, 150.0, None])}
    assert values(query(mstore, "count:rpc.latency{*}")) == {(): [4.0, 4.0, None]}
    assert values(query(mstore, "sum:rpc.latency{*}.as_rate()")) == {(): approx([5.0, 10.0, None])}


def test_summaries_answer_count_sum_and_avg_of_their_increases(mstore):
    assert values(query(mstore, "count:rpc.summary{*}")) == {(): [4.0, 6.0, None]}
    assert values(query(mstore, "sum:rpc.summary{*}")) == {(): [40.0, 90.0, None]}
    assert values(query(mstore, "rpc.summary{*}")) == {(): approx([10.0, 15.0, None])}  # avg by default


def _exact(sorted_values, q):
    return sorted_values[max(1, math.ceil(q * len(sorted_values))) - 1]


@pytest.mark.parametrize("agg", ["p50", "p90", "p95", "p99"])
def test_exponential_percentiles_over_hosts_stay_within_one_percent(mstore, agg):
    raw = sorted(v for host in range(3) for v in records.timer_values(host))
    got = values(query(mstore, f"{agg}:checkout.time{{*}}"), 1)[()][0]
    assert got == pytest.approx(_exact(raw, int(agg[1:]) / 100), rel=0.01)
    by_host = values(query(mstore, f"{agg}:checkout.time{{*}} by {{host}}"), 1)
    for host in range(3):
        own = sorted(records.timer_values(host))
        assert by_host[(f"t{host}",)][0] == pytest.approx(_exact(own, int(agg[1:]) / 100), rel=0.01)


@pytest.mark.parametrize("agg", ["p50", "p99"])
def test_cumulative_exponential_histograms_become_increases_across_scales(mstore, agg):
    first, second = sorted(records.timer_values(3)), sorted(records.timer_values(4))
    got = values(query(mstore, f"{agg}:queue.wait{{*}}"), 2)[()]
    q = int(agg[1:]) / 100
    # minute 1 holds only what was added since the previous point, read at the coarser scale
    assert got[0] == pytest.approx(_exact(first, q), rel=0.01)
    assert got[1] == pytest.approx(_exact(second, q), rel=0.011)
    assert values(query(mstore, "count:queue.wait{*}"), 2) == {(): [600.0, 600.0]}


def test_exponential_avg_and_count_are_exact(mstore):
    raw = [v for host in range(3) for v in records.timer_values(host)]
    assert values(query(mstore, "avg:checkout.time{*}"), 1) == {(): approx([sum(raw) / len(raw)])}
    assert values(query(mstore, "count:checkout.time{*}"), 1) == {(): [1800.0]}


def test_an_unknown_metric_answers_one_empty_series(mstore):
    out = query(mstore, "avg:no.such.metric{*}")
    assert out["metric_type"] is None
    assert values(out, 10) == {(): [None] * 10}


# --- the metric picker's reads ------------------------------------------------------


def test_names_are_searched_case_insensitively_one_entry_per_type(mstore):
    from koban.query import metric_catalog as mc

    out = mc.names_result(run(mstore, mc.names(for_store(mstore.dialect), "JOBS", START, END, 10)))
    assert out == {"metrics": [{"name": "jobs.done", "type": "gauge", "unit": "", "description": ""},
                               {"name": "jobs.done", "type": "sum", "unit": "", "description": ""}]}  # fmt: skip
    everything = mc.names_result(run(mstore, mc.names(for_store(mstore.dialect), "", START, END, 3)))
    assert [m["name"] for m in everything["metrics"]] == ["checkout.time", "http_requests_total", "jobs.done"]


def test_tags_use_the_keys_users_filter_by(mstore):
    from koban.query import metric_catalog as mc

    out = mc.tags_result(run(mstore, mc.tags(for_store(mstore.dialect), "sys.cpu", START, END)))
    assert out == {"tags": {"core": ["0"], "env": ["prod"], "host": ["h1", "h2"], "service": ["web", "db"]}}
