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
from toolkit.xpath.syntax import Binary, Call, Expr, LocationPath, Number, String, XPathError, parse

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

    def word(self, tree: Expr, *, top: bool = False) -> str:
        match tree:
            case Binary(op="and", left=left, right=right):
                # A chain of `and` at the top reads as a list of conditions: "Contact made = Yes; Age ≥ 15".
                first, second = self.word(left, top=top), self.word(right, top=top)
                return f"{first}; {second}" if top else f"{first} {self.words['and']} {second}"
            case Binary(op="or", left=left, right=right):
                either = f"{self.word(left)} {self.words['or']} {self.word(right)}"
                return either if top else f"({either})"
            case Binary(op=op, left=left, right=right) if op in _SYMBOLS:
                return self.comparison(op, left, right)
            case Call(name=name, args=args):
                return self.function(name, args)
            case LocationPath():
                return f"{self.label(self.node(tree))} {self.words['answered']}"
        raise _NotWordable

    def comparison(self, op: str, left: Expr, right: Expr) -> str:
        if not isinstance(left, LocationPath) and isinstance(right, LocationPath):
            left, right, op = right, left, _FLIPPED[op]
        match left, right:
            case Call(name="count", args=args), Number(value=number):
                if len(args) != 1 or not isinstance(args[0], LocationPath):
                    raise _NotWordable
                counted = self.node(args[0])
                return f"{self.words['count']} «{self.label(counted)}» {_SYMBOLS[op]} {_number(number)}"
            case LocationPath(), String(value="") if op in {"=", "!="}:
                return f"{self.label(self.node(left))} {self.words['unanswered' if op == '=' else 'answered']}"
            case LocationPath(), String(value=value) | Number(value=value):
                node = self.node(left)
                return f"{self.label(node)} {_SYMBOLS[op]} {self.value(node, value)}"
        raise _NotWordable

    def function(self, name: str, args: tuple[Expr, ...]) -> str:
        match name, args:
            case "selected", (LocationPath() as path, String(value=value) | Number(value=value)):
                node = self.node(path)
                return f"{self.label(node)} {self.words['includes']} {self.value(node, value)}"
            case "not", (Call(name="selected", args=(LocationPath() as path, String() | Number() as literal)),):
                node = self.node(path)
                return f"{self.label(node)} {self.words['excludes']} {self.value(node, literal.value)}"
            case "not", (inner,):
                return f"{self.words['not']} ({self.word(inner)})"
            case "true" | "false", ():
                return self.words["always" if name == "true" else "never"]
        raise _NotWordable

    def node(self, path: LocationPath) -> Node:
        if path.base is not None or any(step.predicates for step in path.steps):
            raise _NotWordable  # predicates, or a path from a function (instance('...')/...)
        parts = [] if path.absolute else self.context.split("/")[1:]
        for step in path.steps:
            if step.axis == "parent":
                parts = parts[:-1]
            elif step.axis == "self":
                continue
            elif step.axis == "child" and not step.name.startswith("*"):
                parts.append(step.name)
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
