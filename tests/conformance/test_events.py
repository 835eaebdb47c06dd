"""koban_events (DogStatsD events): written, searched, replayed and expired alike on every backend."""

from __future__ import annotations

import pytest

from conformance import records
from conformance.backends import run
from koban.model import Batch, Event
from koban.query.dialects import Statement, for_store
from koban.query.events import events_page, events_result
from koban.query.parse import parse
from koban.store import schema

T0, S = records.T0, records.S

DEPLOY = Event(T0 + 10 * S, "Deploy finished", "checkout v1.2\nall green", "success", "normal", "web-1",
               "deploy-42", "jenkins", "checkout", {"team": "pay", "env": "prod", "canary": ""})  # fmt: skip
OUTAGE = Event(T0 + 20 * S, "Database down", "primary unreachable", "error", "normal", "db-1",
               "", "", "payments", {"team": "data"})  # fmt: skip
LOW = Event(T0 + 30 * S, "Cache warmed", "", "info", "low", "", "", "", "statsd", {})
EVENTS = [DEPLOY, OUTAGE, LOW]


def _search(store, q: str, start: int = records.START, end: int = records.END, limit: int = 100) -> dict:
    node = parse(q)
    return events_result(run(store, events_page(for_store(store.dialect), node, start, end, limit)), node)


def _titles(store, q: str, **kw) -> list[str]:
    return [e["title"] for e in _search(store, q, **kw)["events"]]


def _count(store) -> int:
    return int(run(store, Statement(f"SELECT count(*) AS n FROM {schema.EVENTS}", {})).rows[0][0])


def test_events_read_back_newest_first_with_every_field(store):
    store.write(Batch(events=EVENTS), lsn=1)

    got = _search(store, "")["events"]

    assert [e["title"] for e in got] == ["Cache warmed", "Database down", "Deploy finished"]
    assert got[2] == {
        "timestamp": "2026-01-01T00:00:10.000000000Z", "timestamp_ns": DEPLOY.timestamp_ns, "title": "Deploy finished",
        "text": "checkout v1.2\nall green", "alert_type": "success", "priority": "normal", "host": "web-1",
        "aggregation_key": "deploy-42", "source_type": "jenkins", "service": "checkout",
        "tags": {"team": "pay", "env": "prod", "canary": ""},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("q", "titles"),
    [
        ("green", ["Deploy finished"]),  # free text: the text
        ("database", ["Database down"]),  # free text: the title, any case
        ("team:pay", ["Deploy finished"]),  # a tag
        ("@team:data", ["Database down"]),
        ("service:checkout OR host:db-1", ["Database down", "Deploy finished"]),
        ("alert_type:error", ["Database down"]),
        ("status:success", ["Deploy finished"]),
        ("priority:low", ["Cache warmed"]),
        ("source:jenkins aggregation_key:deploy-42", ["Deploy finished"]),
        ("-team:*", ["Cache warmed"]),
        ("canary:*", ["Deploy finished"]),
        ("title:warm*", ["Cache warmed"]),
    ],
)
def test_the_search_syntax_filters_events(store, q, titles):
    store.write(Batch(events=EVENTS), lsn=1)

    assert _titles(store, q) == titles


def test_the_time_range_and_limit_bound_the_page(store):
    store.write(Batch(events=EVENTS), lsn=1)

    assert _titles(store, "", start=T0 + 15 * S, end=T0 + 30 * S) == ["Database down"]
    assert _titles(store, "", limit=1) == ["Cache warmed"]


def test_writing_the_same_lsn_twice_stores_the_events_once(backend):
    store = backend.open()
    store.write(Batch(events=EVENTS), lsn=1)
    store.write(Batch(events=EVENTS), lsn=1)  # a replay of what is already applied
    reopened = backend.open()  # a restart: the applied lsn comes from the store
    reopened.write(Batch(events=EVENTS), lsn=1)

    assert _count(reopened) == 3


def test_events_share_a_batch_with_other_signals(store):
    store.write(Batch(logs=records.logs()[:2], events=[DEPLOY]), lsn=1)

    assert _count(store) == 1
    assert int(run(store, Statement(f"SELECT count(*) AS n FROM {schema.LOGS}", {})).rows[0][0]) == 2


def test_retention_of_logs_also_expires_events(store):
    store.write(Batch(events=EVENTS), lsn=1)

    store.delete_older_than("logs", T0 + 25 * S)

    assert _titles(store, "") == ["Cache warmed"]
