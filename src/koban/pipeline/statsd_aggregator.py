"""StatsD/DogStatsD samples aggregated over a flush interval, as the statsd daemon does.

`add_datagram(data, received_ns)` parses a datagram straight into the window (the
listener's path); `add(items, received_ns)` takes what `koban.ingest.statsd.parse_datagram`
returns. `flush(now_ns)` closes the window that began at the previous flush and returns it as
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
server's (receive/statsd_processes.py). Datagrams may be spread over the processes at
random, so one gauge's updates can reach both: a gauge's last set value carries the
time it was received (`order_ns`), the merge keeps the latest, and deltas add.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, NamedTuple

from koban import __version__
from koban.ingest.sketch import DEFAULT_MAX_BUCKETS, DEFAULT_SCALE, ExpHistogram
from koban.ingest.statsd import Event as EventLine
from koban.ingest.statsd import Item, ParseError, Sample, ServiceCheck, parse_datagram, parse_line
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

# A gauge in a window: [set_ns, value, delta, delta_ns]. set_ns is when its last plain
# value came (None: only deltas came, which apply to the value of an earlier window),
# delta the sum of the +/- values since, delta_ns when the last of them came. Times
# order updates that two receiving processes saw (`absorb`), nothing else.
_SET_NS, _VALUE, _DELTA, _DELTA_NS = 0, 1, 2, 3
GaugeCell = list

# What the one-pass path does with a memoised series (see add_datagram)
_COUNTER, _HISTOGRAM, _GAUGE, _SET = 0, 1, 2, 3
_KINDS = {"c": _COUNTER, "ms": _HISTOGRAM, "h": _HISTOGRAM, "d": _HISTOGRAM, "g": _GAUGE, "s": _SET}
_NAN = math.nan


class WindowState(NamedTuple):
    """An open window as plain data, for another aggregator to `absorb` (a second
    receiving process hands its windows to the one that flushes them)."""

    counters: dict[_Key, float]
    gauges: dict[_Key, tuple[int | None, float, float, int]]  # a GaugeCell as a tuple
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
        self._counters: dict[_Key, list[float]] = {}  # one-item lists, so the memo can hold them
        self._gauges: dict[_Key, GaugeCell] = {}
        self._sets: dict[_Key, set[str]] = {}
        self._histograms: dict[_Key, ExpHistogram] = {}
        self._checks: dict[_Key, tuple[int, str]] = {}
        self._events: list[Event] = []
        self._last_gauges: dict[_Key, tuple[float, int]] = {}  # value, flush number it was last set in
        self._flushes = 0
        self._resources: dict[tuple[Any, ...], Resource] = {}
        self._labels: dict[tuple[tuple[str, ...], str, str], tuple[Resource, Attributes]] = {}
        self._sorted_tags: dict[tuple[str, ...], tuple[str, ...]] = {}  # tags as sent -> sorted
        # (name, text after the value) -> (kind, the window's cell of that series, rate or
        # weight): this window's series by the text that names them. Emptied with the window.
        self._memo: dict[tuple[str, str], tuple[int, Any, float]] = {}

    @property
    def series(self) -> int:
        """Series held in the current window."""
        return (
            len(self._counters) + len(self._gauges) + len(self._sets) + len(self._histograms) + len(self._checks)
        )

    def add_datagram(self, data: bytes, received_ns: int, order_ns: int | None = None) -> tuple[int, list[ParseError]]:
        """Parse datagram `data` straight into the current window: the number of samples,
        events and service checks it held, and a ParseError per bad line. `order_ns`
        (default `received_ns`) orders gauge updates across aggregators. Never raises."""
        # The hot path of StatsD ingest. A line of a series this window has seen costs a
        # dict lookup (by the text around its value), a float() and an add: no Sample,
        # no re-reading of type, rate and tags. Anything unusual (a new series, several
        # values, a bad value, events) goes through koban.ingest.statsd, line by line.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            items, errors = parse_datagram(data)
            self.add(items, received_ns, order_ns)
            return len(items), errors
        order = received_ns if order_ns is None else order_ns
        memo = self._memo
        deltas = self.gauge_deltas
        errors: list[ParseError] = []
        n = 0
        for line in text.split("\n"):
            head, _, rest = line.partition("|")
            name, _, values = head.partition(":")
            slot = memo.get((name, rest))
            if slot is not None:
                kind, cell, weight = slot
                if kind == _SET:
                    if values and ":" not in values:
                        cell.add(values)
                        n += 1
                        continue
                else:
                    try:
                        value = float(values)
                    except ValueError:
                        value = _NAN
                    # finite, and written as StatsD writes numbers (float() also takes " 1", "1_0")
                    if value - value == 0.0 and not (values[0].isspace() or values[-1].isspace() or "_" in values):
                        n += 1
                        if kind == _COUNTER:
                            cell[0] += value / weight
                        elif kind == _HISTOGRAM:
                            cell.add(value, weight)
                        elif deltas and values[0] in "+-":  # the gauge update of _add_gauge, inline: hot path
                            cell[_DELTA] += value
                            cell[_DELTA_NS] = order
                        else:
                            cell[_SET_NS] = order
                            cell[_VALUE] = value
                            cell[_DELTA] = 0.0
                        continue
            n += self._add_line(line, name, rest, received_ns, order, errors)
        return n, errors

    def _add_line(self, line: str, name: str, rest: str, received_ns: int, order_ns: int,
                  errors: list[ParseError]) -> int:  # fmt: skip
        """Parse one line and add it (the slow path); remember its series when it is a
        one-value metric line. The number of items it held."""
        items: list[Item] = []
        error = parse_line(line, items)
        if error is not None:
            errors.append(error)
        if not items:
            return 0
        self.add(items, received_ns, order_ns)
        if len(items) == 1 and type(items[0]) is Sample and len(self._memo) < self.max_contexts:
            self._remember((name, rest), items[0])
        return len(items)

    def _remember(self, text: tuple[str, str], sample: Sample) -> None:
        key = self._key(sample)
        type_ = sample.type
        kind = _KINDS[type_]
        if kind == _COUNTER:
            cell, weight = self._counters.get(key), sample.rate
        elif kind == _HISTOGRAM:
            cell, weight = self._histograms.get(key), 1.0 / sample.rate
        elif kind == _GAUGE:
            cell, weight = self._gauges.get(key), 1.0
        else:
            cell, weight = self._sets.get(key), 1.0
        if cell is not None:  # None: over the series limit
            self._memo[text] = (kind, cell, weight)

    def _key(self, sample: Sample) -> _Key:
        tags = sample.tags
        if len(tags) > 1:
            sorted_tags = self._sorted_tags
            tags = sorted_tags.get(tags) or sorted_tags.setdefault(tags, tuple(sorted(tags)))
        return (sample.name, sample.type, tags, sample.container, sample.timestamp_s, "")

    def add(self, items: list[Item], received_ns: int, order_ns: int | None = None) -> None:
        """Fold parsed samples, events and service checks into the current window.
        `order_ns` (default `received_ns`) orders gauge updates across aggregators."""
        order = received_ns if order_ns is None else order_ns
        for item in items:
            if type(item) is not Sample:
                self._other(item, received_ns)
                continue
            key = self._key(item)
            type_ = item.type
            if type_ == "c":
                cell = self._counters.get(key)
                if cell is None:
                    if not self._room(1):
                        continue
                    cell = self._counters[key] = [0.0]
                cell[0] += item.value / item.rate
            elif type_ in HISTOGRAM_TYPES:
                h = self._histograms.get(key)
                if h is None:
                    if not self._room(1):
                        continue
                    h = self._histograms[key] = ExpHistogram(self.scale, self.max_buckets)
                h.add(item.value, 1.0 / item.rate)
            elif type_ == "g":
                self._gauge(key, item.value, item.delta, order)
            else:
                self._set(key, item.member)

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

    def _gauge(self, key: _Key, value: float, delta: bool, order_ns: int) -> None:
        cell = self._gauges.get(key)
        if cell is None:
            if not self._room(1):
                return
            cell = self._gauges[key] = [None, 0.0, 0.0, 0]
        if delta and self.gauge_deltas:
            cell[_DELTA] += value
            cell[_DELTA_NS] = order_ns
        else:
            cell[_SET_NS] = order_ns
            cell[_VALUE] = value
            cell[_DELTA] = 0.0

    def _gauge_value(self, key: _Key, cell: GaugeCell) -> float:
        """A gauge's value at the end of the window: its last set value, or the last
        window's (0 if none), moved by the deltas since."""
        if cell[_SET_NS] is not None:
            return cell[_VALUE] + cell[_DELTA]
        last = self._last_gauges.get(key)
        return (last[0] if last is not None else 0.0) + cell[_DELTA]

    def _set(self, key: _Key, member: str) -> None:
        members = self._sets.get(key)
        if members is None:
            if not self._room(1):
                return
            members = self._sets[key] = set()
        members.add(member)

    def take(self) -> WindowState:
        """The current window as data, emptied: a new window starts, no points are made
        (gauges are remembered for later deltas, as `flush` does). Gauges only moved by
        deltas stay relative in the state: the aggregator that flushes them knows the
        value they move."""
        self._flushes += 1
        for key, cell in self._gauges.items():
            if key[4] == 0:
                self._last_gauges[key] = (self._gauge_value(key, cell), self._flushes)
        state = WindowState(
            {k: c[0] for k, c in self._counters.items()}, {k: tuple(c) for k, c in self._gauges.items()},
            self._sets, {k: h.fields() for k, h in self._histograms.items()}, self._checks, self._events,
            dict(self.dropped),
        )  # fmt: skip
        self._new_window()
        self.dropped.clear()
        return state

    def _new_window(self) -> None:
        self._counters, self._gauges, self._sets, self._histograms, self._checks = {}, {}, {}, {}, {}
        self._events = []
        self._memo = {}

    def absorb(self, state: WindowState) -> None:
        """Merge another aggregator's window into this one: counters and histograms add,
        sets unite, a gauge keeps the later of the two set values (by `order_ns`) and
        the deltas that came after it, a service check takes the other's status."""
        counters = self._counters
        for key, value in state.counters.items():
            cell = counters.get(key)
            if cell is None:
                counters[key] = [value]
            else:
                cell[0] += value
        for key, theirs in state.gauges.items():
            ours = self._gauges.get(key)
            if ours is None:
                self._gauges[key] = list(theirs)
            else:
                ours[:] = _merged_gauge(ours, theirs)  # in place: the memo holds this cell
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

        for key, (value,) in self._counters.items():
            stream, attrs, t0, t1 = self._where(key, start, now_ns)
            sums.append(SumPoint(stream, attrs, t0, t1, value, DELTA, True))
            if self.counter_rates:
                per_s = window_s if key[4] == 0 else self.flush_interval_s
                rate_stream = stream._replace(name=stream.name + ".rate", unit="1/s")
                gauges.append(GaugePoint(rate_stream, attrs, t0, t1, value / per_s))
        for key, cell in self._gauges.items():
            stream, attrs, t0, t1 = self._where(key, start, now_ns)
            value = self._gauge_value(key, cell)
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

        self._new_window()
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


def _merged_gauge(ours: GaugeCell, theirs: tuple[int | None, float, float, int]) -> GaugeCell:
    """One gauge as two aggregators saw it, as one: the later set value, its deltas, and
    the other's deltas if they came after that value. (A side whose deltas straddle the
    other's set value is counted whole or not at all: it keeps only their sum.)"""
    a, b = ours, theirs
    if a[_SET_NS] is None and b[_SET_NS] is None:
        return [None, 0.0, a[_DELTA] + b[_DELTA], max(a[_DELTA_NS], b[_DELTA_NS])]
    if b[_SET_NS] is not None and (a[_SET_NS] is None or b[_SET_NS] >= a[_SET_NS]):
        a, b = b, a  # a: the side with the later set value
    delta = a[_DELTA] + (b[_DELTA] if b[_DELTA] and b[_DELTA_NS] > a[_SET_NS] else 0.0)
    return [a[_SET_NS], a[_VALUE], delta, max(a[_DELTA_NS], b[_DELTA_NS])]
