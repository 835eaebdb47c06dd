"""Batch -> one Arrow table per store table, column-wise.

Every backend inserts Arrow (DuckDB scans it in place; ClickHouse takes it over HTTP), so
this is the one place that maps record fields onto the exporter's columns. The Arrow
types come from the DuckDB types in `schema.TABLE_COLUMNS`, so the two cannot drift.

Columns are built with one list comprehension per column, never via row dicts: at 50k
records/s the per-record Python cost is what limits ingest. Log records mostly arrive
already column-wise (`LogColumns`, from the OTLP/protobuf decoder), whose lists go to
Arrow as they are; LogRecords are turned into LogColumns first, so logs take one path.
Resources, scopes and metric streams are usually shared by thousands of records (one
object per OTLP ResourceLogs), so their map columns are built once per distinct object
and then repeated (or, for DuckDB, dictionary-encoded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Sized
from itertools import accumulate, chain
from operator import attrgetter
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from koban.model import Batch, Exemplar, LogColumns, LogRecord, MetricColumns, Resource, Scope
from koban.series import attributes_hash, only_series
from koban.store import schema
from koban.store.series_catalogue import SeriesCatalogue

_SCALARS: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "TIMESTAMP_NS": pa.timestamp("ns"),
    "UTINYINT": pa.uint8(),
    "UINTEGER": pa.uint32(),
    "UBIGINT": pa.uint64(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "MAP(VARCHAR, VARCHAR)": pa.map_(pa.string(), pa.string()),
}


def arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type for a DuckDB type as written in schema.py. Raises KeyError for a
    type schema.py does not use."""
    if duckdb_type.endswith("[]"):
        return pa.list_(arrow_type(duckdb_type[:-2]))
    return _SCALARS[duckdb_type]


