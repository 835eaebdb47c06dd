"""Every decoder and parser a client or a user can feed, in one list.

A `Target` takes raw bytes (text parsers read them as UTF-8, bad bytes replaced, so one
byte-level mutator serves them all) and either returns or raises one of its own
`allowed` error types; anything else is a crash. Its seeds and every crash ever found
live in tests/corpus/<name>/ and are replayed by test_corpus.py.

A decoder or parser that lands later joins by adding one entry to `TARGETS`
(test_harness_covers_every_codec fails when a CODECS entry has none).
"""

from __future__ import annotations

import importlib.util
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from koban.errors import BadRequest, DecodeError, PayloadTooLarge, QuerySyntaxError, TimeFormatError
from koban.ingest import CODECS, decode, statsd
from koban.query import reads
from koban.query.compile import LOGS, SPANS, compile_filter, describe
from koban.query.dialects import ClickHouseDialect, DuckDBDialect
from koban.query.parse import parse
from koban.query.timeparse import parse_duration, parse_time, resolve_range

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
RECEIVED_NS = 1_767_225_600_000_000_000
NOW_NS = RECEIVED_NS


def examples(default: int) -> int:
    """Examples per fuzz test: `default` in CI, KOBAN_FUZZ_EXAMPLES for long local runs."""
    return int(os.environ.get("KOBAN_FUZZ_EXAMPLES", default))


class Target(NamedTuple):
    name: str  # also the directory of its corpus under tests/corpus/
    run: Callable[[bytes], Any]
    allowed: tuple[type[BaseException], ...]
    text: bool = False  # a parser of user-typed text, not of wire bytes
    builtin_seeds: list[bytes] = []  # for a target whose corpus folder is owned elsewhere

    def corpus(self) -> list[Path]:
        folder = CORPUS / self.name
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def seeds(self) -> list[bytes]:
        files = [p.read_bytes() for p in self.corpus() if not p.name.startswith("README")]
        return files or list(self.builtin_seeds)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _codec(codec: str) -> Callable[[bytes], Any]:
    return lambda data: decode(codec, data, RECEIVED_NS)


def _statsd(data: bytes) -> Any:
    items, errors = statsd.parse_datagram(data)  # documented never to raise
    assert all(isinstance(e.reason, str) and len(e.line) <= 200 for e in errors)
    from koban.pipeline.statsd_aggregator import StatsdAggregator

    # the listener's one-pass path, twice (the second time from its memo), agrees
    aggregator = StatsdAggregator(RECEIVED_NS)
    for _ in range(2):
        assert aggregator.add_datagram(data, RECEIVED_NS) == (len(items), errors)
    return items


_DIALECTS = (DuckDBDialect(), ClickHouseDialect())


def _search_compile(data: bytes) -> Any:
    """Parse, then compile for both sources and both dialects and describe: a query
    that parses must compile (or be refused as a BadRequest), never crash."""
    node = parse(_text(data))
    for source in (LOGS, SPANS):
        describe(node, source)
        for dialect in _DIALECTS:
            params = dialect.new_params()
            compile_filter(node, source, dialect, params)
    return node


def _time_range(data: bytes) -> Any:
    text = _text(data)
    first, _, second = text.partition("|")
    return resolve_range(first, second or None, NOW_NS)


def _duration(data: bytes) -> int:
    ns = parse_duration(_text(data))
    assert isinstance(ns, int) and ns >= 0
    return ns


def _time(data: bytes) -> int:
    ns = parse_time(_text(data), NOW_NS)
    assert isinstance(ns, int) and -(2**63) <= ns < 2**63
    return ns


BODY_LIMIT = 64 * 2**10  # small, so the fuzzer reaches the over-the-limit paths


def _inflate(encoding: str) -> Callable[[bytes], Any]:
    from koban.receive.bodies import decompress

    def run(data: bytes) -> bytes:
        out = decompress(data, encoding, BODY_LIMIT)
        assert len(out) <= BODY_LIMIT
        return out

    return run


