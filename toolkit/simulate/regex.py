"""Strings that match a `regex()` constraint, for text questions such as IDs, phone numbers and codes.

ODK evaluates `regex(., 'pattern')` with Java's regular expressions; XLSForms use a small part of them: literals
and escapes, character classes with ranges and negation, `\\d \\w \\s` and their negations, `\\p{L}`-style
Unicode classes, `.`, groups (capturing, `(?:...)`, named), alternation, the quantifiers `* + ? {n} {n,} {n,m}`
and their lazy forms, inline flags such as `(?i)` and the anchors `^ $ \\b` (which generate nothing: an answer
is the whole string). Lookarounds, back-references, possessive quantifiers and class intersections
(`[a-z&&[^x]]`) are refused with `RegexUnsupported`; the caller then falls back to its usual draws.

The generator is seeded by the caller's `random.Random`, so that simulated answers stay reproducible. The
result is not guaranteed to match a pattern whose anchors sit in the middle or whose branches contradict each
other; callers check the constraint with the evaluator and draw again.
"""


from __future__ import annotations

import random
import string
from dataclasses import dataclass
from functools import lru_cache

# Unbounded quantifiers (`*`, `+`, `{n,}`) repeat at most this many times more than their minimum.
EXTRA_REPEATS = 3
# What `.` and negated classes draw from: printable ASCII without line breaks. Java's \w is ASCII while the
# evaluator's (Python's) is Unicode, so non-ASCII letters are only drawn for \p{L}-style classes.
_ANY = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
_DIGITS = list(string.digits)
_WORD = list(string.ascii_letters + string.digits + "_")
_SPACE = [" "]
_LETTERS = list(string.ascii_letters + "абвгдежзийклмнопрстуфхцчшщыэюя")
_UPPER = list(string.ascii_uppercase + "АБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЫЭЮЯ")
_LOWER = list(string.ascii_lowercase + "абвгдежзийклмнопрстуфхцчшщыэюя")
# Java's \p{...} classes that forms use, by name (POSIX names included: \p{Alpha}, \p{Digit}, ...).
_PROPERTIES: dict[str, list[str]] = {
    "L": _LETTERS,
    "IsAlphabetic": _LETTERS,
    "Alpha": list(string.ascii_letters),
    "Lu": _UPPER,
    "Upper": list(string.ascii_uppercase),
    "Ll": _LOWER,
    "Lower": list(string.ascii_lowercase),
    "N": _DIGITS,
    "Nd": _DIGITS,
    "Digit": _DIGITS,
    "Alnum": list(string.ascii_letters + string.digits),
    "Punct": list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "Space": _SPACE,
    "XDigit": list(string.hexdigits),
}
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "e": "\x1b", "a": "\x07"}


class RegexUnsupported(ValueError):
    """The pattern uses a construct the generator does not produce (lookaround, back-reference, ...)."""


@dataclass(frozen=True)
class _Chars:
    """One character from a set (`chars`), or from everything except it (`negated`)."""

    chars: frozenset[str]
    negated: bool = False


@dataclass(frozen=True)
class _Repeat:
    item: _Node
    low: int
    high: int | None


@dataclass(frozen=True)
class _Sequence:
    items: tuple[_Node, ...]


@dataclass(frozen=True)
class _Either:
    branches: tuple[_Node, ...]


