"""The Metrics page in a real browser against a real `koban serve` fed by real clients:
Datadog's DogStatsD client (a timer, a counter and a timestamped gauge, with tags) and
the OpenTelemetry SDK (a counter with attributes) over OTLP/HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from datadog.dogstatsd import DogStatsd
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from e2e.conftest import KobanServer

pytestmark = pytest.mark.timeout(60)

ORDERS = {"checkout": 5, "web": 2}  # shop.orders per service
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
LATENCIES_MS = {"checkout": [120, 180, 240], "web": [20, 30]}  # shop.request.latency


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _send_dogstatsd(port: int) -> None:
    dd = DogStatsd(host="127.0.0.1", port=port, disable_telemetry=True, origin_detection_enabled=False,
                   constant_tags=["env:prod"])
    for service, n in ORDERS.items():
        for _ in range(n):
            dd.increment("shop.orders", tags=[f"service:{service}"])
        for ms in LATENCIES_MS[service]:
            dd.timing("shop.request.latency", ms, tags=[f"service:{service}", "resource:/cart"])
    # a gauge with its own times over the last hour, so the chart has lines to draw
    now = int(time.time())
    for i in range(30):
        for service, base in (("checkout", 10), ("web", 4)):
            dd.gauge_with_timestamp("shop.queue.depth", base + i % 5, timestamp=now - 3540 + i * 120,
                                    tags=[f"service:{service}"])
    dd.close_socket()


def _send_otlp(url: str) -> None:
    exporter = OTLPMetricExporter(endpoint=url + "/v1/metrics")
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "checkout"}), metric_readers=[reader])
    requests = provider.get_meter("shop").create_counter("http.server.requests", description="requests served")
    requests.add(4, {"route": "/pay"})
    requests.add(1, {"route": "/cart"})
    provider.shutdown()  # exports once


def _names(url: str) -> set[str]:
    r = httpx.get(url + "/api/metrics/names", params={"from": "now-1h", "limit": 100}, timeout=5)
    return {m["name"] for m in r.json()["metrics"]} if r.status_code == 200 else set()


@pytest.fixture(scope="module")
def koban(tmp_path_factory) -> Iterator[KobanServer]:
    root = tmp_path_factory.mktemp("ui-metrics")
    port = _udp_port()
    server = KobanServer(root / "data", root / "server.log", statsd_port=port, statsd_flush_interval_s=0.5).start()
    try:
        _send_dogstatsd(port)
        _send_otlp(server.url)
        wanted = {"shop.orders", "shop.request.latency", "shop.queue.depth", "http.server.requests"}
        server.wait_for(lambda: wanted <= _names(server.url), what="the metrics to be listed")
        yield server
    finally:
        server.stop()


def _drawn(page) -> None:
    """Wait until the chart for the current URL is drawn."""
    page.wait_for_function("document.body.dataset.rendered === location.search")


def _open(page, koban, query: str = "") -> None:
    page.goto(f"{koban.url}/metrics/explorer?from=now-1h{query}")
    page.wait_for_selector("body[data-ready='1']")
    _drawn(page)


def _chart(page) -> dict[str, float]:
    box = page.locator("#metrics-chart")
    return {"series": int(box.get_attribute("data-series")), "sum": float(box.get_attribute("data-sum"))}


def _legend(page) -> list[str]:
    return page.locator("#legend li").evaluate_all("lis => lis.map(li => li.dataset.key)")


def _url_state(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_building_a_query_filtering_grouping_hiding_adding_and_reloading(page, koban):
    page.goto(koban.url + "/logs?from=now-1h")
    page.locator("header nav a", has_text="Metrics").click()
    page.wait_for_selector("body[data-ready='1']")
    assert urlparse(page.url).path == "/metrics/explorer"
    assert page.locator("#chart-empty").is_visible()  # nothing picked yet
    _open(page, koban)
    a = page.locator(".q-row[data-letter='a']")
    # pick a metric by searching its name
    a.locator("input.metric").fill("ord")
    a.locator(".metric-options li[data-name='shop.orders']").click()
    _drawn(page)
    assert a.locator("input.q-text").input_value() == "shop.orders{*}"
    # a sum per interval adds up to every increment sent
    a.locator("select.agg").select_option("sum")
    _drawn(page)
    a.locator("select.rollup-fn").select_option("sum")
    _drawn(page)
    assert a.locator("input.q-text").input_value() == "sum:shop.orders{*}.rollup(sum)"
    assert _chart(page) == {"series": 1, "sum": sum(ORDERS.values())}

    # filter by a tag value the store holds
    assert "service:web" in a.locator("select.add-filter option").all_inner_texts()
    a.locator("select.add-filter").select_option("service:checkout")
    _drawn(page)
    assert a.locator("input.q-text").input_value() == "sum:shop.orders{service:checkout}.rollup(sum)"
    assert _chart(page)["sum"] == ORDERS["checkout"]
    a.locator(".filters .chip[data-value='service:checkout'] button").click()
    _drawn(page)

    # group by a tag: one legend entry per value, stacked
    a.locator("select.add-by").select_option("service")
    _drawn(page)
    assert a.locator("input.q-text").input_value() == "sum:shop.orders{*} by {service}.rollup(sum)"
    assert _legend(page) == ["a:service:checkout", "a:service:web"]
    assert _chart(page) == {"series": 2, "sum": sum(ORDERS.values())}

    # hide a series from the legend
    page.locator("#legend li[data-key='a:service:web']").click()
    page.wait_for_function("document.querySelector('#metrics-chart').dataset.series === '1'")
    assert _chart(page)["sum"] == ORDERS["checkout"]
    assert json.loads(_url_state(page)["hide"]) == ["a:service:web"]

    # a second query on the same chart, from OTLP
    page.locator("#add-query").click()
    b = page.locator(".q-row[data-letter='b']")
    b.locator("input.metric").fill("server.req")
    b.locator(".metric-options li[data-name='http.server.requests']").click()
    _drawn(page)
    assert b.locator("input.q-text").input_value() == "http.server.requests{*}"
    assert _legend(page) == ["a:service:checkout", "a:service:web", "b:"]
    page.screenshot(path=_artifact("metrics_two_queries.png"), full_page=True)

    # reload: the same queries, legend and hidden series
    state = _url_state(page)
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    _drawn(page)
    assert _url_state(page) == state
    assert page.locator(".q-row input.q-text").evaluate_all("xs => xs.map(x => x.value)") == [
        "sum:shop.orders{*} by {service}.rollup(sum)", "http.server.requests{*}"]
    assert _legend(page) == ["a:service:checkout", "a:service:web", "b:"]
    assert page.locator("#legend li.off").evaluate_all("lis => lis.map(li => li.dataset.key)") == ["a:service:web"]
    assert _chart(page)["series"] == 2

    # remove the first query: its hidden series goes with it
    a.locator("button.remove-query").click()
    _drawn(page)
    assert _legend(page) == ["b:"]
    assert "hide" not in _url_state(page)


def test_a_timer_by_service_and_dragging_across_the_chart_narrows_the_range(page, koban):
    _open(page, koban, "&a=max:shop.request.latency{*} by {service}.rollup(max)")
    assert _legend(page) == ["a:service:checkout", "a:service:web"]
    last = page.locator("#legend li .v").evaluate_all("vs => vs.map(v => Number(v.dataset.last))")
    assert last == [pytest.approx(max(LATENCIES_MS["checkout"]), rel=0.01), pytest.approx(max(LATENCIES_MS["web"]), rel=0.01)]
    # a gauge over the hour, grouped: stacked areas, one per service
    _open(page, koban, "&a=avg:shop.queue.depth{*} by {service}.rollup(avg, 120)")
    assert _legend(page) == ["a:service:checkout", "a:service:web"]
    chart = _chart(page)
    assert chart["series"] == 2 and int(page.get_attribute("#metrics-chart", "data-points")) >= 30
    assert chart["sum"] == pytest.approx(sum(b + i % 5 for i in range(30) for b in (10, 4)))
    page.screenshot(path=_artifact("metrics_stacked.png"), full_page=True)
    box = page.locator("#metrics-chart .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.9, y, steps=5)
    page.mouse.up()
    _drawn(page)
    state = _url_state(page)
    assert state["from"].endswith("Z") and state["to"].endswith("Z") and state["from"] < state["to"]
    assert state["a"] == "avg:shop.queue.depth{*} by {service}.rollup(avg, 120)"
    assert _legend(page) == ["a:service:checkout", "a:service:web"]  # redrawn over the narrower range


def test_a_bad_query_is_shown_under_it_with_a_caret(page, koban):
    _open(page, koban, "&a=avg:shop.orders{*}")
    text = page.locator(".q-row[data-letter='a'] input.q-text")
    text.fill("avg:shop.orders{service:")
    text.press("Enter")
    _drawn(page)
    error = page.locator(".q-row[data-letter='a'] .q-error")
    assert error.is_visible()
    assert "Syntax error at position" in error.inner_text()
    assert error.locator(".caret").count() == 1
    assert text.get_attribute("aria-invalid") == "true"
    page.screenshot(path=_artifact("metrics_query_error.png"), full_page=True)
    # the builder cannot show it, the text stays as typed
    assert text.input_value() == "avg:shop.orders{service:"
    text.fill("avg:shop.orders{*}")
    text.press("Enter")
    _drawn(page)
    assert not error.is_visible()
    assert _chart(page)["series"] == 1


def _artifact(name: str) -> str:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)
