"""The instance tree an expression is evaluated over (`XNode`, `build_tree`) and what else it may read (`EvalEnv`:
secondary instances, today, the time zone, pulldata() attachments)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any

from toolkit.xml import UntrustedXMLError, parse_untrusted
from toolkit.xpath.values import XPathEvalError, typed_value


class XNode:
    """One element (or attribute) of an instance: name, text, typed value, children, parent.

    `dtype` is the bind type (int, decimal, date, dateTime, boolean, string, ...) that types the node's value.
    """

    __slots__ = (
        "_chain",
        "_repeat_names",
        "_value",
        "attrs",
        "children",
        "dtype",
        "index",
        "is_attr",
        "name",
        "parent",
        "relevant",
        "text",
    )

    def __init__(self, name: str, text: str | None = None, parent: XNode | None = None, dtype: str | None = None):
        self.name = name
        self.text = text
        self.parent = parent
        self.children: list[XNode] = []
        self.attrs: dict[str, str] = {}
        self.dtype = dtype
        self.index = 0  # 0-based position among same-named siblings (JavaRosa's multiplicity)
        self.is_attr = False
        self._value: Any = None
        self._repeat_names: frozenset[str] | None = None
        self._chain: list[XNode] | None = None  # root .. self, once attached under its tree's root
        # JavaRosa reads a non-relevant node (or one inside a non-relevant group) as empty in every
        # expression.
        self.relevant = True

    def append(self, child: XNode) -> XNode:
        child.parent = self
        child.index = sum(1 for c in self.children if c.name == child.name)
        self.children.append(child)
        return child

    def child(self, name: str) -> XNode | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    @property
    def string(self) -> str:
        return self.text or ""

    def set(self, text: str | None, typed: Any = None) -> None:
        """Replace the node's text; `typed` is its in-memory value when it differs from the text's."""
        self.text = text
        self._value = typed

    @property
    def value(self) -> Any:
        """The node's value as JavaRosa's getRefValue gives it (typed by `dtype`; "" if non-relevant)."""
        if not self.relevant:
            return ""
        cached = self._value
        if cached is None:
            cached = self._value = typed_value(self.text, self.dtype)
        return cached

    def path(self, *, indexes: bool = True) -> str:
        """Absolute path; with indexes, ``[n]`` (1-based) on repeat instances and repeated elements."""
        parts = []
        node: XNode | None = self
        while node is not None:
            name = ("@" + node.name) if node.is_attr else node.name
            if indexes and node.parent is not None and not node.is_attr and _is_repeated(node):
                name += f"[{node.index + 1}]"
            parts.append(name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    def generic_path(self) -> str:
        return self.path(indexes=False)

    def find(self, path: str) -> XNode | None:
        """The first node at a simple absolute path (``/data/g/x``) below this tree's root."""
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] != self.name:
            return None
        node: XNode | None = self
        for part in parts[1:]:
            node = node.child(part) if node is not None else None
        return node

    def iter(self) -> Iterable[XNode]:
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def __repr__(self) -> str:
        return f"XNode({self.path()!r}, {self.text!r})"


def _is_repeated(node: XNode) -> bool:
    if node.index > 0:
        return True
    parent = node.parent
    if parent is None:
        return False
    if parent._repeat_names and node.name in parent._repeat_names:
        return True
    return sum(1 for c in parent.children if c.name == node.name) > 1


def _local_name(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def build_tree(element: Any, *, types: Mapping[str, str] | None = None, repeats: Iterable[str] = ()) -> XNode:
    """An instance tree (XNode) from an lxml element.

    Parameters:
        element: the root element of the instance (e.g. ``<data id=...>``) or of a secondary instance.
        types: bind type per generic path (``/data/age`` -> ``int``); nodes not listed are strings.
        repeats: generic paths of repeats, so that the first instance of a repeat is written ``x[1]`` in
            paths.
    """
    types = types or {}
    repeat_paths = set(repeats)

    def visit(el: Any, parent: XNode | None, prefix: str) -> XNode:
        name = _local_name(el.tag)
        path = f"{prefix}/{name}"
        kids = [c for c in el if isinstance(c.tag, str)]
        text = None if kids else el.text
        node = XNode(name, text, None, types.get(path))
        for key, value in el.attrib.items():
            attr = XNode(_local_name(key), value, node)
            attr.is_attr = True
            node.attrs[attr.name] = value
        if parent is not None:
            parent.append(node)
        for child in kids:
            visit(child, node, path)
        if repeat_paths:
            names = {p.rsplit("/", 1)[1] for p in repeat_paths if p.rsplit("/", 1)[0] == path}
            if names:
                node._repeat_names = frozenset(names)
        return node

    return visit(element, None, "")


@dataclass
class EvalEnv:
    """What an evaluation may read besides the context node.

    Parameters:
        root: the primary instance's root node.
        secondary: secondary instances by id (choice lists, CSV/XML attachments), each an XNode whose root is
            the instance's root element (``<root><item>...``).
        today: the date `today()` returns (fixed, so results are reproducible); `now` likewise.
        tz: local time zone for date conversions (JavaRosa uses the device's; UTC by default).
        choice_name: callback(value, question_path) -> label, for jr:choice-name().
        media_dir: folder of the form's attachments, for pulldata() (CSV files).
        current: the node the expression belongs to (for current() and once()); set by the caller.
    """

    root: XNode
    secondary: Mapping[str, XNode] = field(default_factory=dict)
    today: date | None = None
    now: datetime | None = None
    tz: tzinfo = UTC
    choice_name: Callable[[str, str], str] | None = None
    media_dir: Path | None = None
    current: XNode | None = None
    _pulldata_cache: dict[str, list[dict[str, str]]] = field(default_factory=dict, repr=False)

    def get_today(self) -> date:
        if self.today is not None:
            return self.today
        return datetime.now(self.tz).date()

    def get_now(self) -> datetime:
        if self.now is not None:
            return self.now
        return datetime.now(self.tz)


def load_secondary_instance(path: Path) -> XNode:
    """A secondary instance from an attachment: a CSV (one <item> per row) or an XML file."""
    if path.suffix.lower() == ".csv":
        root = XNode("root")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                item = root.append(XNode("item"))
                for key, value in row.items():
                    if key is not None:
                        item.append(XNode(key.strip(), value or ""))
        return root
    try:
        return build_tree(parse_untrusted(path.read_bytes()))
    except UntrustedXMLError as exc:
        if exc.reason == "doctype":
            raise XPathEvalError(f"{path.name}: attachments with a DOCTYPE are refused") from None
        raise XPathEvalError(f"{path.name}: the attachment {exc.message}") from None


def pulldata_rows(env: EvalEnv, name: str) -> list[dict[str, str]]:
    rows = env._pulldata_cache.get(name)
    if rows is None:
        if env.media_dir is None:
            raise XPathEvalError(f"pulldata('{name}', ...): no media folder given (use --media)")
        path = env.media_dir / (name if name.endswith(".csv") else name + ".csv")
        if not path.is_file():
            raise XPathEvalError(f"pulldata: attachment {path.name} not found in {env.media_dir}")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = [{(k or "").strip(): (v or "") for k, v in row.items()} for row in csv.DictReader(handle)]
        env._pulldata_cache[name] = rows
    return rows
