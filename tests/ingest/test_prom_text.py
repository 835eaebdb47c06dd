"""The Prometheus text / OpenMetrics parser and the scrape codec ("prom-text/metrics")."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from fuzz.strategies import mutated
from koban.errors import DecodeError
from koban.ingest import decode as decode_codec
from koban.ingest import prom_remote_write, prom_text
from koban.ingest.prom_text import ExpositionError, ScrapeHeader, encode_envelope, parse, parse_strict

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "prom_text"
T_NS = 1_767_225_600_000_000_000
START_NS = T_NS - 60 * 10**9
WHOLE_BODY = {"not_utf8", "missing_eof"}


def header(body_openmetrics: bool = False, **changes) -> ScrapeHeader:
    base = ScrapeHeader("shop", "10.0.0.7:9100", {}, T_NS, body_openmetrics, START_NS, {}, 1, 0.004, 0)
    return base._replace(**changes)


def scrape(body: bytes | str, openmetrics: bool = False, **changes):
    raw = body.encode() if isinstance(body, str) else body
    return decode_codec("prom-text/metrics", encode_envelope(header(openmetrics, **changes), raw), 0)


def points(batch, kind: str, name: str) -> list:
    return [p for p in getattr(batch, kind) if p.stream.name == name]


# --- the malformed corpus ------------------------------------------------------------

CORPUS_FILES = sorted(CORPUS.glob("*.txt"))


def test_the_corpus_is_there():
    assert len(CORPUS_FILES) >= 20


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_each_malformed_exposition_fails_with_its_reason(path):
    reason = path.name.split("--")[0]
    openmetrics = ".om." in path.name

    with pytest.raises(DecodeError) as caught:
        parse_strict(path.read_bytes(), openmetrics=openmetrics)

    assert isinstance(caught.value, ExpositionError)
    assert caught.value.reason == reason
    assert caught.value.to_dict()["reason"] == reason
    assert caught.value.message


@pytest.mark.parametrize("path", [p for p in CORPUS_FILES if p.name.split("--")[0] not in WHOLE_BODY],
                         ids=lambda p: p.name)
def test_a_bad_line_does_not_lose_the_rest_of_the_scrape(path):
    exposition = parse(path.read_bytes(), openmetrics=".om." in path.name)

    assert [e.reason for e in exposition.errors] == [path.name.split("--")[0]]
    names = {s.name for f in exposition.families for s in f.samples}
    assert "ok_total" in names


def test_line_errors_name_the_line():
    exposition = parse("a 1\nb 2\nc{x=1} 3\nd 4\n")

    assert exposition.errors == [prom_text.LineError(3, "bad_labels", exposition.errors[0].message)]
    assert "column" in exposition.errors[0].message
    assert [f.name for f in exposition.families] == ["a", "b", "d"]


# --- values, labels, metadata --------------------------------------------------------


def test_special_values_escapes_and_timestamps():
    text = (
        "# HELP weird A \\\\ backslash\\nand a newline.\n"
        "# TYPE weird gauge\n"
        'weird{path="C:\\\\tmp",quote="say \\"hi\\"",nl="a\\nb",empty=""} NaN\n'
        "pos_inf +Inf 1767225600123\n"
        "neg_inf -Inf\n"
        "exp 1.5e3\n"
    )
    batch = scrape(text)

    weird, = points(batch, "gauges", "weird")
    assert math.isnan(weird.value)
    assert weird.stream.description == "A \\ backslash\nand a newline."
    assert weird.attributes == {"path": "C:\\tmp", "quote": 'say "hi"', "nl": "a\nb", "instance": "10.0.0.7:9100"}
    pos, = points(batch, "gauges", "pos_inf")
    assert pos.value == math.inf and pos.time_ns == 1_767_225_600_123_000_000
    assert points(batch, "gauges", "neg_inf")[0].value == -math.inf
    assert points(batch, "gauges", "neg_inf")[0].time_ns == T_NS
    assert points(batch, "gauges", "exp")[0].value == 1500.0


def test_untyped_samples_are_gauges_and_counters_are_cumulative_monotonic_sums():
    batch = scrape("# TYPE hits_total counter\nhits_total{code=\"200\"} 5\nmystery 7\n")

    hits, = batch.sums
    assert (hits.stream.name, hits.value, hits.aggregation_temporality, hits.is_monotonic) == ("hits_total", 5, 2, True)
    assert hits.start_ns == START_NS
    mystery, = points(batch, "gauges", "mystery")
    assert mystery.start_ns == 0


def test_a_series_start_comes_from_the_header_unless_the_body_dates_it():
    body = "# TYPE a counter\na_total 1\na_created 1767225000\n# TYPE b counter\nb_total{x=\"1\"} 2\n# EOF\n"
    key = prom_text.series_key("b_total", {"x": "1"})
    batch = scrape(body, openmetrics=True, starts={key: START_NS + 5})

    by_name = {p.stream.name: p for p in batch.sums}
    assert by_name["a_total"].start_ns == 1_767_225_000 * 10**9
    assert by_name["b_total"].start_ns == START_NS + 5
    assert not points(batch, "gauges", "a_created")


def test_target_labels_win_and_clashing_exposed_labels_are_kept_as_exported():
    batch = scrape('m{job="other",instance="x",env="dev",team="a"} 1\n', labels={"env": "prod"})

    m, = points(batch, "gauges", "m")
    assert m.attributes == {"exported_job": "other", "exported_instance": "x", "exported_env": "dev", "team": "a",
                            "instance": "10.0.0.7:9100", "env": "prod"}
    assert m.stream.resource.attributes == {"service.name": "shop", "service.instance.id": "10.0.0.7:9100"}


def test_histograms_are_de_cumulated_with_explicit_bounds():
    text = (
        "# TYPE rpc_seconds histogram\n"
        'rpc_seconds_bucket{method="get",le="0.1"} 2\n'
        'rpc_seconds_bucket{method="get",le="1"} 5\n'
        'rpc_seconds_bucket{method="get",le="+Inf"} 6\n'
        'rpc_seconds_sum{method="get"} 4.5\n'
        'rpc_seconds_count{method="get"} 6\n'
    )
    h, = scrape(text).histograms

    assert h.stream.name == "rpc_seconds"
    assert (h.count, h.sum, h.bucket_counts, h.explicit_bounds) == (6, 4.5, (2, 3, 1), (0.1, 1.0))
    assert h.attributes == {"method": "get", "instance": "10.0.0.7:9100"}
    assert (h.aggregation_temporality, h.start_ns, h.min, h.max) == (2, START_NS, None, None)


def test_summaries_keep_their_quantiles():
    text = (
        "# TYPE rpc summary\n"
        'rpc{quantile="0.99"} 0.9\nrpc{quantile="0.5"} 0.2\nrpc_sum 12\nrpc_count 40\n'
    )
    s, = scrape(text).summaries

    assert (s.stream.name, s.count, s.sum, s.quantiles, s.quantile_values) == ("rpc", 40, 12.0, (0.5, 0.99), (0.2, 0.9))


def test_the_scrape_series_are_there_even_when_the_target_is_down():
    batch = scrape(b"", up=0, duration_s=10.0, samples=0)

    by_name = {p.stream.name: p for p in batch.gauges}
    assert set(by_name) == {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
    assert by_name["up"].value == 0.0 and by_name["scrape_duration_seconds"].value == 10.0
    assert by_name["up"].attributes == {"instance": "10.0.0.7:9100"}
    assert by_name["up"].stream.resource.service_name == "shop"


def test_a_payload_that_is_not_an_envelope_is_a_decode_error():
    for payload in (b"", b"not json\nm 1\n", b'{"job": "x"}\nm 1\n', b'{"job": "x", "instance": ""}'):
        with pytest.raises(DecodeError):
            decode_codec("prom-text/metrics", payload, 0)


def test_decoding_is_deterministic_for_replay():
    payload = encode_envelope(header(), b"# TYPE c counter\nc 1\ng 2\n")

    assert prom_text.decode(payload, 1) == prom_text.decode(payload, 2)


# --- real prometheus_client output ---------------------------------------------------


def _registry() -> CollectorRegistry:
    r = CollectorRegistry()
    c = Counter("http_requests", "Requests.", ["path"], registry=r)
    c.labels("/a").inc(3)
    c.labels("/b").inc(1)
    Gauge("temperature", "Temperature.", ["room"], unit="celsius", registry=r).labels("lab").set(-2.5)
    h = Histogram("latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=r)
    for v in (0.05, 0.5, 0.7, 3.0):
        h.observe(v)
    s = Summary("payload_bytes", "Payload sizes.", registry=r)
    s.observe(10)
    s.observe(30)
    return r


def _comparable(batch) -> dict:
    out = {}
    for kind in ("gauges", "sums", "histograms", "summaries"):
        for p in getattr(batch, kind):
            if p.stream.name.startswith(("up", "scrape_")):
                continue
            fields = p._asdict()
            fields["stream"] = (p.stream.name, p.stream.description, p.stream.resource)
            out[(kind, p.stream.name, tuple(sorted(p.attributes.items())))] = fields
    return out


def test_prometheus_client_text_and_openmetrics_give_the_same_points():
    r = _registry()

    text = scrape(generate_latest(r))
    openmetrics = scrape(generate_openmetrics(r), openmetrics=True)

    assert _comparable(text) == _comparable(openmetrics)
    names = {key[:2] for key in _comparable(text)}
    assert names == {("sums", "http_requests_total"), ("gauges", "temperature_celsius"),
                     ("histograms", "latency_seconds"), ("summaries", "payload_bytes")}
    h, = text.histograms
    assert (h.count, h.bucket_counts, h.explicit_bounds) == (4, (1, 2, 1), (0.1, 1.0))
    counter = {p.attributes["path"]: p for p in text.sums}
    assert counter["/a"].value == 3.0 and counter["/a"].start_ns > 0


def test_counters_and_gauges_match_what_remote_write_stores_for_the_same_series():
    """The naming rule: the same series scraped or remote-written lands with the same
    name, resource and attributes (only the scope says which way it came)."""
    body = '# TYPE http_requests_total counter\nhttp_requests_total{path="/a"} 3 1767225600000\nup_time 9 1767225600000\n'
    scraped = scrape(body)
    rw = prom_remote_write.MESSAGES["WriteRequest"]()
    for name, labels, value in (("http_requests_total", {"path": "/a"}, 3.0), ("up_time", {}, 9.0)):
        ts = rw.timeseries.add()
        for k, v in {"__name__": name, "job": "shop", "instance": "10.0.0.7:9100", **labels}.items():
            ts.labels.add(name=k, value=v)
        ts.samples.add(value=value, timestamp=1_767_225_600_000)
    rw.metadata.add(metric_family_name="http_requests_total", type=1)
    written = prom_remote_write.decode(rw.SerializeToString(), 0).with_metric_points()

    def same(p):
        return (p.stream.name, p.stream.resource, p.attributes, p.time_ns, p.value)

    assert [same(p) for p in scraped.sums] == [same(p) for p in written.sums]
    assert [same(p) for p in points(scraped, "gauges", "up_time")] == [same(p) for p in written.gauges]
    assert scraped.sums[0].is_monotonic == written.sums[0].is_monotonic is True


def test_a_scrape_kept_in_the_wal_replays_to_the_same_points(tmp_path):
    from koban.pipeline.wal import WriteAheadLog

    body = b'# TYPE c counter\nc_total{a="1"} 4\nc_total{a="2"} 9\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 2\n'
    payload = encode_envelope(header(starts={prom_text.series_key("c_total", {"a": "2"}): START_NS + 7}), body)
    wal = WriteAheadLog(tmp_path / "wal")
    wal.append_blocking(prom_text.CODEC, payload, 123)
    wal.close()

    reopened = WriteAheadLog(tmp_path / "wal")
    (entry,) = list(reopened.replay(0))
    reopened.close()
    replayed = decode_codec(entry.codec, entry.payload, entry.received_ns)

    assert replayed == prom_text.decode(payload, 0)
    assert sorted(p.start_ns for p in replayed.sums) == [START_NS, START_NS + 7]
    assert replayed.histograms[0].bucket_counts == (2,)


_GOLDEN = encode_envelope(
    header(labels={"env": "prod"}, starts={"c_total": START_NS + 1}),
    b'# TYPE c counter\nc_total{a="x\\\\y"} 4 1767225600000\ng 1.5\n# TYPE h histogram\n'
    b'h_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 3\nh_sum 2\nh_count 3\n'
    b'# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 3\n',
)


@settings(max_examples=300, deadline=None)
@given(mutated([_GOLDEN], max_edits=4))  # the fuzz harness's byte-level mutations
def test_a_mutated_envelope_decodes_or_raises_decode_error(otlp, payload):
    try:
        batch = decode_codec(prom_text.CODEC, payload, 0)
    except DecodeError as exc:
        assert exc.status == 400 and exc.message
    else:
        otlp.assert_fits_store(batch)


TRICKY_LINES = [
    'a 1', 'a{} 1', 'a{b="c",} 1', 'a{b="c",d="e"} -1.5e3 1767225600000', 'a{b="c" , d="e"} 1',
    'a{b="c\\\\d"} 1', 'a{b="c"}  1', 'a 1 1.5', 'a{b="c",b="d"} 1', 'a{b="c"d="e"} 1', 'a +Inf', 'a NaN 5',
    'a{b="#"} 1', 'a 1 # {t="1"} 2 3', 'a 1_0', 'a{b="c"} 1 2 3', 'a:b_c{_x="1"} .5',
]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_fast_path_reads_lines_exactly_as_the_full_parser(openmetrics):
    """A differential test: the one-regex fast path gives the full parser's sample or
    steps aside (None), never a different answer."""
    lines = TRICKY_LINES + [
        line for line in generate_latest(_registry()).decode().splitlines() + generate_openmetrics(_registry()
        ).decode().splitlines() if not line.startswith("#")
    ]
    def outcome(read, line):
        try:
            return read(line, openmetrics)
        except prom_text._Skip as skip:
            return skip.reason

    fast_hits = 0
    for line in lines:
        fast = outcome(prom_text._fast_sample, line)
        if fast is not None:
            fast_hits += 1
            assert repr(fast) == repr(outcome(prom_text._sample, line)), line  # repr: NaN == NaN
    assert fast_hits > len(lines) // 2
