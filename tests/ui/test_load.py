"""The pages of the UI's performance goal draw their data over a larger store.

A small version of benchmarks/ui.py (1,000,000 logs, 200,000 spans, timed): the same
pages and the same "data drawn" marks, without timing assertions.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from e2e.conftest import KobanServer
from ui import bulk_data

pytestmark = pytest.mark.timeout(90)
LOGS, SPANS = 20_000, 4_000


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Iterator[KobanServer]:
    root = tmp_path_factory.mktemp("ui-load")
    server = KobanServer(root / "data", root / "server.log").start()
    try:
        bulk_data.load(server.url, LOGS, SPANS)

        def queryable() -> bool:
            hist = httpx.get(f"{server.url}/api/logs/histogram", params={"from": "now-1h"}, timeout=10).json()
            trace = httpx.get(f"{server.url}/api/traces/{bulk_data.TRACE_ID}", timeout=10)
            return hist["total"] == LOGS and trace.status_code == 200 and len(trace.json()["spans"]) == bulk_data.TRACE_SPANS

        server.wait_for(queryable, what="the bulk data to be queryable")
        yield server
    finally:
        server.stop()


def _drawn(page, url: str, *marks: str) -> dict[str, float]:
    """Open `url`; wait for each body[data-<mark>]; the performance marks' times (ms)."""
    page.goto(url, wait_until="commit")
    for mark in marks:
        page.wait_for_selector(f"body[data-{mark}='1']")
    return {m: page.evaluate(f"performance.getEntriesByName('koban-{m}')[0].startTime") for m in marks}


def test_the_logs_page_marks_its_data_drawn_over_many_records(page, loaded):
    times = _drawn(page, loaded.url + "/logs?from=now-1h", "ready")
    assert times["ready"] > 0
    assert page.get_attribute("#histogram", "data-total") == str(LOGS)
    assert page.locator("#log-rows tr.row").count() == 100


def test_the_trace_view_marks_a_50_span_trace_drawn(page, loaded):
    _drawn(page, f"{loaded.url}/traces/{bulk_data.TRACE_ID}", "ready")
    assert page.locator("#wf-rows .wf-row").count() == bulk_data.TRACE_SPANS
    assert page.locator("#wf-rows .wf-row.error").count() == 1


def test_the_services_page_marks_its_table_and_sparklines_drawn(page, loaded):
    _drawn(page, loaded.url + "/services?from=now-1h", "ready", "charts")
    assert page.locator("#service-rows tr").count() == len(bulk_data.SERVICES)
    assert page.locator("#service-rows svg.spark").count() == 3 * len(bulk_data.SERVICES)
