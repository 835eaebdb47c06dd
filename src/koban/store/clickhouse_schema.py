"""The DDL koban issues on ClickHouse: the OpenTelemetry Collector exporter's tables.

Column names come from `schema.TABLE_COLUMNS` (shared with DuckDB); the ClickHouse
types, codecs, skip indexes, partitioning, sort keys and TTLs are those of the
collector's ClickHouse exporter (exporter/clickhouseexporter), so HyperDX or Grafana's
ClickHouse plugin can read what koban writes. Two additions of koban's own:

- `non_replicated_deduplication_window` on single-node tables, so an insert retried
  with the same `insert_deduplication_token` (a WAL replay) is dropped, as it is on
  replicated tables by default;
- `koban_state`: the applied WAL position of each koban instance.

And the exporter's `otel_traces_trace_id_ts` (first and last span time of each trace,
filled by the materialized view `otel_traces_trace_id_ts_mv`), which HyperDX and
Grafana use to narrow a trace lookup to its time range.

Cluster tables are sharded by a deterministic key (never rand()), so a replayed insert
splits into the same per-shard blocks and each shard recognises its token.

Pure: functions here return SQL text; `store/clickhouse.py` runs it. docs/scaling.md
prints the output of `ddl()` for a single node and a cluster.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from koban.store import schema

STATE_TABLE = "koban_state"
DEDUP_WINDOW = 10_000
"""Inserts remembered per table for deduplication (ClickHouse's replicated default is
1000 since 23.x; koban writes one insert per table per batch, a few per second)."""
DEDUP_SECONDS = 7 * 86400
"""How long a replicated table remembers them: a replay can come days after the write."""

_MAP = "Map(LowCardinality(String), String)"
_TS = "DateTime64(9)"
_ZSTD = "CODEC(ZSTD(1))"
_DELTA = "CODEC(Delta(8), ZSTD(1))"

# Columns the exporter declares LowCardinality(String), per table.
_LOW_CARDINALITY: dict[str, frozenset[str]] = {
    schema.LOGS: frozenset({"SeverityText", "ServiceName", "ResourceSchemaUrl", "ScopeSchemaUrl", "ScopeVersion"}),
    schema.TRACES: frozenset({"SpanName", "SpanKind", "ServiceName", "StatusCode"}),
    **{t: frozenset({"ServiceName"}) for t in schema.METRIC_TABLES},
    schema.EVENTS: frozenset({"AlertType", "Priority", "ServiceName", "SourceType"}),
}
_TIME_COLUMNS = frozenset({"Timestamp", "StartTimeUnix", "TimeUnix"})
_NO_CODEC = frozenset({"TraceFlags", "SeverityNumber"})  # as in the exporter

_DEFAULT_TYPES: dict[str, str] = {
    "VARCHAR": "String",
    "TIMESTAMP_NS": _TS,
    "UTINYINT": "UInt8",
    "UINTEGER": "UInt32",
    "UBIGINT": "UInt64",
    "INTEGER": "Int32",
    "BIGINT": "Int64",
    "DOUBLE": "Float64",
    "BOOLEAN": "Bool",
    "MAP(VARCHAR, VARCHAR)": _MAP,
}

# Inside Nested(...) the exporter uses LowCardinality for event names.
_NESTED_TYPES = {"Events.Name": "LowCardinality(String)"}


def clickhouse_type(duckdb_type: str) -> str:
    """The plain ClickHouse type (no codec) for a DuckDB type of schema.py."""
    if duckdb_type.endswith("[]"):
        return f"Array({clickhouse_type(duckdb_type[:-2])})"
    return _DEFAULT_TYPES[duckdb_type]


class TableSpec(NamedTuple):
    """What the exporter declares around a table's columns."""

    extra_columns: tuple[str, ...]  # column definitions koban does not insert (DEFAULTs)
    indexes: tuple[str, ...]
    partition_by: str
    primary_key: str | None
    order_by: str
    ttl_time: str  # a DateTime expression that TTL adds days to
    shard_key: str  # deterministic, so a replayed insert lands on the same shard


