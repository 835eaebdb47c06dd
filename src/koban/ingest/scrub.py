"""Secret scrubbing: rules that mask passwords, tokens, card numbers and keys in text.

A rule is a plain tuple `(name, pattern, replacement, fields, check)` so a rule set can
be pickled to the decode worker processes as it is; `compile_rules` turns it into a
`Scrubber` once per process (cached). `fields` empty means everywhere; otherwise the
rule only touches the body (`"body"`) and attribute values whose key is listed.
`check` changes how a rule applies: `"luhn"` masks only digit runs that are valid card
numbers (so order ids and timestamps stay), `"key"` matches the attribute's key and
masks its whole value.

Cost: `Scrubber.suspects` finds, in one pass over a whole request's values, the few
that a rule may change (trigger words of the default rules, a user rule's own pattern);
only those go through `scrub` (benchmarks/README.md has the numbers).
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from itertools import accumulate
from typing import NamedTuple

from koban.errors import ConfigError

REDACTED = "[REDACTED]"
BODY = "body"  # the `fields` name of a log body

Rule = tuple[str, str, str, tuple[str, ...], str]
"""(name, regex pattern, replacement (re.sub syntax), fields, check)."""

DEFAULT_RULES: tuple[Rule, ...] = (
    # check "key": the pattern is searched in the attribute's key, and a hit masks the
    # whole value, whatever it looks like (http.request.header.authorization, db.password)
    ("sensitive_key", r"(?i)(?:^|[._-])(?:password|passwd|secret|api[_-]?key|authorization|access[_-]?token|"
     r"client[_-]?secret|private[_-]?key|cookie|set[_-]cookie)$", REDACTED, (), "key"),
    # "Authorization: Basic dXNlcjpwYXNz", "authorization=Bearer abc": the scheme and credential
    ("authorization", r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?:[A-Za-z]+\s+)?[^\s\"',;&]+",
     r"\1" + REDACTED, (), ""),
    ("bearer_token", r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", r"\1" + REDACTED, (), ""),
    # password=..., "passwd": "...", secret: ..., api_key=...
    ("password", r"(?i)\b(password|passwd|pwd|secret|api[_-]?key)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+",
     r"\1\2" + REDACTED, (), ""),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED, (), ""),
    ("aws_secret_access_key", r"(?i)(aws_secret_access_key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
     r"\1" + REDACTED, (), ""),
    # 13-19 digits starting like a card (2-6: Mastercard, Amex, Visa, Discover...),
    # optionally grouped by spaces or dashes; masked only if Luhn-valid. The first digit
    # keeps epoch timestamps (1...) out.
    ("credit_card", r"(?<![\d-])[2-6](?:[ -]?\d){12,18}(?!\d)", REDACTED, (), "luhn"),
)


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (as card numbers do)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _luhn_replacement(replacement: str) -> Callable[[re.Match], str]:
    def replace(m: re.Match) -> str:
        digits = re.sub(r"[ -]", "", m.group(0))
        return replacement if 13 <= len(digits) <= 19 and luhn_valid(digits) else m.group(0)

    return replace


class CompiledRule(NamedTuple):
    name: str
    regex: re.Pattern
    replacement: str | Callable[[re.Match], str]
    fields: frozenset[str]  # empty: everywhere


# Each default value rule needs one of its trigger words in the lower-cased text (card
# numbers: eight digits, perhaps split in two groups of four), and at least
# _DEFAULT_MIN_LENGTH characters. `suspects` finds the triggers in a whole list of
# values at once with str.find (a C loop, far faster than one regex alternation, let
# alone the rules themselves, which are case-insensitive with look-arounds); a value
# with a trigger goes only through the rules its triggers name.
# The words are as long as the rules allow: "passed" or "authorized" in a log line
# must not make it a suspect (each suspect costs a pass of every rule).
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "authorization": ("authorization",),
    "bearer_token": ("bearer",),
    "password": ("passw", "pwd", "secret", "api_key", "api-key", "apikey"),
    "aws_access_key_id": ("akia", "asia"),
    "aws_secret_access_key": ("secret",),
    "credit_card": (),  # digits: _CARD_START
}
_TRIGGER_WORDS = tuple(dict.fromkeys(w for words in _TRIGGERS.values() for w in words))
# Digits that may start a card number become "1", the others "0": then the start of
# a card is a "1" and seven more digits (maybe split after four), a pattern sre finds
# by jumping from "1" to "1" (a literal first character), past runs of zeros and ones
# such as zero-padded ids.
_CARD_DIGITS = str.maketrans("0123456789", "0011111000")
_CARD_START = re.compile(r"1(?:[01]{7}|[01]{3}[ -][01]{4})")


def _find_all(text: str, words: tuple[str, ...]) -> list[int]:
    """Start offsets of every occurrence of each of `words` in `text`."""
    out = []
    for w in words:
        i = text.find(w)
        while i >= 0:
            out.append(i)
            i = text.find(w, i + len(w))
    return out


_DEFAULT_MIN_LENGTH = 5  # "pwd=x"


class Scrubber:
    """A compiled rule set: `scrub` masks a value, `sensitive_key_rule` says whether an
    attribute's key alone masks it."""

    def __init__(
        self,
        default_rules: tuple[CompiledRule, ...] = (),
        user_rules: tuple[CompiledRule, ...] = (),
        key_rules: tuple[CompiledRule, ...] = (),
    ) -> None:
        self.default_rules = default_rules
        self.user_rules = user_rules
        self.key_rules = key_rules
        self._key_cache: dict[str, CompiledRule | None] = {}

    @property
    def scrubs_values(self) -> bool:
        return bool(self.default_rules or self.user_rules)

    def sensitive_key_rule(self, key: str) -> CompiledRule | None:
        """The key rule that masks every value of attribute `key`; None when none does."""
        if not self.key_rules:
            return None
        try:
            return self._key_cache[key]
        except KeyError:
            pass
        hit = next((r for r in self.key_rules if r.regex.search(key) is not None), None)
        if len(self._key_cache) < 10_000:  # keys repeat; a flood of unique keys must not grow it
            self._key_cache[key] = hit
        return hit

    def suspects(self, values: list[str]) -> Iterable[int]:
        """Indices of `values` that a value rule may change (a superset of those it
        will). The text is searched once, all of `values` joined by NULs, not value by
        value: for the default rules their trigger words; for a user rule its own
        pattern, every value a match touches counting (a match may run across a NUL,
        which hides no match from the scan). A user pattern whose meaning could
        change at a value's edge (anchors, look-arounds) makes every value a suspect."""
        if not values:
            return ()
        if any(not _scannable(r.regex) for r in self.user_rules):
            return range(len(values))
        joined = "\x00".join(values)  # no trigger holds a NUL, so no hit spans two values
        spans: list[tuple[int, int]] = []
        if self.default_rules:
            low = joined.lower()
            if len(low) != len(joined):  # a few characters lower-case to two: positions would drift
                return range(len(values))
            spans += [(i, i) for i in _find_all(low, _TRIGGER_WORDS)]
            # a card number starts a digit run (the rule's look-behind) with a 2-6
            spans += [
                (m.start(), m.start()) for m in _CARD_START.finditer(joined.translate(_CARD_DIGITS))
                if m.start() == 0 or not joined[m.start() - 1].isdigit()
            ]
        for rule in self.user_rules:
            spans += [(m.start(), max(m.start(), m.end() - 1)) for m in rule.regex.finditer(joined)]
        if not spans:
            return ()
        starts = list(accumulate([len(v) + 1 for v in values], initial=0))
        found: set[int] = set()
        for first, last in spans:
            found.update(range(bisect_right(starts, first) - 1, bisect_right(starts, last)))
        return sorted(i for i in found if i < len(values))

    def scrub(self, value: str, field: str, counts: dict[str, int]) -> str:
        """`value` (the body when `field` is BODY, else the value of attribute `field`)
        with every rule applied; each rule that changed it adds 1 to counts[rule name]."""
        if self.default_rules and len(value) >= _DEFAULT_MIN_LENGTH:
            low = value.lower()
            for rule in self.default_rules:
                words = _TRIGGERS[rule.name]
                if words:
                    hit = any(w in low for w in words)
                else:
                    hit = _CARD_START.search(value.translate(_CARD_DIGITS)) is not None
                if hit:
                    value = _apply((rule,), value, counts)
        for rule in self.user_rules:
            if (not rule.fields or field in rule.fields) and rule.regex.search(value) is not None:
                value = _apply((rule,), value, counts)
        return value


