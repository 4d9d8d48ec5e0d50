"""Which pipelines a repository holds, found by reading its Python files (nothing imported).

A task is a top-level function decorated with `@task` / `@merkl.task` (with or without
options). A pipeline is a public top-level function, not a task, that calls a task defined in
its module or imported by name from another module of the repository. Importing every module
to find out would run their top-level code; the syntax tree is enough and safe.
"""

from __future__ import annotations

import ast
import os
import threading
from dataclasses import dataclass
from pathlib import Path

# Folders never searched: environments, builds, caches, and merkl's own state.
_SKIP_DIRS = frozenset(
    {"node_modules", "site-packages", "build", "dist", "__pycache__", "venv", "env"}
)
_MAX_FILES = 2000


@dataclass(frozen=True)
class PipelineInfo:
    target: str  # module.function, as `merkl run` takes it
    module: str
    function: str
    tasks: tuple[str, ...]  # the tasks it calls directly (module.task)
    parameters: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class _Module:
    name: str
    tasks: frozenset[str]
    imports: dict[str, tuple[str, str]]  # local name -> (module, name)
    functions: list[ast.FunctionDef]


def find_targets(root: Path) -> set[str]:
    """Every `module.function` the UI may call: the pipelines and the tasks of `root`."""
    modules = [m for m in (_read(root, path) for path in _python_files(root)) if m]
    tasks = {f"{m.name}.{t}" for m in modules for t in m.tasks}
    return tasks | {p.target for p in find_pipelines(root)}


def find_pipelines(root: Path) -> list[PipelineInfo]:
    """Pipelines in the `.py` files under `root`, sorted by target."""
    modules = {m.name: m for m in (_read(root, path) for path in _python_files(root)) if m}
    found = []
    for module in modules.values():
        for function in module.functions:
            if function.name.startswith("_") or function.name in module.tasks:
                continue
            called = _called_tasks(function, module, modules)
            if called:
                args = function.args
                parameters = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                found.append(
                    PipelineInfo(
                        f"{module.name}.{function.name}",
                        module.name,
                        function.name,
                        tuple(called),
                        tuple(parameters),
                        (ast.get_docstring(function) or "").split("\n", 1)[0],
                    )
                )
    return sorted(found, key=lambda p: p.target)


def _python_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        files += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
        if len(files) >= _MAX_FILES:
            break
    return files[:_MAX_FILES]


# (root, path) -> ((mtime_ns, size), what it holds): a request walks the tree, parses edits.
_parsed: dict[tuple[Path, Path], tuple[tuple[int, int], _Module | None]] = {}
_parsed_lock = threading.Lock()


def _read(root: Path, path: Path) -> _Module | None:
    try:
        st = path.stat()
    except OSError:
        return None
    key = (st.st_mtime_ns, st.st_size)
    with _parsed_lock:
        known = _parsed.get((root, path))
    if known is not None and known[0] == key:
        return known[1]
    module = _parse(root, path)
    with _parsed_lock:
        _parsed[root, path] = (key, module)
    return module


def _parse(root: Path, path: Path) -> _Module | None:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return None  # not ours to report: `merkl run` would say what is wrong
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    tasks = frozenset(f.name for f in functions if any(map(_is_task, f.decorator_list)))
    imports = {
        alias.asname or alias.name: (node.module, alias.name)
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        for alias in node.names
    }
    return _Module(".".join(parts), tasks, imports, functions)


def _is_task(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Name):
        return target.id == "task"
    return isinstance(target, ast.Attribute) and target.attr == "task"


def _called_tasks(
    function: ast.FunctionDef, module: _Module, modules: dict[str, _Module]
) -> list[str]:
    called: dict[str, None] = {}
    for node in ast.walk(function):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        name = node.func.id
        if name in module.tasks:
            called[f"{module.name}.{name}"] = None
        elif name in module.imports:
            source, original = module.imports[name]
            if source in modules and original in modules[source].tasks:
                called[f"{source}.{original}"] = None
    return list(called)
