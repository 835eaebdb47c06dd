"""Whatever a user types, the parsers answer with a result or their own error type."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from koban.errors import QuerySyntaxError, TimeFormatError
from koban.query.ast import And, Compare, Exists, Match, MatchAll, Not, Or, Range, Text
from koban.query.parse import parse
from koban.query.timeparse import parse_duration, parse_time

NODE_TYPES = (Text, Match, Exists, Compare, Range, And, Or, Not, MatchAll)
FUZZ = settings(max_examples=500, deadline=None)

# Pieces of the syntax, so that generated text often gets deep into the grammar
# instead of failing at the first character.
QUERY_PIECES = st.sampled_from(
    [" ", "a", "web", "*", "?", "-", ":", "@f.x:", "service:", '"', "\\", "(", ")",
     "[", "]", "{", "}", " TO ", "AND", "OR", "NOT", ">", ">=", "<", "5", "1.5",
     "ms", "e9", "µs", "kb"]
)
QUERIES = st.one_of(st.text(max_size=60), st.lists(QUERY_PIECES, max_size=25).map("".join))

TIME_PIECES = st.sampled_from(
    ["now", "-", "+", " ", "15", "m", "h", "d", "ns", "2026", "-01", "-02", "T", ":",
     "00", ".", "123456789", "Z", "+01:00", "1767225600", "e", "µs"]
)
TIMES = st.one_of(st.text(max_size=40), st.lists(TIME_PIECES, max_size=12).map("".join))


def _is_tree(node: object) -> bool:
    if isinstance(node, (And, Or)):
        return len(node.children) > 1 and all(_is_tree(c) for c in node.children)
    if isinstance(node, Not):
        return _is_tree(node.child)
    return isinstance(node, NODE_TYPES)


@FUZZ
@given(QUERIES)
def test_parse_returns_a_tree_or_raises_a_syntax_error_inside_the_text(text):
    try:
        node = parse(text)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(text)
        assert error.expected
    else:
        assert _is_tree(node)


@FUZZ
@given(TIMES)
def test_parse_time_returns_an_int_or_raises_a_time_format_error(text):
    try:
        ns = parse_time(text, 1_767_225_600 * 10**9)
    except TimeFormatError as error:
        assert error.message
    else:
        assert isinstance(ns, int)


@FUZZ
@given(TIMES)
def test_parse_duration_returns_a_non_negative_int_or_raises_a_time_format_error(text):
    try:
        ns = parse_duration(text)
    except TimeFormatError as error:
        assert error.message
    else:
        assert isinstance(ns, int) and ns >= 0