_EDGE_SENSITIVE = re.compile(r"\^|\$|\\A|\\Z|\(\?[=!]|\(\?<[=!]|\(\?\(")


def _scannable(regex: re.Pattern) -> bool:
    """Whether `regex` finds in NUL-joined values every value it matches alone: not
    when it has anchors, look-arounds or conditionals, which see the NULs."""
    return _EDGE_SENSITIVE.search(regex.pattern) is None


def _apply(rules: tuple[CompiledRule, ...], value: str, counts: dict[str, int]) -> str:
    for rule in rules:
        new = rule.regex.sub(rule.replacement, value)
        if new != value:
            counts[rule.name] = counts.get(rule.name, 0) + 1
            value = new
    return value


def parse_user_rules(tables: tuple[dict, ...]) -> tuple[Rule, ...]:
    """`[[scrub_rules]]` tables as rules (missing `replacement`: REDACTED). Raises ConfigError naming the rule for a
    missing or unknown key, a field of the wrong type, or a regex that does not compile."""
    rules = []
    for i, table in enumerate(tables):
        name = table.get("name")
        label = f"scrub_rules[{i}]" + (f" ({name!r})" if name else "")
        unknown = set(table) - {"name", "pattern", "replacement", "fields"}
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {', '.join(sorted(unknown))}; "
                              "use name, pattern, replacement, fields")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{label}: 'name' must be a non-empty string")
        pattern = table.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{label}: 'pattern' must be a non-empty regular expression")
        replacement = table.get("replacement", REDACTED)
        if not isinstance(replacement, str):
            raise ConfigError(f"{label}: 'replacement' must be a string")
        fields = table.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"{label}: 'fields' must be a list of strings (attribute keys or \"body\")")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{label}: invalid regular expression {pattern!r}: {exc}") from None
        _check_replacement(label, regex, replacement)
        rules.append((name, pattern, replacement, tuple(fields), ""))
    return tuple(rules)