def _map_indexes(*columns: str) -> tuple[str, ...]:
    out = []
    for col in columns:
        short = {"ResourceAttributes": "res", "ScopeAttributes": "scope", "LogAttributes": "log",
                 "SpanAttributes": "span", "Attributes": "attr", "Tags": "tags"}[col]  # fmt: skip
        out.append(f"INDEX idx_{short}_attr_key mapKeys({col}) TYPE bloom_filter(0.01) GRANULARITY 1")
        out.append(f"INDEX idx_{short}_attr_value mapValues({col}) TYPE bloom_filter(0.01) GRANULARITY 1")
    return tuple(out)


_TRACE_ID_INDEX = "INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1"
_METRIC_SPEC = TableSpec(
    extra_columns=(),
    indexes=_map_indexes("ResourceAttributes", "ScopeAttributes", "Attributes"),
    partition_by="toDate(TimeUnix)",
    primary_key=None,
    order_by="(ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))",
    ttl_time="toDateTime(TimeUnix)",
    shard_key="cityHash64(ServiceName, MetricName)",
)

SPECS: dict[str, TableSpec] = {
    schema.LOGS: TableSpec(
        extra_columns=("TimestampTime DateTime DEFAULT toDateTime(Timestamp)",),
        indexes=(
            _TRACE_ID_INDEX,
            *_map_indexes("ResourceAttributes", "ScopeAttributes", "LogAttributes"),
            "INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8",
        ),
        partition_by="toDate(TimestampTime)",
        primary_key="(ServiceName, TimestampTime)",
        order_by="(ServiceName, TimestampTime, Timestamp)",
        ttl_time="TimestampTime",
        shard_key="cityHash64(ServiceName, TraceId, Timestamp)",
    ),
    schema.TRACES: TableSpec(
        extra_columns=(),
        indexes=(
            _TRACE_ID_INDEX,
            *_map_indexes("ResourceAttributes", "SpanAttributes"),
            "INDEX idx_duration Duration TYPE minmax GRANULARITY 1",
        ),
        partition_by="toDate(Timestamp)",
        primary_key=None,
        order_by="(ServiceName, SpanName, toDateTime(Timestamp))",
        ttl_time="toDateTime(Timestamp)",
        # every span of a trace on one shard: trace assembly reads one shard's rows
        shard_key="cityHash64(TraceId)",
    ),
    **{table: _METRIC_SPEC for table in schema.METRIC_TABLES},
    # koban's own: DogStatsD events, read newest first over a time range
    schema.EVENTS: TableSpec(
        extra_columns=(),
        indexes=(
            *_map_indexes("Tags"),
            "INDEX idx_title Title TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8",
            "INDEX idx_text Text TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8",
        ),
        partition_by="toDate(Timestamp)",
        primary_key=None,
        order_by="(toDateTime(Timestamp), ServiceName)",
        ttl_time="toDateTime(Timestamp)",
        shard_key="cityHash64(ServiceName, Title, Timestamp)",
    ),
}

RETENTION_SIGNAL = {
    schema.LOGS: "logs", schema.EVENTS: "logs", schema.TRACES: "spans", **{t: "metrics" for t in schema.METRIC_TABLES}
}


def _column_type(table: str, name: str, duck_type: str) -> str:
    if name in _TIME_COLUMNS:
        return f"{_TS} {_DELTA}"
    if name in _LOW_CARDINALITY[table]:
        return f"LowCardinality(String) {_ZSTD}"
    if name == "IsMonotonic":
        return "Bool CODEC(Delta, ZSTD(1))"
    plain = clickhouse_type(duck_type)
    return plain if name in _NO_CODEC else f"{plain} {_ZSTD}"


