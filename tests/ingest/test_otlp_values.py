"""How OTLP AnyValues become koban's string attributes and log bodies."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValueList

from koban.ingest.otlp_values import (
    Rejections,
    proto_attributes,
    proto_value_str,
    service_name,
    severity,
    span_kind,
    status_code,
)


def _attrs(otlp, values: dict) -> dict[str, str]:
    holder = KeyValueList()
    otlp.set_attrs(holder.values, values)
    return proto_attributes(holder.values)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        ("", ""),
        (None, ""),
        (7, "7"),
        (-(2**63), str(-(2**63))),
        (0.5, "0.5"),
        (250.0, "250.0"),
        (1e20, "1e+20"),
        (True, "true"),
        (False, "false"),
        (b"\x00\xff", "AP8="),
        ([1, "a", None, 2.5, [True]], '[1,"a",null,2.5,[true]]'),
        ([{"k": b"\x01"}], '[{"k":"AQ=="}]'),
        ([], "[]"),
    ],
)
def test_it_turns_each_value_type_into_its_string_form(otlp, value, text):
    assert _attrs(otlp, {"key": value}) == {"key": text}


def test_it_flattens_nested_key_value_lists_into_dotted_keys(otlp):
    attrs = _attrs(otlp, {"user": {"id": 7, "geo": {"city": "Oslo"}}, "empty": {}})

    assert attrs == {"user.id": "7", "user.geo.city": "Oslo", "empty": "{}"}


def test_it_lets_a_later_duplicate_key_win(otlp):
    holder = KeyValueList()
    for value in ("first", "second"):
        kv = holder.values.add()
        kv.key = "dup"
        kv.value.string_value = value

    assert proto_attributes(holder.values) == {"dup": "second"}


def test_it_writes_a_kvlist_body_as_a_json_object_not_flattened(otlp):
    body = AnyValue()
    otlp.set_any(body, {"user": {"id": 7}})

    assert proto_value_str(body, body.WhichOneof("value")) == '{"user":{"id":7}}'


def test_it_falls_back_to_unknown_service():
    assert service_name({}) == "unknown_service"
    assert service_name({"service.name": ""}) == "unknown_service"
    assert service_name({"service.name": "web"}) == "web"


def test_it_maps_enum_numbers_to_names_and_unknown_ones_to_the_default():
    assert [span_kind(n) for n in (2, 5, 6, -1)] == [
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CONSUMER",
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_UNSPECIFIED",
    ]
    assert [status_code(n) for n in (0, 2, 3)] == ["STATUS_CODE_UNSET", "STATUS_CODE_ERROR", "STATUS_CODE_UNSET"]
    assert [severity(n) for n in (0, 24, 25, -3)] == [0, 24, 0, 0]


def test_it_summarises_rejections_per_reason_in_plural_or_singular():
    rejections = Rejections()
    assert (rejections.total, rejections.reason()) == (0, "")
    for _ in range(2):
        rejections.add("span", "trace_id must be 16 bytes")
    rejections.add("span", "span_id must be 8 bytes")

    assert rejections.total == 3
    assert rejections.reason() == "2 spans rejected: trace_id must be 16 bytes; 1 span rejected: span_id must be 8 bytes"