def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema of `table`: its columns in schema.ALL_TABLE_COLUMNS order."""
    return pa.schema([pa.field(name, arrow_type(t)) for name, t in schema.ALL_TABLE_COLUMNS[table]])


_SCHEMAS = {table: arrow_schema(table) for table in schema.ALL_TABLE_COLUMNS}
_TS = pa.timestamp("ns")


def batch_to_arrow(batch: Batch, *, dictionary_maps: bool = False) -> dict[str, pa.Table]:
    """Table name -> Arrow table with exactly the columns of schema.TABLE_COLUMNS[table],
    in order, typed as arrow_schema(table) (and koban_events: schema.EVENT_COLUMNS, from
    `batch.events`). Only tables with rows appear.

    With `dictionary_maps`, the resource and scope attribute columns may instead be
    dictionary-encoded maps (same values, far cheaper for DuckDB to ingest).
    Raises pyarrow.ArrowException (or TypeError, OverflowError) when a field does not
    fit its column, e.g. a negative duration."""
    shared = _dictionary_maps if dictionary_maps else _repeated_maps
    out: dict[str, pa.Table] = {}
    logs = [t for t in batch.prepared_logs if t.num_rows]
    converted = _logs_table(batch, shared)
    if converted is not None:
        logs.append(converted)
    if logs:
        out[schema.LOGS] = _concat(logs, dictionary_maps)
    prepared = prepared_by_table(batch.metric_columns)
    for table, records, build in (
        (schema.TRACES, batch.spans, _span_columns),
        (schema.GAUGE, batch.gauges, _gauge_columns),
        (schema.SUM, batch.sums, _sum_columns),
        (schema.HISTOGRAM, batch.histograms, _histogram_columns),
        (schema.EXP_HISTOGRAM, batch.exp_histograms, _exp_histogram_columns),
        (schema.SUMMARY, batch.summaries, _summary_columns),
    ):
        parts = [_table(table, build(records, shared))] if records else []
        if prepared.get(table):
            parts.append(_expanded(table, prepared[table], dictionary_maps))
        if parts:
            out[table] = _concat(parts, dictionary_maps)
    if batch.events:
        out[schema.EVENTS] = events_to_arrow(batch.events)
    return out


def prepare_logs(batch: Batch) -> Batch:
    """`batch` with its log records (`logs`, `log_columns`) turned into one otel_logs
    Arrow table in `prepared_logs`, resource and scope maps dictionary-encoded.

    This is the costliest part of batch_to_arrow; the decode workers call it so the
    server process, whose one core runs the event loop and the store writer, does not.
    An Arrow table also crosses the process boundary far cheaper than pickled strings.
    Raises what batch_to_arrow raises."""
    table = _logs_table(batch, _dictionary_maps)
    if table is None:
        return batch
    return batch._replace(logs=(), log_columns=(), prepared_logs=(*batch.prepared_logs, table))


def warm_up() -> None:
    """Convert one small batch, so that what pyarrow loads on its first conversion
    (pandas, when installed: over a second) is loaded now rather than by a request."""
    resource = Resource("warm-up", {"service.name": "warm-up"})
    scope = Scope("warm-up")
    prepare_logs(Batch(logs=[LogRecord(0, 0, "", "", 0, "", 0, "", {}, resource, scope)] * 2))


# --- metrics held per series (MetricColumns) --------------------------------------------


class PreparedMetrics(NamedTuple):
    """MetricColumns (model.py) as Arrow, in three tables that point into each other:
    `streams` has one row per distinct stream (the metric table's columns that a stream
    decides: resource, scope, service and metric name, description, unit), `series` one
    row per series ("Stream": its row of `streams`; "Attributes"; "AttributesHash", their
    attributes_hash; "SeriesId" as in MetricColumns), `points` one row per
    point ("Series": its row of `series`; "TimeUnix" in ns; "Value"). Built in the
    decode workers by `prepare_metrics`; batch_to_arrow expands them into table rows,
    the DuckDB store keeps them as they are (store/duckdb_points.py)."""

    table: str  # schema.GAUGE or schema.SUM
    streams: pa.Table
    series: pa.Table
    points: pa.Table
    aggregation_temporality: int = 0
    is_monotonic: bool = False

    @property
    def num_rows(self) -> int:
        return self.points.num_rows


_GAUGE_NAMES = [name for name, _ in schema.METRIC_COLUMNS[schema.GAUGE]]
STREAM_COLUMNS = tuple(_GAUGE_NAMES[: _GAUGE_NAMES.index("Attributes")])
"""The columns a point's stream decides (ResourceAttributes .. MetricUnit), in table order."""
_STREAM_MAPS = ("ResourceAttributes", "ScopeAttributes")


def prepare_metrics(batch: Batch) -> Batch:
    """`batch` with its MetricColumns as PreparedMetrics (Arrow tables, cheap to send
    to the server process). Raises what batch_to_arrow raises."""
    if not any(isinstance(c, MetricColumns) for c in batch.metric_columns):
        return batch
    return batch._replace(metric_columns=tuple(map(_prepared, batch.metric_columns)))


def series_ids(columns: MetricColumns | PreparedMetrics) -> np.ndarray:
    """The series id of each series of `columns` (uint64)."""
    if isinstance(columns, MetricColumns):
        return columns.series_ids
    return columns.series.column("SeriesId").to_numpy()


def series_by_metric(columns: MetricColumns | PreparedMetrics, rows: np.ndarray | None = None
                     ) -> list[tuple[str, np.ndarray]]:
    """The series of `columns` (or only those at `rows`) grouped by metric name: (name,
    their indices, ascending), the metrics in the order their first series comes.
    Grouped in numpy: the names are looked at once per stream."""
    if isinstance(columns, MetricColumns):
        stream_names, series_stream = [s.name for s in columns.streams], columns.series_stream
    else:
        stream_names = columns.streams.column("MetricName").to_pylist()
        series_stream = columns.series.column("Stream").combine_chunks().to_numpy()
    code_of: dict[str, int] = {}
    stream_code = np.array([code_of.setdefault(name, len(code_of)) for name in stream_names], np.int64)
    rows = np.arange(len(series_stream)) if rows is None else rows
    if not len(rows):
        return []
    codes = stream_code[series_stream[rows]]
    order = np.argsort(codes, kind="stable")
    names = list(code_of)
    groups = sorted(np.split(order, np.flatnonzero(np.diff(codes[order])) + 1), key=lambda group: group[0])
    return [(names[codes[group[0]]], rows[group]) for group in groups]


