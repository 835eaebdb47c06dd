"""The time-series IR: statements run on a real DuckDB over tests/query's known records,
shaped into /api/timeseries JSON; and the endpoint itself through the real app."""

from __future__ import annotations

import anyio
import httpx
import pytest

from koban.errors import BadRequest
from koban.model import Batch, Resource
from koban.query import ast
from koban.query.dialects import CLICKHOUSE, DUCKDB
from koban.query.parse import parse
from koban.query.timeseries import MAX_SERIES, SeriesQuery, compile_series, series_result, split_by
from koban.store.duckdb import DuckDBStore

S = 1_000_000_000
MINUTE = 60 * S
EMPTY7 = [None] * 7


def series(fx, store, source, agg, q="", by=(), start=None, end=None, interval=MINUTE):
    query = SeriesQuery(source, parse(q), fx.START if start is None else start, fx.END if end is None else end,
                        interval, agg, tuple(by))  # fmt: skip
    return series_result(fx.run(store, compile_series(query, DUCKDB)), query)


def approx(expected):
    """`expected` with each number compared approximately and None exactly."""
    return [None if v is None else pytest.approx(v, rel=1e-9) for v in expected]


def values(out):
    """{label values: [point values]} of a result."""
    return {tuple(s["labels"].values()): [v for _, v in s["points"]] for s in out["series"]}


# --- one value per bucket: the ten minutes of fixture data in 1-minute buckets ----------

# Logs per minute: 5, 2, 2 records; errors (ERROR, CRITICAL | none | Err): 2, 0, 1.
# Spans per minute: 5 (10 20 35e 40 250 ms), 3 (3 80 120 ms), 0, 2 (100 300e ms).
EXPECTED = [
    ("logs", "count", [5, 2, 2] + [0] * 7),
    ("logs", "errors", [2, 0, 1] + [0] * 7),
    ("logs", "error_rate", [0.4, 0.0, 0.5] + EMPTY7),
    ("logs", "rate", [5 / 60, 2 / 60, 2 / 60] + [0] * 7),
    ("spans", "count", [5, 3, 0, 2] + [0] * 6),
    ("spans", "errors", [1, 0, 0, 1] + [0] * 6),
    ("spans", "error_rate", [0.2, 0.0, None, 0.5] + [None] * 6),
    ("spans", "rate", [5 / 60, 3 / 60, 0, 2 / 60] + [0] * 6),
    # R-7 (linear interpolation) quantiles, in ms
    ("spans", "p50", [35.0, 80.0, None, 200.0] + [None] * 6),
    ("spans", "p75", [40.0, 100.0, None, 250.0] + [None] * 6),
    ("spans", "p90", [166.0, 112.0, None, 280.0] + [None] * 6),
    ("spans", "p95", [208.0, 116.0, None, 290.0] + [None] * 6),
    ("spans", "p99", [241.6, 119.2, None, 298.0] + [None] * 6),
    ("spans", "avg", [71.0, 203 / 3, None, 200.0] + [None] * 6),
    ("spans", "max", [250.0, 120.0, None, 300.0] + [None] * 6),
    ("spans", "min", [10.0, 3.0, None, 100.0] + [None] * 6),
]


@pytest.mark.parametrize(("source", "agg", "expected"), EXPECTED, ids=[f"{s}-{a}" for s, a, _ in EXPECTED])
def test_each_aggregation_gives_known_values_for_every_bucket(fx, store, source, agg, expected):
    out = series(fx, store, source, agg)
    assert [s["labels"] for s in out["series"]] == [{}]
    assert values(out)[()] == approx(expected)