def _check_replacement(label: str, regex: re.Pattern, replacement: str) -> None:
    """A replacement that refers to a group the pattern lacks fails only on a match;
    find it now, at startup, not in the middle of ingest."""
    for ref in re.findall(r"\\(\d+)|\\g<(\w+)>", replacement):
        number, named = ref
        if number and int(number) > regex.groups:
            raise ConfigError(f"{label}: replacement refers to group {number} but the pattern has {regex.groups}")
        if named and not named.isdigit() and named not in regex.groupindex:
            raise ConfigError(f"{label}: replacement refers to group {named!r} the pattern does not define")
        if named.isdigit() and int(named) > regex.groups:
            raise ConfigError(f"{label}: replacement refers to group {named} but the pattern has {regex.groups}")


def rule_set(default_rules: bool, user_rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The rules in the order they apply: the defaults (when on), then the user's."""
    return (DEFAULT_RULES if default_rules else ()) + tuple(user_rules)


@functools.lru_cache(maxsize=8)
def compile_rules(rules: tuple[Rule, ...]) -> Scrubber:
    """The Scrubber for `rules` (compiled once per process and rule set). Raises
    re.error for a pattern that does not compile (parse_user_rules checks them first)."""
    default, user, keys = [], [], []
    for rule in rules:
        name, pattern, replacement, fields, check = rule
        regex = re.compile(pattern)
        repl: str | Callable[[re.Match], str] = _luhn_replacement(replacement) if check == "luhn" else replacement
        compiled = CompiledRule(name, regex, repl, frozenset(fields))
        if check == "key":
            keys.append(compiled)
        elif rule in DEFAULT_RULES:  # their triggers are known (_TRIGGERS)
            default.append(compiled)
        else:
            user.append(compiled)
    return Scrubber(tuple(default), tuple(user), tuple(keys))
