"""The series cap per metric (`max_series_per_metric`), kept by the store writer.

Only the writer thread calls `admit`, so the count is global (every receiver, every
decode worker) and needs no coordination beyond a lock for readers of `top`. A series
is a metric name + its point attributes + its resource's attributes, remembered as a
64-bit hash with the time it was last seen. A point of a series not yet known, of a
metric already at its cap, is dropped and counted.

Memory is bounded: at most `max_series` hashes per metric, at most `max_metrics`
metrics tracked (a point of a metric past that is dropped, counted under its name only
if it is already in the offenders table, which is itself capped), and a series unseen
for `idle_s` is forgotten, so a metric whose series churn (pod names, build ids) is not
stuck at its cap forever. The count starts empty at each start: series stored before
a restart count again only when they are seen again.

Points held per series (`Batch.metric_columns`, from Prometheus remote write) are
admitted by series, before their rows are expanded; such a series is known by its
MetricColumns id (a stable hash of its labels, mixed with its cleaned attributes when
the ingest policy changed them), so the same labels sent by remote write and by another
protocol count as two series. Those ids name the metric too, so a request whose series
were all admitted before is recognised by a sorted-array lookup of all of them at once
(`SeenIds`), without grouping them by metric: that grouping was the writer's largest
cost per remote write sample after the store, and Python sets of 5,000 ids cost about
as much. When a metric is over its cap, only the series not admitted before are
grouped by metric and looked at.
"""

from __future__ import annotations

import operator
import threading
import time
from collections.abc import Callable
from itertools import compress
from typing import NamedTuple

import numpy as np

from koban.model import Batch, Resource
from koban.sorted_ids import IdMap
from koban.store.columns import keep_series, series_by_metric, series_ids, series_point_counts

METRIC_FIELDS = ("gauges", "sums", "histograms", "exp_histograms", "summaries")
TOO_MANY_METRICS = "(too many metric names)"


class Offender(NamedTuple):
    metric: str
    series: int  # distinct series seen and kept (within the idle window)
    dropped: int  # points of new series dropped since the start


