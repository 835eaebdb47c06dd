"""Prometheus remote write 1.0: an uncompressed `prometheus.WriteRequest` -> metric points.

Pure: the receiver (`koban.receive.prom_remote_write`) undoes the snappy block
compression and hands the protobuf bytes here, and the WAL keeps those bytes under the
codec "prom-rw/metrics", so a replay decodes them again with this module alone.

There is no maintained Python package with the generated classes, so the messages are
declared below as a FileDescriptorProto (the subset of Prometheus' `types.proto` and
`remote.proto` that remote write 1.0 sends) and built by the protobuf library at import
time, in a pool of their own so they cannot clash with another "prometheus" package.
Native histograms are declared empty: they are counted, never read.

Mapping (docs/metrics.md, "One naming rule"):

- the `__name__` label is the MetricName, unchanged;
- `job` becomes the resource's `service.name` ("prometheus" when absent) and leaves the
  point attributes; `instance` becomes the resource's `service.instance.id` and stays a
  point attribute; every other label is a point attribute; a label with an empty value
  is absent (as in Prometheus);
- each sample is a GaugePoint at `timestamp ms * 10**6` ns with start 0 (remote write
  1.0 carries no type), unless the request's own metadata says the family is a counter
  (or a histogram's or summary's `_bucket`/`_count`/`_sum`): then a cumulative SumPoint,
  monotonic except for `_sum`. Metadata's help and unit become description and unit.

Most requests take a columnar path (`_columns`): a series' labels are read once per
process and then looked up by their raw bytes, and the samples of the whole request are
read at once in numpy from the last bytes of each series (or, for unusual encodings, in
one protobuf call), giving `MetricColumns` (model.py) instead of a point object per
sample. It takes a request whose every series is its labels followed by one sample
(what Prometheus sends); any other request goes through the per-point path below, which
gives the same rows.

Rejected (counted, reason in the batch): staleness markers (the special NaN Prometheus
writes when a series disappears; any other NaN is kept), times whose nanoseconds fall
outside 0..2**63-1, every sample of a series with no `__name__`, native histograms.
Exemplars are not kept yet.
"""

from __future__ import annotations

import hashlib
import operator
import re
import struct
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from koban import __version__
from koban.errors import DecodeError
from koban.ingest.otlp_values import MAX_TIME_NS, Rejections
from koban.model import Batch, GaugePoint, MetricColumns, MetricStream, Resource, Scope, SumPoint
from koban.series import only_series

SCOPE = Scope("koban.prometheus.remote_write", __version__)
DEFAULT_SERVICE = "prometheus"

# Prometheus' staleness marker: a NaN with this exact bit pattern (value.StaleNaN).
STALE_NAN_BITS = 0x7FF0000000000002
_STALE_BYTES = struct.pack("<Q", STALE_NAN_BITS)
_pack_double = struct.Struct("<d").pack

MS_TO_NS = 1_000_000
MAX_TIME_MS = MAX_TIME_NS // MS_TO_NS

CUMULATIVE = 2  # OTLP's AggregationTemporality

# Why a sample was refused; the words of the batch's rejected_reason.
STALE_MARKER = "stale marker"
TIME_RANGE = "timestamp out of range"
NO_NAME = "series has no __name__ label"
NATIVE_HISTOGRAM = "native histograms are not supported"

# MetricMetadata.MetricType
_COUNTER, _HISTOGRAM, _SUMMARY = 1, 3, 5


# --- the message classes -------------------------------------------------------------

_F = descriptor_pb2.FieldDescriptorProto


def _message(file: Any, name: str, *fields: tuple[str, int, int, str]) -> None:
    msg = file.message_type.add(name=name)
    for field_name, number, type_, type_name in fields:
        # a type name starting with "*" marks a repeated field
        label = _F.LABEL_REPEATED if type_name.startswith("*") else _F.LABEL_OPTIONAL
        field = msg.field.add(name=field_name, number=number, label=label, type=type_)
        if type_name.lstrip("*"):
            field.type_name = type_name.lstrip("*")


