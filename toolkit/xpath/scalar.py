"""The per-instance evaluator: a syntax tree compiled once into Python closures over `XNode` trees."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from functools import lru_cache
from typing import Any

from toolkit.xpath.functions import FUNCTIONS, STRING_FUNCTIONS, XPathUnsupportedError
from toolkit.xpath.instance import EvalEnv, XNode
from toolkit.xpath.syntax import (
    Binary,
    Call,
    Expr,
    LocationPath,
    Negate,
    Number,
    Step,
    String,
    XPathSyntaxError,
    parse,
    walk,
)
from toolkit.xpath.values import NAN, XPathEvalError, to_boolean, to_int, to_number, to_string, unpack

Fn = Callable[[XNode, int, int, EvalEnv], Any]


# Functions whose value may change between evaluations on the same data: a stored value is never a mismatch.
VOLATILE_FUNCTIONS = frozenset({"now", "today", "random", "uuid", "randomize", "once", "property"})


def compile_tree(node: Expr) -> Fn:
    """The evaluation function `fn(context, position, size, env)` of a syntax tree."""
    match node:
        case Number(value=number):
            return lambda n, p, s, e: number
        case String(value=text):
            return lambda n, p, s, e: text
        case Negate(operand=operand):
            inner = compile_tree(operand)
            return lambda n, p, s, e: -to_number(inner(n, p, s, e), e.tz)
        case Binary(op=op, left=left, right=right):
            return _compile_binary(op, compile_tree(left), compile_tree(right))
        case Call(name=name, args=args):
            return _compile_function(name, args)
        case LocationPath():
            return _compile_path(node)
    raise XPathSyntaxError(f"{type(node).__name__} cannot stand in an XForm expression", node.pos)


def _apply_predicates(nodes: list[XNode], predicates: tuple[Fn, ...], env: EvalEnv) -> list[XNode]:
    for predicate in predicates:
        size = len(nodes)
        kept = []
        for position, candidate in enumerate(nodes, start=1):
            result = predicate(candidate, position, size, env)
            if isinstance(result, float):
                if result == position:
                    kept.append(candidate)
            elif to_boolean(result):
                kept.append(candidate)
        nodes = kept
    return nodes


def _compile_step(step: Step) -> Callable[[list[XNode], EvalEnv], list[XNode]]:
    """One step of the axes JavaRosa evaluates: child (by name or *), attribute (by name), '.' and '..'."""
    axis = step.axis
    predicates = tuple(compile_tree(p) for p in step.predicates)
    local = step.local_name

    def select(node: XNode) -> list[XNode]:
        if axis == "child":
            if local == "*":
                return list(node.children)
            return [c for c in node.children if c.name == local]
        if axis == "self":
            return [node]
        if axis == "parent":
            return [node.parent] if node.parent is not None else []
        if node.is_attr or local not in node.attrs:
            return []
        attr = XNode(local, node.attrs[local], node)
        attr.is_attr = True
        return [attr]

    def apply(nodes: list[XNode], env: EvalEnv) -> list[XNode]:
        if len(nodes) == 1:
            result = select(nodes[0])
            return _apply_predicates(result, predicates, env) if predicates else result
        out: list[XNode] = []
        seen: set[int] = set()
        for node in nodes:
            selected = select(node)
            if predicates:
                selected = _apply_predicates(selected, predicates, env)
            for x in selected:
                if id(x) not in seen:
                    seen.add(id(x))
                    out.append(x)
        return out

    return apply


def _context_chain(context: XNode, root: XNode) -> list[XNode]:
    """The context node and its ancestors, root first; empty when the context is not in the main instance.

    Kept on the node once it hangs under the root: nodes are not moved after they are attached.
    """
    chain = context._chain
    if chain is None:
        chain = []
        cursor: XNode | None = context
        while cursor is not None:
            chain.append(cursor)
            cursor = cursor.parent
        chain.reverse()
        if chain[0] is not root:
            return []
        context._chain = chain
    return chain if chain[0] is root else []


def _pinned_children(nodes: list[XNode], name: str, pin: XNode | None) -> list[XNode]:
    """Children named `name`; with `pin`, only those at the pin's position among its same-named siblings."""
    if pin is None:
        return [c for x in nodes for c in x.children if c.name == name]
    return [c for x in nodes for c in x.children if c.name == name and c.index == pin.index]


