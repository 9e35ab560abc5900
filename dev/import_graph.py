"""The import graph of the ``judgefactory`` package, and its cycles.

Walks ``judgefactory/**/*.py`` with ``ast`` and records, per module, the package modules it imports: at module level
(``import``/``from`` statements outside any function, including those under ``if``/``try`` at the top level, but not
``if TYPE_CHECKING:`` blocks) and inside functions (lazy imports, which run only when called). A cycle among
module-level imports can fail at import time depending on which module is imported first; lazy imports cannot.

    .venv/bin/python dev/import_graph.py            # prints both graphs' cycles; exit 1 on any cycle

``tests/test_import_graph.py`` fails on any cycle, module-level or through imports inside functions.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "judgefactory"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(current: str, is_package: bool, node: ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules an ``ImportFrom`` names: ``from . import a, b`` -> [pkg.a, pkg.b] when those are modules,
    ``from .x import name`` -> [pkg.x]."""
    if node.level:
        base = current.split(".") if is_package else current.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, known: set[str], root: Path = ROOT) -> tuple[set[str], set[str]]:
    """(module-level, inside-function) package modules imported by the file at ``path``."""
    current = module_name(path, root)
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    lazy: set[str] = set()

    def names(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.Import):
            cands = [a.name for a in node.names]
        else:
            cands = _resolve(current, is_package, node, known)
        # the most specific known module of each candidate (``from .bench import run`` -> judgefactory.bench.run)
        out = set()
        for c in cands:
            while c and c not in known:
                c = c.rpartition(".")[0]
            if c and c != current:
                out.add(c)
        return out

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for n in child.orelse:
                    visit_stmt(n, in_function)
                continue
            visit_stmt(child, in_function)

    def visit_stmt(child: ast.AST, in_function: bool) -> None:
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            (lazy if in_function else top).update(names(child))
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            visit(child, True)
        else:
            visit(child, in_function)

    visit(ast.parse(path.read_text(), str(path)), False)
    return top, lazy


def graphs(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level graph, inside-function graph) over the package's modules."""
    files = sorted(root.rglob("*.py"))
    known = {module_name(f, root) for f in files}
    top: dict[str, set[str]] = {}
    lazy: dict[str, set[str]] = {}
    for f in files:
        m = module_name(f, root)
        top[m], lazy[m] = imports(f, known, root)
    # importing ``a.b`` runs ``a/__init__.py`` first: a package's __init__ is an edge of each of its modules
    for m in list(top):
        parent = m.rpartition(".")[0]
        if parent in known and parent != root.name and parent not in top[m]:
            top[m].add(parent)
    return top, lazy


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import), each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    sys.setrecursionlimit(max(1000, 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(out)


def module_cycles(root: Path = ROOT) -> list[list[str]]:
    return cycles(graphs(root)[0])


def main() -> int:
    top, lazy = graphs()
    both = {m: top[m] | lazy[m] for m in top}
    mod = cycles(top)
    print(
        f"{len(top)} modules, {sum(map(len, top.values()))} module-level imports, "
        f"{sum(len(lazy[m] - top[m]) for m in lazy)} imports inside functions only"
    )
    print("module-level cycles:", mod or "none")
    lazy_only = [comp for comp in cycles(both) if comp not in mod]
    for comp in lazy_only:
        print("cycle only through imports inside functions:", " <-> ".join(comp))
    return 1 if mod or lazy_only else 0


if __name__ == "__main__":
    sys.exit(main())
