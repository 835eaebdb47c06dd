"""Aggregating StatsD samples over a flush window, as the statsd daemon does."""

from __future__ import annotations

import math
import random

import pytest

from koban.ingest.sketch import merge, quantile
from koban.ingest.statsd import parse_datagram
from koban.model import Event
from koban.pipeline.statsd_aggregator import StatsdAggregator

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000


def aggregate(*datagrams: bytes, agg: StatsdAggregator | None = None, window_s: int = 10):
    agg = agg or StatsdAggregator(T0)
    for d in datagrams:
        items, errors = parse_datagram(d)
        assert errors == []
        agg.add(items, agg.window_start_ns + 1)
    return agg.flush(agg.window_start_ns + window_s * S)


def by_name(points):
    return {(p.stream.name, tuple(sorted(p.attributes.items()))): p for p in points}


def test_counters_add_up_with_sample_rates_and_give_a_rate():
    batch = aggregate(b"req:1|c\nreq:2|c|@0.5\nreq:1|c|@0.1", b"req:-1|c")
    [count] = batch.sums
    assert count.value == pytest.approx(1 + 4 + 10 - 1)
    assert (count.aggregation_temporality, count.start_ns, count.time_ns) == (1, T0, T0 + 10 * S)
    [rate] = batch.gauges
    assert rate.stream.name == "req.rate" and rate.value == pytest.approx(1.4)


def test_counter_rates_can_be_turned_off():
    batch = aggregate(b"req:1|c", agg=StatsdAggregator(T0, counter_rates=False))
    assert len(batch.sums) == 1 and batch.gauges == []


def test_a_gauge_keeps_its_last_value_and_deltas_move_it_across_windows():
    agg = StatsdAggregator(T0)
    first = aggregate(b"fuel:10|g\nfuel:+5|g\nfuel:-3|g", agg=agg)
    assert [p.value for p in first.gauges] == [12.0]
    second = aggregate(b"fuel:+1|g", agg=agg)
    assert [p.value for p in second.gauges] == [13.0]
    third = aggregate(b"fuel:4|g\nfuel:-1|g", agg=agg)
    assert [p.value for p in third.gauges] == [3.0]


def test_a_delta_with_no_previous_value_starts_from_zero():
    assert [p.value for p in aggregate(b"fuel:-2|g").gauges] == [-2.0]


def test_signed_gauges_can_be_read_as_values_the_datadog_way():
    batch = aggregate(b"temp:5|g\ntemp:-2|g", agg=StatsdAggregator(T0, gauge_deltas=False))
    assert [p.value for p in batch.gauges] == [-2.0]


def test_a_window_only_reports_what_was_sent_in_it():
    agg = StatsdAggregator(T0)
    aggregate(b"fuel:1|g\nreq:1|c\nu:a|s\nlat:1|ms", agg=agg)
    assert aggregate(agg=agg).record_count == 0


def test_a_set_counts_distinct_members_per_window():
    agg = StatsdAggregator(T0)
    batch = aggregate(b"users:alice|s\nusers:bob|s\nusers:alice|s", b"users:carol|s|@0.5", agg=agg)
    assert [p.value for p in batch.gauges] == [3.0]
    assert [p.value for p in aggregate(b"users:alice|s", agg=agg).gauges] == [1.0]


def test_timers_histograms_and_distributions_become_exponential_histograms():
    batch = aggregate(b"lat:10|ms\nlat:20|ms|@0.5\nsize:3|h\ndist:0|d\ndist:-4|d")
    points = {p.stream.name: p for p in batch.exp_histograms}
    lat = points["lat"]
    assert (lat.count, lat.sum, lat.min, lat.max, lat.stream.unit) == (3, 50.0, 10.0, 20.0, "ms")
    assert lat.scale == 7 and lat.aggregation_temporality == 1
    assert points["size"].count == 1 and points["size"].stream.unit == ""
    dist = points["dist"]
    assert (dist.count, dist.zero_count, sum(dist.negative_bucket_counts)) == (2, 1, 1)


