"""Prometheus text exposition (0.0.4) and OpenMetrics 1.0 text -> metric points.

Two layers, both pure:

- `parse(text, openmetrics=)` reads an exposition into `Family` records (name, type,
  help, unit, samples) and a list of `LineError`s. A bad line is skipped and reported;
  the other lines still count (a scrape is not lost for one bad line). Only a body
  that is not UTF-8 or an OpenMetrics body without `# EOF` (a truncated response)
  fails as a whole. `parse_strict` raises `ExpositionError` (a DecodeError with a
  `reason`) for the first problem instead.
- `decode(payload, received_ns)` is the codec "prom-text/metrics": a scrape envelope
  (`encode_envelope`: one JSON header line with the job, instance, target labels,
  scrape time and the start times the scraper chose, then the body) decoded into a
  Batch. Everything that is not in the body is in the header, so a WAL replay gives
  the same points.

Mapping (docs/metrics.md, "One naming rule" and "Prometheus scrape"):

- counters are cumulative monotonic sums named by their sample (`http_requests_total`,
  as remote write names them); gauges, untyped/unknown, info and stateset samples are
  gauges named by their sample;
- a histogram's `_bucket`/`_count`/`_sum` of one label set become one histogram point
  named by the family, its cumulative `le` buckets turned into bucket counts with the
  finite `le` bounds as ExplicitBounds; a summary's quantiles, `_count` and `_sum`
  become one summary point named by the family;
- `job` is the resource's service.name, `instance` its service.instance.id and a point
  attribute; an exposed label that clashes with a target label is kept as
  `exported_<name>` (Prometheus' honor_labels = false); empty labels are absent;
- counters, histograms and summaries start at their `_created` time when the body
  gives one (OpenMetrics, or prometheus_client's `<name>_created` gauges in 0.0.4,
  which are then not stored as gauges); otherwise at the start time the scraper chose.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import NamedTuple

import orjson

from koban import __version__
from koban.errors import DecodeError
from koban.ingest.otlp_values import MAX_TIME_NS
from koban.model import Batch, GaugePoint, HistogramPoint, MetricStream, Resource, Scope, SummaryPoint, SumPoint

SCOPE = Scope("koban.prometheus.scrape", __version__)
CODEC = "prom-text/metrics"
CUMULATIVE = 2  # OTLP's AggregationTemporality
MAX_COUNT = float(2**63)  # larger histogram/summary counts are refused (the store's UBIGINT, with room)

TYPES = ("counter", "gauge", "histogram", "gaugehistogram", "summary", "untyped", "unknown", "info", "stateset")
# which sample names belong to a family of each type: family name + one of these
_SUFFIXES = {
    "counter": ("", "_total", "_created"),
    "gauge": ("",),
    "untyped": ("",),
    "unknown": ("",),
    "stateset": ("",),
    "info": ("_info",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
}
_SUFFIX_ORDER = ("_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info")

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*')
_ESCAPE = re.compile(r"\\(.)")
# The common line (single spaces, no escapes, no exemplar) in one match; anything else
# goes through `_sample`, which also says what is wrong.
_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
_FAST_SAMPLE = re.compile(
    rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{((?:{_PAIR}(?:,{_PAIR})*,?)?)\}})? ([^ ]+)(?: ([^ ]+))?"
)
_FAST_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\\n]*)"')
_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n"}
_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:inf|infinity|nan))")
_INT = re.compile(r"-?\d+")

# Why a line was skipped: the `reason` of a LineError and of koban_records_rejected_total.
NOT_UTF8 = "not_utf8"
BAD_LINE = "bad_line"
BAD_LABELS = "bad_labels"
BAD_ESCAPE = "bad_escape"
BAD_VALUE = "bad_value"
BAD_TIMESTAMP = "bad_timestamp"
BAD_METADATA = "bad_metadata"
DUPLICATE_SERIES = "duplicate_series"
MISSING_EOF = "missing_eof"
AFTER_EOF = "after_eof"
BAD_HISTOGRAM = "bad_histogram"
BAD_SUMMARY = "bad_summary"


class LineError(NamedTuple):
    line: int  # 1-based; 0 for the body as a whole
    reason: str
    message: str


class ExpositionError(DecodeError):
    """An exposition text is malformed. `reason` is one of this module's reasons."""

    def __init__(self, error: LineError) -> None:
        where = f"line {error.line}: " if error.line else ""
        super().__init__(f"{where}{error.message}", reason=error.reason, line=error.line)
        self.reason = error.reason
        self.line = error.line


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float
    time_ms: int | None  # None: the scrape's time


