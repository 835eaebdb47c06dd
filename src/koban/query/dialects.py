"""The SQL that differs between backends, in one object per backend.

The compiler and the reads build their SQL only through a `Dialect` and bind every value
through its `Params`, so no other module needs to know which engine it targets. Every
method returns SQL text made of our own fragments and the placeholders `Params.bind`
returned; none of them takes a user's string.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

from koban.store.schema import DUCKDB_JSON_MAPS, quote_ident


class Statement(NamedTuple):
    """A statement ready for `Store.query(sql, params, ...)`."""

    sql: str
    params: dict[str, Any]


class Params:
    """Collects bound values; `bind` returns the placeholder to put in the SQL text."""

    def __init__(self, placeholder: Callable[[str, Any], str]) -> None:
        self._placeholder = placeholder
        self._values: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self._values)}"
        self._values[name] = value
        return self._placeholder(name, value)

    @property
    def values(self) -> dict[str, Any]:
        return dict(self._values)


def _dollar_placeholder(name: str, value: Any) -> str:
    return f"${name}"


def _typed_brace_placeholder(name: str, value: Any) -> str:
    # ClickHouse server-side binding needs the type in the placeholder.
    return f"{{{name}:{_clickhouse_type(value)}}}"


def _clickhouse_type(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "Bool"
    if isinstance(value, int):
        return "Int64"
    if isinstance(value, float):
        return "Float64"
    if isinstance(value, str):
        return "String"
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "Array(String)"
    raise TypeError(f"cannot bind a {type(value).__name__} for ClickHouse")


def _quantile_literal(q: float) -> str:
    # q is always one of our constants, never user input; checked so it stays that way.
    if not (isinstance(q, float) and math.isfinite(q) and 0.0 <= q <= 1.0):
        raise ValueError(f"quantile must be a float in [0, 1], got {q!r}")
    return repr(q)


class Dialect:
    """SQL shared by DuckDB and ClickHouse; subclasses override what differs."""

    name = ""

    def new_params(self) -> Params:
        raise NotImplementedError

    # --- maps ---------------------------------------------------------------------
    def map_key(self, column: str, key: str) -> str:
        """What to bind to look `key` up in map column `column` (a bare name) with
        map_get / map_has: the key itself, unless the backend stores the column in
        another shape."""
        return key

    def map_get(self, col_sql: str, key: str) -> str:
        """The value under `key` (a placeholder) in a string map, NULL when missing."""
        raise NotImplementedError

    def map_has(self, col_sql: str, key: str) -> str:
        raise NotImplementedError

    # --- strings ------------------------------------------------------------------
    def lower(self, expr: str) -> str:
        return f"lower({expr})"

    def contains_ci(self, expr: str, needle: str) -> str:
        """Case-insensitive substring test."""
        raise NotImplementedError

    def like(self, expr: str, pattern: str, *, case_insensitive: bool = False) -> str:
        """LIKE where `pattern` uses `\\` to escape `%`, `_` and `\\`."""
        raise NotImplementedError

    def to_double(self, expr: str) -> str:
        """`expr` as a float, NULL when it does not parse."""
        raise NotImplementedError

    def to_float(self, expr: str) -> str:
        """A numeric column as a float (cannot fail)."""
        raise NotImplementedError

    def to_string(self, expr: str) -> str:
        raise NotImplementedError

    # --- time ---------------------------------------------------------------------
    def ts_from_ns(self, placeholder: str) -> str:
        """A timestamp (ns precision) from an integer of nanoseconds since the epoch."""
        raise NotImplementedError

    def ts_to_ns(self, col_sql: str) -> str:
        raise NotImplementedError

    def ts_list_to_ns(self, col_sql: str) -> str:
        """An array of timestamps as an array of integer nanoseconds."""
        raise NotImplementedError

    def int_div(self, a: str, b: str) -> str:
        """Integer division rounding toward zero (times here are never negative)."""
        raise NotImplementedError

    def row_hash(self, expr: str) -> str:
        """A deterministic 64-bit hash of any value (maps too), for stable tie-breaks."""
        raise NotImplementedError

    # --- aggregates ---------------------------------------------------------------
    def count_if(self, cond: str) -> str:
        raise NotImplementedError

    def quantile_if(self, expr: str, q: float, cond: str) -> str:
        """Exact quantile with linear interpolation (R-7, like statistics.quantiles
        method="inclusive") of `expr` over the rows where `cond` holds. Undefined (NULL
        or NaN, by engine) when no row does; callers check the count."""
        raise NotImplementedError

    # --- windows and arrays (metric queries) --------------------------------------
    def lag(self, expr: str, partition: str, order: str, *, array: bool = False) -> str:
        """The value of `expr` on the previous row of the same partition; NULL on a
        partition's first row (for arrays, where ClickHouse has no NULL: an empty array)."""
        raise NotImplementedError

    def unnest(self, expr: str) -> str:
        """One row per element of array `expr`, in the select list; no row for an empty one."""
        raise NotImplementedError

    def array_length(self, expr: str) -> str:
        raise NotImplementedError

    def to_bigint(self, expr: str) -> str:
        return f"CAST({expr} AS BIGINT)"

    def materialized_cte(self, name: str, sql: str) -> str:
        """A WITH entry computed once even when read twice (ClickHouse inlines CTEs
        anyway; DuckDB may otherwise plan the subquery twice)."""
        return f"{name} AS ({sql})"

    def map_keys(self, col_sql: str) -> str:
        """The keys of a string map as an array (in the same order as map_values)."""
        raise NotImplementedError

    def map_values(self, col_sql: str) -> str:
        raise NotImplementedError


