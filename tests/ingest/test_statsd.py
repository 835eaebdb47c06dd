"""The StatsD/DogStatsD line parser: every type and field, and a corpus of bad lines."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.ingest.statsd import REASONS, Event, ParseError, Sample, ServiceCheck, parse_datagram

GOOD = [
    # (line, the items it gives)
    ("page.views:1|c", [Sample("page.views", "c", 1.0)]),
    ("page.views:-3|c", [Sample("page.views", "c", -3.0)]),
    ("page.views:2|c|@0.1", [Sample("page.views", "c", 2.0, rate=0.1)]),
    ("fuel:0.5|g", [Sample("fuel", "g", 0.5)]),
    ("fuel:+4|g", [Sample("fuel", "g", 4.0, delta=True)]),
    ("fuel:-14|g", [Sample("fuel", "g", -14.0, delta=True)]),
    ("db.query:320.5|ms", [Sample("db.query", "ms", 320.5)]),
    ("db.query:320|ms|@0.25", [Sample("db.query", "ms", 320.0, rate=0.25)]),
    ("song.length:240|h", [Sample("song.length", "h", 240.0)]),
    ("upload.size:1e3|d", [Sample("upload.size", "d", 1000.0)]),
    ("users.unique:alice|s", [Sample("users.unique", "s", 0.0, member="alice")]),
    (
        "req:1|c|#env:prod,version:1.2,canary",
        [Sample("req", "c", 1.0, tags=("env:prod", "version:1.2", "canary"))],
    ),
    ("req:1|c|c:83c0a99c0a54c0c1", [Sample("req", "c", 1.0, container="83c0a99c0a54c0c1")]),
    ("req:1|c|T1767225600", [Sample("req", "c", 1.0, timestamp_s=1767225600)]),
    (
        "req:1|c|@0.5|#a:b|c:cid|e:it-false,cn-x|card:high|T1767225600|x:future-field",
        [Sample("req", "c", 1.0, rate=0.5, tags=("a:b",), container="cid", timestamp_s=1767225600)],
    ),
    ("lat:1:2.5:3|ms", [Sample("lat", "ms", 1.0), Sample("lat", "ms", 2.5), Sample("lat", "ms", 3.0)]),
    ("lat:1:2|d|#a:b", [Sample("lat", "d", 1.0, tags=("a:b",)), Sample("lat", "d", 2.0, tags=("a:b",))]),
    ("with spaces and.üñí:1|c", [Sample("with spaces and.üñí", "c", 1.0)]),
    ("req:1|c\r", [Sample("req", "c", 1.0)]),
    (
        "_e{5,12}:Title|Hello\\nworld|d:1767225600|h:web-1|k:deploy|p:low|s:jenkins|t:error|#env:prod|c:cid",
        [
            Event(
                "Title", "Hello\nworld", 1767225600, "web-1", "deploy", "low", "jenkins", "error",
                ("env:prod",), "cid",
            )
        ],
    ),
    ("_e{3,0}:abc|", [Event("abc", "")]),
    ("_e{6,3}:héllo|a|b", [Event("héllo", "a|b")]),  # lengths count UTF-8 bytes; text may hold "|"
    ("_sc|db.up|0", [ServiceCheck("db.up", 0)]),
    (
        "_sc|db.up|2|d:1767225600|h:db-1|#env:prod,role:primary|m:replica lag | 30 s",
        [ServiceCheck("db.up", 2, 1767225600, "db-1", ("env:prod", "role:primary"), "replica lag | 30 s")],
    ),
]


@pytest.mark.parametrize("line, expected", GOOD, ids=[g[0][:40] for g in GOOD])
def test_it_parses_every_type_and_field(line, expected):
    items, errors = parse_datagram(line.encode())
    assert errors == []
    assert items == expected


BAD = [
    ("no_separator_at_all", "bad_line"),
    ("name_without_type:1", "bad_line"),
    ("name_without_value|c", "bad_line"),
    (":1|c", "empty_name"),
    ("   :1|c", "empty_name"),
    ("x:|c", "bad_value"),
    ("x:abc|c", "bad_value"),
    ("x:nan|g", "bad_value"),
    ("x:inf|ms", "bad_value"),
    ("x:1_000|c", "bad_value"),
    ("x: 1|c", "bad_value"),
    ("x:1::2|ms", "bad_value"),
    ("x:|s", "bad_value"),
    ("x:1|", "unknown_type"),
    ("x:1|q", "unknown_type"),
    ("x:1|C", "unknown_type"),
    ("x:1|c|@", "bad_sample_rate"),
    ("x:1|c|@0", "bad_sample_rate"),
    ("x:1|c|@1.5", "bad_sample_rate"),
    ("x:1|c|@-0.1", "bad_sample_rate"),
    ("x:1|c|@abc", "bad_sample_rate"),
    ("x:1|c|T", "bad_timestamp"),
    ("x:1|c|T-5", "bad_timestamp"),
    ("x:1|c|T99999999999999999", "bad_timestamp"),
    ("_e{5,4}:short", "bad_event"),
    ("_e{a,b}:title|text", "bad_event"),
    ("_e{0,4}:|text", "bad_event"),
    ("_e{5,4}title|text", "bad_event"),
    ("_e{5,9}:title|text", "bad_event"),
    ("_e{4,4}:title|text", "bad_event"),
    ("_e{5,4}:title|text|d:yesterday", "bad_event"),
    ("_e{1,1}:a|\u00e9", "bad_event"),  # a length that cuts "é" in two
    ("_sc|db.up", "bad_service_check"),
    ("_sc||0", "bad_service_check"),
    ("_sc|db.up|4", "bad_service_check"),
    ("_sc|db.up|ok", "bad_service_check"),
    ("_sc|db.up|0|d:later", "bad_service_check"),
]


@pytest.mark.parametrize("line, reason", BAD, ids=[b[0] for b in BAD])
def test_it_names_the_reason_a_line_is_dropped(line, reason):
    items, errors = parse_datagram(line.encode())
    assert items == []
    assert errors == [ParseError(reason, line)]
    assert reason in REASONS


def test_a_bad_line_does_not_spoil_the_rest_of_the_datagram():
    corpus = b"\n".join(line.encode() for line, _ in BAD)
    datagram = b"ok.first:1|c\n" + corpus + b"\n\xff\xfe:1|c\nok.last:2|g\n"
    items, errors = parse_datagram(datagram)
    assert items == [Sample("ok.first", "c", 1.0), Sample("ok.last", "g", 2.0)]
    expected = Counter(reason for _, reason in BAD)
    expected["not_utf8"] += 1
    assert Counter(e.reason for e in errors) == expected


def test_it_skips_empty_lines():
    assert parse_datagram(b"\n\na:1|c\n\n") == ([Sample("a", "c", 1.0)], [])


def test_it_cuts_a_long_bad_line_in_the_error():
    items, errors = parse_datagram(b"x" * 5000)
    assert items == [] and len(errors[0].line) == 200


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_it_never_raises_on_any_bytes(data):
    items, errors = parse_datagram(data)
    assert all(e.reason in REASONS for e in errors)