def test_p99_over_many_hosts_is_within_one_percent_of_the_exact_p99():
    rng = random.Random(42)
    raw: list[float] = []
    points = []
    for host in range(8):
        # every host has its own latency profile, so per-host p99s would average wrong
        mu, sigma = 2.0 + host * 0.4, 0.4 + host * 0.1
        for window in range(3):
            agg = StatsdAggregator(T0 + window * 10 * S)
            lines = []
            for _ in range(1500):
                v = round(rng.lognormvariate(mu, sigma), 3)
                raw.append(v)
                lines.append(f"checkout.latency:{v}|ms|#host:web-{host},env:prod".encode())
            for i in range(0, len(lines), 20):
                items, errors = parse_datagram(b"\n".join(lines[i:i + 20]))
                agg.add(items, T0)
            points.extend(agg.flush(T0 + (window + 1) * 10 * S).exp_histograms)
    merged = merge(points)
    ordered = sorted(raw)
    assert merged.count == len(raw)
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = ordered[math.ceil(q * len(ordered)) - 1]
        assert quantile(merged, q) == pytest.approx(exact, rel=0.01), q
    averaged = sum(quantile(p, 0.99) for p in points) / len(points)
    exact99 = ordered[math.ceil(0.99 * len(ordered)) - 1]
    assert abs(averaged - exact99) / exact99 > 0.05  # why averaging per-host p99s is not allowed


def test_tags_become_attributes_and_who_sent_it_becomes_the_resource():
    batch = aggregate(b"req:1|c|#service:checkout,env:prod,host:web-1,version:1.2,route:/pay,canary|c:cid9")
    [p] = batch.sums
    assert p.attributes == {"route": "/pay", "canary": ""}
    assert p.stream.resource.service_name == "checkout"
    assert p.stream.resource.attributes == {
        "service.name": "checkout",
        "deployment.environment": "prod",
        "host.name": "web-1",
        "service.version": "1.2",
        "container.id": "cid9",
    }
    assert p.stream.name == "req" and p.stream.scope.name == "koban.statsd"


def test_without_a_service_tag_the_service_is_statsd():
    [p] = aggregate(b"req:1|c|#dd.service:api").sums
    assert p.stream.resource.service_name == "api"
    [q] = aggregate(b"x:1|c").sums
    assert q.stream.resource.service_name == "statsd"


def test_tag_order_does_not_split_a_series():
    batch = aggregate(b"req:1|c|#a:1,b:2\nreq:1|c|#b:2,a:1")
    assert [p.value for p in batch.sums] == [2.0]


def test_a_timestamped_sample_keeps_its_own_time():
    [p] = aggregate(b"req:3|c|T1767225000").sums
    assert p.time_ns == 1767225000 * S


def test_service_checks_become_a_status_gauge():
    batch = aggregate(b"_sc|db.up|2|h:db-1|#env:prod|m:replica lag")
    [p] = batch.gauges
    assert (p.stream.name, p.value) == ("datadog.service_check", 2.0)
    assert p.attributes == {"check": "db.up", "message": "replica lag"}
    assert p.stream.resource.attributes["host.name"] == "db-1"


def test_events_become_rows_of_the_events_table():
    agg = StatsdAggregator(T0)
    items, _ = parse_datagram(b"_e{6,11}:Deploy|v1.2 is out|t:error|k:dep|s:ci|#service:web,team:pay,team:ops")
    agg.add(items, T0 + 5)
    batch = agg.flush(T0 + 10 * S)
    assert not batch.logs
    [event] = batch.events
    assert event == Event(
        T0 + 5, "Deploy", "v1.2 is out", "error", "normal", "", "dep", "ci", "web", {"service": "web", "team": "ops"}
    )


def test_an_event_keeps_its_own_time_host_and_container():
    agg = StatsdAggregator(T0, default_service="shop")
    items, _ = parse_datagram(b"_e{1,1}:a|b|d:1767225700|h:web-2|p:low|c:abc|#host:ignored")
    agg.add(items, T0)
    [event] = agg.flush(T0 + S).events
    assert (event.timestamp_ns, event.host, event.priority, event.service_name) == (
        1_767_225_700 * S, "web-2", "low", "shop")  # fmt: skip
    assert event.tags == {"host": "ignored", "container_id": "abc"}