def _build_classes() -> dict[str, type]:
    f = descriptor_pb2.FileDescriptorProto(
        name="koban/prometheus_remote_write.proto", package="prometheus", syntax="proto3"
    )
    msg, string, double, int64, enum = _F.TYPE_MESSAGE, _F.TYPE_STRING, _F.TYPE_DOUBLE, _F.TYPE_INT64, _F.TYPE_ENUM
    _message(
        f, "WriteRequest",
        ("timeseries", 1, msg, "*.prometheus.TimeSeries"),
        ("metadata", 3, msg, "*.prometheus.MetricMetadata"),
    )
    _message(
        f, "TimeSeries",
        ("labels", 1, msg, "*.prometheus.Label"),
        ("samples", 2, msg, "*.prometheus.Sample"),
        ("exemplars", 3, msg, "*.prometheus.Exemplar"),
        ("histograms", 4, msg, "*.prometheus.Histogram"),
    )
    _message(f, "Label", ("name", 1, string, ""), ("value", 2, string, ""))
    _message(f, "Sample", ("value", 1, double, ""), ("timestamp", 2, int64, ""))
    _message(
        f, "Exemplar",
        ("labels", 1, msg, "*.prometheus.Label"), ("value", 2, double, ""), ("timestamp", 3, int64, ""),
    )
    _message(f, "Histogram")  # read only to be counted; its fields stay unknown
    _message(
        f, "MetricMetadata",
        ("type", 1, enum, ".prometheus.MetricMetadata.MetricType"),
        ("metric_family_name", 2, string, ""),
        ("help", 4, string, ""),
        ("unit", 5, string, ""),
    )
    kinds = f.message_type[-1].enum_type.add(name="MetricType")
    # Wire-compatible views for the columnar path: each TimeSeries as its raw bytes, and
    # the samples of a whole request (their fields concatenated) as two repeated fields.
    _message(
        f, "RawWriteRequest",
        ("timeseries", 1, _F.TYPE_BYTES, "*"),
        ("metadata", 3, msg, "*.prometheus.MetricMetadata"),
    )
    _message(f, "SampleColumns", ("value", 1, double, "*"), ("timestamp", 2, int64, "*"))
    names = ("UNKNOWN", "COUNTER", "GAUGE", "HISTOGRAM", "GAUGEHISTOGRAM", "SUMMARY", "INFO", "STATESET")
    for number, name in enumerate(names):
        kinds.value.add(name=name, number=number)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    get = message_factory.GetMessageClass
    return {m.name: get(pool.FindMessageTypeByName("prometheus." + m.name)) for m in f.message_type}


MESSAGES = _build_classes()
"""The message classes by name: WriteRequest, TimeSeries, Label, Sample, Exemplar,
Histogram, MetricMetadata (for tests and benchmarks that build requests)."""
WriteRequest = MESSAGES["WriteRequest"]
_RawWriteRequest = MESSAGES.pop("RawWriteRequest")
_SampleColumns = MESSAGES.pop("SampleColumns")
_TimeSeries = MESSAGES["TimeSeries"]


# --- decoding ------------------------------------------------------------------------


def decode(payload: bytes, received_ns: int) -> Batch:
    """The samples of a WriteRequest (uncompressed protobuf) as metric points.

    `received_ns` is unused: every sample carries its own time. Raises DecodeError when
    the payload is not a WriteRequest; refused samples are counted in `rejected`.
    """
    batch = _columns(payload)
    return batch if batch is not None else _points(payload)


