"""Per-series metric points on DuckDB as narrow rows: (series, time, value).

Prometheus remote write (PreparedMetrics, from store/columns.py) sends the same series
again with every sample. In the exporter's wide tables each sample repeats its labels,
resource, scope and five empty exemplar lists, and DuckDB spent 3.9-6.0 us appending
such a row against 0.18-0.24 us for (series, time, value) (`benchmarks/duckdb_append.py
metrics`): half of koban's CPU per remote-written sample. So on DuckDB:

- otel_metrics_gauge and otel_metrics_sum are views, not tables. Each is the union of
  a wide table of the exporter's columns (ROWS: OTLP and StatsD points, built per
  point, with exemplars and start times) and the narrow points (POINTS) joined to
  their series (SERIES): the query layer, the rollups and outside readers keep the
  exporter's names and columns.
- A series row holds everything a point of it repeats: MetricTable, the stream's
  columns (resource, scope, service, name, description, unit), Attributes, and for sums
  the temporality and monotonicity. Its identity is SeriesHash, a 64-bit digest of all
  of those (DuckDB's hash of the stream columns, mixed with series.attributes_hash of
  the attributes, which the decode workers keep per series), so a series whose labels
  are cleaned differently (a new scrub rule) is a new series, never an old row with
  the old values. Points carry SeriesRef, a dense number: joins on dense integers are
  the fast ones (schema.py, rollups).
- Narrow points have no start time (the view shows 0, as the wide rows of the same
  points had), no flags and no exemplars: remote write 1.0 carries none.

Functions here take the store's writer connection; the caller holds the write lock
and owns the transaction, so a failed write leaves no series behind either.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koban.store import schema
from koban.store.columns import STREAM_COLUMNS, PreparedMetrics, arrow_type, concat_column, row_starts

VIEWED = (schema.GAUGE, schema.SUM)
ROWS = {schema.GAUGE: "koban_metrics_gauge_rows", schema.SUM: "koban_metrics_sum_rows"}
"""The wide table under each view: the exporter's columns, one row per point."""
POINTS = {schema.GAUGE: "koban_metrics_gauge_points", schema.SUM: "koban_metrics_sum_points"}
SERIES = schema.METRIC_POINT_SERIES

_q = schema.quote_ident
_SUM_KIND = ("AggregationTemporality", "IsMonotonic")
_TYPES = dict(schema.METRIC_COLUMNS[schema.SUM])
SERIES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("SeriesRef", "UINTEGER"),
    ("SeriesHash", "UBIGINT"),
    ("MetricTable", "VARCHAR"),
    *((name, _TYPES[name]) for name in (*STREAM_COLUMNS, "Attributes", *_SUM_KIND)),
)
POINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("SeriesRef", "UINTEGER"),
    ("TimeUnix", "TIMESTAMP_NS"),
    ("Value", "DOUBLE"),
)
_POINT_SCHEMA = pa.schema([pa.field(n, arrow_type(t)) for n, t in POINT_COLUMNS])
_SERIES_SCHEMA = pa.schema([pa.field(n, arrow_type(t)) for n, t in SERIES_COLUMNS])
_NEW = "koban_points_new"  # name a batch's Arrow data is registered under for one statement


def rows_table(table: str) -> str:
    """Where rows of `table` built one by one (batch_to_arrow's) are appended and deleted."""
    return ROWS.get(table, table)


def physical_tables(table: str) -> tuple[str, ...]:
    """The tables that hold `table`'s rows (the table itself unless it is a view here)."""
    return (ROWS[table], POINTS[table]) if table in ROWS else (table,)


