"""Metric time series: a metric query compiled into SQL over the otel_metrics_* tables.

Semantics are Datadog's (docs/metrics.md, "Querying metrics"): a *series* is one
metric name + point attributes + service + resource attributes. Each series is first
rolled up into every interval bucket (time aggregation), then the rolled-up values of
the series in each `by` group are combined (space aggregation).

What a point contributes depends on the table the metric lives in (`MetricKind`):

- gauge (and a non-monotonic cumulative sum, an UpDownCounter): its value; rollup avg.
- delta sum (StatsD counters): its value is the increase; rollup sum (`as_count`).
- cumulative monotonic sum (Prometheus, OTLP counters): the increase over the series'
  previous point, from `lag()`; a value below the previous one is a reset and counts
  whole. A series' first point counts whole when the series started (StartTimeUnix)
  inside the look-back window, else it is only the baseline.
- histograms: bucket counts (increases, for cumulative ones) merged across series and
  time per bucket; percentiles read from the merged buckets in metric_result.py.
  Summaries: the increases of their count and sum only.

Every user value is a bound parameter; identifiers go through schema.quote_ident.
"""

from __future__ import annotations

from typing import NamedTuple

from koban.errors import BadRequest
from koban.query import ast
from koban.query.compile import Attribute, Column, Source, compile_filter, group_expr
from koban.query.dialects import Dialect, Params, Statement
from koban.query.metric_query import ROLLUPS, SPACE_AGGREGATIONS
from koban.store import schema

_ident = schema.quote_ident

TYPES = {
    schema.GAUGE: "gauge",
    schema.SUM: "sum",
    schema.HISTOGRAM: "histogram",
    schema.EXP_HISTOGRAM: "exponential_histogram",
    schema.SUMMARY: "summary",
}
MAX_SERIES = 20
LOOKBACK_NS = 10 * 60 * 1_000_000_000
"""How far before `from` cumulative series are read, to find each one's previous point."""
PERCENTILES = {f"p{n}": n / 100 for n in (50, 75, 90, 95, 99)}
_CUMULATIVE = 2  # OTLP AggregationTemporality


class MetricKind(NamedTuple):
    """Where a metric lives and how its points read. `also_in` names the other metric
    types holding the same name in the range (the one with most points wins)."""

    table: str
    cumulative: bool = False
    monotonic: bool = False
    also_in: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        return TYPES[self.table]

    @property
    def behaves(self) -> str:
        """gauge, counter or histogram: which compiler applies."""
        if self.table == schema.GAUGE or (self.table == schema.SUM and self.cumulative and not self.monotonic):
            return "gauge"
        if self.table == schema.SUM:
            return "counter"
        return "histogram"


class MetricSeriesQuery(NamedTuple):
    """A metric query over a time range. Times in ns, [start_ns, end_ns)."""

    metric: str
    filter: ast.Node
    start_ns: int
    end_ns: int
    interval_ns: int
    by: tuple[str, ...] = ()
    space: str | None = None
    rollup: str | None = None
    mode: str | None = None

    def resolved(self, kind: MetricKind) -> MetricSeriesQuery:
        """This query with the defaults of `kind` filled in: space sum for counters, avg
        otherwise; rollup avg for gauges, sum for counters; counters as counts."""
        gauge = kind.behaves == "gauge"
        return self._replace(
            space=self.space or ("sum" if kind.behaves == "counter" else "avg"),
            rollup=self.rollup or ("avg" if gauge else "sum"),
            mode=None if gauge else (self.mode or "count"),  # as_rate() on a gauge does nothing
        )


# --- fields --------------------------------------------------------------------------

_HOST = Attribute((("ResourceAttributes", "host.name"),))
_ENV = Attribute(
    (("ResourceAttributes", "deployment.environment.name"), ("ResourceAttributes", "deployment.environment"))
)


def metric_source(table: str) -> Source:
    """Tag keys of a metric table: service, host and env first, then a point attribute,
    then a resource attribute of the same key (docs/metrics.md, Querying metrics)."""
    return Source(
        table=table,
        fields={"service": Column("ServiceName"), "host": _HOST, "env": _ENV},
        attribute_maps=("Attributes", "ResourceAttributes"),
        text_columns=("MetricName",),
        text_label="metric name",
    )


# --- which table -----------------------------------------------------------------------