def _compile_path(node: LocationPath) -> Fn:
    """A path. An absolute path is pinned to the context's repeat instances, as JavaRosa contextualizes it:
    each leading child step (without a predicate) whose name is the context's ancestor at that depth takes
    that ancestor's position, so `/data/outer/q` evaluated inside `/data/outer[2]/...` reads
    `/data/outer[2]/q` (TreeReference.contextualize; pinning stops at the first name that differs)."""
    absolute, steps = node.absolute, node.steps
    base = compile_tree(node.base) if node.base is not None else None
    # Fast path: an absolute path of plain child steps without predicates (most references in binds).
    plain = all(step.axis == "child" and not step.predicates and step.name != "*" for step in steps)
    if absolute and base is None and plain:
        names = tuple(step.local_name for step in steps)
        if not names:
            return lambda n, p, s, e: [e.root]

        def plain_absolute(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
            root = e.root
            if root.name != names[0]:
                return []
            chain = _context_chain(n, root) if n.parent is not None else []
            pinning = len(chain) > 1
            current = [root]
            for depth, name in enumerate(names[1:], start=1):
                pin = chain[depth] if pinning and depth < len(chain) and chain[depth].name == name else None
                pinning = pin is not None
                current = _pinned_children(current, name, pin)
                if not current:
                    return current
            # JavaRosa drops non-relevant nodes from every path's result (XPathPathExprEval).
            return [x for x in current if x.relevant]

        return plain_absolute
    compiled_steps = [_compile_step(step) for step in steps]
    pinnable = [step.axis == "child" and step.name != "*" for step in steps]
    names = tuple(step.local_name for step in steps)

    def evaluate_path(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
        chain: list[XNode] = []
        if base is not None:
            current = base(n, p, s, e)
            if not isinstance(current, list):
                raise XPathEvalError("a path step needs a node-set")
        elif absolute:
            # The document node's only child is the root element.
            document = XNode("#document")
            document.children = [e.root]
            current = [document]
            chain = _context_chain(n, e.root) if n.parent is not None else []
        else:
            current = [n]
        for depth, step in enumerate(compiled_steps):
            pin = None
            if chain and depth > 0:
                if not pinnable[depth] or depth >= len(chain) or chain[depth].name != names[depth]:
                    chain = []
                elif not steps[depth].predicates:
                    pin = chain[depth]
            current = _pinned_children(current, pin.name, pin) if pin is not None else step(current, e)
            if not current:
                return current
        if absolute and base is None and not steps:
            return [e.root]
        # JavaRosa drops non-relevant nodes from every path's result (XPathPathExprEval).
        return [x for x in current if x.relevant]

    return evaluate_path


def _compile_binary(op: str, left: Fn, right: Fn) -> Fn:
    if op == "or":
        return lambda n, p, s, e: to_boolean(left(n, p, s, e)) or to_boolean(right(n, p, s, e))
    if op == "and":
        return lambda n, p, s, e: to_boolean(left(n, p, s, e)) and to_boolean(right(n, p, s, e))
    if op in ("=", "!="):
        want = op == "="

        def equality(n: XNode, p: int, s: int, e: EvalEnv) -> bool:
            return _equal(unpack(left(n, p, s, e)), unpack(right(n, p, s, e)), e.tz) == want

        return equality
    if op in ("<", "<=", ">", ">="):
        compare = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}[op]

        def relational(n: XNode, p: int, s: int, e: EvalEnv) -> bool:
            return compare(to_number(left(n, p, s, e), e.tz), to_number(right(n, p, s, e), e.tz))

        return relational
    arith: Callable[[float, float], float] = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "div": _divide,
        "mod": _modulo,
    }[op]

    def arithmetic(n: XNode, p: int, s: int, e: EvalEnv) -> float:
        a = to_number(left(n, p, s, e), e.tz)
        b = to_number(right(n, p, s, e), e.tz)
        try:
            return arith(a, b)
        except OverflowError:
            return math.inf

    return arithmetic