_Node = _Chars | _Repeat | _Sequence | _Either | str  # a str is a literal


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def fail(self, what: str) -> RegexUnsupported:
        return RegexUnsupported(f"{what} at position {self.at} of {self.text!r}")

    def peek(self) -> str | None:
        return self.text[self.at] if self.at < len(self.text) else None

    def take(self) -> str:
        if self.at >= len(self.text):
            raise self.fail("unexpected end")
        char = self.text[self.at]
        self.at += 1
        return char

    def parse(self) -> _Node:
        node = self.alternation()
        if self.at != len(self.text):
            raise self.fail("unbalanced ')'")
        return node

    def alternation(self) -> _Node:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.at += 1
            branches.append(self.sequence())
        return branches[0] if len(branches) == 1 else _Either(tuple(branches))

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while self.peek() not in {None, "|", ")"}:
            atom = self.atom()
            if atom is None:
                continue
            items.append(self.quantified(atom))
        return items[0] if len(items) == 1 else _Sequence(tuple(items))

    def quantified(self, atom: _Node) -> _Node:
        char = self.peek()
        if char in {"*", "+", "?"}:
            self.at += 1
            low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{" and self._counted():
            low, high = self._bounds()
        else:
            return atom
        if self.peek() == "?":  # a lazy quantifier matches the same whole strings
            self.at += 1
        elif self.peek() == "+":  # a possessive one gives nothing back: `a*+a` matches nothing
            raise self.fail("possessive quantifiers are not generated")
        return _Repeat(atom, low, high)

    def _counted(self) -> bool:
        end = self.text.find("}", self.at)
        inside = self.text[self.at + 1 : end] if end > 0 else ""
        low, _, high = inside.partition(",")
        return bool(low.isdigit() and (high == "" or high.isdigit()))

    def _bounds(self) -> tuple[int, int | None]:
        end = self.text.index("}", self.at)
        low, comma, high = self.text[self.at + 1 : end].partition(",")
        self.at = end + 1
        bounds = (int(low), (int(high) if high else None) if comma else int(low))
        if bounds[1] is not None and bounds[1] < bounds[0]:
            raise self.fail("a {n,m} with m below n")
        return bounds

    def atom(self) -> _Node | None:
        char = self.take()
        if char in "^$":
            return None  # an answer is the whole string: anchors generate nothing
        if char == ".":
            return _Chars(frozenset("\n"), negated=True)
        if char == "[":
            return self.char_class()
        if char == "(":
            return self.group()
        if char == "\\":
            return self.escape(in_class=False)
        if char in "*+?":
            raise self.fail(f"nothing to repeat before {char!r}")
        return char

    def group(self) -> _Node | None:
        if self.peek() == "?":
            self.at += 1
            kind = self.take()
            if kind == ":":
                pass
            elif kind == "<" and self.peek() not in {"=", "!"}:
                self.at = self.text.index(">", self.at) + 1  # a named group
            elif kind in "=!<>":
                raise self.fail("lookarounds are not generated")
            else:  # inline flags: (?i), (?u), (?i:...)
                flags = kind
                while self.peek() not in {")", ":", None}:
                    flags += self.take()
                if not set(flags) <= set("imsuxdU-"):
                    raise self.fail(f"unknown group (?{flags}")
                if self.take() == ")":
                    return None
        inner = self.alternation()
        if self.take() != ")":
            raise self.fail("missing ')'")
        return inner

    def escape(self, *, in_class: bool) -> _Node:  # noqa: PLR0911 (one return per kind of escape)
        char = self.take()
        classes = {"d": _DIGITS, "w": _WORD, "s": _SPACE}
        if char.lower() in classes:
            return _Chars(frozenset(classes[char.lower()]), negated=char.isupper())
        if char in "pP":
            name = self.take()
            if name == "{":
                end = self.text.index("}", self.at)
                name, self.at = self.text[self.at : end], end + 1
            name = name.removeprefix("Is") if name.removeprefix("Is") in _PROPERTIES else name
            if name not in _PROPERTIES:
                raise self.fail(f"unknown class \\p{{{name}}}")
            return _Chars(frozenset(_PROPERTIES[name]), negated=char == "P")
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        if char == "u":
            code, self.at = self.text[self.at : self.at + 4], self.at + 4
            return chr(int(code, 16))
        if char == "x":
            code, self.at = self.text[self.at : self.at + 2], self.at + 2
            return chr(int(code, 16))
        if char in "bBAzZG" and not in_class:
            return _Sequence(())  # boundaries and anchors generate nothing
        if char.isdigit() or char in "kQE":
            raise self.fail(f"\\{char} (back-references and quoting) is not generated")
        if char.isalnum():
            raise self.fail(f"unknown escape \\{char}")
        return char

    def char_class(self) -> _Chars:  # noqa: PLR0912
        negated = self.peek() == "^"
        if negated:
            self.at += 1
        members: set[str] = set()
        first = True
        while True:
            char = self.take()
            if char == "]" and not first:
                break
            first = False
            if char == "[" or (char == "&" and self.peek() == "&"):
                raise self.fail("nested classes and intersections are not generated")
            if char == "\\":
                item = self.escape(in_class=True)
                if isinstance(item, _Chars):
                    if item.negated:  # \D, \W, \S inside a class: everything the generator draws but them
                        members |= {c for c in _ANY if c not in item.chars}
                    else:
                        members |= item.chars
                    continue
                char = item if isinstance(item, str) else ""
            if self.peek() == "-" and self.at + 1 < len(self.text) and self.text[self.at + 1] != "]":
                self.at += 1
                end = self.take()
                if end == "\\":
                    escaped = self.escape(in_class=True)
                    if not isinstance(escaped, str):
                        raise self.fail("a range ending in a class")
                    end = escaped
                if ord(end) < ord(char):
                    raise self.fail(f"range {char}-{end} runs backwards")
                members |= {chr(c) for c in range(ord(char), ord(end) + 1)}
            else:
                members.add(char)
        return _Chars(frozenset(members), negated)


@lru_cache(maxsize=512)
def _parsed(pattern: str) -> _Node:
    return _Parser(pattern).parse()


def check_pattern(pattern: str) -> None:
    """Raise RegexUnsupported when `pattern` uses a construct the generator cannot produce strings for."""
    _parsed(pattern)


def matching_string(pattern: str, rng: random.Random) -> str:
    """A random string that the Java regular expression `pattern` matches whole (anchors are implied).

    Parameters:
        pattern: the second argument of a `regex()` constraint.
        rng: the generator to draw from (the simulated instance's).

    Raises RegexUnsupported for lookarounds, back-references and class intersections.
    """
    parts: list[str] = []
    _emit(_parsed(pattern), rng, parts)
    return "".join(parts)


def _emit(node: _Node, rng: random.Random, parts: list[str]) -> None:
    if isinstance(node, str):
        parts.append(node)
    elif isinstance(node, _Chars):
        parts.append(rng.choice(_pool(node)))
    elif isinstance(node, _Sequence):
        for item in node.items:
            _emit(item, rng, parts)
    elif isinstance(node, _Either):
        _emit(rng.choice(node.branches), rng, parts)
    else:
        high = node.high if node.high is not None else node.low + EXTRA_REPEATS
        for _ in range(rng.randint(node.low, high)):
            _emit(node.item, rng, parts)


@lru_cache(maxsize=1024)
def _pool(chars: _Chars) -> list[str]:
    if not chars.negated:
        if not chars.chars:
            raise RegexUnsupported("an empty character class matches nothing")
        return sorted(chars.chars)
    left = [c for c in _ANY if c not in chars.chars]
    if not left:
        raise RegexUnsupported("a negated class that excludes every character the generator draws")
    return left


__all__ = ["RegexUnsupported", "check_pattern", "matching_string"]
