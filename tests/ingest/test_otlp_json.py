"""OTLP/JSON decoding: the golden files, the spellings senders use, and shape errors."""

from __future__ import annotations

import math

import orjson
import pytest

from koban.errors import DecodeError
from koban.ingest import otlp_json

RECEIVED = 1_767_225_600_000_000_000


def _logs(records: list[dict], **resource_logs: object) -> bytes:
    return orjson.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": records}], **resource_logs}]})


def _spans(spans: list[dict]) -> bytes:
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})


def _metrics(metrics: list[dict]) -> bytes:
    return orjson.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": metrics}]}]})


def test_it_reads_the_golden_logs_file(otlp):
    batch = otlp_json.decode_logs((otlp.DATA / "logs.json").read_bytes(), RECEIVED)

    first = batch.logs[0]
    assert (first.trace_id, first.span_id) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert (first.timestamp_ns, first.observed_ns) == (1544712660300000000, 1544712660300000001)
    assert first.attributes["int.attribute"] == "10"
    assert first.attributes["double.attribute"] == "637.704"
    assert first.attributes["whole.double.attribute"] == "250.0"
    assert first.attributes["map.attribute.user.id"] == "7"
    assert first.attributes["array.attribute"] == '["many",2,false]'
    assert first.resource.schema_url == "https://opentelemetry.io/schemas/1.24.0"
    assert batch.logs[1].body == '{"event":"payment failed","amount":12.5}'
    assert batch.logs[2].timestamp_ns == RECEIVED
    assert (batch.logs[3].severity_number, batch.logs[3].resource.service_name) == (13, "unknown_service")


def test_it_reads_the_golden_trace_file(otlp):
    batch = otlp_json.decode_traces((otlp.DATA / "trace.json").read_bytes(), RECEIVED)

    server, client, skewed = batch.spans
    assert (server.kind, server.status_code, server.status_message) == ("SPAN_KIND_SERVER", "STATUS_CODE_ERROR", "boom")
    assert server.links[0].trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert server.events[0].name == "exception"
    assert (client.kind, client.status_code, client.duration_ns) == ("SPAN_KIND_CLIENT", "STATUS_CODE_OK", 100_000_000)
    assert skewed.duration_ns == 0


def test_it_reads_the_golden_metrics_file(otlp):
    batch = otlp_json.decode_metrics((otlp.DATA / "metrics.json").read_bytes(), RECEIVED)

    assert batch.sums[0].exemplars[0].value == 3.0
    assert batch.gauges[0].value == 10.0 and math.isnan(batch.gauges[1].value)
    assert batch.histograms[0].aggregation_temporality == 2  # given by name
    assert batch.histograms[0].bucket_counts == (1, 1, 1)
    assert (batch.histograms[1].min, batch.histograms[1].max) == (None, None)
    assert batch.exp_histograms[0].negative_bucket_counts == (2,)
    assert batch.summaries[0].quantile_values == (20.0, 45.5)


