"""merkl's layers, bottom up. A module may import (at module level or inside a function, but not
under `if TYPE_CHECKING:`) modules of its own layer or of a lower one, never of a higher one.

1. base: errors, units, progress (what every part reports with).
2. primitives: hashing (canonical encoding, BLAKE3 of bytes and files, the canonical AST walk),
   serializers (and the exact typed JSON), fs (atomic file replacement).
3. storage: cache (object store, SQLite index, stat cache, the cache facade), pointer files,
   repo (a folder with `.merkl/` and its settings).
4. tracking: tracked files and folders in the work tree (`merkl track`'s transaction, links,
   manifests, state). Below the pipeline because `write_file(track=True)` tracks its file.
5. pipeline: tasks, placeholders, graph, evaluation, deps and code_refs (code hashing), session,
   files (file inputs and outputs of a DAG), targets (naming and calling a pipeline), cells (a
   notebook's code cells run as a module), request_memo (repeated requests without rebuilding
   their DAG), the executor interface (`merkl.executors`,
   `executors.base`), and the evaluation hooks (observers).
6. services: executor implementations (pools, Dask), remotes, provenance (what ran, why),
   lineage (OpenLineage events, through the evaluation hooks of `merkl.observers`).
7. ops: one module per command, composing the layers below.
8. interfaces: cli, serve (the web server and its client), ui (`merkl ui`), catalog, notebook
   (`%load_ext merkl`), and the `merkl` package itself (the public API, which also ties
   read-through from remotes into the cache).

Within a layer, modules may import each other, but the import graph has no cycle except
through the one allowed edge: `Lazy.get()` (placeholder) evaluates (evaluation).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("merkl.errors", "merkl.units", "merkl.progress", "merkl.collector"),
    ("merkl.hashing", "merkl.canonical_ast", "merkl.serializers", "merkl.typed_json", "merkl.fs"),
    ("merkl.cache", "merkl.pointer", "merkl.repo"),
    ("merkl.tracking",),
    (
        "merkl.tasks",
        "merkl.placeholder",
        "merkl.graph",
        "merkl.evaluation",
        "merkl.deps",
        "merkl.code_refs",
        "merkl.session",
        "merkl.files",
        "merkl.targets",
        "merkl.cells",
        "merkl.observers",
        "merkl.request_memo",
        "merkl.executors.base",
    ),
    ("merkl.executors", "merkl.remotes", "merkl.provenance", "merkl.lineage"),
    ("merkl.ops",),
    (
        "merkl.cli",
        "merkl.serve",
        "merkl.ui",
        "merkl.client",
        "merkl.catalog",
        "merkl.notebook",
        "merkl.__main__",
    ),
]
# The package `merkl.executors` (the registry of executors by name) is the interface; its
# submodules other than `base` are implementations in the services layer.
EXACT = {"merkl.executors": 4, "merkl": len(LAYERS) - 1}
ALLOWED_CYCLE_EDGE = ("merkl.placeholder", "merkl.evaluation")


def module_files(src: Path = SRC) -> dict[str, Path]:
    modules = {}
    for path in (src / "merkl").rglob("*.py"):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> int:
    if module in EXACT:
        return EXACT[module]
    best: tuple[int, int] | None = None  # (prefix length, layer): the longest prefix wins
    for layer, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                candidate = (len(prefix), layer)
                best = candidate if best is None or candidate > best else best
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return best[1]


class _Imports(ast.NodeVisitor):
    """Every `merkl` module imported anywhere in a module, except under `if TYPE_CHECKING:`."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.found: dict[str, int] = {}  # imported module -> first line

    def _add(self, name: str, line: int) -> None:
        while name and name not in self.known:
            name = name.rpartition(".")[0]
        if name and name != self.module:
            self.found.setdefault(name, line)

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[: len(self.package.split(".")) - (node.level - 1)]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        for alias in node.names:
            full = f"{source}.{alias.name}"
            self._add(full if full in self.known else source, node.lineno)


def import_graph(src: Path = SRC) -> dict[str, dict[str, int]]:
    files = module_files(src)
    known = set(files)
    graph = {}
    for module, path in files.items():
        visitor = _Imports(module, path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        graph[module] = {m: line for m, line in visitor.found.items() if m.startswith("merkl")}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_every_module_is_in_a_layer():
    for module in module_files():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    assert upward_imports() == []


def test_no_import_cycle_but_the_allowed_one():
    graph = {module: set(imports) for module, imports in import_graph().items()}
    source, target = ALLOWED_CYCLE_EDGE
    assert target in graph[source], "the allowed edge is gone: remove ALLOWED_CYCLE_EDGE"
    graph[source].discard(target)
    cycles = [sorted(c) for c in strongly_connected(graph) if len(c) > 1]
    assert cycles == []


def upward_imports(src: Path = SRC) -> list[str]:
    files = module_files(src)
    return [
        f"{files[module].relative_to(src)}:{line}: {module} (layer {layer_of(module) + 1}) "
        f"imports {imported} (layer {layer_of(imported) + 1})"
        for module, imports in import_graph(src).items()
        for imported, line in imports.items()
        if layer_of(imported) > layer_of(module)
    ]


def test_the_checker_sees_function_level_imports_and_skips_type_checking(tmp_path):
    package = tmp_path / "merkl"
    (package / "remotes").mkdir(parents=True)
    for name in ("__init__.py", "remotes/__init__.py", "remotes/base.py", "session.py"):
        (package / name).write_text("")
    (package / "repo.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from merkl.session import Session\n"
        "def cache():\n    from .remotes import base\n"
    )
    assert upward_imports(tmp_path) == [
        "merkl/repo.py:5: merkl.repo (layer 3) imports merkl.remotes.base (layer 6)"
    ]