def open_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables and views when missing. A database from before the views (the
    exporter-named tables are tables) has them renamed to ROWS once, so their points
    stay where the views read them."""
    for table in VIEWED:
        row = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = $t", {"t": table}
        ).fetchone()
        if row is not None and row[0] == "BASE TABLE":
            con.execute(f"ALTER TABLE {table} RENAME TO {ROWS[table]}")
    tables = {ROWS[t]: schema.METRIC_COLUMNS[t] for t in VIEWED}
    tables.update({POINTS[t]: POINT_COLUMNS for t in VIEWED})
    tables[SERIES] = SERIES_COLUMNS
    for statement in schema.duckdb_ddl(tables):
        con.execute(statement)
    for table in VIEWED:
        con.execute(_view(table))


def _view(table: str) -> str:
    columns = schema.METRIC_COLUMNS[table]
    narrow = []
    for name, type_ in columns:
        if name in ("TimeUnix", "Value"):
            expr = f"p.{_q(name)}"
        elif name in STREAM_COLUMNS or name in _SUM_KIND or name == "Attributes":
            expr = f"s.{_q(name)}"
        elif name == "StartTimeUnix":
            expr = "make_timestamp_ns(0)"
        elif name == "Flags":
            expr = "0"
        else:  # the exemplar lists
            expr = "[]"
        narrow.append(f"CAST({expr} AS {type_}) AS {_q(name)}")
    names = ", ".join(_q(name) for name, _ in columns)
    return (
        f"CREATE OR REPLACE VIEW {table} AS SELECT {names} FROM {ROWS[table]} UNION ALL"
        f" SELECT {', '.join(narrow)} FROM {POINTS[table]} p"
        f" JOIN {SERIES} s ON s.{_q('SeriesRef')} = p.{_q('SeriesRef')}"
    )


def write(con: duckdb.DuckDBPyConnection, prepared: dict[str, list[PreparedMetrics]]) -> dict[str, pa.Array]:
    """Append `prepared` (PreparedMetrics by table, as columns.prepared_by_table gives
    them), adding the series not stored yet. Returns each table's point times (ns), for
    the rollups' late marks. Raises duckdb.Error, pyarrow.ArrowException."""
    times = {}
    for table, parts in prepared.items():
        if not parts:
            continue
        points = _points(con, table, parts)
        con.from_arrow(points).insert_into(POINTS[table])
        times[table] = points.column("TimeUnix")
    return times


def _points(con: duckdb.DuckDBPyConnection, table: str, parts: list[PreparedMetrics]) -> pa.Table:
    """The narrow rows of `parts`, their new series stored first."""
    streams = pa.concat_tables([_stream_rows(table, p) for p in parts])
    series = [p.series for p in parts]
    stream_of_series = concat_column(series, "Stream", row_starts([p.streams for p in parts]))
    point_series = concat_column([p.points for p in parts], "Series", row_starts(series))
    stream_hash = _stream_hashes(con, streams)
    attributes_hash = np.asarray(concat_column(series, "AttributesHash"))
    series_hash = _mix(stream_hash[np.asarray(stream_of_series)], attributes_hash)
    distinct = pa.array(series_hash).dictionary_encode()
    refs, known = _refs(con, table, distinct.dictionary)
    if not known.all():
        missing = ~known
        new_hashes = distinct.dictionary.filter(pa.array(missing))
        first = pc.index_in(new_hashes, value_set=pa.array(series_hash))  # a series row of each
        refs[missing] = _add_series(con, table, new_hashes, streams.take(stream_of_series.take(first)),
                                    concat_column(series, "Attributes").take(first))
    point_refs = pa.array(refs).take(distinct.indices).take(point_series)
    return pa.Table.from_arrays([
        point_refs,
        concat_column([p.points for p in parts], "TimeUnix").cast(pa.int64()).view(pa.timestamp("ns")),
        concat_column([p.points for p in parts], "Value"),
    ], schema=_POINT_SCHEMA)


def _stream_rows(table: str, part: PreparedMetrics) -> pa.Table:
    """`part`'s streams with the columns a sum's kind adds (null for gauges)."""
    n = part.streams.num_rows
    streams = part.streams.select(list(STREAM_COLUMNS))
    if table != schema.SUM:
        return streams.append_column("AggregationTemporality", pa.nulls(n, pa.int32())).append_column(
            "IsMonotonic", pa.nulls(n, pa.bool_()))
    return streams.append_column(
        "AggregationTemporality", pa.repeat(pa.scalar(part.aggregation_temporality, pa.int32()), n)
    ).append_column("IsMonotonic", pa.repeat(pa.scalar(part.is_monotonic), n))