class Family(NamedTuple):
    name: str
    type: str  # one of TYPES ("untyped" when no TYPE line named it)
    help: str
    unit: str
    samples: list[Sample]


class Exposition(NamedTuple):
    families: list[Family]
    errors: list[LineError]

    @property
    def sample_count(self) -> int:
        return sum(len(f.samples) for f in self.families)


class _FamilyBuilder:
    __slots__ = ("name", "type", "help", "unit", "samples", "typed")

    def __init__(self, name: str, type_: str = "untyped") -> None:
        self.name, self.type, self.help, self.unit = name, type_, "", ""
        self.samples: list[Sample] = []
        self.typed = False


# --- parsing -------------------------------------------------------------------------


def parse_strict(body: bytes | str, *, openmetrics: bool = False) -> Exposition:
    """`body` parsed; raises ExpositionError for its first problem."""
    exposition = parse(body, openmetrics=openmetrics)
    if exposition.errors:
        raise ExpositionError(exposition.errors[0])
    return exposition


def parse(body: bytes | str, *, openmetrics: bool = False) -> Exposition:
    """The families of an exposition, and the problems of the lines that were skipped.

    Raises ExpositionError only when the whole body is unusable: not UTF-8, or an
    OpenMetrics body that does not end with `# EOF`.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"the body is not UTF-8 ({exc.reason} at byte {exc.start})"
            raise ExpositionError(LineError(0, NOT_UTF8, problem)) from None
    else:
        text = body
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    families: dict[str, _FamilyBuilder] = {}
    errors: list[LineError] = []
    seen: set[tuple] = set()
    owner: dict[str, _FamilyBuilder] = {}  # sample name -> its family, until metadata changes
    eof_at = 0
    for number, line in enumerate(lines, 1):
        if eof_at:
            errors.append(LineError(number, AFTER_EOF, "text after # EOF"))
            break
        if line.endswith("\r"):
            line = line[:-1]
        try:
            if line.startswith("#"):
                if openmetrics and line == "# EOF":
                    eof_at = number
                else:
                    _metadata(line, families, openmetrics)
                    owner.clear()
            elif line.strip():
                sample = _fast_sample(line, openmetrics) or _sample(line, openmetrics)
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key in seen:
                    raise _Skip(DUPLICATE_SERIES, f"{sample.name} with these labels appears twice")
                seen.add(key)
                family = owner.get(sample.name)
                if family is None:
                    family = owner[sample.name] = _family_of(sample.name, families)
                family.samples.append(sample)
        except _Skip as skip:
            errors.append(LineError(number, skip.reason, skip.message))
    if openmetrics and not eof_at:
        raise ExpositionError(LineError(0, MISSING_EOF, "the OpenMetrics body does not end with # EOF (truncated?)"))
    out = []
    for b in families.values():
        family = Family(b.name, b.type, b.help, b.unit, b.samples)
        if b.type in ("histogram", "summary"):
            family = _without_bad_groups(family, errors)
        if family.samples:
            out.append(family)
    return Exposition(out, errors)


def _without_bad_groups(family: Family, errors: list[LineError]) -> Family:
    """`family` (a histogram or summary) without the label sets whose samples do not
    make one point; each is reported (line 0: the problem spans lines)."""
    check = _histogram_problem if family.type == "histogram" else _summary_problem
    bad: set[tuple] = set()
    for labels, group in _groups(family).items():
        problem = check(family.name, group)
        if problem:
            shown = ",".join(f'{k}="{v}"' for k, v in labels)
            reason = BAD_HISTOGRAM if family.type == "histogram" else BAD_SUMMARY
            errors.append(LineError(0, reason, f"{family.name}{{{shown}}}: {problem}"))
            bad.add(labels)
    if not bad:
        return family
    keep = [s for s in family.samples if _group_key(s.labels) not in bad]
    return family._replace(samples=keep)


def _count_ok(value: float) -> bool:
    """Whether `value` can be a count the store keeps (UBIGINT)."""
    return 0 <= value <= MAX_COUNT  # False for NaN too


def _histogram_problem(name: str, group: list[Sample]) -> str:
    bounds = []
    for s in group:
        if s.name == name + "_bucket":
            le = s.labels.get("le", "")
            if not _FLOAT.fullmatch(le) or math.isnan(float(le)):
                return f"bucket le={le!r} is not a number"
            if not _count_ok(s.value):
                return f"bucket le={le!r} has count {s.value}"
            bounds.append((float(le), s.value))
        elif s.name == name + "_count" and not _count_ok(s.value):
            return f"_count is {s.value}"
    if not bounds:
        return ""  # only _sum/_count: a histogram with one bucket
    bounds.sort()
    if bounds[-1][0] != math.inf:
        return 'no le="+Inf" bucket'
    if len({le for le, _ in bounds}) != len(bounds):
        return "two buckets have the same le"
    if any(b[1] < a[1] for a, b in zip(bounds, bounds[1:])):
        return "cumulative bucket counts go down as le grows"
    return ""


def _summary_problem(name: str, group: list[Sample]) -> str:
    for s in group:
        if s.name == name:
            q = s.labels.get("quantile", "")
            if not _FLOAT.fullmatch(q) or not 0 <= float(q) <= 1:
                return f"quantile={q!r} is not a number in 0..1"
        elif s.name == name + "_count" and not _count_ok(s.value):
            return f"_count is {s.value}"
    return ""


class _Skip(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason, self.message = reason, message


def _metadata(line: str, families: dict[str, _FamilyBuilder], openmetrics: bool) -> None:
    parts = line[1:].lstrip().split(None, 2)
    if len(parts) < 2 or parts[0] not in ("HELP", "TYPE", "UNIT"):
        if openmetrics:
            raise _Skip(BAD_METADATA, "an OpenMetrics comment must be # HELP, # TYPE, # UNIT or # EOF")
        return  # 0.0.4: any other comment is a comment
    keyword, name = parts[0], parts[1]
    rest = parts[2] if len(parts) > 2 else ""
    if not _NAME.fullmatch(name):
        raise _Skip(BAD_METADATA, f"# {keyword}: {name!r} is not a metric name")
    family = families.get(name)
    if keyword == "TYPE":
        type_ = rest.strip()
        if type_ not in TYPES:
            raise _Skip(BAD_METADATA, f"# TYPE {name}: unknown type {type_!r}")
        if family is None:
            family = families[name] = _FamilyBuilder(name)
        elif family.typed or family.samples:
            raise _Skip(BAD_METADATA, f"# TYPE {name} comes after its samples or a TYPE of its own")
        family.type, family.typed = type_, True
        return
    if family is None:
        family = families[name] = _FamilyBuilder(name)
    if keyword == "HELP":
        family.help = _unescape(rest, help_text=not openmetrics)
    else:
        family.unit = rest.strip()


def _family_of(name: str, families: dict[str, _FamilyBuilder]) -> _FamilyBuilder:
    family = families.get(name)
    if family is not None and "" in _SUFFIXES[family.type]:
        return family
    for suffix in _SUFFIX_ORDER:
        if name.endswith(suffix):
            base = families.get(name[: -len(suffix)])
            if base is not None and suffix in _SUFFIXES[base.type]:
                return base
    if family is None:
        family = families[name] = _FamilyBuilder(name)
    return family  # a family whose TYPE does not take the bare name: kept as it came


def _fast_sample(line: str, openmetrics: bool) -> Sample | None:
    """`line` as a Sample when it has the common shape, else None (`_sample` decides)."""
    m = _FAST_SAMPLE.fullmatch(line)
    if m is None or not _FLOAT.fullmatch(m[3]):
        return None
    name, block, value, ts = m.groups()
    labels = {}
    if block:
        pairs = _FAST_PAIR.findall(block)
        labels = dict(pairs)
        if len(labels) != len(pairs):
            return None  # a repeated label: `_sample` reports it
    return Sample(name, labels, float(value), _timestamp(name, ts, openmetrics) if ts else None)


def _sample(line: str, openmetrics: bool) -> Sample:
    m = _NAME.match(line)
    if m is None:
        raise _Skip(BAD_LINE, f"expected a metric name at the start of {line[:40]!r}")
    name, pos = m.group(), m.end()
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _labels(line, pos + 1)
    rest = line[pos:]
    if openmetrics:
        rest = rest.partition(" # ")[0]  # an exemplar: not kept yet
    parts = rest.split()
    if not rest[:1].isspace() or not 1 <= len(parts) <= 2:
        raise _Skip(BAD_LINE, f"{name}: expected 'name{{labels}} value [timestamp]'")
    if not _FLOAT.fullmatch(parts[0]):
        raise _Skip(BAD_VALUE, f"{name}: {parts[0]!r} is not a number")
    value = float(parts[0])
    time_ms = _timestamp(name, parts[1], openmetrics) if len(parts) == 2 else None
    return Sample(name, labels, value, time_ms)


def _labels(line: str, pos: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return labels, pos + 1
        m = _LABEL.match(line, pos)
        if m is None:
            raise _Skip(BAD_LABELS, f"malformed label set at column {pos + 1}")
        key, raw = m.group(1), m.group(2)
        if key in labels:
            raise _Skip(BAD_LABELS, f"label {key!r} appears twice")
        labels[key] = _unescape(raw) if "\\" in raw else raw
        pos = m.end()
        if pos < len(line) and line[pos] == ",":
            pos += 1
        elif pos >= len(line) or line[pos] != "}":
            raise _Skip(BAD_LABELS, f"expected ',' or '}}' at column {pos + 1}")


def _unescape(raw: str, *, help_text: bool = False) -> str:
    def one(m: re.Match[str]) -> str:
        c = m.group(1)
        if c in _UNESCAPE and not (help_text and c == '"'):
            return _UNESCAPE[c]
        if help_text:
            return m.group()  # 0.0.4 HELP: other backslashes are literal
        raise _Skip(BAD_ESCAPE, f"invalid escape '\\{c}' in a label value")

    return _ESCAPE.sub(one, raw)


def _timestamp(name: str, text: str, openmetrics: bool) -> int:
    """The sample's time in ms (0.0.4 gives ms, OpenMetrics seconds)."""
    if openmetrics:
        ok = _FLOAT.fullmatch(text) and math.isfinite(float(text))
        ms = round(float(text) * 1000) if ok else None
    else:
        ms = int(text) if len(text) <= 20 and _INT.fullmatch(text) else None
    if ms is None:
        raise _Skip(BAD_TIMESTAMP, f"{name}: {text!r} is not a timestamp")
    if not 0 <= ms <= MAX_TIME_NS // 1_000_000:
        raise _Skip(BAD_TIMESTAMP, f"{name}: timestamp {text} is before 1970 or after 2262")
    return ms


