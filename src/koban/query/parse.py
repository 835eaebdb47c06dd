"""Parse Datadog-style search text into the tree of `koban.query.ast`.

`parse(text)` returns a Node or raises QuerySyntaxError with the 0-based `position` of
the problem and what was `expected` there. The grammar, loosest binding first:

    query   := or?                              (empty or blank -> MatchAll)
    or      := and ( "OR" and )*
    and     := unary ( "AND"? unary )*          (juxtaposition is AND)
    unary   := "NOT" unary | "-" unary | primary
    primary := "(" or ")" | "quoted phrase" | field ":" value | word
    value   := "*" | "quoted" | "(" value-or ")" | "[" n TO n "]" | "{" n TO n "}"
             | (">" | ">=" | "<" | "<=") number | word

Choices worth knowing:
- AND, OR and NOT are keywords only in upper case and only as whole words; `and`,
  `or` and `ANDROID` are plain words. `-` negates when a term follows it directly
  (`-service:web`); a `-` followed by a space or `)` is an ordinary word.
- A word is cut at whitespace, `(`, `)` and `"`. Backslash escapes any character
  (`\\ `, `\\:`, `\\(`); a backslash at the very end is a literal backslash.
- The first unescaped `:` separates a field when the text before it is a field name
  (`[A-Za-z0-9_][A-Za-z0-9_.-]*`, optionally prefixed by `@`). So `http://x` is
  Match("http", "//x"); to search the URL as text, quote it or escape the colon.
  Text before `:` that is not a field name (`a/b:c`) keeps the whole word as Text.
- Values in a group apply to the group's field: `f:(a OR -b)` is
  Or(Match(f, a), Not(Match(f, b))). Directly after `f:`, a `-` is part of the
  value (`f:-5` matches "-5").
- Wildcards: when `wildcard` is False, `value` is the plain unescaped text. When it
  is True, `value` is a glob pattern: `*` and `?` are wildcards, and `\\*`, `\\?`, `\\\\`
  stand for a literal `*`, `?`, backslash (every other escape is resolved).
- A free word of just `*` is MatchAll (Datadog's "everything"); And drops MatchAll
  children and Or containing MatchAll becomes MatchAll.
- Comparison and range bounds are numbers (the AST holds floats), optionally with a
  duration unit converted to nanoseconds. Range brackets must match (`[..]`, `{..}`).
- Inside quotes only `\\"` and `\\\\` are escapes; other backslashes stay as typed, so
  `"C:\\temp"` means what it says.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

from koban.errors import QuerySyntaxError
from koban.query.ast import (
    And,
    Compare,
    Exists,
    Match,
    MatchAll,
    Node,
    Not,
    Or,
    Range,
    Text,
)

_FIELD_RE = re.compile(r"@?[A-Za-z0-9_][A-Za-z0-9_.\-]*")
# The exponent is capped at three digits so that no input can make Decimal overflow.
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_UNITS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,  # U+00B5 MICRO SIGN
    "μs": 10**3,  # U+03BC GREEK SMALL LETTER MU, what some keyboards type
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_UNIT_LIST = "ns, us, µs, ms, s, m or h"
_WORD_STOPS = '()"'
_BOUND_STOPS = '()"[]{}'
_KEYWORDS = ("AND", "OR", "NOT")
# Each level costs a handful of Python frames; this keeps far below the recursion limit.
_MAX_DEPTH = 64


def parse(text: str) -> Node:
    """The search tree for `text`; MatchAll for an empty or blank query.

    Raises QuerySyntaxError (with `position` and `expected`) when `text` does not parse.
    """
    return _Parser(text).parse_query()


class _Parser:
    """Recursive descent over the characters of one query; `pos` is the cursor."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.depth = 0

    # -- helpers ---------------------------------------------------------------

    def error(self, message: str, position: int, expected: str) -> QuerySyntaxError:
        return QuerySyntaxError(message, position=position, expected=expected)

    def skip_ws(self) -> None:
        while self.pos < self.n and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.n else ""

    def is_stop(self, i: int, stops: str = _WORD_STOPS) -> bool:
        return i >= self.n or self.text[i].isspace() or self.text[i] in stops

    def keyword(self) -> str | None:
        for kw in _KEYWORDS:
            if self.text.startswith(kw, self.pos) and self.is_stop(self.pos + len(kw)):
                return kw
        return None

    def found(self, i: int) -> str:
        """How the text at `i` reads in an error message."""
        if i >= self.n:
            return "the end of the query"
        end = i + 1
        while end < self.n and end - i < 20 and not self.is_stop(end):
            end += 1
        return repr(self.text[i:end])

    def scan(self, stops: str) -> str:
        start = self.pos
        while not self.is_stop(self.pos, stops):
            self.pos += 1
        return self.text[start : self.pos]

    # -- boolean structure -----------------------------------------------------

    def parse_query(self) -> Node:
        self.skip_ws()
        if self.pos >= self.n:
            return MatchAll()
        node = self.parse_or(None, None)
        self.skip_ws()
        if self.pos < self.n:  # parse_or stops early only at a ')' it cannot match
            raise self.error(
                f"unmatched ')' at {self.pos}", self.pos, "the end of the query"
            )
        return node

    def parse_or(self, field: str | None, after: str | None) -> Node:
        children = [self.parse_and(field, after)]
        while True:
            self.skip_ws()
            if self.keyword() != "OR":
                return _combine(Or, children)
            self.pos += 2
            children.append(self.parse_and(field, "'OR'"))

    def parse_and(self, field: str | None, after: str | None) -> Node:
        children = [self.parse_unary(field, after)]
        while True:
            self.skip_ws()
            kw = self.keyword()
            if self.pos >= self.n or self.peek() == ")" or kw == "OR":
                return _combine(And, children)
            if kw == "AND":
                self.pos += 3
                children.append(self.parse_unary(field, "'AND'"))
            else:
                children.append(self.parse_unary(field, None))

    def parse_unary(self, field: str | None, after: str | None) -> Node:
        self.skip_ws()
        self.require_operand(field, after)
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(
                f"query nests deeper than {_MAX_DEPTH} levels",
                self.pos,
                "fewer nested groups or negations",
            )
        try:
            if self.keyword() == "NOT":
                self.pos += 3
                return Not(self.parse_unary(field, "'NOT'"))
            if self.peek() == "-" and not self.is_stop(self.pos + 1, ")"):
                self.pos += 1
                return Not(self.parse_unary(field, "'-'"))
            return self.parse_primary(field)
        finally:
            self.depth -= 1

    def require_operand(self, field: str | None, after: str | None) -> None:
        """Raise unless a term (or, in a value group, a value) starts at the cursor."""
        kw = self.keyword()
        if self.pos < self.n and self.peek() != ")" and kw not in ("AND", "OR"):
            return
        noun = "a value" if field is not None else "a term"
        expected = f"{noun} after {after}" if after else noun
        raise self.error(
            f"expected {expected}, found {self.found(self.pos)}", self.pos, expected
        )

    def parse_primary(self, field: str | None) -> Node:
        if field is not None:
            return self.parse_value(field)
        c = self.peek()
        if c == "(":
            return self.parse_group(None)
        if c == '"':
            return Text(self.read_quoted(), phrase=True)
        return self.parse_term()

    def parse_group(self, field: str | None) -> Node:
        open_pos = self.pos
        self.pos += 1
        node = self.parse_or(field, "'('")
        self.skip_ws()
        if self.peek() != ")":
            raise self.error(
                f"expected ')' to close '(' opened at {open_pos}, "
                f"found {self.found(self.pos)}",
                self.pos,
                "')'",
            )
        self.pos += 1
        return node

    # -- leaves ----------------------------------------------------------------

    def parse_term(self) -> Node:
        m = _FIELD_RE.match(self.text, self.pos)
        if m and m.end() < self.n and self.text[m.end()] == ":":
            self.pos = m.end() + 1
            return self.parse_value(m.group())
        value, wildcard = self.read_word()
        if wildcard and value == "*":
            return MatchAll()
        return Text(value, wildcard=wildcard)

    def parse_value(self, field: str) -> Node:
        c = self.peek()
        if self.is_stop(self.pos, ")"):
            raise self.error(
                f"expected a value after '{field}:', found {self.found(self.pos)}",
                self.pos,
                "a value after ':'",
            )
        if c == '"':
            return Match(field, self.read_quoted(), phrase=True)
        if c == "(":
            return self.parse_group(field)
        if c in "[{":
            return self.parse_range(field)
        if c in "<>":
            return self.parse_compare(field)
        value, wildcard = self.read_word()
        if wildcard and value == "*":
            return Exists(field)
        return Match(field, value, wildcard=wildcard)

    def parse_compare(self, field: str) -> Compare:
        two = self.text[self.pos : self.pos + 2]
        op = two if two in ("<=", ">=") else self.peek()
        self.pos += len(op)
        start = self.pos
        raw = self.scan(_WORD_STOPS)
        if not raw:
            raise self.error(
                f"expected a number after '{op}', found {self.found(start)}",
                start,
                "a number",
            )
        return Compare(field, op, self.number(raw, start))

    def parse_range(self, field: str) -> Range:
        open_pos = self.pos
        opener = self.peek()
        closer = "]" if opener == "[" else "}"
        self.pos += 1
        low = self.read_bound(f"after '{opener}'")
        self.skip_ws()
        has_to = self.text.startswith("TO", self.pos)
        if not (has_to and self.is_stop(self.pos + 2, _BOUND_STOPS)):
            raise self.error(
                f"expected 'TO' in the range opened at {open_pos}, "
                f"found {self.found(self.pos)}",
                self.pos,
                "'TO'",
            )
        self.pos += 2
        high = self.read_bound("after 'TO'")
        self.skip_ws()
        if self.peek() != closer:
            raise self.error(
                f"expected '{closer}' to close '{opener}' opened at {open_pos}, "
                f"found {self.found(self.pos)}",
                self.pos,
                f"'{closer}'",
            )
        self.pos += 1
        return Range(field, low, high, inclusive=opener == "[")

    def read_bound(self, where: str) -> float | None:
        self.skip_ws()
        start = self.pos
        raw = self.scan(_BOUND_STOPS)
        if not raw:
            raise self.error(
                f"expected a number or '*' {where}, found {self.found(start)}",
                start,
                "a number or '*'",
            )
        return None if raw == "*" else self.number(raw, start)

    def number(self, raw: str, start: int) -> float:
        """`raw` (found at `start`) as a float, a duration unit converted to ns."""
        m = _NUMBER_RE.match(raw)
        if not m:
            raise self.error(f"expected a number, found {raw!r}", start, "a number")
        unit = raw[m.end() :]
        if unit and unit not in _UNITS:
            raise self.error(
                f"unknown unit {unit!r} in {raw!r}; use one of {_UNIT_LIST}",
                start + m.end(),
                f"a unit: {_UNIT_LIST}",
            )
        # Decimal keeps 1.1s at exactly 1_100_000_000 instead of a float product.
        value = float(Decimal(m.group()) * _UNITS.get(unit, 1))
        if not math.isfinite(value):
            raise self.error(f"number {raw!r} is too large", start, "a finite number")
        return value

    def read_word(self) -> tuple[str, bool]:
        """The word at the cursor: (value, wildcard); see the module doc for escapes."""
        literal: list[str] = []
        pattern: list[str] = []
        wildcard = False
        while not self.is_stop(self.pos):
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < self.n:
                c = self.text[self.pos + 1]
                self.pos += 2
                literal.append(c)
                pattern.append("\\" + c if c in "*?\\" else c)
                continue
            if c in "*?":
                wildcard = True
            literal.append(c)
            pattern.append("\\\\" if c == "\\" else c)
            self.pos += 1
        return ("".join(pattern), True) if wildcard else ("".join(literal), False)

    def read_quoted(self) -> str:
        open_pos = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < self.n:
            c = self.text[self.pos]
            if c == "\\" and self.pos + 1 < self.n and self.text[self.pos + 1] in '"\\':
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif c == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(c)
                self.pos += 1
        raise self.error(
            f"unterminated quote opened at {open_pos}", open_pos, "a closing '\"'"
        )


def _combine(kind: type[And] | type[Or], children: list[Node]) -> Node:
    """`kind` over `children`, nested same-kind nodes flattened; one child is itself."""
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    if kind is Or and any(isinstance(c, MatchAll) for c in flat):
        return MatchAll()
    if kind is And:
        flat = [c for c in flat if not isinstance(c, MatchAll)] or [MatchAll()]
    return flat[0] if len(flat) == 1 else kind(tuple(flat))
