"""Exponential histograms: bucket mapping, merging across scales, quantiles within 1%."""

from __future__ import annotations

import math
import random

import pytest

from koban.ingest.sketch import ExpHistogram, bucket_bounds, bucket_index, merge, quantile
from koban.model import ExpHistogramPoint, MetricStream, Resource, Scope

STREAM = MetricStream("lat", "", "ms", Resource("svc", {"service.name": "svc"}), Scope())


def point(h: ExpHistogram, start: int = 0, time: int = 1) -> ExpHistogramPoint:
    return ExpHistogramPoint(STREAM, {}, start, time, aggregation_temporality=1, **h.fields())


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize("scale", [0, 3, 7, 10])
@pytest.mark.parametrize("value", [1.0, 2.0, 0.001, 3.7, 1024.0, 1e9, 5e-7, 123.456])
def test_a_value_falls_inside_its_bucket(scale, value):
    lower, upper = bucket_bounds(bucket_index(value, scale), scale)
    assert lower * (1 - 1e-12) < value <= upper * (1 + 1e-12)


def test_a_power_of_two_is_the_top_of_its_bucket():
    assert bucket_index(1.0, 7) == -1
    assert bucket_index(2.0, 7) == 127
    assert bucket_index(math.nextafter(2.0, 3.0), 7) == 128


@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])
def test_quantiles_are_within_one_percent_of_the_exact_ones(q):
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1.5) for _ in range(20_000)] + [0.0] * 50 + [-rng.expovariate(1) for _ in range(300)]
    h = ExpHistogram()
    for v in values:
        h.add(v)
    got, want = quantile(point(h), q), exact(values, q)
    assert got == pytest.approx(want, rel=0.01, abs=1e-12)


def test_merging_at_different_scales_keeps_every_count():
    fine, coarse = ExpHistogram(scale=7), ExpHistogram(scale=3)
    for v in (1.5, 10.0, 100.0):
        fine.add(v)
        coarse.add(v * 2)
    merged = merge([point(fine, 0, 10), point(coarse, 5, 20)])
    assert merged.scale == 3
    assert merged.count == 6 and merged.sum == pytest.approx(111.5 * 3)
    assert (merged.min, merged.max) == (1.5, 200.0)
    assert (merged.start_ns, merged.time_ns) == (0, 20)


def test_a_histogram_too_wide_for_its_buckets_downscales():
    h = ExpHistogram(scale=7, max_buckets=160)
    for v in (1e-3, 1.0, 1e6):
        h.add(v)
    p = point(h)
    assert p.scale < 7 and len(p.positive_bucket_counts) <= 160 and p.count == 3


def test_sample_weights_count_as_many_values():
    h = ExpHistogram()
    h.add(10.0, weight=4.0)
    p = point(h)
    assert (p.count, p.sum) == (4, 40.0)


def test_an_empty_histogram_has_no_quantile():
    assert quantile(point(ExpHistogram()), 0.5) is None
