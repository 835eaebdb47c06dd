"""Wiring: open the pieces in order, serve, close them in reverse.

`Runtime` holds what a running server owns (store, WAL, queue, writer, metrics);
`build_app` makes the Starlette app over it; `serve` binds the listeners and runs
until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from koban import __version__
from koban.api.auth import AuthMiddleware
from koban.api.errors import error_response
from koban.api.limits import RequestContext, UserQuerySlots, current_caller
from koban.api.routes import routes
from koban.auth.accounts import FILE_NAME as ACCOUNTS_FILE
from koban.auth.accounts import AccountStore
from koban.auth.networks import source_filter
from koban.auth.service import AuthService
from koban.clock import Clock, SystemClock
from koban.errors import ConfigError, KobanError
from koban.memory import release_process_memory
from koban.pipeline.buffer import IngestBuffer
from koban.pipeline.decode_pool import DecodePool
from koban.ingest.guard import IngestPolicy, decode_batch
from koban.ingest.scrub import parse_user_rules, rule_set
from koban.pipeline.guarded_decode import decode_for_intake, decode_in_worker
from koban.pipeline.intake import Intake
from koban.pipeline.limits import SeriesLimiter
from koban.pipeline.retention import Retention
from koban.pipeline.wal import WriteAheadLog
from koban.pipeline.writer import StoreWriter
from koban.query.dialects import Statement, for_store
from koban.selfmetrics import SelfMetrics
from koban.settings import Settings
from koban.store.base import QueryResult, Store
from koban.store.factory import open_store

log = logging.getLogger("koban")

LATE_MINUTES_SETTLE_S = 10.0
"""A minute that received late points is rolled up again once none has come for this
long: late points come in bursts (a backfill, a WAL replay, a lagging Prometheus), and
recomputing a minute at every step of a burst costs more than the burst."""


class Runtime:
    """Everything a running server holds. Open with `Runtime.open`, end with `close`."""

    def __init__(self, settings: Settings, clock: Clock, store: Store, wal: WriteAheadLog) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.wal = wal
        self.dialect = for_store(store.dialect)
        self.metrics = SelfMetrics()
        self.buffer = IngestBuffer(settings.queue_max_records)
        # secret scrubbing and attribute limits, applied on receipt and again on WAL
        # replay (the WAL keeps raw payloads), so stored values are always masked
        policy = IngestPolicy(
            rule_set(settings.scrub_default_rules, parse_user_rules(settings.scrub_rules)),
            settings.max_attributes_per_record,
            settings.max_attribute_value_length,
        )
        self.series_limiter = SeriesLimiter(settings.max_series_per_metric, on_drop=self.metrics.series_dropped.inc)
        self.writer = StoreWriter(
            store,
            self.buffer,
            wal,
            functools.partial(decode_batch, policy),
            batch_max_records=settings.batch_max_records,
            batch_max_delay_s=settings.batch_max_delay_ms / 1000,
            batch_idle_s=settings.batch_idle_ms / 1000,
            admit=self.series_limiter.admit,
        )
        # partial of module-level functions over plain data: it is pickled to the spawn workers
        self.decoder = DecodePool(
            functools.partial(decode_for_intake, policy),
            settings.decode_workers,
            worker_decode=functools.partial(decode_in_worker, policy),
        )
        self.intake = Intake(
            self.buffer, wal, self.decoder, clock, self.metrics, max_records=settings.max_records_per_request
        )
        self._query_slots = threading.BoundedSemaphore(settings.query_concurrency)
        self.user_queries = UserQuerySlots(settings.query_concurrency_per_user)
        self.auth: AuthService | None = None  # set by `open`: accounts, keys, session signing
        self.retention = Retention.for_data_dir(
            store, self.dialect, settings, clock,
            on_deleted=lambda signal, rows: self.metrics.retention_deleted.labels(signal).inc(rows),
        )
        self._register_gauges()

    @classmethod
    def open(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        """Open the store and WAL under `settings.data_dir`, replay what the store lacks,
        and start the writer. Raises ConfigError when the data dir cannot be used."""
        data = Path(settings.data_dir)
        try:
            data.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"data_dir {settings.data_dir!r} cannot be created: {exc}") from None
        store = open_store(settings)
        wal = WriteAheadLog(data / "wal", segment_bytes=settings.wal_segment_bytes, min_lsn=store.applied_lsn())
        runtime = cls(settings, clock or SystemClock(), store, wal)
        runtime.auth = AuthService.open(settings)
        replayed = runtime.writer.replay()
        if replayed:
            log.info("replayed %d records from the write-ahead log", replayed)
        runtime.writer.start()
        return runtime

    def _register_gauges(self) -> None:
        m, w = self.metrics, self.writer
        m.gauge("koban_queue_depth_records", "Records waiting for the store writer.", lambda: self.buffer.depth)
        m.gauge("koban_queue_capacity_records", "Records the queue may hold.", lambda: self.settings.queue_max_records)
        m.gauge("koban_wal_size_bytes", "Bytes in write-ahead log segments.", self.wal.size_bytes)
        m.gauge("koban_wal_fsyncs", "fsync calls made by the write-ahead log.", lambda: self.wal.stats.fsyncs)
        m.gauge("koban_store_batches_written", "Batches appended to the store.", lambda: w.batches_written)
        m.gauge("koban_store_records_written", "Records appended to the store.", lambda: w.records_written)
        m.gauge("koban_store_append_seconds_total", "Time spent appending batches.", lambda: w.append_seconds_total)
        m.gauge("koban_store_last_append_seconds", "Time the last batch append took.", lambda: w.last_append_seconds)
        m.gauge("koban_store_write_errors", "Failed batch appends (retried).", lambda: w.write_errors_total)
        m.gauge("koban_store_disk_bytes", "Bytes the store uses on disk.", self.store.disk_bytes)
        m.gauge("koban_metric_rollup_watermark_seconds", "Metric minutes before this unix time are rolled up (0: none).",
                lambda: (self.store.metric_rollups_until_ns() or 0) / 1e9)
        m.gauge("koban_quarantined_requests", "Requests the store refused for good, kept in quarantine/.",
                lambda: w.batches_quarantined)
        m.gauge("koban_quarantined_records", "Records in quarantined requests.", lambda: w.records_quarantined)

    async def run_query(self, endpoint: str, stmt: Statement, *, max_rows: int) -> QueryResult:
        """Run `stmt` on the store in a worker thread, at most `query_concurrency` at once
        and `query_concurrency_per_user` of one caller (Overloaded beyond)."""
        with self.user_queries.hold(current_caller()):
            return await anyio.to_thread.run_sync(functools.partial(self._query_blocking, endpoint, stmt, max_rows))

    def _query_blocking(self, endpoint: str, stmt: Statement, max_rows: int) -> QueryResult:
        with self._query_slots, self.metrics.query_seconds.labels(endpoint).time():
            return self.store.query(
                stmt.sql, stmt.params, timeout_s=self.settings.query_timeout_s, max_rows=max_rows
            )

    def apply_retention(self) -> None:
        """Delete what each signal's retention and the disk budget do not keep (pipeline/retention.py)."""
        self.retention.run()

    def roll_up_metrics(self) -> int:
        """Roll up the metric minutes that ended metric_rollup_delay_s ago or earlier
        (store/rollups.py); returns rollup rows written."""
        until = self.clock.now_ns() - int(self.settings.metric_rollup_delay_s * 1e9)
        return self.store.roll_up_metrics(until, settle_s=LATE_MINUTES_SETTLE_S)

    def trim_memory_if_idle(self) -> bool:
        """When the store has been idle for memory_trim_idle_s, give the memory kept
        for speed back to the OS (koban/memory.py); returns whether it did."""
        if self.buffer.depth or not self.store.trim_memory(self.settings.memory_trim_idle_s):
            return False
        release_process_memory()
        self.metrics.memory_trims.inc()
        return True

    def close(self) -> None:
        """Drain the queue into the store, then close the WAL and the store."""
        self.decoder.close()
        self.writer.stop()
        self.wal.close()
        self.store.close()
        if self.auth is not None:
            self.auth.close()


