"""Imports inside ``ubernet_lite`` run one way: no cycle among its modules.

Every ``import`` and ``from ... import`` statement counts, at the top of a file or inside a
function (``ast.walk`` sees both). Relative imports are resolved against the importing module's
package. ``from PKG import name`` is an edge to ``PKG.name`` when that is a module (``from . import
x``) and, unless ``PKG`` is a package the importing module lies in, to ``PKG`` itself, whose
``__init__`` Python runs first. A package's ``__init__`` importing its submodules is the usual
edge; the packages a module lies in are initialised before it and are not edges of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "ubernet_lite"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_names() -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package (``pkg/__init__.py`` -> pkg)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` (file ``path``) imports, anywhere in the file."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    skip = _ancestors(name) | {name}
    found: set[str] = set()

    def add(target: str) -> None:
        # importing a.b.c runs a, a.b and a.b.c: keep those that are modules of the package
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            mod = ".".join(parts[:i])
            if mod in modules and mod not in skip:
                found.add(mod)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level > 1:
                    base = base[: -(node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not (source == PACKAGE or source.startswith(PACKAGE + ".")):
                continue
            add(source)
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:  # from . import x: the submodule x
                    add(f"{source}.{alias.name}")
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing
    itself), each as a sorted list (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    cycles.append(sorted(component))
    return cycles


def _describe(cycle: list[str], graph: dict[str, set[str]]) -> str:
    members = set(cycle)
    edges = [f"{a} -> {b}" for a in cycle for b in sorted(graph[a] & members)]
    return "{" + ", ".join(cycle) + "}: " + "; ".join(edges)


def test_the_graph_sees_relative_function_level_and_package_imports(tmp_path):
    """The parser on a small package of its own: every kind of import gives the right edge."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\nfrom . import c\nimport ubernet_lite.x\n")
    (pkg / "sub" / "c.py").write_text("from ..x import os\n")
    (pkg / "x.py").write_text("import os\n")
    modules = {
        f"{PACKAGE}{suffix}": pkg / file
        for suffix, file in [
            ("", "__init__.py"),
            (".a", "a.py"),
            (".sub", "sub/__init__.py"),
            (".sub.b", "sub/b.py"),
            (".sub.c", "sub/c.py"),
            (".x", "x.py"),
        ]
    }
    graph = {n: imports_of(n, p, modules) for n, p in modules.items()}
    p = PACKAGE
    assert graph[p] == {f"{p}.a"}
    assert graph[f"{p}.a"] == {f"{p}.sub", f"{p}.sub.b"}  # inside a function, relative
    assert graph[f"{p}.sub.b"] == {f"{p}.a", f"{p}.sub.c", f"{p}.x"}  # not its own packages
    assert graph[f"{p}.sub.c"] == {f"{p}.x"}
    assert find_cycles(graph) == [[f"{p}.a", f"{p}.sub.b"]]  # a -> sub.b -> a


def test_no_import_cycle_among_the_package_modules():
    graph = import_graph()
    assert len(graph) > 50 and f"{PACKAGE}.training.trainer" in graph
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(_describe(c, graph) for c in cycles)
