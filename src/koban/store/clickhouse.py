"""The scale-out store: ClickHouse over its HTTP interface, with clickhouse-connect.

Tables are the OpenTelemetry Collector exporter's (see `clickhouse_schema.py`). Writes
are one Arrow insert per table per batch; ClickHouse has no transaction across tables,
so exactly-once comes from insert deduplication instead: every insert carries the token
`koban-<instance>-<lsn>-<table>`, and an insert whose token the table has already seen
is dropped. When a write fails half-way (or the process dies before recording its lsn)
the writer retries or replays the same lsn, the tables that already have its rows drop
the repeat, and the rest take it. Only then is the lsn recorded in `koban_state`.

Each koban process has its own WAL and so its own lsn sequence: the instance id (a
uuid kept in `<data_dir>/instance_id`) is part of every token and keys the state row,
so several processes can ingest into one database (docs/scaling.md).
"""

from __future__ import annotations

import math
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from koban.errors import ConfigError, QueryTimeout, StoreError
from koban.model import Batch
from koban.settings import Settings
from koban.store import schema
from koban.store.base import QueryResult, TableUsage
from koban.store.clickhouse_schema import STATE_TABLE, Layout, ddl, quote
from koban.store.columns import batch_to_arrow

try:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        "the ClickHouse store needs clickhouse-connect: pip install 'koban[clickhouse]'"
    ) from e

# ClickHouse error codes meaning "this data can never go into this column": the same
# insert fails the same way every time, so the writer must set the batch aside.
_DATA_ERROR_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
})  # fmt: skip
_TIMEOUT_CODES = frozenset({159, 394})  # TIMEOUT_EXCEEDED, QUERY_WAS_CANCELLED
_MEMORY_LIMIT_EXCEEDED = 241

INSTANCE_ID_FILE = "instance_id"


def instance_id(data_dir: str | Path) -> str:
    """This process's id for ClickHouse bookkeeping: the uuid in `<data_dir>/instance_id`,
    created on first use. It names the WAL the lsns come from, so it lives beside the
    WAL: a copy of the data dir must not be run twice at once. Raises OSError when the
    file can be neither read nor created."""
    path = Path(data_dir) / INSTANCE_ID_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    new = uuid.uuid4().hex
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new + "\n")
    tmp.replace(path)
    return new


