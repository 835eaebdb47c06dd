"""The API's reads: statements run on a real DuckDB and shaped into the API's JSON."""

from __future__ import annotations

import re
import statistics

import pytest

from koban.errors import BadRequest
from koban.model import Batch, Resource
from koban.query import ast, reads
from koban.query.dialects import CLICKHOUSE, DUCKDB
from koban.store.duckdb import DuckDBStore

EVERYTHING = ast.MatchAll()


@pytest.fixture(scope="module")
def crowd(fx):
    """78 logs from 12 services (s00 has 12 records ... s11 has 1), five per second, so
    pages must cut through runs of equal timestamps."""
    logs = []
    for svc in range(12):
        for _ in range(12 - svc):
            i = len(logs)
            res = Resource(f"s{svc:02d}", {"service.name": f"s{svc:02d}"})
            logs.append(fx.log_record(fx.T0 + (i // 5) * fx.S, res, "INFO", 9, f"row {i:02d}", {"i": str(i)}))
    s = DuckDBStore(":memory:")
    s.write(Batch(logs=logs), lsn=1)
    yield s
    s.close()


def all_pages(fx, store, page, shape, limit, q=EVERYTHING):
    rows, cursor, seen_cursors = [], None, 0
    while True:
        result = shape(fx.run(store, page(DUCKDB, q, fx.START, fx.END, limit, cursor)), limit)
        assert len(result["rows"]) <= limit
        rows += result["rows"]
        cursor = result["next_cursor"]
        if cursor is None:
            return rows
        seen_cursors += 1
        assert seen_cursors < 200


# --- logs ----------------------------------------------------------------------------


def test_logs_page_returns_newest_first_in_the_api_shape(fx, store):
    result = reads.logs_page_result(fx.run(store, reads.logs_page(DUCKDB, EVERYTHING, fx.START, fx.END, 2, None)), 2)
    assert [r["body"] for r in result["rows"]] == ["TIMEOUT calling payments", "Deploy Started"]
    assert result["rows"][0] == {
        "timestamp": "2026-01-01T00:02:15.000000000Z",
        "timestamp_ns": fx.T0 + 135 * fx.S,
        "service": "web",
        "severity": "Err",
        "severity_number": 0,
        "body": "TIMEOUT calling payments",
        "trace_id": fx.TRACE_B,
        "span_id": "00f067aa0ba902b7",
        "attributes": {"http.status_code": "504"},
        "resource": {"service.name": "web", "host.name": "h1", "deployment.environment.name": "prod"},
        "scope": {"name": "koban.tests", "version": "1.2.3"},
    }
    assert isinstance(result["next_cursor"], str) and re.fullmatch(r"[A-Za-z0-9_-]+", result["next_cursor"])


def test_logs_severity_falls_back_to_the_number_level(fx, store):
    q = ast.Match("service", "checkout")
    rows = reads.logs_page_result(fx.run(store, reads.logs_page(DUCKDB, q, fx.START, fx.END, 10, None)), 10)["rows"]
    assert [(r["body"], r["severity"], r["severity_number"]) for r in rows] == [
        ("retrying_later", "WARNING", 0),
        ("slow payment 50% of the time", "warn", 13),
    ]


def test_logs_range_is_half_open(fx, store):
    stmt = reads.logs_page(DUCKDB, EVERYTHING, fx.T0 + 20 * fx.S, fx.T0 + 40 * fx.S, 10, None)
    rows = reads.logs_page_result(fx.run(store, stmt), 10)["rows"]
    assert [r["body"] for r in rows] == ["slow payment 50% of the time", "GET /home ok"]


def test_last_page_has_no_cursor_even_when_it_is_exactly_full(fx, store):
    q = ast.Match("service", "payments")
    result = reads.logs_page_result(fx.run(store, reads.logs_page(DUCKDB, q, fx.START, fx.END, 2, None)), 2)
    assert len(result["rows"]) == 2 and result["next_cursor"] is None


@pytest.mark.parametrize("limit", [2, 3, 5, 7, 11, 78, 100])
def test_log_pages_through_equal_timestamps_lose_and_repeat_nothing(fx, crowd, limit):
    rows = all_pages(fx, crowd, reads.logs_page, reads.logs_page_result, limit)
    bodies = [r["body"] for r in rows]
    assert sorted(bodies) == [f"row {i:02d}" for i in range(78)]
    times = [r["timestamp_ns"] for r in rows]
    assert times == sorted(times, reverse=True)


def test_log_pages_follow_the_query(fx, crowd):
    rows = all_pages(fx, crowd, reads.logs_page, reads.logs_page_result, 4, ast.Match("service", "s00"))
    assert sorted(r["body"] for r in rows) == [f"row {i:02d}" for i in range(12)]


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90LWEtY3Vyc29y", "MTIz", "LTEuMA", "x" * 65, "MS4yLjM"])
def test_a_malformed_cursor_is_a_bad_request(fx, cursor):
    with pytest.raises(BadRequest):
        reads.logs_page(DUCKDB, EVERYTHING, fx.START, fx.END, 10, cursor)


def test_cursors_round_trip():
    assert reads.decode_cursor(reads.encode_cursor(1_767_225_600_123_456_789, 3)) == (1_767_225_600_123_456_789, 3)


# --- histogram -----------------------------------------------------------------------


def test_histogram_zero_fills_every_aligned_bucket(fx, store):
    start, end, iv = fx.T0 + 30 * fx.S, fx.T0 + 330 * fx.S, 60 * fx.S  # start is mid-bucket
    result = reads.histogram_result(fx.run(store, reads.logs_histogram(DUCKDB, EVERYTHING, start, end, iv, None)), start, end, iv, None)
    assert result["interval_ms"] == 60_000 and result["by"] is None and result["total"] == 7
    assert [(b["ts"], b["count"]) for b in result["buckets"]] == [
        ("2026-01-01T00:00:00.000000000Z", 3),
        ("2026-01-01T00:01:00.000000000Z", 2),
        ("2026-01-01T00:02:00.000000000Z", 2),
        ("2026-01-01T00:03:00.000000000Z", 0),
        ("2026-01-01T00:04:00.000000000Z", 0),
        ("2026-01-01T00:05:00.000000000Z", 0),
    ]
    assert result["buckets"][0]["ts_ms"] == fx.T0 // 1_000_000
    assert "groups" not in result["buckets"][0]


def test_histogram_by_severity_groups_by_level_name(fx, store):
    iv = 60 * fx.S
    stmt = reads.logs_histogram(DUCKDB, EVERYTHING, fx.START, fx.END, iv, "status")
    result = reads.histogram_result(fx.run(store, stmt), fx.START, fx.END, iv, "status")
    assert len(result["buckets"]) == 10 and result["total"] == 9
    assert result["buckets"][0]["groups"] == {"error": 1, "info": 1, "warn": 2, "fatal": 1}
    assert result["buckets"][1]["groups"] == {"debug": 1, "(none)": 1}
    assert result["buckets"][2]["groups"] == {"info": 1, "error": 1}
    assert result["buckets"][3] == {"ts": "2026-01-01T00:03:00.000000000Z", "ts_ms": fx.T0 // 1_000_000 + 180_000, "count": 0, "groups": {}}


def test_histogram_keeps_the_top_ten_groups_and_sums_the_rest(fx, crowd):
    iv = 3600 * fx.S
    stmt = reads.logs_histogram(DUCKDB, EVERYTHING, fx.START, fx.END, iv, "service")
    result = reads.histogram_result(fx.run(crowd, stmt), fx.START, fx.END, iv, "service")
    (bucket,) = result["buckets"]
    assert bucket["groups"] == {**{f"s{i:02d}": 12 - i for i in range(10)}, "(other)": 3}
    assert bucket["count"] == 78 == result["total"]


def test_histogram_refuses_too_many_buckets(fx):
    with pytest.raises(BadRequest):
        reads.logs_histogram(DUCKDB, EVERYTHING, fx.START, fx.END, 1000, None)
    with pytest.raises(BadRequest):
        reads.logs_histogram(DUCKDB, EVERYTHING, fx.START, fx.END, 0, None)


@pytest.mark.parametrize(
    "seconds, step",
    [(1, 1), (60, 1), (900, 15), (3600, 60), (6 * 3600, 600), (24 * 3600, 1800), (7 * 86400, 3 * 3600), (90 * 86400, 2 * 86400)],
)
def test_auto_interval_picks_a_round_step(seconds, step):
    assert reads.auto_interval(0, seconds * 1_000_000_000) == step * 1_000_000_000


# --- facets --------------------------------------------------------------------------


def test_facets_count_top_values_and_total(fx, store):
    result = reads.facets_result(fx.run(store, reads.logs_facets(DUCKDB, EVERYTHING, fx.START, fx.END, "service")), "service")
    assert result == {
        "field": "service",
        "values": [{"value": "web", "count": 5}, {"value": "checkout", "count": 2}, {"value": "payments", "count": 2}],
        "total": 9,
    }


def test_facets_skip_records_without_the_field_but_count_them_in_total(fx, store):
    result = reads.facets_result(fx.run(store, reads.logs_facets(DUCKDB, EVERYTHING, fx.START, fx.END, "@user.id")), "@user.id")
    assert result == {"field": "@user.id", "values": [{"value": "7", "count": 1}, {"value": "8", "count": 1}], "total": 9}


def test_facets_follow_the_query_and_the_limit(fx, store):
    stmt = reads.logs_facets(DUCKDB, ast.Match("service", "web"), fx.START, fx.END, "level", limit=2)
    assert reads.facets_result(fx.run(store, stmt), "level") == {
        "field": "level",
        "values": [{"value": "error", "count": 2}, {"value": "info", "count": 2}],
        "total": 5,
    }


# --- spans and traces ----------------------------------------------------------------

CHECKOUT_SPAN_START = 1_767_225_700_000_000_000


def test_spans_page_shapes_spans_with_events_and_links(fx, store):
    q = ast.Match("name", "GET /checkout")
    result = reads.spans_page_result(fx.run(store, reads.spans_page(DUCKDB, q, fx.START, fx.END, 10, None)), 10)
    assert result == {
        "rows": [
            {
                "trace_id": fx.TRACE_A,
                "span_id": "a000000000000001",
                "parent_span_id": "",
                "service": "api",
                "name": "GET /checkout",
                "kind": "server",
                "start": "2026-01-01T00:01:40.000000000Z",
                "start_ns": CHECKOUT_SPAN_START,
                "duration_ns": 120_000_000,
                "status": "unset",
                "status_message": "",
                "attributes": {},
                "resource": {"service.name": "api", "host.name": "h1"},
                "events": [
                    {
                        "timestamp": "2026-01-01T00:01:40.005000000Z",
                        "timestamp_ns": CHECKOUT_SPAN_START + 5_000_000,
                        "name": "cache miss",
                        "attributes": {"key": "cart:7"},
                    }
                ],
                "links": [{"trace_id": fx.TRACE_B, "span_id": "0000000000000001", "attributes": {"why": "retry"}}],
            }
        ],
        "next_cursor": None,
    }


@pytest.mark.parametrize("limit", [1, 3])
def test_span_pages_are_newest_first_and_complete(fx, store, limit):
    rows = all_pages(fx, store, reads.spans_page, reads.spans_page_result, limit)
    assert len(rows) == 10 and len({r["span_id"] for r in rows}) == 10
    assert [r["start_ns"] for r in rows] == sorted((r["start_ns"] for r in rows), reverse=True)
    assert {r["kind"] for r in rows} == {"server", "internal", "client", "consumer"}
    assert {r["status"] for r in rows} == {"ok", "error", "unset"}


def test_trace_returns_all_spans_by_start(fx, store):
    result = reads.trace_result(fx.run(store, reads.trace(DUCKDB, fx.TRACE_A.upper())))
    assert result["trace_id"] == fx.TRACE_A
    assert [(s["name"], s["parent_span_id"]) for s in result["spans"]] == [
        ("GET /checkout", ""),
        ("render", "a000000000000001"),
        ("SELECT carts", "a000000000000001"),
    ]


def test_an_unknown_trace_has_no_spans(fx, store):
    result = fx.run(store, reads.trace(DUCKDB, "ffffffffffffffffffffffffffffffff"))
    assert reads.trace_result(result, "FFFF") == {"trace_id": "ffff", "spans": []}


# --- services ------------------------------------------------------------------------


def percentiles_ms(durations_ms):
    cuts = statistics.quantiles(durations_ms, n=100, method="inclusive")
    return {"p50_ms": cuts[49], "p90_ms": cuts[89], "p99_ms": cuts[98]}


def test_services_report_requests_errors_and_exact_percentiles(fx, store):
    result = reads.services_result(fx.run(store, reads.services(DUCKDB, fx.START, fx.END)), fx.START, fx.END)
    api, worker, db = result["services"]
    assert api == {
        "service": "api", "requests": 6, "rps": pytest.approx(6 / 600), "errors": 1, "error_rate": pytest.approx(1 / 6),
        **{k: pytest.approx(v) for k, v in percentiles_ms([10, 20, 35, 40, 250, 120]).items()},
    }
    assert worker == {
        "service": "worker", "requests": 2, "rps": pytest.approx(2 / 600), "errors": 1, "error_rate": 0.5,
        **{k: pytest.approx(v) for k, v in percentiles_ms([100, 300]).items()},
    }
    # A service with only client spans is still listed, with nothing to measure.
    assert db == {"service": "db", "requests": 0, "rps": 0.0, "errors": 0, "error_rate": 0.0,
                  "p50_ms": None, "p90_ms": None, "p99_ms": None}


def test_service_resources_group_request_spans_by_name(fx, store):
    stmt = reads.service_resources(DUCKDB, "api", fx.START, fx.END)
    result = reads.resources_result(fx.run(store, stmt), "api", fx.START, fx.END)
    assert result["service"] == "api"
    assert [(r["resource"], r["requests"], r["errors"]) for r in result["resources"]] == [
        ("GET /a", 3, 1), ("GET /b", 2, 0), ("GET /checkout", 1, 0)
    ]
    get_a = result["resources"][0]
    assert get_a["p50_ms"] == pytest.approx(20) and get_a["p90_ms"] == pytest.approx(32)
    assert get_a["rps"] == pytest.approx(3 / 600) and get_a["error_rate"] == pytest.approx(1 / 3)


def test_services_in_an_empty_range_is_an_empty_list(fx, store):
    start, end = fx.END, fx.END + 60 * fx.S
    assert reads.services_result(fx.run(store, reads.services(DUCKDB, start, end)), start, end) == {"services": []}


# --- ClickHouse SQL ------------------------------------------------------------------

T0, T1 = 1_767_225_600_000_000_000, 1_767_226_200_000_000_000
Q = ast.And((ast.Match("service", "web"), ast.Not(ast.Exists("@user.id"))))
CH_READS = {
    "logs_page": reads.logs_page(CLICKHOUSE, Q, T0, T1, 50, reads.encode_cursor(T1 - 1, 2)),
    "histogram": reads.logs_histogram(CLICKHOUSE, Q, T0, T1, 60_000_000_000, None),
    "histogram_by": reads.logs_histogram(CLICKHOUSE, Q, T0, T1, 60_000_000_000, "status"),
    "facets": reads.logs_facets(CLICKHOUSE, Q, T0, T1, "@http.route"),
    "spans_page": reads.spans_page(CLICKHOUSE, Q, T0, T1, 50, None),
    "trace": reads.trace(CLICKHOUSE, "ABC"),
    "services": reads.services(CLICKHOUSE, T0, T1),
    "resources": reads.service_resources(CLICKHOUSE, "web", T0, T1),
}


@pytest.mark.parametrize("name", CH_READS)
def test_clickhouse_reads_bind_every_value_with_a_typed_placeholder(name):
    sql, params = CH_READS[name]
    used = dict(re.findall(r"\{(p\d+):([A-Za-z0-9()]+)\}", sql))
    assert set(used) == set(params)
    kinds = {"String": str, "Int64": int, "Float64": float}
    assert all(isinstance(params[p], kinds[t]) for p, t in used.items())
    assert "$p" not in sql


def test_clickhouse_reads_use_clickhouse_functions():
    assert "fromUnixTimestamp64Nano({p0:Int64})" in CH_READS["logs_page"].sql
    assert "toUnixTimestamp64Nano(\"Timestamp\") AS timestamp_ns" in CH_READS["logs_page"].sql
    assert "cityHash64(\"LogAttributes\")" in CH_READS["logs_page"].sql
    assert "intDiv(toUnixTimestamp64Nano(\"Timestamp\"), {p0:Int64}) * {p0:Int64} AS bucket" in CH_READS["histogram"].sql
    assert "arrayMap(t -> toUnixTimestamp64Nano(t), \"Events.Timestamp\")" in CH_READS["spans_page"].sql
    assert "quantileExactInclusiveIf(0.99)(toFloat64(\"Duration\")," in CH_READS["services"].sql
    assert "countIf(" in CH_READS["resources"].sql
    assert CH_READS["trace"].params == {"p0": "abc"}


# --- the same reads on ClickHouse (chdb, optional) -----------------------------------


def _rounded(value):
    """Engines differ in the last bits of an interpolated float; nothing else may differ."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


S_, MIN_ = 1_000_000_000, 60_000_000_000
TIMEOUT = ast.Text("timeout")
DIFFERENTIAL = {
    "logs_page": (lambda d: reads.logs_page(d, EVERYTHING, T0, T1, 4, None), lambda r: reads.logs_page_result(r, 4)),
    "logs_page_2": (
        lambda d: reads.logs_page(d, EVERYTHING, T0, T1, 4, reads.encode_cursor(T0 + 70 * S_, 1)),
        lambda r: reads.logs_page_result(r, 4),
    ),
    "histogram": (lambda d: reads.logs_histogram(d, TIMEOUT, T0, T1, MIN_, None), lambda r: reads.histogram_result(r, T0, T1, MIN_, None)),
    "histogram_by_level": (
        lambda d: reads.logs_histogram(d, EVERYTHING, T0, T1, MIN_, "level"),
        lambda r: reads.histogram_result(r, T0, T1, MIN_, "level"),
    ),
    "histogram_by_attr": (
        lambda d: reads.logs_histogram(d, EVERYTHING, T0, T1, MIN_, "@http.status_code"),
        lambda r: reads.histogram_result(r, T0, T1, MIN_, "@http.status_code"),
    ),
    "facets": (lambda d: reads.logs_facets(d, EVERYTHING, T0, T1, "host"), lambda r: reads.facets_result(r, "host")),
    "facets_attr": (lambda d: reads.logs_facets(d, EVERYTHING, T0, T1, "@user.id"), lambda r: reads.facets_result(r, "@user.id")),
    "spans_page": (lambda d: reads.spans_page(d, EVERYTHING, T0, T1, 20, None), lambda r: reads.spans_page_result(r, 20)),
    "trace": (lambda d: reads.trace(d, "0AF7651916CD43DD8448EB211C80319C"), reads.trace_result),
    "services": (lambda d: reads.services(d, T0, T1), lambda r: reads.services_result(r, T0, T1)),
    "resources": (lambda d: reads.service_resources(d, "api", T0, T1), lambda r: reads.resources_result(r, "api", T0, T1)),
}


@pytest.mark.parametrize("name", DIFFERENTIAL)
def test_clickhouse_answers_every_read_like_duckdb(fx, store, clickhouse, name):
    build, shape = DIFFERENTIAL[name]
    expected = shape(fx.run(store, build(DUCKDB)))
    assert _rounded(shape(clickhouse(build(CLICKHOUSE)))) == _rounded(expected)
