"""The import graph of obslib: no cycle, and no arrow from a lower layer up.

Every ``import`` and ``from ... import`` in every module counts, wherever it is written: at the
top, inside a function (a lazy import) or under ``TYPE_CHECKING``. Importing ``a.b.c`` also runs
the ``__init__`` of ``a.b`` unless the importer lives inside ``a.b`` itself (its own package is
already being initialised), so that edge counts too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "obslib"

# Layers a layer must never import (by the first part of the module name below obslib).
FORBIDDEN: dict[str, set[str]] = {
    "sources": {"stack", "reports", "analysis", "fleet", "collector", "cli"},
    "analysis": {"reports", "stack", "fleet", "collector", "cli"},
    "emit": {"sources", "analysis", "reports", "stack", "fleet", "collector", "cli"},
}
# The bottom of the house may import only what lies below it.
ALLOWED: dict[str, set[str]] = {
    "redact": set(),
    "durations": set(),
    "paths": set(),
    "files": set(),
    "verdict": set(),
    "jsonable": {"verdict"},
    "errors": {"redact"},
    "clock": {"errors", "redact"},
    "values_file": {"errors", "redact"},
    "settings": {"errors", "redact", "values_file"},
    "catalogue": {"settings", "errors", "redact", "values_file", "durations"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package(importer):
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _targets(importer: str, tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(importer, node)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules()]
            yield from submodules
            if len(submodules) < len(node.names):  # a name defined in the module itself
                yield base


def _with_packages(importer: str, target: str) -> Iterator[str]:
    """``target`` and the packages whose ``__init__`` importing it runs."""
    parts = target.split(".")
    for n in range(1, len(parts) + 1):
        name = ".".join(parts[:n])
        is_own = importer == name or importer.startswith(name + ".")
        if name in modules() and (n == len(parts) or not is_own):
            yield name


@cache
def graph() -> dict[str, frozenset[str]]:
    edges: dict[str, frozenset[str]] = {}
    for name, path in modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        found = {
            m
            for t in _targets(name, tree)
            if t == "obslib" or t.startswith("obslib.")
            for m in _with_packages(name, t)
        }
        edges[name] = frozenset(found - {name, "obslib"})
    return edges


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles() -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan)."""
    edges, index, low, stack, on_stack, found = graph(), {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_imports_and_package_inits():
    edges = graph()
    # reports/inputs.py imports the stack inside a function only.
    assert "obslib.stack" in edges["obslib.reports.inputs"]
    assert "obslib.catalogue.hops" in edges["obslib.sources.logfields"]
    # Importing a submodule runs its package's __init__ (catalogue's imports settings).
    assert "obslib.catalogue" in edges["obslib.sources.logfields"]
    assert "obslib.analysis" not in edges["obslib.analysis.traces.audit"]


def test_no_import_cycle():
    assert cycles() == []


@pytest.mark.parametrize("low", sorted(FORBIDDEN))
def test_no_arrow_up_from(low):
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if layer(name) == low
        for target in targets
        if layer(target) in FORBIDDEN[low]
    )
    assert upward == []


@pytest.mark.parametrize("low", sorted(ALLOWED))
def test_the_bottom_imports_only_what_lies_below(low):
    upward = sorted(
        f"{name} -> {target}"
        for name, targets in graph().items()
        if layer(name) == low
        for target in targets
        if layer(target) not in ALLOWED[low] | {low}
    )
    assert upward == []
