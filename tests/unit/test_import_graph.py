"""No import loops among Broker's own modules (broker, api, web, jobs).

Two modules that import each other (directly or around a longer loop) can only
be imported in one order, and tend to be "fixed" with imports inside functions
that hide the loop instead of removing it. grimp reads every import, at the top
of a module or inside a function, without running any code.
"""

from __future__ import annotations

import itertools

import grimp

PACKAGES = ("broker", "api", "web", "jobs")

# Import edges still allowed to close a loop, each with why. Keep it empty: an
# entry is a debt, and the test fails on any loop not made only of these edges.
ALLOWED: set[tuple[str, str]] = set()


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """The import graph's loops: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = itertools.count()

    def visit(module: str) -> None:
        index[module] = low[module] = next(counter)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def loop_edges(graph: grimp.ImportGraph, component: set[str]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in itertools.permutations(sorted(component), 2)
            if b in graph.find_modules_directly_imported_by(a)}


def describe(graph: grimp.ImportGraph, edges: set[tuple[str, str]]) -> str:
    lines = []
    for importer, imported in sorted(edges):
        for detail in graph.get_import_details(importer=importer, imported=imported):
            lines.append(f"  {importer}:{detail['line_number']}: {detail['line_contents']}")
    return "\n".join(lines)


def test_no_module_imports_itself_around_a_loop():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    loops = [loop_edges(graph, component) for component in strongly_connected(graph)]
    # A loop is tolerated only while removing the allowed edges breaks it.
    remaining = grimp.build_graph(*PACKAGES, cache_dir=None)
    for importer, imported in ALLOWED:
        if remaining.direct_import_exists(importer=importer, imported=imported):
            remaining.remove_import(importer=importer, imported=imported)
    unexplained = strongly_connected(remaining)
    assert not unexplained, "import loops:\n" + "\n\n".join(
        describe(graph, edges) for edges in loops if any(edges & loop_edges(remaining, c) for c in unexplained))


def test_the_check_finds_a_loop():
    """The control: a loop added to the real graph is found."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    graph.add_import(importer="broker.db", imported="broker.context")  # broker.context imports broker.db

    assert any({"broker.db", "broker.context"} <= component for component in strongly_connected(graph))