class SeriesLimiter:
    def __init__(
        self,
        max_series: int,
        *,
        max_metrics: int = 10_000,
        idle_s: float = 3600.0,
        prune_every_s: float = 60.0,
        on_drop: Callable[[int], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_series` 0 admits everything. `on_drop(n)` is called with each batch's
        number of dropped points (for /metrics)."""
        self.max_series = max_series
        self.max_metrics = max_metrics
        self.idle_s = idle_s
        self.prune_every_s = prune_every_s
        self.on_drop = on_drop
        self._now = monotonic
        self._series: dict[str, dict[int, float]] = {}  # metric -> series hash -> last seen
        # series of metric columns admitted (each also in its metric's dict), with the
        # time each was last seen, which is then the time that counts
        self._column_seen = SeenIds()
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last_prune = monotonic()

    def admit(self, batch: Batch) -> Batch:
        """`batch` without the metric points of new series over the cap (the same
        batch when nothing is dropped)."""
        if not self.max_series or not batch.metric_points:
            return batch
        now = self._now()
        dropped_here = 0
        changes = {}
        resource_keys: dict[int, int] = {}
        with self._lock:
            if now - self._last_prune >= self.prune_every_s:  # before: idle series free their place
                self._prune(now)
            for name in METRIC_FIELDS:
                points = getattr(batch, name)
                if not points:
                    continue
                kept = [p for p in points if self._admit_one(p, now, resource_keys)]
                if len(kept) != len(points):
                    dropped_here += len(points) - len(kept)
                    changes[name] = kept
            columns = [self._admit_columns(c, now) for c in batch.metric_columns]
            if any(map(operator.is_not, columns, batch.metric_columns)):
                dropped_here += sum(a.num_rows - b.num_rows for a, b in zip(batch.metric_columns, columns))
                changes["metric_columns"] = tuple(columns)
        if dropped_here and self.on_drop is not None:
            self.on_drop(dropped_here)
        return batch._replace(**changes) if changes else batch

    def _admit_one(self, point, now: float, resource_keys: dict[int, int]) -> bool:
        stream = point.stream
        resource_key = resource_keys.get(id(stream.resource))
        if resource_key is None:
            resource_key = resource_keys[id(stream.resource)] = _resource_key(stream.resource)
        key = hash((resource_key, frozenset(point.attributes.items())))
        refusal = self._refusal(stream.name, key, now)
        if refusal is not None:
            self._count_drop(refusal)
            return False
        return True

    def _admit_columns(self, columns, now: float):
        """`columns` (MetricColumns or their prepared form) without the series over the
        cap, whose points are counted as dropped under their metric."""
        every_id = series_ids(columns)
        seen = self._column_seen
        if seen.stamp_if_all_known(every_id, now):  # the usual case: all admitted before
            return columns
        if all(self._admit_known(name, every_id[rows].tolist(), now) for name, rows in series_by_metric(columns)):
            seen.add(every_id, now)
            return columns  # room for the new ones
        # some metric is over its cap: only the series not admitted before are looked at,
        # a metric at a time, and the drops are counted once per metric
        known = seen.stamp_known(every_id, now)
        refused = np.zeros(len(every_id), bool)
        dropped: dict[str, list[np.ndarray]] = {}  # what dropped points count under -> refused rows
        for name, rows in series_by_metric(columns, np.flatnonzero(~known)):
            refused_here, counted_under = self._refused(name, every_id[rows].tolist(), now)
            if refused_here.any():
                refused[rows[refused_here]] = True
                dropped.setdefault(counted_under, []).append(rows[refused_here])
        seen.add(every_id[~refused & ~known], now)
        if not refused.any():
            return columns
        counts = series_point_counts(columns)
        # counted in the order their first refused series comes, as points one by one
        # are: the offenders table is capped, so the order decides who is in it
        for metric, rows in sorted(dropped.items(), key=lambda item: min(r[0] for r in item[1])):
            self._count_drop(metric, int(counts[np.concatenate(rows)].sum()))
        return keep_series(columns, ~refused)

    def _admit_known(self, name: str, ids: list[int], now: float) -> bool:
        """Notes series `ids` of metric `name` as seen and returns True when each is
        known or there is room for all of them; False (noting nothing) otherwise."""
        series = self._series.get(name)
        if series is None or (len(series) + len(ids) > self.max_series and not series.keys() >= set(ids)):
            return False
        series.update(dict.fromkeys(ids, now))
        return True

    def _refused(self, name: str, ids: list[int], now: float) -> tuple[np.ndarray, str]:
        """Notes those of series `ids` of metric `name` that are admitted as seen; returns
        which are refused and the name their dropped points count under."""
        series = self._series.get(name)
        if series is not None and len(series) >= self.max_series:
            # full, as it stays once a metric's series outgrow the cap: only its own pass
            inside = np.fromiter(map(series.__contains__, ids), bool, len(ids))
            for key in compress(ids, inside):
                series[key] = now
            return ~inside, name
        refusals = [self._refusal(name, key, now) for key in ids]
        return np.array([r is not None for r in refusals], bool), next(filter(None, refusals), name)

    def _refusal(self, name: str, key: int, now: float) -> str | None:
        """None when series `key` of metric `name` is admitted (and noted); otherwise
        the name its points are counted under as dropped."""
        series = self._series.get(name)
        if series is None:
            if len(self._series) >= self.max_metrics:
                return TOO_MANY_METRICS
            series = self._series[name] = {}
        if key in series:
            series[key] = now
            return None
        if len(series) >= self.max_series:
            return name
        series[key] = now
        return None

    def _count_drop(self, metric: str, points: int = 1) -> None:
        if metric in self._dropped or len(self._dropped) < self.max_metrics:
            self._dropped[metric] = self._dropped.get(metric, 0) + points

    def _prune(self, now: float) -> None:
        self._last_prune = now
        cutoff = now - self.idle_s
        column_seen = self._column_seen.as_dict()
        forgotten: list[int] = []
        for name in list(self._series):
            series = self._series[name]
            stale = [k for k, seen in series.items() if column_seen.get(k, seen) < cutoff]
            for k in stale:
                del series[k]
            forgotten.extend(k for k in stale if k in column_seen)  # not the points' keys
            if not series:
                del self._series[name]
        self._column_seen.forget(np.asarray(forgotten, np.uint64))

    def top(self, n: int = 20) -> list[Offender]:
        """The `n` metrics with the most dropped points, then the most series."""
        with self._lock:
            names = set(self._dropped) | set(self._series)
            rows = [Offender(m, len(self._series.get(m, ())), self._dropped.get(m, 0)) for m in names]
        rows.sort(key=lambda o: (-o.dropped, -o.series, o.metric))
        return rows[:n]

    @property
    def tracked_series(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._series.values())


def _resource_key(resource: Resource) -> int:
    return hash(frozenset(resource.attributes.items()))


class SeenIds:
    """Series ids with the time each was last seen (`IdMap`): a request's few thousand
    ids are looked up and stamped in C."""

    def __init__(self) -> None:
        self._seen = IdMap(np.float64)

    def stamp_if_all_known(self, ids: np.ndarray, now: float) -> bool:
        """Stamp `ids` as seen `now` and return True when every one is known; False
        (stamping nothing) otherwise."""
        if not len(self._seen):
            return not len(ids)
        at, found = self._seen.find(ids)
        if not found.all():
            return False
        self._seen.values[at] = now
        return True

    def stamp_known(self, ids: np.ndarray, now: float) -> np.ndarray:
        """Stamp those of `ids` that are known as seen `now`; returns which were."""
        at, found = self._seen.find(ids)
        self._seen.values[at[found]] = now
        return found

    def add(self, ids: np.ndarray, now: float) -> None:
        """Know `ids` (known or not), seen `now`."""
        self._seen.update(ids, np.full(len(ids), now))

    def forget(self, ids: np.ndarray) -> None:
        self._seen.discard(ids)

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self._seen.ids.tolist(), self._seen.values.tolist()))