def series_point_counts(columns: MetricColumns | PreparedMetrics) -> np.ndarray:
    """How many points each series of `columns` has."""
    if isinstance(columns, MetricColumns):
        rows, series = columns.point_series, len(columns.series_ids)
    else:
        rows, series = columns.points.column("Series").combine_chunks(), columns.series.num_rows
    return np.bincount(rows.to_numpy(), minlength=series)


def keep_series(columns: MetricColumns | PreparedMetrics, kept: np.ndarray) -> MetricColumns | PreparedMetrics:
    """`columns` with only the series where `kept` (a numpy bool array), and their points."""
    mask = pa.array(kept, pa.bool_())
    position = pa.array(np.cumsum(kept, dtype=np.int32) - 1)  # new row of a kept series
    if isinstance(columns, MetricColumns):
        point_mask = mask.take(columns.point_series)
        kept_points = position.take(columns.point_series.filter(point_mask))
        return only_series(columns, np.flatnonzero(kept), kept_points)._replace(
            time_ns=columns.time_ns.filter(point_mask), values=columns.values.filter(point_mask),
        )
    points = columns.points.filter(mask.take(columns.points.column("Series").combine_chunks()))
    points = points.set_column(0, "Series", position.take(points.column("Series").combine_chunks()))
    return columns._replace(series=columns.series.filter(mask), points=points)


def _prepared(columns: MetricColumns | PreparedMetrics) -> PreparedMetrics:
    if not isinstance(columns, MetricColumns):
        return columns
    table = schema.SUM if columns.aggregation_temporality else schema.GAUGE
    types = _SCHEMAS[table]
    streams = columns.streams  # distinct already
    resources = _distinct([s.resource for s in streams])
    scopes = _distinct([s.scope for s in streams])

    def of_owners(owners: _Owners, field: Callable[[Any], Any], name: str) -> pa.Array:
        values = pa.array(list(map(field, owners.distinct)), types.field(name).type)
        return values if owners.indices is None else values.take(owners.indices)

    def of_streams(field: Callable[[Any], Any], name: str) -> pa.Array:
        return pa.array(list(map(field, streams)), types.field(name).type)

    stream_columns = {
        "ResourceAttributes": _repeated_maps(resources),
        "ResourceSchemaUrl": of_owners(resources, _SCHEMA_URL, "ResourceSchemaUrl"),
        "ScopeName": of_owners(scopes, _NAME, "ScopeName"),
        "ScopeVersion": of_owners(scopes, _VERSION, "ScopeVersion"),
        "ScopeAttributes": _repeated_maps(scopes),
        "ScopeDroppedAttrCount": of_owners(scopes, _DROPPED, "ScopeDroppedAttrCount"),
        "ScopeSchemaUrl": of_owners(scopes, _SCHEMA_URL, "ScopeSchemaUrl"),
        "ServiceName": of_owners(resources, _SERVICE_NAME, "ServiceName"),
        "MetricName": of_streams(_NAME, "MetricName"),
        "MetricDescription": of_streams(_DESCRIPTION, "MetricDescription"),
        "MetricUnit": of_streams(_UNIT, "MetricUnit"),
    }
    stream_of_series = pa.array(columns.series_stream, pa.int32())
    series = _SERIES_CATALOGUE.rows(columns.attributes, columns.series_ids)
    points = {"Series": columns.point_series, "TimeUnix": columns.time_ns, "Value": columns.values}
    return PreparedMetrics(
        table, _arrow_table(stream_columns), series.add_column(0, "Stream", stream_of_series), _arrow_table(points),
        columns.aggregation_temporality, columns.is_monotonic,
    )


