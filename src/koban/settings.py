"""Every option, declared once.

Each field of `Settings` is one option: its name, type, default and help live here and
nowhere else. Values come from (lowest to highest) the default, `koban.toml`, the
environment (`KOBAN_<NAME>`), then command-line flags (`--name-with-dashes`). The
result is one frozen object that is passed explicitly; nothing but this module reads
the environment. docs/configuration.md lists every option (a test checks it).
"""

from __future__ import annotations

import dataclasses
import ipaddress
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
    statsd_processes: int = _opt(1, "Processes reading the StatsD port (SO_REUSEPORT); 2 uses a second core.")
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
    memory_trim_idle_s: float = _opt(
        30.0, "After this many idle seconds, give cached memory back to the OS (0: never)."
    )
    retention_logs_days: float = _opt(15.0, "Keep log records this many days.")
    retention_spans_days: float = _opt(15.0, "Keep spans this many days.")
    retention_metrics_days: float = _opt(15.0, "Keep metric points this many days.")
    retention_interval_s: float = _opt(600.0, "How often retention runs, in seconds.")
    metric_rollup_interval_s: float = _opt(
        15.0, "How often closed minutes of metric points are rolled up for fast charts, in seconds (0: never)."
    )
    metric_rollup_delay_s: float = _opt(
        60.0, "A minute of metric points is rolled up this many seconds after it ends (later points re-roll it)."
    )
    scheduler: bool = _opt(
        True,
        "Run retention (and, later, monitors) in this process; with several koban processes on one "
        "ClickHouse, set it on exactly one.",
    )
    # ingest pipeline
    decode_workers: int = _opt(2, "Processes that decode large requests beside the server (0: decode in-process).")
    max_body_bytes: int = _opt(16 * 2**20, "Largest request body accepted, after decompression (413 above).")
    queue_max_records: int = _opt(500_000, "Records that may wait for the store before ingest answers 429.")
    # Above DuckDB's row group (122,880 rows) a backlogged writer's append is written
    # as compressed row groups at once instead of through DuckDB's WAL and a later
    # checkpoint: half the server's CPU per remote-write sample (benchmarks/README.md).
    batch_max_records: int = _opt(150_000, "Most records appended to the store in one transaction.")
    batch_max_delay_ms: int = _opt(1000, "Longest a record waits for its batch to fill before it is appended.")
    batch_idle_ms: int = _opt(
        50, "A batch is appended once no request has come for this long, even before batch_max_delay_ms."
    )
    wal_segment_bytes: int = _opt(64 * 2**20, "Size at which the write-ahead log starts a new segment file.")
    # queries
    query_timeout_s: float = _opt(10.0, "Longest a query may run before it is cancelled.")
    query_max_rows: int = _opt(1000, "Most rows one page of search results may hold.")
    query_concurrency: int = _opt(4, "Queries that may run at once; more wait their turn.")
    # auth (docs/security.md)
    auth: bool = _opt(
        False, "Require sign-in for the UI and read API and an ingest key for ingest (needed to bind beyond loopback)."
    )
    secret_key: str = _opt(
        "", "Key that signs session cookies (empty: one is generated once into data_dir/secret_key).", secret=True
    )
    session_max_age_s: float = _opt(8 * 3600.0, "Seconds a sign-in lasts before the user must sign in again.")
    statsd_allowed_networks: str = _opt(
        "", "Comma-separated networks (CIDR) StatsD datagrams are taken from (empty: all); others are dropped, counted."
    )
    oidc_issuer: str = _opt("", "OpenID Connect issuer URL for single sign-on (empty: SSO off).")
    oidc_client_id: str = _opt("", "Client id koban has at the OpenID provider.")
    oidc_client_secret: str = _opt("", "Client secret koban has at the OpenID provider.", secret=True)
    oidc_scopes: str = _opt("openid email profile", "Scopes asked of the OpenID provider, space-separated.")
    oidc_role_claim: str = _opt("groups", "ID token claim (dotted path for nested ones) whose values map to roles.")
    oidc_role_map: str = _opt("", "Claim value to koban role, e.g. 'koban-admins=admin,devs=editor'.")
    oidc_default_role: str = _opt("", "Role of an SSO user whom oidc_role_map gives none (empty: refuse them).")
    public_url: str = _opt("", "koban's external base URL, for SSO redirects (empty: taken from each request).")
    # limits and scrubbing (docs/security.md)
    scrub_default_rules: bool = _opt(
        True, "Mask passwords, bearer tokens, card numbers and AWS keys in ingested telemetry (the default rules)."
    )
    scrub_rules: tuple = _opt(
        (), "Your own scrubbing rules ([[scrub_rules]] tables: name, pattern (regex), replacement, fields)."
    )
    max_records_per_request: int = _opt(100_000, "Most records one ingest request may hold (413 above).")
    max_attributes_per_record: int = _opt(
        128,
        "Attributes kept per record, span event, link or metric point; the rest are dropped, counted (0: no limit).",
    )
    max_attribute_value_length: int = _opt(
        16_384, "Characters kept of an attribute value; longer values are truncated and counted (0: no limit)."
    )
    max_series_per_metric: int = _opt(
        10_000, "Series one metric may have; points of new series beyond it are dropped and counted (0: no limit)."
    )
    query_max_memory_bytes: int = _opt(
        2 * 2**30, "ClickHouse: memory one query may use (max_memory_usage; 0: the server's default)."
    )
    query_concurrency_per_user: int = _opt(
        8, "Queries one user (or client address, without auth) may have running or waiting; 429 beyond."
    )
    tail_max_connections: int = _opt(16, "Live tails open at once, over all users; 429 beyond.")
    max_disk_bytes: int = _opt(
        0, "Disk budget for stored data; over it, retention deletes the oldest data first (0: no budget)."
    )
    # Prometheus scrape (docs/metrics.md)
    scrape_jobs: tuple = _opt(
        (),
        "Prometheus scrape jobs ([[scrape_jobs]] tables: job_name, targets, scrape_interval, scrape_timeout, "
        "metrics_path, scheme, labels).",
    )
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


