"""The series cap per metric (pipeline/limits.py), without a server: idle series are
forgotten, and the number of metrics tracked is bounded."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.model import EMPTY_SCOPE, Batch, GaugePoint, MetricColumns, MetricStream, Resource
from koban.pipeline.limits import TOO_MANY_METRICS, Offender, SeenIds, SeriesLimiter

WEB = Resource("web", {"service.name": "web"})


def _points(metric: str, *pods: str, resource: Resource = WEB) -> Batch:
    stream = MetricStream(metric, "", "1", resource, EMPTY_SCOPE)
    return Batch(gauges=[GaugePoint(stream, {"pod": pod}, 0, 1, 1.0) for pod in pods])


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_known_series_pass_and_new_ones_over_the_cap_are_dropped_and_counted():
    dropped: list[int] = []
    limiter = SeriesLimiter(2, on_drop=dropped.append)
    first = _points("up", "a", "b")
    assert limiter.admit(first) is first
    kept = limiter.admit(_points("up", "a", "c", "b"))
    assert [p.attributes["pod"] for p in kept.gauges] == ["a", "b"]
    assert dropped == [1]
    assert limiter.top() == [Offender("up", 2, 1)]


def test_the_same_attributes_from_another_resource_are_another_series():
    limiter = SeriesLimiter(1)
    limiter.admit(_points("up", "a"))
    other = Resource("api", {"service.name": "api"})
    assert limiter.admit(_points("up", "a", resource=other)).gauges == []


def test_a_series_unseen_for_the_idle_window_is_forgotten():
    clock = FakeTime()
    limiter = SeriesLimiter(1, idle_s=100, prune_every_s=10, monotonic=clock)
    limiter.admit(_points("up", "old"))
    clock.now = 50
    assert limiter.admit(_points("up", "new")).gauges == []  # "old" still counts
    clock.now = 200
    assert len(limiter.admit(_points("up", "new")).gauges) == 1  # "old" was pruned first
    assert limiter.tracked_series == 1


def test_metric_names_past_the_tracking_bound_are_dropped_under_one_name():
    limiter = SeriesLimiter(10, max_metrics=2)
    for name in ("m1", "m2", "m3", "m4"):
        limiter.admit(_points(name, "a"))
    assert {o.metric: o.dropped for o in limiter.top()}[TOO_MANY_METRICS] == 2
    assert limiter.tracked_series == 2


def test_zero_means_no_cap():
    batch = _points("up", *[str(i) for i in range(100)])
    assert SeriesLimiter(0).admit(batch) is batch


# --- points held per series (Prometheus remote write's MetricColumns) -------------------


def _remote_write(metric: str, *pods: str, samples: int = 1) -> Batch:
    return _remote_write_series([(metric, pod) for pod in pods], samples)


def _remote_write_series(series: list[tuple[str, str]], samples: int = 1) -> Batch:
    """A remote write request of `series` (metric, pod), decoded: MetricColumns."""
    from koban.ingest import prom_remote_write

    req = prom_remote_write.MESSAGES["WriteRequest"]()
    for step in range(samples):
        for metric, pod in series:
            ts = req.timeseries.add()
            ts.labels.add(name="__name__", value=metric)
            ts.labels.add(name="pod", value=pod)
            ts.samples.add(value=1.0, timestamp=1_767_225_600_000 + step * 15_000)
    batch = prom_remote_write.decode(req.SerializeToString(), 0)
    assert batch.metric_columns and not batch.gauges  # the columnar path
    return batch


def _pods(batch: Batch) -> list[str]:
    return [p.attributes["pod"] for p in batch.with_metric_points().gauges]


def test_series_held_in_columns_are_capped_per_metric_and_their_points_counted():
    dropped: list[int] = []
    limiter = SeriesLimiter(2, on_drop=dropped.append)
    first = _remote_write("up", "a", "b")
    assert limiter.admit(first) is first

    kept = limiter.admit(_remote_write("up", "a", "c", "b", "d", samples=2))

    assert _pods(kept) == ["a", "b", "a", "b"]
    assert dropped == [4]  # two new series, two points each
    assert limiter.top() == [Offender("up", 2, 4)]


def test_prepared_columns_are_capped_like_columns():
    from koban.store.columns import prepare_metrics

    limiter = SeriesLimiter(2)
    limiter.admit(_remote_write("up", "a"))
    prepared = prepare_metrics(_remote_write("up", "b", "c", "a"))

    kept = limiter.admit(prepared)

    assert kept.metric_points == 2 and limiter.tracked_series == 2
    (columns,) = kept.metric_columns
    assert columns.series.column("Attributes").to_pylist() == [[("pod", "b")], [("pod", "a")]]
    assert columns.points.column("Series").to_pylist() == [0, 1]


def test_a_column_series_is_remembered_and_forgotten_when_idle_like_a_point_series():
    clock = FakeTime()
    limiter = SeriesLimiter(1, idle_s=60, prune_every_s=10, monotonic=clock)
    limiter.admit(_remote_write("up", "a"))
    assert limiter.admit(_remote_write("up", "b")).metric_points == 0
    clock.now = 100.0
    assert _pods(limiter.admit(_remote_write("up", "b"))) == ["b"]


def test_a_column_series_sent_again_stays_remembered_past_its_first_idle_window():
    clock = FakeTime()
    limiter = SeriesLimiter(1, idle_s=60, prune_every_s=10, monotonic=clock)
    limiter.admit(_remote_write("up", "a"))
    clock.now = 50.0
    assert _pods(limiter.admit(_remote_write("up", "a"))) == ["a"]  # all known: stamped at 50
    clock.now = 100.0
    assert limiter.admit(_remote_write("up", "b")).metric_points == 0
    assert limiter.tracked_series == 1


_series = st.tuples(st.sampled_from(["m1", "m2", "m3"]), st.sampled_from(["a", "b", "c", "d", "e"]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(_series, min_size=1, max_size=10), min_size=1, max_size=6), st.booleans(), st.integers(1, 2))
def test_columns_are_capped_as_the_same_points_one_by_one_would_be(requests, prepared, samples):
    # several metrics per request, some over the cap, one past the number of metrics
    # tracked: the columns' path (grouped by metric, the known series in one lookup)
    # keeps and counts what the per-point path does with the same points
    from koban.store.columns import prepare_metrics

    by_columns, by_points = SeriesLimiter(3, max_metrics=2), SeriesLimiter(3, max_metrics=2)
    for series in requests:
        batch = _remote_write_series(series, samples)
        kept = by_columns.admit(prepare_metrics(batch) if prepared else batch)
        expected = by_points.admit(batch.with_metric_points())

        assert _metric_points(kept) == _metric_points(expected)
        assert by_columns.top() == by_points.top()


def _metric_points(batch: Batch) -> list[tuple[str, str]]:
    """(metric, pod) of each metric point of `batch`, sorted: points, MetricColumns or
    prepared columns alike."""
    out = [(p.stream.name, p.attributes["pod"]) for p in batch.gauges]
    for c in batch.metric_columns:
        if isinstance(c, MetricColumns):
            out += [(p.stream.name, p.attributes["pod"]) for p in c.points()]
        else:
            names = c.streams.column("MetricName").take(c.series.column("Stream")).to_pylist()
            pods = [dict(a)["pod"] for a in c.series.column("Attributes").to_pylist()]
            out += [(names[i], pods[i]) for i in c.points.column("Series").to_pylist()]
    return sorted(out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "stamp", "stamp known", "forget"]),
                          st.lists(st.integers(0, 12), max_size=6)), max_size=12))
def test_seen_ids_answer_as_a_dict_of_last_seen_times_would(steps):
    seen, model = SeenIds(), {}
    for now, (op, ids) in enumerate(steps):
        array = np.array(ids, np.uint64)
        if op == "add":
            seen.add(array, float(now))
            model.update(dict.fromkeys(ids, float(now)))
        elif op == "stamp known":
            assert seen.stamp_known(array, float(now)).tolist() == [i in model for i in ids]
            model.update(dict.fromkeys((i for i in ids if i in model), float(now)))
        elif op == "stamp":
            known = all(i in model for i in ids)
            assert seen.stamp_if_all_known(array, float(now)) == known
            if known:
                model.update(dict.fromkeys(ids, float(now)))
        else:
            seen.forget(array)
            for i in ids:
                model.pop(i, None)
        assert seen.as_dict() == model