def _points(payload: bytes) -> Batch:
    """The request as GaugePoints and SumPoints: the path for any request `_columns`
    does not take."""
    req = WriteRequest()
    try:
        req.ParseFromString(payload)
    except Exception as exc:  # the library's DecodeError, or anything upb raises
        raise DecodeError(f"WriteRequest: not a valid protobuf message ({exc})") from None
    families = _families(req.metadata)
    gauges: list[GaugePoint] = []
    sums: list[SumPoint] = []
    rejections = Rejections()
    resources: dict[tuple[str, str], Resource] = {}
    streams: dict[tuple[str, str, str], tuple[MetricStream, int]] = {}
    for ts in req.timeseries:
        if ts.histograms:
            for _ in range(len(ts.histograms)):
                rejections.add("histogram", NATIVE_HISTOGRAM)
        name, job, instance, attrs = _named(ts.labels)
        if not name:
            for _ in range(len(ts.samples)):
                rejections.add("sample", NO_NAME)
            continue
        rkey = (job, instance)
        resource = resources.get(rkey)
        if resource is None:
            resource = resources[rkey] = _resource(job, instance)
        skey = (name, job, instance)
        hit = streams.get(skey)
        if hit is None:
            hit = streams[skey] = _stream(name, families, resource)
        stream, kind = hit
        samples = ts.samples
        if kind == _GAUGE:
            points = [GaugePoint(stream, attrs, 0, s.timestamp * MS_TO_NS, s.value) for s in samples]
            gauges.extend(_checked(points, rejections))
        else:
            monotonic = kind == _MONOTONIC
            points = [
                SumPoint(stream, attrs, 0, s.timestamp * MS_TO_NS, s.value, CUMULATIVE, monotonic) for s in samples
            ]
            sums.extend(_checked(points, rejections))
    return Batch(gauges=gauges, sums=sums, rejected=rejections.total, rejected_reason=rejections.reason())


_GAUGE, _MONOTONIC, _NON_MONOTONIC = 0, 1, 2


def _checked(points: list, rejections: Rejections) -> list:
    """`points` without those whose sample is a stale marker or out of range (counted)."""
    if all(0 <= p.time_ns <= MAX_TIME_NS and p.value == p.value for p in points):
        return points  # the usual case: one pass, no copy
    kept = []
    for p in points:
        if not 0 <= p.time_ns <= MAX_TIME_NS:
            rejections.add("sample", TIME_RANGE)
        elif p.value != p.value and _pack_double(p.value) == _STALE_BYTES:
            rejections.add("sample", STALE_MARKER)
        else:  # an ordinary NaN is a value
            kept.append(p)
    return kept


def _families(metadata: Any) -> dict[str, tuple[int, str, str]]:
    """Metric family name -> (MetricType, help, unit), from the request's metadata."""
    return {m.metric_family_name: (m.type, m.help, m.unit) for m in metadata if m.metric_family_name}


_SUFFIXES = {"_bucket": _MONOTONIC, "_count": _MONOTONIC, "_sum": _NON_MONOTONIC}


def _stream(name: str, families: dict[str, tuple[int, str, str]], resource: Resource) -> tuple[MetricStream, int]:
    """The stream of series `name` and whether its points are gauges or (non-)monotonic sums."""
    family = families.get(name)
    kind = _GAUGE
    if family is not None:
        if family[0] == _COUNTER:
            kind = _MONOTONIC
    else:
        for suffix, suffix_kind in _SUFFIXES.items():
            if name.endswith(suffix):
                base = families.get(name[: -len(suffix)])
                if base is not None and base[0] in (_HISTOGRAM, _SUMMARY):
                    family, kind = base, suffix_kind
                break
    _, help_, unit = family or (0, "", "")
    return MetricStream(name, help_, unit, resource, SCOPE), kind


# --- the columnar path ---------------------------------------------------------------

# The last field of a series holding one sample: `samples` (field 2, 16 bytes) = value
# (field 1, a double) then timestamp (field 2, a 6-byte varint: every millisecond time
# from 1971 to 2109). With the value 0.0, which proto3 leaves out, the field is 9 bytes.
_SAMPLE_TAIL = 18
_ONE_TAIL = re.compile(rb"\x12(?:\x10\x09.{8}|\x07)\x10[\x80-\xff]{5}[\x00-\x7f]\Z", re.S)
_ZERO_VALUE = b"\x09" + bytes(8)  # the value field of 0.0, written out
_TAIL_BYTES = np.arange(_SAMPLE_TAIL)
_VARINT_SHIFTS = np.arange(6, dtype=np.int64) * 7


