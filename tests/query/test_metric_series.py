"""The metric series compiler's pure parts: defaults per metric type, which table wins,
quantiles from merged buckets, and that no user text reaches SQL unbound."""

from __future__ import annotations

import math
import random

import pytest

from koban.errors import BadRequest
from koban.ingest.sketch import ExpHistogram
from koban.query import metric_series as ms
from koban.query.dialects import CLICKHOUSE, DUCKDB
from koban.query.metric_query import parse_metric_query
from koban.query.metric_result import exp_quantile, histogram_quantile
from koban.store import schema

S = 1_000_000_000


def test_defaults_follow_the_metric_type():
    q = ms.MetricSeriesQuery("m", parse_metric_query("m{*}").filter, 0, 60 * S, 60 * S)
    gauge = q.resolved(ms.MetricKind(schema.GAUGE))
    counter = q.resolved(ms.MetricKind(schema.SUM, cumulative=True, monotonic=True))
    updown = q.resolved(ms.MetricKind(schema.SUM, cumulative=True, monotonic=False))
    assert (gauge.space, gauge.rollup, gauge.mode) == ("avg", "avg", None)
    assert (counter.space, counter.rollup, counter.mode) == ("sum", "sum", "count")
    assert (updown.space, updown.rollup, updown.mode) == ("avg", "avg", None)  # an UpDownCounter reads as a gauge
    assert q._replace(space="max", mode="rate").resolved(ms.MetricKind(schema.SUM)).space == "max"


def test_the_table_with_most_points_wins_and_the_others_are_named():
    rows = [(schema.GAUGE, 3, 0, 0), (schema.SUM, 3, 2, 1.0), (schema.HISTOGRAM, 0, None, 0)]
    kind = ms.choose_kind(rows)
    assert (kind.table, kind.also_in) == (schema.GAUGE, ("sum",))  # a tie goes to gauge
    kind = ms.choose_kind([(schema.GAUGE, 1, 0, 0), (schema.SUM, 5, 2, 1.0)])
    assert (kind.type, kind.cumulative, kind.monotonic, kind.behaves) == ("sum", True, True, "counter")
    assert ms.choose_kind([(t, 0, None, None) for t in ms.TYPES]) is None


def test_what_a_type_cannot_answer_is_a_400():
    q = ms.MetricSeriesQuery("m", parse_metric_query("m{*}").filter, 0, S, S, space="p99", rollup="sum")
    with pytest.raises(BadRequest, match="not available for a summary"):
        ms.compile_metric_series(q, ms.MetricKind(schema.SUMMARY), DUCKDB)
    with pytest.raises(BadRequest, match="agg must be one of"):
        ms.check_names(q._replace(space="median"))


HOSTILE = ["x'; DROP TABLE otel_metrics_gauge; --", 'a"b', "\\'", "{evil:String}", "$evil"]


@pytest.mark.parametrize("dialect", [DUCKDB, CLICKHOUSE], ids=["duckdb", "clickhouse"])
@pytest.mark.parametrize("kind", [ms.MetricKind(t, cumulative=c, monotonic=True) for t in ms.TYPES
                                  if t != schema.SUMMARY for c in (False, True)])  # fmt: skip
@pytest.mark.parametrize("space", ["avg", "p99"])
def test_user_text_only_reaches_sql_as_bound_values(dialect, kind, space):
    for text in HOSTILE:
        filt = parse_metric_query("m{tag:v}").filter._replace(value=text)
        q = ms.MetricSeriesQuery(text, filt, 0, 600 * S, 60 * S, by=("zone",), space=space).resolved(kind)
        stmt = ms.compile_metric_series(q, kind, dialect)
        lookup = ms.compile_lookup(text, 0, 600 * S, dialect)
        for sql, params in (stmt, lookup):
            assert text not in sql
            assert text in params.values()


def test_histogram_quantile_interpolates_like_prometheus():
    cells = [(10.0, 1.0), (100.0, 2.0), (1000.0, 1.0), (None, 0.0)]
    assert histogram_quantile(0.5, cells) == 55.0
    assert histogram_quantile(0.0, cells) == 0.0
    assert histogram_quantile(1.0, cells) == 1000.0
    assert histogram_quantile(0.99, [(10.0, 1.0), (None, 3.0)]) == 10.0  # in +Inf: the highest finite bound
    assert histogram_quantile(0.5, [(10.0, 0.0), (None, 0.0)]) is None


def test_exp_quantile_reads_merged_cells_within_one_percent():
    rng = random.Random(7)
    values = sorted(rng.lognormvariate(3, 1.5) for _ in range(5000))
    h = ExpHistogram()
    for v in values:
        h.add(v)
    f = h.fields()
    cells = {(1, f["positive_offset"] + i): float(c) for i, c in enumerate(f["positive_bucket_counts"]) if c}
    for q in (0.5, 0.9, 0.99):
        exact = values[math.ceil(q * len(values)) - 1]
        assert exp_quantile(q, f["scale"], cells, f["min"], f["max"]) == pytest.approx(exact, rel=0.01)
    assert exp_quantile(0.5, 7, {}, None, None) is None