# --- series identity and created times (shared with the scraper) ----------------------


def series_key(name: str, labels: dict[str, str]) -> str:
    """One cumulative series' identity: its point's metric name and labels (without
    `le`/`quantile`), as the scraper keys start times."""
    items = sorted((k, v) for k, v in labels.items() if k not in ("le", "quantile"))
    return "\x1f".join([name, *(f"{k}={v}" for k, v in items)])


def _created_base(family: Family, families: dict[str, Family]) -> str | None:
    """For a 0.0.4 gauge family `X_created`, the cumulative family it dates (`X` or
    `X_total`), or None."""
    if not family.name.endswith("_created") or family.type not in ("gauge", "untyped"):
        return None
    base = family.name[: -len("_created")]
    for candidate in (base, base + "_total"):
        other = families.get(candidate)
        if other is not None and other.type in ("counter", "histogram", "summary"):
            return candidate
    return None


class Cumulative(NamedTuple):
    """A cumulative series of an exposition: its key, value (a histogram's or
    summary's count) and `_created` time in ns (0 when the body gives none)."""

    key: str
    value: float
    created_ns: int


def cumulative_series(exposition: Exposition) -> list[Cumulative]:
    """Every counter, histogram and summary series of `exposition`, for reset tracking."""
    return [Cumulative(key, value, created) for key, value, created, _ in _cumulatives(exposition.families)]


def _cumulatives(families: list[Family]) -> Iterable[tuple[str, float, int, tuple]]:
    by_name = {f.name: f for f in families}
    created = _created_times(families, by_name)
    for f in families:
        if f.type == "counter":
            for s in f.samples:
                if not s.name.endswith("_created"):
                    ckey = (_counter_base(f, s.name), tuple(sorted(s.labels.items())))
                    yield series_key(s.name, s.labels), s.value, created.get(ckey, 0), (f, s)
        elif f.type in ("histogram", "summary"):
            for labels, group in _groups(f).items():
                count = next((s.value for s in group if s.name == f.name + "_count"), math.nan)
                yield series_key(f.name, dict(labels)), count, created.get((f.name, labels), 0), (f, group)


def _counter_base(family: Family, sample_name: str) -> str:
    return sample_name[: -len("_total")] if sample_name.endswith("_total") else family.name


def _created_times(families: list[Family], by_name: dict[str, Family]) -> dict[tuple[str, tuple], int]:
    """(family base name, sorted labels) -> `_created` in ns, from OpenMetrics
    `_created` samples and from 0.0.4 `X_created` gauge families."""
    out: dict[tuple[str, tuple], int] = {}
    for f in families:
        if f.type in ("counter", "histogram", "summary"):
            base = f.name[: -len("_total")] if f.type == "counter" and f.name.endswith("_total") else f.name
            for s in f.samples:
                if s.name.endswith("_created"):
                    out[(base, tuple(sorted(s.labels.items())))] = _seconds_to_ns(s.value)
        elif _created_base(f, by_name) is not None:
            base = f.name[: -len("_created")]
            for s in f.samples:
                out[(base, tuple(sorted(s.labels.items())))] = _seconds_to_ns(s.value)
    return out


def _seconds_to_ns(seconds: float) -> int:
    if not math.isfinite(seconds) or not 0 <= seconds * 1e9 <= MAX_TIME_NS:
        return 0
    return int(seconds * 1e9)


def _groups(family: Family) -> dict[tuple, list[Sample]]:
    """A histogram's or summary's samples grouped by their labels without le/quantile."""
    groups: dict[tuple, list[Sample]] = {}
    for s in family.samples:
        if s.name.endswith("_created"):
            continue
        groups.setdefault(_group_key(s.labels), []).append(s)
    return groups


def _group_key(labels: dict[str, str]) -> tuple:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("le", "quantile")))


# --- the scrape envelope and the codec --------------------------------------------------


class ScrapeHeader(NamedTuple):
    """What the scraper knows beside the body. `starts` maps series keys to their start
    time where it is not `start_ns`; `up`, `duration_s` and `samples` are the scrape's
    own series (Prometheus' up, scrape_duration_seconds, scrape_samples_scraped)."""

    job: str
    instance: str
    labels: dict[str, str]
    time_ns: int
    openmetrics: bool
    start_ns: int
    starts: dict[str, int]
    up: int
    duration_s: float
    samples: int


def encode_envelope(header: ScrapeHeader, body: bytes) -> bytes:
    """The payload the WAL keeps for one scrape: the header as one JSON line, then the body."""
    return orjson.dumps(header._asdict()) + b"\n" + body


def decode(payload: bytes, received_ns: int) -> Batch:
    """A scrape envelope as points (see the module docstring). `received_ns` is unused:
    the header holds the scrape's time. Raises DecodeError when the envelope is
    malformed; skipped lines of the body are the scraper's to count, not errors here."""
    head, sep, body = payload.partition(b"\n")
    if not sep:
        raise DecodeError("prom-text: not a scrape envelope (no header line)")
    header = _header(head)
    families = parse(body, openmetrics=header.openmetrics).families if header.up else []
    return to_batch(families, header)


_HEADER_TYPES = {
    "job": str, "instance": str, "labels": dict, "time_ns": int, "openmetrics": bool, "start_ns": int,
    "starts": dict, "up": int, "duration_s": (int, float), "samples": int,
}


def _header(raw: bytes) -> ScrapeHeader:
    """The envelope's header line, checked field by field; DecodeError when it is not one."""
    try:
        fields = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"prom-text: the envelope header is not JSON ({exc})") from None
    if not isinstance(fields, dict) or set(fields) != set(_HEADER_TYPES):
        raise DecodeError(f"prom-text: the envelope header must have exactly {', '.join(_HEADER_TYPES)}")
    for name, kind in _HEADER_TYPES.items():
        value = fields[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise DecodeError(f"prom-text: envelope header field {name} has the wrong type")
    times = [fields["time_ns"], fields["start_ns"], *fields["starts"].values()]
    if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t <= MAX_TIME_NS for t in times):
        raise DecodeError("prom-text: an envelope header time is out of range")
    if not all(isinstance(v, str) for v in fields["labels"].values()) or fields["up"] not in (0, 1):
        raise DecodeError("prom-text: envelope header labels must be strings and up 0 or 1")
    if not 0 <= fields["samples"] <= 2**63 - 1:
        raise DecodeError("prom-text: envelope header samples out of range")
    return ScrapeHeader(**fields)


def to_batch(families: list[Family], header: ScrapeHeader) -> Batch:
    """The points of `families` scraped as `header` says, plus the scrape's own series."""
    target = {"job": header.job, "instance": header.instance, **header.labels}
    resource_attrs = {"service.name": header.job}
    if header.instance:
        resource_attrs["service.instance.id"] = header.instance
    resource = Resource(header.job, resource_attrs)
    points = _Points(resource, target, header)
    by_name = {f.name: f for f in families}
    created_gauges = {f.name for f in families if _created_base(f, by_name) is not None}
    for f in families:
        if f.name in created_gauges:
            continue  # a 0.0.4 `_created` gauge: its values are start times, below
        if f.type not in ("counter", "histogram", "summary"):
            for s in f.samples:
                points.gauge(f, s)
    for key, _, created, item in _cumulatives(families):
        start = created or header.starts.get(key, header.start_ns)
        family = item[0]
        if family.type == "counter":
            points.sum(family, item[1], start)
        elif family.type == "histogram":
            points.histogram(family, item[1], start)
        else:
            points.summary(family, item[1], start)
    for name, value in (
        ("up", header.up),
        ("scrape_duration_seconds", header.duration_s),
        ("scrape_samples_scraped", header.samples),
    ):
        points.gauge(Family(name, "gauge", "", "", []), Sample(name, {}, float(value), None))
    return Batch(
        gauges=points.gauges, sums=points.sums, histograms=points.histograms, summaries=points.summaries
    )