def compile_lookup(metric: str, start_ns: int, end_ns: int, dialect: Dialect) -> Statement:
    """(tbl, n, temporality, monotonic) per metric table holding `metric` in the range
    (widened by LOOKBACK_NS), for `choose_kind`."""
    p = dialect.new_params()
    parts = []
    # count(TimeUnix), not count(*): over DuckDB's gauge and sum views (store/duckdb_points.py)
    # count(*) carries the view's first column, a map, through the join (0.6 s a day of
    # 10,000 series, against 0.05 s)
    for table in TYPES:
        cols = {c for c, _ in schema.METRIC_COLUMNS[table]}
        temporality = "max(AggregationTemporality)" if "AggregationTemporality" in cols else "0"
        monotonic = f"max({dialect.to_float('IsMonotonic')})" if "IsMonotonic" in cols else "0"
        parts.append(
            f"SELECT {p.bind(table)} AS tbl, count({_ident('TimeUnix')}) AS n, {temporality} AS temporality,"
            f" {monotonic} AS monotonic FROM {table} WHERE {_where(p, dialect, metric, start_ns - LOOKBACK_NS, end_ns)}"
        )
    return Statement(" UNION ALL ".join(parts), p.values)


def choose_kind(rows: list[tuple]) -> MetricKind | None:
    """The table with the most points of the metric (ties: gauge, sum, histogram,
    exponential histogram, summary), or None when no table has any."""
    found = {str(r[0]): r for r in rows if r[1]}
    if not found:
        return None
    order = list(TYPES)
    best = max(found.values(), key=lambda r: (int(r[1]), -order.index(str(r[0]))))
    table = str(best[0])
    return MetricKind(
        table=table,
        # OTLP summaries are cumulative by definition (and Prometheus's _count/_sum)
        cumulative=int(best[2] or 0) == _CUMULATIVE or table == schema.SUMMARY,
        monotonic=bool(best[3]),
        also_in=tuple(TYPES[t] for t in order if t in found and t != table),
    )


def _where(p: Params, d: Dialect, metric: str, start_ns: int, end_ns: int) -> str:
    return f"{_ident('MetricName')} = {p.bind(metric)} AND {time_between(p, d, start_ns, end_ns)}"


def time_between(p: Params, d: Dialect, start_ns: int, end_ns: int) -> str:
    """`TimeUnix` in [start_ns, end_ns), the times bound as parameters."""
    t = _ident("TimeUnix")
    return f"{t} >= {d.ts_from_ns(p.bind(int(start_ns)))} AND {t} < {d.ts_from_ns(p.bind(int(end_ns)))}"


# --- compile -------------------------------------------------------------------------


def check_names(q: MetricSeriesQuery) -> None:
    """Raise BadRequest for an aggregation or rollup koban does not know (None: default)."""
    if q.space is not None and q.space not in SPACE_AGGREGATIONS:
        raise BadRequest(f"agg must be one of {', '.join(SPACE_AGGREGATIONS)}, got {q.space!r}", parameter="agg")
    if q.rollup is not None and q.rollup not in ROLLUPS:
        raise BadRequest(f"rollup must be one of {', '.join(ROLLUPS)}, got {q.rollup!r}", parameter="rollup")


def validate(q: MetricSeriesQuery, kind: MetricKind) -> None:
    """Raise BadRequest for unknown names and what the metric's type cannot answer;
    ValueError for a query whose defaults were not filled in (a caller's bug)."""
    check_names(q)
    if q.space is None or q.rollup is None:
        raise ValueError("compile a resolved query: MetricSeriesQuery.resolved(kind)")
    if kind.table == schema.SUMMARY and q.space not in ("count", "sum", "avg"):
        raise BadRequest(
            f"{q.space} is not available for a summary (its quantiles do not merge); use count, sum or avg",
            parameter="agg",
        )


