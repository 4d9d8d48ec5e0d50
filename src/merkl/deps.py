"""Code identity: the hash of a task's code and of its declared code dependencies.

Code is hashed by merkl's own canonical walk of its AST (`merkl.canonical_ast`), so comments,
formatting and docstrings never invalidate a cache, any real change does, and the hash is the
same on every Python version.

MODULE mode hashes the whole module a task lives in, except the top-level definitions of tasks
that declared their own identity (`code_hash_mode=FUNCTION` or `version=`): those are hashed on
their own, so editing one of them re-executes only that task. FUNCTION mode hashes the function
and the module-level functions, classes, constants and imports it references, transitively
within its module (`merkl.code_refs`). A code identity keeps its parts by label, so `merkl why`
can say which one changed.

A module without a file whose code comes from cells run one by one (a notebook's `__main__`,
see `merkl.notebook`) is registered as an `InteractiveModule`: its tasks are hashed FUNCTION-
style against the top-level bindings its cells made, newest cell per name, whatever the mode.
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from merkl.canonical_ast import ast_digest, without_docstring
from merkl.code_refs import (
    find_function,
    import_of,
    module_bindings,
    referenced_definitions,
    statement_kind,
)
from merkl.errors import TaskDefinitionError
from merkl.hashing import hash_bytes, hash_struct


class CodeHashMode(enum.Enum):
    """What part of a task's code feeds its hash."""

    MODULE = "module"
    FUNCTION = "function"


class HasCodeHash(Protocol):
    @property
    def code_hash(self) -> str: ...


@dataclass(frozen=True)
class CodeIdentity:
    """A task's code hash and what it is made of: `parts` maps a label (`module m`,
    `function helper`, `assignment SCALE`, `code_deps[0] module m`…) to that part's digest."""

    hash: str
    parts: dict[str, str]


