"""Code identity: the hash of a task's code and of its declared code dependencies.

Code is hashed as its normalised AST (`ast.dump` without positions), so comments and formatting
never invalidate a cache while any real change does.

MODULE mode hashes the whole module a task lives in, except the top-level definitions of tasks
that declared their own identity (`code_hash_mode=FUNCTION` or `version=`): those are hashed on
their own, so editing one of them re-executes only that task.
"""

from __future__ import annotations

import ast
import enum
import inspect
import linecache
import sys
import textwrap
import threading
import types
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from merkl.errors import TaskDefinitionError
from merkl.hashing import hash_bytes, hash_struct


class CodeHashMode(enum.Enum):
    """What part of a task's code feeds its hash."""

    MODULE = "module"
    FUNCTION = "function"


class HasCodeHash(Protocol):
    @property
    def code_hash(self) -> str: ...


# CPython 3.11's ast module is not safe to use from several threads at once ("AST constructor
# recursion depth mismatch", gh-106905): every parse/dump of code goes through this lock.
_ast_lock = threading.Lock()
_module_hashes: weakref.WeakKeyDictionary[types.ModuleType, str] = weakref.WeakKeyDictionary()
_function_hashes: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()


def module_name(fn: Callable[..., Any]) -> str:
    """The module a function is identified by; a script run as `__main__` keeps its file stem."""
    name = getattr(fn, "__module__", None) or "<unknown>"
    if name == "__main__":
        file = getattr(sys.modules.get("__main__"), "__file__", None)
        if file:
            return Path(file).stem
    return name


def check_source_available(fn: Callable[..., Any], mode: CodeHashMode) -> None:
    """Raise TaskDefinitionError when the code that `mode` hashes cannot be read."""
    if mode is CodeHashMode.MODULE:
        module = sys.modules.get(fn.__module__)
        if _module_file(module) is None:
            raise TaskDefinitionError(
                f"@task on {fn.__qualname__}: the source of module {fn.__module__!r} is not "
                f"available (defined in a REPL or a compiled module?); use "
                f"code_hash_mode=CodeHashMode.FUNCTION or pin the code with version='…'"
            )
    else:
        try:
            inspect.getsource(fn)
        except (OSError, TypeError) as exc:
            raise TaskDefinitionError(
                f"@task on {fn.__qualname__}: its source code is not available ({exc}); "
                f"pin the code with version='…'"
            ) from exc


def function_hash(fn: Callable[..., Any]) -> str:
    """Hash of one function's normalised source."""
    cached = _function_hashes.get(fn)
    if cached is None:
        try:
            linecache.checkcache(inspect.getsourcefile(fn))  # an edited file, not stale lines
            source = inspect.getsource(fn)
        except (OSError, TypeError) as exc:
            raise TaskDefinitionError(
                f"cannot read the source of {getattr(fn, '__qualname__', fn)!r} to hash it; "
                f"pin it with version='…'"
            ) from exc
        with _ast_lock:
            cached = hash_bytes(_normalise(textwrap.dedent(source).encode()))
        _function_hashes[fn] = cached
    return cached


def module_hash(module: types.ModuleType) -> str:
    """Hash of a module's normalised source, without self-identified task definitions."""
    cached = _module_hashes.get(module)
    if cached is None:
        file = _module_file(module)
        if file is None:
            raise TaskDefinitionError(
                f"the source of module {module.__name__!r} is not available; use "
                f"code_hash_mode=CodeHashMode.FUNCTION or version='…'"
            )
        source = file.read_bytes()
        with _ast_lock:
            tree = ast.parse(source, filename=str(file))
            tree.body = [node for node in tree.body if not _declares_own_identity(node)]
            cached = hash_bytes(ast.dump(tree, include_attributes=False).encode())
        _module_hashes[module] = cached
    return cached


def dep_hash(dep: object) -> str:
    """Hash of one `code_deps` entry: a module, a function, a task, str or bytes."""
    if isinstance(dep, str):
        return hash_bytes(dep.encode("utf-8"))
    if isinstance(dep, (bytes, bytearray)):
        return hash_bytes(bytes(dep))
    if isinstance(dep, types.ModuleType):
        return module_hash(dep)
    code_hash = getattr(dep, "code_hash", None)
    if isinstance(code_hash, str):  # a task: its own code and deps
        return code_hash
    if callable(dep):
        return function_hash(dep)
    raise TaskDefinitionError(
        f"code_deps entry {dep!r} of type {type(dep).__name__}: expected a module, a function, "
        f"a task, str or bytes"
    )


def validate_deps(deps: Iterable[object], qualname: str) -> tuple[object, ...]:
    """Check `code_deps` at decoration time."""
    if isinstance(deps, (str, bytes)) or not isinstance(deps, Iterable):
        raise TaskDefinitionError(
            f"@task(code_deps=…) on {qualname}: expected a list of modules, functions, str or "
            f"bytes; got {deps!r}"
        )
    items = tuple(deps)
    for dep in items:
        ok = isinstance(dep, (str, bytes, bytearray, types.ModuleType)) or callable(dep)
        if not ok:
            raise TaskDefinitionError(
                f"@task(code_deps=…) on {qualname}: entry {dep!r} of type "
                f"{type(dep).__name__} is not a module, function, str or bytes"
            )
    return items


def code_hash(
    fn: Callable[..., Any],
    mode: CodeHashMode,
    version: str | None,
    deps: tuple[object, ...],
) -> str:
    """The code hash of a task: its identity, its code (or pinned version) and its deps."""
    if version is not None:
        code = ["version", version]
    elif mode is CodeHashMode.FUNCTION:
        code = ["function", function_hash(fn)]
    else:
        code = ["module", module_hash(sys.modules[fn.__module__])]
    return hash_struct(
        "merkl.code",
        module_name(fn),
        fn.__qualname__,
        code,
        [dep_hash(dep) for dep in deps],
    )


def _module_file(module: types.ModuleType | None) -> Path | None:
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return None
    path = Path(file)
    return path if path.is_file() else None


def _normalise(source: bytes) -> bytes:
    return ast.dump(ast.parse(source), include_attributes=False).encode()


def _declares_own_identity(node: ast.stmt) -> bool:
    """A top-level `@task(code_hash_mode=…FUNCTION)` or `@task(version=…)` definition."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    for decorator in node.decorator_list:
        if not isinstance(decorator, ast.Call):
            continue
        for keyword in decorator.keywords:
            if keyword.arg == "version":
                return True
            if keyword.arg == "code_hash_mode" and _names_function_mode(keyword.value):
                return True
    return False


def _names_function_mode(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "FUNCTION"
    if isinstance(node, ast.Name):
        return node.id == "FUNCTION"
    return isinstance(node, ast.Constant) and node.value == "function"
