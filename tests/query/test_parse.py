"""The search parser: what each construct becomes, and where errors point."""

from __future__ import annotations

import pytest

from koban.errors import QuerySyntaxError
from koban.query.ast import (
    And,
    Compare,
    Exists,
    Match,
    MatchAll,
    Not,
    Or,
    Range,
    Text,
)
from koban.query.parse import parse


def case(query, expected, id):
    return pytest.param(query, expected, id=id)


LEAVES = [
    case("", MatchAll(), "empty query"),
    case("   \t\n", MatchAll(), "blank query"),
    case("*", MatchAll(), "lone star is everything"),
    case("error", Text("error"), "free word"),
    case("  error  ", Text("error"), "surrounding blanks"),
    case("err*", Text("err*", wildcard=True), "word with star"),
    case("e?ror", Text("e?ror", wildcard=True), "word with question mark"),
    case(r"a\*b", Text("a*b"), "escaped star is literal"),
    case(r"a\*b*", Text(r"a\*b*", wildcard=True), "wildcard value keeps escaped star"),
    case('"timed out"', Text("timed out", phrase=True), "phrase"),
    case(r'"say \"hi\""', Text('say "hi"', phrase=True), "phrase with escaped quote"),
    case(r'"a\\b"', Text("a\\b", phrase=True), "phrase with escaped backslash"),
    case(r'"C:\temp"', Text(r"C:\temp", phrase=True), "phrase keeps other backslashes"),
    case('"a*b"', Text("a*b", phrase=True), "phrase star is literal"),
    case('""', Text("", phrase=True), "empty phrase"),
    case("and", Text("and"), "lower-case and is a word"),
    case("or", Text("or"), "lower-case or is a word"),
    case("ANDROID", Text("ANDROID"), "keyword prefix is a word"),
    case(r"foo\ bar", Text("foo bar"), "escaped space"),
    case("trailing\\", Text("trailing\\"), "final backslash is literal"),
    case("a/b:c", Text("a/b:c"), "colon after a non-field is text"),
    case(r"a\:b", Text("a:b"), "escaped colon is text"),
    case("a - b", And((Text("a"), Text("-"), Text("b"))), "lone dash is a word"),
    case("service:web", Match("service", "web"), "field match"),
    case("@http.method:GET", Match("@http.method", "GET"), "attribute match"),
    case("@user-agent.v_2:x", Match("@user-agent.v_2", "x"), "field name characters"),
    case('service:"web api"', Match("service", "web api", phrase=True), "field phrase"),
    case("service:web-*", Match("service", "web-*", wildcard=True), "field wildcard"),
    case("@user.id:*", Exists("@user.id"), "exists"),
    case(r"@user.id:\*", Match("@user.id", "*"), "escaped star value"),
    case(r"@path:\/api\:v1", Match("@path", "/api:v1"), "escaped value characters"),
    case("url:http://x", Match("url", "http://x"), "colon inside value"),
    case("http://x", Match("http", "//x"), "url splits at first colon"),
    case("status:-5", Match("status", "-5"), "dash after colon is part of value"),
    case("OR:x", Match("OR", "x"), "keyword as field name"),
]

COMPARISONS = [
    case("@status:>500", Compare("@status", ">", 500.0), "greater"),
    case("@status:>=500", Compare("@status", ">=", 500.0), "greater or equal"),
    case("@status:<500", Compare("@status", "<", 500.0), "less"),
    case("@status:<=500", Compare("@status", "<=", 500.0), "less or equal"),
    case("@t:>-3.5", Compare("@t", ">", -3.5), "negative decimal"),
    case("@t:<1e3", Compare("@t", "<", 1000.0), "exponent"),
    case("@d:>250ms", Compare("@d", ">", 250_000_000.0), "milliseconds"),
    case("@d:>1.5s", Compare("@d", ">", 1.5e9), "fractional seconds"),
    case("@d:>2m", Compare("@d", ">", 1.2e11), "minutes"),
    case("@d:>1h", Compare("@d", ">", 3.6e12), "hours"),
    case("@d:>10ns", Compare("@d", ">", 10.0), "nanoseconds"),
    case("@d:>7us", Compare("@d", ">", 7000.0), "microseconds"),
    case("@d:>7µs", Compare("@d", ">", 7000.0), "micro sign"),
    case("@d:>1.1s", Compare("@d", ">", 1_100_000_000.0), "no float drift"),
]

RANGES = [
    case("@s:[500 TO 599]", Range("@s", 500.0, 599.0, True), "inclusive"),
    case("@s:{500 TO 599}", Range("@s", 500.0, 599.0, False), "exclusive"),
    case("@s:[* TO 599]", Range("@s", None, 599.0, True), "open low"),
    case("@s:[500 TO *]", Range("@s", 500.0, None, True), "open high"),
    case("@s:[ 1  TO  2 ]", Range("@s", 1.0, 2.0, True), "extra blanks"),
    case("@d:[100ms TO 1s]", Range("@d", 1e8, 1e9, True), "units in range"),
]

