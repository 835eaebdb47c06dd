"""Table and column names shared by every backend.

The names are those of the OpenTelemetry Collector's ClickHouse exporter (otel_logs,
otel_traces, otel_metrics_*), so a database koban writes can be read by tools that
already know that schema (HyperDX, Grafana's ClickHouse plugin). Nested columns keep
the exporter's dotted names ("Events.Timestamp"), quoted in SQL.

Types here are DuckDB's; the ClickHouse backend declares its own (LowCardinality,
DateTime64(9), codecs) over the same names.
"""

from __future__ import annotations

LOGS = "otel_logs"
TRACES = "otel_traces"
GAUGE = "otel_metrics_gauge"
SUM = "otel_metrics_sum"
HISTOGRAM = "otel_metrics_histogram"
EXP_HISTOGRAM = "otel_metrics_exponential_histogram"
SUMMARY = "otel_metrics_summary"
METRIC_TABLES = (GAUGE, SUM, HISTOGRAM, EXP_HISTOGRAM, SUMMARY)
# koban's own tables, for what the exporter's schema has no place for.
EVENTS = "koban_events"  # DogStatsD events

# Which table holds each signal, and the column that carries its time. Events are
# kept as long as logs (one retention setting fewer; they are a kind of log).
SIGNAL_TABLES = {"logs": (LOGS, EVENTS), "spans": (TRACES,), "metrics": METRIC_TABLES}
TIME_COLUMN = {LOGS: "Timestamp", TRACES: "Timestamp", EVENTS: "Timestamp", **{t: "TimeUnix" for t in METRIC_TABLES}}

_MAP = "MAP(VARCHAR, VARCHAR)"
_TS = "TIMESTAMP_NS"

LOG_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Timestamp", _TS),
    ("TraceId", "VARCHAR"),
    ("SpanId", "VARCHAR"),
    ("TraceFlags", "UTINYINT"),
    ("SeverityText", "VARCHAR"),
    ("SeverityNumber", "UTINYINT"),
    ("ServiceName", "VARCHAR"),
    ("Body", "VARCHAR"),
    ("ResourceSchemaUrl", "VARCHAR"),
    ("ResourceAttributes", _MAP),
    ("ScopeSchemaUrl", "VARCHAR"),
    ("ScopeName", "VARCHAR"),
    ("ScopeVersion", "VARCHAR"),
    ("ScopeAttributes", _MAP),
    ("LogAttributes", _MAP),
)

TRACE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Timestamp", _TS),  # the span's start
    ("TraceId", "VARCHAR"),
    ("SpanId", "VARCHAR"),
    ("ParentSpanId", "VARCHAR"),
    ("TraceState", "VARCHAR"),
    ("SpanName", "VARCHAR"),
    ("SpanKind", "VARCHAR"),
    ("ServiceName", "VARCHAR"),
    ("ResourceAttributes", _MAP),
    ("ScopeName", "VARCHAR"),
    ("ScopeVersion", "VARCHAR"),
    ("SpanAttributes", _MAP),
    ("Duration", "UBIGINT"),  # nanoseconds
    ("StatusCode", "VARCHAR"),
    ("StatusMessage", "VARCHAR"),
    ("Events.Timestamp", f"{_TS}[]"),
    ("Events.Name", "VARCHAR[]"),
    ("Events.Attributes", f"{_MAP}[]"),
    ("Links.TraceId", "VARCHAR[]"),
    ("Links.SpanId", "VARCHAR[]"),
    ("Links.TraceState", "VARCHAR[]"),
    ("Links.Attributes", f"{_MAP}[]"),
)

_METRIC_COMMON: tuple[tuple[str, str], ...] = (
    ("ResourceAttributes", _MAP),
    ("ResourceSchemaUrl", "VARCHAR"),
    ("ScopeName", "VARCHAR"),
    ("ScopeVersion", "VARCHAR"),
    ("ScopeAttributes", _MAP),
    ("ScopeDroppedAttrCount", "UINTEGER"),
    ("ScopeSchemaUrl", "VARCHAR"),
    ("ServiceName", "VARCHAR"),
    ("MetricName", "VARCHAR"),
    ("MetricDescription", "VARCHAR"),
    ("MetricUnit", "VARCHAR"),
    ("Attributes", _MAP),
    ("StartTimeUnix", _TS),
    ("TimeUnix", _TS),
)

_EXEMPLARS: tuple[tuple[str, str], ...] = (
    ("Exemplars.FilteredAttributes", f"{_MAP}[]"),
    ("Exemplars.TimeUnix", f"{_TS}[]"),
    ("Exemplars.Value", "DOUBLE[]"),
    ("Exemplars.SpanId", "VARCHAR[]"),
    ("Exemplars.TraceId", "VARCHAR[]"),
)

METRIC_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    GAUGE: _METRIC_COMMON + (("Value", "DOUBLE"), ("Flags", "UINTEGER")) + _EXEMPLARS,
    SUM: _METRIC_COMMON
    + (("Value", "DOUBLE"), ("Flags", "UINTEGER"))
    + _EXEMPLARS
    + (("AggregationTemporality", "INTEGER"), ("IsMonotonic", "BOOLEAN")),
    HISTOGRAM: _METRIC_COMMON
    + (
        ("Count", "UBIGINT"),
        ("Sum", "DOUBLE"),
        ("BucketCounts", "UBIGINT[]"),
        ("ExplicitBounds", "DOUBLE[]"),
    )
    + _EXEMPLARS
    + (("Flags", "UINTEGER"), ("Min", "DOUBLE"), ("Max", "DOUBLE"), ("AggregationTemporality", "INTEGER")),
    EXP_HISTOGRAM: _METRIC_COMMON
    + (
        ("Count", "UBIGINT"),
        ("Sum", "DOUBLE"),
        ("Scale", "INTEGER"),
        ("ZeroCount", "UBIGINT"),
        ("PositiveOffset", "INTEGER"),
        ("PositiveBucketCounts", "UBIGINT[]"),
        ("NegativeOffset", "INTEGER"),
        ("NegativeBucketCounts", "UBIGINT[]"),
    )
    + _EXEMPLARS
    + (("Flags", "UINTEGER"), ("Min", "DOUBLE"), ("Max", "DOUBLE"), ("AggregationTemporality", "INTEGER")),
    SUMMARY: _METRIC_COMMON
    + (
        ("Count", "UBIGINT"),
        ("Sum", "DOUBLE"),
        ("ValueAtQuantiles.Quantile", "DOUBLE[]"),
        ("ValueAtQuantiles.Value", "DOUBLE[]"),
        ("Flags", "UINTEGER"),
    ),
}

TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    LOGS: LOG_COLUMNS,
    TRACES: TRACE_COLUMNS,
    **METRIC_COLUMNS,
}

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Timestamp", _TS),
    ("Title", "VARCHAR"),
    ("Text", "VARCHAR"),
    ("AlertType", "VARCHAR"),  # error, warning, info, success
    ("Priority", "VARCHAR"),  # normal, low
    ("Host", "VARCHAR"),
    ("AggregationKey", "VARCHAR"),
    ("SourceType", "VARCHAR"),
    ("ServiceName", "VARCHAR"),
    ("Tags", _MAP),
)

# --- metric rollups ------------------------------------------------------------------
# One row per metric series and minute, written by the store from the raw points once
# the minute has closed (store/rollups.py), so a chart over many series reads one row
# per series and minute instead of grouping raw points per series (docs/metrics.md,
# "Rollups"). A series is a metric name + SERIES_KEY_COLUMNS, named by a 64-bit hash
# of those columns, SeriesKey (the query layer hashes raw points the same way), and by
# a small dense number, SeriesId, that rollup rows carry: joining on dense integers
# lets DuckDB use an array instead of a hash table (twice as fast over 14M rows).
# Kept by the DuckDB store; a backend without them reports no rollups and is read raw.
ROLLUP_1M = "koban_metric_rollup_1m"
ROLLUP_NS = 60 * 1_000_000_000
"""The time a rollup row covers: one minute, starting at a whole minute."""
METRIC_SERIES = "koban_metric_series"
ROLLED_TABLES = {GAUGE: "gauge", SUM: "sum"}
"""The raw tables that are rolled up, and their MetricTable value in the rollup tables.
Cumulative monotonic sums are left out: their rollup would need each series' previous
point (metric_series.py reads them raw)."""
ROLLED_ROWS = {
    GAUGE: "TRUE",
    SUM: 'NOT ("AggregationTemporality" = 2 AND coalesce("IsMonotonic", FALSE))',
}
"""Which rows of each rolled table the rollups hold (an SQL condition both engines read)."""
SERIES_KEY_COLUMNS = ("ServiceName", "Attributes", "ResourceAttributes")
METRIC_POINT_SERIES = "koban_metric_point_series"
"""The DuckDB store's series of narrow metric points (store/duckdb_points.py)."""
DERIVED_TABLES = {ROLLUP_1M: "metrics", METRIC_SERIES: "metrics", METRIC_POINT_SERIES: "metrics"}
"""Tables that hold a signal's data but not its records (rollups, series): their disk
counts for that signal (usage, the disk budget), their rows do not."""

ROLLUP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("MetricTable", "VARCHAR"),
    ("MetricName", "VARCHAR"),
    ("SeriesId", "UINTEGER"),
    ("TimeUnix", _TS),  # the minute's start
    ("Count", "UBIGINT"),
    ("Sum", "DOUBLE"),
    ("Min", "DOUBLE"),
    ("Max", "DOUBLE"),
)
SERIES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("MetricTable", "VARCHAR"),
    ("MetricName", "VARCHAR"),
    ("SeriesId", "UINTEGER"),
    ("SeriesKey", "UBIGINT"),
    ("ServiceName", "VARCHAR"),
    ("Attributes", _MAP),
    ("ResourceAttributes", _MAP),
    ("TimeUnix", _TS),  # the first minute it was rolled up
)

# koban's own tables; TABLE_COLUMNS stays exactly the exporter's.
OWN_TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {EVENTS: EVENT_COLUMNS}
ALL_TABLE_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {**TABLE_COLUMNS, **OWN_TABLE_COLUMNS}


def quote_ident(name: str) -> str:
    """The one quoting function for identifiers (both dialects accept double quotes)."""
    return '"' + name.replace('"', '""') + '"'


DUCKDB_JSON_MAPS: dict[str, str] = {LOGS: "LogAttributes", TRACES: "SpanAttributes"}
"""Map columns the DuckDB store keeps as JSON object text (type JSON) instead of
MAP(VARCHAR, VARCHAR): a MAP costs DuckDB ~6 us more per appended log record (2 us per
span), the largest single cost of log ingest (docs/architecture.md, "Record attributes
on DuckDB"). Arrow batches still carry them as maps; the DuckDB store converts
(store/json_maps.py). Each column name here must be unique to its table: the DuckDB
dialect recognises these columns by name alone."""


def duckdb_ddl(tables: dict[str, tuple[tuple[str, str], ...]] = ALL_TABLE_COLUMNS) -> list[str]:
    """CREATE TABLE statements for `tables` (every table by default), in DuckDB's types."""
    statements = []
    for table, columns in tables.items():
        json_map = DUCKDB_JSON_MAPS.get(table)
        cols = ",\n  ".join(f"{quote_ident(c)} {'JSON' if c == json_map else t}" for c, t in columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)")
    return statements