def compile_metric_series(
    q: MetricSeriesQuery, kind: MetricKind, dialect: Dialect, rolled_until_ns: int | None = None
) -> Statement:
    """One statement for a resolved query (`q.resolved(kind)`). Rows, by kind:
    gauge/counter: (bucket, g0.., n, v); histogram percentiles: (bucket, g0.., ub, c)
    for explicit buckets or (bucket, g0.., scale, sign, cell, c, lo, hi) for
    exponential ones; other histogram aggregations: (bucket, g0.., n, cnt, total, lo, hi).
    Only the MAX_SERIES groups with the most weight are kept. `rolled_until_ns` is the
    store's rollup watermark (Store.metric_rollups_until_ns): the minutes before it are
    read from the 1-minute rollups where the query allows (see rolled_minutes), with
    the same result as from raw points. Raises BadRequest (validate)."""
    validate(q, kind)
    p = dialect.new_params()
    groups = [f"g{i}" for i in range(len(q.by))]
    rolled = rolled_minutes(q, kind, rolled_until_ns)
    if rolled is not None:
        base = _points(q, kind, dialect, p, groups, outside=rolled)
        sql = _rolled(q, kind, dialect, p, groups, rolled)
        return Statement(_top_groups(f"WITH pts AS ({base}) {sql}", groups, "n", dialect, p), p.values)
    base = _points(q, kind, dialect, p, groups)
    if kind.behaves == "gauge":
        sql, weight = _gauge(q, dialect, groups), "n"
    elif kind.behaves == "counter":
        sql, weight = _counter(q, kind, dialect, p, groups), "n"
    elif q.space in PERCENTILES:
        sql, weight = _histogram_cells(kind, dialect, p, groups, q), "c"
    else:
        sql, weight = _histogram_totals(kind, dialect, p, groups, q), "n"
    return Statement(_top_groups(f"WITH pts AS ({base}) {sql}", groups, weight, dialect, p), p.values)


def _points(
    q: MetricSeriesQuery, kind: MetricKind, d: Dialect, p: Params, groups: list[str],
    outside: tuple[int, int] | None = None,
) -> str:  # fmt: skip
    """The metric's points in range (from LOOKBACK_NS earlier for cumulative kinds),
    with their bucket, groups, series key (sk) and time t in ns; without those in
    [outside) when given (they are read from rollups)."""
    src = metric_source(kind.table)
    iv = p.bind(int(q.interval_ns))
    t = d.ts_to_ns(_ident("TimeUnix"))
    start = q.start_ns - (LOOKBACK_NS if kind.cumulative and kind.behaves != "gauge" else 0)
    group_cols = "".join(f", {group_expr(f, src, d, p)} AS {g}" for f, g in zip(q.by, groups))
    cols = {c for c, _ in schema.METRIC_COLUMNS[kind.table]}
    wanted = ("Value", "Count", "Sum", "Min", "Max", "BucketCounts", "ExplicitBounds", "Scale", "ZeroCount",
              "PositiveOffset", "PositiveBucketCounts", "NegativeOffset", "NegativeBucketCounts")  # fmt: skip
    values = "".join(f", {_ident(c)}" for c in wanted if c in cols)
    # one 64-bit hash names the series (both engines hash several arguments together);
    # the rollups name their series with the same hash (store/rollups.py)
    series = ", ".join(_ident(c) for c in schema.SERIES_KEY_COLUMNS)
    skip = f" AND NOT ({time_between(p, d, *outside)})" if outside is not None else ""
    return (
        f"SELECT {d.int_div(t, iv)} * {iv} AS bucket{group_cols}, {d.row_hash(series)} AS sk,"
        f" {t} AS t, {d.ts_to_ns(_ident('StartTimeUnix'))} AS st{values}"
        f" FROM {kind.table} WHERE {_where(p, d, q.metric, start, q.end_ns)}{skip}"
        f" AND {compile_filter(q.filter, src, d, p)}"
    )


def _keys(groups: list[str]) -> str:
    return ", ".join(["bucket", *groups])


_SQL_FN = {"avg": "avg", "sum": "sum", "min": "min", "max": "max", "count": "count"}


def _space(q: MetricSeriesQuery, d: Dialect, groups: list[str], source: str) -> str:
    """The space aggregation over the per-series values `sv` of `source`."""
    if q.space in PERCENTILES:
        agg = d.quantile_if("sv", PERCENTILES[q.space], "sv IS NOT NULL")
    else:
        agg = f"{_SQL_FN[q.space]}(sv)"
    # per-series values are `sv`: ClickHouse would read `v` inside the aggregate as this alias
    return f"SELECT {_keys(groups)}, count(sv) AS n, {agg} AS v FROM {source} GROUP BY {_keys(groups)}"


def _gauge(q: MetricSeriesQuery, d: Dialect, groups: list[str]) -> str:
    if q.space in PERCENTILES:  # the quantile of the values themselves
        agg = d.quantile_if("Value", PERCENTILES[q.space], "TRUE")
        return f"SELECT {_keys(groups)}, count(*) AS n, {agg} AS v FROM pts GROUP BY {_keys(groups)}"
    per_series = (
        f"SELECT {_keys(groups)}, sk, {_SQL_FN[q.rollup]}({d.to_float('Value')}) AS sv"
        f" FROM pts GROUP BY {_keys(groups)}, sk"
    )
    return f", per_series AS ({per_series}) {_space(q, d, groups, 'per_series')}"