def build_app(runtime: Runtime) -> Starlette:
    app = Starlette(
        routes=routes(),
        # RequestContext first: run_query reads the caller from it (api/limits.py)
        middleware=[Middleware(RequestContext), Middleware(AuthMiddleware)],  # checks every route's access level
        exception_handlers={KobanError: error_response, HTTPException: error_response, Exception: error_response},
    )
    app.state.runtime = runtime
    return app


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_bind_allowed(settings: Settings) -> None:
    """Raises ConfigError (one line saying what to do) when `settings.host` is not a
    loopback address and nobody could sign in: auth off, or no admin user and no SSO."""
    if _is_loopback(settings.host):
        return
    host = settings.host
    if not settings.auth:
        raise ConfigError(
            f"refusing to listen on {host}: set auth = true (KOBAN_AUTH=true) and create an admin "
            "with `koban admin create-user NAME --role admin`, or listen on 127.0.0.1"
        )
    if settings.oidc_issuer or _has_admin(settings):
        return
    raise ConfigError(
        f"refusing to listen on {host}: auth is on but there is no admin user; "
        "create one with `koban admin create-user NAME --role admin` (or configure oidc_issuer)"
    )


def _has_admin(settings: Settings) -> bool:
    path = Path(settings.data_dir) / ACCOUNTS_FILE
    if not path.is_file():
        return False
    accounts = AccountStore(path)
    try:
        return accounts.has_admin()
    finally:
        accounts.close()


