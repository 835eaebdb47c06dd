"""What metrics exist, and which tags they carry: the metric picker's two reads.

`names` lists metric names (one entry per name and type: a name held by two tables is
listed twice, once per type); `tags` lists, for one metric, the tag keys a user types
in filters (service, host, env, then point and resource attribute keys) with their
most common values, counted in series (distinct attribute sets), not points.
"""

from __future__ import annotations

from typing import Any

from koban.query.dialects import Dialect, Statement
from koban.query.metric_series import TYPES, rolled_span, time_between
from koban.store import schema
from koban.store.base import QueryResult

_ident = schema.quote_ident

MAX_TAG_VALUES = 20
"""Values listed per tag key (the most common first)."""
MAX_TAG_ROWS = 5000
RESOURCE_KEYS = {"host.name": "host", "deployment.environment": "env", "deployment.environment.name": "env"}
"""Resource attributes shown under the short key users filter by (compile.py's reserved
fields); `service.name` is left out, the `service` key covers it."""


def names(d: Dialect, text: str, start_ns: int, end_ns: int, limit: int) -> Statement:
    """(name, type, unit, description) of metrics with a point in the range whose name
    contains `text` (case-insensitive; "" for all), by name, at most `limit` rows."""
    p = d.new_params()
    name = _ident("MetricName")
    parts = []
    for table, kind in TYPES.items():
        match = f" AND {d.contains_ci(name, p.bind(text))}" if text else ""
        parts.append(
            f"SELECT {name} AS name, {p.bind(kind)} AS type, max({_ident('MetricUnit')}) AS unit,"
            f" max({_ident('MetricDescription')}) AS description FROM {table}"
            f" WHERE {time_between(p, d, start_ns, end_ns)}{match} GROUP BY {name}"
        )
    sql = f"SELECT * FROM ({' UNION ALL '.join(parts)}) m ORDER BY name, type LIMIT {p.bind(int(limit))}"
    return Statement(sql, p.values)


def names_result(result: QueryResult) -> dict[str, Any]:
    """{"metrics": [{"name", "type", "unit", "description"}]}."""
    rows = [dict(zip(result.columns, r)) for r in result.rows]
    return {
        "metrics": [
            {"name": r["name"], "type": r["type"], "unit": r["unit"] or "", "description": r["description"] or ""}
            for r in rows
        ]
    }


def _entries(d: Dialect, column: str, key_sql: str) -> str:
    """(k, v) rows, one per entry of map `column` of the series CTE; `key_sql` maps
    the raw key `rk` to the key shown (NULL drops it)."""
    col = _ident(column)
    keys, values = d.map_keys(col), d.map_values(col)
    exploded = f"SELECT *, {d.unnest(f'range({d.array_length(keys)})')} AS i FROM series"
    return f"SELECT {key_sql} AS k, v FROM (SELECT {keys}[i + 1] AS rk, {values}[i + 1] AS v FROM ({exploded}) e) x"


def tags(d: Dialect, metric: str, start_ns: int, end_ns: int, rolled_until_ns: int | None = None) -> Statement:
    """(k, v, n) rows: for each tag key of `metric`'s series in the range, its
    MAX_TAG_VALUES most common values with the number of series carrying them.
    `rolled_until_ns` is the store's rollup watermark: the series of the rolled minutes
    are read from the series table (by the ids in the rollups), not from every point."""
    p = d.new_params()
    cols = ", ".join(_ident(c) for c in schema.SERIES_KEY_COLUMNS)
    rolled = rolled_span(start_ns, end_ns, rolled_until_ns)
    parts = []
    for table in TYPES:
        skip = ""
        if rolled is not None and table in schema.ROLLED_TABLES:
            skip = f" AND NOT ({time_between(p, d, *rolled)} AND {schema.ROLLED_ROWS[table]})"
        parts.append(
            f"SELECT DISTINCT {cols} FROM {table} WHERE {_ident('MetricName')} = {p.bind(metric)}"
            f" AND {time_between(p, d, start_ns, end_ns)}{skip}"
        )
    if rolled is not None:
        ids = (
            f"SELECT DISTINCT {_ident('SeriesId')} FROM {schema.ROLLUP_1M} WHERE {_ident('MetricName')} ="
            f" {p.bind(metric)} AND {time_between(p, d, *rolled)}"
        )
        parts.append(f"SELECT {cols} FROM {schema.METRIC_SERIES} WHERE {_ident('SeriesId')} IN ({ids})")
    # a series read from both the rollups and the raw points is one series
    series = f"SELECT DISTINCT * FROM ({' UNION ALL '.join(parts)}) u"
    resource_key = (
        "CASE "
        + " ".join(f"WHEN rk = {p.bind(raw)} THEN {p.bind(short)}" for raw, short in RESOURCE_KEYS.items())
        + f" WHEN rk = {p.bind('service.name')} THEN NULL ELSE rk END"
    )
    kv = " UNION ALL ".join([
        f"SELECT {p.bind('service')} AS k, {_ident('ServiceName')} AS v FROM series",
        _entries(d, "Attributes", "rk"),
        _entries(d, "ResourceAttributes", resource_key),
    ])  # fmt: skip
    sql = (
        f"WITH series AS ({series}), kv AS ({kv}),"
        " counted AS (SELECT k, v, count(*) AS n FROM kv WHERE k IS NOT NULL AND v IS NOT NULL GROUP BY k, v),"
        " ranked AS (SELECT *, row_number() OVER (PARTITION BY k ORDER BY n DESC, v) AS rn FROM counted)"
        f" SELECT k, v, n FROM ranked WHERE rn <= {p.bind(MAX_TAG_VALUES)} ORDER BY k, n DESC, v"
    )
    return Statement(sql, p.values)


def tags_result(result: QueryResult) -> dict[str, Any]:
    """{"tags": {key: [value, ...]}}: keys sorted, values most common first."""
    out: dict[str, list[str]] = {}
    for k, v, _ in result.rows:
        values = out.setdefault(str(k), [])
        if str(v) not in values:  # a key may come from a point and a resource attribute
            values.append(str(v))
    return {"tags": dict(sorted(out.items()))}
