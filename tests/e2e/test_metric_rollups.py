"""A real `koban serve` rolls metric minutes up in the background and answers charts
from the rollups with the numbers the raw points give, a late point included at once
and after its minute is rolled again (store/rollups.py, docs/metrics.md "Rollups")."""

from __future__ import annotations

import time

import httpx

MINUTE_NS = 60 * 1_000_000_000
S = 1_000_000_000


def _gauge_request(points: list[tuple[str, int, float]]) -> dict:
    """OTLP/JSON (the specification's shape) with one gauge, `disk.used`, one data
    point per (device, time ns, value)."""
    return {
        "resourceMetrics": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "storage"}}]},
            "scopeMetrics": [{
                "scope": {"name": "e2e"},
                "metrics": [{
                    "name": "disk.used",
                    "gauge": {"dataPoints": [
                        {"attributes": [{"key": "device", "value": {"stringValue": device}}],
                         "timeUnixNano": str(t), "asDouble": value}
                        for device, t, value in points
                    ]},
                }],
            }],
        }]
    }  # fmt: skip


def _post(server, points) -> None:
    r = httpx.post(server.url + "/v1/metrics", json=_gauge_request(points), timeout=10)
    assert r.status_code == 200, r.text


def _rolled_up_to(server, until_ns: int, records: int) -> bool:
    """`records` stored, and every minute before `until_ns` rolled up after that."""
    return (
        server.gauge("koban_store_records_written") >= records
        and server.gauge("koban_metric_rollup_watermark_seconds") * S >= until_ns
    )


def _chart(server, first_minute: int, minutes: int, query: str) -> list:
    params = {
        "source": "metrics", "query": query, "interval": "1m",
        "from": str(first_minute), "to": str(first_minute + minutes * MINUTE_NS),
    }  # fmt: skip
    r = httpx.get(server.url + "/api/timeseries", params=params, timeout=30)
    assert r.status_code == 200, r.text
    (series,) = r.json()["series"]
    return [v for _, v in series["points"]]


def test_charts_read_rollups_and_see_late_points(make_server):
    server = make_server(metric_rollup_interval_s=0.2, metric_rollup_delay_s=0).start()
    first = (time.time_ns() // MINUTE_NS - 10) * MINUTE_NS  # ten closed minutes ago
    # minute k: sda reports 10k and 10k + 2, sdb reports 100 + k
    _post(server, [("sda", first + k * MINUTE_NS + 5 * S, 10.0 * k) for k in range(5)]
          + [("sda", first + k * MINUTE_NS + 35 * S, 10.0 * k + 2) for k in range(5)]
          + [("sdb", first + k * MINUTE_NS + 10 * S, 100.0 + k) for k in range(5)])
    server.wait_for(lambda: _rolled_up_to(server, first + 5 * MINUTE_NS, 15), what="the minutes rolled up")
    expected = [((10.0 * k + 1) + (100 + k)) / 2 for k in range(5)]  # per-series avg, then across devices
    assert _chart(server, first, 5, "avg:disk.used{*}") == expected
    assert _chart(server, first, 5, "max:disk.used{device:sda}.rollup(max)") == [10.0 * k + 2 for k in range(5)]

    _post(server, [("sdb", first + 2 * MINUTE_NS + 50 * S, 1000.0)])  # late, for a rolled minute
    late = list(expected)
    late[2] = ((10.0 * 2 + 1) + (102 + 1000) / 2) / 2
    # read raw until its minute is rolled again
    server.wait_for(lambda: _chart(server, first, 5, "avg:disk.used{*}") == late, what="the late point")
    # rolled again once no late point has come for app.LATE_MINUTES_SETTLE_S (10 s)
    server.wait_for(
        lambda: _rolled_up_to(server, first + 5 * MINUTE_NS, 16), timeout_s=60, what="the late minute rolled again"
    )
    assert _chart(server, first, 5, "avg:disk.used{*}") == late
    assert server.wait_for(lambda: "metric rollup failed" not in server.log() and "ok", what="no rollup errors")
