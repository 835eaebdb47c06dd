"""Log attributes kept as JSON text by the DuckDB store (schema.DUCKDB_JSON_MAPS):
the Arrow conversion, lookups through the DuckDB dialect, and the one-time migration
of a database whose column is still a MAP."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koban.model import Batch, LogRecord, Resource, Scope
from koban.query import ast
from koban.query.compile import LOGS, SPANS, compile_filter
from koban.query.dialects import DuckDBDialect
from koban.store import schema
from koban.store.duckdb import DuckDBStore
from koban.store.json_maps import maps_to_json

MAP_TYPE = pa.map_(pa.string(), pa.string())
# keys and values with everything JSON escapes or a path language might read:
# quotes, backslashes, control characters, dots, slashes, tildes, $, non-ASCII
TRICKY = st.text(alphabet=st.sampled_from('ab."\\/~$[]*\x00\x01\n\t\x1fé😀 '), max_size=8)
MAPS = st.lists(st.dictionaries(TRICKY, TRICKY, max_size=5), max_size=20)


def as_arrow(maps: list[dict[str, str] | None]) -> pa.Array:
    return pa.array([None if m is None else list(m.items()) for m in maps], MAP_TYPE)


@settings(max_examples=300, deadline=None)
@given(MAPS, st.integers(0, 5))
def test_every_map_becomes_the_json_object_of_its_pairs(maps, cut):
    arrow = as_arrow(maps)
    # a sliced array reads its own part of the shared children
    for array in (arrow, arrow.slice(min(cut, len(maps)))):
        texts = maps_to_json(array).to_pylist()
        assert [json.loads(t) for t in texts] == [dict(m or []) for m in array.to_pylist()]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(TRICKY, TRICKY, min_size=1, max_size=4), min_size=1, max_size=5))
def test_duckdb_reads_every_value_back_by_its_key(maps):
    # what the store relies on: DuckDB accepts each text as JSON, and the dialect's
    # lookup of each key (a JSON pointer) gives back its value
    con = duckdb.connect()
    d = DuckDBDialect()
    for text, m in zip(maps_to_json(as_arrow(maps)).to_pylist(), maps):
        for key, value in m.items():
            pointer = d.map_key("LogAttributes", key)
            sql = "SELECT $j::JSON ->> $k, json_exists($j::JSON, $k)"
            assert con.execute(sql, {"j": text, "k": pointer}).fetchone() == (value, True), (text, key)


def test_empty_null_and_chunked_maps():
    chunked = pa.chunked_array([as_arrow([{"a": "1"}, None]), as_arrow([{}, {"b": 'x"y'}])])
    assert maps_to_json(chunked).to_pylist() == ['{"a":"1"}', "{}", "{}", '{"b":"x\\"y"}']
    assert maps_to_json(as_arrow([])).to_pylist() == []


def test_chunks_are_combined_in_groups_with_the_same_result(monkeypatch):
    import koban.store.json_maps as json_maps

    chunks = [as_arrow([{"k": str(i), "q": 'a"b'}, {}] * 3).slice(1) for i in range(5)]
    whole = maps_to_json(pa.chunked_array(chunks)).to_pylist()
    monkeypatch.setattr(json_maps, "_GROUP_BYTES", chunks[0].nbytes * 2)  # groups of two chunks
    assert len(json_maps._combined(chunks)) == 3
    assert maps_to_json(pa.chunked_array(chunks)).to_pylist() == whole
    assert [json.loads(t) for t in whole] == [dict(m or []) for c in chunks for m in c.to_pylist()]


def _record(attributes: dict[str, str], i: int = 0) -> LogRecord:
    return LogRecord(
        1_700_000_000_000_000_000 + i, 0, "", "", 0, "INFO", 9, f"r{i}", attributes,
        Resource("web", {"service.name": "web"}), Scope(),
    )  # fmt: skip


KEYS = ["http.status_code", "a/b", "t~x", "$x", "/lead", 'q"k', "back\\slash", "", "ünï", "*", "[0]"]


def test_every_key_is_found_as_written_through_the_dialect():
    store = DuckDBStore(":memory:", threads=1)
    try:
        store.write(Batch(logs=[_record({k: f"v{i}" for i, k in enumerate(KEYS)})]), lsn=1)
        d = DuckDBDialect()
        for i, key in enumerate(KEYS):
            p = d.new_params()
            bound = p.bind(d.map_key("LogAttributes", key))
            col = schema.quote_ident("LogAttributes")
            sql = f"SELECT {d.map_get(col, bound)}, {d.map_has(col, bound)} FROM otel_logs"
            assert store.query(sql, p.values, timeout_s=5, max_rows=1).rows == [(f"v{i}", True)], key
            p = d.new_params()
            missing = p.bind(d.map_key("LogAttributes", key + "-missing"))
            sql = f"SELECT {d.map_get(col, missing)}, {d.map_has(col, missing)} FROM otel_logs"
            assert store.query(sql, p.values, timeout_s=5, max_rows=1).rows == [(None, False)], key
    finally:
        store.close()


def test_search_matches_and_groups_on_json_attributes():
    store = DuckDBStore(":memory:", threads=1)
    try:
        records = [_record({"http.status_code": str(s)}, i) for i, s in enumerate((200, 503, 500))]
        store.write(Batch(logs=records), lsn=1)
        d = DuckDBDialect()
        p = d.new_params()
        where = compile_filter(ast.Range("@http.status_code", 500.0, 599.0), LOGS, d, p)
        sql = f'SELECT "Body" FROM otel_logs WHERE {where} ORDER BY 1'
        result = store.query(sql, p.values, timeout_s=5, max_rows=9)
        assert result.rows == [("r1",), ("r2",)]
    finally:
        store.close()


def test_a_database_with_map_columns_is_converted_when_opened(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for ddl in schema.duckdb_ddl():  # as koban made them before DUCKDB_JSON_MAPS
        con.execute(ddl.replace(" JSON", " MAP(VARCHAR, VARCHAR)"))
    con.execute(
        'INSERT INTO otel_logs ("Timestamp", "Body", "LogAttributes") VALUES '
        "(now(), 'old', MAP {'user.id': 'u1', 'a/b': 'x'}), (now(), 'none', NULL), (now(), 'empty', MAP {})"
    )
    con.execute(
        'INSERT INTO otel_traces ("Timestamp", "SpanName", "SpanAttributes") VALUES '
        "(now(), 'GET /', MAP {'http.route': '/'})"
    )
    con.close()

    store = DuckDBStore(path, threads=1)
    try:
        for table, column in schema.DUCKDB_JSON_MAPS.items():
            kind = store.query(
                "SELECT data_type FROM information_schema.columns WHERE table_name = $t AND column_name = $c",
                {"t": table, "c": column}, timeout_s=5, max_rows=1,
            ).rows[0][0]
            assert kind == "JSON", table
        got = store.query('SELECT "Body", "LogAttributes" FROM otel_logs ORDER BY 1', {}, timeout_s=5, max_rows=9).rows
        assert [(b, None if a is None else json.loads(a)) for b, a in got] == [
            ("empty", {}), ("none", None), ("old", {"user.id": "u1", "a/b": "x"})
        ]
        got = store.query('SELECT "SpanAttributes" FROM otel_traces', {}, timeout_s=5, max_rows=9).rows
        assert [json.loads(a) for (a,) in got] == [{"http.route": "/"}]
        store.write(Batch(logs=[_record({"user.id": "u2"})]), lsn=1)  # new rows go in as before
        d = DuckDBDialect()
        p = d.new_params()
        where = compile_filter(ast.Match("@user.id", "u1"), LOGS, d, p)
        assert store.query(f'SELECT "Body" FROM otel_logs WHERE {where}', p.values, timeout_s=5, max_rows=9).rows == [
            ("old",)
        ]
        p = d.new_params()
        where = compile_filter(ast.Match("@http.route", "/"), SPANS, d, p)
        assert store.query(f'SELECT "SpanName" FROM otel_traces WHERE {where}', p.values, timeout_s=5,
                           max_rows=9).rows == [("GET /",)]
    finally:
        store.close()


@pytest.mark.parametrize("bad", ['{"a":', "not json"])
def test_the_column_refuses_text_that_is_not_json(bad):
    # the type is JSON, not VARCHAR: a conversion bug fails the batch loudly (quarantine)
    # instead of storing text that every later query would trip over
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a JSON)")
    with pytest.raises(duckdb.Error):
        con.execute("INSERT INTO t SELECT * FROM (SELECT ?::VARCHAR)", [bad])
