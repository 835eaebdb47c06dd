"""What ingest does to every decoded batch before it is kept: mask secrets
(ingest/scrub.py) and cap attributes, as the OpenTelemetry SDK's attribute limits do
(extra attributes past the count limit are dropped, longer values truncated).

It runs inside the decode function itself (`decode_guarded`), so the decode worker
processes do the work, and WAL replay, which decodes the raw payload again, stores the
same masked values. `IngestPolicy` is plain data (tuples and ints) so that
`functools.partial(decode_guarded, policy)` pickles to spawn'd workers; the counts come
back with the batch in `Guarded`, since the workers have their own memory.
"""

from __future__ import annotations

import operator
from itertools import accumulate
from typing import NamedTuple

import numpy as np

from koban.ingest import decode
from koban.ingest.scrub import BODY, Rule, Scrubber, compile_rules
from koban.model import Attributes, Batch, LogColumns, MetricColumns, Resource
from koban.series import attributes_hash
from koban.sorted_ids import IdMap


class IngestPolicy(NamedTuple):
    rules: tuple[Rule, ...] = ()
    max_attributes: int = 0  # per record, span event, link, metric point (not resource); 0: no limit
    max_value_length: int = 0  # characters per attribute value; 0: no limit

    @property
    def inactive(self) -> bool:
        return not self.rules and not self.max_attributes and not self.max_value_length


class Guarded(NamedTuple):
    """A decoded batch after the policy, with what the policy did to it."""

    batch: Batch
    scrubbed: dict[str, int]  # rule name -> values it masked
    attributes_dropped: int = 0
    values_truncated: int = 0


def decode_guarded(policy: IngestPolicy, codec: str, payload: bytes, received_ns: int) -> Guarded:
    """`payload` decoded (ingest.decode) and then put through `policy`.
    Raises DecodeError like ingest.decode."""
    return apply_policy(policy, decode(codec, payload, received_ns))


def decode_batch(policy: IngestPolicy, codec: str, payload: bytes, received_ns: int) -> Batch:
    """The batch alone, for WAL replay (its counts were taken when it was received)."""
    return decode_guarded(policy, codec, payload, received_ns).batch


def apply_policy(policy: IngestPolicy, batch: Batch) -> Guarded:
    """`batch` with secrets masked and attributes capped; records are never added or
    removed. Logs and metrics already prepared as Arrow tables (`prepared_logs`, a
    `metric_columns` that is not MetricColumns) are not looked at: the policy must run
    before that step. MetricColumns are cleaned once per series, not per point, and
    counted so."""
    if policy.inactive:
        return Guarded(batch, {})
    g = _Guard(
        compile_rules(policy.rules), policy.max_attributes, policy.max_value_length,
        _unchanged_series.setdefault(policy, IdMap(np.bool_)),
    )
    out = batch._replace(
        logs=g.log_records(batch.logs),
        log_columns=tuple(g.log_columns(c) for c in batch.log_columns),
        spans=g.spans(batch.spans),
        gauges=g.points(batch.gauges),
        sums=g.points(batch.sums),
        histograms=g.points(batch.histograms),
        exp_histograms=g.points(batch.exp_histograms),
        summaries=g.points(batch.summaries),
        events=g.events(batch.events),
        metric_columns=tuple(map(g.metric_columns, batch.metric_columns)),
    )
    return Guarded(out, g.scrubbed, g.dropped, g.truncated)


# MetricColumns series ids (ingest/prom_remote_write.py: a hash of a series' raw labels)
# whose attributes the policy left as they were, per policy and per process: a series
# seen again is not looked at again (remote write resends every series every scrape).
_unchanged_series: dict[IngestPolicy, IdMap] = {}
_MAX_UNCHANGED = 200_000


def _cleaned_ids(series_ids: np.ndarray, attributes: list[Attributes], same: np.ndarray) -> np.ndarray:
    """`series_ids` with the id of each series whose attributes were cleaned (not
    `same`) mixed with a digest of what they became: equal MetricColumns ids must mean
    equal attributes (the store's series catalogue relies on it), and a series keeps
    one id as long as the policy cleans it the same way (the series cap counts by it)."""
    ids = series_ids.copy()
    for i in np.flatnonzero(~same).tolist():
        ids[i] = int(ids[i]) ^ attributes_hash(attributes[i])
    return ids