def _series_rows(attributes: list[Any], series_ids: np.ndarray) -> pa.Table:
    """PreparedMetrics.series without its "Stream" column."""
    return _arrow_table({
        "Attributes": _maps(attributes),
        "AttributesHash": pa.array(list(map(attributes_hash, attributes)), pa.uint64()),
        "SeriesId": pa.array(series_ids, pa.uint64()),
    })


_SERIES_CATALOGUE = SeriesCatalogue(_series_rows)


def _arrow_table(columns: dict[str, pa.Array]) -> pa.Table:
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def prepared_by_table(metric_columns: Sequence[Any]) -> dict[str, list[PreparedMetrics]]:
    """Batch.metric_columns as PreparedMetrics (MetricColumns are prepared here), by table."""
    out: dict[str, list[PreparedMetrics]] = {}
    for c in metric_columns:
        if c.num_rows:
            p = _prepared(c)
            out.setdefault(p.table, []).append(p)
    return out


def concat_column(tables: list[pa.Table], name: str, offsets: list[int] | None = None) -> pa.Array:
    """Column `name` of `tables` end to end; with `offsets`, each table's values (rows of
    another list of tables) shifted by its offset."""
    parts = [t.column(name).combine_chunks() for t in tables]
    if offsets is not None:
        parts = [pc.add(part, pa.scalar(offset, part.type)) for part, offset in zip(parts, offsets)]
    return pa.concat_arrays(parts)


def row_starts(tables: list[pa.Table]) -> list[int]:
    return list(accumulate((t.num_rows for t in tables), initial=0))[:-1]


def _expanded(table: str, parts: list[PreparedMetrics], dictionary_maps: bool) -> pa.Table:
    """The rows of `parts` (all of `table`): each point's stream and series columns taken
    from its stream and series, in C. With `dictionary_maps`, the map columns are
    dictionary-encoded: a stream's maps once per stream, and series with the same attributes
    (the same series in several requests) share one entry."""
    streams = [p.streams for p in parts]
    series = [p.series for p in parts]
    point_series = concat_column([p.points for p in parts], "Series", row_starts(series))
    point_stream = concat_column(series, "Stream", row_starts(streams)).take(point_series)
    n = len(point_series)
    columns: dict[str, Any] = {}
    for name in STREAM_COLUMNS:
        values = concat_column(streams, name)
        if dictionary_maps and name in _STREAM_MAPS:
            columns[name] = pa.DictionaryArray.from_arrays(point_stream, values)
        else:
            columns[name] = values.take(point_stream)
    attributes = concat_column(series, "Attributes")
    if dictionary_maps:
        hashes = concat_column(series, "AttributesHash")
        distinct = hashes.dictionary_encode()
        first = pc.index_in(distinct.dictionary, value_set=hashes)  # a row of each distinct map
        indices = distinct.indices.take(point_series)
        columns["Attributes"] = pa.DictionaryArray.from_arrays(indices, attributes.take(first))
    else:
        columns["Attributes"] = attributes.take(point_series)
    types = _SCHEMAS[table]
    columns["StartTimeUnix"] = pa.repeat(pa.scalar(0, _TS), n)
    columns["TimeUnix"] = concat_column([p.points for p in parts], "TimeUnix").view(_TS)
    columns["Value"] = concat_column([p.points for p in parts], "Value")
    columns["Flags"] = pa.repeat(pa.scalar(0, types.field("Flags").type), n)
    no_offsets = pa.repeat(pa.scalar(0, pa.int32()), n + 1)  # (pa.repeat of an empty list is slow)
    for name in _EXEMPLAR_COLUMNS:
        columns[name] = pa.ListArray.from_arrays(no_offsets, pa.array([], types.field(name).type.value_type))
    if table == schema.SUM:
        columns["AggregationTemporality"] = pa.concat_arrays([
            pa.repeat(pa.scalar(p.aggregation_temporality, pa.int32()), p.num_rows) for p in parts
        ])
        columns["IsMonotonic"] = pa.concat_arrays([pa.repeat(pa.scalar(p.is_monotonic), p.num_rows) for p in parts])
    return _table(table, columns)


