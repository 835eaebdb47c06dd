"""1-minute metric rollups kept by the DuckDB store (schema.ROLLUP_1M, schema.METRIC_SERIES).

Every minute before the *watermark* is rolled up: for each series of the gauge and sum
tables (schema.ROLLED_TABLES) one row per minute with the count, sum, min and max of
its values, and one row per series with its tags. A chart of 10,000 series over a day
then reads one row per series and minute, already unique, instead of grouping 14
million raw points by series and minute (the one step the query layer cannot make fast;
benchmarks/README.md, "Metric query").

A roll-up step moves the watermark forward by up to CHUNK_MINUTES: `plan` (under the
store's write lock) picks the minutes, `compute` reads them on a cursor of its own while
ingest goes on, `apply` (under the lock, in one transaction) stores the rows and the new
watermark. A point stored for a minute behind the watermark (a late sample, a backfill,
a WAL replay after an outage, or simply a point that landed while `compute` read) marks
its minute dirty in the transaction that stores it (`note_late`); a later step computes
that minute again from the raw points. So before the watermark the rollups always say
what the raw points say, and the query layer reads raw points only after it
(query/metric_series.py), or after the first dirty minute.

Functions here take the store's writer connection unless they say otherwise; the
caller holds the write lock and owns the transaction.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from koban.store import schema

MINUTE_NS = schema.ROLLUP_NS
CHUNK_MINUTES = 15
"""Minutes rolled per transaction while catching up: a large backlog (a server started
on a day of data) is worked off without holding the writer for seconds at a time."""
MAX_DIRTY_MINUTES = 240
"""Dirty minutes recomputed per roll_up call; more wait for the next call."""

STATE = "koban_metric_rollup_state"
DIRTY = "koban_metric_rollup_dirty"

_q = schema.quote_ident
_KEY = f"hash({', '.join(_q(c) for c in schema.SERIES_KEY_COLUMNS)})"
"""The series key, the same hash the query layer computes over raw points."""
_MINUTE = f"make_timestamp_ns(epoch_ns({_q('TimeUnix')}) // {MINUTE_NS} * {MINUTE_NS})"


def ddl() -> list[str]:
    """CREATE TABLE statements for the rollup tables and their bookkeeping."""
    tables = {schema.ROLLUP_1M: schema.ROLLUP_COLUMNS, schema.METRIC_SERIES: schema.SERIES_COLUMNS}
    statements = schema.duckdb_ddl(tables)
    statements.append(f"CREATE TABLE IF NOT EXISTS {STATE} (watermark_ns BIGINT NOT NULL)")
    # seq tells marks made while a roll-up step computes from those it computed
    statements.append(f"CREATE SEQUENCE IF NOT EXISTS {DIRTY}_seq")
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {DIRTY} (minute_ns BIGINT NOT NULL,"
        f" seq BIGINT NOT NULL DEFAULT nextval('{DIRTY}_seq'), marked_ns BIGINT NOT NULL DEFAULT 0)"
    )
    return statements


def open_watermark(con: duckdb.DuckDBPyConnection) -> int:
    """Create the tables when missing; the stored watermark (0: nothing rolled up yet)."""
    for statement in ddl():
        con.execute(statement)
    row = con.execute(f"SELECT max(watermark_ns) FROM {STATE}").fetchone()
    if row is None or row[0] is None:
        con.execute(f"INSERT INTO {STATE} VALUES (0)")
        return 0
    return int(row[0])


def note_late(con: duckdb.DuckDBPyConnection, watermark_ns: int, times: dict[str, list[pa.Array]]) -> int | None:
    """Mark dirty the minutes behind `watermark_ns` that a batch about to be stored adds
    points to (`times`: its point times by table name, timestamps or int64 ns), and
    return the first of them (None: none). Call inside the batch's transaction."""
    if watermark_ns <= 0:
        return None
    late: set[int] = set()
    for table in schema.ROLLED_TABLES:
        for column in times.get(table, ()):
            if len(column) == 0:
                continue
            ns = pc.cast(column, pa.int64())
            if pc.min(ns).as_py() >= watermark_ns:
                continue  # the usual case: nothing late
            behind = pc.filter(ns, pc.less(ns, watermark_ns))
            late.update(t // MINUTE_NS * MINUTE_NS for t in pc.unique(behind).to_pylist())
    mark_dirty(con, late)
    return min(late) if late else None


def exact_until(con: duckdb.DuckDBPyConnection, watermark_ns: int) -> int:
    """Where the rollups stop saying exactly what the raw points say: the watermark, or
    the first dirty minute before it."""
    row = con.execute(f"SELECT min(minute_ns) FROM {DIRTY}").fetchone()
    first_dirty = row[0] if row else None
    return watermark_ns if first_dirty is None else min(watermark_ns, int(first_dirty))


def mark_dirty(con: duckdb.DuckDBPyConnection, minutes: set[int]) -> None:
    if minutes:
        now = time.time_ns()
        con.executemany(
            f"INSERT INTO {DIRTY} (minute_ns, marked_ns) VALUES ($1, $2)", [(m, now) for m in sorted(minutes)]
        )


class Plan(NamedTuple):
    """What one roll-up step computes: the dirty minutes to compute again (marked up to
    `dirty_seq`), then the minutes from `watermark_ns` to `next_watermark_ns`."""

    dirty: tuple[int, ...]
    dirty_seq: int
    watermark_ns: int
    next_watermark_ns: int

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """[lo, hi) ranges of whole minutes to read, runs of dirty minutes merged."""
        out: list[tuple[int, int]] = []
        for m in self.dirty:
            if out and out[-1][1] == m:
                out[-1] = (out[-1][0], m + MINUTE_NS)
            else:
                out.append((m, m + MINUTE_NS))
        if self.next_watermark_ns > self.watermark_ns:
            out.append((self.watermark_ns, self.next_watermark_ns))
        return out

    @property
    def empty(self) -> bool:
        return not self.ranges


def plan(con: duckdb.DuckDBPyConnection, watermark_ns: int, target_ns: int, settle_ns: int = 0) -> Plan:
    """The next step towards `target_ns` (rounded down to a minute): up to
    MAX_DIRTY_MINUTES dirty minutes not marked in the last `settle_ns` (late points come
    in bursts, a backfill or a replay: a minute is computed again once they stop, not at
    every step), then up to CHUNK_MINUTES more minutes. Run it under the write lock, and
    from then on treat points before `next_watermark_ns` as late (note_late), so that
    what `compute` does not see is computed again later."""
    dirty = con.execute(
        f"SELECT minute_ns, max(seq) FROM {DIRTY} GROUP BY minute_ns HAVING max(marked_ns) <= $settled"
        f" ORDER BY minute_ns LIMIT {MAX_DIRTY_MINUTES}",
        {"settled": time.time_ns() - settle_ns},
    ).fetchall()
    target = target_ns // MINUTE_NS * MINUTE_NS
    start = watermark_ns or _first_minute(con, target)
    end = max(start, min(target, start + CHUNK_MINUTES * MINUTE_NS))
    seq = max((int(s) for _, s in dirty), default=0)
    return Plan(tuple(int(m) for m, _ in dirty), seq, start, end)


def compute(cur: duckdb.DuckDBPyConnection, step: Plan) -> pa.Table:
    """The rollup rows of `step`'s minutes, with the tags of each series, from the raw
    points: a read on its own cursor, so ingest goes on meanwhile."""
    parts = []
    for table, kind in schema.ROLLED_TABLES.items():
        for lo, hi in step.ranges:
            parts.append(cur.sql(
                f"SELECT $kind AS kind, {_q('MetricName')} AS name, {_KEY} AS sk, {_MINUTE} AS minute,"
                f" count(*) AS c, sum({_q('Value')}) AS total, min({_q('Value')}) AS lo, max({_q('Value')}) AS hi,"
                f" any_value({_q('ServiceName')}) AS svc, any_value({_q('Attributes')}) AS attrs,"
                f" any_value({_q('ResourceAttributes')}) AS res FROM {table}"
                f" WHERE {_q('TimeUnix')} >= make_timestamp_ns($lo) AND {_q('TimeUnix')} < make_timestamp_ns($hi)"
                f" AND {schema.ROLLED_ROWS[table]} GROUP BY {_q('MetricName')}, sk, minute",
                params={"kind": kind, "lo": lo, "hi": hi},
            ).to_arrow_table())  # fmt: skip
    return pa.concat_tables(parts) if parts else pa.table({})


_NEW = "koban_rollup_new"


def apply(con: duckdb.DuckDBPyConnection, step: Plan, rows: pa.Table) -> int:
    """Store `compute`'s rows for `step`: replace the dirty minutes' rollups, number the
    new series, move the watermark. Run it under the write lock, in a transaction.
    Returns the rollup rows written."""
    for m in step.dirty:
        con.execute(f"DELETE FROM {schema.ROLLUP_1M} WHERE {_q('TimeUnix')} = make_timestamp_ns($m)", {"m": m})
    written = 0
    if rows.num_rows:
        con.register(_NEW, rows)
        try:
            known = (
                f"s.{_q('MetricTable')} = n.kind AND s.{_q('MetricName')} = n.name AND s.{_q('SeriesKey')} = n.sk"
            )
            con.execute(
                f"INSERT INTO {schema.METRIC_SERIES} SELECT n.kind, n.name,"
                f" (SELECT coalesce(max({_q('SeriesId')}), 0) FROM {schema.METRIC_SERIES}) + row_number() OVER (),"
                f" n.sk, n.svc, n.attrs, n.res, n.first FROM ("
                f"SELECT kind, name, sk, any_value(svc) AS svc, any_value(attrs) AS attrs, any_value(res) AS res,"
                f" min(minute) AS first FROM {_NEW} GROUP BY kind, name, sk) n"
                f" WHERE NOT EXISTS (SELECT 1 FROM {schema.METRIC_SERIES} s WHERE {known})"
            )
            row = con.execute(
                f"INSERT INTO {schema.ROLLUP_1M} SELECT n.kind, n.name, s.{_q('SeriesId')}, n.minute, n.c,"
                f" n.total, n.lo, n.hi FROM {_NEW} n JOIN {schema.METRIC_SERIES} s ON {known}"
            ).fetchone()
            written = int(row[0]) if row else 0
        finally:
            con.unregister(_NEW)
    if step.dirty:
        con.execute(
            f"DELETE FROM {DIRTY} WHERE seq <= $seq AND minute_ns <= $last",
            {"seq": step.dirty_seq, "last": step.dirty[-1]},
        )
    con.execute(f"UPDATE {STATE} SET watermark_ns = $w", {"w": step.next_watermark_ns})
    return written


def _first_minute(con: duckdb.DuckDBPyConnection, target: int) -> int:
    """The first minute holding a rolled point, or `target` when no table has one."""
    firsts = [
        con.execute(f"SELECT min(epoch_ns({_q('TimeUnix')})) FROM {table}").fetchone()[0]
        for table in schema.ROLLED_TABLES
    ]
    known = [int(f) for f in firsts if f is not None]
    return min(min(known) // MINUTE_NS * MINUTE_NS, target) if known else target


def delete_older_than(con: duckdb.DuckDBPyConnection, watermark_ns: int, cutoff_ns: int) -> int:
    """Retention: drop rollup rows of minutes that end by `cutoff_ns`, and series left
    with none. The minute `cutoff_ns` falls inside lost its older points: it is marked
    dirty, so its rollup is computed again from what is left. Returns rows removed."""
    first_kept = cutoff_ns // MINUTE_NS * MINUTE_NS
    row = con.execute(
        f"DELETE FROM {schema.ROLLUP_1M} WHERE {_q('TimeUnix')} < make_timestamp_ns($m)", {"m": first_kept}
    ).fetchone()
    removed = int(row[0]) if row else 0
    if first_kept < cutoff_ns and first_kept < watermark_ns:
        mark_dirty(con, {first_kept})
    if removed:
        con.execute(
            f"DELETE FROM {schema.METRIC_SERIES} s WHERE NOT EXISTS (SELECT 1 FROM {schema.ROLLUP_1M} r"
            f" WHERE r.{_q('SeriesId')} = s.{_q('SeriesId')})"
        )
    return removed
