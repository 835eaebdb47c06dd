"""Histograms, facets, services and resources give the same numbers on every backend."""

from __future__ import annotations

import pytest

from conformance import records
from conformance.backends import run
from koban.query import reads
from koban.query.dialects import for_store
from koban.query.parse import parse

START, END, S = records.START, records.END, records.S
MINUTE = 60 * S


def _histogram(store, text, by):
    d = for_store(store.dialect)
    stmt = reads.logs_histogram(d, parse(text), START, END, MINUTE, by)
    return reads.histogram_result(run(store, stmt), START, END, MINUTE, by)


def test_histogram_counts_every_bucket_of_the_range(loaded):
    h = _histogram(loaded, "", None)
    assert [b["count"] for b in h["buckets"]] == [5, 2, 2, 0, 0, 0, 0, 0, 0, 0]
    assert h["total"] == 9 and h["interval_ms"] == 60_000
    assert h["buckets"][1]["ts"] == "2026-01-01T00:01:00.000000000Z"


def test_histogram_of_a_search_counts_only_its_matches(loaded):
    assert [b["count"] for b in _histogram(loaded, "service:web", None)["buckets"][:3]] == [2, 1, 2]


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        ("service", [{"web": 2, "checkout": 2, "payments": 1}, {"payments": 1, "web": 1}, {"web": 2}]),
        ("status", [{"error": 1, "info": 1, "warn": 2, "fatal": 1}, {"(none)": 1, "debug": 1}, {"info": 1, "error": 1}]),
        ("@user.id", [{"7": 1, "8": 1, "(none)": 3}, {"(none)": 2}, {"(none)": 2}]),
    ],
)
def test_histogram_by_a_field_splits_each_bucket(loaded, by, groups):
    h = _histogram(loaded, "", by)
    assert [b["groups"] for b in h["buckets"][:3]] == groups
    assert all(b["groups"] == {} for b in h["buckets"][3:])


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("service", [("web", 5), ("checkout", 2), ("payments", 2)]),
        ("@http.status_code", [("200", 1), ("500", 1), ("500.0", 1), ("504", 1)]),
        ("status", [("error", 2), ("info", 2), ("warn", 2), ("debug", 1), ("fatal", 1)]),
    ],
)
def test_facets_list_the_most_frequent_values(loaded, field, values):
    d = for_store(loaded.dialect)
    facets = reads.facets_result(run(loaded, reads.logs_facets(d, parse(""), START, END, field)), field)
    assert [(v["value"], v["count"]) for v in facets["values"]] == values
    assert facets["total"] == 9


def test_services_report_requests_errors_and_percentiles(loaded):
    d = for_store(loaded.dialect)
    out = reads.services_result(run(loaded, reads.services(d, START, END)), START, END)["services"]
    assert [(s["service"], s["requests"], s["errors"]) for s in out] == [("api", 6, 1), ("worker", 2, 1), ("db", 0, 0)]
    api, worker, db = out
    # R-7 quantiles of 10, 20, 35, 40, 120, 250 ms and of 100, 300 ms
    assert (api["p50_ms"], api["p90_ms"], api["p99_ms"]) == pytest.approx((37.5, 185.0, 243.5))
    assert (worker["p50_ms"], worker["p90_ms"], worker["p99_ms"]) == pytest.approx((200.0, 280.0, 298.0))
    assert db["p50_ms"] is None and api["rps"] == pytest.approx(6 / 600)


def test_resources_of_a_service_count_only_its_requests(loaded):
    d = for_store(loaded.dialect)
    stmt = reads.service_resources(d, "api", START, END)
    out = reads.resources_result(run(loaded, stmt), "api", START, END)["resources"]
    assert [(r["resource"], r["requests"], r["errors"]) for r in out] == [
        ("GET /a", 3, 1), ("GET /b", 2, 0), ("GET /checkout", 1, 0)]  # fmt: skip
    assert [r["p50_ms"] for r in out] == pytest.approx([20.0, 145.0, 120.0])
