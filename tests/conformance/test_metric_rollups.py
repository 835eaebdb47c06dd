"""Metric queries read from the 1-minute rollups answer exactly what the raw points
answer: every gauge and delta-counter query, at several intervals and unaligned
ranges, with several points per series and minute, and after late points. A backend
without rollups (ClickHouse today) says so and is read raw."""

from __future__ import annotations

import random

import pytest

from conformance import records
from conformance.backends import NAMES, backend_for, run
from koban.model import Batch, GaugePoint, SumPoint
from koban.query import metric_series as ms
from koban.query.dialects import for_store
from koban.query.metric_query import parse_metric_query
from koban.query.metric_result import metric_series_result

START, END, S, T0 = records.START, records.END, records.S, records.T0
MINUTE = 60 * S
DELTA = 1  # OTLP AggregationTemporality


def _random_points(seed: int = 7) -> Batch:
    """`load.avg` gauges and `jobs.run` delta counters: 12 series over 4 zones, 0-4
    points per series and minute at random seconds, for the 10 minutes of the range."""
    rnd = random.Random(seed)
    gauges, sums = [], []
    for n in range(12):
        resource = records.WEB if n % 2 else records.DB
        g_stream, s_stream = records._stream("load.avg", resource), records._stream("jobs.run", resource)
        attrs = {"host": f"h{n}", "zone": f"z{n % 4}"}
        for minute in range(10):
            for _ in range(rnd.randrange(0, 5)):
                t = T0 + minute * MINUTE + rnd.randrange(0, 60) * S
                gauges.append(GaugePoint(g_stream, attrs, 0, t, round(rnd.uniform(0, 100), 3)))
                sums.append(SumPoint(s_stream, attrs, t - S, t, float(rnd.randrange(1, 9)), DELTA, True))
    return Batch(gauges=gauges, sums=sums)


@pytest.fixture(scope="module", params=NAMES)
def rstore(request, tmp_path_factory):
    b = backend_for(request.param, request, tmp_path_factory.mktemp(f"rollups-{request.param}"))
    store = b.open()
    store.write(records.metric_series_batch(), lsn=1)
    store.write(_random_points(), lsn=2)
    store.roll_up_metrics(END + MINUTE)
    yield store
    b.close()


def query(store, text, *, rolled: bool, start=START, end=END, interval=MINUTE):
    mq = parse_metric_query(text)
    dialect = for_store(store.dialect)
    q = ms.MetricSeriesQuery(mq.metric, mq.filter, start, end, interval, mq.by, mq.space, mq.rollup, mq.mode)
    kind = ms.choose_kind(run(store, ms.compile_lookup(mq.metric, start, end, dialect)).rows)
    q = q.resolved(kind)
    until = store.metric_rollups_until_ns() if rolled else None
    stmt = ms.compile_metric_series(q, kind, dialect, until)
    return metric_series_result(run(store, stmt, max_rows=1_000_000), q, kind), stmt


def _same(a: dict, b: dict) -> None:
    def flat(out):
        return {tuple(s["labels"].items()): [v for _, v in s["points"]] for s in out["series"]}

    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for key, points in fa.items():
        assert points == [None if v is None else pytest.approx(v, rel=1e-9) for v in fb[key]], key


QUERIES = [
    "avg:load.avg{*}",
    "avg:load.avg{*} by {zone}",
    "max:load.avg{*} by {service}",
    "min:load.avg{zone:z1}.rollup(min)",
    "sum:load.avg{!zone:z2} by {host}.rollup(max)",
    "count:load.avg{*} by {zone}",
    "sum:load.avg{*}.rollup(count)",
    "p90:load.avg{*}",  # a gauge's percentile: read raw
    "sum:jobs.run{*} by {zone}",
    "sum:jobs.run{*}.as_rate()",
    "max:jobs.run{zone:z3}.rollup(avg)",
    "p50:jobs.run{*}",
    "avg:sys.cpu{*} by {host}",
    "sum:jobs.done{*}",
    "sum:http_requests_total{*}",  # cumulative: read raw
]
RANGES = [
    (START, END, MINUTE),
    (START, END, 2 * MINUTE),
    (START + 30 * S, END - 20 * S, MINUTE),  # minutes cut at both ends
    (START + 30 * S, END, 3 * MINUTE),
    (START, END, 90 * S),  # not whole minutes: read raw
]


@pytest.mark.parametrize("text", QUERIES)
@pytest.mark.parametrize(("start", "end", "interval"), RANGES, ids=["1m", "2m", "cut-1m", "cut-3m", "90s"])
def test_rollups_answer_what_raw_points_answer(rstore, text, start, end, interval):
    raw, raw_stmt = query(rstore, text, rolled=False, start=start, end=end, interval=interval)
    rolled, rolled_stmt = query(rstore, text, rolled=True, start=start, end=end, interval=interval)
    _same(rolled, raw)
    assert any(p[1] is not None for s in raw["series"] for p in s["points"]), "the query must find data"
    if rstore.metric_rollups_until_ns() is None:
        assert rolled_stmt.sql == raw_stmt.sql
    else:
        reads_rollups = "koban_metric_rollup_1m" in rolled_stmt.sql
        raw_only = interval % MINUTE or text.startswith("p90:load") or "http_requests_total" in text
        assert reads_rollups == (not raw_only)


def test_a_late_point_is_read_raw_until_its_minute_is_rolled_again(rstore):
    if rstore.metric_rollups_until_ns() is None:
        assert rstore.roll_up_metrics(END + MINUTE) == 0
        pytest.skip(f"{rstore.dialect} keeps no rollups")
    until = rstore.metric_rollups_until_ns()
    assert until >= END
    late = GaugePoint(records._stream("load.avg", records.WEB), {"host": "h1", "zone": "z1"}, 0, T0 + 150 * S, 1e6)
    rstore.write(Batch(gauges=[late]), lsn=3)
    assert rstore.metric_rollups_until_ns() == T0 + 2 * MINUTE  # the late point's minute
    for text in ("avg:load.avg{*} by {zone}", "max:load.avg{*}"):
        _same(query(rstore, text, rolled=True)[0], query(rstore, text, rolled=False)[0])
    assert rstore.roll_up_metrics(END + MINUTE) > 0
    assert rstore.metric_rollups_until_ns() == until
    out, stmt = query(rstore, "max:load.avg{*}", rolled=True)
    assert "koban_metric_rollup_1m" in stmt.sql
    assert [v for _, v in out["series"][0]["points"]][2] == 1e6
    _same(out, query(rstore, "max:load.avg{*}", rolled=False)[0])


@pytest.mark.parametrize("metric", ["load.avg", "jobs.run", "sys.cpu", "jobs.done", "http_requests_total"])
@pytest.mark.parametrize(("start", "end"), [(START, END), (START + 90 * S, START + 200 * S)], ids=["all", "cut"])
def test_the_tag_picker_reads_the_same_tags_from_rollups(rstore, metric, start, end):
    from koban.query import metric_catalog as mc

    dialect = for_store(rstore.dialect)
    raw = mc.tags_result(run(rstore, mc.tags(dialect, metric, start, end)))
    rolled_stmt = mc.tags(dialect, metric, start, end, rstore.metric_rollups_until_ns())
    assert mc.tags_result(run(rstore, rolled_stmt)) == raw
    if start == START:
        assert raw["tags"], "the metric must have tags"
    assert ("koban_metric_series" in rolled_stmt.sql) == (rstore.metric_rollups_until_ns() is not None)
