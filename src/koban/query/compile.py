"""Search AST -> a boolean SQL expression for one source (logs or spans) and dialect.

Table-driven: a `Source` maps field names to `Field` objects, each of which knows its
SQL for every operator (match, wildcard, exists, numeric comparison) and its label for
`describe`; the node types map to one entry each in `_NODES`. Values only ever reach
SQL as bound parameters, and a user's field name only as a bound map key.

Field resolution (reserved names are case-insensitive):
- a name starting with `@` is an attribute path, looked up in the record's own
  attributes and then in its resource's (`@k8s.pod.name` finds a resource attribute);
  spans read `@duration` from the Duration column (ns);
- reserved names are listed in `LOGS` and `SPANS` below;
- any other name (`foo:bar`) is treated as the attribute `foo`: Datadog treats tags
  loosely, and refusing unknown names would make typos look like syntax errors.

Every leaf predicate is wrapped in `coalesce(..., FALSE)`, so the whole expression is
never NULL and `-@user.id:7` keeps records that have no `user.id` at all, as Datadog does.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

from koban.query import ast
from koban.query.dialects import Dialect, Params
from koban.store import schema

_ident = schema.quote_ident

# OpenTelemetry severity levels: (name, lowest number, highest number, text synonyms).
LEVELS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("trace", 1, 4, ("trace",)),
    ("debug", 5, 8, ("debug",)),
    ("info", 9, 12, ("info", "notice", "informational")),
    ("warn", 13, 16, ("warn", "warning")),
    ("error", 17, 20, ("error", "err")),
    ("fatal", 21, 24, ("fatal", "critical", "crit", "alert", "emergency", "emerg")),
)


def level_name(severity_text: str, severity_number: int) -> str:
    """The normalised level of a log record: the level its text names, else the one its
    number falls in, else its text lower-cased; "" when it has neither."""
    text = severity_text.lower()
    for name, low, high, synonyms in LEVELS:
        if text in synonyms:
            return name
    for name, low, high, _ in LEVELS:
        if low <= severity_number <= high:
            return name
    return text


def number_level(severity_number: int) -> str:
    """The level name of an OpenTelemetry severity number; "" when out of range (0)."""
    for name, low, high, _ in LEVELS:
        if low <= severity_number <= high:
            return name
    return ""


# --- helpers -------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _as_number(value: str) -> float | None:
    """`value` as a float when it looks like a plain decimal number, else None."""
    return float(value) if _NUMBER.fullmatch(value.strip()) else None


def glob_to_like(glob: str) -> str:
    """A parser glob (`*`, `?`; `\\*`, `\\?`, `\\\\` literal) as a LIKE pattern with
    `\\` as escape character, so the user's own `%` and `_` stay literal."""
    out = []
    chars = iter(glob)
    for c in chars:
        if c == "\\":
            c = next(chars, "\\")
            out.append("\\" + c if c in "%_\\" else c)
        elif c == "*":
            out.append("%")
        elif c == "?":
            out.append("_")
        elif c in "%_":
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def _glob_regex(glob: str) -> re.Pattern[str]:
    """The same glob as a Python regex, to match it against our own closed value lists."""
    out = []
    chars = iter(glob)
    for c in chars:
        if c == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _in(expr: str, values: list[str] | tuple[str, ...], p: Params) -> str:
    if not values:
        return "FALSE"
    return f"{expr} IN ({', '.join(p.bind(v) for v in values)})"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _duration(ns: float) -> str:
    for unit, size in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= size:
            return f"{_num(round(ns / size, 6))}{unit}"
    return f"{_num(ns)}ns"


# --- fields --------------------------------------------------------------------------