def test_counts_stay_integers_and_the_response_has_the_api_shape(fx, store):
    out = series(fx, store, "logs", "count")
    assert {k: v for k, v in out.items() if k != "series"} == {
        "source": "logs", "agg": "count", "interval_ms": 60_000,
        "from_ms": fx.START // 1_000_000, "to_ms": fx.END // 1_000_000,
    }  # fmt: skip
    points = out["series"][0]["points"]
    assert points[:2] == [[fx.T0 // 1_000_000, 5], [fx.T0 // 1_000_000 + 60_000, 2]]
    assert all(type(v) is int for _, v in points)


def test_a_search_filters_the_records_aggregated(fx, store):
    assert values(series(fx, store, "spans", "p50", "service:api"))[()][:2] == [35.0, pytest.approx(61.5)]
    assert values(series(fx, store, "logs", "count", "service:web"))[()][:3] == [2, 1, 2]


# --- grouping --------------------------------------------------------------------------


def test_grouping_by_one_field_gives_one_series_per_value_sorted_by_label(fx, store):
    out = series(fx, store, "spans", "count", by=["service"])
    assert [s["labels"] for s in out["series"]] == [{"service": "api"}, {"service": "db"}, {"service": "worker"}]
    assert [v[:4] for v in values(out).values()] == [[5, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 2]]


def test_grouping_by_two_fields_labels_records_without_a_field_as_none(fx, store):
    out = series(fx, store, "spans", "count", by=["service", "@http.status_code"])
    assert [s["labels"] for s in out["series"]][:2] == [
        {"service": "api", "@http.status_code": "(none)"}, {"service": "api", "@http.status_code": "200"}]  # fmt: skip
    assert {k: v[:4] for k, v in values(out).items()} == {
        ("api", "(none)"): [0, 2, 0, 0],
        ("api", "200"): [4, 0, 0, 0],
        ("api", "500"): [1, 0, 0, 0],
        ("db", "(none)"): [0, 1, 0, 0],
        ("worker", "(none)"): [0, 0, 0, 2],
    }


def test_grouped_percentiles_are_computed_per_group(fx, store):
    out = values(series(fx, store, "spans", "p50", by=["service"]))
    assert out[("api",)][:4] == [35.0, pytest.approx(61.5), None, None]
    assert out[("worker",)][:4] == [None, None, None, 200.0]


def test_grouping_logs_by_status_uses_level_names(fx, store):
    out = values(series(fx, store, "logs", "errors", by=["status"]))
    assert {k: sum(v) for k, v in out.items()} == {
        ("(none)",): 0, ("debug",): 0, ("error",): 2, ("fatal",): 1, ("info",): 0, ("warn",): 0}  # fmt: skip


@pytest.fixture(scope="module")
def crowd(fx):
    """25 services: s00 has 25 log records, s01 24, ... s24 one; s19 and s20 differ by one."""
    logs = []
    for i in range(25):
        res = Resource(f"s{i:02d}", {"service.name": f"s{i:02d}"})
        logs += [fx.log_record(fx.T0 + (j % 600) * S, res, "INFO", 9, "x", {}) for j in range(25 - i)]
    s = DuckDBStore(":memory:")
    s.write(Batch(logs=logs), lsn=1)
    yield s
    s.close()


def test_grouping_keeps_only_the_series_with_the_most_records(fx, crowd):
    out = series(fx, crowd, "logs", "count", by=["service"], interval=10 * MINUTE)
    assert len(out["series"]) == MAX_SERIES == 20
    assert [s["labels"]["service"] for s in out["series"]] == [f"s{i:02d}" for i in range(20)]
    assert out["series"][0]["points"] == [[fx.T0 // 1_000_000, 25]]


def test_a_grouped_query_matching_nothing_has_no_series(fx, store):
    assert series(fx, store, "spans", "p99", "service:nope", by=["service"])["series"] == []


# --- buckets ---------------------------------------------------------------------------


def test_an_ungrouped_query_matching_nothing_is_one_series_of_zeros(fx, store):
    out = series(fx, store, "logs", "rate", "service:nope")
    assert out["series"] == [{"labels": {}, "points": [[fx.T0 // 1_000_000 + i * 60_000, 0] for i in range(10)]}]


def test_buckets_align_to_multiples_of_the_interval_since_the_epoch(fx, store):
    out = series(fx, store, "logs", "count", start=fx.T0 + 30 * S, end=fx.T0 + 150 * S)
    t0_ms = fx.T0 // 1_000_000
    assert out["from_ms"] == t0_ms + 30_000 and out["to_ms"] == t0_ms + 150_000
    # Records at 10 s and 20 s lie before `from`; the first bucket starts at T0 anyway.
    assert out["series"][0]["points"] == [[t0_ms, 3], [t0_ms + 60_000, 2], [t0_ms + 120_000, 2]]


def test_an_empty_range_has_no_points(fx, store):
    assert series(fx, store, "logs", "count", start=fx.END, end=fx.END)["series"] == [{"labels": {}, "points": []}]


# --- refusals --------------------------------------------------------------------------


def _query(**changes):
    return SeriesQuery("spans", ast.MatchAll(), 0, 600 * S, MINUTE, "count")._replace(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": "metricz"}, "source must be one of logs, spans, got 'metricz'"),
        ({"aggregation": "median"}, "agg 'median' is not available for spans; use one of count, errors, error_rate,"
                                    " rate, p50, p75, p90, p95, p99, avg, max, min"),
        ({"source": "logs", "aggregation": "p99"},
         "agg 'p99' is not available for logs; use one of count, errors, error_rate, rate"),
        ({"interval_ns": 1500}, "interval must be a positive whole number of milliseconds"),
        ({"interval_ns": S // 10}, "interval is too small for this range: more than 2000 buckets"),
        ({"by": ("a", "b", "c", "d", "e")}, "by takes at most 4 fields, got 5"),
    ],
)
def test_it_rejects_what_it_cannot_answer_naming_what_is_allowed(changes, message):
    with pytest.raises(BadRequest) as err:
        compile_series(_query(**changes), DUCKDB)
    assert err.value.message == message


def test_by_is_split_on_commas_without_blanks_or_repeats():
    assert split_by(" service, @http.route,,service ") == ("service", "@http.route")
    assert split_by(None) == split_by("") == ()


@pytest.mark.parametrize("dialect", [DUCKDB, CLICKHOUSE], ids=lambda d: d.name)
def test_user_text_and_limits_reach_sql_only_as_bound_values(dialect):
    evil = "@x'); DROP TABLE otel_logs; --"
    stmt = compile_series(_query(filter=parse("service:\"it's\""), by=(evil,), aggregation="error_rate"), dialect)
    assert "DROP" not in stmt.sql and "it's" not in stmt.sql and "STATUS_CODE_ERROR" not in stmt.sql
    assert {evil[1:], "it's", "STATUS_CODE_ERROR", MAX_SERIES, MINUTE} <= set(stmt.params.values())


# --- the endpoint ----------------------------------------------------------------------


class Client:
    """GETs through the real app in-process (httpx over ASGI)."""

    def __init__(self, app) -> None:
        self.app = app

    def get(self, path: str, params: dict[str, str]) -> httpx.Response:
        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://koban") as c:
                return await c.get(path, params=params)

        return anyio.run(fetch)


@pytest.fixture(scope="module")
def client(fx, tmp_path_factory):
    from koban.app import Runtime, build_app
    from koban.clock import FakeClock
    from koban.settings import Settings

    settings = Settings(data_dir=str(tmp_path_factory.mktemp("api")), decode_workers=0)
    runtime = Runtime.open(settings, clock=FakeClock(fx.END))
    runtime.store.write(Batch(logs=fx.fixture_logs(), spans=fx.fixture_spans()), lsn=1)
    yield Client(build_app(runtime))
    runtime.close()


def test_the_endpoint_answers_grouped_percentiles_over_the_default_range(fx, client):
    # The fake clock stands at END: the default range is its last 15 minutes.
    r = client.get("/api/timeseries", params={"source": "spans", "agg": "p99", "by": "service", "interval": "1m"})
    assert r.status_code == 200
    body = r.json()
    assert (body["source"], body["agg"], body["interval_ms"]) == ("spans", "p99", 60_000)
    assert body["to_ms"] - body["from_ms"] == 15 * 60_000
    assert [s["labels"] for s in body["series"]] == [{"service": "api"}, {"service": "db"}, {"service": "worker"}]
    api = dict(map(tuple, body["series"][0]["points"]))
    assert api[fx.T0 // 1_000_000] == pytest.approx(241.6) and len(api) == 15


def test_the_endpoint_counts_by_default_and_picks_an_interval(fx, client):
    r = client.get("/api/timeseries", params={"source": "logs", "q": "service:web", "from": "10m"})
    body = r.json()
    assert (r.status_code, body["agg"], body["interval_ms"]) == (200, "count", 10_000)
    assert sum(v for _, v in body["series"][0]["points"]) == 5


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "source must be one of logs, spans"),
        ({"source": "spans", "agg": "sum"}, "use one of count, errors"),
        ({"source": "logs", "agg": "p50"}, "use one of count, errors, error_rate, rate"),
        ({"source": "logs", "interval": "soon"}, "cannot read duration"),
    ],
)
def test_the_endpoint_answers_400_naming_the_allowed_values(client, params, fragment):
    r = client.get("/api/timeseries", params=params)
    assert r.status_code == 400 and fragment in r.json()["error"]


def test_the_endpoint_reports_where_a_query_does_not_parse(client):
    r = client.get("/api/timeseries", params={"source": "logs", "q": "service:(web"})
    assert r.status_code == 400 and isinstance(r.json()["position"], int)
