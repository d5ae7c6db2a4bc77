#!/usr/bin/env python
"""Static import graph of src/valuescope: file-level cycles, package-level cycles, upward imports.

Reads the source with `ast` (nothing is imported). Every `import` statement counts, also those
inside functions, except imports under `if TYPE_CHECKING:` (they never run). Module names
held in strings (the lazy provider table, `importlib.import_module(name)`) are not edges.

    python scripts/import_graph.py            # print the report
    python scripts/import_graph.py --check    # also exit 1 when anything is found
    python scripts/import_graph.py --src DIR  # another checkout (DIR holds valuescope/)

Package level: the nodes are the top-level subpackages and modules of valuescope ("" is the
root `valuescope/__init__`). Upward imports are judged against `valuescope._layers.LAYERS`.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "valuescope"


@dataclass(frozen=True)
class Edge:
    """One import: `source` imports `target` at `line`."""

    source: str
    target: str
    line: int


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file for every .py file of the package."""
    out: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, skipping `if TYPE_CHECKING:` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def edges(files: dict[str, Path] | None = None, package: str = PACKAGE) -> list[Edge]:
    """Every import from a module of the package to another module of it."""
    files = module_files() if files is None else files
    out: list[Edge] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _absolute(module, is_package, node)
                # `from pkg import name`: the submodule when `name` is one, else pkg itself
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            for target in targets:
                if target != package and not target.startswith(package + "."):
                    continue
                while target not in files and "." in target:  # `import pkg.attr` forms
                    target = target.rsplit(".", 1)[0]
                if target != module:
                    out.append(Edge(module, target, node.lineno))
    return list(dict.fromkeys(out))  # one edge per import line and target


def top(module: str) -> str:
    """The package-level node of a module: its top-level subpackage or module ("" = root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one node (Tarjan, iterative), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
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
                    components.append(sorted(component))
    return sorted(components, key=lambda c: (-len(c), c))


def file_graph(all_edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for e in all_edges:
        graph[e.source].add(e.target)
    return graph


def package_graph(all_edges: list[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for e in all_edges:
        if top(e.source) != top(e.target):
            graph[top(e.source)].add(top(e.target))
    return graph


def upward(all_edges: list[Edge], layers: dict[str, int]) -> list[Edge]:
    """Imports of a higher layer, of the root `valuescope/__init__`, or from/of a part the
    table lacks."""
    return [
        e
        for e in all_edges
        if layers.get(top(e.source), -1) < layers.get(top(e.target), 99)
        or top(e.source) not in layers
        or top(e.target) == ""
    ]


def _load_layers() -> dict[str, int]:
    sys.path.insert(0, str(SRC))
    from valuescope._layers import LAYERS

    return LAYERS


def report(all_edges: list[Edge], layers: dict[str, int]) -> tuple[str, int]:
    """The printed report and the number of problems in it."""
    lines: list[str] = []
    files_scc = strongly_connected(file_graph(all_edges))
    pkg = package_graph(all_edges)
    pkg_scc = strongly_connected(pkg)
    up = upward(all_edges, layers)
    name = lambda n: n or "(root __init__)"  # noqa: E731
    lines.append(f"modules: {len({e.source for e in all_edges})}, imports: {len(all_edges)}")
    lines.append(f"file-level cycles: {len(files_scc)}")
    for comp in files_scc:
        lines.append(f"  [{len(comp)}] " + ", ".join(c.removeprefix("valuescope.") for c in comp))
    lines.append(f"package-level cycles: {len(pkg_scc)}")
    for comp in pkg_scc:
        inside = set(comp)
        lines.append(f"  [{len(comp)}] " + ", ".join(name(c) for c in comp))
        for src in comp:
            into = sorted(t for t in pkg[src] if t in inside)
            lines.append(f"      {name(src)} -> {', '.join(name(t) for t in into)}")
    lines.append(f"upward imports (against valuescope._layers.LAYERS): {len(up)}")
    for e in sorted(up, key=lambda e: (e.source, e.line)):
        ls, lt = layers.get(top(e.source), "?"), layers.get(top(e.target), "?")
        lines.append(
            f"  {e.source.removeprefix('valuescope.')}:{e.line} (L{ls}) -> "
            f"{e.target.removeprefix('valuescope.')} (L{lt})"
        )
    return "\n".join(lines), len(files_scc) + len(pkg_scc) + len(up)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when anything is found")
    parser.add_argument("--src", type=Path, default=SRC, help="the folder holding valuescope/")
    args = parser.parse_args(argv)
    text, problems = report(edges(module_files(args.src)), _load_layers())
    print(text)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