class Field:
    """A string-valued field; subclasses override the operators whose SQL differs."""

    match_verb = "is"
    # Columns the `group` expression reads, when it reads only a few plain columns: then
    # a grouping query can count per raw value first and map the few results (see reads).
    group_inputs: tuple[str, ...] | None = None

    def value(self, d: Dialect, p: Params) -> str:
        """The field's value as a string expression, NULL when absent."""
        raise NotImplementedError

    def match(self, value: str, d: Dialect, p: Params) -> str:
        return f"{self.value(d, p)} = {p.bind(value)}"

    def wildcard(self, glob: str, d: Dialect, p: Params) -> str:
        return d.like(self.value(d, p), p.bind(glob_to_like(glob)))

    def exists(self, d: Dialect, p: Params) -> str:
        return f"{self.value(d, p)} <> ''"

    def numeric(self, d: Dialect, p: Params) -> str:
        return d.to_double(self.value(d, p))

    def group(self, d: Dialect, p: Params) -> str:
        """String expression for grouping (facets, histogram `by`); NULL when absent."""
        v = self.value(d, p)
        return f"CASE WHEN {v} = '' THEN NULL ELSE {v} END"

    def format_number(self, value: float) -> str:
        return _num(value)


class Column(Field):
    """A string column; `lowercase` columns store lower-case hex ids."""

    def __init__(self, column: str, lowercase: bool = False) -> None:
        self.column = column
        self.lowercase = lowercase

    def value(self, d: Dialect, p: Params) -> str:
        return _ident(self.column)

    def match(self, value: str, d: Dialect, p: Params) -> str:
        return super().match(value.lower() if self.lowercase else value, d, p)

    def wildcard(self, glob: str, d: Dialect, p: Params) -> str:
        return super().wildcard(glob.lower() if self.lowercase else glob, d, p)


class TextColumn(Column):
    """Free-form text (a log body): `body:x` is a case-insensitive substring search."""

    match_verb = "contains"

    def match(self, value: str, d: Dialect, p: Params) -> str:
        return d.contains_ci(_ident(self.column), p.bind(value))

    def wildcard(self, glob: str, d: Dialect, p: Params) -> str:
        return d.like(_ident(self.column), p.bind(f"%{glob_to_like(glob)}%"), case_insensitive=True)


class Attribute(Field):
    """A key looked up in maps, first hit wins: `lookups` is ((map column, key), ...)."""

    def __init__(self, lookups: tuple[tuple[str, str], ...]) -> None:
        self.lookups = lookups

    def _keys(self, d: Dialect, p: Params) -> list[tuple[str, str]]:
        # Bind each distinct key once so the SQL stays readable.
        placeholders: dict[str, str] = {}
        out = []
        for col, key in self.lookups:
            bound = d.map_key(col, key)
            if bound not in placeholders:
                placeholders[bound] = p.bind(bound)
            out.append((col, placeholders[bound]))
        return out

    def value(self, d: Dialect, p: Params) -> str:
        gets = [d.map_get(_ident(col), key) for col, key in self._keys(d, p)]
        return gets[0] if len(gets) == 1 else f"coalesce({', '.join(gets)})"

    def match(self, value: str, d: Dialect, p: Params) -> str:
        v = self.value(d, p)
        number = _as_number(value)
        if number is None:
            return f"{v} = {p.bind(value)}"
        # Attributes are strings: "500" and "500.0" are the same status code.
        return f"({v} = {p.bind(value)} OR {d.to_double(v)} = {p.bind(number)})"

    def exists(self, d: Dialect, p: Params) -> str:
        return "(" + " OR ".join(d.map_has(_ident(col), key) for col, key in self._keys(d, p)) + ")"

    def group(self, d: Dialect, p: Params) -> str:
        return self.value(d, p)


class Enum(Field):
    """A column holding OTel enum strings (`STATUS_CODE_ERROR`), searched by short name."""

    def __init__(self, column: str, prefix: str, names: tuple[str, ...]) -> None:
        self.column = column
        self.prefix = prefix
        self.names = names  # short, lower-case: "error", "ok"

    def _stored(self, name: str) -> str:
        upper = name.upper()
        return upper if upper.startswith(self.prefix) else self.prefix + upper

    def value(self, d: Dialect, p: Params) -> str:
        return _ident(self.column)

    def match(self, value: str, d: Dialect, p: Params) -> str:
        return f"{_ident(self.column)} = {p.bind(self._stored(value))}"

    def wildcard(self, glob: str, d: Dialect, p: Params) -> str:
        pattern = _glob_regex(glob)
        hits = [
            self._stored(n) for n in self.names if pattern.fullmatch(n) or pattern.fullmatch(self._stored(n))
        ]
        return _in(_ident(self.column), hits, p)

    def group(self, d: Dialect, p: Params) -> str:
        col = _ident(self.column)
        whens = " ".join(f"WHEN {col} = {p.bind(self._stored(n))} THEN {p.bind(n)}" for n in self.names)
        return f"CASE {whens} WHEN {col} = '' THEN NULL ELSE {col} END"


