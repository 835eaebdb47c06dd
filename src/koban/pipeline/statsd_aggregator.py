"""StatsD/DogStatsD samples aggregated over a flush interval, as the statsd daemon does.

`add(items, received_ns)` takes what `koban.ingest.statsd.parse_datagram` returns;
`flush(now_ns)` closes the window that began at the previous flush and returns it as
one Batch of OpenTelemetry points (the naming rule is in docs/metrics.md):

- counter (c): a delta SumPoint, value = sum of value / sample rate over the window,
  and (with `counter_rates`) a GaugePoint `<name>.rate`, that sum per second;
- gauge (g): a GaugePoint with the last value; "+N"/"-N" move the previous value,
  which is remembered across windows (until unused for `gauge_idle_flushes` flushes);
- set (s): a GaugePoint with the number of distinct members seen in the window;
- timer (ms), histogram (h), distribution (d): an ExpHistogramPoint (delta) at scale
  7, which merges across hosts and windows into quantiles within 0.3% (see
  `koban.ingest.sketch`); a sample at rate 0.1 counts ten times;
- service check: a GaugePoint `datadog.service_check`, value = status (0 OK,
  1 WARNING, 2 CRITICAL, 3 UNKNOWN), attribute `check`;
- event: a `model.Event` in the batch's `events`, for koban's events table (its
  service from the `service` tag, its host from `h:` or the `host` tag).

A window emits a point only for what was sent in it (as the Datadog Agent does, not
the statsd daemon's repeat of every known gauge). Memory is bounded: at most
`max_contexts` series per window and `max_events` events; what is over is dropped and
counted in `dropped`. Time comes from the caller; nothing here reads a clock.

`take()` hands the open window over as plain data and `absorb(state)` merges such a
window into another aggregator: how a second receiving process's windows join the
server's (receive/statsd_processes.py).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, NamedTuple

from koban import __version__
from koban.ingest.sketch import DEFAULT_MAX_BUCKETS, DEFAULT_SCALE, ExpHistogram
from koban.ingest.statsd import Event as EventLine
from koban.ingest.statsd import Item, Sample, ServiceCheck
from koban.model import (
    Attributes,
    Batch,
    Event,
    ExpHistogramPoint,
    GaugePoint,
    MetricStream,
    Resource,
    Scope,
    SumPoint,
)

DELTA = 1  # OTLP AggregationTemporality
DEFAULT_SERVICE = "statsd"
SCOPE = Scope("koban.statsd", __version__)
SERVICE_CHECK_METRIC = "datadog.service_check"

# Tags that say who sent the data become resource attributes (Datadog's unified
# service tagging, in OpenTelemetry's names); every other tag is a point attribute.
RESOURCE_TAGS = {
    "service": "service.name",
    "dd.service": "service.name",
    "host": "host.name",
    "env": "deployment.environment",
    "version": "service.version",
}
UNITS = {"ms": "ms"}
HISTOGRAM_TYPES = ("ms", "h", "d")

NS = 1_000_000_000

# A series: (name, type, tags sorted, container id, timestamp in s or 0, host)
_Key = tuple[str, str, tuple[str, ...], str, int, str]

_NO_STREAM = MetricStream("", "", "", Resource("", {}), SCOPE)


class WindowState(NamedTuple):
    """An open window as plain data, for another aggregator to `absorb` (a second
    receiving process hands its windows to the one that flushes them)."""

    counters: dict[_Key, float]
    gauges: dict[_Key, float]
    sets: dict[_Key, set[str]]
    histograms: dict[_Key, dict]  # ExpHistogram.fields()
    checks: dict[_Key, tuple[int, str]]
    events: list[Event]
    dropped: dict[str, int]


class StatsdAggregator:
    def __init__(
        self,
        start_ns: int,
        *,
        flush_interval_s: float = 10.0,
        default_service: str = DEFAULT_SERVICE,
        counter_rates: bool = True,
        gauge_deltas: bool = True,
        scale: int = DEFAULT_SCALE,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        max_contexts: int = 100_000,
        max_events: int = 10_000,
        gauge_idle_flushes: int = 360,
    ) -> None:
        """`start_ns` opens the first window. `gauge_deltas` False reads "-5|g" as the
        value -5 (the Datadog Agent's reading) instead of "subtract 5" (statsd's)."""
        self.window_start_ns = start_ns
        self.flush_interval_s = flush_interval_s
        self.default_service = default_service
        self.counter_rates = counter_rates
        self.gauge_deltas = gauge_deltas
        self.scale = scale
        self.max_buckets = max_buckets
        self.max_contexts = max_contexts
        self.max_events = max_events
        self.gauge_idle_flushes = gauge_idle_flushes
        self.dropped: Counter[str] = Counter()  # "series_limit" / "event_limit" -> items dropped
        self._counters: dict[_Key, float] = {}
        self._gauges: dict[_Key, float] = {}
        self._sets: dict[_Key, set[str]] = {}
        self._histograms: dict[_Key, ExpHistogram] = {}
        self._checks: dict[_Key, tuple[int, str]] = {}
        self._events: list[Event] = []
        self._last_gauges: dict[_Key, tuple[float, int]] = {}  # value, flush number it was last set in
        self._flushes = 0
        self._resources: dict[tuple[Any, ...], Resource] = {}
        self._labels: dict[tuple[tuple[str, ...], str, str], tuple[Resource, Attributes]] = {}
        self._sorted_tags: dict[tuple[str, ...], tuple[str, ...]] = {}  # tags as sent -> sorted

    @property
    def series(self) -> int:
        """Series held in the current window."""
        return (
            len(self._counters) + len(self._gauges) + len(self._sets) + len(self._histograms) + len(self._checks)
        )

    def add(self, items: list[Item], received_ns: int) -> None:
        """Fold parsed samples, events and service checks into the current window."""
        # The hot path of StatsD ingest (every line goes through it): counters and
        # histograms are folded here inline, without a method call per sample.
        counters = self._counters
        histograms = self._histograms
        sorted_tags = self._sorted_tags
        for item in items:
            if type(item) is not Sample:
                self._other(item, received_ns)
                continue
            name, type_, value, member, delta, rate, tags, container, ts = item
            if len(tags) > 1:
                tags = sorted_tags.get(tags) or sorted_tags.setdefault(tags, tuple(sorted(tags)))
            key = (name, type_, tags, container, ts, "")
            if type_ == "c":
                if rate != 1.0:
                    value /= rate
                if key in counters:
                    counters[key] += value
                elif self._room(1):
                    counters[key] = value
            elif type_ in HISTOGRAM_TYPES:
                h = histograms.get(key)
                if h is None:
                    if not self._room(1):
                        continue
                    h = histograms[key] = ExpHistogram(self.scale, self.max_buckets)
                h.add(value, 1.0 / rate)
            elif type_ == "g":
                self._gauge(key, value, delta)
            else:
                self._set(key, member)

    def _other(self, item: Item, received_ns: int) -> None:
        if type(item) is ServiceCheck:
            key = (item.name, "sc", tuple(sorted(item.tags)), item.container, item.timestamp_s, item.hostname)
            if key in self._checks or self._room(1):
                self._checks[key] = (item.status, item.message)
        elif type(item) is EventLine:
            if len(self._events) >= self.max_events:
                self.dropped["event_limit"] += 1
            else:
                self._events.append(self._event(item, received_ns))

    def _room(self, n: int) -> bool:
        if self.series + n > self.max_contexts:
            self.dropped["series_limit"] += 1
            return False
        return True

    def _gauge(self, key: _Key, value: float, delta: bool) -> None:
        gauges = self._gauges
        if key not in gauges and not self._room(1):
            return
        if delta and self.gauge_deltas:
            previous = gauges.get(key)
            if previous is None:
                last = self._last_gauges.get(key)
                previous = last[0] if last is not None else 0.0
            gauges[key] = previous + value
        else:
            gauges[key] = value

    def _set(self, key: _Key, member: str) -> None:
        members = self._sets.get(key)
        if members is None:
            if not self._room(1):
                return
            members = self._sets[key] = set()
        members.add(member)

    def take(self) -> WindowState:
        """The current window as data, emptied: a new window starts, no points are made
        (gauges are remembered for later deltas, as `flush` does)."""
        self._flushes += 1
        for key, value in self._gauges.items():
            if key[4] == 0:
                self._last_gauges[key] = (value, self._flushes)
        state = WindowState(
            self._counters, self._gauges, self._sets, {k: h.fields() for k, h in self._histograms.items()},
            self._checks, self._events, dict(self.dropped),
        )  # fmt: skip
        self._counters, self._gauges, self._sets, self._histograms, self._checks = {}, {}, {}, {}, {}
        self._events = []
        self.dropped.clear()
        return state

    def absorb(self, state: WindowState) -> None:
        """Merge another aggregator's window into this one: counters and histograms add,
        sets unite, gauges and service checks take the other's value (one client's
        datagrams all reach one socket, so one process sees all of a client's gauge)."""
        counters = self._counters
        for key, value in state.counters.items():
            counters[key] = counters.get(key, 0.0) + value
        self._gauges.update(state.gauges)
        for key, members in state.sets.items():
            self._sets.setdefault(key, set()).update(members)
        for key, fields in state.histograms.items():
            h = self._histograms.get(key)
            if h is None:
                h = self._histograms[key] = ExpHistogram(self.scale, self.max_buckets)
            h.merge_point(ExpHistogramPoint(_NO_STREAM, {}, 0, 0, aggregation_temporality=DELTA, **fields))
        self._checks.update(state.checks)
        room = max(self.max_events - len(self._events), 0)
        self._events.extend(state.events[:room])
        if len(state.events) > room:
            self.dropped["event_limit"] += len(state.events) - room
        self.dropped.update(state.dropped)

    def flush(self, now_ns: int) -> Batch:
        """The points of the window from the previous flush to `now_ns`, and the events
        received in it; a new window starts at `now_ns`. An empty Batch when nothing came."""
        start = self.window_start_ns
        window_s = (now_ns - start) / NS if now_ns > start else self.flush_interval_s
        self.window_start_ns = now_ns
        self._flushes += 1
        gauges: list[GaugePoint] = []
        sums: list[SumPoint] = []
        exp: list[ExpHistogramPoint] = []

        for key, value in self._counters.items():
            stream, attrs, t0, t1 = self._where(key, start, now_ns)
            sums.append(SumPoint(stream, attrs, t0, t1, value, DELTA, True))
            if self.counter_rates:
                per_s = window_s if key[4] == 0 else self.flush_interval_s
                rate_stream = stream._replace(name=stream.name + ".rate", unit="1/s")
                gauges.append(GaugePoint(rate_stream, attrs, t0, t1, value / per_s))
        for key, value in self._gauges.items():
            stream, attrs, t0, t1 = self._where(key, start, now_ns)
            gauges.append(GaugePoint(stream, attrs, t0, t1, value))
            if key[4] == 0:
                self._last_gauges[key] = (value, self._flushes)
        for key, members in self._sets.items():
            stream, attrs, t0, t1 = self._where(key, start, now_ns)
            gauges.append(GaugePoint(stream, attrs, t0, t1, float(len(members))))
        for key, h in self._histograms.items():
            stream, attrs, t0, t1 = self._where(key, start, now_ns)
            exp.append(ExpHistogramPoint(stream, attrs, t0, t1, aggregation_temporality=DELTA, **h.fields()))
        for key, (status, message) in self._checks.items():
            stream, attrs, t0, t1 = self._where(key, start, now_ns)
            attrs = {**attrs, "check": key[0]}
            if message:
                attrs["message"] = message
            gauges.append(GaugePoint(stream._replace(name=SERVICE_CHECK_METRIC), attrs, t0, t1, float(status)))
        events = self._events

        self._counters, self._gauges, self._sets, self._histograms, self._checks = {}, {}, {}, {}, {}
        self._events = []
        idle = self._flushes - self.gauge_idle_flushes
        if idle > 0 and self._flushes % 64 == 0:  # now and then, forget gauges long unused
            self._last_gauges = {k: v for k, v in self._last_gauges.items() if v[1] > idle}
        if len(self._sorted_tags) > self.max_contexts:
            self._sorted_tags.clear()
        if len(self._labels) > self.max_contexts:
            self._labels.clear()
            self._resources.clear()
        return Batch(gauges=gauges, sums=sums, exp_histograms=exp, events=events)

    def _where(self, key: _Key, start: int, now_ns: int) -> tuple[MetricStream, Attributes, int, int]:
        """The stream, point attributes, start and time of series `key`'s point."""
        name, type_, tags, container, ts, host = key
        resource, attrs = self._labelled(tags, container, host)
        stream = MetricStream(name, "", UNITS.get(type_, ""), resource, SCOPE)
        if ts:
            return stream, attrs, ts * NS, ts * NS
        return stream, attrs, start, now_ns

    def _labelled(self, tags: tuple[str, ...], container: str, host: str) -> tuple[Resource, Attributes]:
        """The resource and the point attributes that `tags` (sorted) stand for."""
        cache_key = (tags, container, host)
        hit = self._labels.get(cache_key)
        if hit is not None:
            return hit
        attrs: Attributes = {}
        res: Attributes = {}
        for tag in tags:
            k, _, v = tag.partition(":")
            target = RESOURCE_TAGS.get(k)
            if target is None:
                attrs[k] = v
            elif v:
                res[target] = v
        if host:
            res["host.name"] = host
        if container:
            res["container.id"] = container
        res.setdefault("service.name", self.default_service)
        rkey = tuple(sorted(res.items()))
        resource = self._resources.get(rkey)
        if resource is None:
            resource = self._resources[rkey] = Resource(res["service.name"], res)
        hit = self._labels[cache_key] = (resource, attrs)
        return hit

    def _event(self, e: EventLine, received_ns: int) -> Event:
        tags: Attributes = {}
        for tag in e.tags:
            k, _, v = tag.partition(":")
            tags[k] = v  # a key sent twice keeps its last value (a map has one per key)
        if e.container:
            tags["container_id"] = e.container
        service = tags.get("service") or tags.get("dd.service") or self.default_service
        host = e.hostname or tags.get("host", "")
        ts = e.timestamp_s * NS if e.timestamp_s else received_ns
        return Event(
            ts, e.title, e.text, e.alert_type, e.priority, host, e.aggregation_key, e.source_type, service, tags
        )
