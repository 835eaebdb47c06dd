"""Parse Datadog's metric query form into a `MetricQuery`.

    p99:http.request.duration{service:checkout,env:prod} by {resource}.rollup(max, 60)

Grammar (whitespace allowed between tokens):

    query    := [space ":"] metric "{" filters "}" ( "by" "{" keys "}" | function )*
    space    := avg | sum | min | max | count | p50 | p75 | p90 | p95 | p99
    metric   := [A-Za-z0-9_.:/-]+   (Prometheus names may hold ':'; a known space
                                     aggregation before the first ':' is the prefix)
    filters  := "*" | term ( "," term )*
    term     := ["!"] key ":" value   (value: up to the next ',' or '}'; '*' globs)
    keys     := key ( "," key )*
    function := ".as_rate()" | ".as_count()" | ".rollup(" fn [ "," seconds ] ")"

A term becomes a search-syntax `Match` (or `Not(Match)`), so tag filters resolve their
keys exactly as `q=` does for metrics. `{*}` is no filter. Functions may come before or
after `by {...}`, as Datadog writes both.

`parse_metric_query(text)` raises QuerySyntaxError with the 0-based `position` of the
problem and what was `expected` there, like the search syntax.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from koban.errors import QuerySyntaxError
from koban.query import ast

SPACE_AGGREGATIONS = ("avg", "sum", "min", "max", "count", "p50", "p75", "p90", "p95", "p99")
ROLLUPS = ("avg", "sum", "min", "max", "count")
MAX_QUERY_LENGTH = 4096

_METRIC = re.compile(r"[A-Za-z0-9_.:/\-]+")
_KEY = re.compile(r"@?[A-Za-z0-9_][A-Za-z0-9_.\-/]*")
_NUMBER = re.compile(r"[0-9]{1,9}")


class MetricQuery(NamedTuple):
    """One parsed metric query. `space` and `rollup` are None when not written (the
    metric's type picks the default); `mode` is "rate", "count" or None; `rollup_s` is
    the bucket width `.rollup(fn, seconds)` asked for, else None."""

    metric: str
    filter: ast.Node = ast.MatchAll()
    by: tuple[str, ...] = ()
    space: str | None = None
    rollup: str | None = None
    rollup_s: int | None = None
    mode: str | None = None


def parse_metric_query(text: str) -> MetricQuery:
    """The MetricQuery `text` writes. Raises QuerySyntaxError when it does not parse."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QuerySyntaxError(
            f"metric query is longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH, "a shorter query"
        )
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.pos = 0

    def error(self, expected: str, position: int | None = None) -> QuerySyntaxError:
        at = self.pos if position is None else position
        found = "the end of the query" if at >= self.n else repr(self.text[at : at + 20])
        return QuerySyntaxError(f"expected {expected} at {at}, found {found}", at, expected)

    def skip_ws(self) -> None:
        while self.pos < self.n and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, literal: str) -> bool:
        self.skip_ws()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str, expected: str | None = None) -> None:
        if not self.take(literal):
            raise self.error(expected or repr(literal))

    def match(self, pattern: re.Pattern[str], expected: str) -> str:
        self.skip_ws()
        m = pattern.match(self.text, self.pos)
        if not m:
            raise self.error(expected)
        self.pos = m.end()
        return m.group()

    # -- the query ---------------------------------------------------------------

    def parse(self) -> MetricQuery:
        self.skip_ws()
        start = self.pos
        name = self.match(_METRIC, "a metric name, e.g. avg:system.cpu.user{*}")
        space = None
        prefix, colon, rest = name.partition(":")
        if colon and prefix.lower() in SPACE_AGGREGATIONS:
            space, name = prefix.lower(), rest
            if not name:
                raise self.error("a metric name after the aggregation", start + len(prefix) + 1)
        elif colon and not rest and prefix:
            raise self.error(f"one of {', '.join(SPACE_AGGREGATIONS)} before ':'", start)
        q = MetricQuery(name, self.parse_filters(), space=space)
        while True:
            self.skip_ws()
            if self.pos >= self.n:
                return q
            if self.text.startswith("by", self.pos) and not q.by:
                self.pos += 2
                q = q._replace(by=self.parse_keys())
            elif self.peek_function():
                q = self.parse_function(q)
            else:
                expected = "'.as_rate()', '.as_count()', '.rollup(...)' or the end of the query"
                raise self.error(expected if q.by else f"'by {{...}}', {expected}")

    def peek_function(self) -> bool:
        return self.text.startswith(".", self.pos)

    def parse_filters(self) -> ast.Node:
        self.expect("{", "'{' and tag filters, or {*} for none")
        if self.take("*"):
            self.expect("}", "'}' after '*'")
            return ast.MatchAll()
        terms: list[ast.Node] = []
        while True:
            terms.append(self.parse_term())
            if self.take("}"):
                break
            self.expect(",", "',' or '}'")
        return terms[0] if len(terms) == 1 else ast.And(tuple(terms))

    def parse_term(self) -> ast.Node:
        negate = self.take("!")
        key = self.match(_KEY, "a tag filter key:value, or * for no filter")
        self.expect(":", f"':' and a value after the tag key {key!r}")
        start = self.pos
        while self.pos < self.n and self.text[self.pos] not in ",}":
            self.pos += 1
        value = self.text[start : self.pos].strip()
        if not value:
            raise self.error(f"a value for the tag key {key!r}", start)
        if value == "*":
            term: ast.Node = ast.Exists(key)
        else:
            term = ast.Match(key, value, wildcard="*" in value or "?" in value)
        return ast.Not(term) if negate else term

    def parse_keys(self) -> tuple[str, ...]:
        self.expect("{", "'{' and tag keys after 'by'")
        keys = [self.match(_KEY, "a tag key to group by")]
        while not self.take("}"):
            self.expect(",", "',' or '}'")
            keys.append(self.match(_KEY, "a tag key to group by"))
        return tuple(dict.fromkeys(keys))

    def parse_function(self, q: MetricQuery) -> MetricQuery:
        self.expect(".")
        at = self.pos
        name = self.match(re.compile(r"[a-z_]+"), "a function: as_rate, as_count or rollup")
        self.expect("(", "'(' after the function name")
        if name in ("as_rate", "as_count"):
            self.expect(")", "')': as_rate() and as_count() take no arguments")
            return q._replace(mode=name[3:])
        if name != "rollup":
            raise self.error("a function: as_rate, as_count or rollup", at)
        fn_at = self.pos
        fn = self.match(re.compile(r"[a-z]+"), f"a rollup function: {', '.join(ROLLUPS)}")
        if fn not in ROLLUPS:
            raise self.error(f"a rollup function: {', '.join(ROLLUPS)}", fn_at)
        seconds = None
        if self.take(","):
            self.skip_ws()
            num_at = self.pos
            seconds = int(self.match(_NUMBER, "a whole number of seconds"))
            if seconds <= 0:
                raise self.error("a positive number of seconds", num_at)
        self.expect(")", "')' to close rollup(...)")
        return q._replace(rollup=fn, rollup_s=seconds)
