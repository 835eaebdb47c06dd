"""Search AST -> SQL: each construct's results on a real DuckDB, a few SQL shapes, and
hostile input. AST nodes are built directly (the parser is tested on its own)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from koban.query import ast
from koban.query.compile import LOGS, SPANS, compile_filter, describe, glob_to_like
from koban.query.dialects import CLICKHOUSE, DUCKDB, Statement, for_store
from koban.store.schema import quote_ident

ALL_LOGS = {
    "upstream timeout after 30s",
    "GET /home ok",
    "slow payment 50% of the time",
    "retrying_later",
    "disk full",
    "no level here",
    "Cache HIT for key",
    "Deploy Started",
    "TIMEOUT calling payments",
}


def bodies(store, node) -> set[str]:
    p = DUCKDB.new_params()
    where = compile_filter(node, LOGS, DUCKDB, p)
    result = store.query(f"SELECT {quote_ident('Body')} FROM {LOGS.table} WHERE {where}", p.values, timeout_s=10, max_rows=1000)
    return {r[0] for r in result.rows}


def span_names(store, node) -> set[str]:
    p = DUCKDB.new_params()
    where = compile_filter(node, SPANS, DUCKDB, p)
    result = store.query(
        f"SELECT DISTINCT {quote_ident('SpanName')} FROM {SPANS.table} WHERE {where}", p.values, timeout_s=10, max_rows=1000
    )
    return {r[0] for r in result.rows}


M, T = ast.Match, ast.Text

LOG_CASES = [
    ("empty query matches everything", ast.MatchAll(), ALL_LOGS),
    ("free text is a case-insensitive substring of the body", T("timeout"),
     {"upstream timeout after 30s", "TIMEOUT calling payments"}),
    ("a phrase is matched whole", T("calling payments", phrase=True), {"TIMEOUT calling payments"}),
    ("a wildcard word matches inside the body", T("ca*e", wildcard=True), {"Cache HIT for key", "TIMEOUT calling payments"}),
    ("a literal percent in free text is not a wildcard", T("50%"), {"slow payment 50% of the time"}),
    ("underscore in a wildcard word stays literal", T("ing_l*", wildcard=True), {"retrying_later"}),
    ("service is an exact column match", M("service", "web"),
     {"upstream timeout after 30s", "GET /home ok", "Cache HIT for key", "Deploy Started", "TIMEOUT calling payments"}),
    ("reserved names are case-insensitive", M("SERVICE", "checkout"), {"slow payment 50% of the time", "retrying_later"}),
    ("service wildcard", M("service", "pay*", wildcard=True), {"disk full", "no level here"}),
    ("host is the host.name resource attribute", M("host", "h2"), {"slow payment 50% of the time", "retrying_later"}),
    ("env reads deployment.environment.name", M("env", "prod"),
     {"upstream timeout after 30s", "GET /home ok", "Cache HIT for key", "Deploy Started", "TIMEOUT calling payments"}),
    ("env falls back to deployment.environment", M("env", "staging"), {"slow payment 50% of the time", "retrying_later"}),
    ("status:error matches text and number range and synonyms", M("status", "error"),
     {"upstream timeout after 30s", "TIMEOUT calling payments"}),
    ("status:warn matches number 13 and text WARNING", M("status", "warn"),
     {"slow payment 50% of the time", "retrying_later"}),
    ("level:info matches notice", M("level", "info"), {"GET /home ok", "Deploy Started"}),
    ("severity:fatal matches critical", M("severity", "FATAL"), {"disk full"}),
    ("level:debug matches text or number", M("level", "debug"), {"Cache HIT for key"}),
    ("an unknown level compares the text", M("status", "critical"), {"disk full"}),
    ("a level synonym matches the whole level", M("status", "notice"), {"GET /home ok", "Deploy Started"}),
    ("status wildcard matches level names", M("status", "err*", wildcard=True),
     {"upstream timeout after 30s", "TIMEOUT calling payments"}),
    ("trace_id is lower-cased", M("trace_id", "0AF7651916CD43DD8448EB211C80319C"), {"upstream timeout after 30s"}),
    ("trace_id exists", ast.Exists("trace_id"), {"upstream timeout after 30s", "TIMEOUT calling payments"}),
    ("body field is a case-insensitive contains", M("body", "HIT"), {"Cache HIT for key"}),
    ("message is body", M("message", "deploy"), {"Deploy Started"}),
    ("attribute equality", M("@user.id", "7"), {"upstream timeout after 30s"}),
    ("numeric attribute matches numerically", M("@http.status_code", "500"),
     {"upstream timeout after 30s", "slow payment 50% of the time"}),
    ("attribute falls back to the resource", M("@k8s.pod.name", "pay-1"), {"disk full", "no level here"}),
    ("attribute exists", ast.Exists("@user.id"), {"upstream timeout after 30s", "disk full"}),
    ("attribute wildcard", M("@http.status_code", "50*", wildcard=True),
     {"upstream timeout after 30s", "slow payment 50% of the time", "TIMEOUT calling payments"}),
    ("an unknown reserved name is an attribute", M("cache", "hit"), {"Cache HIT for key"}),
    ("attribute comparison is numeric", ast.Compare("@http.status_code", ">=", 500),
     {"upstream timeout after 30s", "slow payment 50% of the time", "TIMEOUT calling payments"}),
    ("inclusive range", ast.Range("@http.status_code", 200, 500),
     {"upstream timeout after 30s", "GET /home ok", "slow payment 50% of the time"}),
    ("exclusive range", ast.Range("@http.status_code", 200, 504, inclusive=False),
     {"upstream timeout after 30s", "slow payment 50% of the time"}),
    ("open range", ast.Range("@http.status_code", 501, None), {"TIMEOUT calling payments"}),
    ("negation keeps records without the attribute", ast.Not(M("@user.id", "7")), ALL_LOGS - {"upstream timeout after 30s"}),
    ("and", ast.And((M("service", "web"), T("timeout"))), {"upstream timeout after 30s", "TIMEOUT calling payments"}),
    ("or", ast.Or((M("service", "payments"), M("@cache", "hit"))), {"disk full", "no level here", "Cache HIT for key"}),
    ("not over or", ast.Not(ast.Or((M("service", "web"), M("service", "payments")))),
     {"slow payment 50% of the time", "retrying_later"}),
    ("negated exists keeps records without the field", ast.Not(ast.Exists("@http.status_code")),
     {"retrying_later", "disk full", "no level here", "Cache HIT for key", "Deploy Started"}),
]


@pytest.mark.parametrize("node, expected", [c[1:] for c in LOG_CASES], ids=[c[0] for c in LOG_CASES])
def test_log_search_constructs_select_the_right_records(store, node, expected):
    assert bodies(store, node) == expected


SPAN_CASES = [
    ("status:error is STATUS_CODE_ERROR", M("status", "error"), {"GET /a", "process order"}),
    ("status:ok", M("status", "ok"), {"GET /a"}),
    ("kind:server", M("kind", "server"), {"GET /a", "GET /b", "GET /checkout"}),
    ("kind wildcard picks enum names", M("kind", "c*", wildcard=True), {"SELECT carts", "process order"}),
    ("operation_name is the span name", M("operation_name", "render"), {"render"}),
    ("resource_name is the span name", M("resource_name", "GET /b"), {"GET /b"}),
    ("parent_id", M("parent_id", "A000000000000001"), {"render", "SELECT carts"}),
    ("@duration compares nanoseconds", ast.Compare("@duration", ">", 100_000_000), {"GET /b", "GET /checkout", "process order"}),
    ("@duration range", ast.Range("@duration", 10_000_000, 20_000_000), {"GET /a"}),
    ("span attributes", M("@http.status_code", "500"), {"GET /a"}),
    ("free text searches name and status message", T("refused"), {"GET /a"}),
    ("free text in the span name", T("carts"), {"SELECT carts"}),
    ("host from the resource", M("host", "h1"), {"GET /a", "GET /b", "GET /checkout", "render"}),
]


@pytest.mark.parametrize("node, expected", [c[1:] for c in SPAN_CASES], ids=[c[0] for c in SPAN_CASES])
def test_span_search_constructs_select_the_right_spans(store, node, expected):
    assert span_names(store, node) == expected


def test_values_are_bound_never_inlined():
    p = DUCKDB.new_params()
    sql = compile_filter(M("@user.id", "o'brien"), LOGS, DUCKDB, p)
    assert "o'brien" not in sql and "user.id" not in sql
    # LogAttributes is JSON text on DuckDB (looked up by JSON pointer), ResourceAttributes a MAP
    assert p.values == {"p0": "/user.id", "p1": "user.id", "p2": "o'brien"}
    assert sql == 'coalesce(coalesce(("LogAttributes" ->> $p0), "ResourceAttributes"[$p1]) = $p2, FALSE)'


def test_numeric_looking_attribute_value_adds_a_numeric_test():
    p = DUCKDB.new_params()
    sql = compile_filter(M("@http.status_code", "500"), LOGS, DUCKDB, p)
    assert "TRY_CAST(" in sql and " OR " in sql
    assert p.values["p3"] == 500.0


def test_clickhouse_filter_uses_typed_placeholders_and_null_safe_map_access():
    p = CLICKHOUSE.new_params()
    sql = compile_filter(ast.And((M("@user.id", "7"), T("time out", phrase=True))), LOGS, CLICKHOUSE, p)
    assert 'if(mapContains("LogAttributes", {p0:String}), "LogAttributes"[{p0:String}], NULL)' in sql
    assert "toFloat64OrNull(" in sql
    assert 'positionCaseInsensitiveUTF8("Body", {p3:String})' in sql
    assert "{p2:Float64}" in sql
    assert p.values == {"p0": "user.id", "p1": "7", "p2": 7.0, "p3": "time out"}


def test_clickhouse_wildcard_and_range_shapes():
    p = CLICKHOUSE.new_params()
    sql = compile_filter(ast.And((M("service", "web-*", wildcard=True), ast.Range("@duration", 1.0, None))), SPANS, CLICKHOUSE, p)
    assert 'like("ServiceName", {p0:String})' in sql
    assert '"Duration" >= {p1:Float64}' in sql
    assert p.values == {"p0": "web-%", "p1": 1.0}


@pytest.mark.parametrize(
    "glob, like",
    [("web-*", "web-%"), ("a?c", "a_c"), ("50%", "50\\%"), ("a_b*", "a\\_b%"), ("\\*x", "*x"), ("a\\\\b", "a\\\\b")],
)
def test_globs_become_like_patterns_with_user_wildcards_escaped(glob, like):
    assert glob_to_like(glob) == like


@pytest.mark.parametrize(
    "node, source, text",
    [
        (ast.And((M("service", "web"), T("timeout"))), LOGS, "service is web and body contains 'timeout'"),
        (ast.Or((M("status", "error"), ast.Exists("@user.id"))), LOGS, "status is error or @user.id exists"),
        (ast.Not(M("Host", "h1")), LOGS, "not host is h1"),
        (ast.Compare("@duration", ">", 250_000_000), SPANS, "@duration is above 250ms"),
        (ast.Range("@http.status_code", 500, 599), SPANS, "@http.status_code is between 500 and 599"),
        (ast.And((ast.Or((M("service", "a"), M("service", "b"))), T("x*", wildcard=True))), LOGS,
         "(service is a or service is b) and body matches 'x*'"),
        (M("service", "web-*", wildcard=True), LOGS, "service matches web-*"),
        (ast.MatchAll(), LOGS, "everything"),
    ],
)
def test_describe_reads_as_plain_english(node, source, text):
    assert describe(node, source) == text


def test_for_store_names_the_dialect_or_refuses():
    assert for_store("duckdb") is DUCKDB and for_store("clickhouse") is CLICKHOUSE
    with pytest.raises(ValueError, match="sqlite"):
        for_store("sqlite")


# --- hostile input -------------------------------------------------------------------

SENTINEL = "zqxj"  # never appears in koban's own SQL, so any hit is a leaked user string
hostile = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
user_text = st.builds(lambda a, b: a + SENTINEL + b, hostile, hostile)
field_name = st.one_of(
    st.sampled_from(["service", "HOST", "env", "status", "level", "trace_id", "kind", "name", "@duration", "body"]),
    user_text,
    user_text.map(lambda s: "@" + s),
)
number = st.floats(allow_nan=False, allow_infinity=False, width=32)
leaf = st.one_of(
    st.builds(ast.Text, user_text, st.booleans(), st.booleans()),
    st.builds(ast.Match, field_name, st.one_of(user_text, st.sampled_from(["error", "500", "web-*", "%_\\"])), st.booleans()),
    st.builds(ast.Exists, field_name),
    st.builds(ast.Compare, field_name, st.sampled_from([">", ">=", "<", "<="]), number),
    st.builds(ast.Range, field_name, st.none() | number, st.none() | number, st.booleans()),
)
tree = st.recursive(
    leaf,
    lambda kids: st.one_of(
        st.builds(ast.Not, kids),
        st.lists(kids, min_size=1, max_size=3).map(lambda c: ast.And(tuple(c))),
        st.lists(kids, min_size=1, max_size=3).map(lambda c: ast.Or(tuple(c))),
    ),
    max_leaves=6,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node=tree, spans=st.booleans())
def test_hostile_fields_and_values_only_reach_sql_as_parameters(store, node, spans):
    source = SPANS if spans else LOGS
    for dialect in (DUCKDB, CLICKHOUSE):
        p = dialect.new_params()
        sql = compile_filter(node, source, dialect, p)
        assert SENTINEL not in sql.lower()
    p = DUCKDB.new_params()
    where = compile_filter(node, source, DUCKDB, p)
    result = store.query(f"SELECT count(*) FROM {source.table} WHERE {where}", p.values, timeout_s=10, max_rows=1)
    assert 0 <= result.rows[0][0] <= 20


# --- the same searches on ClickHouse (chdb, optional) --------------------------------


def _clickhouse_matches(clickhouse, node, source, column):
    p = CLICKHOUSE.new_params()
    where = compile_filter(node, source, CLICKHOUSE, p)
    sql = f"SELECT DISTINCT {quote_ident(column)} AS v FROM {source.table} WHERE {where}"
    return {r[0] for r in clickhouse(Statement(sql, p.values)).rows}


@pytest.mark.parametrize("node, expected", [c[1:] for c in LOG_CASES], ids=[c[0] for c in LOG_CASES])
def test_log_search_constructs_select_the_same_records_on_clickhouse(clickhouse, node, expected):
    assert _clickhouse_matches(clickhouse, node, LOGS, "Body") == expected


@pytest.mark.parametrize("node, expected", [c[1:] for c in SPAN_CASES], ids=[c[0] for c in SPAN_CASES])
def test_span_search_constructs_select_the_same_spans_on_clickhouse(clickhouse, node, expected):
    assert _clickhouse_matches(clickhouse, node, SPANS, "SpanName") == expected