# CPython 3.11's ast module is not safe to use from several threads at once ("AST constructor
# recursion depth mismatch", gh-106905): every parse of code goes through this lock.
_ast_lock = threading.Lock()
_module_hashes: weakref.WeakKeyDictionary[types.ModuleType, str] = weakref.WeakKeyDictionary()
_function_parts: weakref.WeakKeyDictionary[Callable[..., Any], dict[str, str]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _ParsedModule:
    """A module file as parsed from `source`, its top-level bindings, and the digests of
    those already needed (many FUNCTION tasks of a module share their helpers)."""

    source: bytes
    tree: ast.Module
    bindings: dict[str, list[ast.stmt]]
    digests: dict[str, str]

    def binding_digest(self, name: str) -> str:
        digest = self.digests.get(name)
        if digest is None:
            digest = self.digests[name] = _binding_digest(name, self.bindings[name])
        return digest


_parsed: dict[str, _ParsedModule] = {}  # by file path


def module_name(fn: Callable[..., Any]) -> str:
    """The module a function is identified by; a script run as `__main__` keeps its file stem."""
    name = getattr(fn, "__module__", None) or "<unknown>"
    interactive = _interactive.get(name)
    if interactive is not None:
        return interactive.name
    if name == "__main__":
        file = getattr(sys.modules.get("__main__"), "__file__", None)
        if file:
            return Path(file).stem
    return name


def check_source_available(fn: Callable[..., Any], mode: CodeHashMode) -> None:
    """Raise TaskDefinitionError when the code that `mode` hashes cannot be read."""
    interactive = _interactive.get(getattr(fn, "__module__", None) or "")
    if interactive is not None:
        if interactive.definition_of(fn) is None:
            raise TaskDefinitionError(
                f"@task on {fn.__qualname__}: its source is not in the cells run so far "
                f"(defined through exec?); pin the code with version='…'"
            )
        return
    if mode is CodeHashMode.MODULE:
        module = sys.modules.get(fn.__module__)
        if _module_file(module) is None:
            in_ipython = fn.__module__ == "__main__" and "IPython" in sys.modules
            hint = "run %load_ext merkl first, " if in_ipython else ""
            raise TaskDefinitionError(
                f"@task on {fn.__qualname__}: the source of module {fn.__module__!r} is not "
                f"available (defined in a REPL or a compiled module?); {hint}use "
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
    """Hash of a function and of the module-level names it references (see `function_parts`)."""
    return hash_struct("merkl.function", sorted(function_parts(fn).items()))


def function_parts(fn: Callable[..., Any]) -> dict[str, str]:
    """Digests of a function's own code and of each module-level definition it references,
    transitively within its module, by label (`code of f`, `function g`, `assignment X`…)."""
    interactive = _interactive.get(getattr(fn, "__module__", None) or "")
    if interactive is not None:
        return interactive.function_parts(fn)
    cached = _function_parts.get(fn)
    if cached is None:
        cached = _function_parts[fn] = _compute_function_parts(fn)
    return cached


def _compute_function_parts(fn: Callable[..., Any]) -> dict[str, str]:
    qualname = getattr(fn, "__qualname__", repr(fn))
    parsed = _parse_module_of(fn)
    node = find_function(parsed.tree, qualname) if parsed is not None else None
    if node is None or parsed is None:  # no module file (a REPL, exec): the function alone
        return {f"code of {qualname}": ast_digest(_parse_source_of(fn))}
    own_name = qualname if "." not in qualname else None
    parts = {f"code of {qualname}": ast_digest(node)}
    for name, statements in referenced_definitions(
        node, parsed.bindings, own_name=own_name
    ).items():
        parts[f"{statement_kind(statements)} {name}"] = parsed.binding_digest(name)
    return parts


class InteractiveModule:
    """A module whose code is the cells run in it so far (a notebook kernel's `__main__`, or a
    notebook run by `merkl run`), not a file.

    Its tasks are named `name` (the notebook's path) and hashed like FUNCTION-mode tasks against
    the top-level bindings of the cells: for each name, the statements of the last cell that
    bound it, so re-running a cell replaces its definitions and running other cells changes
    nothing a task does not reference. Cell positions and execution counts are not hashed.
    """

    def __init__(self, name: str, cells: Callable[[], Sequence[str]]) -> None:
        self.name = name
        self._cells = cells  # the sources run so far, in order; a list that only grows
        self._seen = 0
        self._parsed = _ParsedModule(b"", ast.Module(body=[], type_ignores=[]), {}, {})
        self._trees: dict[str, ast.Module | None] = {}  # a cell's source -> its AST
        self._parts: weakref.WeakKeyDictionary[Callable[..., Any], tuple[int, dict[str, str]]]
        self._parts = weakref.WeakKeyDictionary()  # a re-run cell drops its old functions
        self._lock = threading.Lock()

    def generation(self) -> int:
        """Changes whenever a cell ran since the last call (the bindings may have)."""
        return len(self._cells())

    def function_parts(self, fn: Callable[..., Any]) -> dict[str, str]:
        """`fn`'s own code and the notebook-level definitions it references, transitively."""
        with self._lock:
            generation = self._catch_up()
            cached = self._parts.get(fn)
            if cached is not None and cached[0] == generation:
                return cached[1]
            qualname = getattr(fn, "__qualname__", repr(fn))
            node = self.definition_of(fn)
            if node is None:
                parts = {f"code of {qualname}": ast_digest(_parse_source_of(fn))}
            else:
                own_name = qualname if "." not in qualname else None
                parts = {f"code of {qualname}": ast_digest(node)}
                parsed = self._parsed
                found = referenced_definitions(node, parsed.bindings, own_name=own_name)
                for name, statements in found.items():
                    parts[f"{statement_kind(statements)} {name}"] = parsed.binding_digest(name)
            self._parts[fn] = (generation, parts)
            return parts

    def definition_of(
        self, fn: Callable[..., Any]
    ) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The AST of `fn` in the cell it was defined by (as the kernel compiled it)."""
        code = getattr(fn, "__code__", None)
        if code is None:
            return None
        tree = self._tree(code.co_filename)
        return find_function(tree, fn.__qualname__) if tree is not None else None

    def _tree(self, filename: str) -> ast.Module | None:
        source = "".join(linecache.getlines(filename))
        if not source:
            return None
        return self._parse(source)

    def _parse(self, source: str) -> ast.Module | None:
        if source not in self._trees:
            try:
                with _ast_lock:
                    self._trees[source] = ast.parse(source)
            except SyntaxError:
                self._trees[source] = None  # the kernel did not run it either
        return self._trees[source]

    def _catch_up(self) -> int:
        """Fold the cells run since the last call into the bindings; their number."""
        cells = self._cells()
        if len(cells) < self._seen:  # the history was cleared (`%reset`): start again
            self._seen = 0
            self._parsed.bindings.clear()
            self._parsed.digests.clear()
        parsed = self._parsed
        for source in cells[self._seen :]:
            tree = self._parse(source)
            if tree is None:
                continue
            for name, statements in module_bindings(tree).items():
                parsed.bindings[name] = statements
                parsed.digests.pop(name, None)
        self._seen = len(cells)
        return self._seen


_interactive: dict[str, InteractiveModule] = {}  # by module name (`__main__`)


def register_interactive(module: str, code: InteractiveModule | None) -> None:
    """Hash the tasks of `module` by the cells of `code` (None: by its file again)."""
    if code is None:
        _interactive.pop(module, None)
    else:
        _interactive[module] = code


def code_generation(fn: Callable[..., Any]) -> int | None:
    """None for code read from files (its hash never changes in a process); for a function
    of an interactive module, a number that changes whenever its hash may have."""
    if not _interactive:
        return None
    interactive = _interactive.get(getattr(fn, "__module__", None) or "")
    return interactive.generation() if interactive is not None else None


def _binding_digest(name: str, statements: list[ast.stmt]) -> str:
    """Digest of the statements binding `name`; of an import, only the part binding it."""
    imports = [found for stmt in statements if (found := import_of(name, stmt)) is not None]
    if len(imports) != len(statements):
        return ast_digest(statements)
    return hash_struct(
        "merkl.import",
        [[module, level, ast_digest(aliases)] for module, level, aliases in imports],
    )


def _parse_module_of(fn: Callable[..., Any]) -> _ParsedModule | None:
    """The file `fn`'s module comes from, parsed as it is now."""
    file = _module_file(sys.modules.get(getattr(fn, "__module__", None) or ""))
    if file is None:
        return None
    key = str(file)
    source = file.read_bytes()  # cheap next to parsing; an mtime can miss a quick edit
    found = _parsed.get(key)
    if found is None or found.source != source:
        with _ast_lock:
            tree = ast.parse(source, filename=key)
        found = _parsed[key] = _ParsedModule(source, tree, module_bindings(tree), {})
    return found


def _parse_source_of(fn: Callable[..., Any]) -> ast.Module:
    try:
        linecache.checkcache(inspect.getsourcefile(fn))  # an edited file, not stale lines
        source = inspect.getsource(fn)
    except (OSError, TypeError) as exc:
        raise TaskDefinitionError(
            f"cannot read the source of {getattr(fn, '__qualname__', fn)!r} to hash it; "
            f"pin it with version='…'"
        ) from exc
    with _ast_lock:
        return ast.parse(textwrap.dedent(source))


def module_hash(module: types.ModuleType) -> str:
    """Hash of a module's code, without docstrings and self-identified task definitions."""
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
        body = [node for node in without_docstring(tree.body) if not _declares_own_identity(node)]
        cached = _module_hashes[module] = ast_digest(body)
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


def code_identity(
    fn: Callable[..., Any],
    mode: CodeHashMode,
    version: str | None,
    deps: tuple[object, ...],
) -> CodeIdentity:
    """The code hash of a task — its identity, its code (or pinned version) and its deps —
    and its parts by label."""
    if version is not None:
        kind, parts = "version", {"version": hash_bytes(version.encode("utf-8"))}
    elif mode is CodeHashMode.FUNCTION or fn.__module__ in _interactive:
        kind, parts = "function", dict(function_parts(fn))
    else:
        module = sys.modules[fn.__module__]
        kind, parts = "module", {f"module {module_name(fn)}": module_hash(module)}
    for i, dep in enumerate(deps):
        parts[f"code_deps[{i}] {_dep_label(dep)}"] = dep_hash(dep)
    digest = hash_struct(
        "merkl.code", module_name(fn), fn.__qualname__, kind, sorted(parts.items())
    )
    return CodeIdentity(digest, parts)


def _dep_label(dep: object) -> str:
    if isinstance(dep, types.ModuleType):
        return f"module {dep.__name__}"
    if isinstance(dep, (str, bytes, bytearray)):
        return "value"
    name = getattr(dep, "__qualname__", None) or getattr(dep, "name", None) or repr(dep)
    return f"function {name}"


def _module_file(module: types.ModuleType | None) -> Path | None:
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return None
    path = Path(file)
    return path if path.is_file() else None


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
