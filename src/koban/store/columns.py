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

import pyarrow as pa

from koban.model import Batch, Exemplar, LogColumns, LogRecord, Resource, Scope
from koban.store import schema

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
    for table, records, build in (
        (schema.TRACES, batch.spans, _span_columns),
        (schema.GAUGE, batch.gauges, _gauge_columns),
        (schema.SUM, batch.sums, _sum_columns),
        (schema.HISTOGRAM, batch.histograms, _histogram_columns),
        (schema.EXP_HISTOGRAM, batch.exp_histograms, _exp_histogram_columns),
        (schema.SUMMARY, batch.summaries, _summary_columns),
    ):
        if records:
            out[table] = _table(table, build(records, shared))
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
    ids = list(map(id, owners))
    by_id = dict(zip(ids, owners))  # the owners list keeps every id alive and unique
    if len(by_id) == len(ids):
        return _Owners(list(owners), None)
    position = {i: n for n, i in enumerate(by_id)}
    return _Owners(list(by_id.values()), pa.array(list(map(position.__getitem__, ids)), type=pa.int32()))


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
