"""The embedded store: one DuckDB database file, one writer connection, a cursor per read.

Writes come from the pipeline's single writer thread; each batch is appended together
with its WAL sequence number (LSN) in one transaction, so a crash between the two cannot
happen and WAL replay after a restart stores every batch exactly once. Reads run on their
own cursors (DuckDB cursors are independent connections to the same database), so a slow
query never holds up ingest and MVCC gives it a consistent snapshot.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from koban.errors import QueryTimeout, StoreError
from koban.model import Batch
from koban.store import duckdb_points, rollups, schema
from koban.store.base import QueryResult, TableUsage
from koban.store.columns import batch_to_arrow, prepared_by_table
from koban.store.json_maps import maps_to_json

# DuckDB-only bookkeeping: ClickHouse deduplicates by insert token instead.
STATE_TABLE = "koban_state"
_STATE_DDL = f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (applied_lsn BIGINT NOT NULL)"

# Statement types a read may be; anything else from the query layer is a bug, and
# refusing it keeps such a bug from changing data.
_READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})

# What DuckDB raises during an insert when a value cannot go into its column (a number
# out of range, a map with a duplicate key): the same batch fails the same way every
# time, so these make a permanent StoreError. Anything else (I/O, out of memory, a
# transaction conflict) may pass and stays retryable.
_DATA_ERRORS = (
    duckdb.ConversionException,
    duckdb.ConstraintException,
    duckdb.OutOfRangeException,
    duckdb.InvalidInputException,
)


_TRIM_TO = "8MB"
"""What trim_memory lowers DuckDB's limit to for a moment: the cache it leaves behind.
(Much lower and DuckDB cannot allocate what the SET itself needs.)"""


class DuckDBStore:
    """koban.store.base.Store over an embedded DuckDB database."""

    dialect = "duckdb"

    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit: str = "512MB",
        threads: int | None = None,
        checkpoint_threshold: str = "64MB",
    ) -> None:
        """Open (or create) the database at `path`, a file path or ":memory:", and every
        table. Raises StoreError when the file cannot be opened (e.g. another process
        holds it) or a setting is refused."""
        self._path = None if str(path) == ":memory:" else Path(path)
        self._memory_limit = memory_limit  # named in the error of a query that needs more
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        # Without a limit DuckDB takes 80% of RAM; the process has other work to do.
        # Small commits go through DuckDB's own WAL and are compressed into the file at
        # each checkpoint; checkpointing every 64MB of WAL instead of DuckDB's 16MB
        # made 10k-log batches 10-40% cheaper (fewer, larger checkpoints).
        config: dict[str, Any] = {
            "memory_limit": memory_limit,
            "checkpoint_threshold": checkpoint_threshold,
            # koban always orders its reads; not keeping insertion order lets DuckDB
            # scan and insert in parallel with less memory.
            "preserve_insertion_order": False,
        }
        if threads is not None:
            config["threads"] = threads
        try:
            # The root connection only hands out cursors; the writer is one of them.
            self._db = duckdb.connect(str(path), config=config)
        except duckdb.Error as e:
            raise StoreError(f"cannot open DuckDB database {path}: {e}", path=str(path)) from e
        try:
            self._writer = self._db.cursor()
            plain = {t: c for t, c in schema.ALL_TABLE_COLUMNS.items() if t not in duckdb_points.VIEWED}
            for ddl in schema.duckdb_ddl(plain):
                self._writer.execute(ddl)
            duckdb_points.open_tables(self._writer)
            _json_maps_from_maps(self._writer)
            self._writer.execute(_STATE_DDL)
            self._rollup_watermark = rollups.open_watermark(self._writer)
            self._rollups_exact_until = rollups.exact_until(self._writer, self._rollup_watermark)
            row = self._writer.execute(f"SELECT max(applied_lsn) FROM {STATE_TABLE}").fetchone()
            if row is None or row[0] is None:
                self._writer.execute(f"INSERT INTO {STATE_TABLE} VALUES (0)")
                self._applied_lsn = 0
            else:
                self._applied_lsn = int(row[0])
        except duckdb.Error as e:
            self._db.close()
            raise StoreError(f"cannot create koban's tables in {path}: {e}", path=str(path)) from e
        self._write_lock = threading.Lock()
        self._cursor_lock = threading.Lock()
        self._closed = False
        # idle memory trim (trim_memory): reads in flight, a trim in progress, last use
        self._reads = threading.Condition()
        self._active_reads = 0
        self._trimming = False
        self._last_used = time.monotonic()

    # --- writes ---------------------------------------------------------------------

    def write(self, batch: Batch, lsn: int) -> None:
        """Append `batch` and record `lsn` as applied, in one transaction. Does nothing
        when `lsn` is not above applied_lsn() (a WAL replay); an empty batch only moves
        applied_lsn. Raises StoreError, with nothing applied: `permanent` when a record
        does not fit its column (retrying cannot help), not permanent when DuckDB fails
        otherwise (I/O, memory, a closed store)."""
        if lsn <= self._applied_lsn:
            return
        try:
            # per-series points (remote write) go to the narrow tables, the rest as rows
            prepared = prepared_by_table(batch.metric_columns)
            tables = _with_json_maps(batch_to_arrow(batch._replace(metric_columns=()), dictionary_maps=True))
        except MemoryError as e:  # pyarrow's ArrowMemoryError is also an ArrowException
            raise StoreError(f"out of memory converting the batch at LSN {lsn}", lsn=lsn) from e
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            raise StoreError(f"batch at LSN {lsn} does not fit the schema: {e}", lsn=lsn, permanent=True) from e
        with self._write_lock:
            self._check_open()
            if lsn <= self._applied_lsn:
                return
            con = self._writer
            try:
                con.begin()
                for table, data in tables.items():
                    # Positional insert: batch_to_arrow yields the columns in table order.
                    con.from_arrow(data).insert_into(duckdb_points.rows_table(table))
                narrow_times = duckdb_points.write(con, prepared)
                first_late = rollups.note_late(con, self._rollup_watermark, _point_times(tables, narrow_times))
                con.execute(f"UPDATE {STATE_TABLE} SET applied_lsn = $lsn", {"lsn": lsn})
                con.commit()
                if first_late is not None:  # queries read that minute raw until it is rolled again
                    self._rollups_exact_until = min(self._rollups_exact_until, first_late)
            except _DATA_ERRORS as e:
                _rollback(con)
                raise StoreError(f"batch at LSN {lsn} does not fit the schema: {e}", lsn=lsn, permanent=True) from e
            except duckdb.Error as e:
                _rollback(con)
                raise StoreError(f"DuckDB write failed at LSN {lsn}: {e}", lsn=lsn) from e
            except MemoryError as e:
                _rollback(con)
                raise StoreError(f"out of memory storing the batch at LSN {lsn}", lsn=lsn) from e
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:  # the narrow points' Arrow work
                _rollback(con)
                raise StoreError(f"batch at LSN {lsn} does not fit the schema: {e}", lsn=lsn, permanent=True) from e
            except BaseException:
                _rollback(con)  # never leave the writer inside a transaction
                raise
            self._applied_lsn = lsn
            self._last_used = time.monotonic()

    def applied_lsn(self) -> int:
        """The highest LSN whose batch is stored; 0 when none is."""
        return self._applied_lsn

    def delete_older_than(self, signal: str, cutoff_ns: int) -> int:
        """Remove `signal` rows whose time is before `cutoff_ns`; returns how many.
        Raises ValueError for an unknown signal, StoreError when DuckDB fails."""
        tables = schema.SIGNAL_TABLES.get(signal)
        if tables is None:
            raise ValueError(f"unknown signal {signal!r}; expected one of {sorted(schema.SIGNAL_TABLES)}")
        removed = 0
        with self._write_lock:
            self._check_open()
            con = self._writer
            try:
                con.begin()
                for table in tables:
                    column = schema.quote_ident(schema.TIME_COLUMN[table])
                    row = con.execute(
                        f"DELETE FROM {duckdb_points.rows_table(table)} WHERE {column} < make_timestamp_ns($cutoff)",
                        {"cutoff": cutoff_ns},
                    ).fetchone()
                    removed += int(row[0]) if row else 0
                if signal == "metrics":
                    removed += duckdb_points.delete_older_than(con, cutoff_ns)
                    rollups.delete_older_than(con, self._rollup_watermark, cutoff_ns)
                    exact_until = rollups.exact_until(con, self._rollup_watermark)
                con.commit()
                if signal == "metrics":
                    self._rollups_exact_until = exact_until
            except duckdb.Error as e:
                _rollback(con)
                raise StoreError(f"DuckDB retention of {signal} failed: {e}", signal=signal) from e
            except BaseException:
                _rollback(con)
                raise
        return removed

    # --- metric rollups (store/rollups.py) ---------------------------------------------

    def roll_up_metrics(self, until_ns: int, *, settle_s: float = 0.0, max_steps: int = 1000) -> int:
        """Roll up metric points of every minute before `until_ns` (and the dirty minutes
        behind the watermark), one step at a time (store/rollups.py): the raw points are
        read outside the write lock, so ingest waits only while a step's rows are
        stored. Dirty minutes wait until no point has marked them for `settle_s`.
        Returns the rollup rows written. Raises StoreError when DuckDB fails."""
        written = 0
        for _ in range(max_steps):
            with self._write_lock:
                self._check_open()
                before = self._rollup_watermark
                try:
                    step = rollups.plan(self._writer, before, until_ns, int(settle_s * 1e9))
                except duckdb.Error as e:
                    raise StoreError(f"DuckDB metric rollup failed: {e}") from e
                if step.empty and step.next_watermark_ns == before:
                    break
                # from here on, points for these minutes are late (note_late)
                self._rollup_watermark = step.next_watermark_ns
            try:
                rows = self._compute_rollups(step)
                written += self._apply_rollups(step, rows)
            except BaseException:
                with self._write_lock:
                    self._rollup_watermark = before  # the stored watermark did not move
                raise
        return written

    def _compute_rollups(self, step: rollups.Plan) -> pa.Table:
        cur = self._cursor()
        try:
            return rollups.compute(cur, step)
        except duckdb.Error as e:
            raise StoreError(f"DuckDB metric rollup failed: {e}") from e
        finally:
            cur.close()

    def _apply_rollups(self, step: rollups.Plan, rows: pa.Table) -> int:
        with self._write_lock:
            self._check_open()
            con = self._writer
            try:
                con.begin()
                written = rollups.apply(con, step, rows)
                exact_until = rollups.exact_until(con, step.next_watermark_ns)
                con.commit()
            except duckdb.Error as e:
                _rollback(con)
                raise StoreError(f"DuckDB metric rollup failed: {e}") from e
            except BaseException:
                _rollback(con)
                raise
            self._rollups_exact_until = exact_until
            return written

    def metric_rollups_until_ns(self) -> int | None:
        """Every metric minute before this time is in the rollup tables, exactly as the
        raw points have it (a minute with late points counts from when they are stored
        until it is rolled again); None when nothing is rolled up yet."""
        return self._rollups_exact_until or None

    # --- reads ----------------------------------------------------------------------

    def query(self, sql: str, params: dict[str, Any], *, timeout_s: float, max_rows: int) -> QueryResult:
        """Run one read-only statement with `$name` params bound from `params`; at most
        `max_rows` rows come back. Raises QueryTimeout when it runs past `timeout_s`
        (it is interrupted), StoreError for any other failure, including SQL DuckDB
        rejects and statements that are not reads (both are koban bugs, not the client's)."""
        with self._reads:
            self._reads.wait_for(lambda: not self._trimming)
            self._active_reads += 1
        try:
            return self._query(sql, params, timeout_s=timeout_s, max_rows=max_rows)
        finally:
            with self._reads:
                self._active_reads -= 1
                self._last_used = time.monotonic()

    def _query(self, sql: str, params: dict[str, Any], *, timeout_s: float, max_rows: int) -> QueryResult:
        cur = self._cursor()
        timed_out = threading.Event()

        def interrupt() -> None:
            timed_out.set()
            try:
                cur.interrupt()
            except duckdb.Error:
                pass  # the query finished and its cursor closed in the meantime

        timer = threading.Timer(timeout_s, interrupt)
        timer.daemon = True
        try:
            statements = cur.extract_statements(sql)
            if len(statements) != 1 or statements[0].type not in _READ_STATEMENTS:
                raise StoreError("the store runs exactly one read-only statement per query", sql=sql)
            timer.start()
            cur.execute(sql, params or None)
            if cur.description is None:
                return QueryResult([], [])
            columns = [d[0] for d in cur.description]
            # The result streams, so fetching a few rows does not compute them all.
            rows = cur.fetchmany(max_rows)
            return QueryResult(columns, rows)
        except duckdb.OutOfMemoryException as e:
            # the query fails, the server and the other queries carry on
            raise StoreError(
                f"the query needs more memory than the store's budget of {self._memory_limit} "
                "(duckdb_memory_limit); narrow the time range or the search",
                budget=self._memory_limit,
            ) from e
        except duckdb.Error as e:
            if timed_out.is_set():
                raise QueryTimeout(f"query cancelled after {timeout_s:g} s", timeout_s=timeout_s) from e
            raise StoreError(f"DuckDB query failed: {e}", sql=sql) from e
        finally:
            timer.cancel()
            if timer.is_alive():
                timer.join()  # so no interrupt lands after the cursor is closed
            cur.close()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._cursor_lock:
            self._check_open()
            try:
                return self._db.cursor()
            except duckdb.Error as e:
                raise StoreError(f"cannot open a DuckDB cursor: {e}") from e

    # --- housekeeping ---------------------------------------------------------------

    def trim_memory(self, idle_for_s: float) -> bool:
        """When nothing has read or written for `idle_for_s` seconds, give back the
        memory DuckDB keeps after queries (cached table blocks, allocator caches):
        DuckDB only evicts under pressure, so its limit is lowered for a moment. Reads
        wait for the few milliseconds it takes. Returns whether it trimmed."""
        with self._reads:
            if self._active_reads or time.monotonic() - self._last_used < idle_for_s:
                return False
            self._trimming = True
        try:
            with self._write_lock:
                self._check_open()
                self._writer.execute(f"SET memory_limit = '{_TRIM_TO}'")
                # the setting's own value, which duckdb.connect already accepted
                self._writer.execute(f"SET memory_limit = '{self._memory_limit}'")
            return True
        except duckdb.Error:
            return False  # a read or write that needs the memory will still get it
        finally:
            with self._reads:
                self._trimming = False
                self._reads.notify_all()

    def disk_bytes(self) -> int:
        """Size of the database file plus its write-ahead log; 0 for ":memory:"."""
        if self._path is None:
            return 0
        total = 0
        for p in (self._path, self._path.with_name(self._path.name + ".wal")):
            try:
                total += os.path.getsize(p)
            except FileNotFoundError:
                pass
        return total

    def usage(self) -> dict[str, TableUsage]:
        """Each table's blocks in the file (block size x distinct blocks it uses) plus
        its share of the WAL (by rows not yet checkpointed), the rows those hold
        (deleted ones stay in a row group until DuckDB rewrites it) and its live rows.
        Raises StoreError when DuckDB fails."""
        cur = self._cursor()
        try:
            block_size = int(cur.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0])
            measured = {}
            for table in (*schema.ALL_TABLE_COLUMNS, *schema.DERIVED_TABLES):
                # a view's tables count as the view (duckdb_points.py)
                parts = [_storage(cur, t) for t in duckdb_points.physical_tables(table)]
                blocks, stored, unsaved, live = (sum(column) for column in zip(*parts))
                measured[table] = (blocks * block_size, stored, unsaved, live)
        except duckdb.Error as e:
            raise StoreError(f"DuckDB storage statistics failed: {e}") from e
        finally:
            cur.close()
        wal = self._wal_bytes()
        unsaved_total = sum(m[2] for m in measured.values())
        return {
            table: TableUsage(
                size + (wal * unsaved // unsaved_total if unsaved_total else 0), stored, live
            )
            for table, (size, stored, unsaved, live) in measured.items()
        }

    def _wal_bytes(self) -> int:
        if self._path is None:
            return 0
        try:
            return os.path.getsize(self._path.with_name(self._path.name + ".wal"))
        except FileNotFoundError:
            return 0

    def close(self) -> None:
        """Close every connection (DuckDB checkpoints on close). Calling it again does nothing."""
        with self._write_lock, self._cursor_lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
            self._db.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")


def _storage(cur: duckdb.DuckDBPyConnection, table: str) -> tuple[int, int, int, int]:
    """Blocks in the file, rows they hold, rows not yet checkpointed, live rows of `table`."""
    # `table` is one of our own names, never a client's; storage_info takes it as a string
    blocks, stored, unsaved = cur.execute(
        "SELECT count(DISTINCT block_id) FILTER (WHERE persistent),"
        " coalesce(sum(count) FILTER (WHERE column_path = '[0]'), 0),"
        " coalesce(sum(count) FILTER (WHERE column_path = '[0]' AND NOT persistent), 0)"
        " FROM pragma_storage_info($t)",
        {"t": table},
    ).fetchone()
    live = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return int(blocks), int(stored), int(unsaved), int(live)


def _point_times(tables: dict[str, pa.Table], narrow: dict[str, pa.Array]) -> dict[str, list[pa.Array]]:
    """The point times of a batch by table: its rows' and its narrow points'."""
    times: dict[str, list[pa.Array]] = {}
    for table in schema.METRIC_TABLES:
        found = [tables[table].column("TimeUnix")] if table in tables else []
        if table in narrow:
            found.append(narrow[table])
        if found:
            times[table] = found
    return times


def _with_json_maps(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """`tables` with the map columns this store keeps as JSON (schema.DUCKDB_JSON_MAPS)
    turned into JSON text."""
    for table, column in schema.DUCKDB_JSON_MAPS.items():
        data = tables.get(table)
        if data is not None:
            i = data.schema.get_field_index(column)
            tables[table] = data.set_column(i, column, maps_to_json(data.column(i)))
    return tables


def _json_maps_from_maps(con: duckdb.DuckDBPyConnection) -> None:
    """A database written before schema.DUCKDB_JSON_MAPS existed (every map column a
    MAP) has those columns converted once, in place, when it is opened."""
    for table, column in schema.DUCKDB_JSON_MAPS.items():
        row = con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = $t AND column_name = $c",
            {"t": table, "c": column},
        ).fetchone()
        if row is not None and str(row[0]).upper().startswith("MAP"):
            name = schema.quote_ident(column)
            con.execute(f"ALTER TABLE {table} ALTER {name} SET DATA TYPE JSON USING to_json({name})")


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    # The failed statement may already have ended the transaction; rollback then fails
    # with "no transaction is active", which changes nothing worth reporting.
    try:
        con.rollback()
    except duckdb.Error:
        pass