def test_it_accepts_snake_case_field_names():
    payload = orjson.dumps(
        {
            "resource_logs": [
                {
                    "scope_logs": [
                        {
                            "log_records": [
                                {
                                    "time_unix_nano": "5",
                                    "observed_time_unix_nano": 6,
                                    "severity_number": 9,
                                    "severity_text": "INFO",
                                    "trace_id": "5b8efff798038103d269b633813fc60c",
                                    "span_id": "eee19b7ec3c1b174",
                                    "attributes": [{"key": "n", "value": {"int_value": 3}}],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )

    (log,) = otlp_json.decode_logs(payload, RECEIVED).logs

    assert (log.timestamp_ns, log.observed_ns, log.severity_number, log.severity_text) == (5, 6, 9, "INFO")
    assert (log.span_id, log.attributes) == ("eee19b7ec3c1b174", {"n": "3"})


def test_it_accepts_doubles_as_numbers_strings_and_special_names():
    payload = _metrics(
        [
            {
                "gauge": {
                    "dataPoints": [
                        {"asDouble": 1},
                        {"asDouble": "2.5"},
                        {"asDouble": "Infinity"},
                        {"asDouble": "-Infinity"},
                        {"asInt": 7},
                    ]
                }
            }
        ]
    )

    values = [p.value for p in otlp_json.decode_metrics(payload, RECEIVED).gauges]

    assert values == [1.0, 2.5, math.inf, -math.inf, 7.0]


def test_it_ignores_unknown_fields_and_nulls():
    payload = _logs([{"body": None, "somethingNew": {"x": 1}, "traceId": None, "attributes": None}], extra=[1, 2])

    (log,) = otlp_json.decode_logs(payload, RECEIVED).logs

    assert (log.body, log.trace_id, log.attributes) == ("", "", {})


def test_it_decodes_base64_bytes_values_standard_or_url_safe():
    payload = _logs(
        [
            {
                "attributes": [
                    {"key": "std", "value": {"bytesValue": "+/8="}},
                    {"key": "url", "value": {"bytesValue": "-_8"}},
                ]
            }
        ]
    )

    (log,) = otlp_json.decode_logs(payload, RECEIVED).logs

    assert log.attributes == {"std": "+/8=", "url": "+/8="}


def test_it_rejects_spans_and_logs_with_wrong_id_lengths_as_partial_success():
    spans = _spans(
        [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"},
            {"traceId": "abcd", "spanId": "eee19b7ec3c1b174"},
            {"traceId": "5b8efff798038103d269b633813fc60c"},
        ]
    )
    logs = _logs([{"traceId": "abcd"}, {"spanId": "00"}, {}])

    span_batch = otlp_json.decode_traces(spans, RECEIVED)
    log_batch = otlp_json.decode_logs(logs, RECEIVED)

    assert (len(span_batch.spans), span_batch.rejected) == (1, 2)
    assert span_batch.rejected_reason == (
        "1 span rejected: trace_id must be 16 bytes; 1 span rejected: span_id must be 8 bytes"
    )
    assert (len(log_batch.logs), log_batch.rejected) == (1, 2)


def test_it_counts_a_metric_without_data_as_rejected():
    batch = otlp_json.decode_metrics(_metrics([{"name": "empty"}, {"name": "g", "gauge": {}}]), RECEIVED)

    assert (batch.metric_points, batch.rejected) == (0, 1)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "the request is not a JSON object"),
        (b'{"resourceLogs": {}}', "resourceLogs: not a list"),
        (b'{"resourceLogs": [1]}', "resourceLogs[0]: not an object"),
        (_logs([{}, {"traceId": "zz"}]), "resourceLogs[0].scopeLogs[0].logRecords[1].traceId: not hex"),
        (_logs([{"spanId": "abc"}]), "logRecords[0].spanId: not hex"),
        (_logs([{"traceId": 12}]), "logRecords[0].traceId: not a string"),
        (_logs([{"timeUnixNano": "soon"}]), "logRecords[0].timeUnixNano: not an integer"),
        (_logs([{"timeUnixNano": 1.5}]), "logRecords[0].timeUnixNano: not an integer"),
        (_logs([{"timeUnixNano": True}]), "logRecords[0].timeUnixNano: not an integer"),
        (_logs([{"timeUnixNano": -1}]), "logRecords[0].timeUnixNano: integer out of range"),
        (_logs([{"timeUnixNano": str(2**64)}]), "timeUnixNano: integer out of range"),
        (_logs([{"severityText": 3}]), "logRecords[0].severityText: not a string"),
        (_logs([{"severityNumber": [9]}]), "logRecords[0].severityNumber: not an integer"),
        (_logs([{"body": "text"}]), "logRecords[0].body: not an AnyValue object"),
        (_logs([{"attributes": {}}]), "logRecords[0].attributes: not a list"),
        (
            _logs([{"attributes": [{"key": "a", "value": {"kvlistValue": {"values": [{"key": "b", "value": {"intValue": "x"}}]}}}]}]),  # noqa: E501
            "logRecords[0].attributes[0].value.kvlistValue.values[0].value.intValue: not an integer",
        ),
        (_logs([{"attributes": [{"key": "a", "value": {"bytesValue": "!!"}}]}]), "bytesValue: not base64"),
        (_logs([{"attributes": [{"key": "a", "value": {"boolValue": "yes"}}]}]), "boolValue: not a boolean"),
        (_logs([{"attributes": [{"key": 1, "value": {}}]}]), "attributes[0].key: not a string"),
        (_logs([], resource={"attributes": 5}), "resourceLogs[0].resource.attributes: not a list"),
        (_spans([{"events": [{"timeUnixNano": "x"}]}]), "spans[0].events[0].timeUnixNano: not an integer"),
        (_spans([{"status": {"message": 1}}]), "spans[0].status.message: not a string"),
        (_spans([{"links": [{"spanId": "q"}]}]), "spans[0].links[0].spanId: not hex"),
        (
            _metrics([{"sum": {"dataPoints": [{"asDouble": "lots"}]}}]),
            "metrics[0].sum.dataPoints[0].asDouble: not a number",
        ),
        (
            _metrics([{"histogram": {"dataPoints": [{"bucketCounts": [1, -1]}]}}]),
            "dataPoints[0].bucketCounts[1]: integer out of range",
        ),
        (_metrics([{"gauge": {}, "sum": {}}]), "metrics[0]: more than one data kind (gauge, sum)"),
        (_metrics([{"sum": {"isMonotonic": "true"}}]), "metrics[0].sum.isMonotonic: not a boolean"),
        (
            _metrics([{"summary": {"dataPoints": [{"quantileValues": [{"quantile": "half"}]}]}}]),
            "quantileValues[0].quantile: not a number",
        ),
        (
            _metrics([{"exponentialHistogram": {"dataPoints": [{"scale": 2**40}]}}]),
            "dataPoints[0].scale: integer out of range",
        ),
    ],
)
def test_it_says_what_and_where_for_json_of_the_wrong_shape(payload, message):
    decode = otlp_json.decode_logs
    if b"resourceSpans" in payload:
        decode = otlp_json.decode_traces
    elif b"resourceMetrics" in payload:
        decode = otlp_json.decode_metrics

    with pytest.raises(DecodeError) as caught:
        decode(payload, RECEIVED)

    assert message in caught.value.message


def test_it_refuses_attribute_values_nested_too_deep():
    value: dict = {"stringValue": "bottom"}
    for _ in range(40):
        value = {"arrayValue": {"values": [value]}}

    with pytest.raises(DecodeError, match="nested too deep"):
        otlp_json.decode_logs(_logs([{"attributes": [{"key": "deep", "value": value}]}]), RECEIVED)
