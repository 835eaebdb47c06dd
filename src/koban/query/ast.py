"""The search syntax as a tree: what `parse.py` produces and `compile.py` consumes.

A query such as `service:web-* -status:info @duration:>250ms "timed out" OR error`
becomes nested And/Or/Not nodes over leaf terms. Leaves keep the user's field name
exactly as typed (without resolving what it means for logs or spans): that mapping is
the compiler's job, per source and dialect.
"""

from __future__ import annotations

from typing import NamedTuple, Union


class Text(NamedTuple):
    """Free text or a "quoted phrase": a case-insensitive substring of the body.

    `wildcard` is True when the unquoted word holds `*` or `?`.
    """

    value: str
    phrase: bool = False
    wildcard: bool = False


class Match(NamedTuple):
    """`field:value`. `field` is a reserved name (`service`) or an attribute path with
    its `@` (`@http.method`). `wildcard` is True when `value` holds unescaped `*`/`?`
    (`web-*`); `*` alone (`@user.id:*`) is parsed as Exists instead."""

    field: str
    value: str
    wildcard: bool = False
    phrase: bool = False


class Exists(NamedTuple):
    """`field:*`: the field is present (and, for columns, not empty)."""

    field: str


class Compare(NamedTuple):
    """`field:>250ms`, `field:<=3`: `op` is one of `>`, `>=`, `<`, `<=`.

    `value` is a number already converted to the field's base unit where the text
    carried a unit (durations in nanoseconds: `250ms` -> 250_000_000).
    """

    field: str
    op: str
    value: float


class Range(NamedTuple):
    """`field:[low TO high]` (inclusive) or `field:{low TO high}` (exclusive).
    A bound of `*` is open (None)."""

    field: str
    low: float | None
    high: float | None
    inclusive: bool = True


class And(NamedTuple):
    children: tuple[Node, ...]


class Or(NamedTuple):
    children: tuple[Node, ...]


class Not(NamedTuple):
    child: Node


class MatchAll(NamedTuple):
    """The empty query: everything in the time range."""


Node = Union[Text, Match, Exists, Compare, Range, And, Or, Not, MatchAll]
