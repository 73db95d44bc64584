"""Data flows one way between vgt_agent's top-level units (subpackages and top-level modules):

    cli -> tiny -> training / synthesis / graphs -> core (format, geometry, answers, world, datasets, ...)

Every `import` / `from` of every module counts, inside functions and `TYPE_CHECKING` blocks too: an import
moved into a function still ties the two units together. The tests read the sources with `ast` (nothing is
imported), so they take milliseconds.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import vgt_agent

PACKAGE = Path(vgt_agent.__file__).parent
ENTRY = frozenset({"cli"})
RECIPES = frozenset({"tiny"})
PIPELINES = frozenset({"training", "synthesis", "graphs"})
UPPER = ENTRY | RECIPES | PIPELINES

Edges = dict[tuple[str, str], list[str]]  # (from unit, to unit) -> "path:line" of each import


def _units() -> set[str]:
    return {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in PACKAGE.glob("*/__init__.py")
    }


def _imported_modules(node: ast.AST, package: list[str]) -> list[str]:
    """The dotted modules (or `module.name` for `from module import name`) an import statement refers to."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
        return [f"{base}.{a.name}" for a in node.names]
    return []


@cache
def import_edges() -> Edges:
    """Every import between two units, read once per session (the sources do not change under the tests)."""
    units = _units()
    edges: Edges = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("").parts  # ("vgt_agent", "world", "scene")
        if len(rel) < 2 or rel[1] == "__init__":
            continue
        source_unit = rel[1]
        package = list(rel[:-1])
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for module in _imported_modules(node, package):
                parts = module.split(".")
                if parts[0] != "vgt_agent" or len(parts) < 2 or parts[1] not in units:
                    continue  # another distribution, or a name of the package root (`__version__`)
                if parts[1] != source_unit:
                    edges[(source_unit, parts[1])].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return dict(edges)


def find_cycles(edges: Edges) -> list[list[str]]:
    """One cycle through each strongly connected group of units (Tarjan), as [a, b, ..., a]."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(sorted(group), graph) for group in groups]


def _cycle_in(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the group's first unit back to itself, inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in {group}")


def _describe(cycle: list[str], edges: Edges) -> str:
    return " -> ".join(cycle) + "\n" + "\n".join(
        f"    {a} -> {b}: {', '.join(edges[(a, b)])}" for a, b in zip(cycle, cycle[1:], strict=False)
    )


def test_no_import_cycle_between_units() -> None:
    edges = import_edges()
    cycles = find_cycles(edges)
    assert not cycles, "import cycles between vgt_agent's units:\n" + "\n".join(_describe(c, edges) for c in cycles)


def test_layers_import_only_downwards() -> None:
    edges = import_edges()
    units = _units()
    assert units >= UPPER, UPPER - units
    allowed = {unit: units - UPPER for unit in units - UPPER}  # core: only core
    allowed |= {unit: units - ENTRY - RECIPES for unit in PIPELINES}
    allowed |= {unit: units - ENTRY for unit in RECIPES}
    allowed |= {unit: units for unit in ENTRY}
    wrong = {(a, b): where for (a, b), where in edges.items() if b not in allowed[a]}
    assert not wrong, "imports against the layer order:\n" + "\n".join(
        f"    {a} -> {b}: {', '.join(where)}" for (a, b), where in sorted(wrong.items())
    )


def test_the_checks_see_a_cycle_and_function_level_imports() -> None:
    edges = {("a", "b"): ["x.py:1"], ("b", "c"): ["y.py:2"], ("c", "a"): ["z.py:3"], ("c", "d"): ["w.py:4"]}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]
    found = import_edges()
    assert ("cli", "training") in found  # cli/eval.py imports training inside its command function
    assert all(":" in where for locs in found.values() for where in locs)