class _Labels(NamedTuple):
    """What one label set (a series' raw label bytes) decodes to."""

    name: str  # "" when the series has no __name__
    job: str
    instance: str
    attributes: dict[str, str]
    series_id: int
    stream_number: int  # of the stream of its points when the request has no metadata (gauges)


_ATTRIBUTES = operator.attrgetter("attributes")
_SERIES_ID = operator.attrgetter("series_id")
_STREAM_NUMBER = operator.attrgetter("stream_number")
_MAX_CACHED = 200_000


class _Cache:
    """Per process, what label sets decode to: cleared when full, and only between
    requests, so the stream numbers a request's label sets carry stay valid for it."""

    def __init__(self) -> None:
        self._reset()

    def clear_if_full(self) -> None:
        if len(self.labels) >= _MAX_CACHED:
            self._reset()

    def _reset(self) -> None:
        self.labels: dict[bytes, _Labels] = {}  # a series' raw label bytes -> its label set
        self.nameless = 0  # label sets in `labels` without a __name__
        # the streams of gauges without metadata, numbered, shared by the label sets (the
        # store converts a stream's columns once per distinct stream)
        self.stream_numbers: dict[tuple[str, str, str], int] = {}  # (name, job, instance) -> number
        self.streams: list[MetricStream] = []
        self.resources: dict[tuple[str, str], Resource] = {}


_cache = _Cache()


class _NotColumnar(Exception):
    """The request has a shape the columnar path does not take."""


def _columns(payload: bytes) -> Batch | None:
    """The request as MetricColumns, or None when a series is not its labels followed by
    one sample (the per-point path then decodes it)."""
    req = _RawWriteRequest()
    try:
        req.ParseFromString(payload)
    except Exception:
        return None  # the per-point path says what is wrong
    series = list(req.timeseries)
    if not series:
        return None
    _cache.clear_if_full()
    try:
        keys, time_ms, values = _split(series)
        distinct = dict.fromkeys(keys)
        if len(distinct) == len(keys):  # the usual request: each series once, in order
            point_series = pa.array(np.arange(len(keys), dtype=np.int32))
        else:
            index = {key: i for i, key in enumerate(distinct)}
            point_series = pa.array(list(map(index.__getitem__, keys)), pa.int32())
            keys = list(index)
        labels = list(map(_cache.labels.get, keys))
        if None in labels:
            labels = [found or _read_labels(key) for found, key in zip(labels, keys)]
    except _NotColumnar:
        return None
    if not len(values) == len(time_ms) == len(point_series):
        return None  # cannot happen after _split's checks; the other path is exact
    time_ms, values = pa.array(time_ms), pa.array(values)
    rejections = Rejections()
    kept = _kept_points(labels, point_series, time_ms, values, rejections)
    families = _families(req.metadata)
    time_ns = pc.multiply(time_ms, MS_TO_NS) if kept is None else pc.multiply(time_ms.filter(kept), MS_TO_NS)
    if kept is not None:
        point_series, values = point_series.filter(kept), values.filter(kept)
    parts = _by_kind(labels, families, point_series, time_ns, values)
    return Batch(metric_columns=parts, rejected=rejections.total, rejected_reason=rejections.reason())