def _increments(kind: MetricKind, d: Dialect, p: Params, q: MetricSeriesQuery,
                columns: dict[str, str], arrays: tuple[str, ...] = ()) -> str:  # fmt: skip
    """The points from `start_ns` on that add something, with `mode`: 1 = the point
    counts whole (a delta point, a reset, a series that started in the look-back
    window), 2 = minus the series' previous point (`prev_<name>` for each of `columns`
    and `arrays`). A cumulative series' first point with no known start is only a
    baseline and left out. The first of `columns` decides resets."""
    since = p.bind(int(q.start_ns))
    if not kind.cumulative:
        return f"SELECT *, 1 AS mode FROM pts WHERE t >= {since}"
    lags = [f"{d.lag(expr, 'sk', 't')} AS prev_{name}" for name, expr in columns.items()]
    lags += [f"{d.lag(_ident(a), 'sk', 't', array=True)} AS prev_{a}" for a in arrays]
    first, expr = next(iter(columns.items()))
    lookback_start = p.bind(int(q.start_ns - LOOKBACK_NS))
    mode = (
        f"CASE WHEN prev_{first} IS NULL THEN (CASE WHEN st >= {lookback_start} THEN 1 ELSE 0 END)"
        f" WHEN {expr} < prev_{first} THEN 1 ELSE 2 END"
    )
    return (
        f"SELECT * FROM (SELECT *, {mode} AS mode FROM (SELECT *, {', '.join(lags)} FROM pts) l) m"
        f" WHERE t >= {since} AND mode > 0"
    )


def _increase(kind: MetricKind, name: str, expr: str) -> str:
    """What a point adds to `name` (see _increments)."""
    return expr if not kind.cumulative else f"CASE WHEN mode = 1 THEN {expr} ELSE {expr} - prev_{name} END"


def _counter(q: MetricSeriesQuery, kind: MetricKind, d: Dialect, p: Params, groups: list[str]) -> str:
    value = d.to_float(_ident("Value"))
    incs = _increments(kind, d, p, q, {"v": value})
    per_series = (
        f"SELECT {_keys(groups)}, sk, {_SQL_FN[q.rollup]}({_increase(kind, 'v', value)}) AS sv"
        f" FROM ({incs}) x GROUP BY {_keys(groups)}, sk"
    )
    return f", per_series AS ({per_series}) {_space(q, d, groups, 'per_series')}"


def _histogram_totals(kind: MetricKind, d: Dialect, p: Params, groups: list[str], q: MetricSeriesQuery) -> str:
    count, total = d.to_float(_ident("Count")), d.to_float(_ident("Sum"))
    incs = _increments(kind, d, p, q, {"cnt": count, "total": total})
    has_min_max = kind.table != schema.SUMMARY
    lo_hi = f"min({_ident('Min')}) AS lo, max({_ident('Max')}) AS hi" if has_min_max else "NULL AS lo, NULL AS hi"
    return (
        f"SELECT {_keys(groups)}, count(*) AS n, sum({_increase(kind, 'cnt', count)}) AS cnt,"
        f" sum({_increase(kind, 'total', total)}) AS total, {lo_hi} FROM ({incs}) h GROUP BY {_keys(groups)}"
    )


def _histogram_cells(kind: MetricKind, d: Dialect, p: Params, groups: list[str], q: MetricSeriesQuery) -> str:
    keys = _keys(groups)
    if kind.table == schema.HISTOGRAM:
        counts, bounds = _ident("BucketCounts"), _ident("ExplicitBounds")
        incs = _increments(kind, d, p, q, {"cnt": d.to_float(_ident("Count"))}, ("BucketCounts",))
        cell = d.to_float(f"{counts}[i + 1]")
        if kind.cumulative:
            cell = f"CASE WHEN mode = 1 THEN {cell} ELSE {cell} - {d.to_float('prev_BucketCounts[i + 1]')} END"
        # the last bucket has no upper bound (+Inf): NULL
        ub = f"CASE WHEN i < {d.array_length(bounds)} THEN {bounds}[i + 1] END"
        exploded = f"SELECT *, {d.unnest(f'range({d.array_length(counts)})')} AS i FROM ({incs}) e"
        return (
            f"SELECT {keys}, ub, sum(cc) AS c FROM (SELECT {keys}, {ub} AS ub, {cell} AS cc FROM ({exploded}) x) y"
            f" GROUP BY {keys}, ub"
        )
    return _exp_cells(kind, d, p, groups, q)