class _Guard:
    """One batch's pass: the scrubber, the limits and the counts so far."""

    def __init__(
        self, scrubber: Scrubber, max_attributes: int, max_value_length: int, unchanged: IdMap
    ) -> None:
        self.scrubber = scrubber
        self.scrub_values = scrubber.scrubs_values
        self.max_attributes = max_attributes
        self.max_len = max_value_length
        self.scrubbed: dict[str, int] = {}
        self.dropped = 0
        self.truncated = 0
        self._resources: dict[int, Resource] = {}  # id -> cleaned: resources are shared by records
        self.unchanged = unchanged  # MetricColumns series ids this policy leaves as they are

    def value(self, value: str, key: str, limited: bool = True) -> str:
        """The value of attribute `key`, masked, and truncated when `limited`."""
        rule = self.scrubber.sensitive_key_rule(key)
        if rule is not None:
            if value != rule.replacement:
                self.scrubbed[rule.name] = self.scrubbed.get(rule.name, 0) + 1
            return rule.replacement  # type: ignore[return-value]
        if self.scrub_values:
            value = self.scrubber.scrub(value, key, self.scrubbed)
        if limited and self.max_len and len(value) > self.max_len:
            self.truncated += 1
            value = value[: self.max_len]
        return value

    def values(self, keys: list[str], values: list[str], limited: bool = True) -> list[str]:
        """Attribute `values` (of `keys`, position by position) masked and truncated:
        the same list when nothing changed. Only the values that may change are looked
        at one by one, which is what keeps this cheap."""
        todo = set(self.scrubber.suspects(values)) if self.scrub_values else set()
        if self.scrubber.key_rules:
            sensitive = {k for k in set(keys) if self.scrubber.sensitive_key_rule(k) is not None}
            if sensitive:
                todo.update(i for i, k in enumerate(keys) if k in sensitive)
        if limited and self.max_len and max(map(len, values), default=0) > self.max_len:
            todo.update(i for i, v in enumerate(values) if len(v) > self.max_len)
        if not todo:
            return values
        out = list(values)
        for i in todo:
            out[i] = self.value(values[i], keys[i], limited)
        return out

    def bodies(self, bodies: list[str]) -> list[str]:
        """Log bodies, masked (a body is not an attribute: no length limit here)."""
        if not self.scrub_values:
            return bodies
        todo = self.scrubber.suspects(bodies)
        if not todo:
            return bodies
        out = list(bodies)
        for i in todo:
            out[i] = self.scrubber.scrub(bodies[i], BODY, self.scrubbed)
        return out

    def dicts(self, dicts: list[Attributes], limited: bool = True) -> list[Attributes]:
        """Attribute maps cleaned, all in one pass (one search over all their values, not
        one per map); a map that did not change is returned as it was. Resource
        attributes are not `limited` (as in the OTel SDK, whose limits are for records)."""
        keys: list[str] = []
        values: list[str] = []
        ends: list[int] = []
        cap = self.max_attributes if limited else 0
        for d in dicts:
            if cap and len(d) > cap:
                self.dropped += len(d) - cap
                kept = list(d.items())[:cap]  # the first ones stay, as in the OTel SDK
                keys.extend(k for k, _ in kept)
                values.extend(v for _, v in kept)
            else:
                keys.extend(d)
                values.extend(d.values())
            ends.append(len(keys))
        cleaned = self.values(keys, values, limited)
        out = []
        start = 0
        for d, end in zip(dicts, ends):
            if end - start == len(d) and (cleaned is values or cleaned[start:end] == values[start:end]):
                out.append(d)
            else:
                out.append(dict(zip(keys[start:end], cleaned[start:end])))
            start = end
        return out

    def resources(self, resources: list[Resource]) -> list[Resource]:
        """`resources` cleaned; each distinct one (by identity: records share them) once."""
        todo = [r for r in {id(r): r for r in resources}.values() if id(r) not in self._resources]
        for r, attrs in zip(todo, self.dicts([r.attributes for r in todo], limited=False)):
            self._resources[id(r)] = r if attrs is r.attributes else r._replace(attributes=attrs)
        cleaned = [self._resources[id(r)] for r in resources]
        return resources if all(map(operator.is_, cleaned, resources)) else cleaned

    def log_records(self, records):
        if not records:
            return records
        bodies = self.bodies([r.body for r in records])
        attrs = self.dicts([r.attributes for r in records])
        resources = self.resources([r.resource for r in records])
        return [
            r._replace(body=b, attributes=a, resource=res)
            for r, b, a, res in zip(records, bodies, attrs, resources)
        ]

    def log_columns(self, c: LogColumns) -> LogColumns:
        keys, values, offsets = c.attr_keys, c.attr_values, c.attr_offsets
        if self.max_attributes and max(map(operator.sub, offsets[1:], offsets), default=0) > self.max_attributes:
            keys, values, offsets = self._cap_columns(keys, values, offsets)
        return c._replace(
            body=self.bodies(c.body),
            attr_keys=keys,
            attr_values=self.values(keys, values),
            attr_offsets=offsets,
            resources=self.resources(c.resources),
        )

    def _cap_columns(self, keys: list[str], values: list[str], offsets: list[int]):
        cap = self.max_attributes
        new_keys: list[str] = []
        new_values: list[str] = []
        lengths = []
        for a, b in zip(offsets, offsets[1:]):
            end = min(b, a + cap)
            self.dropped += b - end
            new_keys.extend(keys[a:end])
            new_values.extend(values[a:end])
            lengths.append(end - a)
        return new_keys, new_values, list(accumulate(lengths, initial=0))

    def spans(self, spans):
        if not spans:
            return spans
        attrs = self.dicts([s.attributes for s in spans])
        resources = self.resources([s.resource for s in spans])
        events = self._nested([s.events for s in spans])
        links = self._nested([s.links for s in spans])
        return [
            s._replace(attributes=a, resource=r, events=e, links=li)
            for s, a, r, e, li in zip(spans, attrs, resources, events, links)
        ]

    def _nested(self, groups: list[tuple]) -> list[tuple]:
        """Span events or links (anything with `attributes`), grouped per span, cleaned."""
        flat = [item for group in groups for item in group]
        if not flat:
            return groups
        cleaned = iter(self.dicts([item.attributes for item in flat]))
        return [tuple(item._replace(attributes=next(cleaned)) for item in group) for group in groups]

    def events(self, events):
        """DogStatsD events: title and text scrubbed like log bodies, tags like attributes."""
        if not events:
            return events
        titles = self.bodies([e.title for e in events])
        texts = self.bodies([e.text for e in events])
        tags = self.dicts([e.tags for e in events])
        return [e._replace(title=a, text=b, tags=t) for e, a, b, t in zip(events, titles, texts, tags)]

    def metric_columns(self, c):
        if not isinstance(c, MetricColumns):
            return c  # already prepared for the store
        attrs, ids = c.attributes, c.series_ids
        if not self.unchanged.find(ids)[1].all():
            attrs = self.dicts(attrs)
            if len(self.unchanged) >= _MAX_UNCHANGED:
                self.unchanged.clear()
            # only series that came out as they were: the others are cleaned (and counted) each time
            same = np.fromiter(map(operator.is_, attrs, c.attributes), bool, len(attrs))
            self.unchanged.update(ids[same], same[same])
            if not same.all():
                ids = _cleaned_ids(ids, attrs, same)
        resources = self.resources([s.resource for s in c.streams])  # the streams are distinct
        if all(map(operator.is_, resources, (s.resource for s in c.streams))):
            return c._replace(attributes=attrs, series_ids=ids)
        streams = [s if r is s.resource else s._replace(resource=r) for s, r in zip(c.streams, resources)]
        return c._replace(streams=streams, attributes=attrs, series_ids=ids)

    def points(self, points):
        if not points:
            return points
        attrs = self.dicts([p.attributes for p in points])
        resources = self.resources([p.stream.resource for p in points])
        streams: dict[int, object] = {}  # id(stream) -> cleaned: points share their stream
        out = []
        for p, a, r in zip(points, attrs, resources):
            stream = streams.get(id(p.stream))
            if stream is None:
                stream = p.stream if r is p.stream.resource else p.stream._replace(resource=r)
                streams[id(p.stream)] = stream
            out.append(p._replace(stream=stream, attributes=a))
        return out