def parse_url(url: str) -> dict[str, Any]:
    """clickhouse-connect `get_client` arguments from `http(s)://user:pass@host:port/db`.
    The port defaults to 8123 (http) or 8443 (https); the database to "default".
    Raises ConfigError naming the problem (never echoing the password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"clickhouse_url must start with http:// or https://, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise ConfigError("clickhouse_url has no host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("clickhouse_url has an invalid port") from None
    database = unquote(parts.path.strip("/")) or "default"
    if "/" in database:
        raise ConfigError(f"clickhouse_url path must be one database name, got {database!r}")
    return {
        "interface": parts.scheme,
        "host": parts.hostname,
        "port": port or (8443 if parts.scheme == "https" else 8123),
        "username": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "database": database,
    }


class ClickHouseStore:
    """koban.store.base.Store over ClickHouse (one node or a cluster)."""

    dialect = "clickhouse"

    def __init__(
        self,
        client: Any,
        *,
        database: str | None = None,
        cluster: str = "",
        retention_days: dict[str, float] | None = None,
        instance: str = "default",
        insert_local: bool = False,
        query_max_memory_bytes: int = 0,
    ) -> None:
        """Use `client` (a clickhouse-connect client, HTTP or chdb) and create koban's
        database and tables in it if missing. `database` defaults to the client's.
        `instance` keys this process's applied lsn and dedup tokens (see instance_id).
        With `insert_local` on a cluster, inserts go to the node's `_local` tables.
        The store owns the client from here on (close() closes it). Raises StoreError
        when ClickHouse cannot be reached or refuses the DDL."""
        self._client = client
        self.database = database or client.database or "default"
        self.layout = Layout(
            self.database, cluster, retention_days or Layout._field_defaults["retention_days"], insert_local
        )
        self.instance = instance
        self._write_lock = threading.Lock()
        self._closed = False
        self.query_max_memory_bytes = query_max_memory_bytes  # per read query; 0: the server's own
        try:
            for statement in ddl(self.layout):
                client.command(statement)
            client.database = self.database
            self._applied_lsn = self._read_applied_lsn()
        except ClickHouseError as e:
            raise StoreError(f"cannot create koban's tables in ClickHouse database {self.database}: {e}") from e

    @classmethod
    def from_settings(cls, settings: Settings) -> ClickHouseStore:
        """Connect with settings.clickhouse_url (TLS for https) and settings.clickhouse_cluster.
        Raises ConfigError for a malformed URL, StoreError when ClickHouse is unreachable."""
        args = parse_url(settings.clickhouse_url)
        database = args.pop("database")
        try:
            # No database yet: it may not exist. No session: reads run concurrently,
            # and ClickHouse refuses concurrent queries in one session.
            client = clickhouse_connect.get_client(
                **args, autogenerate_session_id=False, connect_timeout=10, send_receive_timeout=300
            )
        except ClickHouseError as e:
            raise StoreError(f"cannot connect to ClickHouse at {args['host']}:{args['port']}: {e}") from e
        retention = {
            "logs": settings.retention_logs_days,
            "spans": settings.retention_spans_days,
            "metrics": settings.retention_metrics_days,
        }
        return cls(
            client,
            database=database,
            cluster=settings.clickhouse_cluster,
            retention_days=retention,
            instance=instance_id(settings.data_dir),
            insert_local=settings.clickhouse_insert_local,
            query_max_memory_bytes=settings.query_max_memory_bytes,
        )

    def _cluster_settings(self) -> dict[str, Any]:
        # Inserts through a Distributed table reach the shards before they return, so a
        # write that returned is stored (and its dedup token seen) on a shard.
        return {"insert_distributed_sync": 1} if self.layout.cluster and not self.layout.insert_local else {}

    # --- writes ---------------------------------------------------------------------

    def write(self, batch: Batch, lsn: int) -> None:
        """Insert each table of `batch` with a dedup token derived from (instance, lsn,
        table), then record `lsn`. Does nothing when `lsn` is not above applied_lsn().
        Raises StoreError: `permanent` when a record does not fit its column; otherwise
        (network, server overload) retrying the same (batch, lsn) is safe."""
        if lsn <= self._applied_lsn:
            return
        try:
            tables = batch_to_arrow(batch)
        except MemoryError as e:
            raise StoreError(f"out of memory converting the batch at LSN {lsn}", lsn=lsn) from e
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            raise StoreError(f"batch at LSN {lsn} does not fit the schema: {e}", lsn=lsn, permanent=True) from e
        with self._write_lock:
            self._check_open()
            if lsn <= self._applied_lsn:
                return
            try:
                for table, data in tables.items():
                    settings = {
                        **self._cluster_settings(),
                        "insert_deduplicate": 1,
                        # the trace-id view's table drops a repeat too (it derives its
                        # token from ours), even where ClickHouse would push it again
                        "deduplicate_blocks_in_dependent_materialized_views": 1,
                        "insert_deduplication_token": f"koban-{self.instance}-{lsn}-{table}",
                    }
                    self._client.insert_arrow(self.layout.insert_table(table), data, settings=settings)
                self._client.command(
                    f"INSERT INTO {quote(self.layout.insert_table(STATE_TABLE))} (instance_id, applied_lsn, updated_at)"
                    " SELECT {instance:String}, {lsn:UInt64}, now64(3)",
                    parameters={"instance": self.instance, "lsn": lsn},
                    settings=self._cluster_settings(),
                )
            except ClickHouseError as e:
                raise self._write_error(e, lsn) from e
            self._applied_lsn = lsn

    @staticmethod
    def _write_error(e: ClickHouseError, lsn: int) -> StoreError:
        code = getattr(e, "code", None)
        if code in _DATA_ERROR_CODES:
            return StoreError(f"batch at LSN {lsn} does not fit the schema: {e}", lsn=lsn, permanent=True)
        return StoreError(f"ClickHouse write failed at LSN {lsn}: {e}", lsn=lsn, code=code)

    def applied_lsn(self) -> int:
        """The highest LSN this instance has stored; 0 when none is."""
        return self._applied_lsn

    def _read_applied_lsn(self) -> int:
        result = self._client.query(
            f"SELECT max(applied_lsn) FROM {quote(STATE_TABLE)} WHERE instance_id = {{instance:String}}",
            parameters={"instance": self.instance},
        )
        return int(result.result_rows[0][0] or 0) if result.result_rows else 0

    def delete_older_than(self, signal: str, cutoff_ns: int) -> int:
        """Remove `signal` rows older than `cutoff_ns` with a lightweight DELETE, waiting
        until it applies. Returns -1 (ClickHouse does not say how many). The tables'
        TTL drops whole expired days on its own; this makes the cutoff exact. Raises
        ValueError for an unknown signal, StoreError when ClickHouse fails."""
        tables = schema.SIGNAL_TABLES.get(signal)
        if tables is None:
            raise ValueError(f"unknown signal {signal!r}; expected one of {sorted(schema.SIGNAL_TABLES)}")
        self._check_open()
        for table in tables:
            column = quote(schema.TIME_COLUMN[table])
            target = f"{quote(self.layout.local(table))}{self.layout.on_cluster}"
            try:
                self._client.command(
                    f"DELETE FROM {target} WHERE {column} < fromUnixTimestamp64Nano({{cutoff:Int64}})",
                    parameters={"cutoff": int(cutoff_ns)},
                    settings={"lightweight_deletes_sync": 2, "mutations_sync": 2},
                )
            except ClickHouseError as e:
                raise StoreError(f"ClickHouse retention of {signal} failed: {e}", signal=signal) from e
        return -1

    # --- reads ----------------------------------------------------------------------

    def query(self, sql: str, params: dict[str, Any], *, timeout_s: float, max_rows: int) -> QueryResult:
        """Run one read-only statement with `{name:Type}` placeholders bound server-side
        from `params`. Raises QueryTimeout past `timeout_s` (ClickHouse cancels it),
        StoreError for any other failure."""
        self._check_open()
        settings = {
            "max_execution_time": max(1, math.ceil(timeout_s)),
            "timeout_overflow_mode": "throw",
            # a result-size guard in ClickHouse; the slice below makes it exact
            "max_result_rows": max(int(max_rows), 1),
            "result_overflow_mode": "break",
            # 2: reads only, but settings like the ones above may still be set
            "readonly": 2,
        }
        if self.query_max_memory_bytes:
            settings["max_memory_usage"] = self.query_max_memory_bytes
        try:
            result = self._client.query(sql, parameters=params or None, settings=settings)
        except ClickHouseError as e:
            code = getattr(e, "code", None)
            if code == _MEMORY_LIMIT_EXCEEDED or "MEMORY_LIMIT_EXCEEDED" in str(e):
                budget = self.query_max_memory_bytes
                raise StoreError(
                    f"the query needs more memory than its budget of {budget} bytes (query_max_memory_bytes); "
                    "narrow the time range or the search", budget=budget,
                ) from e
            if code in _TIMEOUT_CODES or _is_read_timeout(e):
                raise QueryTimeout(f"query cancelled after {timeout_s:g} s", timeout_s=timeout_s) from e
            raise StoreError(f"ClickHouse query failed: {e}", sql=sql, code=code) from e
        return QueryResult(list(result.column_names), [tuple(r) for r in result.result_rows[: max(max_rows, 0)]])

    # --- housekeeping ---------------------------------------------------------------

    def disk_bytes(self) -> int:
        """Bytes of koban's active parts, on every node of the cluster; 0 when unknown."""
        parts = f"clusterAllReplicas({quote(self.layout.cluster)}, system.parts)" if self.layout.cluster else "system.parts"
        try:
            result = self._client.query(
                f"SELECT sum(bytes_on_disk) FROM {parts} WHERE database = {{db:String}} AND active",
                parameters={"db": self.database},
            )
        except ClickHouseError:
            return 0
        return int(result.result_rows[0][0] or 0) if result.result_rows else 0

    def usage(self) -> dict[str, TableUsage]:
        """Each table's active parts (bytes on disk and rows, on every node of the
        cluster; rows a lightweight DELETE masked stay in them until a merge) and its
        live rows. Raises StoreError when ClickHouse fails."""
        self._check_open()
        cluster = self.layout.cluster
        parts = f"clusterAllReplicas({quote(cluster)}, system.parts)" if cluster else "system.parts"
        try:
            result = self._client.query(
                f"SELECT table, sum(bytes_on_disk), sum(rows) FROM {parts}"
                " WHERE database = {db:String} AND active GROUP BY table",
                parameters={"db": self.database},
            )
            on_disk = {str(t): (int(b or 0), int(r or 0)) for t, b, r in result.result_rows}
            out = {}
            for table in schema.ALL_TABLE_COLUMNS:
                size, stored = on_disk.get(self.layout.local(table), (0, 0))
                live = self._client.query(f"SELECT count() FROM {quote(table)}").result_rows[0][0]
                out[table] = TableUsage(size, stored, int(live or 0))
        except ClickHouseError as e:
            raise StoreError(f"ClickHouse storage statistics failed: {e}") from e
        return out

    def trim_memory(self, idle_for_s: float) -> bool:
        """Nothing to give back: ClickHouse keeps its caches in its own process."""
        return False

    def roll_up_metrics(self, until_ns: int, *, settle_s: float = 0.0, max_steps: int = 1000) -> int:
        """No rollup tables here yet: ClickHouse groups raw points per series fast
        enough on its own cluster, so metric queries read them (docs/metrics.md)."""
        return 0

    def metric_rollups_until_ns(self) -> int | None:
        return None

    def close(self) -> None:
        """Close the client. Calling it again does nothing."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")


def _is_read_timeout(e: ClickHouseError) -> bool:
    # the HTTP read timed out before the server answered: the client gave up waiting
    return isinstance(e, OperationalError) and "timed out" in str(e).lower()


