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

Rejected (counted, reason in the batch): staleness markers (the special NaN Prometheus
writes when a series disappears; any other NaN is kept), times whose nanoseconds fall
outside 0..2**63-1, every sample of a series with no `__name__`, native histograms.
Exemplars are not kept yet.
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from koban import __version__
from koban.errors import DecodeError
from koban.ingest.otlp_values import MAX_TIME_NS, Rejections
from koban.model import Batch, GaugePoint, MetricStream, Resource, Scope, SumPoint

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


# --- decoding ------------------------------------------------------------------------


def decode(payload: bytes, received_ns: int) -> Batch:
    """The samples of a WriteRequest (uncompressed protobuf) as metric points.

    `received_ns` is unused: every sample carries its own time. Raises DecodeError when
    the payload is not a WriteRequest; refused samples are counted in `rejected`.
    """
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
        labels = {label.name: label.value for label in ts.labels}
        name = labels.pop("__name__", "")
        if not name:
            for _ in range(len(ts.samples)):
                rejections.add("sample", NO_NAME)
            continue
        job = labels.pop("job", "") or DEFAULT_SERVICE
        instance = labels.get("instance", "")
        attrs = {k: v for k, v in labels.items() if v}
        rkey = (job, instance)
        resource = resources.get(rkey)
        if resource is None:
            res = {"service.name": job, "service.instance.id": instance} if instance else {"service.name": job}
            resource = resources[rkey] = Resource(job, res)
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
