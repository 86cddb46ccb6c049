"""Skip logic in words, for people who read codebooks rather than XPath.

A relevance such as `${contact} = '1' and ${hl_age} >= 15` becomes "Contact made = Yes; Age ≥ 15", with the
questions' labels and the choices' labels in the chosen language. Only the shapes that survey questionnaires use
are worded (comparisons of a question with a constant, `selected()`, `count()`, `not()`, `and`/`or`); anything
else returns None and the codebook shows the XPath alone, so a wording is never a guess.
"""

from __future__ import annotations

import re
from typing import Any

from toolkit.xform import FormModel, Node
from toolkit.xpath import XPathError, parse

_LABEL_MAX = 60
# The words around the labels, in the codebook's language (English when the language has no entry yet).
_WORDS = {
    "en": {
        "and": "and",
        "or": "or",
        "not": "not",
        "includes": "includes",
        "excludes": "does not include",
        "answered": "is answered",
        "unanswered": "is not answered",
        "count": "number of",
        "always": "always",
        "never": "never",
    },
    "ru": {
        "and": "и",
        "or": "или",
        "not": "не",
        "includes": "включает",
        "excludes": "не включает",
        "answered": "есть ответ",
        "unanswered": "нет ответа",
        "count": "число записей",
        "always": "всегда",
        "never": "никогда",
    },
}
_LANGUAGE_CODE = re.compile(r"\(([a-z]{2,3})\)\s*$")
_SYMBOLS = {"=": "=", "!=": "≠", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


class _NotWordable(Exception):
    pass


def in_words(form: FormModel, expression: str | None, context: str, language: str | None) -> str | None:
    """The expression in words, or None when it has a shape that is not worded.

    Parameters:
        form: the form model (labels, choice lists).
        expression: an XForm expression (a bind's relevant), with absolute or relative node paths.
        context: the path of the node whose bind holds the expression (for relative paths).
        language: the label language; default the form's default.
    """
    if not expression:
        return None
    try:
        tree = parse(expression)
        return _Worder(form, context, language).word(tree, top=True)
    except (_NotWordable, XPathError, RecursionError):
        return None


class _Worder:
    def __init__(self, form: FormModel, context: str, language: str | None) -> None:
        self.form = form
        self.context = context
        self.language = language
        code = _LANGUAGE_CODE.search(language or "")
        self.words = _WORDS.get(code.group(1) if code else (language or "en")[:2].lower(), _WORDS["en"])

    def word(self, tree: tuple, *, top: bool = False) -> str:
        kind = tree[0]
        if kind == "bin" and tree[1] == "and":
            # A chain of `and` at the top reads as a list of conditions: "Contact made = Yes; Age ≥ 15".
            left, right = self.word(tree[2], top=top), self.word(tree[3], top=top)
            return f"{left}; {right}" if top else f"{left} {self.words['and']} {right}"
        if kind == "bin" and tree[1] == "or":
            left, right = self.word(tree[2]), self.word(tree[3])
            either = f"{left} {self.words['or']} {right}"
            return either if top else f"({either})"
        if kind == "bin" and tree[1] in _SYMBOLS:
            return self.comparison(tree[1], tree[2], tree[3])
        if kind == "func":
            return self.function(tree[1], tree[2])
        if kind == "path":
            return f"{self.label(self.node(tree))} {self.words['answered']}"
        raise _NotWordable

    def comparison(self, op: str, left: tuple, right: tuple) -> str:
        if left[0] != "path" and right[0] == "path":
            left, right, op = right, left, _FLIPPED[op]
        if left[0] == "func" and left[1] == "count" and right[0] == "num":
            counted = self.node(left[2][0]) if len(left[2]) == 1 and left[2][0][0] == "path" else None
            if counted is None:
                raise _NotWordable
            return f"{self.words['count']} «{self.label(counted)}» {_SYMBOLS[op]} {_number(right[1])}"
        if left[0] != "path" or right[0] not in {"str", "num"}:
            raise _NotWordable
        node = self.node(left)
        value = right[1]
        if right[0] == "str" and value == "" and op in {"=", "!="}:
            return f"{self.label(node)} {self.words['unanswered' if op == '=' else 'answered']}"
        return f"{self.label(node)} {_SYMBOLS[op]} {self.value(node, value)}"

    def function(self, name: str, args: tuple) -> str:
        if name == "selected" and len(args) == 2 and args[0][0] == "path" and args[1][0] in {"str", "num"}:
            node = self.node(args[0])
            return f"{self.label(node)} {self.words['includes']} {self.value(node, args[1][1])}"
        if name == "not" and len(args) == 1:
            inner = args[0]
            if inner[0] == "func" and inner[1] == "selected" and len(inner[2]) == 2 and inner[2][0][0] == "path":
                node = self.node(inner[2][0])
                return f"{self.label(node)} {self.words['excludes']} {self.value(node, inner[2][1][1])}"
            return f"{self.words['not']} ({self.word(inner)})"
        if name in {"true", "false"} and not args:
            return self.words["always" if name == "true" else "never"]
        raise _NotWordable

    def node(self, path: tuple) -> Node:
        _, absolute, steps, base = path
        if base is not None or any(step[2] for step in steps):
            raise _NotWordable  # predicates, or a path from a function (instance('...')/...)
        parts = [] if absolute else self.context.split("/")[1:]
        for axis, name, _predicates in steps:
            if axis == "parent":
                parts = parts[:-1]
            elif axis == "self":
                continue
            elif axis == "child" and not name.startswith("*"):
                parts.append(name)
            else:
                raise _NotWordable
        found = self.form.nodes.get("/" + "/".join(parts))
        if found is None:
            raise _NotWordable
        return found

    def label(self, node: Node) -> str:
        text = " ".join((node.label(self.language) or node.name).split())
        return text if len(text) <= _LABEL_MAX else text[: _LABEL_MAX - 1].rstrip() + "…"

    def value(self, node: Node, value: Any) -> str:
        shown = _number(value) if isinstance(value, float) else str(value)
        choice_list = self.form.choice_lists.get(node.choice_list) if node.choice_list else None
        if choice_list is not None:
            for choice in choice_list.choices:
                if choice.name == shown:
                    return " ".join((choice.label(self.language) or shown).split())
        return shown if isinstance(value, float) else f"'{shown}'"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
