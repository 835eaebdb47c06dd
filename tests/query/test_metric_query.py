"""Datadog's metric query form: what parses into what, and where errors point."""

from __future__ import annotations

import pytest

from koban.errors import QuerySyntaxError
from koban.query import ast
from koban.query.metric_query import MetricQuery, parse_metric_query


def test_it_parses_the_full_form():
    q = parse_metric_query("p99:http.request.duration{service:checkout,env:prod} by {resource}")
    assert q == MetricQuery(
        "http.request.duration",
        ast.And((ast.Match("service", "checkout"), ast.Match("env", "prod"))),
        ("resource",),
        space="p99",
    )


def test_star_means_no_filter_and_the_aggregation_is_optional():
    assert parse_metric_query("system.load.1{*}") == MetricQuery("system.load.1", ast.MatchAll())


def test_negation_and_wildcards_become_search_nodes():
    q = parse_metric_query("sum:requests{!env:dev, host:web-*, region:*}")
    assert q.filter == ast.And((
        ast.Not(ast.Match("env", "dev")),
        ast.Match("host", "web-*", wildcard=True),
        ast.Exists("region"),
    ))  # fmt: skip


def test_functions_come_before_or_after_by():
    a = parse_metric_query("sum:requests{*}.as_rate() by {service,host}")
    b = parse_metric_query("sum:requests{*} by {service,host}.as_rate()")
    assert a == b == MetricQuery("requests", ast.MatchAll(), ("service", "host"), space="sum", mode="rate")
    c = parse_metric_query("avg:cpu{*}.rollup(max, 60).as_count()")
    assert (c.rollup, c.rollup_s, c.mode) == ("max", 60, "count")
    assert parse_metric_query("cpu{*}.rollup(sum)").rollup_s is None


def test_prometheus_names_keep_their_colons():
    q = parse_metric_query("sum:job:http_requests:rate5m{instance:a:9090}")
    assert (q.space, q.metric, q.filter) == ("sum", "job:http_requests:rate5m", ast.Match("instance", "a:9090"))


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a metric name"),
        ("avg:cpu", 7, "'{'"),
        ("avg:cpu{service:web", 19, "',' or '}'"),
        ("avg:cpu{service}", 15, "':'"),
        ("avg:cpu{service:}", 16, "a value"),
        ("avg:cpu{*} by service", 14, "'{'"),
        ("avg:cpu{*}.rollup(median, 60)", 18, "a rollup function"),
        ("avg:cpu{*}.rollup(sum, -5)", 23, "a whole number of seconds"),
        ("avg:cpu{*}.rollup(sum, 0)", 23, "a positive number"),
        ("avg:cpu{*}.as_rate(5)", 19, "')'"),
        ("avg:cpu{*}.fill(zero)", 11, "a function"),
        ("avg:cpu{*} garbage", 11, "'by {...}'"),
        ("avg:{*}", 4, "a metric name after the aggregation"),
    ],
)
def test_errors_say_where_and_what_was_expected(text, position, expected):
    with pytest.raises(QuerySyntaxError) as e:
        parse_metric_query(text)
    assert e.value.position == position
    assert expected in e.value.expected
    assert e.value.status == 400


def test_a_huge_query_is_refused_before_parsing():
    with pytest.raises(QuerySyntaxError):
        parse_metric_query("a" * 5000 + "{*}")