GROUPS = [
    case(
        "service:(web OR api)",
        Or((Match("service", "web"), Match("service", "api"))),
        "field or group",
    ),
    case(
        "service:(web api)",
        And((Match("service", "web"), Match("service", "api"))),
        "field and group",
    ),
    case(
        'f:(a OR -b OR "c d" OR e*)',
        Or(
            (
                Match("f", "a"),
                Not(Match("f", "b")),
                Match("f", "c d", phrase=True),
                Match("f", "e*", wildcard=True),
            )
        ),
        "group holds any value kind",
    ),
    case(
        "@s:(>500 OR [1 TO 2] OR *)",
        Or((Compare("@s", ">", 500.0), Range("@s", 1.0, 2.0), Exists("@s"))),
        "group of comparisons",
    ),
    case(
        "f:(a OR (b c))",
        Or((Match("f", "a"), And((Match("f", "b"), Match("f", "c"))))),
        "nested value group",
    ),
    case("f:(NOT a)", Not(Match("f", "a")), "NOT in value group"),
    case("f:(a)", Match("f", "a"), "single value group collapses"),
]

a, b, c, d = Text("a"), Text("b"), Text("c"), Text("d")

BOOLEANS = [
    case("a b", And((a, b)), "implicit and"),
    case("a AND b", And((a, b)), "explicit and"),
    case("a OR b", Or((a, b)), "or"),
    case("a b OR c", Or((And((a, b)), c)), "and binds tighter than or"),
    case("a OR b c", Or((a, And((b, c)))), "and binds tighter on the right"),
    case("a OR b AND c OR d", Or((a, And((b, c)), d)), "mixed precedence"),
    case("(a OR b) c", And((Or((a, b)), c)), "parentheses override"),
    case("NOT a b", And((Not(a), b)), "not binds tighter than and"),
    case("NOT a OR b", Or((Not(a), b)), "not binds tighter than or"),
    case("-a", Not(a), "dash negates"),
    case("-service:web", Not(Match("service", "web")), "dash negates field"),
    case('-"a b"', Not(Text("a b", phrase=True)), "dash negates phrase"),
    case("-(a OR b)", Not(Or((a, b))), "dash negates group"),
    case("NOT(a)", Not(a), "NOT touching parenthesis"),
    case("NOT NOT a", Not(Not(a)), "double not"),
    case("a AND b AND c", And((a, b, c)), "and chain is flat"),
    case("a (b (c d))", And((a, b, c, d)), "nested and is flattened"),
    case("a OR (b OR (c OR d))", Or((a, b, c, d)), "nested or is flattened"),
    case("((a))", a, "redundant parentheses"),
    case("a and b", And((a, Text("and"), b)), "lower-case and is a term"),
    case("a * b", And((a, b)), "star inside and is dropped"),
    case("a OR *", MatchAll(), "or with everything is everything"),
    case(
        'service:web-* -status:info @duration:>250ms "timed out" OR error',
        Or(
            (
                And(
                    (
                        Match("service", "web-*", wildcard=True),
                        Not(Match("status", "info")),
                        Compare("@duration", ">", 250_000_000.0),
                        Text("timed out", phrase=True),
                    )
                ),
                Text("error"),
            )
        ),
        "design example",
    ),
    case(
        "(service:web OR service:api) @http.status_code:[500 TO 599] -@user.id:*",
        And(
            (
                Or((Match("service", "web"), Match("service", "api"))),
                Range("@http.status_code", 500.0, 599.0),
                Not(Exists("@user.id")),
            )
        ),
        "realistic combination",
    ),
]


@pytest.mark.parametrize("query, expected", LEAVES)
def test_it_parses_leaf_terms(query, expected):
    assert parse(query) == expected


@pytest.mark.parametrize("query, expected", COMPARISONS)
def test_it_parses_comparisons_with_units(query, expected):
    assert parse(query) == expected


@pytest.mark.parametrize("query, expected", RANGES)
def test_it_parses_ranges(query, expected):
    assert parse(query) == expected


@pytest.mark.parametrize("query, expected", GROUPS)
def test_it_applies_value_groups_to_their_field(query, expected):
    assert parse(query) == expected


@pytest.mark.parametrize("query, expected", BOOLEANS)
def test_it_combines_terms_with_precedence(query, expected):
    assert parse(query) == expected


def test_it_returns_comparison_values_as_floats():
    node = parse("@status:>500")
    assert isinstance(node, Compare) and type(node.value) is float


