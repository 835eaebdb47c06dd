"""Secret scrubbing rules and the ingest policy (ingest/scrub.py, ingest/guard.py)."""

from __future__ import annotations

import functools
import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.errors import ConfigError
from koban.ingest.guard import IngestPolicy, apply_policy, decode_batch
from koban.ingest.scrub import DEFAULT_RULES, _apply, REDACTED, compile_rules, luhn_valid, parse_user_rules, rule_set
from koban.model import (
    EMPTY_SCOPE,
    Batch,
    GaugePoint,
    LogColumns,
    LogRecord,
    MetricStream,
    Resource,
    Span,
    SpanEvent,
)
from koban.pipeline.guarded_decode import decode_in_worker
from e2e.payloads import log_request

DEFAULTS = compile_rules(DEFAULT_RULES)


def scrub(value: str, field: str = "body") -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    return DEFAULTS.scrub(value, field, counts), counts


@pytest.mark.parametrize(
    "text,masked,rule",
    [
        ("login failed password=hunter2 user=bob", "login failed password=[REDACTED] user=bob", "password"),
        ("PASSWORD: hunter2", "PASSWORD: [REDACTED]", "password"),
        ('{"passwd": "s3cr3t!", "user": "bob"}', '{"passwd": "[REDACTED]", "user": "bob"}', "password"),
        ("db secret=abc123 ok", "db secret=[REDACTED] ok", "password"),
        ("GET /v1?api_key=abc123&page=2", "GET /v1?api_key=[REDACTED]&page=2", "password"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: [REDACTED]", "authorization"),
        ("calling with Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "calling with Bearer [REDACTED]",
         "bearer_token"),
        ("paid with 4111 1111 1111 1111 today", "paid with [REDACTED] today", "credit_card"),
        ("card 5500-0000-0000-0004", "card [REDACTED]", "credit_card"),
        ("amex 378282246310005", "amex [REDACTED]", "credit_card"),
        ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used", "aws_access_key_id"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         "aws_secret_access_key = [REDACTED]", "aws_secret_access_key"),
    ],
)
def test_each_default_rule_masks_its_secret(text, masked, rule):
    out, counts = scrub(text)
    assert out == masked
    assert counts.get(rule) == 1


@pytest.mark.parametrize(
    "text",
    [
        "password reset email sent to bob",  # the word alone is not a secret
        "passwordless login enabled",
        "order 4111 1111 1111 1112 shipped",  # 16 digits that fail the Luhn check: an order id
        "at 1732631234567890123 ns",  # an epoch timestamp in ns (19 digits, starts with 1)
        "request 0000000000001234 done",
        "bearer of bad news",  # "bearer" without a token-like word of 8+ characters
        "AKIA is not a key",
        "status 200 in 34ms",
        "",
    ],
)
def test_near_misses_are_kept(text):
    assert scrub(text) == (text, {})


def test_luhn_accepts_card_numbers_and_refuses_one_digit_off():
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


def test_an_attribute_whose_key_names_a_secret_is_masked_whole():
    batch = Batch(logs=[_log("hello", {"http.request.header.authorization": "Basic abc", "db.password": "x",
                                       "user.id": "42", "password_hint": "colour"})])
    guarded = apply_policy(IngestPolicy(DEFAULT_RULES), batch)
    attrs = guarded.batch.logs[0].attributes
    assert attrs == {"http.request.header.authorization": REDACTED, "db.password": REDACTED,
                     "user.id": "42", "password_hint": "colour"}
    assert guarded.scrubbed == {"sensitive_key": 2}


def test_a_user_rule_applies_after_the_defaults_and_only_to_its_fields():
    rules = parse_user_rules((
        {"name": "email", "pattern": r"[\w.]+@[\w.]+", "replacement": "<email>", "fields": ["body", "user"]},
        {"name": "host", "pattern": r"\b(\w+)\.corp\.example\.com", "replacement": r"\1.corp"},
    ))
    batch = Batch(logs=[_log("mail bob@example.com password=x on db1.corp.example.com",
                             {"user": "amy@example.com", "note": "cc amy@example.com"})])
    guarded = apply_policy(IngestPolicy(rule_set(True, rules)), batch)
    record = guarded.batch.logs[0]
    assert record.body == "mail <email> password=[REDACTED] on db1.corp"
    assert record.attributes == {"user": "<email>", "note": "cc amy@example.com"}
    assert guarded.scrubbed == {"email": 2, "password": 1, "host": 1}


def test_default_rules_can_be_turned_off():
    batch = Batch(logs=[_log("password=hunter2", {})])
    assert apply_policy(IngestPolicy(rule_set(False, ())), batch).batch.logs[0].body == "password=hunter2"


@pytest.mark.parametrize(
    "table,fragment",
    [
        ({"name": "broken", "pattern": "([a-z"}, "scrub_rules[0] ('broken'): invalid regular expression"),
        ({"name": "x", "pattern": "a", "replacement": r"\2"}, "refers to group 2"),
        ({"pattern": "a"}, "'name' must be a non-empty string"),
        ({"name": "x", "pattern": "a", "colour": "red"}, "unknown key(s) colour"),
        ({"name": "x", "pattern": "a", "fields": "body"}, "'fields' must be a list"),
    ],
)
def test_a_bad_user_rule_is_refused_naming_it(table, fragment):
    with pytest.raises(ConfigError) as info:
        parse_user_rules((table,))
    assert fragment in str(info.value)


def test_a_bad_rule_in_koban_toml_stops_the_settings(tmp_path):
    from koban.settings import load_settings

    config = tmp_path / "koban.toml"
    config.write_text('[[scrub_rules]]\nname = "tickets"\npattern = "TICKET-(\\\\d+"\n')
    with pytest.raises(ConfigError, match="'tickets'"):
        load_settings(environ={}, config_file=str(config))


def test_log_columns_are_scrubbed_capped_and_truncated_in_place():
    resource = Resource("web", {"service.name": "web", "deploy.token_secret": "abc"})
    cols = LogColumns.from_records([
        _log("ok", {"a": "1", "b": "2", "c": "3"}, resource),
        _log("Bearer abcdefghijkl", {"long": "x" * 50}, resource),
    ])
    guarded = apply_policy(IngestPolicy(DEFAULT_RULES, max_attributes=2, max_value_length=10),
                           Batch(log_columns=(cols,)))
    records = guarded.batch.with_log_records().logs
    assert [r.body for r in records] == ["ok", "Bearer [REDACTED]"]
    assert records[0].attributes == {"a": "1", "b": "2"}  # the first ones stay
    assert records[1].attributes == {"long": "x" * 10}
    assert records[0].resource.attributes == {"service.name": "web", "deploy.token_secret": REDACTED}
    assert records[0].resource is records[1].resource  # still shared
    assert (guarded.attributes_dropped, guarded.values_truncated) == (1, 1)


def test_spans_events_and_metric_points_are_scrubbed_too():
    resource = Resource("api", {"service.name": "api"})
    span = Span(1, 2, "t" * 32, "s" * 16, "", "", "GET", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET", "",
                {"http.url": "/login?password=pw1"}, (SpanEvent(1, "exception", {"message": "api_key=k1"}),),
                (), resource, EMPTY_SCOPE)
    stream = MetricStream("logins", "", "1", resource, EMPTY_SCOPE)
    point = GaugePoint(stream, {"card": "4111111111111111"}, 0, 1, 1.0)
    out = apply_policy(IngestPolicy(DEFAULT_RULES), Batch(spans=[span], gauges=[point])).batch
    assert out.spans[0].attributes == {"http.url": "/login?password=[REDACTED]"}
    assert out.spans[0].events[0].attributes == {"message": "api_key=[REDACTED]"}
    assert out.gauges[0].attributes == {"card": REDACTED}


def test_an_inactive_policy_returns_the_batch_itself():
    batch = Batch(logs=[_log("password=x", {})])
    assert apply_policy(IngestPolicy(), batch).batch is batch


def test_the_worker_function_pickles_and_brings_its_counts_back_from_a_spawned_process():
    policy = IngestPolicy(rule_set(True, ()), 128, 1000)
    work = functools.partial(decode_in_worker, policy)
    assert pickle.loads(pickle.dumps(work)).args == (policy,)
    payload = log_request(["password=hunter2", "fine"])
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        guarded = pool.submit(work, "otlp-proto/logs", payload, 1).result(timeout=30)
    assert guarded.scrubbed == {"password": 1}
    assert guarded.batch.prepared_logs and guarded.batch.record_count == 2  # ready for the store
    assert guarded.batch.prepared_logs[0].column("Body").to_pylist() == ["password=[REDACTED]", "fine"]
    replayed = decode_batch(policy, "otlp-proto/logs", payload, 1).with_log_records()
    assert [r.body for r in replayed.logs] == ["password=[REDACTED]", "fine"]


def _log(body: str, attributes: dict[str, str], resource: Resource | None = None) -> LogRecord:
    resource = resource or Resource("web", {"service.name": "web"})
    return LogRecord(1, 1, "", "", 0, "INFO", 9, body, attributes, resource, EMPTY_SCOPE)


# Pieces of text near and on what the default rules mask, in several cases, so that
# random joins of them make secrets, near misses and words that only look alike.
_PIECES = (
    "password", "Passwd", "PWD", "secret", "api_key", "API-KEY", "apikey", "authorization",
    "Authorization", "bearer ", "Bearer ", "AKIA", "ASIA", "aws_secret_access_key", "passed",
    "authorized", "pass", "=", ":", " ", '"', "'", "-", "x", "7", "4111 1111 1111 1111",
    "4111111111111111", "5500-0000-0000-0004", "378282246310005", "abcdEFGH0123456789/+ab",
)


_WORDS = _PIECES[:18]
_JOINS = ("=", ":", ": ", "='", '":"', " = ", " ")
# a word, a join and something after it, inside other text: the shape of a secret
_SECRETISH = st.tuples(
    st.sampled_from(_PIECES), st.sampled_from(_WORDS), st.sampled_from(_JOINS), st.sampled_from(_PIECES[24:]),
).map("".join)
_VALUES = st.one_of(_SECRETISH, st.lists(st.sampled_from(_PIECES), max_size=8).map("".join))


@settings(max_examples=400, deadline=None)
@given(st.lists(_VALUES, max_size=12))
def test_trigger_words_never_hide_what_the_rules_mask(values):
    # the trigger words (suspects, then scrub) only skip work: every rule applied to
    # every value, unconditionally, must give the same text
    every_rule = [_apply(DEFAULTS.default_rules, v, {}) for v in values]
    suspects = set(DEFAULTS.suspects(values))
    assert {i for i, (v, w) in enumerate(zip(values, every_rule)) if v != w} <= suspects
    assert [DEFAULTS.scrub(v, "body", {}) for v in values] == every_rule
