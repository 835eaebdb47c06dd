"""Every search construct selects the same records on every backend, end to end:
query text -> query/parse.py -> query/reads.py -> the store -> the result shaper."""

from __future__ import annotations

import pytest

from conformance import records
from conformance.backends import run
from koban.model import Batch
from koban.query import reads
from koban.query.dialects import for_store
from koban.query.parse import parse

START, END, T0, S = records.START, records.END, records.T0, records.S
BODY = {i: row[4] for i, row in enumerate(records.LOG_ROWS)}

# query text -> indexes into records.LOG_ROWS, newest first
LOG_SEARCHES = {
    "": [8, 7, 6, 5, 4, 3, 2, 1, 0],
    "timeout": [8, 0],
    '"calling payments"': [8],
    "service:web": [8, 7, 6, 1, 0],
    "status:error": [8, 0],
    "status:warn": [3, 2],
    "@http.status_code:[500 TO 599]": [8, 2, 0],
    "@http.status_code:500": [2, 0],
    "@http.status_code:>=504": [8],
    "service:check*": [3, 2],
    "@user.id:*": [4, 0],
    "-service:web": [5, 4, 3, 2],
    "service:web AND NOT status:error": [7, 6, 1],
    '(service:checkout OR service:payments) -"disk full"': [5, 3, 2],
    "host:h3": [5, 4],
    "env:staging": [3, 2],
    "body:*time*": [8, 2, 0],
    "50%": [2],
    "retrying_later": [3],
    "trace_id:0AF7651916CD43DD8448EB211C80319C": [0],
    "@k8s.pod.name:pay-1 status:fatal": [4],
}


@pytest.mark.parametrize("text", list(LOG_SEARCHES))
def test_log_search_selects_the_right_records(loaded, text):
    d = for_store(loaded.dialect)
    page = reads.logs_page_result(run(loaded, reads.logs_page(d, parse(text), START, END, 100, None)), 100)
    assert [r["body"] for r in page["rows"]] == [BODY[i] for i in LOG_SEARCHES[text]]


# query text -> span ids, newest first
SPAN_SEARCHES = {
    "@duration:>250ms": ["b000000000000002"],
    "@duration:>=250ms": ["b000000000000002", "0000000000000005"],
    "status:error": ["b000000000000002", "0000000000000003"],
    "kind:server service:api": ["a000000000000001", *(f"{i:016x}" for i in (5, 4, 3, 2, 1))],
    'resource_name:"GET /a"': ["0000000000000003", "0000000000000002", "0000000000000001"],
    '"connection refused"': ["0000000000000003"],
    "kind:c*": ["b000000000000002", "b000000000000001", "a000000000000003"],
    "@http.status_code:500": ["0000000000000003"],
    "parent_id:A000000000000001": ["a000000000000003", "a000000000000002"],
}


@pytest.mark.parametrize("text", list(SPAN_SEARCHES))
def test_span_search_selects_the_right_spans(loaded, text):
    d = for_store(loaded.dialect)
    page = reads.spans_page_result(run(loaded, reads.spans_page(d, parse(text), START, END, 100, None)), 100)
    assert [r["span_id"] for r in page["rows"]] == SPAN_SEARCHES[text]


def _all_pages(store, page_stmt, shape, limit):
    d = for_store(store.dialect)
    rows, cursor, pages = [], None, 0
    while True:
        page = shape(run(store, page_stmt(d, parse(""), START, END, limit, cursor)), limit)
        rows += page["rows"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return rows, pages


def test_log_pages_walk_every_record_once_in_order(loaded):
    rows, pages = _all_pages(loaded, reads.logs_page, reads.logs_page_result, 4)
    assert [r["body"] for r in rows] == [BODY[i] for i in range(8, -1, -1)]
    assert pages == 3


def test_span_pages_walk_every_span_once_in_order(loaded):
    rows, pages = _all_pages(loaded, reads.spans_page, reads.spans_page_result, 3)
    starts = [r["start_ns"] for r in rows]
    assert len(rows) == 10 and starts == sorted(starts, reverse=True)
    assert len({r["span_id"] for r in rows}) == 10 and pages == 4


def test_pages_lose_nothing_when_many_records_share_a_nanosecond(store):
    same = [records.log(T0 + 5 * S, records.WEB, "INFO", 9, f"tick {i}", {"i": str(i)}) for i in range(7)]
    store.write(Batch(logs=[*same, records.log(T0 + 6 * S, records.WEB, "INFO", 9, "later", {})]), lsn=1)
    rows, pages = _all_pages(store, reads.logs_page, reads.logs_page_result, 3)
    assert rows[0]["body"] == "later"
    assert sorted(r["body"] for r in rows[1:]) == [f"tick {i}" for i in range(7)]
    assert pages == 3


def test_trace_assembles_every_span_with_events_and_links(loaded):
    d = for_store(loaded.dialect)
    trace = reads.trace_result(run(loaded, reads.trace(d, records.TRACE_A.upper())))
    assert trace["trace_id"] == records.TRACE_A
    assert [(s["name"], s["parent_span_id"]) for s in trace["spans"]] == [
        ("GET /checkout", ""), ("render", records.ROOT), ("SELECT carts", records.ROOT)]  # fmt: skip
    root = trace["spans"][0]
    assert root["kind"] == "server" and root["duration_ns"] == 120 * records.MS
    assert root["events"] == [{"timestamp": "2026-01-01T00:01:40.005000000Z", "timestamp_ns": T0 + 100 * S + 5_000_000,
                               "name": "cache miss", "attributes": {"key": "cart:7"}}]  # fmt: skip
    assert root["links"] == [{"trace_id": records.TRACE_B, "span_id": "0000000000000001", "attributes": {"why": "retry"}}]


def test_an_unknown_trace_has_no_spans(loaded):
    d = for_store(loaded.dialect)
    assert reads.trace_result(run(loaded, reads.trace(d, "f" * 32)), "f" * 32) == {"trace_id": "f" * 32, "spans": []}