class Severity(Field):
    """A log's level: its SeverityText or its SeverityNumber's range (see LEVELS)."""

    group_inputs = ("SeverityText", "SeverityNumber")

    def _level(self, name: str, d: Dialect, p: Params) -> str:
        _, low, high, synonyms = next(lv for lv in LEVELS if lv[0] == name)
        text = _in(d.lower(_ident("SeverityText")), synonyms, p)
        return f"({text} OR {_ident('SeverityNumber')} BETWEEN {p.bind(low)} AND {p.bind(high)})"

    def value(self, d: Dialect, p: Params) -> str:
        return _ident("SeverityText")

    def match(self, value: str, d: Dialect, p: Params) -> str:
        wanted = value.lower()
        for name, _, _, synonyms in LEVELS:
            if wanted in synonyms:
                return self._level(name, d, p)
        return f"{d.lower(_ident('SeverityText'))} = {p.bind(wanted)}"

    def wildcard(self, glob: str, d: Dialect, p: Params) -> str:
        pattern = _glob_regex(glob)
        levels = [self._level(name, d, p) for name, *_ in LEVELS if pattern.fullmatch(name)]
        text = d.like(d.lower(_ident("SeverityText")), p.bind(glob_to_like(glob.lower())))
        return "(" + " OR ".join([*levels, text]) + ")"

    def exists(self, d: Dialect, p: Params) -> str:
        return f"({_ident('SeverityText')} <> '' OR {_ident('SeverityNumber')} > 0)"

    def numeric(self, d: Dialect, p: Params) -> str:
        return d.to_float(_ident("SeverityNumber"))

    def group(self, d: Dialect, p: Params) -> str:
        text, number = d.lower(_ident("SeverityText")), _ident("SeverityNumber")
        by_text = [f"WHEN {_in(text, syn, p)} THEN {p.bind(name)}" for name, _, _, syn in LEVELS]
        by_number = [
            f"WHEN {number} BETWEEN {p.bind(low)} AND {p.bind(high)} THEN {p.bind(name)}"
            for name, low, high, _ in LEVELS
        ]
        return f"CASE {' '.join(by_text + by_number)} WHEN {text} <> '' THEN {text} END"


class Duration(Field):
    """A span's duration in ns: numeric, always present."""

    def value(self, d: Dialect, p: Params) -> str:
        return d.to_string(_ident("Duration"))

    def match(self, value: str, d: Dialect, p: Params) -> str:
        number = _as_number(value)
        return "FALSE" if number is None else f"{_ident('Duration')} = {p.bind(number)}"

    def wildcard(self, glob: str, d: Dialect, p: Params) -> str:
        return "FALSE"  # a number has no text to match

    def exists(self, d: Dialect, p: Params) -> str:
        return "TRUE"

    def numeric(self, d: Dialect, p: Params) -> str:
        return _ident("Duration")

    def group(self, d: Dialect, p: Params) -> str:
        return self.value(d, p)

    def format_number(self, value: float) -> str:
        return _duration(value)


# --- sources -------------------------------------------------------------------------

_HOST = Attribute((("ResourceAttributes", "host.name"),))
_ENV = Attribute(
    (("ResourceAttributes", "deployment.environment.name"), ("ResourceAttributes", "deployment.environment"))
)


class Source:
    """The searchable fields of one table."""

    def __init__(
        self,
        table: str,
        fields: dict[str, Field],
        attribute_maps: tuple[str, ...],
        text_columns: tuple[str, ...],
        text_label: str,
        attribute_columns: dict[str, Field] | None = None,
    ) -> None:
        self.table = table
        self.fields = fields
        self.attribute_maps = attribute_maps
        self.text_columns = text_columns
        self.text_label = text_label
        self.attribute_columns = attribute_columns or {}

    def field(self, name: str) -> tuple[Field, str]:
        """The Field a user's field name means, and its label for descriptions."""
        if name.startswith("@"):
            path = name[1:]
            known = self.attribute_columns.get(path.lower())
            return (known or self._attribute(path)), name
        known = self.fields.get(name.lower())
        if known is not None:
            return known, name.lower()
        return self._attribute(name), name

    def _attribute(self, path: str) -> Field:
        return Attribute(tuple((m, path) for m in self.attribute_maps))

    def text(self, node: ast.Text, d: Dialect, p: Params) -> str:
        if node.wildcard:
            pattern = p.bind(f"%{glob_to_like(node.value)}%")
            tests = [d.like(_ident(c), pattern, case_insensitive=True) for c in self.text_columns]
        else:
            needle = p.bind(node.value)
            tests = [d.contains_ci(_ident(c), needle) for c in self.text_columns]
        return tests[0] if len(tests) == 1 else "(" + " OR ".join(tests) + ")"


