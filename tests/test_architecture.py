"""The import graph of `src/addressclip` follows the layers of the design, function-level imports included.

Layers, bottom to top (a module imports only from its own layer or below):
errors/atomic/filenames/digest -> config/resources -> geo -> data -> model/losses -> eval (the metrics
library) -> world | train | serve -> baselines -> benchmark -> demo/testing -> commands -> cli.
On top of that: no loop between packages, and no circle between files.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import addressclip

ROOT = Path(addressclip.__file__).parent
LAYERS: tuple[tuple[str, ...], ...] = (
    ("", "errors", "atomic", "filenames", "digest"),
    ("extras",),
    ("config", "resources"),
    ("geo",),
    ("data",),
    ("model", "losses"),
    ("eval",),
    ("world", "train", "serve"),
    ("baselines",),
    ("benchmark",),
    ("demo", "testing"),
    ("commands",),
    ("cli",),
)
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_package(module: str) -> bool:
    return (ROOT.parent / module.replace(".", "/") / "__init__.py").is_file()


def exists(module: str) -> bool:
    base = ROOT.parent / module.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes under `if TYPE_CHECKING:` (annotations only; never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported addressclip module, line) for every import statement of the file, at any depth."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "addressclip"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "addressclip":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub if is_package(target) and exists(sub) else target, node.lineno))
    return found


def import_graph() -> dict[str, list[tuple[str, int]]]:
    graph: dict[str, list[tuple[str, int]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        graph[module_name(path)] = imports_of(path)
    return graph


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_layer():
    packages = {top(m) for m in import_graph()}
    assert packages <= set(LAYER_OF), f"give these a layer: {sorted(packages - set(LAYER_OF))}"


def test_no_import_runs_up_the_layers():
    upward = []
    for module, imports in import_graph().items():
        for target, line in imports:
            if LAYER_OF[top(target)] > LAYER_OF[top(module)]:
                upward.append(f"{module}:{line} imports {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_loop_between_packages():
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in import_graph().items():
        for target, _ in imports:
            if top(target) != top(module):
                edges[top(module)].add(top(target))
    assert not _cycles(edges), f"package loops: {_cycles(edges)}"


def test_no_circle_between_files():
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in import_graph().items():
        for target, _ in imports:
            if target != module and not module.startswith(target + "."):  # a parent package is not a peer
                edges[module].add(target)
    assert not _cycles(edges), f"file circles: {_cycles(edges)}"


def test_the_checker_sees_function_level_imports_and_circles():
    """The checks above can fail: a function-level import is found, and a made-up circle is reported."""
    found = dict(imports_of(ROOT / "commands" / "predict.py"))
    assert "addressclip.serve.formatting" in found  # imported inside run()
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []
