"""Prometheus scrape: `[[scrape_jobs]]` of koban.toml, each target on its own timer.

Each scrape is an HTTP GET with the Accept header Prometheus 2.x sends (OpenMetrics
preferred, text 0.0.4 as fallback) and the scrape timeout. The body is parsed here
once (`koban.ingest.prom_text.parse`) to count its samples, count its bad lines by
reason, and choose each cumulative series' start time; then the body and what the
scraper knows (job, instance, time, start times, up, duration, sample count) go to
`Intake.receive` as one "prom-text/metrics" envelope, so a scrape is made durable by
the WAL like any request and a replay decodes the same points.

Start times follow the OpenTelemetry Collector's prometheus receiver: a series'
`_created` time when the body gives one; otherwise the time koban first scraped the
series, renewed when its value (a histogram's or summary's count) drops, which is a
counter reset. A series gone from a scrape is forgotten, so when it comes back it
starts again.

A target that does not answer, answers non-2xx, sends more than `max_body_bytes` or a
body that cannot be parsed at all gets up=0; the other targets carry on. Lines that do
not parse are skipped and counted (`koban_records_rejected_total{protocol="prom-scrape"}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from koban import __version__
from koban.clock import Clock
from koban.errors import ConfigError, KobanError
from koban.ingest import prom_text
from koban.model import Batch

log = logging.getLogger("koban.receive.prom_scrape")

PROTOCOL = "prom-scrape"
# What Prometheus 2.42 sends: OpenMetrics first, the text format as fallback.
ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
_KEYS = {"job_name", "targets", "scrape_interval", "scrape_timeout", "metrics_path", "scheme", "labels"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TARGET = re.compile(r"[A-Za-z0-9.\-_\[\]:]+:\d{1,5}")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: tuple[str, ...]
    interval_s: float = 15.0
    timeout_s: float = 10.0
    metrics_path: str = "/metrics"
    scheme: str = "http"
    labels: tuple[tuple[str, str], ...] = ()


def parse_duration(text: Any, where: str) -> float:
    """Seconds in a Prometheus duration ("15s", "1m30s", "500ms") or a number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return float(text)
    if isinstance(text, str):
        parts = _DURATION.findall(text)
        if parts and "".join(a + b for a, b in parts) == text:
            seconds = sum(float(n) * _UNIT_S[unit] for n, unit in parts)
            if seconds > 0:
                return seconds
    raise ConfigError(f"{where} must be a duration like \"15s\", \"1m\" or \"500ms\", got {text!r}")


def parse_jobs(tables: tuple[dict[str, Any], ...]) -> list[ScrapeJob]:
    """`scrape_jobs` tables as ScrapeJobs. Raises ConfigError naming the job and key."""
    jobs: list[ScrapeJob] = []
    names: set[str] = set()
    for i, table in enumerate(tables):
        name = table.get("job_name")
        where = f"scrape_jobs[{i}]" if not isinstance(name, str) else f"scrape job {name!r}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: job_name must be a non-empty string")
        if name in names:
            raise ConfigError(f"{where}: job_name appears twice")
        names.add(name)
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: {', '.join(sorted(_KEYS))}")
        targets = table.get("targets")
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            raise ConfigError(f"{where}: targets must be a non-empty list of \"host:port\" strings")
        for t in targets:
            if not _TARGET.fullmatch(t):
                raise ConfigError(f"{where}: target {t!r} is not host:port")
        interval = parse_duration(table.get("scrape_interval", "15s"), f"{where}: scrape_interval")
        timeout = parse_duration(table.get("scrape_timeout", min(10.0, interval)), f"{where}: scrape_timeout")
        if timeout > interval:
            raise ConfigError(f"{where}: scrape_timeout ({timeout:g}s) is longer than scrape_interval ({interval:g}s)")
        path = table.get("metrics_path", "/metrics")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError(f"{where}: metrics_path must start with '/', got {path!r}")
        scheme = table.get("scheme", "http")
        if scheme not in ("http", "https"):
            raise ConfigError(f"{where}: scheme must be 'http' or 'https', got {scheme!r}")
        labels = table.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ConfigError(f"{where}: labels must be a table of strings")
        for key in labels:
            if not _LABEL_NAME.fullmatch(key) or key.startswith("__") or key in ("job", "instance"):
                raise ConfigError(f"{where}: labels: {key!r} cannot be a label name here")
        jobs.append(ScrapeJob(name, tuple(targets), interval, timeout, path, scheme, tuple(sorted(labels.items()))))
    return jobs


class StartTimes:
    """The start time of each cumulative series of one target (see the module docstring)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}  # key -> (start ns, last value)

    def update(self, series: list[prom_text.Cumulative], now_ns: int) -> tuple[int, dict[str, int]]:
        """The start times after a scrape at `now_ns`: the most common one, and the
        series whose start differs from it (so the envelope stays small)."""
        seen, new = self._seen, {}
        for s in series:
            if s.created_ns:
                continue  # the body dates it
            prev = seen.get(s.key)
            start = now_ns if prev is None or s.value < prev[1] else prev[0]
            new[s.key] = (start, s.value)
        self._seen = new
        if not new:
            return now_ns, {}
        common = Counter(start for start, _ in new.values()).most_common(1)[0][0]
        return common, {k: start for k, (start, _) in new.items() if start != common}


class _Intake(Protocol):
    async def receive(self, codec: str, payload: bytes, *, protocol: str, signal: str) -> Batch: ...


OnParseError = Callable[[str, int], None]


class ScrapeTarget:
    """One target of one job: its URL, its start times, what its last scrape gave."""

    def __init__(self, job: ScrapeJob, instance: str) -> None:
        self.job = job
        self.instance = instance
        self.url = f"{job.scheme}://{instance}{job.metrics_path}"
        self.start_times = StartTimes()
        self.scrapes = 0
        self.last_up = -1  # not scraped yet
        self.last_error = ""
        self.last_skipped = 0

    def offset_s(self) -> float:
        """A stable delay before the first scrape, so targets do not all fire at once."""
        return zlib.crc32(f"{self.job.name}\x00{self.url}".encode()) % 1000 / 1000 * self.job.interval_s


class Scraper:
    """Start with `await start()`, end with `await stop()`; `await scrape(target)` runs one scrape."""

    def __init__(
        self, jobs: list[ScrapeJob], intake: _Intake, clock: Clock, *,
        max_body_bytes: int, on_parse_error: OnParseError | None = None,
    ) -> None:
        self.targets = [ScrapeTarget(job, t) for job in jobs for t in job.targets]
        self.intake = intake
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.on_parse_error = on_parse_error
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        headers = {"Accept": ACCEPT, "User-Agent": f"koban/{__version__}"}
        self._client = httpx.AsyncClient(headers=headers, follow_redirects=True)
        for target in self.targets:
            self._tasks.append(asyncio.create_task(self._loop(target), name=f"koban-scrape-{target.url}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _loop(self, target: ScrapeTarget) -> None:
        interval = target.job.interval_s
        loop = asyncio.get_running_loop()
        next_at = loop.time() + target.offset_s()
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                await self.scrape(target)
            except Exception:  # one bad scrape must not end the target's timer
                log.exception("scrape of %s failed", target.url)
            next_at += interval
            if next_at < loop.time():  # fell behind (a slow scrape): skip, keep the phase
                next_at += (loop.time() - next_at) // interval * interval + interval

    async def scrape(self, target: ScrapeTarget) -> Batch | None:
        """Scrape `target` once and hand the result to the intake; returns the decoded
        batch, or None when the intake refused it (queue full, WAL failing: logged)."""
        assert self._client is not None, "start() first"
        job = target.job
        now_ns = self.clock.now_ns()
        began = self.clock.monotonic()
        body, openmetrics, error = await self._fetch(target)
        duration = self.clock.monotonic() - began
        exposition = None
        if not error:
            try:
                # in a thread: a 10,000-series body takes ~100 ms to parse, which the
                # event loop (the API, other targets) should not wait out in one piece
                exposition = await asyncio.to_thread(prom_text.parse, body, openmetrics=openmetrics)
            except prom_text.ExpositionError as exc:
                self._count(exc.reason, 1)
                error = f"body cannot be parsed: {exc.message}"
        if exposition is not None:
            reasons = Counter(e.reason for e in exposition.errors)
            for reason, n in reasons.items():
                self._count(reason, n)
            if exposition.errors and len(exposition.errors) != target.last_skipped:  # said once, not every scrape
                first = exposition.errors[0]
                log.warning("scrape of %s: %d lines skipped; line %d: %s", target.url, len(exposition.errors),
                            first.line, first.message)
            target.last_skipped = len(exposition.errors)
        up = int(exposition is not None)
        if up != target.last_up or error != target.last_error:  # a change of state, not every failure
            log.log(logging.INFO if up else logging.WARNING, "scrape of %s: %s", target.url,
                    f"failed: {error}" if error else "up")
        target.scrapes += 1
        target.last_up = up
        target.last_error = error
        if exposition is None:
            start, starts, samples = now_ns, {}, 0
            body = b""
        else:
            series = await asyncio.to_thread(prom_text.cumulative_series, exposition)
            start, starts = target.start_times.update(series, now_ns)
            samples = exposition.sample_count
        header = prom_text.ScrapeHeader(
            job.name, target.instance, dict(job.labels), now_ns, openmetrics, start, starts,
            target.last_up, duration, samples,
        )
        try:
            return await self.intake.receive(
                prom_text.CODEC, prom_text.encode_envelope(header, body), protocol=PROTOCOL, signal="metrics"
            )
        except KobanError as exc:
            log.warning("scrape of %s not kept: %s", target.url, exc)
            return None

    async def _fetch(self, target: ScrapeTarget) -> tuple[bytes, bool, str]:
        """(body, whether it is OpenMetrics, error); the error is "" when the body came."""
        assert self._client is not None
        timeout = target.job.timeout_s
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}"}
        try:
            async with asyncio.timeout(timeout):
                async with self._client.stream("GET", target.url, headers=headers, timeout=timeout) as response:
                    if not 200 <= response.status_code < 300:
                        return b"", False, f"HTTP status {response.status_code}"
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_body_bytes:
                            return b"", False, f"body over max_body_bytes ({self.max_body_bytes})"
                        chunks.append(chunk)
                    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    return b"".join(chunks), media == "application/openmetrics-text", ""
        except TimeoutError:
            return b"", False, f"no answer within scrape_timeout ({timeout:g}s)"
        except httpx.HTTPError as exc:
            return b"", False, f"{type(exc).__name__}: {exc}"

    def _count(self, reason: str, n: int) -> None:
        if self.on_parse_error is not None:
            self.on_parse_error(reason, n)


def scraper_for(runtime: Any, jobs: list[ScrapeJob]) -> Scraper:
    """The scraper of a running server (`koban.app.Runtime`): scrapes go through its
    intake, bad lines are counted in its /metrics."""
    rejected = runtime.metrics.rejected
    return Scraper(
        jobs, runtime.intake, runtime.clock, max_body_bytes=runtime.settings.max_body_bytes,
        on_parse_error=lambda reason, n: rejected.labels("metrics", PROTOCOL, reason).inc(n),
    )