def test_series_over_the_limit_are_dropped_and_counted():
    agg = StatsdAggregator(T0, max_contexts=2, max_events=1)
    items, _ = parse_datagram(b"a:1|c\nb:1|c\nc:1|c\na:1|c\n_e{1,0}:x|\n_e{1,0}:y|")
    agg.add(items, T0)
    batch = agg.flush(T0 + S)
    assert sorted(p.stream.name for p in batch.sums) == ["a", "b"]
    assert len(batch.events) == 1
    assert agg.dropped == {"series_limit": 1, "event_limit": 1}


def test_a_window_taken_from_one_aggregator_merges_into_another():
    other, main = StatsdAggregator(T0), StatsdAggregator(T0)
    for agg, datagram in (
        (other, b"req:2|c|#a:1\nlat:10|ms\nlat:20|ms\nusers:u1|s\nusers:u2|s\ng:5|g\n_e{1,0}:x|"),
        (main, b"req:3|c|#a:1\nlat:30|ms\nusers:u2|s\nusers:u3|s"),
    ):
        items, _ = parse_datagram(datagram)
        agg.add(items, T0 + 1)

    main.absorb(other.take())
    batch = main.flush(T0 + 10 * S)

    [req] = batch.sums
    assert req.value == 5.0
    [lat] = batch.exp_histograms
    assert (lat.count, lat.sum, lat.min, lat.max) == (3, 60.0, 10.0, 30.0)
    gauges = {p.stream.name: p.value for p in batch.gauges}
    assert gauges["users"] == 3.0  # u1, u2, u3: the sets unite
    assert gauges["g"] == 5.0
    assert [e.title for e in batch.events] == ["x"]
    assert other.flush(T0 + 10 * S).record_count == 0  # taking emptied it


def test_taking_a_window_remembers_gauges_for_later_deltas():
    agg = StatsdAggregator(T0)
    items, _ = parse_datagram(b"temp:20|g")
    agg.add(items, T0)
    agg.take()
    items, _ = parse_datagram(b"temp:+5|g")
    agg.add(items, T0 + S)
    [temp] = agg.flush(T0 + 2 * S).gauges
    assert temp.value == 25.0


def _window(datagram: bytes, received_ns: int):
    agg = StatsdAggregator(T0)
    agg.add_datagram(datagram, received_ns)
    return agg.take()


@pytest.mark.parametrize("direction", ["later absorbed", "earlier absorbed"])
def test_merging_two_windows_keeps_the_gauge_set_last_whichever_is_absorbed(direction):
    earlier, later = _window(b"temp:1|g", T0 + 1), _window(b"temp:2|g", T0 + 2)
    main = StatsdAggregator(T0)
    for state in ((earlier, later) if direction == "later absorbed" else (later, earlier)):
        main.absorb(state)
    [temp] = main.flush(T0 + 10 * S).gauges
    assert temp.value == 2.0


def test_merged_gauge_deltas_add_when_they_came_after_the_last_set_value():
    main = StatsdAggregator(T0)
    main.add_datagram(b"temp:10|g\ntemp:+1|g", T0 + 2)
    main.absorb(_window(b"temp:+5|g", T0 + 3))  # after the 10: counts
    main.absorb(_window(b"temp:+100|g", T0 + 1))  # before the 10: overwritten by it
    [temp] = main.flush(T0 + 10 * S).gauges
    assert temp.value == 16.0


def test_deltas_taken_from_another_window_move_the_flushing_aggregators_last_value():
    main = StatsdAggregator(T0)
    main.add_datagram(b"temp:20|g", T0)
    main.flush(T0 + S)
    main.absorb(_window(b"temp:-3|g", T0 + 2 * S))  # the other process never saw the 20
    main.absorb(_window(b"temp:-4|g", T0 + 2 * S))
    [temp] = main.flush(T0 + 3 * S).gauges
    assert temp.value == 13.0


def test_a_gauge_absorbed_into_a_memoised_series_keeps_taking_lines():
    main = StatsdAggregator(T0)
    main.add_datagram(b"temp:1|g", T0 + 1)
    main.absorb(_window(b"temp:5|g", T0 + 2))
    main.add_datagram(b"temp:+1|g", T0 + 3)
    [temp] = main.flush(T0 + 10 * S).gauges
    assert temp.value == 6.0