def _bind(host: str, port: int, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen for {what} on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture: `serve` installs handlers that stop it,
    so the runtime is always closed (and the queue drained) on SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


def _banner(settings: Settings) -> str:
    h = settings.host
    lines = [f"koban {__version__} is running (data in {settings.data_dir})"]
    if settings.port:
        lines.append(f"  web UI and JSON API   http://{h}:{settings.port}")
        lines.append(f"  OTLP/HTTP             http://{h}:{settings.port}/v1/{{logs,traces,metrics}}")
    if settings.otlp_http_port:
        lines.append(f"  OTLP/HTTP             http://{h}:{settings.otlp_http_port}")
    if settings.otlp_grpc_port:
        lines.append(f"  OTLP/gRPC             {h}:{settings.otlp_grpc_port}")
    if settings.statsd_port:
        lines.append(f"  StatsD/DogStatsD      udp://{h}:{settings.statsd_port}")
    lines.append("Try:  koban query 'status:error' --since 15m    koban tail 'service:checkout'")
    return "\n".join(lines)


async def serve(settings: Settings) -> None:
    """Run koban until SIGINT/SIGTERM. Raises ConfigError when it cannot start."""
    _check_bind_allowed(settings)
    from koban.receive import prom_scrape

    scrape_jobs = prom_scrape.parse_jobs(settings.scrape_jobs)  # ConfigError before anything opens
    http_ports = [p for p in dict.fromkeys((settings.port, settings.otlp_http_port)) if p]
    sockets = [_bind(settings.host, p, "HTTP") for p in http_ports]
    runtime = Runtime.open(settings)
    server = _Server(uvicorn.Config(build_app(runtime), log_level="warning", access_log=False, lifespan="off"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    grpc_server = None
    statsd = None
    scraper = None
    demo_stop = threading.Event()
    # only the process that runs schedules (docs/scaling.md, "Several koban processes")
    retention = None
    if settings.scheduler:
        retention = asyncio.create_task(_repeat(runtime.apply_retention, settings.retention_interval_s, "retention"))
    rollups = None
    if settings.metric_rollup_interval_s > 0:
        rollups = asyncio.create_task(
            _repeat(runtime.roll_up_metrics, settings.metric_rollup_interval_s, "metric rollup")
        )
    idle_trim = asyncio.create_task(_idle_trim_loop(runtime)) if settings.memory_trim_idle_s > 0 else None
    http = asyncio.create_task(server.serve(sockets=sockets)) if sockets else None
    try:
        if settings.otlp_grpc_port:
            from koban.receive.otlp_grpc import start_grpc_server

            grpc_server = await start_grpc_server(runtime, settings.host, settings.otlp_grpc_port)
        if settings.statsd_port:
            statsd = await _start_statsd(runtime)
        if scrape_jobs:
            scraper = prom_scrape.scraper_for(runtime, scrape_jobs)
            await scraper.start()
        print(_banner(settings), file=sys.stderr, flush=True)
        if settings.demo and settings.port:
            _start_demo(settings, demo_stop, _demo_headers(runtime))
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter] + ([http] if http else []), return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
    finally:
        demo_stop.set()
        if retention is not None:
            retention.cancel()
        if rollups is not None:
            rollups.cancel()
        if idle_trim is not None:
            idle_trim.cancel()
        server.should_exit = True
        if grpc_server is not None:
            await grpc_server.stop(grace=2)
        if scraper is not None:
            await scraper.stop()
        if statsd is not None:
            await statsd.stop()  # flushes the last window through the WAL
        if http is not None:
            await asyncio.wait([http], timeout=5)  # uvicorn finishes in-flight responses
        await anyio.to_thread.run_sync(runtime.close)
        for sock in sockets:
            sock.close()
        log.info("koban stopped")


async def _start_statsd(runtime: Runtime):
    """The StatsD/DogStatsD listener, its flushed windows going through the intake (WAL)."""
    from koban.pipeline.statsd_aggregator import StatsdAggregator
    from koban.receive.statsd_udp import StatsdListener, submit_to

    settings, m = runtime.settings, runtime.metrics
    aggregator = StatsdAggregator(
        runtime.clock.now_ns(),
        flush_interval_s=settings.statsd_flush_interval_s,
        gauge_deltas=settings.statsd_gauge_deltas,
    )
    statsd = StatsdListener(
        settings.host,
        settings.statsd_port,
        submit_to(runtime.intake),
        runtime.clock,
        aggregator=aggregator,
        flush_interval_s=settings.statsd_flush_interval_s,
        on_parse_error=lambda reason, n: m.rejected.labels("metrics", "statsd", reason).inc(n),
        processes=settings.statsd_processes,
    )
    statsd.source_allowed = source_filter(settings.statsd_allowed_networks)  # checked by settings
    statsd.source_networks = settings.statsd_allowed_networks  # for the other receiving processes
    try:
        await statsd.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen for StatsD on {settings.host}:{settings.statsd_port}: {exc.strerror}") from None
    m.gauge("koban_statsd_datagrams_received", "StatsD datagrams read.", lambda: statsd.stats.datagrams)
    m.gauge("koban_statsd_datagrams_dropped", "StatsD datagrams the kernel dropped (buffer full).", statsd.kernel_drops)
    m.gauge("koban_statsd_datagrams_refused", "StatsD datagrams from outside statsd_allowed_networks.",
            lambda: statsd.datagrams_refused)
    m.gauge("koban_statsd_points_dropped", "Flushed StatsD points the pipeline refused.",
            lambda: statsd.stats.points_dropped)
    m.gauge("koban_statsd_series_dropped", "StatsD samples over the series limit.",
            lambda: sum(aggregator.dropped.values()))
    return statsd


async def _idle_trim_loop(runtime: Runtime) -> None:
    every = runtime.settings.memory_trim_idle_s
    while True:
        await asyncio.sleep(every)
        try:
            await anyio.to_thread.run_sync(runtime.trim_memory_if_idle)
        except Exception:
            log.exception("giving idle memory back failed; will try again")


async def _repeat(job: Callable[[], object], every_s: float, what: str) -> None:
    """Run `job` in a worker thread now and then every `every_s` seconds; a failure is
    logged and the next run tries again."""
    while True:
        try:
            await anyio.to_thread.run_sync(job)
        except Exception:
            log.exception("%s failed; will try again", what)
        await asyncio.sleep(every_s)


def _demo_headers(runtime: Runtime) -> dict[str, str] | None:
    """With auth on, the demo load sends an ingest key of its own, made anew at each start."""
    if not runtime.settings.auth or runtime.auth is None:
        return None
    accounts = runtime.auth.accounts
    accounts.revoke(DEMO_KEY_NAME)
    return {"Authorization": f"Bearer {accounts.create_ingest_key(DEMO_KEY_NAME)}"}


DEMO_KEY_NAME = "koban-demo"


def _start_demo(settings: Settings, stop: threading.Event, headers: dict[str, str] | None) -> None:
    from koban.demo import run_demo

    target = f"http://{settings.host}:{settings.port}"

    def run() -> None:
        try:
            run_demo(target, stop=stop, rate=settings.demo_rate, log=lambda msg: log.info("%s", msg), headers=headers)
        except Exception:
            log.exception("the demo load stopped")

    threading.Thread(target=run, name="koban-demo", daemon=True).start()
    print(f"demo shop load running against {target}", file=sys.stderr, flush=True)
