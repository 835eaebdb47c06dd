"""Every decoder and parser (fuzz/targets.py) under hypothesis: random bytes, mutated
seeds, syntax-piece text and structure-aware protobuf. The only allowed outcomes are a
result or the target's own error type; a decoded Batch must also fit the store.

Example counts are small so CI stays fast; KOBAN_FUZZ_EXAMPLES raises them:
    KOBAN_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:cacheprovider tests/fuzz
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from fuzz.strategies import METRIC_QUERY_PIECES, QUERY_PIECES, TIME_PIECES, mutated, protobuf_messages, text_inputs
from fuzz.targets import BY_NAME, TARGETS, Target, check, examples
from ingest.conftest import assert_fits_store
from koban.ingest.prom_remote_write import MESSAGES
from koban.model import Batch

FUZZ = settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
TEXT_PIECES = {"search": QUERY_PIECES, "search_compile": QUERY_PIECES, "metric_query": METRIC_QUERY_PIECES}


def _outcome_is_allowed(target: Target, data: bytes) -> None:
    result = check(target, data)
    if isinstance(result, Batch):
        assert result.rejected >= 0 and (result.rejected == 0) == (result.rejected_reason == "")
        assert_fits_store(result)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_get_a_result_or_the_targets_own_error(target, data):
    _outcome_is_allowed(target, data)


SEEDS = {t.name: t.seeds() for t in TARGETS}  # read once, not per example


@pytest.mark.parametrize("target", [t for t in TARGETS if SEEDS[t.name]], ids=lambda t: t.name)
@FUZZ
@given(choice=st.data())
def test_mutated_seeds_get_a_result_or_the_targets_own_error(target, choice):
    data = choice.draw(mutated(SEEDS[target.name]))
    _outcome_is_allowed(target, data)


@pytest.mark.parametrize("target", [t for t in TARGETS if t.text], ids=lambda t: t.name)
@FUZZ
@given(choice=st.data())
def test_syntax_pieces_get_a_result_or_the_targets_own_error(target, choice):
    data = choice.draw(text_inputs(TEXT_PIECES.get(target.name, TIME_PIECES)))
    _outcome_is_allowed(target, data)


PROTOBUF_SHAPES = {
    "otlp_proto_logs": ExportLogsServiceRequest,
    "otlp_proto_traces": ExportTraceServiceRequest,
    "otlp_proto_metrics": ExportMetricsServiceRequest,
    "prom_rw_metrics": MESSAGES["WriteRequest"],
}


@pytest.mark.parametrize("name", sorted(PROTOBUF_SHAPES))
@FUZZ
@given(choice=st.data())
def test_well_formed_protobuf_of_any_content_gets_a_result_or_a_decode_error(name, choice):
    data = choice.draw(protobuf_messages(PROTOBUF_SHAPES[name]))
    _outcome_is_allowed(BY_NAME[name], data)