_SEVERITY = Severity()
LOGS = Source(
    table=schema.LOGS,
    fields={
        "service": Column("ServiceName"),
        "host": _HOST,
        "env": _ENV,
        "status": _SEVERITY,
        "level": _SEVERITY,
        "severity": _SEVERITY,
        "trace_id": Column("TraceId", lowercase=True),
        "span_id": Column("SpanId", lowercase=True),
        "message": TextColumn("Body"),
        "body": TextColumn("Body"),
    },
    attribute_maps=("LogAttributes", "ResourceAttributes"),
    text_columns=("Body",),
    text_label="body",
)

_SPAN_NAME = Column("SpanName")
_PARENT = Column("ParentSpanId", lowercase=True)
SPANS = Source(
    table=schema.TRACES,
    fields={
        "service": Column("ServiceName"),
        "host": _HOST,
        "env": _ENV,
        "status": Enum("StatusCode", "STATUS_CODE_", ("ok", "error", "unset")),
        "kind": Enum(
            "SpanKind", "SPAN_KIND_", ("server", "client", "internal", "producer", "consumer", "unspecified")
        ),
        "trace_id": Column("TraceId", lowercase=True),
        "span_id": Column("SpanId", lowercase=True),
        "parent_id": _PARENT,
        "parent_span_id": _PARENT,
        "resource_name": _SPAN_NAME,
        "resource": _SPAN_NAME,
        "operation_name": _SPAN_NAME,
        "name": _SPAN_NAME,
    },
    attribute_maps=("SpanAttributes", "ResourceAttributes"),
    text_columns=("SpanName", "StatusMessage"),
    text_label="name or status message",
    attribute_columns={"duration": Duration()},
)


# --- nodes ---------------------------------------------------------------------------

_COMPARISONS = {">": "is above", ">=": "is at least", "<": "is below", "<=": "is at most"}


def _leaf(sql: str) -> str:
    return f"coalesce({sql}, FALSE)"


def _sql_match(n: ast.Match, s: Source, d: Dialect, p: Params) -> str:
    field, _ = s.field(n.field)
    return _leaf(field.wildcard(n.value, d, p) if n.wildcard else field.match(n.value, d, p))


def _sql_compare(n: ast.Compare, s: Source, d: Dialect, p: Params) -> str:
    if n.op not in _COMPARISONS:
        raise ValueError(f"unknown comparison {n.op!r}")
    field, _ = s.field(n.field)
    return _leaf(f"{field.numeric(d, p)} {n.op} {p.bind(float(n.value))}")


def _sql_range(n: ast.Range, s: Source, d: Dialect, p: Params) -> str:
    field, _ = s.field(n.field)
    expr = field.numeric(d, p)
    lo, hi = (">=", "<=") if n.inclusive else (">", "<")
    tests = [f"{expr} IS NOT NULL"]
    if n.low is not None:
        tests.append(f"{expr} {lo} {p.bind(float(n.low))}")
    if n.high is not None:
        tests.append(f"{expr} {hi} {p.bind(float(n.high))}")
    return _leaf("(" + " AND ".join(tests) + ")")


def _sql_bool(op: str, empty: str) -> Callable[..., str]:
    def compile_children(n: ast.And | ast.Or, s: Source, d: Dialect, p: Params) -> str:
        parts = [compile_filter(c, s, d, p) for c in n.children]
        return f"({f' {op} '.join(parts)})" if parts else empty

    return compile_children


def _describe_match(n: ast.Match, s: Source) -> str:
    field, label = s.field(n.field)
    if n.wildcard:
        return f"{label} matches {n.value}"
    return f"{label} {field.match_verb} {n.value}"


