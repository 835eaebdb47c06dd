"""The web UI in a real browser against a real `koban serve` holding shop_data."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from ui import shop_data

pytestmark = pytest.mark.timeout(60)


def _open(page, koban, path: str) -> None:
    page.goto(koban.url + path)
    page.wait_for_selector("body[data-ready='1']")


def test_root_leads_to_the_log_explorer(page, koban):
    page.goto(koban.url + "/")
    assert page.url.startswith(koban.url + "/logs")
    page.wait_for_selector("body[data-ready='1']")


def test_typing_a_query_changes_the_histogram_and_the_rows(page, koban):
    _open(page, koban, "/logs?from=now-1h")
    assert int(page.get_attribute("#histogram", "data-total")) == 32
    page.wait_for_selector("#histogram canvas")
    page.keyboard.press("/")  # focuses the search bar
    page.keyboard.type("service:web status:warn")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '6'")
    assert page.locator("#log-rows tr.row").count() == 6
    assert set(page.locator("#log-rows tr.row td:nth-child(3)").all_inner_texts()) == {"WARN"}
    assert "q=service%3Aweb+status%3Awarn" in page.url
    page.go_back()  # the previous query comes back with the back button
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '32'")
    assert page.input_value("#q") == ""


def test_expanding_a_row_and_filtering_by_a_value_edits_the_query(page, koban):
    _open(page, koban, "/logs?from=now-1h&q=service:web")
    page.locator("#log-rows tr.row").first.click()
    detail = page.locator("#log-rows tr.detail")
    method_row = detail.locator("tr[data-key='http.method']")
    value = method_row.locator("td.v").inner_text()
    method_row.locator("button.filter-by").click()
    page.wait_for_function(f"document.querySelector('#q').value === 'service:web @http.method:{value}'")
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '15'")
    assert page.locator("#log-rows tr.row").count() == 15
    # the facet sidebar counts only what matches
    page.wait_for_function("document.querySelector(\".facet[data-field='service'] .facet-value\")"
                           "?.innerText.replace(/\\s+/g, ' ') === 'web 15'")
    page.locator("#log-rows tr.row").first.click()
    page.locator("#log-rows tr.detail tr[data-key='http.method'] button.exclude").click()
    page.wait_for_function(f"document.querySelector('#q').value === 'service:web -@http.method:{value}'")
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '15'")


def test_clicking_a_facet_value_filters(page, koban):
    _open(page, koban, "/logs?from=now-1h")
    page.locator(".facet[data-field='service'] .facet-value[data-value='payments']").click()
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '1'")
    assert page.input_value("#q") == "service:payments"


def test_a_log_line_opens_its_trace_with_the_failing_span_marked(page, koban):
    _open(page, koban, "/logs?from=now-1h&q=service:payments")
    page.locator("#log-rows tr.row").first.click()
    page.locator("#log-rows tr.detail a.trace-link").click()
    page.wait_for_selector("body[data-ready='1']")
    assert page.url.startswith(f"{koban.url}/traces/{shop_data.TRACE_ID}")
    rows = page.locator("#wf-rows .wf-row")
    assert rows.count() == shop_data.SPAN_COUNT
    assert [int(d) for d in rows.evaluate_all("rs => rs.map(r => r.dataset.depth)")] == [0, 1, 2, 3, 2]
    failing = page.locator("#wf-rows .wf-row.error")
    assert failing.count() == 1
    assert failing.get_attribute("data-span-id") == shop_data.ERROR_SPAN
    # the failing span is selected on arrival: its exception and stack trace are shown
    detail = page.locator("#span-detail")
    assert "card declined" in detail.inner_text()
    assert "CardDeclined: card declined" in detail.locator("pre.stack").inner_text()
    # and the trace's logs are listed beneath
    page.wait_for_function("document.querySelectorAll('#trace-logs tr').length === 2")
    page.locator("#wf-rows .wf-row[data-span-id='00000000000000c1']").click()
    assert "GET /stock/{sku}" in page.locator("#span-detail h2").inner_text()
    assert "span=00000000000000c1" in page.url


def test_a_service_page_lists_its_resources(page, koban):
    _open(page, koban, "/services?from=now-1h")
    assert set(page.locator("#service-rows tr").evaluate_all("rs => rs.map(r => r.dataset.service)")) >= {
        "frontend", "checkout", "inventory", "payments"}
    page.locator("#service-rows tr[data-service='inventory'] a").click()
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#resource-rows tr").evaluate_all("rs => rs.map(r => r.dataset.resource)") == ["GET /stock/{sku}"]
    _open(page, koban, "/services/payments?from=now-1h")
    assert page.locator("#failing-traces tr[data-trace-id]").count() == 1
    assert "charge failed" in page.locator("#error-logs").inner_text()


def test_span_search_lists_traces_with_their_error_flag(page, koban):
    _open(page, koban, "/traces?from=now-1h&q=" + "service:payments status:error")
    row = page.locator(f"#trace-rows tr[data-trace-id='{shop_data.TRACE_ID}']")
    assert row.locator("td").nth(1).inner_text().strip() == "frontend"
    assert row.locator("td").nth(3).inner_text() == str(shop_data.SPAN_COUNT)
    assert row.locator(".error-flag").count() == 1
    assert page.get_attribute("#scatter", "data-points") == "1"


def test_a_syntax_error_shows_its_message_and_position_and_the_page_stays_usable(page, koban):
    _open(page, koban, "/logs?from=now-1h")
    page.fill("#q", "service:(web")
    page.keyboard.press("Enter")
    error = page.locator("#query-error")
    error.wait_for(state="visible")
    assert re.search(r"position 12", error.inner_text())
    assert error.locator(".caret").is_visible()
    page.fill("#q", "service:web")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '30'")
    assert not error.is_visible()


def test_an_api_error_is_a_readable_message(page, koban):
    page.goto(koban.url + "/traces/" + "0" * 32)
    box = page.locator("#page-error")
    box.wait_for(state="visible")
    assert "no spans with trace id" in box.inner_text()
    assert "Traceback" not in page.content()


def test_times_show_local_time_with_utc_on_hover(page, koban):
    _open(page, koban, "/logs?from=now-1h&q=service:payments")
    when = page.locator("#log-rows time").first
    assert when.get_attribute("title").endswith("Z UTC")


def test_live_tail_shows_a_new_line_within_two_seconds(page, koban):
    _open(page, koban, "/logs?from=now-1h&q=service:tailtest")
    page.check("#live-toggle")
    page.wait_for_selector("#tail:not([hidden])")
    time.sleep(1.0)  # the stream's first poll records what is already there
    sent = time.monotonic()
    shop_data.post(koban.url, "/v1/logs", shop_data.log_request(
        "tailtest", [(time.time_ns(), "INFO", "hello from the live tail test", {})]))
    page.wait_for_selector(".tail-line:has-text('hello from the live tail test')", timeout=2_000)
    assert time.monotonic() - sent < 2.0
    assert "live=1" in page.url


def test_the_tail_endpoint_refuses_a_bad_query_before_streaming(koban):
    r = httpx.get(koban.url + "/api/logs/tail", params={"q": "a:("}, timeout=5)
    assert r.status_code == 400 and r.json()["position"] == 3


def test_the_service_catalog_draws_a_sparkline_of_each_metric_per_row(page, koban):
    _open(page, koban, "/services?from=now-1h")
    page.wait_for_selector("body[data-charts='1']")
    services = page.locator("#service-rows tr").evaluate_all("rs => rs.map(r => r.dataset.service)")
    assert set(services) == {"frontend", "checkout", "inventory", "payments"}
    for metric in ("rps", "error_rate", "p99_ms"):
        slots = page.locator(f"#service-rows .spark-slot[data-metric='{metric}']")
        assert slots.count() == len(services)
        assert page.locator(f"#service-rows .spark-slot[data-metric='{metric}'] svg.spark").count() == len(services)
    assert page.get_attribute("#service-table", "data-spark-error") == ""
    # sorting redraws the rows with their sparklines
    page.locator("#service-table th[data-key='p99_ms']").click()
    assert page.locator("#service-rows tr").first.get_attribute("data-service") == "frontend"
    assert page.locator("#service-rows svg.spark").count() == 3 * len(services)


def test_a_service_page_charts_requests_errors_and_latency_percentiles(page, koban):
    _open(page, koban, "/services/payments?from=now-1h")
    page.wait_for_selector("body[data-charts='1']")
    assert page.locator("#chart-error").is_hidden()
    for chart, series in (("requests", 1), ("errors", 1), ("latency", 3)):
        box = page.locator(f"#chart-{chart}")
        assert box.locator("canvas").count() == 1
        assert box.get_attribute("data-series") == str(series)
        assert int(box.get_attribute("data-points")) >= 30
    assert float(page.get_attribute("#chart-errors", "data-sum")) == 1  # the one failing charge
    legend = page.locator("#chart-latency .u-legend").inner_text()
    assert all(p in legend for p in ("p50", "p90", "p99"))


def test_dragging_across_histogram_bars_narrows_the_time_range(page, koban):
    _open(page, koban, "/logs?from=now-3m&q=service:web")
    assert page.get_attribute("#histogram", "data-total") == "30"
    over = page.locator("#histogram .u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.40, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.55, y, steps=5)
    page.mouse.move(over["x"] + over["width"] * 0.70, y, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"from=\d{4}-"))
    state = page.evaluate("Object.fromEntries(new URL(location.href).searchParams)")
    start, end = (time.mktime(time.strptime(state[k][:19], "%Y-%m-%dT%H:%M:%S")) for k in ("from", "to"))
    assert 40 <= end - start <= 70  # 30% of three minutes
    assert state["q"] == "service:web"
    # the page shows the narrowed range: its count is what the API says for it
    expected = httpx.get(koban.url + "/api/logs/histogram", timeout=5,
                         params={"q": "service:web", "from": state["from"], "to": state["to"]}).json()["total"]
    page.wait_for_function(f"document.querySelector('#histogram').dataset.total === '{expected}'")
    assert page.locator(".preset[data-preset='custom']").get_attribute("class").split().count("active") == 1
    page.go_back()
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '30'")


def test_a_custom_time_range_shows_only_its_records(page, koban):
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    # shop_data's web lines are 1 s apart, the first 30 s before the trace starts
    first = koban.trace_start_ns - 30 * 10**9

    def boundary_after(i: int) -> datetime:  # a whole second after line i, before line i + 1
        return datetime.fromtimestamp((first + i * 10**9) // 10**9 + 1, tz=timezone.utc)

    start, end = boundary_after(4), boundary_after(14)  # lines 5..14
    local = lambda d: d.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT%H:%M:%S")  # noqa: E731
    _open(page, koban, "/logs?q=service:web")
    page.click(".preset[data-preset='custom']")
    page.fill("#range-from", local(start))
    page.fill("#range-to", local(end))
    page.click("#range-apply")
    page.wait_for_function("document.querySelector('#histogram').dataset.total === '10'")
    state = page.evaluate("Object.fromEntries(new URL(location.href).searchParams)")
    assert state["from"] == start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert state["to"] == end.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert page.locator("#log-rows tr.row").count() == 10
    # the range survives a reload: the custom inputs show it again
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.get_attribute("#histogram", "data-total") == "10"
    assert page.input_value("#range-from") == local(start)
    assert page.locator("#custom-range").is_visible()
    # a range ending before it starts is refused with a message, the URL unchanged
    page.fill("#range-from", local(end))
    page.fill("#range-to", local(start))
    page.click("#range-apply")
    assert "start before its end" in page.locator("#page-error").inner_text()
    assert page.evaluate("new URL(location.href).searchParams.get('from')") == state["from"]


def test_live_tail_pauses_when_the_user_scrolls_up(page, koban):
    _open(page, koban, "/logs?from=now-1h&q=service:scrolltest&live=1")
    page.wait_for_selector("#tail:not([hidden])")
    time.sleep(1.0)  # the stream's first poll records what is already there
    now = time.time_ns()
    shop_data.post(koban.url, "/v1/logs", shop_data.log_request(
        "scrolltest", [(now + i * 1000, "INFO", f"line {i:03d}", {}) for i in range(80)]))
    page.wait_for_selector(".tail-line:has-text('line 079')", timeout=5_000)
    box = page.locator("#tail-lines")
    assert box.evaluate("b => b.scrollTop + b.clientHeight >= b.scrollHeight - 8")  # following the newest line
    box.hover()
    page.mouse.wheel(0, -3000)
    page.wait_for_function("document.querySelector('#tail-lines').scrollTop === 0")
    shop_data.post(koban.url, "/v1/logs", shop_data.log_request(
        "scrolltest", [(time.time_ns(), "WARN", "arrived while paused", {})]))
    page.wait_for_selector(".tail-line:has-text('arrived while paused')", timeout=5_000)
    assert box.evaluate("b => b.scrollTop") == 0  # still where the user left it
    resume = page.locator("#tail-resume")
    assert resume.is_visible() and "paused · 1 new line" in resume.inner_text()
    resume.click()
    assert box.evaluate("b => b.scrollTop + b.clientHeight >= b.scrollHeight - 8")
    assert resume.is_hidden()