_ROLES = ("viewer", "editor", "admin")  # koban.auth.principal.ROLES; settings imports nothing of auth


def parse_role_map(text: str) -> dict[str, str]:
    """`oidc_role_map` ("koban-admins=admin, devs=editor") as {claim value: role}.
    Raises ConfigError naming the entry that is not `value=role` with a known role."""
    out: dict[str, str] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        value, sep, role = (part.strip() for part in entry.rpartition("="))
        if not sep or not value or role not in _ROLES:
            raise ConfigError(f"oidc_role_map: {entry!r} must be claim-value=role with role one of {', '.join(_ROLES)}")
        out[value] = role
    return out


def _validate_oidc(s: Settings) -> None:
    parse_role_map(s.oidc_role_map)
    if s.oidc_default_role not in ("", *_ROLES):
        raise ConfigError(f"oidc_default_role must be empty or one of {', '.join(_ROLES)}, got {s.oidc_default_role!r}")
    for name in ("oidc_issuer", "public_url"):
        value = getattr(s, name)
        if value and not value.startswith(("https://", "http://")):
            raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    if s.oidc_issuer and not s.oidc_client_id:
        raise ConfigError("oidc_issuer is set but oidc_client_id is not (KOBAN_OIDC_CLIENT_ID)")
    if s.oidc_issuer and "openid" not in s.oidc_scopes.split():
        raise ConfigError(f"oidc_scopes must include 'openid', got {s.oidc_scopes!r}")


def _validate(s: Settings) -> None:
    for name in ("port", "otlp_http_port", "otlp_grpc_port", "statsd_port", "datadog_port"):
        value = getattr(s, name)
        if not 0 <= value <= 65535:
            raise ConfigError(f"{name} must be a port number between 0 and 65535, got {value}")
    if s.store not in ("duckdb", "clickhouse"):
        raise ConfigError(f"store must be 'duckdb' or 'clickhouse', got {s.store!r}")
    if s.store == "clickhouse" and not s.clickhouse_url:
        raise ConfigError("store is 'clickhouse' but clickhouse_url is not set (KOBAN_CLICKHOUSE_URL)")
    if not 1 <= s.statsd_processes <= 64:
        raise ConfigError(f"statsd_processes must be between 1 and 64, got {s.statsd_processes}")
    if s.statsd_flush_interval_s <= 0:
        raise ConfigError(f"statsd_flush_interval_s must be positive, got {s.statsd_flush_interval_s}")
    if s.decode_workers < 0:
        raise ConfigError(f"decode_workers must be 0 or more, got {s.decode_workers}")
    for name in ("max_body_bytes", "queue_max_records", "batch_max_records", "query_max_rows", "query_concurrency"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(s, name)}")
    if s.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level must be one of debug, info, warning, error, got {s.log_level!r}")
    _validate_oidc(s)
    _validate_auth(s)
    _validate_limits(s)


def _validate_limits(s: Settings) -> None:
    from koban.ingest.scrub import parse_user_rules  # the rule format lives with the scrubber

    parse_user_rules(s.scrub_rules)  # ConfigError naming the rule
    for name in ("max_records_per_request", "query_concurrency_per_user", "tail_max_connections"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(s, name)}")
    for name in ("max_attributes_per_record", "max_attribute_value_length", "max_series_per_metric",
                 "query_max_memory_bytes", "max_disk_bytes"):
        if getattr(s, name) < 0:
            raise ConfigError(f"{name} must be 0 (no limit) or more, got {getattr(s, name)}")


def _validate_auth(s: Settings) -> None:
    if s.session_max_age_s <= 0:
        raise ConfigError(f"session_max_age_s must be positive, got {s.session_max_age_s}")
    for network in filter(None, (n.strip() for n in s.statsd_allowed_networks.split(","))):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"statsd_allowed_networks: {network!r} is not a network (CIDR) or address") from None


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


def client_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The API token the CLI sends when the server has auth on: $KOBAN_TOKEN."""
    env = os.environ if environ is None else environ
    return env.get("KOBAN_TOKEN") or None
