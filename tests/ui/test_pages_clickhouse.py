"""The same pages, in the same browser, over the ClickHouse backend: `koban serve
--store clickhouse` talking HTTP to tests/chdb_http's endpoint over the real ClickHouse
engine (chdb), loaded with the same shop data as the DuckDB page tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")
pytest.importorskip("clickhouse_connect", reason="clickhouse-connect (koban[clickhouse]) is not installed")

from chdb_http.engine import Engine  # noqa: E402
from chdb_http.server import ChdbHttpServer  # noqa: E402
from e2e.conftest import KobanServer  # noqa: E402
from ui import shop_data  # noqa: E402

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def koban(tmp_path_factory) -> Iterator[KobanServer]:
    """Overrides the DuckDB-backed server of conftest.py for this module."""
    root = tmp_path_factory.mktemp("ui-clickhouse")
    engine = Engine(root / "engine")
    clickhouse = ChdbHttpServer(engine, user="koban", password="pw").start()
    server = KobanServer(
        root / "data", root / "server.log", store="clickhouse", clickhouse_url=clickhouse.url("koban_ui")
    ).start()
    try:
        shop_data.load(server.url)
        server.wait_for(lambda: server.client().logs("service:web")["rows"], what="the test data to be queryable")
        server.wait_for(lambda: _trace_spans(server) == shop_data.SPAN_COUNT, what="the test trace")
        yield server
    finally:
        server.stop()
        clickhouse.stop()
        engine.close()


def _trace_spans(server: KobanServer) -> int:
    r = httpx.get(f"{server.url}/api/traces/{shop_data.TRACE_ID}", timeout=5)
    return len(r.json()["spans"]) if r.status_code == 200 else 0


def _open(page, koban, path: str) -> None:
    page.goto(koban.url + path)
    page.wait_for_selector("body[data-ready='1']")


def test_the_log_explorer_works_over_clickhouse(page, koban):
    _open(page, koban, "/logs?from=now-1h&q=service:payments")
    rows = page.locator("#log-rows tr.row")
    assert rows.count() == 1
    assert "charge failed: card declined" in rows.first.inner_text()


def test_the_trace_view_works_over_clickhouse(page, koban):
    _open(page, koban, f"/traces/{shop_data.TRACE_ID}")
    assert page.locator("#wf-rows .wf-row").count() == shop_data.SPAN_COUNT
    failing = page.locator("#wf-rows .wf-row.error")
    assert failing.count() == 1 and failing.get_attribute("data-span-id") == shop_data.ERROR_SPAN
    page.wait_for_function("document.querySelectorAll('#trace-logs tr').length === 2")


def test_the_services_pages_work_over_clickhouse(page, koban):
    _open(page, koban, "/services?from=now-1h")
    services = set(page.locator("#service-rows tr").evaluate_all("rs => rs.map(r => r.dataset.service)"))
    assert services >= {"frontend", "checkout", "inventory", "payments"}
    _open(page, koban, "/services/inventory?from=now-1h")
    assert page.locator("#resource-rows tr").evaluate_all("rs => rs.map(r => r.dataset.resource)") == [
        "GET /stock/{sku}"]
