"""The plan: the union of the form versions' nodes as plain, picklable data (sent once to each worker)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from toolkit.xform import FormModel

FIELD, GROUP, REPEAT = 0, 1, 2
JR_TEMPLATE = "{http://openrosa.org/javarosa}template"
EMPTY_PLAN: dict[str, tuple] = {}


@dataclass
class FieldPlan:
    path: str
    name: str
    parent_name: str
    question_type: str
    data_type: str


@dataclass
class TablePlan:
    name: str
    path: str
    parent: int | None
    repeats: tuple[str, ...]  # repeat names from the outermost down to this one (empty for the main table)
    fields: list[FieldPlan] = field(default_factory=list)
    notes: list[FieldPlan] = field(default_factory=list)  # read but not written (notes carry no answer)


@dataclass
class Plan:
    root: str
    form_ids: frozenset[str]
    tables: list[TablePlan]
    tree: dict[str, tuple]  # child name -> (kind, path, table index, children)
    field_paths: list[tuple[str, ...]] = field(default_factory=list)  # per table, its fields' paths in order
    known: list[frozenset[str]] = field(default_factory=list)  # per table, field and note paths

    def __post_init__(self) -> None:
        self.field_paths = [tuple(f.path for f in t.fields) for t in self.tables]
        self.known = [frozenset(f.path for f in (*t.fields, *t.notes)) for t in self.tables]

    def freeze(self, rows: list[tuple], *, with_unknown: bool) -> list[tuple]:
        """Rows with `{path: text}` -> rows with the table's values as a tuple in column order, plus a dict of the
        values of undefined elements (None when there are none)."""
        frozen = []
        for table, key, parent, nos, values in rows:
            extra = None
            if with_unknown:
                known = self.known[table]
                extra = {path: text for path, text in values.items() if path not in known} or None
            frozen.append((table, key, parent, nos, tuple(map(values.get, self.field_paths[table])), extra))
        return frozen


def make_plan(forms: Sequence[FormModel]) -> Plan:
    """Merge the form versions: the first form's nodes in its order, then nodes only older versions have."""
    primary = forms[0]
    root = primary.root
    tables: list[TablePlan] = [TablePlan(primary.form_id, root, None, ())]
    table_of: dict[str, int] = {root: 0}
    tree: dict[str, tuple] = {}
    containers: dict[str, dict[str, tuple]] = {root: tree}
    field_paths: set[str] = set()
    for form in forms:
        prefix = form.root
        for node in form.nodes.values():
            if node.path == prefix:
                continue
            # Older versions may have another root name; their nodes are placed under the newest root.
            path = root + node.path[len(prefix) :]
            parent = root + (node.parent or prefix)[len(prefix) :]
            siblings = containers.get(parent)
            if path in containers or path in field_paths or siblings is None:
                continue
            owner = root + node.repeat[len(prefix) :] if node.repeat else root
            if node.kind == "field":
                field_paths.add(path)
                spec = FieldPlan(
                    path, node.name, parent.rsplit("/", 1)[-1], node.question_type, node.data_type or "string"
                )
                table = tables[table_of[owner]]
                (table.notes if node.question_type == "note" else table.fields).append(spec)
                siblings[node.name] = (FIELD, path, table_of[owner], None)
                continue
            children: dict[str, tuple] = {}
            containers[path] = children
            if node.kind == "repeat":
                table_of[path] = len(tables)
                tables.append(
                    TablePlan("", path, table_of[owner], (*tables[table_of[owner]].repeats, node.name))
                )
                siblings[node.name] = (REPEAT, path, table_of[path], children)
            else:
                siblings[node.name] = (GROUP, path, table_of[owner], children)
    # Central names repeat tables <form>-<repeat>, repeats sharing a name ~1, ~2 (document order).
    totals = Counter(t.path.rsplit("/", 1)[-1] for t in tables[1:])
    seen: Counter[str] = Counter()
    for table in tables[1:]:
        name = table.path.rsplit("/", 1)[-1]
        seen[name] += 1
        table.name = f"{primary.form_id}-{name}" + (f"~{seen[name]}" if totals[name] > 1 else "")
    return Plan(root, frozenset(f.form_id for f in forms), tables, tree)
