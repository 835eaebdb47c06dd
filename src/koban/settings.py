"""Every option, declared once.

Each field of `Settings` is one option: its name, type, default and help live here and
nowhere else. Values come from (lowest to highest) the default, `koban.toml`, the
environment (`KOBAN_<NAME>`), then command-line flags (`--name-with-dashes`). The
result is one frozen object that is passed explicitly; nothing but this module reads
the environment. docs/configuration.md lists every option (a test checks it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koban.errors import ConfigError

DEFAULT_CONFIG_FILE = "koban.toml"


def _opt(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    # listeners
    host: str = _opt("127.0.0.1", "Address every listener binds to.")
    port: int = _opt(7070, "Web UI, JSON API and OTLP/HTTP port (0 turns it off).")
    otlp_http_port: int = _opt(4318, "OTLP/HTTP on its standard port (0 turns it off).")
    otlp_grpc_port: int = _opt(4317, "OTLP/gRPC port (0 turns it off).")
    statsd_port: int = _opt(8125, "StatsD/DogStatsD UDP port (0 turns it off).")
    statsd_flush_interval_s: float = _opt(10.0, "Seconds of StatsD samples aggregated into one point per series.")
    statsd_gauge_deltas: bool = _opt(
        True, "Read a signed StatsD gauge (+N/-N) as a change to the last value; false reads it as the value."
    )
    datadog_port: int = _opt(8126, "Datadog trace agent port (0 turns it off). Listener arrives with the Datadog work.")
    # storage
    data_dir: str = _opt("./koban-data", "Directory for the database file and the write-ahead log.")
    store: str = _opt("duckdb", "Storage backend: duckdb (embedded) or clickhouse.")
    clickhouse_url: str = _opt(
        "", "ClickHouse HTTP(S) URL with user, password and database: http://user:pass@host:8123/db.", secret=True
    )
    clickhouse_cluster: str = _opt("", "ClickHouse cluster name; set, koban creates Replicated + Distributed tables.")
    clickhouse_insert_local: bool = _opt(
        False,
        "On a cluster, insert into the _local tables of the node clickhouse_url names instead of through "
        "the Distributed tables (reads still go through them).",
    )
    duckdb_memory_limit: str = _opt("512MB", "Memory DuckDB may use (it would take 80% of RAM otherwise).")
    duckdb_threads: int = _opt(0, "Threads DuckDB may use for one query (0: one per core).")
    retention_logs_days: float = _opt(15.0, "Keep log records this many days.")
    retention_spans_days: float = _opt(15.0, "Keep spans this many days.")
    retention_metrics_days: float = _opt(15.0, "Keep metric points this many days.")
    retention_interval_s: float = _opt(600.0, "How often retention runs, in seconds.")
    scheduler: bool = _opt(
        True,
        "Run retention (and, later, monitors) in this process; with several koban processes on one "
        "ClickHouse, set it on exactly one.",
    )
    # ingest pipeline
    decode_workers: int = _opt(2, "Processes that decode large requests beside the server (0: decode in-process).")
    max_body_bytes: int = _opt(16 * 2**20, "Largest request body accepted, after decompression (413 above).")
    queue_max_records: int = _opt(500_000, "Records that may wait for the store before ingest answers 429.")
    batch_max_records: int = _opt(50_000, "Most records appended to the store in one transaction.")
    batch_max_delay_ms: int = _opt(200, "Longest a record waits for its batch to fill before it is appended.")
    wal_segment_bytes: int = _opt(64 * 2**20, "Size at which the write-ahead log starts a new segment file.")
    # queries
    query_timeout_s: float = _opt(10.0, "Longest a query may run before it is cancelled.")
    query_max_rows: int = _opt(1000, "Most rows one page of search results may hold.")
    query_concurrency: int = _opt(4, "Queries that may run at once; more wait their turn.")
    # auth (docs/security.md)
    # limits and scrubbing (docs/security.md)
    # Prometheus scrape (docs/metrics.md)
    # process
    log_level: str = _opt("info", "Log level: debug, info, warning, error.")
    demo: bool = _opt(False, "Also run the demo shop load against this server.")
    demo_rate: float = _opt(5.0, "Demo shop user requests per second.")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, effective value, help) for every option, secrets masked."""
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = "********" if f.metadata.get("secret") and value else repr(value)
            out.append((f.name, shown, f.metadata["help"]))
        return out


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(Settings))
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _convert(name: str, raw: Any, source: str) -> Any:
    """Parse `raw` into the option's type; ConfigError names the key, value and source."""
    kind = type(_FIELDS[name].default)
    if kind is tuple:
        return _convert_tables(name, raw, source)
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} must be {kind.__name__}, got {raw!r}") from None


def _convert_tables(name: str, raw: Any, source: str) -> tuple[dict[str, Any], ...]:
    """A list-of-tables option (`[[scrape_jobs]]` in koban.toml; JSON text in the
    environment) as a tuple of dicts. Its owner module checks the keys inside."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ConfigError(f"{source}: {name} must be a JSON list of objects") from None
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise ConfigError(f"{source}: {name} must be a list of tables ([[{name}]] in koban.toml)")
    return tuple(raw)


def _validate(s: Settings) -> None:
    for name in ("port", "otlp_http_port", "otlp_grpc_port", "statsd_port", "datadog_port"):
        value = getattr(s, name)
        if not 0 <= value <= 65535:
            raise ConfigError(f"{name} must be a port number between 0 and 65535, got {value}")
    if s.store not in ("duckdb", "clickhouse"):
        raise ConfigError(f"store must be 'duckdb' or 'clickhouse', got {s.store!r}")
    if s.store == "clickhouse" and not s.clickhouse_url:
        raise ConfigError("store is 'clickhouse' but clickhouse_url is not set (KOBAN_CLICKHOUSE_URL)")
    if s.statsd_flush_interval_s <= 0:
        raise ConfigError(f"statsd_flush_interval_s must be positive, got {s.statsd_flush_interval_s}")
    if s.decode_workers < 0:
        raise ConfigError(f"decode_workers must be 0 or more, got {s.decode_workers}")
    for name in ("max_body_bytes", "queue_max_records", "batch_max_records", "query_max_rows", "query_concurrency"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(s, name)}")
    if s.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level must be one of debug, info, warning, error, got {s.log_level!r}")


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | None = None,
) -> Settings:
    """Settings from defaults < koban.toml < KOBAN_* environment < `flags`.

    `flags` holds only options given on the command line (None values are ignored).
    `config_file` defaults to $KOBAN_CONFIG, else ./koban.toml when it exists.
    Raises ConfigError for an unknown key in the file or a value of the wrong type.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    path = config_file or env.get("KOBAN_CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for key, raw in table.items():
            if key not in _FIELDS:
                raise ConfigError(f"{path}: unknown option {key!r}")
            values[key] = _convert(key, raw, path)

    for name in OPTION_NAMES:
        env_key = "KOBAN_" + name.upper()
        if env_key in env:
            values[name] = _convert(name, env[env_key], env_key)

    for name, raw in (flags or {}).items():
        if raw is None:
            continue
        if name not in _FIELDS:
            raise ConfigError(f"unknown option {name!r}")
        values[name] = _convert(name, raw, "--" + name.replace("_", "-"))

    settings = Settings(**values)
    _validate(settings)
    return settings


def client_url(environ: Mapping[str, str] | None = None) -> str:
    """The server the CLI talks to: $KOBAN_URL, else http://127.0.0.1:7070."""
    env = os.environ if environ is None else environ
    return env.get("KOBAN_URL", "http://127.0.0.1:7070")