def err(query, position, expected, id, message=None):
    return pytest.param(query, position, expected, message, id=id)


ERRORS = [
    err("(a", 2, "')'", "unclosed paren", "expected ')' to close '(' opened at 0"),
    err("x (a OR (b)", 11, "')'", "unclosed outer paren", "opened at 2"),
    err("a)", 1, "the end of the query", "unmatched close paren", "unmatched ')'"),
    err("()", 1, "a term after '('", "empty parentheses"),
    err("a OR", 4, "a term after 'OR'", "dangling or"),
    err("a AND  ", 7, "a term after 'AND'", "dangling and"),
    err("a NOT", 5, "a term after 'NOT'", "dangling not"),
    err("OR a", 0, "a term", "leading or"),
    err("a AND OR b", 6, "a term after 'AND'", "and then or"),
    err("a OR OR b", 5, "a term after 'OR'", "double or"),
    err("(a OR)", 5, "a term after 'OR'", "or before close paren"),
    err("service:", 8, "a value after ':'", "field without value"),
    err("service: web", 8, "a value after ':'", "blank after colon"),
    err("(service:)", 9, "a value after ':'", "close paren after colon"),
    err("f:(a OR", 7, "a value after 'OR'", "unclosed value group"),
    err("f:(a", 4, "')'", "value group without close", "opened at 2"),
    err('"abc', 0, "a closing '\"'", "unterminated phrase", "unterminated quote"),
    err('a "b\\"', 2, "a closing '\"'", "escaped quote does not close"),
    err('f:"abc', 2, "a closing '\"'", "unterminated field phrase"),
    err("f:>", 3, "a number", "compare without number"),
    err("f:>=", 4, "a number", "compare-equal without number"),
    err("f:> 5", 3, "a number", "blank after operator"),
    err("f:>abc", 3, "a number", "compare with word"),
    err("f:>5kb", 4, "a unit: ns, us, µs, ms, s, m or h", "unknown unit", "'kb'"),
    err("f:[1 TO 5xs]", 9, "a unit: ns, us, µs, ms, s, m or h", "unknown unit in range"),
    err("f:>1e999", 3, "a finite number", "infinite number"),
    err("f:[1 TO", 7, "a number or '*'", "range without high bound"),
    err("f:[1 TO 5", 9, "']'", "unterminated range", "to close '[' opened at 2"),
    err("f:{1 TO 5]", 9, "'}'", "mismatched range brackets"),
    err("f:[1 5]", 5, "'TO'", "range without TO"),
    err("f:[1 to 5]", 5, "'TO'", "lower-case to"),
    err("f:[1 TOP 5]", 5, "'TO'", "word starting with TO"),
    err("f:[]", 3, "a number or '*'", "empty range"),
    err("f:[a TO z]", 3, "a number", "range over words"),
    err("(" * 100 + "a", 64, "fewer nested groups or negations", "deep nesting"),
    err("-" * 100 + "a", 64, "fewer nested groups or negations", "long negation chain"),
]


@pytest.mark.parametrize("query, position, expected, message", ERRORS)
def test_it_reports_where_and_what_was_expected(query, position, expected, message):
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    error = info.value
    assert (error.position, error.expected) == (position, expected)
    if message is not None:
        assert message in error.message


def test_its_errors_are_bad_requests_with_details():
    with pytest.raises(QuerySyntaxError) as info:
        parse("a OR")
    assert info.value.status == 400
    assert info.value.to_dict() == {
        "error": info.value.message,
        "position": 4,
        "expected": "a term after 'OR'",
    }


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("a b OR c", id="implicit and"),
        pytest.param("a AND b OR c", id="explicit and"),
        pytest.param("(a b) OR c", id="parenthesised"),
        pytest.param("(a AND b) OR (c)", id="fully parenthesised"),
    ],
)
def test_explicit_and_and_parentheses_mean_the_same(query):
    assert parse(query) == Or((And((Text("a"), Text("b"))), Text("c")))


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("-service:web", id="dash"),
        pytest.param("NOT service:web", id="NOT"),
        pytest.param("NOT (service:web)", id="NOT group"),
        pytest.param("service:(NOT web)", id="NOT in value group"),
        pytest.param("service:(-web)", id="dash in value group"),
    ],
)
def test_every_negation_spelling_gives_the_same_tree(query):
    assert parse(query) == Not(Match("service", "web"))


def test_it_keeps_wildcard_patterns_escaped_but_plain_values_unescaped():
    plain = parse(r"f:a\*b\\c")
    pattern = parse(r"f:a\*b\\c*")
    assert plain == Match("f", "a*b\\c")
    assert pattern == Match("f", r"a\*b\\c*", wildcard=True)