def _stream_hashes(con: duckdb.DuckDBPyConnection, streams: pa.Table) -> np.ndarray:
    """DuckDB's hash of each stream row (a few hundred per request: the maps are hashed
    once per stream, not once per sample)."""
    columns = ", ".join(_q(name) for name in streams.column_names)
    rows, hashed = _per_row(con, streams, f"SELECT i, hash({columns}) FROM {_NEW}")
    out = np.empty(streams.num_rows, np.uint64)
    out[rows] = hashed
    return out


def _per_row(con: duckdb.DuckDBPyConnection, data: pa.Table, sql: str, params: dict | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Run `sql` over `data` registered as _NEW with each row's number added as column
    `i`, and return the answer's first two columns (that number, one value). The store
    does not keep insertion order (store/duckdb.py), so rows say where they go."""
    con.register(_NEW, data.append_column("i", pa.array(range(data.num_rows), pa.int64())))
    try:
        found = con.sql(sql, params=params).to_arrow_table()
    finally:
        con.unregister(_NEW)
    return np.asarray(found.column(0).combine_chunks()), np.asarray(found.column(1).combine_chunks())


def _mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One 64-bit hash of two (splitmix64's finaliser over a combination of them)."""
    with np.errstate(over="ignore"):
        x = a * np.uint64(0x9E3779B97F4A7C15) + b
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return x


def _refs(con: duckdb.DuckDBPyConnection, table: str, hashes: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The SeriesRef of each of `hashes` (distinct; 0 for a series not stored), and
    whether each is stored."""
    rows, found = _per_row(
        con, pa.table({"h": hashes}),
        f"SELECT n.i, s.{_q('SeriesRef')} FROM {_NEW} n JOIN {SERIES} s"
        f" ON s.{_q('SeriesHash')} = n.h AND s.{_q('MetricTable')} = $t",
        {"t": table},
    )
    refs = np.zeros(len(hashes), np.uint32)
    known = np.zeros(len(hashes), np.bool_)
    refs[rows] = found
    known[rows] = True
    return refs, known


def _add_series(con: duckdb.DuckDBPyConnection, table: str, hashes: pa.Array, streams: pa.Table,
                attributes: pa.Array) -> np.ndarray:
    """Store new series: `hashes` with their stream rows and attributes, numbered on
    from the highest SeriesRef. Returns their SeriesRefs, in order."""
    ((last,),) = con.execute(f"SELECT coalesce(max({_q('SeriesRef')}), 0) FROM {SERIES}").fetchall()
    first = int(last) + 1
    n = len(hashes)
    refs = np.arange(first, first + n, dtype=np.uint32)
    columns = {
        "SeriesRef": pa.array(refs),
        "SeriesHash": hashes,
        "MetricTable": pa.repeat(pa.scalar(table), n),
        **{name: streams.column(name) for name in STREAM_COLUMNS},
        "Attributes": attributes,
        **{name: streams.column(name) for name in _SUM_KIND},
    }
    arrays = [columns[field.name] for field in _SERIES_SCHEMA]
    con.from_arrow(pa.Table.from_arrays(arrays, schema=_SERIES_SCHEMA)).insert_into(SERIES)
    return refs


def delete_older_than(con: duckdb.DuckDBPyConnection, cutoff_ns: int) -> int:
    """Retention of the narrow points: those before `cutoff_ns`, then the series left
    without points. Returns the points removed."""
    removed = 0
    for table in VIEWED:
        row = con.execute(
            f"DELETE FROM {POINTS[table]} WHERE {_q('TimeUnix')} < make_timestamp_ns($cutoff)", {"cutoff": cutoff_ns}
        ).fetchone()
        removed += int(row[0]) if row else 0
    if removed:
        unused = " AND ".join(
            f"NOT EXISTS (SELECT 1 FROM {POINTS[t]} p WHERE p.{_q('SeriesRef')} = s.{_q('SeriesRef')})" for t in VIEWED
        )
        con.execute(f"DELETE FROM {SERIES} s WHERE {unused}")
    return removed