def _snappy(data: bytes) -> bytes:
    from koban.receive.prom_remote_write import snappy_decompress

    out = snappy_decompress(data, BODY_LIMIT)
    assert len(out) <= BODY_LIMIT
    return out


_CODEC_TARGETS = [Target(codec.replace("/", "_").replace("-", "_"), _codec(codec), (DecodeError,)) for codec in CODECS]

TARGETS: list[Target] = [
    *_CODEC_TARGETS,
    Target("statsd", _statsd, ()),
    # request bodies are decompressed by the receivers before any decoder sees them
    Target("gzip_body", _inflate("gzip"), (BadRequest, PayloadTooLarge)),
    Target("deflate_body", _inflate("deflate"), (BadRequest, PayloadTooLarge)),
    Target("snappy_body", _snappy, (BadRequest, PayloadTooLarge)),
    Target("search", lambda data: parse(_text(data)), (QuerySyntaxError,), text=True),
    Target("search_compile", _search_compile, (BadRequest,), text=True),
    Target("time", _time, (TimeFormatError,), text=True),
    Target("duration", _duration, (TimeFormatError,), text=True),
    Target("time_range", _time_range, (TimeFormatError,), text=True),
    Target("cursor", lambda data: reads.decode_cursor(_text(data)), (BadRequest,), text=True),
]


# --- decoders and parsers that landed with other work: they join when their module
# exists, so the harness runs on a tree with or without them. tests/corpus/prom_text/
# belongs to the scrape work; until it has seeds, PROM_TEXT_SEEDS stand in.

PROM_TEXT_SEEDS = [
    b'# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n'
    b'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
    b'http_requests_total{method="post",code="400"} 3\n',
    b'# TYPE latency histogram\nlatency_bucket{le="0.1"} 2\nlatency_bucket{le="+Inf"} 3\n'
    b'latency_sum 0.4\nlatency_count 3\n# TYPE q summary\nq{quantile="0.5"} 1.5e-3\nq_sum 2\nq_count 4\n'
    b'up NaN\nesc{path="C:\\\\dir\\n\\""} -Inf\n# EOF\n',
]


def _prom_text(data: bytes) -> object:
    from koban.ingest import prom_text

    try:
        prom_text.parse(data, openmetrics=True)
    except prom_text.ExpositionError:
        pass
    return prom_text.parse(data)


def _metric_query(data: bytes) -> object:
    from koban.query.metric_query import parse_metric_query

    return parse_metric_query(_text(data))


if importlib.util.find_spec("koban.ingest.prom_text") is not None:
    TARGETS.append(Target("prom_text", _prom_text, (DecodeError,), builtin_seeds=PROM_TEXT_SEEDS))
if importlib.util.find_spec("koban.query.metric_query") is not None:
    TARGETS.append(Target("metric_query", _metric_query, (QuerySyntaxError,), text=True))

BY_NAME = {t.name: t for t in TARGETS}


def check(target: Target, data: bytes) -> Any:
    """Runs `target` on `data`; returns its result, or None when it refused the input
    with one of its allowed errors. Any other exception propagates: that is a crash.
    With KOBAN_FUZZ_SAVE_CRASHES=1 the input is first saved to the target's corpus."""
    try:
        return target.run(data)
    except target.allowed as error:
        assert error.status // 100 == 4 and error.message
        return None
    except BaseException as crash:
        if os.environ.get("KOBAN_FUZZ_SAVE_CRASHES") == "1":
            save_crash(target, data, crash)
        raise


def save_crash(target: Target, data: bytes, crash: BaseException) -> Path:
    """Writes `data` to tests/corpus/<target>/crash-<exception>-<where>, one file per
    distinct crash site, keeping the shortest input seen (hypothesis shrinks towards
    it, so a long run leaves one small reproducer per bug, not every failing try)."""
    frame = traceback.extract_tb(crash.__traceback__)[-1]
    site = f"{Path(frame.filename).stem}-{frame.lineno}"
    folder = CORPUS / target.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{type(crash).__name__}-{site}"
    if not path.exists() or len(data) < path.stat().st_size:
        path.write_bytes(data)
    return path