class DuckDBDialect(Dialect):
    name = "duckdb"

    def new_params(self) -> Params:
        return Params(_dollar_placeholder)

    # Map columns the DuckDB store keeps as JSON object text (schema.DUCKDB_JSON_MAPS):
    # looked up with ->> and a JSON pointer, whose escaping keeps every key literal
    # (dots, quotes, a leading $ or /, the empty key).
    _json_maps = frozenset(quote_ident(c) for c in DUCKDB_JSON_MAPS.values())

    def map_key(self, column: str, key: str) -> str:
        if quote_ident(column) in self._json_maps:
            return "/" + key.replace("~", "~0").replace("/", "~1")
        return key

    def map_get(self, col_sql: str, key: str) -> str:
        if col_sql in self._json_maps:
            return f"({col_sql} ->> {key})"
        return f"{col_sql}[{key}]"

    def map_has(self, col_sql: str, key: str) -> str:
        if col_sql in self._json_maps:
            return f"json_exists({col_sql}, {key})"
        return f"map_contains({col_sql}, {key})"

    def contains_ci(self, expr: str, needle: str) -> str:
        return f"contains(lower({expr}), lower({needle}))"

    def like(self, expr: str, pattern: str, *, case_insensitive: bool = False) -> str:
        op = "ILIKE" if case_insensitive else "LIKE"
        # DuckDB has no default escape character; its string literals keep `\` as is.
        return f"({expr} {op} {pattern} ESCAPE '\\')"

    def to_double(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS DOUBLE)"

    def to_float(self, expr: str) -> str:
        return f"CAST({expr} AS DOUBLE)"

    def to_string(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def ts_from_ns(self, placeholder: str) -> str:
        return f"make_timestamp_ns(CAST({placeholder} AS BIGINT))"

    def ts_to_ns(self, col_sql: str) -> str:
        return f"epoch_ns({col_sql})"

    def ts_list_to_ns(self, col_sql: str) -> str:
        return f"list_transform({col_sql}, lambda t: epoch_ns(t))"

    def int_div(self, a: str, b: str) -> str:
        return f"({a} // {b})"

    def row_hash(self, expr: str) -> str:
        return f"hash({expr})"

    def count_if(self, cond: str) -> str:
        return f"count(*) FILTER (WHERE {cond})"

    def quantile_if(self, expr: str, q: float, cond: str) -> str:
        return f"quantile_cont({expr}, {_quantile_literal(q)}) FILTER (WHERE {cond})"

    def lag(self, expr: str, partition: str, order: str, *, array: bool = False) -> str:
        return f"lag({expr}) OVER (PARTITION BY {partition} ORDER BY {order})"

    def unnest(self, expr: str) -> str:
        return f"unnest({expr})"

    def array_length(self, expr: str) -> str:
        return f"len({expr})"

    def materialized_cte(self, name: str, sql: str) -> str:
        return f"{name} AS MATERIALIZED ({sql})"

    def map_keys(self, col_sql: str) -> str:
        return f"map_keys({col_sql})"

    def map_values(self, col_sql: str) -> str:
        return f"map_values({col_sql})"


class ClickHouseDialect(Dialect):
    name = "clickhouse"

    def new_params(self) -> Params:
        return Params(_typed_brace_placeholder)

    def map_get(self, col_sql: str, key: str) -> str:
        # m[k] is '' for a missing key in ClickHouse; absent must stay NULL.
        return f"if(mapContains({col_sql}, {key}), {col_sql}[{key}], NULL)"

    def map_has(self, col_sql: str, key: str) -> str:
        return f"mapContains({col_sql}, {key})"

    def contains_ci(self, expr: str, needle: str) -> str:
        return f"(positionCaseInsensitiveUTF8({expr}, {needle}) > 0)"

    def like(self, expr: str, pattern: str, *, case_insensitive: bool = False) -> str:
        # ClickHouse's LIKE always escapes with backslash.
        fn = "ilike" if case_insensitive else "like"
        return f"{fn}({expr}, {pattern})"

    def to_double(self, expr: str) -> str:
        return f"toFloat64OrNull(toString({expr}))"

    def to_float(self, expr: str) -> str:
        return f"toFloat64({expr})"

    def to_string(self, expr: str) -> str:
        return f"toString({expr})"

    def ts_from_ns(self, placeholder: str) -> str:
        return f"fromUnixTimestamp64Nano({placeholder})"

    def ts_to_ns(self, col_sql: str) -> str:
        return f"toUnixTimestamp64Nano({col_sql})"

    def ts_list_to_ns(self, col_sql: str) -> str:
        return f"arrayMap(t -> toUnixTimestamp64Nano(t), {col_sql})"

    def int_div(self, a: str, b: str) -> str:
        return f"intDiv({a}, {b})"

    def row_hash(self, expr: str) -> str:
        return f"cityHash64({expr})"

    def count_if(self, cond: str) -> str:
        return f"countIf({cond})"

    def quantile_if(self, expr: str, q: float, cond: str) -> str:
        return f"quantileExactInclusiveIf({_quantile_literal(q)})({expr}, {cond})"

    def lag(self, expr: str, partition: str, order: str, *, array: bool = False) -> str:
        # lagInFrame (any version) needs the frame; toNullable makes the first row NULL
        # instead of the type's default. Arrays cannot be Nullable: theirs is [].
        value = expr if array else f"toNullable({expr})"
        return (
            f"lagInFrame({value}) OVER (PARTITION BY {partition} ORDER BY {order}"
            " ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)"
        )

    def unnest(self, expr: str) -> str:
        return f"arrayJoin({expr})"

    def array_length(self, expr: str) -> str:
        return f"length({expr})"

    def map_keys(self, col_sql: str) -> str:
        return f"mapKeys({col_sql})"

    def map_values(self, col_sql: str) -> str:
        return f"mapValues({col_sql})"


DUCKDB = DuckDBDialect()
CLICKHOUSE = ClickHouseDialect()
_BY_NAME = {d.name: d for d in (DUCKDB, CLICKHOUSE)}


def for_store(name: str) -> Dialect:
    """The dialect of a store's `dialect` attribute. Raises ValueError for unknown names."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r}; expected one of {sorted(_BY_NAME)}") from None
