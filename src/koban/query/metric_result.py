"""Rows of a metric series statement (query/metric_series.py) -> /api/timeseries JSON.

Percentiles of histograms are read here, from bucket counts merged in SQL: explicit
buckets by linear interpolation inside the bucket holding the rank (Prometheus's
histogram_quantile), exponential ones with ingest/sketch.py's quantile (the same math
that guarantees StatsD timers their 1% bound).
"""

from __future__ import annotations

import math
from typing import Any

from koban.ingest import sketch
from koban.model import ExpHistogramPoint, MetricStream, Resource, Scope
from koban.query.metric_series import PERCENTILES, MetricKind, MetricSeriesQuery
from koban.query.timeseries import NO_GROUP, bucket_starts
from koban.store.base import QueryResult

_MS = 1_000_000
_NS_PER_S = 1_000_000_000
_STREAM = MetricStream("", "", "", Resource("", {}), Scope())


def _number(v: Any) -> float | None:
    """A float, None for NULL and NaN (engines disagree on aggregates over nothing)."""
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def histogram_quantile(q: float, cells: list[tuple[float | None, float]]) -> float | None:
    """Prometheus's histogram_quantile over (upper bound, count) cells, None for the +Inf
    bucket: linear interpolation within the bucket where the rank falls, the first
    bucket starting at 0; a rank in +Inf gives the highest finite bound. None when
    the cells count nothing."""
    ordered = sorted(cells, key=lambda c: math.inf if c[0] is None else c[0])
    total = sum(c for _, c in ordered)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for i, (upper, count) in enumerate(ordered):
        if seen + count >= rank and count > 0:
            if upper is None:
                return lower if i > 0 else None
            if i == 0 and upper <= 0:
                return upper
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        if upper is not None:
            lower = upper
    return lower


def exp_quantile(q: float, scale: int, cells: dict[tuple[int, int], float], lo: Any, hi: Any) -> float | None:
    """The q-quantile of merged exponential-histogram cells ((sign, index) -> count;
    sign 0 is the zero bucket), through sketch.quantile. None when empty."""
    pos = {i: c for (s, i), c in cells.items() if s > 0}
    neg = {i: c for (s, i), c in cells.items() if s < 0}
    zero = round(cells.get((0, 0), 0.0))
    pos_offset, pos_counts = _dense(pos)
    neg_offset, neg_counts = _dense(neg)
    lo_f, hi_f = _number(lo), _number(hi)
    if lo_f is not None and hi_f is not None and (hi_f < lo_f or lo_f == hi_f == 0.0):
        lo_f = hi_f = None  # no min/max was recorded (a backend stored 0 for none)
    point = ExpHistogramPoint(
        _STREAM, {}, 0, 0, zero + sum(pos_counts) + sum(neg_counts), 0.0, scale, zero,
        pos_offset, pos_counts, neg_offset, neg_counts, lo_f, hi_f, 1,
    )  # fmt: skip
    return sketch.quantile(point, q)


def _dense(cells: dict[int, float]) -> tuple[int, tuple[int, ...]]:
    if not cells:
        return 0, ()
    low, high = min(cells), max(cells)
    counts = [0] * (high - low + 1)
    for i, c in cells.items():
        counts[i - low] = round(c)
    return low, tuple(counts)


def _labels(r: dict[str, Any], by: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(NO_GROUP if r[f"g{i}"] is None else str(r[f"g{i}"]) for i in range(len(by)))


def _values(result: QueryResult, q: MetricSeriesQuery, kind: MetricKind) -> dict[tuple[str, ...], dict[int, Any]]:
    """{labels: {bucket ns: value}} from the statement's rows."""
    interval_s = q.interval_ns / _NS_PER_S
    per_second = q.mode == "rate" and kind.behaves != "gauge" and q.space != "count"
    rows = [dict(zip(result.columns, row)) for row in result.rows]
    out: dict[tuple[str, ...], dict[int, Any]] = {}
    if kind.behaves in ("gauge", "counter"):
        for r in rows:
            v = int(r["v"]) if q.space == "count" else _number(r["v"])
            if per_second and v is not None:
                v /= interval_s
            out.setdefault(_labels(r, q.by), {})[int(r["bucket"])] = v
        return out
    if q.space not in PERCENTILES:
        for r in rows:
            cnt, total = _number(r["cnt"]) or 0.0, _number(r["total"]) or 0.0
            v = {
                "count": cnt,
                "sum": total,
                "avg": total / cnt if cnt else None,
                "min": _number(r["lo"]),
                "max": _number(r["hi"]),
            }[q.space or "avg"]
            if q.mode == "rate" and v is not None and q.space in ("count", "sum"):
                v /= interval_s
            out.setdefault(_labels(r, q.by), {})[int(r["bucket"])] = v
        return out
    quantile = PERCENTILES[q.space]
    cells: dict[tuple[tuple[str, ...], int], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((_labels(r, q.by), int(r["bucket"])), []).append(r)
    for (labels, bucket), group in cells.items():
        if "ub" in group[0]:
            v = histogram_quantile(quantile, [(_number(r["ub"]), float(r["c"] or 0)) for r in group])
        else:
            merged: dict[tuple[int, int], float] = {}
            for r in group:
                key = (int(r["sign"]), int(r["cell"]))
                merged[key] = merged.get(key, 0.0) + float(r["c"] or 0)
            lows = [x for x in (_number(r["lo"]) for r in group) if x is not None]
            highs = [x for x in (_number(r["hi"]) for r in group) if x is not None]
            v = exp_quantile(quantile, int(group[0]["scale"]), merged,
                             min(lows) if lows else None, max(highs) if highs else None)  # fmt: skip
        out.setdefault(labels, {})[bucket] = v
    return out


def metric_series_result(result: QueryResult, q: MetricSeriesQuery, kind: MetricKind | None) -> dict[str, Any]:
    """{"source": "metrics", "metric", "metric_type", "also_in", "agg", "rollup", "mode",
    "interval_ms", "from_ms", "to_ms", "series": [{"labels", "points": [[ts_ms, value]]}]}.
    Every bucket of the range is in every series, null where the series has no point.
    Without `by`: one series with labels {} (values all null when the metric is not
    found: `metric_type` null). With `by`: one per group that has points."""
    values = _values(result, q, kind) if kind is not None else {}
    if not q.by and not values:
        values = {(): {}}
    buckets = bucket_starts(q.start_ns, q.end_ns, q.interval_ns)
    series = [
        {"labels": dict(zip(q.by, labels)), "points": [[b // _MS, by_bucket.get(b)] for b in buckets]}
        for labels, by_bucket in sorted(values.items())
    ]
    return {
        "source": "metrics",
        "metric": q.metric,
        "metric_type": kind.type if kind else None,
        "also_in": list(kind.also_in) if kind else [],
        "agg": q.space,
        "rollup": q.rollup,
        "mode": q.mode,
        "interval_ms": q.interval_ns // _MS,
        "from_ms": q.start_ns // _MS,
        "to_ms": q.end_ns // _MS,
        "series": series,
    }
