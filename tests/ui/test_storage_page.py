"""The Storage page in a real browser against a real `koban serve` holding logs and
spans sent over OTLP: it shows the numbers of /api/storage, the budget as a bar, and
retention edited in place sticks after a reload."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from e2e.conftest import KobanServer
from e2e.test_limits import PROTOBUF, _gauge_request
from e2e.test_storage import send_logs, send_spans, storage

pytestmark = pytest.mark.timeout(60)

BUDGET = 10**9


@pytest.fixture(scope="module")
def koban(tmp_path_factory) -> Iterator[KobanServer]:
    root = tmp_path_factory.mktemp("storage-ui")
    server = KobanServer(root / "data", root / "server.log", max_disk_bytes=BUDGET, max_series_per_metric=2).start()
    try:
        # a metric over its series cap: p3 and p4 are dropped, named on the page
        pods = _gauge_request("pods.ready", ["p1", "p2", "p3", "p4"])
        assert httpx.post(server.url + "/v1/metrics", content=pods, headers=PROTOBUF).status_code == 200
        send_logs(server, "checkout", 30)
        send_logs(server, "checkout", 12, at_ns=time.time_ns() - 2 * 86400 * 10**9)
        send_spans(server, "web", 4)
        server.wait_for(lambda: storage(server)["signals"]["logs"]["rows"] == 42
                        and storage(server)["signals"]["spans"]["rows"] == 4
                        and storage(server)["signals"]["metrics"]["rows"] == 2, what="the data to be counted")  # fmt: skip
        yield server
    finally:
        server.stop()


def _open(page, koban) -> None:
    page.goto(koban.url + "/storage")
    page.wait_for_selector("body[data-ready]")


def test_the_page_shows_usage_volume_services_and_the_budget(page, koban):
    _open(page, koban)
    api = storage(koban)
    logs = page.locator('#signal-rows tr[data-signal="logs"]')
    assert logs.get_attribute("data-rows") == "42"
    assert logs.get_attribute("data-bytes") == str(api["signals"]["logs"]["live_bytes"])
    assert page.locator('#signal-rows tr[data-signal="spans"]').get_attribute("data-rows") == "4"
    services = page.locator("#service-rows tr")
    assert services.count() == 3  # checkout, web, and the gauge's "cardinality"
    assert page.locator('#service-rows tr[data-service="checkout"] td').nth(2).inner_text() == "42"
    # 48 rows over the days of the chart (42 logs, 4 spans, 2 metric points kept), 12 two days ago
    assert page.locator("#volume-chart").get_attribute("data-total") == "48"
    assert page.locator("#volume-chart canvas").count() >= 1
    assert page.locator("#budget-bar").is_visible()
    assert "of 954 MiB" in page.locator("#budget-text").inner_text()
    width = page.locator("#budget-fill").evaluate("e => parseFloat(getComputedStyle(e).width)")
    assert 0 <= width < 50  # a tiny share of a 1 GB budget
    assert page.locator('header nav a[href="/storage"][aria-current="page"]').count() == 1


def test_retention_edited_in_place_sticks_after_a_reload(page, koban):
    _open(page, koban)
    box = page.locator('input[name="retention-spans"]')
    box.fill("3.5")
    page.locator('#signal-rows tr[data-signal="spans"] button').click()
    page.wait_for_selector('#signal-rows tr[data-signal="spans"] .saved')
    assert storage(koban)["signals"]["spans"]["override_days"] == 3.5
    page.reload()
    page.wait_for_selector("body[data-ready]")
    assert page.locator('input[name="retention-spans"]').input_value() == "3.5"


def test_a_bad_retention_shows_the_servers_reason_and_keeps_the_old_value(page, koban):
    _open(page, koban)
    before = storage(koban)["signals"]["metrics"]["retention_days"]
    page.locator('input[name="retention-metrics"]').fill("0")
    page.locator('input[name="retention-metrics"]').press("Enter")
    note = page.locator('#signal-rows tr[data-signal="metrics"] .failed')
    note.wait_for()
    assert "more than 0" in note.inner_text()
    assert page.locator('input[name="retention-metrics"]').get_attribute("aria-invalid") == "true"
    assert httpx.get(koban.url + "/api/storage").json()["signals"]["metrics"]["retention_days"] == before


def test_the_page_names_the_metrics_over_their_series_cap(page, koban):
    _open(page, koban)
    row = page.locator('#cardinality-rows tr[data-metric="pods.ready"]')
    assert row.get_attribute("data-dropped") == "2"
    assert [c.inner_text() for c in row.locator("td").all()] == ["pods.ready", "2", "2"]
    assert "At most 2 series per metric" in page.locator("#cardinality-text").inner_text()