_EXP_SIDES = ((1, "PositiveOffset", "PositiveBucketCounts"), (-1, "NegativeOffset", "NegativeBucketCounts"))


def _exp_cells(kind: MetricKind, d: Dialect, p: Params, groups: list[str], q: MetricSeriesQuery) -> str:
    """(bucket, groups, scale, sign, cell, c, lo, hi): exponential-histogram counts per
    cell at the coarsest scale of their bucket and group, so counts of different scales
    add up. A cumulative point adds its cells and, when it continues its series (mode
    2), subtracts its previous point's cells: downscaling only sums cells, so the
    difference comes out right at any common scale."""
    keys = _keys(groups)
    scalars = {"cnt": d.to_float(_ident("Count")), "zc": d.to_float(_ident("ZeroCount")), "sc": _ident("Scale"),
               "po": _ident("PositiveOffset"), "no": _ident("NegativeOffset")}  # fmt: skip
    arrays = tuple(counts for _, _, counts in _EXP_SIDES)
    incs = _increments(kind, d, p, q, scalars, arrays)
    lo_hi = f"{_ident('Min')} AS plo, {_ident('Max')} AS phi"
    # (scale, offsets by side, zero count, counts prefix, weight, rows it applies to)
    versions = [(_ident("Scale"), {"PositiveOffset": _ident("PositiveOffset"), "NegativeOffset": _ident("NegativeOffset")},
                 _ident("ZeroCount"), "", "1", "TRUE")]  # fmt: skip
    if kind.cumulative:
        versions.append(("prev_sc", {"PositiveOffset": "prev_po", "NegativeOffset": "prev_no"}, "prev_zc", "prev_",
                         "-1", "mode = 2"))  # fmt: skip
    sides = []
    for scale, offsets, zero, prefix, weight, when in versions:
        for sign, offset, counts in _EXP_SIDES:
            arr = f"{prefix}{counts}" if prefix else _ident(counts)
            exploded = f"SELECT *, {d.unnest(f'range({d.array_length(arr)})')} AS i FROM ({incs}) x WHERE {when}"
            sides.append(
                f"SELECT {keys}, {scale} AS sc, {sign} AS sign, {offsets[offset]} + i AS idx,"
                f" {weight} * {d.to_float(f'{arr}[i + 1]')} AS cc, {lo_hi} FROM ({exploded}) e"
            )
        sides.append(
            f"SELECT {keys}, {scale} AS sc, 0 AS sign, 0 AS idx, {weight} * {d.to_float(zero)} AS cc,"
            f" {lo_hi} FROM ({incs}) z WHERE {when}"
        )
    cells = " UNION ALL ".join(f"({s})" for s in sides)
    scaled = f"SELECT *, min(sc) OVER (PARTITION BY {keys}) AS scale FROM ({cells}) u"
    cell = d.to_bigint("floor(idx / pow(2, sc - scale))")
    return (
        f"SELECT {keys}, scale, sign, {cell} AS cell, sum(cc) AS c, min(plo) AS lo, max(phi) AS hi"
        f" FROM ({scaled}) s GROUP BY {keys}, scale, sign, cell"
    )


# --- from rollups -----------------------------------------------------------------------

MINUTE_NS = schema.ROLLUP_NS
# A rollup's value for one series in one bucket, from its minutes' (c, s, lo, hi):
# over several rows, or over the single row a 1-minute bucket has.
_ROLLUP_OVER_ROWS = {"avg": "sum(s) / sum(c)", "sum": "sum(s)", "min": "min(lo)", "max": "max(hi)", "count": "sum(c)"}
_ROLLUP_OF_ROW = {"avg": "s / c", "sum": "s", "min": "lo", "max": "hi", "count": "c"}


def rolled_minutes(q: MetricSeriesQuery, kind: MetricKind, rolled_until_ns: int | None) -> tuple[int, int] | None:
    """The whole minutes [a, b) of the query to read from rollups, or None to read raw
    points only: when nothing is rolled up in range, the interval is not whole minutes
    (a bucket would split a minute), the metric is a cumulative monotonic counter or a
    histogram (rollups keep no previous point and no buckets), or a gauge's percentile
    (taken over raw values)."""
    if q.interval_ns % MINUTE_NS:
        return None
    if kind.table not in schema.ROLLED_TABLES or kind.behaves == "histogram":
        return None
    if kind.behaves == "counter" and kind.cumulative:
        return None
    if kind.behaves == "gauge" and q.space in PERCENTILES:
        return None
    return rolled_span(q.start_ns, q.end_ns, rolled_until_ns)