def _describe_compare(n: ast.Compare, s: Source) -> str:
    field, label = s.field(n.field)
    return f"{label} {_COMPARISONS.get(n.op, n.op)} {field.format_number(n.value)}"


def _describe_range(n: ast.Range, s: Source) -> str:
    field, label = s.field(n.field)
    fmt = field.format_number
    if n.low is not None and n.high is not None:
        between = "between" if n.inclusive else "strictly between"
        return f"{label} is {between} {fmt(n.low)} and {fmt(n.high)}"
    if n.low is not None:
        return f"{label} {'is at least' if n.inclusive else 'is above'} {fmt(n.low)}"
    if n.high is not None:
        return f"{label} {'is at most' if n.inclusive else 'is below'} {fmt(n.high)}"
    return f"{label} is a number"


def _describe_text(n: ast.Text, s: Source) -> str:
    verb = "matches" if n.wildcard else "contains"
    return f"{s.text_label} {verb} '{n.value}'"


def _describe_bool(word: str, other: type) -> Callable[..., str]:
    def describe_children(n: ast.And | ast.Or, s: Source) -> str:
        parts = [f"({describe(c, s)})" if isinstance(c, other) else describe(c, s) for c in n.children]
        return f" {word} ".join(parts) if parts else ("everything" if word == "and" else "nothing")

    return describe_children


def _describe_not(n: ast.Not, s: Source) -> str:
    inner = describe(n.child, s)
    return f"not ({inner})" if isinstance(n.child, (ast.And, ast.Or)) else f"not {inner}"


class _NodeRule(NamedTuple):
    sql: Callable[..., str]  # (node, source, dialect, params) -> SQL
    describe: Callable[..., str]  # (node, source) -> English


_NODES: dict[type, _NodeRule] = {
    ast.Text: _NodeRule(lambda n, s, d, p: _leaf(s.text(n, d, p)), _describe_text),
    ast.Match: _NodeRule(_sql_match, _describe_match),
    ast.Exists: _NodeRule(
        lambda n, s, d, p: _leaf(s.field(n.field)[0].exists(d, p)),
        lambda n, s: f"{s.field(n.field)[1]} exists",
    ),
    ast.Compare: _NodeRule(_sql_compare, _describe_compare),
    ast.Range: _NodeRule(_sql_range, _describe_range),
    ast.And: _NodeRule(_sql_bool("AND", "TRUE"), _describe_bool("and", ast.Or)),
    ast.Or: _NodeRule(_sql_bool("OR", "FALSE"), _describe_bool("or", ast.And)),
    ast.Not: _NodeRule(lambda n, s, d, p: f"(NOT {compile_filter(n.child, s, d, p)})", _describe_not),
    ast.MatchAll: _NodeRule(lambda n, s, d, p: "TRUE", lambda n, s: "everything"),
}


def compile_filter(node: ast.Node, source: Source, dialect: Dialect, params: Params) -> str:
    """A boolean SQL expression, never NULL, true for the rows of `source` that `node`
    matches. Values are bound into `params`. Raises ValueError for a node type or
    operator the AST does not define (a parser bug, not a user error)."""
    rule = _NODES.get(type(node))
    if rule is None:
        raise ValueError(f"cannot compile {type(node).__name__}")
    return rule.sql(node, source, dialect, params)


def describe(node: ast.Node, source: Source) -> str:
    """`node` in plain English, e.g. "service is web and body contains 'timeout'"."""
    rule = _NODES.get(type(node))
    if rule is None:
        raise ValueError(f"cannot describe {type(node).__name__}")
    return rule.describe(node, source)


def group_expr(field_name: str, source: Source, dialect: Dialect, params: Params) -> str:
    """A string expression, NULL when absent, giving a record's value of `field_name`
    for grouping (facets, histogram `by`); severity groups by normalised level name."""
    field, _ = source.field(field_name)
    return field.group(dialect, params)


def group_inputs(field_name: str, source: Source) -> tuple[str, ...] | None:
    """The plain columns `group_expr(field_name)` reads, or None when it reads more
    (attribute maps): callers may then count per raw column values first."""
    field, _ = source.field(field_name)
    return field.group_inputs
