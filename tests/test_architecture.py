"""The layers of docs/architecture.md, checked on every import of toolkit/: no cycles, no upward or sideways
imports. Imports inside functions count too (the CLI imports stages lazily; they are still dependencies)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

TOOLKIT = REPO / "toolkit"

# Layer of each top-level module or package of toolkit/ (docs/architecture.md). Lower numbers are lower layers.
GROUND, MODEL, ENGINE, STAGE, ORCHESTRATION, INTERFACE = range(6)
LAYERS: dict[str, int] = {
    "toolkit": GROUND,  # the package itself: __version__ and the public re-exports
    "errors": GROUND,
    "report": GROUND,
    "files": GROUND,
    "config": GROUND,
    "settings": GROUND,
    "xml": GROUND,
    "archives": GROUND,
    "spreadsheet": GROUND,
    "tablefile": GROUND,
    "xlsform": GROUND,
    "xpath": GROUND,
    "crypto": GROUND,
    "forms": MODEL,
    "xform": MODEL,
    "wording": MODEL,
    "dataset": MODEL,
    "submissions": MODEL,
    "checks": MODEL,
    "estimate": ENGINE,
    "ingest": STAGE,
    "validate": STAGE,
    "simulate": STAGE,
    "weights": STAGE,
    "indicators": STAGE,
    "export": STAGE,
    "codebook": STAGE,
    "pipeline": ORCHESTRATION,
    "cli": INTERFACE,
    "__main__": INTERFACE,
}

# Crossings still to be moved down a layer (issue #11), each with what has to move. This list may only shrink:
# a crossing that is gone must be deleted here, and a new one fails the test.
KNOWN_CROSSINGS: dict[tuple[str, str], str] = {}

# `from module import _private` statements still crossing modules (30 when this test was written, mostly inside the
# crypto and ingest packages); the number may only go down.
PRIVATE_IMPORTS_LEFT = 4


def _module_of(path: Path) -> str:
    parts = path.relative_to(TOOLKIT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            # `from toolkit import crypto` imports the crypto package; `from toolkit import __version__` a name
            found.update(
                f"toolkit.{alias.name}" for alias in node.names if module == "toolkit" and alias.name in LAYERS
            )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "toolkit" or m.startswith("toolkit.")}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "toolkit"


def _edges() -> set[tuple[str, str]]:
    edges = set()
    for path in TOOLKIT.rglob("*.py"):
        source = _top(_module_of(path))
        for target in _imports(path):
            if _top(target) != source:
                edges.add((source, _top(target)))
    return edges


def test_every_module_has_a_layer() -> None:
    tops = {_top(_module_of(p)) for p in TOOLKIT.rglob("*.py")}
    assert sorted(tops - set(LAYERS)) == [], "add the new module to LAYERS and to docs/architecture.md"


def test_imports_go_down_the_layers() -> None:
    wrong = sorted(
        (a, b)
        for a, b in _edges()
        if (LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a] == STAGE)) and (a, b) not in KNOWN_CROSSINGS
    )
    assert wrong == [], f"imports that go up or sideways (move the shared piece down): {wrong}"


def test_known_crossings_still_exist() -> None:
    gone = sorted(set(KNOWN_CROSSINGS) - _edges())
    assert gone == [], f"these crossings are gone: delete them from KNOWN_CROSSINGS {gone}"


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for a, b in _edges():
        if (a, b) not in KNOWN_CROSSINGS:
            graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail(f"import cycle: {' -> '.join([*trail, node, nxt])}")
            if not state.get(nxt):
                visit(nxt, [*trail, node])
        state[node] = 2

    for node in sorted(graph):
        if not state.get(node):
            visit(node, [])


def test_no_private_names_imported_from_another_module() -> None:
    offenders = []
    for path in TOOLKIT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("toolkit"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    offenders.append(f"{path.relative_to(REPO)}: {node.module}.{', '.join(private)}")
    assert len(offenders) <= PRIVATE_IMPORTS_LEFT, "\n".join(offenders)