_EXEMPLAR_COLUMNS = tuple(name for name, _ in schema.METRIC_COLUMNS[schema.GAUGE] if name.startswith("Exemplars."))


def _logs_table(batch: Batch, shared: SharedMaps) -> pa.Table | None:
    logs = [LogColumns.from_records(batch.logs)] if batch.logs else []
    logs.extend(c for c in batch.log_columns if c.count)
    if not logs:
        return None
    return _table(schema.LOGS, _log_columns(LogColumns.concat(logs), shared))


def _concat(tables: list[pa.Table], dictionary_maps: bool) -> pa.Table:
    """One table from tables of the same columns, some of which may hold dictionary-
    encoded maps; those are decoded unless `dictionary_maps`, or when the column types
    differ between tables (concatenation needs one type per column)."""
    if len(tables) == 1 and (dictionary_maps or not _has_dictionaries(tables[0])):
        return tables[0]
    if not dictionary_maps or len({t.schema for t in tables}) > 1:
        tables = [_decode_dictionaries(t) for t in tables]
    return pa.concat_tables(tables)


def _has_dictionaries(table: pa.Table) -> bool:
    return any(pa.types.is_dictionary(f.type) for f in table.schema)


def _decode_dictionaries(table: pa.Table) -> pa.Table:
    if not _has_dictionaries(table):
        return table
    columns = [
        pa.chunked_array([c.dictionary_decode() for c in col.chunks], type=col.type.value_type)
        if pa.types.is_dictionary(col.type) else col
        for col in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _table(table: str, columns: dict[str, Any]) -> pa.Table:
    arrow_schema_ = _SCHEMAS[table]
    arrays = [
        col if isinstance(col, pa.Array) else _array(col, field.type)
        for field, col in ((f, columns[f.name]) for f in arrow_schema_)
    ]
    return pa.Table.from_arrays(arrays, names=arrow_schema_.names)


def _array(values: list[Any], type_: pa.DataType) -> pa.Array:
    if type_ == _TS:
        # int64 then a zero-copy view: converting Python ints straight to a timestamp
        # type goes through a slower path (and a one-off ~0.4 s initialisation).
        return pa.array(values, type=pa.int64()).view(_TS)
    return pa.array(values, type=type_)


# --- array builders -------------------------------------------------------------------


def _maps(dicts: Sequence[dict[str, str]]) -> pa.Array:
    """A MAP(VARCHAR, VARCHAR) array from dicts, built from flat keys and values (the
    loops run in C: several times faster than letting pyarrow convert each dict)."""
    return pa.MapArray.from_arrays(
        _offsets(dicts),
        pa.array(list(chain.from_iterable(dicts)), type=pa.string()),
        pa.array(list(chain.from_iterable(map(dict.values, dicts))), type=pa.string()),
    )


def _offsets(rows: Sequence[Sized]) -> pa.Array:
    return pa.array(list(accumulate(map(len, rows), initial=0)), type=pa.int32())


class _Owners(NamedTuple):
    """Records' resources or scopes: the distinct objects, and each record's index into
    them (None when all are distinct, so `distinct` is one per record)."""

    distinct: list[Any]
    indices: pa.Array | None


def _distinct(owners: Sequence[Any]) -> _Owners:
    """`owners` (one resource or scope per record) deduplicated by identity."""
    count = len(owners)
    if count < 2:
        return _Owners(list(owners), None)
    first = owners[0]
    if owners[-1] is first and owners.count(first) == count:
        # one owner for all (a request's scope, often), checked in C: `count` tries
        # identity first (an equal owner that is another object is as good)
        return _Owners([first], pa.repeat(pa.scalar(0, pa.int32()), count))
    ids = np.fromiter(map(id, owners), np.uint64, count)
    starts = np.concatenate(([0], np.flatnonzero(ids[1:] != ids[:-1]) + 1))
    if len(starts) * 4 <= count:
        return _distinct_runs(owners, ids, starts)
    # Arrow numbers the distinct ids in order of first appearance, in C++: a third of
    # the time of a dict of positions looked up once per record.
    encoded = pa.array(ids).dictionary_encode()
    if len(encoded.dictionary) == count:
        return _Owners(list(owners), None)
    by_id = dict(zip(ids.tolist(), owners))  # the owners list keeps every id alive and unique
    return _Owners(list(map(by_id.__getitem__, encoded.dictionary.to_pylist())), encoded.indices)


def _distinct_runs(owners: Sequence[Any], ids: np.ndarray, starts: np.ndarray) -> _Owners:
    """_distinct for owners that come in runs (the log records of one ResourceLogs share
    its resource): the distinct ones are numbered once per run, not once per record."""
    by_id: dict[int, int] = {}
    run_owner = [by_id.setdefault(i, len(by_id)) for i in ids[starts].tolist()]
    first_run: dict[int, int] = {}  # owner number -> where its first run starts
    for start, number in zip(starts.tolist(), run_owner):
        first_run.setdefault(number, start)
    indices = np.repeat(np.array(run_owner, np.int32), np.diff(starts, append=len(owners)))
    return _Owners([owners[start] for start in first_run.values()], pa.array(indices))


def _repeated_maps(owners: _Owners) -> pa.Array:
    """One map per record, each distinct owner's converted once then repeated."""
    maps = _maps([o.attributes for o in owners.distinct])
    return maps if owners.indices is None else maps.take(owners.indices)


def _dictionary_maps(owners: _Owners) -> pa.Array:
    """Like _repeated_maps but dictionary-encoded, which DuckDB converts once per distinct
    map instead of once per row: turning Arrow into DuckDB's MAP checks every row's keys
    (about 1 µs per entry), the largest cost of an insert."""
    maps = _maps([o.attributes for o in owners.distinct])
    return maps if owners.indices is None else pa.DictionaryArray.from_arrays(owners.indices, maps)


def _owner_strings(owners: _Owners, field: Callable[[Any], str]) -> list[str] | pa.Array:
    """A string field of each record's owner, read once per distinct owner."""
    values = list(map(field, owners.distinct))
    return values if owners.indices is None else pa.array(values, type=pa.string()).take(owners.indices)


SharedMaps = Callable[[_Owners], pa.Array]


def _lists(rows: Sequence[Sequence[Any]], values: Callable[[list[Any]], pa.Array]) -> pa.Array:
    """A list array with one list per row; `values` turns the flattened items into the
    child array."""
    return pa.ListArray.from_arrays(_offsets(rows), values(list(chain.from_iterable(rows))))


def _scalar_values(type_: pa.DataType) -> Callable[[list[Any]], pa.Array]:
    return lambda flat: _array(flat, type_)


def _list_of(rows: Sequence[Sequence[Any]], type_: pa.DataType) -> pa.Array:
    return _lists(rows, _scalar_values(type_))


def _list_of_maps(rows: Sequence[Sequence[dict[str, str]]]) -> pa.Array:
    return _lists(rows, _maps)


# --- per-table columns ----------------------------------------------------------------


_SERVICE_NAME = attrgetter("service_name")
_SCHEMA_URL = attrgetter("schema_url")
_NAME = attrgetter("name")
_VERSION = attrgetter("version")
_DESCRIPTION = attrgetter("description")
_UNIT = attrgetter("unit")
_DROPPED = attrgetter("dropped_attributes_count")


def _log_columns(logs: LogColumns, shared: SharedMaps) -> dict[str, Any]:
    # Straight from the decoder's lists; the resource and scope columns are read once
    # per distinct resource and scope, then repeated.
    resources = _distinct(logs.resources)
    scopes = _distinct(logs.scopes)
    flags = logs.trace_flags
    if max(flags) > 0xFF:
        # OTLP's log flags are 32 bits of which the W3C trace flags are the low 8
        flags = [f & 0xFF for f in flags]
    return {
        "Timestamp": logs.timestamp_ns,
        "TraceId": logs.trace_id,
        "SpanId": logs.span_id,
        "TraceFlags": flags,
        "SeverityText": logs.severity_text,
        "SeverityNumber": logs.severity_number,
        "ServiceName": _owner_strings(resources, _SERVICE_NAME),
        "Body": logs.body,
        "ResourceSchemaUrl": _owner_strings(resources, _SCHEMA_URL),
        "ResourceAttributes": shared(resources),
        "ScopeSchemaUrl": _owner_strings(scopes, _SCHEMA_URL),
        "ScopeName": _owner_strings(scopes, _NAME),
        "ScopeVersion": _owner_strings(scopes, _VERSION),
        "ScopeAttributes": shared(scopes),
        "LogAttributes": pa.MapArray.from_arrays(
            pa.array(logs.attr_offsets, type=pa.int32()),
            pa.array(logs.attr_keys, type=pa.string()),
            pa.array(logs.attr_values, type=pa.string()),
        ),
    }


def _span_columns(spans: Sequence[Any], shared: SharedMaps) -> dict[str, Any]:
    resources = [s.resource for s in spans]
    events = [s.events for s in spans]
    links = [s.links for s in spans]
    return {
        "Timestamp": [s.start_ns for s in spans],
        "TraceId": [s.trace_id for s in spans],
        "SpanId": [s.span_id for s in spans],
        "ParentSpanId": [s.parent_span_id for s in spans],
        "TraceState": [s.trace_state for s in spans],
        "SpanName": [s.name for s in spans],
        "SpanKind": [s.kind for s in spans],
        "ServiceName": [r.service_name for r in resources],
        "ResourceAttributes": shared(_distinct(resources)),
        "ScopeName": [s.scope.name for s in spans],
        "ScopeVersion": [s.scope.version for s in spans],
        "SpanAttributes": _maps([s.attributes for s in spans]),
        "Duration": [s.duration_ns for s in spans],
        "StatusCode": [s.status_code for s in spans],
        "StatusMessage": [s.status_message for s in spans],
        "Events.Timestamp": _list_of([[e.timestamp_ns for e in es] for es in events], _TS),
        "Events.Name": _list_of([[e.name for e in es] for es in events], pa.string()),
        "Events.Attributes": _list_of_maps([[e.attributes for e in es] for es in events]),
        "Links.TraceId": _list_of([[k.trace_id for k in ls] for ls in links], pa.string()),
        "Links.SpanId": _list_of([[k.span_id for k in ls] for ls in links], pa.string()),
        "Links.TraceState": _list_of([[k.trace_state for k in ls] for ls in links], pa.string()),
        "Links.Attributes": _list_of_maps([[k.attributes for k in ls] for ls in links]),
    }


def _metric_common(points: Sequence[Any], shared: SharedMaps) -> dict[str, Any]:
    streams = [p.stream for p in points]
    resources = [s.resource for s in streams]
    scopes = [s.scope for s in streams]
    return {
        "ResourceAttributes": shared(_distinct(resources)),
        "ResourceSchemaUrl": [r.schema_url for r in resources],
        "ScopeName": [s.name for s in scopes],
        "ScopeVersion": [s.version for s in scopes],
        "ScopeAttributes": shared(_distinct(scopes)),
        "ScopeDroppedAttrCount": [s.dropped_attributes_count for s in scopes],
        "ScopeSchemaUrl": [s.schema_url for s in scopes],
        "ServiceName": [r.service_name for r in resources],
        "MetricName": [s.name for s in streams],
        "MetricDescription": [s.description for s in streams],
        "MetricUnit": [s.unit for s in streams],
        "Attributes": _maps([p.attributes for p in points]),
        "StartTimeUnix": [p.start_ns for p in points],
        "TimeUnix": [p.time_ns for p in points],
        "Flags": [p.flags for p in points],
    }


def _exemplar_columns(points: Sequence[Any]) -> dict[str, Any]:
    ex: list[tuple[Exemplar, ...]] = [p.exemplars for p in points]
    return {
        "Exemplars.FilteredAttributes": _list_of_maps([[e.filtered_attributes for e in es] for es in ex]),
        "Exemplars.TimeUnix": _list_of([[e.time_ns for e in es] for es in ex], _TS),
        "Exemplars.Value": _list_of([[e.value for e in es] for es in ex], pa.float64()),
        "Exemplars.SpanId": _list_of([[e.span_id for e in es] for es in ex], pa.string()),
        "Exemplars.TraceId": _list_of([[e.trace_id for e in es] for es in ex], pa.string()),
    }


def _gauge_columns(points: Sequence[Any], shared: SharedMaps) -> dict[str, Any]:
    return {
        **_metric_common(points, shared),
        **_exemplar_columns(points),
        "Value": [p.value for p in points],
    }


def _sum_columns(points: Sequence[Any], shared: SharedMaps) -> dict[str, Any]:
    return {
        **_metric_common(points, shared),
        **_exemplar_columns(points),
        "Value": [p.value for p in points],
        "AggregationTemporality": [p.aggregation_temporality for p in points],
        "IsMonotonic": [p.is_monotonic for p in points],
    }


def _histogram_columns(points: Sequence[Any], shared: SharedMaps) -> dict[str, Any]:
    return {
        **_metric_common(points, shared),
        **_exemplar_columns(points),
        "Count": [p.count for p in points],
        "Sum": [p.sum for p in points],
        "BucketCounts": _list_of([p.bucket_counts for p in points], pa.uint64()),
        "ExplicitBounds": _list_of([p.explicit_bounds for p in points], pa.float64()),
        "Min": [p.min for p in points],
        "Max": [p.max for p in points],
        "AggregationTemporality": [p.aggregation_temporality for p in points],
    }


def _exp_histogram_columns(points: Sequence[Any], shared: SharedMaps) -> dict[str, Any]:
    return {
        **_metric_common(points, shared),
        **_exemplar_columns(points),
        "Count": [p.count for p in points],
        "Sum": [p.sum for p in points],
        "Scale": [p.scale for p in points],
        "ZeroCount": [p.zero_count for p in points],
        "PositiveOffset": [p.positive_offset for p in points],
        "PositiveBucketCounts": _list_of([p.positive_bucket_counts for p in points], pa.uint64()),
        "NegativeOffset": [p.negative_offset for p in points],
        "NegativeBucketCounts": _list_of([p.negative_bucket_counts for p in points], pa.uint64()),
        "Min": [p.min for p in points],
        "Max": [p.max for p in points],
        "AggregationTemporality": [p.aggregation_temporality for p in points],
    }


def _summary_columns(points: Sequence[Any], shared: SharedMaps) -> dict[str, Any]:
    return {
        **_metric_common(points, shared),
        "Count": [p.count for p in points],
        "Sum": [p.sum for p in points],
        "ValueAtQuantiles.Quantile": _list_of([p.quantiles for p in points], pa.float64()),
        "ValueAtQuantiles.Value": _list_of([p.quantile_values for p in points], pa.float64()),
    }


# --- koban's own tables ---------------------------------------------------------------

def events_to_arrow(events: Sequence[Any]) -> pa.Table:
    """The koban_events table of `events` (model.Event), columns in schema order. Raises
    what batch_to_arrow raises when a field does not fit its column."""
    columns = {
        "Timestamp": [e.timestamp_ns for e in events],
        "Title": [e.title for e in events],
        "Text": [e.text for e in events],
        "AlertType": [e.alert_type for e in events],
        "Priority": [e.priority for e in events],
        "Host": [e.host for e in events],
        "AggregationKey": [e.aggregation_key for e in events],
        "SourceType": [e.source_type for e in events],
        "ServiceName": [e.service_name for e in events],
        "Tags": _maps([e.tags for e in events]),
    }
    return _table(schema.EVENTS, columns)