def _equal(a: Any, b: Any, tz: tzinfo) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return to_boolean(a) == to_boolean(b)
    if isinstance(a, float) or isinstance(b, float):
        return abs(to_number(a, tz) - to_number(b, tz)) < 1e-12
    return to_string(a, tz) == to_string(b, tz)


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def _modulo(a: float, b: float) -> float:
    # Java's % (truncated remainder), NaN for a zero divisor.
    if b == 0 or math.isnan(a) or math.isnan(b) or math.isinf(a):
        return NAN
    if math.isinf(b):
        return a
    return math.fmod(a, b)


def _compile_function(raw_name: str, arg_asts: tuple[Expr, ...]) -> Fn:  # noqa: PLR0911, PLR0912, PLR0915
    name = raw_name
    if ":" in name:
        prefix, local = name.split(":", 1)
        name = "jr:choice-name" if prefix == "jr" and local == "choice-name" else local
    args = tuple(compile_tree(a) for a in arg_asts)  # the innermost unsupported function is the one reported
    n_args = len(args)
    function = FUNCTIONS.get(name)
    if function is None:
        raise XPathUnsupportedError(raw_name)
    function.check_arity(n_args)

    # Short-circuiting and path-aware functions first.
    if name == "if":
        cond, yes, no = args
        return lambda n, p, s, e: yes(n, p, s, e) if to_boolean(cond(n, p, s, e)) else no(n, p, s, e)
    if name == "coalesce":
        first, second = args

        def coalesce(n: XNode, p: int, s: int, e: EvalEnv) -> Any:
            a = first(n, p, s, e)
            value = unpack(a)
            if (isinstance(value, str) and value == "") or (isinstance(value, float) and math.isnan(value)):
                return second(n, p, s, e)
            return a

        return coalesce
    if name == "indexed-repeat":
        if n_args not in (3, 5, 7, 9, 11):
            raise XPathSyntaxError("indexed-repeat() takes 3, 5, 7, 9 or 11 arguments")
        return _compile_indexed_repeat(arg_asts, args)
    if name == "current":
        return lambda n, p, s, e: [e.current if e.current is not None else n]
    if name == "instance":
        (ident,) = args

        def instance(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
            key = to_string(ident(n, p, s, e))
            root = e.secondary.get(key)
            if root is None:
                raise XPathEvalError(f"instance('{key}') is not available (attach it or pass --media)")
            doc = XNode("#instance")
            doc.children = [root]
            return [doc]

        return instance
    if name == "position":
        if n_args == 0:
            return lambda n, p, s, e: float(p) if p > 0 else float(n.index + 1)
        (target,) = args

        def position(n: XNode, p: int, s: int, e: EvalEnv) -> float:
            nodes = target(n, p, s, e)
            if not isinstance(nodes, list):
                raise XPathEvalError("position() needs a node-set")
            return float(nodes[0].index + 1) if nodes else 0.0

        return position
    # last() is XPath 1.0 but JavaRosa does not implement it (Collect fails on it): unsupported here too.
    if name == "once":
        (inner,) = args

        def once(n: XNode, p: int, s: int, e: EvalEnv) -> Any:
            target = e.current if e.current is not None else n
            current = target.value
            if current is not None and to_string(current, e.tz) != "":
                return current
            return inner(n, p, s, e)

        return once
    if name in ("string-length", "normalize-space") and n_args == 0:
        transform = STRING_FUNCTIONS[name]
        return lambda n, p, s, e: transform(to_string(n.value, e.tz))

    body = function.scalar
    assert body is not None, name  # the functions without one are compiled above

    if n_args == 1:
        (a0,) = args
        return lambda n, p, s, e: body(e, a0(n, p, s, e))
    if n_args == 2:
        a0, a1 = args
        return lambda n, p, s, e: body(e, a0(n, p, s, e), a1(n, p, s, e))
    return lambda n, p, s, e: body(e, *(a(n, p, s, e) for a in args))


def _compile_indexed_repeat(arg_asts: tuple[Expr, ...], args: tuple[Fn, ...]) -> Fn:
    paths: dict[int, LocationPath] = {}
    for i in [0, *range(1, len(arg_asts), 2)]:
        argument = arg_asts[i]
        if not isinstance(argument, LocationPath):
            raise XPathSyntaxError(f"indexed-repeat(): argument {i + 1} must be a path", argument.pos)
        paths[i] = argument

    def steps_of(path: LocationPath, context: XNode) -> list[str]:
        if path.base is not None:
            raise XPathEvalError("indexed-repeat(): paths must be plain references")
        if path.absolute:
            names: list[str] = []
        else:
            names = [x for x in context.generic_path().split("/") if x]
        for step in path.steps:
            if step.axis == "parent":
                names.pop()
            elif step.axis == "self":
                continue
            elif step.axis == "child":
                names.append(step.local_name)
            else:
                raise XPathEvalError("indexed-repeat(): paths must use child steps and ..")
        return names

    target_ast = paths[0]
    pairs = [(paths[i], args[i + 1]) for i in range(1, len(arg_asts), 2)]

    def indexed_repeat(n: XNode, p: int, s: int, e: EvalEnv) -> list[XNode]:
        target = steps_of(target_ast, n)
        chosen: dict[int, int] = {}
        for group_ast, index_fn in pairs:
            group = steps_of(group_ast, n)
            if target[: len(group)] != group:
                raise XPathEvalError("indexed-repeat(): each repeat must contain the target field")
            index = to_int(index_fn(n, p, s, e), e.tz)
            idx = int(index) if not math.isnan(index) else 1
            chosen[len(group) - 1] = max(idx, 1) - 1
        # Walk from the root; at indexed levels take the chosen instance, elsewhere follow the context node's
        # own instance when it lies on the same path (JavaRosa contextualizes the target ref), else the first.
        context_chain: dict[int, XNode] = {}
        cursor: XNode | None = n
        while cursor is not None:
            depth = len([x for x in cursor.generic_path().split("/") if x]) - 1
            context_chain[depth] = cursor
            cursor = cursor.parent
        if e.root.name != target[0]:
            return []
        current = [e.root]
        for depth, name in enumerate(target[1:], start=1):
            candidates = [c for x in current for c in x.children if c.name == name]
            if depth in chosen:
                k = chosen[depth]
                candidates = candidates[k : k + 1]
            elif depth in context_chain and context_chain[depth].name == name and context_chain[depth] in candidates:
                candidates = [context_chain[depth]]
            current = candidates
            if not current:
                return []
        return current

    return indexed_repeat


class _Unresolvable(Exception):
    pass


def _collect_refs(node: Expr, context: list[str], current: list[str], found: set[str]) -> None:
    match node:
        case Binary(left=left, right=right):
            _collect_refs(left, context, current, found)
            _collect_refs(right, context, current, found)
        case Negate(operand=operand):
            _collect_refs(operand, context, current, found)
        case Call(name="instance"):
            return
        case Call(name=name, args=args):
            if (name in ("string-length", "normalize-space") and not args) or name == "once":
                found.add("/" + "/".join(context))
            for arg in args:
                _collect_refs(arg, context, current, found)
        case LocationPath():
            _collect_path_refs(node, context, current, found)


def _path_base_names(path: LocationPath, context: list[str], current: list[str]) -> list[str]:
    match path.base:
        case None:
            return [] if path.absolute else list(context)
        case Call(name="instance"):
            return ["#instance"]  # secondary instances never change; only their predicates may read the form
        case Call(name="current"):
            return list(current)
    raise _Unresolvable


def _collect_path_refs(path: LocationPath, context: list[str], current: list[str], found: set[str]) -> None:
    names = _path_base_names(path, context, current)
    for step in path.steps:
        if step.axis == "self":
            pass
        elif step.axis == "parent":
            if not names:
                raise _Unresolvable
            names.pop()
        elif step.axis == "child" and not step.name.startswith("*") and step.name != "*":
            names.append(step.local_name)
        elif step.axis == "attribute":
            return
        else:
            raise _Unresolvable
        for predicate in step.predicates:
            _collect_refs(predicate, list(names), current, found)
        found.add("/" + "/".join(names))


@dataclass(frozen=True)
class CompiledExpr:
    """An expression parsed and compiled once.

    `functions` lists the functions it calls; `volatile` is True when its value may change between evaluations
    on the same data (now(), today(), random(), uuid(), once()).
    """

    source: str
    ast: Expr = field(repr=False)
    fn: Fn = field(repr=False, compare=False)
    functions: frozenset[str] = frozenset()

    @property
    def volatile(self) -> bool:
        return bool(self.functions & VOLATILE_FUNCTIONS)

    def evaluate(self, context: XNode | None = None, *, env: EvalEnv, position: int = 0, size: int = 0) -> Any:
        """The raw value (str, float, bool, date, datetime or list of nodes).

        Parameters:
            context: the context node (the node a bind belongs to); the root when None.
            env: the environment: instance root, secondary instances, today, time zone, current node.
            position, size: context position and size (0 = the node's own position among its siblings).
        """
        node = context if context is not None else env.root
        return self.fn(node, position, size, env)

    def evaluate_boolean(self, context: XNode | None = None, *, env: EvalEnv) -> bool:
        return to_boolean(self.evaluate(context, env=env))

    def evaluate_number(self, context: XNode | None = None, *, env: EvalEnv) -> float:
        return to_number(self.evaluate(context, env=env), env.tz)

    def evaluate_string(self, context: XNode | None = None, *, env: EvalEnv) -> str:
        return to_string(self.evaluate(context, env=env), env.tz)

    def dependencies(self, context_path: str) -> frozenset[str] | None:
        """Generic paths of the nodes the expression reads when evaluated at `context_path`.

        Relative paths, `current()` and predicates are resolved; returns None when a dependency cannot be
        known statically (descendant axes, wildcards, paths from a function result other than
        current()/instance()).
        """
        found: set[str] = set()
        base = [x for x in context_path.split("/") if x]
        try:
            _collect_refs(self.ast, base, base, found)
        except _Unresolvable:
            return None
        return frozenset(p for p in found if not p.startswith("/#instance"))

    def references(self) -> tuple[str, ...]:
        """Absolute plain paths the expression reads (for dependency ordering); relative ones are skipped."""
        refs = []
        for node in walk(self.ast):
            if isinstance(node, LocationPath) and node.absolute and node.base is None:
                refs.append("/" + "/".join(step.local_name for step in node.steps))
        return tuple(refs)


@lru_cache(maxsize=8192)
def compile_xpath(expr: str) -> CompiledExpr:
    """Parse and compile an ODK XPath expression (cached by its text).

    Raises XPathSyntaxError when it does not parse and XPathUnsupportedError when it calls a function the
    evaluator does not implement.
    """
    ast = parse(expr)
    functions = frozenset(
        (n.name.split(":", 1)[-1] if not n.name.startswith("jr:choice") else n.name)
        for n in walk(ast)
        if isinstance(n, Call)
    )
    return CompiledExpr(source=expr, ast=ast, fn=compile_tree(ast), functions=functions)