def _split(series: list[bytes]) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Each series' label bytes, and its one sample's time (ms) and value. Raises
    _NotColumnar when a series does not end with one sample field."""
    lengths = np.fromiter(map(len, series), np.int64, len(series))
    if lengths.min() >= _SAMPLE_TAIL:
        # the usual case, checked and read for all series at once: their last 18 bytes
        # side by side, each a sample with its value there (not 0.0) and a 6-byte time
        data = np.frombuffer(b"".join(series), np.uint8)
        tails = data[(np.cumsum(lengths) - _SAMPLE_TAIL)[:, None] + _TAIL_BYTES]
        if ((tails[:, :3] == (0x12, 0x10, 0x09)).all() and (tails[:, 11] == 0x10).all()
                and (tails[:, 12:17] >= 0x80).all() and (tails[:, 17] < 0x80).all()):
            values = np.ascontiguousarray(tails[:, 3:11]).view("<f8").ravel()
            time_ms = ((tails[:, 12:18] & 0x7F).astype(np.int64) << _VARINT_SHIFTS).sum(axis=1)
            return [s[:-_SAMPLE_TAIL] for s in series], time_ms, values
    keys, samples = [], []
    for s in series:
        m = _ONE_TAIL.search(s, max(0, len(s) - _SAMPLE_TAIL))
        if m is None:
            raise _NotColumnar
        start = m.start()
        keys.append(s[:start])
        samples.append(s[start + 2:] if s[start + 1] == 16 else _ZERO_VALUE + s[start + 2:])
    columns = _SampleColumns()
    columns.ParseFromString(b"".join(samples))
    return keys, np.array(columns.timestamp, np.int64), np.array(columns.value, np.float64)


def _read_labels(key: bytes) -> _Labels:
    """The label set of raw label bytes `key`, cached. Raises _NotColumnar unless `key`
    is exactly a series' labels as protobuf writes them (so the cut before the sample
    was at a field boundary, and equal label sets have equal keys)."""
    ts = _TimeSeries()
    try:
        ts.ParseFromString(key)
    except Exception:
        raise _NotColumnar from None
    if ts.samples or ts.exemplars or ts.histograms or ts.SerializeToString() != key:
        raise _NotColumnar
    name, job, instance, attributes = _named(ts.labels)
    series_id = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    number = _cache.stream_numbers.get((name, job, instance))
    if number is None:
        resource = _cache.resources.get((job, instance))
        if resource is None:
            resource = _cache.resources[job, instance] = _resource(job, instance)
        number = _cache.stream_numbers[name, job, instance] = len(_cache.streams)
        _cache.streams.append(MetricStream(name, "", "", resource, SCOPE))
    found = _cache.labels[key] = _Labels(name, job, instance, attributes, series_id, number)
    _cache.nameless += not name
    return found


def _named(labels: Any) -> tuple[str, str, str, dict[str, str]]:
    """A series' labels by the naming rule (module docstring): its metric name ("" when
    it has none), job (service), instance and point attributes."""
    values = {label.name: label.value for label in labels}
    name = values.pop("__name__", "")
    job = values.pop("job", "") or DEFAULT_SERVICE
    return name, job, values.get("instance", ""), {k: v for k, v in values.items() if v}


def _resource(job: str, instance: str) -> Resource:
    """The resource of a series: the job as service.name, the instance as its id."""
    attributes = {"service.name": job}
    if instance:
        attributes["service.instance.id"] = instance
    return Resource(job, attributes)


def _kept_points(labels: list[_Labels], point_series: pa.Array, time_ms: pa.Array, values: pa.Array,
                 rejections: Rejections) -> pa.Array | None:
    """A mask of the points to keep (None: all of them), counting the others: samples of
    series without a name, times out of range, stale markers (in that order)."""
    nameless = [i for i, series in enumerate(labels) if not series.name] if _cache.nameless else []
    low, high = pc.min_max(time_ms).values()
    if not nameless and 0 <= low.as_py() and high.as_py() <= MAX_TIME_MS and not pc.any(pc.is_nan(values)).as_py():
        return None  # the usual case
    no_name = pc.is_in(point_series, pa.array(nameless, pa.int32()))
    bad_time = pc.and_not(pc.or_(pc.less(time_ms, 0), pc.greater(time_ms, MAX_TIME_MS)), no_name)
    stale = pc.equal(values.view(pa.uint64()), pa.scalar(STALE_NAN_BITS, pa.uint64()))
    stale = pc.and_not(pc.and_not(stale, no_name), bad_time)
    for mask, reason in ((no_name, NO_NAME), (bad_time, TIME_RANGE), (stale, STALE_MARKER)):
        for _ in range(pc.sum(mask).as_py() or 0):
            rejections.add("sample", reason)
    return pc.invert(pc.or_(pc.or_(no_name, bad_time), stale))


def _by_kind(labels: list[_Labels], families: dict[str, tuple[int, str, str]],
             point_series: pa.Array, time_ns: pa.Array, values: pa.Array) -> tuple[MetricColumns, ...]:
    """The points as one MetricColumns per kind (gauges, monotonic and other sums),
    each holding only the series it has points of."""
    if families:
        streams, series_stream, series_kind = _streams(labels, families)
    else:  # the usual request, whose metadata Prometheus sends apart: gauges only
        streams, series_stream = _gauge_streams(labels)
        series_kind = None
    attributes = list(map(_ATTRIBUTES, labels))
    series_ids = np.fromiter(map(_SERIES_ID, labels), np.uint64, len(labels))
    kinds = [_GAUGE] if series_kind is None else np.unique(series_kind).tolist()
    parts = []
    for kind in kinds:
        idx, times, vals = point_series, time_ns, values
        if len(kinds) > 1:
            mask = pc.equal(pa.array(series_kind).take(point_series), kind)
            idx, times, vals = point_series.filter(mask), time_ns.filter(mask), values.filter(mask)
        if not len(idx):
            continue
        part = MetricColumns(
            streams, series_stream, attributes, series_ids, idx, times, vals,
            aggregation_temporality=0 if kind == _GAUGE else CUMULATIVE,
            is_monotonic=kind == _MONOTONIC,
        )
        parts.append(_without_idle_series(part))
    return tuple(parts)


def _gauge_streams(labels: list[_Labels]) -> tuple[list[MetricStream], np.ndarray]:
    """The distinct streams of gauges without metadata among `labels`, and each series'
    index into them (counted over the process' stream numbers: no Python loop)."""
    numbers = np.fromiter(map(_STREAM_NUMBER, labels), np.int32, len(labels))
    present = np.zeros(len(_cache.streams), bool)
    present[numbers] = True
    used = np.flatnonzero(present)
    renumbered = np.cumsum(present, dtype=np.int32) - 1
    return [_cache.streams[i] for i in used.tolist()], renumbered[numbers]


def _without_idle_series(part: MetricColumns) -> MetricColumns:
    """`part` without the series it has no point of (another kind's, or refused)."""
    present = np.zeros(len(part.series_ids), bool)
    present[part.point_series.to_numpy()] = True
    if present.all():
        return part
    used = np.flatnonzero(present)
    position = np.full(len(part.series_ids), -1, np.int32)
    position[used] = np.arange(len(used), dtype=np.int32)
    return only_series(part, used, pa.array(position).take(part.point_series))


def _streams(labels: list[_Labels], families: dict[str, tuple[int, str, str]]
             ) -> tuple[list[MetricStream], np.ndarray, np.ndarray]:
    """The distinct streams the request's metadata makes of `labels`, each series'
    index into them and each series' kind."""
    numbers: dict[tuple[str, str, str], int] = {}
    streams, kinds = [], []
    series_stream, series_kind = [], []
    for series in labels:
        skey = (series.name, series.job, series.instance)
        number = numbers.get(skey)
        if number is None:
            resource = _cache.streams[series.stream_number].resource
            stream, kind = _stream(series.name, families, resource)
            number = numbers[skey] = len(streams)
            streams.append(stream)
            kinds.append(kind)
        series_stream.append(number)
        series_kind.append(kinds[number])
    return streams, np.array(series_stream, np.int32), np.array(series_kind, np.int8)
