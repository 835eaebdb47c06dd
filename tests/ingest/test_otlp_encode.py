"""The OTLP encoder is the decoder's inverse: decode(encode(batch)) == batch."""

from __future__ import annotations

from koban.ingest import otlp_encode, otlp_proto
from koban.model import (
    Batch,
    Exemplar,
    ExpHistogramPoint,
    GaugePoint,
    HistogramPoint,
    LogRecord,
    MetricStream,
    Resource,
    Scope,
    SummaryPoint,
    SumPoint,
)

WEB = Resource("web", {"service.name": "web", "host.name": "h1"})
DB = Resource("db", {"service.name": "db"})
SCOPE = Scope("koban.statsd", "0.1.0")
T = 1_767_225_600_000_000_000


def stream(name: str, resource: Resource = WEB, unit: str = "") -> MetricStream:
    return MetricStream(name, "", unit, resource, SCOPE)


def test_metric_points_of_every_kind_round_trip():
    batch = Batch(
        gauges=[
            GaugePoint(stream("fuel"), {"tank": "a"}, T, T + 10, 0.5),
            GaugePoint(stream("fuel"), {"tank": "b"}, T, T + 10, -2.0),
            GaugePoint(stream("fuel", DB), {}, T, T + 10, 7.0,
                       exemplars=(Exemplar(T + 1, 3.0, "ab" * 16, "cd" * 8, {"k": "v"}),)),
        ],
        sums=[
            SumPoint(stream("req"), {"code": "200"}, T, T + 10, 42.0, 1, True),
            SumPoint(stream("queue"), {}, T, T + 10, -3.0, 2, False),
        ],
        histograms=[HistogramPoint(stream("h"), {}, T, T + 10, 3, 6.0, (1, 2, 0), (1.0, 5.0), 1.0, 3.0, 1)],
        exp_histograms=[
            ExpHistogramPoint(stream("lat", unit="ms"), {"route": "/"}, T, T + 10, 5, 12.5, 7, 1, 100, (1, 0, 2),
                              -3, (1,), -1.0, 9.0, 1),
            ExpHistogramPoint(stream("empty"), {}, T, T + 10, 0, 0.0, 7, 0, 0, (), 0, (), None, None, 1),
        ],
        summaries=[SummaryPoint(stream("s"), {}, T, T + 10, 2, 3.0, (0.5, 0.99), (1.0, 2.0))],
    )
    decoded = otlp_proto.decode_metrics(otlp_encode.encode_metrics(batch), T)
    for field in ("gauges", "sums", "histograms", "exp_histograms", "summaries"):
        assert sorted(getattr(decoded, field), key=repr) == sorted(getattr(batch, field), key=repr), field
    assert decoded.rejected == 0


def test_log_records_round_trip():
    records = [
        LogRecord(T, T + 1, "", "", 0, "ERROR", 17, "Deploy failed\nrollback", {"event.title": "Deploy"}, WEB, SCOPE),
        LogRecord(T, T + 1, "ab" * 16, "cd" * 8, 1, "INFO", 9, "ok", {}, DB, SCOPE),
    ]
    decoded = otlp_proto.decode_logs(otlp_encode.encode_logs(Batch(logs=records)), T).with_log_records()
    assert list(decoded.logs) == records


def test_the_statsd_name_for_the_encoder_is_the_same_function():
    assert otlp_encode.batch_to_otlp_metrics is otlp_encode.encode_metrics