class _Points:
    """Builds the points of one scrape, sharing one stream per metric name."""

    def __init__(self, resource: Resource, target: dict[str, str], header: ScrapeHeader) -> None:
        self.resource, self.target, self.header = resource, target, header
        self.streams: dict[str, MetricStream] = {}
        self.gauges: list[GaugePoint] = []
        self.sums: list[SumPoint] = []
        self.histograms: list[HistogramPoint] = []
        self.summaries: list[SummaryPoint] = []

    def _stream(self, name: str, family: Family) -> MetricStream:
        stream = self.streams.get(name)
        if stream is None:
            stream = self.streams[name] = MetricStream(name, family.help, family.unit, self.resource, SCOPE)
        return stream

    def _attrs(self, labels: dict[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
        """Exposed labels beside the target's (job, instance, configured labels):
        a clash keeps the exposed one as exported_<name>; job leaves the attributes."""
        out = {}
        for k, v in labels.items() if isinstance(labels, dict) else labels:
            if v:
                out["exported_" + k if k in self.target else k] = v
        for k, v in self.target.items():
            if v and k != "job":
                out[k] = v
        return out

    def _time(self, sample: Sample) -> int:
        return self.header.time_ns if sample.time_ms is None else sample.time_ms * 1_000_000

    def gauge(self, family: Family, s: Sample) -> None:
        stream = self._stream(s.name, family)
        self.gauges.append(GaugePoint(stream, self._attrs(s.labels), 0, self._time(s), s.value))

    def sum(self, family: Family, s: Sample, start: int) -> None:
        stream = self._stream(s.name, family)
        time_ns = self._time(s)
        self.sums.append(SumPoint(stream, self._attrs(s.labels), min(start, time_ns), time_ns, s.value,
                                  CUMULATIVE, True))

    def histogram(self, family: Family, group: list[Sample], start: int) -> None:
        """One histogram point from a label set that `parse` checked."""
        buckets: list[tuple[float, float]] = []
        count = total = None
        for s in group:
            if s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                count = s.value
            elif s.name.endswith("_sum"):
                total = s.value
        buckets.sort()
        if count is None:
            count = buckets[-1][1] if buckets else 0.0
        cumulative = [c for _, c in buckets] or [count]
        # Prometheus' buckets are cumulative ("le"); OTLP's count each bucket alone
        counts = tuple(int(b - a) for a, b in zip([0.0, *cumulative], cumulative))
        labels = [(k, v) for k, v in group[0].labels.items() if k != "le"]
        time_ns = self._time(group[0])
        self.histograms.append(HistogramPoint(
            self._stream(family.name, family), self._attrs(labels), min(start, time_ns), time_ns, int(count),
            total if total is not None else 0.0, counts, tuple(le for le, _ in buckets[:-1]),
            None, None, CUMULATIVE,
        ))

    def summary(self, family: Family, group: list[Sample], start: int) -> None:
        """One summary point from a label set that `parse` checked."""
        quantiles: list[tuple[float, float]] = []
        count, total = 0.0, 0.0
        for s in group:
            if s.name == family.name:
                quantiles.append((float(s.labels["quantile"]), s.value))
            elif s.name.endswith("_count"):
                count = s.value
            elif s.name.endswith("_sum"):
                total = s.value
        quantiles.sort()
        labels = [(k, v) for k, v in group[0].labels.items() if k != "quantile"]
        time_ns = self._time(group[0])
        self.summaries.append(SummaryPoint(
            self._stream(family.name, family), self._attrs(labels), min(start, time_ns), time_ns, int(count),
            total, tuple(q for q, _ in quantiles), tuple(v for _, v in quantiles),
        ))