def _column_lines(table: str) -> list[str]:
    """Column definitions, dotted names grouped into Nested(...) as the exporter does
    (ClickHouse flattens them back into "Events.Name" Array columns)."""
    lines: list[str] = []
    nested: dict[str, list[str]] = {}
    for name, duck_type in schema.ALL_TABLE_COLUMNS[table]:
        if "." in name:
            group, field = name.split(".", 1)
            inner = _NESTED_TYPES.get(name) or clickhouse_type(duck_type.removesuffix("[]"))
            if group not in nested:
                nested[group] = []
                lines.append(group)  # placeholder, filled below to keep column order
            nested[group].append(f"{field} {inner}")
            continue
        lines.append(f"{name} {_column_type(table, name, duck_type)}")
    return [f"{ln} Nested({', '.join(nested[ln])}) {_ZSTD}" if ln in nested else ln for ln in lines]


class Layout(NamedTuple):
    """Where the tables go: one node, or a cluster of Replicated local tables with a
    Distributed table of the exporter's name over them."""

    database: str
    cluster: str = ""
    retention_days: dict[str, float] = {"logs": 15.0, "spans": 15.0, "metrics": 15.0}
    insert_local: bool = False  # on a cluster: insert into the local tables, not the Distributed ones

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {quote(self.cluster)}" if self.cluster else ""

    def local(self, table: str) -> str:
        """The table that holds the rows: `table` itself, or `table_local` on a cluster."""
        return f"{table}_local" if self.cluster else table

    def insert_table(self, table: str) -> str:
        """The table inserts go to: the Distributed `table`, or with `insert_local` on a
        cluster, `table_local` on the node koban is connected to."""
        return self.local(table) if self.insert_local else table

    def qualified(self, table: str) -> str:
        return f"{quote(self.database)}.{quote(table)}"


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote(name: str) -> str:
    """A database, cluster or table name as a ClickHouse identifier (backquoted when it
    is not a plain identifier)."""
    if _IDENT.fullmatch(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _ttl(layout: Layout, table: str) -> str:
    days = layout.retention_days.get(RETENTION_SIGNAL[table], 0)
    if days <= 0:
        return ""
    # TTL works on whole seconds; fractional days (tests) are kept to the second
    return f"TTL {SPECS[table].ttl_time} + toIntervalSecond({int(days * 86400)})\n"


def _engine(layout: Layout, table: str, family: str = "MergeTree", args: str = "") -> str:
    if not layout.cluster:
        return f"{family}({args})" if args else family
    path = f"'/clickhouse/tables/{{shard}}/{layout.database}/{layout.local(table)}', '{{replica}}'"
    return f"Replicated{family}({path}{', ' + args if args else ''})"


def _settings(layout: Layout) -> str:
    """The SETTINGS of a table koban inserts into, directly or through a view."""
    settings = "index_granularity = 8192, ttl_only_drop_parts = 1"
    if not layout.cluster:
        return settings + f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    # newer ClickHouse forgets tokens after an hour by default; a replay may come later
    return (settings + f", replicated_deduplication_window = {DEDUP_WINDOW}"
            f", replicated_deduplication_window_seconds = {DEDUP_SECONDS}")  # fmt: skip


def table_ddl(layout: Layout, table: str) -> list[str]:
    """CREATE statements for one data table: the table itself on one node; the local
    Replicated table and the Distributed table over it on a cluster."""
    spec = SPECS[table]
    body = ",\n  ".join([*_column_lines(table), *spec.extra_columns, *spec.indexes])
    settings = _settings(layout)
    primary = f"PRIMARY KEY {spec.primary_key}\n" if spec.primary_key else ""
    local = layout.local(table)
    out = [
        f"CREATE TABLE IF NOT EXISTS {layout.qualified(local)}{layout.on_cluster} (\n  {body}\n)\n"
        f"ENGINE = {_engine(layout, table)}\n"
        f"PARTITION BY {spec.partition_by}\n"
        f"{primary}"
        f"ORDER BY {spec.order_by}\n"
        f"{_ttl(layout, table)}"
        f"SETTINGS {settings}"
    ]
    if layout.cluster:
        out.append(
            f"CREATE TABLE IF NOT EXISTS {layout.qualified(table)}{layout.on_cluster}"
            f" AS {layout.qualified(local)}\n"
            f"ENGINE = Distributed({quote(layout.cluster)}, {quote(layout.database)}, {quote(local)},"
            f" {spec.shard_key})"
        )
    return out


TRACE_ID_TS = f"{schema.TRACES}_trace_id_ts"
TRACE_ID_TS_MV = f"{TRACE_ID_TS}_mv"


def trace_id_ts_ddl(layout: Layout) -> list[str]:
    """The exporter's trace-id lookup table and the materialized view that fills it
    from every insert into the traces table. On a cluster the view reads the local
    traces table and writes the local lookup table on each node (a Distributed table
    over them serves reads), so every insert, Distributed or local, reaches it once."""
    local = layout.local(TRACE_ID_TS)
    ttl = ""
    days = layout.retention_days.get("spans", 0)
    if days > 0:
        ttl = f"TTL Start + toIntervalSecond({int(days * 86400)})\n"
    out = [
        f"CREATE TABLE IF NOT EXISTS {layout.qualified(local)}{layout.on_cluster} (\n"
        "  TraceId String CODEC(ZSTD(1)),\n"
        "  Start DateTime CODEC(Delta, ZSTD(1)),\n"
        "  End DateTime CODEC(Delta, ZSTD(1)),\n"
        "  INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1\n"
        ")\n"
        f"ENGINE = {_engine(layout, TRACE_ID_TS)}\n"
        "PARTITION BY toDate(Start)\n"
        "ORDER BY (TraceId, Start)\n"
        f"{ttl}"
        f"SETTINGS {_settings(layout)}"
    ]
    if layout.cluster:
        out.append(
            f"CREATE TABLE IF NOT EXISTS {layout.qualified(TRACE_ID_TS)}{layout.on_cluster}"
            f" AS {layout.qualified(local)}\n"
            f"ENGINE = Distributed({quote(layout.cluster)}, {quote(layout.database)}, {quote(local)},"
            " cityHash64(TraceId))"
        )
    out.append(
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {layout.qualified(TRACE_ID_TS_MV)}{layout.on_cluster}"
        f" TO {layout.qualified(local)}\n"
        "AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End\n"
        f"FROM {layout.qualified(layout.local(schema.TRACES))}\n"
        "WHERE TraceId != ''\n"
        "GROUP BY TraceId"
    )
    return out


_STATE_TABLES = (
    # (table, columns, sort key, version column)
    (STATE_TABLE, "instance_id String, applied_lsn UInt64, updated_at DateTime64(3)", "instance_id", "applied_lsn"),
)


def state_ddl(layout: Layout) -> list[str]:
    """The applied-LSN table: one row per write of each koban instance, collapsed per
    instance by ReplacingMergeTree and read with max(), so unmerged parts do not
    matter. On a cluster it is sharded like the data tables, by instance."""
    out = []
    for table, columns, key, version in _STATE_TABLES:
        local = layout.local(table)
        out.append(
            f"CREATE TABLE IF NOT EXISTS {layout.qualified(local)}{layout.on_cluster} ({columns})\n"
            f"ENGINE = {_engine(layout, table, 'ReplacingMergeTree', version)}\nORDER BY {key}"
        )
        if layout.cluster:
            out.append(
                f"CREATE TABLE IF NOT EXISTS {layout.qualified(table)}{layout.on_cluster}"
                f" AS {layout.qualified(local)}\n"
                f"ENGINE = Distributed({quote(layout.cluster)}, {quote(layout.database)}, {quote(local)},"
                f" cityHash64({key}))"
            )
    return out


def ddl(layout: Layout) -> list[str]:
    """Every statement, in order: the database, the data tables, the trace-id lookup
    table and its view, the state tables."""
    out = [f"CREATE DATABASE IF NOT EXISTS {quote(layout.database)}{layout.on_cluster}"]
    for table in schema.ALL_TABLE_COLUMNS:
        out.extend(table_ddl(layout, table))
    out.extend(trace_id_ts_ddl(layout))
    out.extend(state_ddl(layout))
    return out
