"""The one-pass path, StatsdAggregator.add_datagram: a datagram parsed straight into the
window must come out exactly as parse_datagram + add would have it, errors included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from koban.ingest.statsd import parse_datagram
from koban.pipeline.statsd_aggregator import StatsdAggregator

T0 = 1_767_225_600_000_000_000
S = 1_000_000_000

# Few series, so that a series the window has memoised comes back with other values
NAMES = ["req", "", " ", "_e{1,1}", "_sc", "x\r"]
VALUES = ["1", "-2", "+3", "0.5", "1e3", "1:2", "a", "", " 1", "1_0", "nan", "inf", "-inf", "١", "+0", "bob:al"]
RESTS = ["c", "g", "ms", "s", "d|@0.5", "c|@0.1|#env:prod,route:/a", "c|#route:/a,env:prod", "h|#|c:cid",
         "g|T1767225000", "c|T0", "c|@2", "s|e:ext", "x", "c\r", ""]  # fmt: skip
OTHER = ["_e{1,1}:a|b", "_e{1,1}:a|b|#service:web", "_sc|db|2|m:down", "_sc|db|9", "", "\r", "junk"]

metric_lines = st.builds(
    lambda n, v, r: f"{n}:{v}|{r}",
    st.sampled_from(NAMES), st.sampled_from(VALUES), st.sampled_from(RESTS),
)
lines = st.one_of(metric_lines, metric_lines, metric_lines, st.sampled_from(OTHER))
datagrams = st.lists(st.lists(lines, min_size=1, max_size=8).map(lambda ls: "\n".join(ls).encode()), max_size=12)


def both_ways(datagrams: list[bytes], **options) -> tuple[tuple, tuple]:
    """(the flushed batch, items, errors) through add_datagram, then through parse + add;
    each datagram is sent twice, so the second time the series are memoised."""
    one_pass, two_pass = StatsdAggregator(T0, **options), StatsdAggregator(T0, **options)
    counted_one, counted_two, errors_one, errors_two = 0, 0, [], []
    for d in datagrams * 2:
        n, errors = one_pass.add_datagram(d, T0 + 1)
        counted_one += n
        errors_one += errors
        items, errors = parse_datagram(d)
        two_pass.add(items, T0 + 1)
        counted_two += len(items)
        errors_two += errors
    return (
        (one_pass.flush(T0 + 10 * S), counted_one, errors_one, one_pass.dropped),
        (two_pass.flush(T0 + 10 * S), counted_two, errors_two, two_pass.dropped),
    )


@settings(max_examples=300, deadline=None)
@given(datagrams)
def test_one_pass_gives_what_parse_then_add_gives(datagrams):
    one, two = both_ways(datagrams)
    assert one == two


@settings(max_examples=100, deadline=None)
@given(datagrams)
def test_one_pass_agrees_with_gauge_deltas_off_and_a_small_series_limit(datagrams):
    one, two = both_ways(datagrams, gauge_deltas=False, max_contexts=3)
    assert one == two


def test_a_memoised_series_still_counts_a_bad_value_by_its_reason():
    agg = StatsdAggregator(T0)
    agg.add_datagram(b"req:1|c|#env:prod", T0)
    n, errors = agg.add_datagram(b"req:nope|c|#env:prod\nreq:1_0|c|#env:prod\nreq:2|c|#env:prod", T0)
    assert n == 1
    assert [e.reason for e in errors] == ["bad_value", "bad_value"]
    [p] = agg.flush(T0 + S).sums
    assert p.value == 3.0


def test_a_memoised_series_takes_sample_rates_deltas_and_set_members():
    agg = StatsdAggregator(T0)
    for _ in range(3):
        agg.add_datagram(b"req:1|c|@0.5\nlat:7|ms|@0.25\nfuel:+2|g\nusers:u1|s\nusers:u2|s", T0)
    batch = agg.flush(T0 + 10 * S)
    assert [p.value for p in batch.sums] == [6.0]
    assert [p.count for p in batch.exp_histograms] == [12]
    assert {p.stream.name: p.value for p in batch.gauges if p.stream.name in ("fuel", "users")} == {
        "fuel": 6.0, "users": 2.0}  # fmt: skip


def test_a_new_window_forgets_the_old_windows_series():
    agg = StatsdAggregator(T0)
    agg.add_datagram(b"req:1|c", T0)
    agg.flush(T0 + S)
    agg.add_datagram(b"req:1|c", T0 + S)
    [p] = agg.flush(T0 + 2 * S).sums
    assert p.value == 1.0
