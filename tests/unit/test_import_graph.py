"""The import graph of every module of mover: no cycle, and the core imports no plugin side.

Every ``import`` and ``from ... import`` of every module counts, at module level or inside a
function (a lazy import is a dependency all the same), except those under ``if
TYPE_CHECKING:``. The core is ``mover/`` but its CLI; it must import nothing of
``mover.workers`` (given its Celery app, the worker side imports the core, never the reverse) or
``mover.strategies`` (plugins found through entry points, never imported by name).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Source folder -> installed package name (pyproject's package-dir).
PACKAGES = {"mover": "mover", "strategies": "mover.strategies", "workers": "mover.workers"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The mover modules ``name`` imports (a submodule named in ``from P import sub`` counts
    as that submodule, not as its package)."""
    is_package = path.name == "__init__.py"
    wanted: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if _is_type_checking(node):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            wanted.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            module = node.module or ""
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{module}" if module else base
            subs = {f"{module}.{a.name}" for a in node.names} & modules.keys()
            wanted.update(subs)
            if len(subs) < len(node.names):
                wanted.add(module)

    Visitor().visit(ast.parse(path.read_text(), str(path)))
    out: set[str] = set()
    for target in wanted:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target not in (name, "mover"):
            out.add(target)
    return out


@functools.cache
def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_graph_is_read():
    graph = _graph()
    assert "mover.lifecycle" in graph["mover.executors.embedded"]
    assert "mover.executors.celery" in graph["mover.workers.tasks"]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_no_worker_or_strategy_module():
    bad = {
        (name, target)
        for name, targets in _graph().items()
        if name.startswith("mover.") and not name.startswith(("mover.cli", *_plugin_sides()))
        for target in targets
        if target.startswith(_plugin_sides())
    }
    assert bad == set()


def _plugin_sides() -> tuple[str, ...]:
    return ("mover.workers", "mover.strategies")