def rolled_span(start_ns: int, end_ns: int, rolled_until_ns: int | None) -> tuple[int, int] | None:
    """The whole minutes [a, b) of [start_ns, end_ns) before `rolled_until_ns` (the
    store's rollup watermark), or None when there are none."""
    if not rolled_until_ns:
        return None
    a = -(-start_ns // MINUTE_NS) * MINUTE_NS
    b = min(rolled_until_ns, end_ns // MINUTE_NS * MINUTE_NS)
    return (a, b) if a < b else None


def _rolled(
    q: MetricSeriesQuery, kind: MetricKind, d: Dialect, p: Params, groups: list[str], rolled: tuple[int, int]
) -> str:
    """After `WITH pts AS (raw points outside `rolled`)`: per series and bucket the
    (c, s, lo, hi) of its rollup rows and of its raw points, the rollup function over
    them, then the space aggregation. The series' tags (filter and group-by) are read
    from the series table, once per series, not from every point."""
    src = metric_source(schema.METRIC_SERIES)
    table = p.bind(schema.ROLLED_TABLES[kind.table])
    metric = p.bind(q.metric)
    iv = p.bind(int(q.interval_ns))
    col = _ident
    group_cols = "".join(f", {group_expr(f, src, d, p)} AS {g}" for f, g in zip(q.by, groups))
    g_list = "".join(f", {g}" for g in groups)
    series = (
        f"SELECT {col('SeriesId')} AS sid, {col('SeriesKey')} AS sk{group_cols} FROM {schema.METRIC_SERIES}"
        f" WHERE {col('MetricTable')} = {table} AND {col('MetricName')} = {metric}"
        f" AND {compile_filter(q.filter, src, d, p)}"
    )
    from_rollups = (
        f"SELECT {d.int_div(d.ts_to_ns(col('TimeUnix')), iv)} * {iv} AS bucket{g_list}, sk,"
        f" {d.to_float(col('Count'))} AS c, {col('Sum')} AS s, {col('Min')} AS lo, {col('Max')} AS hi"
        f" FROM {schema.ROLLUP_1M} JOIN series ON {col('SeriesId')} = sid"
        f" WHERE {col('MetricTable')} = {table} AND {col('MetricName')} = {metric}"
        f" AND {time_between(p, d, *rolled)}"
    )
    value = d.to_float(col("Value"))
    from_points = (
        f"SELECT bucket{g_list}, sk, {d.to_float('count(*)')} AS c, sum({value}) AS s, min({value}) AS lo,"
        f" max({value}) AS hi FROM pts GROUP BY bucket{g_list}, sk"
    )
    if q.interval_ns == MINUTE_NS:
        # a series has one row per minute: rollup rows are unique, raw points were
        # grouped, and the two cover different minutes; no per-series grouping left
        per_series = f"SELECT bucket{g_list}, {_ROLLUP_OF_ROW[q.rollup]} AS sv FROM parts"
    else:
        per_series = (
            f"SELECT bucket{g_list}, sk, {_ROLLUP_OVER_ROWS[q.rollup]} AS sv FROM parts GROUP BY bucket{g_list}, sk"
        )
    return (
        f", {d.materialized_cte('series', series)}, parts AS ({from_rollups} UNION ALL {from_points}),"
        f" per_series AS ({per_series}) {_space(q, d, groups, 'per_series')}"
    )


def _top_groups(sql: str, groups: list[str], weight: str, d: Dialect, p: Params) -> str:
    """`sql`'s rows, only of the MAX_SERIES groups with the largest total `weight`
    (PARTITION BY keeps a missing tag, NULL, as one group), ordered by bucket."""
    if not groups:
        return f"{sql} ORDER BY bucket"
    group_list = ", ".join(groups)
    return (
        f"WITH {d.materialized_cte('result', sql)}"
        f" SELECT * FROM (SELECT *, dense_rank() OVER (ORDER BY group_total DESC, {group_list}) AS series_rank"
        f" FROM (SELECT *, sum({weight}) OVER (PARTITION BY {group_list}) AS group_total FROM result) t) k"
        f" WHERE series_rank <= {p.bind(MAX_SERIES)} ORDER BY bucket"
    )
