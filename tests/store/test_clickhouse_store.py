"""What only the ClickHouse store does: the exporter's DDL (single node and cluster),
insert deduplication across crashes and restarts, several koban instances in one
database, the URL setting, and error mapping. Store behaviour shared with DuckDB is in
tests/conformance/. Runs the real engine in-process (chdb) behind tests/chdb_http's
HTTP endpoint, so clickhouse-connect and the HTTP path are real."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chdb", reason="chdb (in-process ClickHouse) is not installed")
pytest.importorskip("clickhouse_connect", reason="clickhouse-connect (koban[clickhouse]) is not installed")

from chdb_http.engine import Engine  # noqa: E402
from chdb_http.server import ChdbHttpServer  # noqa: E402
from conformance import records  # noqa: E402
from koban.errors import ConfigError, QueryTimeout, StoreError  # noqa: E402
from koban.model import Batch  # noqa: E402
from koban.pipeline.buffer import IngestBuffer  # noqa: E402
from koban.pipeline.wal import WriteAheadLog  # noqa: E402
from koban.pipeline.writer import StoreWriter  # noqa: E402
from koban.settings import Settings  # noqa: E402
from koban.store import clickhouse_schema as chs  # noqa: E402
from koban.store import schema  # noqa: E402
from koban.store.clickhouse import ClickHouseStore, instance_id, parse_url  # noqa: E402
from koban.store.factory import open_store  # noqa: E402

NO_TTL = {"retention_logs_days": 0.0, "retention_spans_days": 0.0, "retention_metrics_days": 0.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbHttpServer]:
    engine = Engine(tmp_path_factory.mktemp("chdb") / "engine")
    srv = ChdbHttpServer(engine, user="koban", password="pw").start()
    yield srv
    srv.stop()
    engine.close()


@pytest.fixture
def database(server: ChdbHttpServer) -> Iterator[str]:
    name = f"koban_store_{uuid.uuid4().hex[:12]}"
    yield name
    server.fail_when = None
    conn = server.engine.connect()
    try:
        conn.query(f"DROP DATABASE IF EXISTS {name} SYNC", "TabSeparated")
    finally:
        conn.close()


def settings_for(server: ChdbHttpServer, database: str, data_dir: Path, **more: Any) -> Settings:
    return Settings(store="clickhouse", clickhouse_url=server.url(database), data_dir=str(data_dir),
                    **{**NO_TTL, **more})  # fmt: skip


def count(store: ClickHouseStore, table: str) -> int:
    return int(store.query(f"SELECT count() FROM {table}", {}, timeout_s=10, max_rows=1).rows[0][0])


# --- DDL ------------------------------------------------------------------------------


def test_single_node_tables_use_the_exporter_types_codecs_and_indexes():
    logs, traces = chs.table_ddl(chs.Layout("otel", retention_days={"logs": 7, "spans": 3, "metrics": 30}),
                                 schema.LOGS)[0], chs.table_ddl(chs.Layout("otel"), schema.TRACES)[0]  # fmt: skip
    assert logs.startswith("CREATE TABLE IF NOT EXISTS otel.otel_logs (")
    for line in (
        "Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1))",
        "ServiceName LowCardinality(String) CODEC(ZSTD(1))",
        "LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1))",
        "TimestampTime DateTime DEFAULT toDateTime(Timestamp)",
        "INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1",
        "INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8",
        "ENGINE = MergeTree\n",
        "PARTITION BY toDate(TimestampTime)",
        "ORDER BY (ServiceName, TimestampTime, Timestamp)",
        f"TTL TimestampTime + toIntervalSecond({7 * 86400})",
        "non_replicated_deduplication_window = 10000",
    ):
        assert line in logs
    assert "Events Nested(Timestamp DateTime64(9), Name LowCardinality(String)," in traces
    assert "ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))" in traces


def test_zero_retention_days_create_tables_without_ttl():
    assert "TTL" not in chs.table_ddl(chs.Layout("otel", retention_days={"logs": 0}), schema.LOGS)[0]


def test_cluster_mode_creates_replicated_local_tables_under_distributed_ones():
    statements = chs.ddl(chs.Layout("otel", "koban_cluster"))
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS otel ON CLUSTER koban_cluster"
    local, distributed = chs.table_ddl(chs.Layout("otel", "koban_cluster"), schema.TRACES)
    assert local.startswith("CREATE TABLE IF NOT EXISTS otel.otel_traces_local ON CLUSTER koban_cluster (")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/otel/otel_traces_local', '{replica}')" in local
    assert "non_replicated_deduplication_window" not in local
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS otel.otel_traces ON CLUSTER koban_cluster AS otel.otel_traces_local\n"
        "ENGINE = Distributed(koban_cluster, otel, otel_traces_local, cityHash64(TraceId))"
    )
    state = [s for s in statements if "koban_state" in s]
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/otel/koban_state_local', '{replica}', applied_lsn)" in state[0]
    assert "Distributed(koban_cluster, otel, koban_state_local, cityHash64(instance_id))" in state[1]


def test_inserts_go_through_distributed_tables_unless_told_to_use_the_local_ones():
    distributed, local = chs.Layout("otel", "koban"), chs.Layout("otel", "koban", insert_local=True)
    assert [distributed.insert_table(t) for t in (schema.LOGS, chs.STATE_TABLE)] == ["otel_logs", "koban_state"]
    assert [local.insert_table(t) for t in (schema.LOGS, chs.STATE_TABLE)] == ["otel_logs_local", "koban_state_local"]
    assert chs.Layout("otel", insert_local=True).insert_table(schema.LOGS) == "otel_logs"  # one node: no _local
    assert chs.ddl(local) == chs.ddl(distributed)  # the same tables either way


def test_the_insert_local_setting_reaches_the_store(server, database, tmp_path):
    store = ClickHouseStore.from_settings(settings_for(server, database, tmp_path, clickhouse_insert_local=True))
    try:
        assert store.layout.insert_local and store.layout.insert_table(schema.LOGS) == schema.LOGS
        store.write(Batch(logs=records.logs()), lsn=1)  # one node: the same tables as without it
        assert count(store, schema.LOGS) == 9
    finally:
        store.close()


def test_the_trace_id_lookup_table_of_the_exporter_is_created_on_a_cluster_too():
    statements = chs.ddl(chs.Layout("otel", "koban"))
    view = next(s for s in statements if "MATERIALIZED VIEW" in s)
    assert view.startswith("CREATE MATERIALIZED VIEW IF NOT EXISTS otel.otel_traces_trace_id_ts_mv ON CLUSTER koban"
                           " TO otel.otel_traces_trace_id_ts_local\n")  # fmt: skip
    assert "FROM otel.otel_traces_local\n" in view
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS otel.otel_traces_trace_id_ts ON CLUSTER koban AS") and
               "Distributed(koban, otel, otel_traces_trace_id_ts_local, cityHash64(TraceId))" in s
               for s in statements)  # fmt: skip


def test_the_trace_id_lookup_table_holds_each_traces_time_range_once(server, database, tmp_path):
    store = ClickHouseStore.from_settings(settings_for(server, database, tmp_path))
    server.fail_when = lambda sql: "koban_state" in sql and sql.lstrip().startswith("INSERT")
    with pytest.raises(StoreError):
        store.write(Batch(spans=records.spans()), lsn=1)
    server.fail_when = None
    store.write(Batch(spans=records.spans()), lsn=1)  # the retry: the view sees the spans once
    try:
        rows = store.query(f"SELECT TraceId, toUnixTimestamp(Start), toUnixTimestamp(End) FROM {chs.TRACE_ID_TS}"
                           " ORDER BY TraceId", {}, timeout_s=10, max_rows=100).rows  # fmt: skip
    finally:
        store.close()
    expected = {}
    for span in records.spans():
        if span.trace_id:
            first, last = expected.get(span.trace_id, (span.start_ns, span.start_ns))
            expected[span.trace_id] = (min(first, span.start_ns), max(last, span.start_ns))
    assert rows == [(t, lo // 10**9, hi // 10**9) for t, (lo, hi) in sorted(expected.items())]


def test_odd_names_are_quoted_in_ddl():
    assert chs.ddl(chs.Layout("my-db", "c 1"))[0] == "CREATE DATABASE IF NOT EXISTS `my-db` ON CLUSTER `c 1`"


def test_created_tables_have_every_column_of_the_shared_schema(server, database, tmp_path):
    store = ClickHouseStore.from_settings(settings_for(server, database, tmp_path))
    try:
        for table, columns in schema.TABLE_COLUMNS.items():
            described = store.query(f"DESCRIBE TABLE {table}", {}, timeout_s=10, max_rows=1000).rows
            names = [r[0] for r in described]
            assert names[: len(columns)] == [c for c, _ in columns], table
    finally:
        store.close()


# --- exactly once ---------------------------------------------------------------------


def test_a_write_retried_after_failing_half_way_stores_each_row_once(server, database, tmp_path):
    store = ClickHouseStore.from_settings(settings_for(server, database, tmp_path))
    server.fail_when = lambda sql: "koban_state" in sql and sql.lstrip().startswith("INSERT")
    with pytest.raises(StoreError) as err:
        store.write(records.everything(), lsn=5)  # every table inserted, the lsn not recorded
    assert not err.value.permanent
    assert store.applied_lsn() == 0 and count(store, schema.LOGS) == 9
    server.fail_when = None
    store.write(records.everything(), lsn=5)
    assert store.applied_lsn() == 5
    assert (count(store, schema.LOGS), count(store, schema.TRACES), count(store, schema.GAUGE)) == (9, 10, 1)
    store.close()


def test_a_replay_after_a_crash_before_the_lsn_was_recorded_stores_each_row_once(server, database, tmp_path):
    crashed = ClickHouseStore.from_settings(settings_for(server, database, tmp_path))
    server.fail_when = lambda sql: "koban_state" in sql and sql.lstrip().startswith("INSERT")
    with pytest.raises(StoreError):
        crashed.write(Batch(logs=records.logs()), lsn=3)
    server.fail_when = None
    # the process dies here; the next one (same data dir, same instance) replays lsn 3
    restarted = ClickHouseStore.from_settings(settings_for(server, database, tmp_path))
    assert restarted.instance == crashed.instance and restarted.applied_lsn() == 0
    restarted.write(Batch(logs=records.logs()), lsn=3)
    assert count(restarted, schema.LOGS) == 9 and restarted.applied_lsn() == 3
    crashed.close()
    restarted.close()


def pick_records(codec: str, payload: bytes, received_ns: int) -> Batch:
    """A test codec: a JSON list of indexes -> those log records and those spans."""
    picked = json.loads(payload)
    return Batch(logs=tuple(records.logs()[i] for i in picked), spans=tuple(records.spans()[i] for i in picked))


def test_a_replay_with_other_batch_limits_after_a_half_done_write_stores_each_row_once(server, database, tmp_path):
    settings = settings_for(server, database, tmp_path / "data")
    store = ClickHouseStore.from_settings(settings)
    wal = WriteAheadLog(tmp_path / "wal")
    for i in range(9):  # nine acknowledged requests of one log record and one span
        wal.append_blocking("test/records", json.dumps([i]).encode(), 1)
    writer = StoreWriter(store, IngestBuffer(1000), wal, pick_records, batch_max_records=100)
    server.fail_when = lambda sql: sql.lstrip().startswith("INSERT INTO") and "otel_traces" in sql
    with pytest.raises(StoreError):
        writer.replay()  # one write of lsn 1..9: the logs went in, the spans did not
    assert (count(store, schema.LOGS), count(store, schema.TRACES), store.applied_lsn()) == (9, 0, 0)
    server.fail_when = None
    wal.close()  # the process dies here
    store.close()

    store = ClickHouseStore.from_settings(settings)  # restarted, batching one request at a time
    wal = WriteAheadLog(tmp_path / "wal", min_lsn=store.applied_lsn())
    writer = StoreWriter(store, IngestBuffer(1000), wal, pick_records, batch_max_records=2)
    try:
        assert writer.replay() == 18
        assert (count(store, schema.LOGS), count(store, schema.TRACES), store.applied_lsn()) == (9, 9, 9)
    finally:
        wal.close()
        store.close()


def test_two_instances_in_one_database_keep_their_own_lsn_and_rows(server, database, tmp_path):
    a = ClickHouseStore.from_settings(settings_for(server, database, tmp_path / "a"))
    b = ClickHouseStore.from_settings(settings_for(server, database, tmp_path / "b"))
    assert a.instance != b.instance
    a.write(Batch(logs=records.logs()[:4]), lsn=1)
    b.write(Batch(logs=records.logs()[4:]), lsn=1)  # the same lsn, another WAL: not a repeat
    b.write(Batch(logs=records.logs()[4:]), lsn=2)
    assert (a.applied_lsn(), b.applied_lsn()) == (1, 2)
    assert count(a, schema.LOGS) == 4 + 5 + 5
    a.close()
    b.close()


def test_instance_id_is_created_once_and_kept_in_the_data_dir(tmp_path):
    first = instance_id(tmp_path / "data")
    assert first == instance_id(tmp_path / "data") == (tmp_path / "data" / "instance_id").read_text().strip()
    assert instance_id(tmp_path / "other") != first


# --- settings and errors -----------------------------------------------------------------


def test_the_url_gives_credentials_database_and_tls():
    assert parse_url("https://u%40x:p%3Aw@ch.example:9443/otel") == {
        "interface": "https", "host": "ch.example", "port": 9443, "username": "u@x", "password": "p:w",
        "database": "otel"}  # fmt: skip
    assert parse_url("http://ch")["port"] == 8123 and parse_url("http://ch")["database"] == "default"
    assert parse_url("https://ch/")["port"] == 8443


@pytest.mark.parametrize("url", ["ch:8123", "tcp://ch:9000/db", "http:///db", "http://ch:99999/db", "http://ch/a/b"])
def test_a_malformed_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="clickhouse_url"):
        parse_url(url)


def test_open_store_picks_clickhouse_by_setting(server, database, tmp_path):
    store = open_store(settings_for(server, database, tmp_path))
    try:
        assert isinstance(store, ClickHouseStore) and store.dialect == "clickhouse"
        assert store.database == database
    finally:
        store.close()


def test_a_wrong_password_is_a_store_error(server, database, tmp_path):
    bad = Settings(store="clickhouse", clickhouse_url=server.url(database, password="nope"), data_dir=str(tmp_path))
    with pytest.raises(StoreError, match="cannot connect"):
        ClickHouseStore.from_settings(bad)


def test_an_unreachable_server_is_a_transient_write_error(tmp_path, server):
    engine = server.engine
    lonely = ChdbHttpServer(engine).start()
    db = f"koban_store_{uuid.uuid4().hex[:12]}"
    store = ClickHouseStore.from_settings(
        Settings(store="clickhouse", clickhouse_url=lonely.url(db), data_dir=str(tmp_path), **NO_TTL))
    lonely.stop()
    with pytest.raises(StoreError) as err:
        store.write(Batch(logs=records.logs()), lsn=1)
    assert not err.value.permanent
    store.close()


def test_a_slow_query_is_cancelled_with_a_timeout(server, database, tmp_path):
    store = ClickHouseStore.from_settings(settings_for(server, database, tmp_path))
    with pytest.raises(QueryTimeout):
        store.query("SELECT sum(number) FROM numbers(100000000000)", {}, timeout_s=0.5, max_rows=1)
    store.close()


def test_queries_may_not_change_data(server, database, tmp_path):
    store = ClickHouseStore.from_settings(settings_for(server, database, tmp_path))
    store.write(Batch(logs=records.logs()), lsn=1)
    with pytest.raises(StoreError):
        store.query(f"TRUNCATE TABLE {schema.LOGS}", {}, timeout_s=10, max_rows=1)
    assert count(store, schema.LOGS) == 9
    store.close()


def test_the_scaling_guide_prints_the_ddl_koban_issues():
    guide = (Path(__file__).parents[2] / "docs" / "scaling.md").read_text()
    retention = {"logs": 15.0, "spans": 15.0, "metrics": 15.0}
    for layout in (chs.Layout("otel", "", retention), chs.Layout("otel", "koban", retention)):
        for statement in chs.ddl(layout):
            assert statement + ";" in guide, statement.splitlines()[0]
