"""Which module-level definitions a function refers to, followed transitively within its module.

A function's behaviour depends on more than its own body: the helpers it calls, the classes it
builds, the constants it reads. `referenced_definitions` finds, for a function's AST, every
top-level statement of its module that binds a name the function reads, then the names those
statements read, and so on. It is syntactic and conservative: a local variable that shares a
module-level name pulls that definition in too (an extra re-run, never a stale value). Names
bound by `from x import *`, or read through `globals()`, are not seen.

Used by `CodeHashMode.FUNCTION` (see `merkl.deps`) and meant for any caller that needs a
definition's closure within one module (notebook cells, for instance).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Statements whose nested statements run at module level (their bindings are global).
_COMPOUND = (
    ast.If,
    ast.Try,
    ast.TryStar,
    ast.With,
    ast.AsyncWith,
    ast.For,
    ast.AsyncFor,
    ast.While,
)


def module_bindings(tree: ast.Module) -> dict[str, list[ast.stmt]]:
    """Top-level statements by the names they bind (or mutate: `X[k] = v`), in source order.

    A compound statement (`if`, `try`, `with`, loops) counts as a whole for every name bound
    inside it: its condition decides which binding wins.
    """
    bindings: dict[str, list[ast.stmt]] = {}
    for stmt in tree.body:
        for name in sorted(_bound_names(stmt)):
            bindings.setdefault(name, []).append(stmt)
    return bindings


def read_names(node: ast.AST) -> set[str]:
    """Every bare name `node` reads (`x`, the `np` of `np.mean`), wherever it occurs in it."""
    return {
        sub.id
        for sub in ast.walk(node)
        if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Store)
    }


def referenced_definitions(
    node: ast.AST, bindings: dict[str, list[ast.stmt]], *, own_name: str | None = None
) -> dict[str, list[ast.stmt]]:
    """The module-level statements `node` depends on, by name, closed under reference.

    `own_name` (the function's own name) is left out: its statement is `node` itself.
    """
    found: dict[str, list[ast.stmt]] = {}
    pending = sorted(read_names(node))
    while pending:
        name = pending.pop()
        if name in found or name == own_name or name not in bindings:
            continue
        statements = bindings[name]
        found[name] = statements
        for stmt in statements:
            pending.extend(sorted(read_names(stmt) - found.keys()))
    return dict(sorted(found.items()))


def import_of(name: str, stmt: ast.stmt) -> tuple[str, int, list[ast.alias]] | None:
    """For an import statement: (module, level, the aliases that bind `name`), so adding
    another name to `from x import a` does not change what `a` is; None for other statements."""
    if isinstance(stmt, ast.ImportFrom):
        module, level = stmt.module or "", stmt.level
    elif isinstance(stmt, ast.Import):
        module, level = "", 0
    else:
        return None
    aliases = [a for a in stmt.names if (a.asname or a.name.split(".")[0]) == name]
    return module, level, aliases


def statement_kind(statements: list[ast.stmt]) -> str:
    """What binds a name, in words: function, class, import, assignment or statement."""
    kinds = {_kind(stmt) for stmt in statements}
    return kinds.pop() if len(kinds) == 1 else "statement"


def find_function(
    tree: ast.Module, qualname: str
) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The definition of the function `qualname` (`f`, `Cls.m`, `outer.<locals>.inner`) in
    `tree`; the last one when a name is defined twice (as Python rebinds it), else None."""
    scope: Iterator[ast.stmt] = _definitions(tree.body)
    node: ast.AST | None = None
    for part in qualname.split("."):
        if part == "<locals>":
            if node is None:
                return None
            scope = (sub for sub in ast.walk(node) if sub is not node and isinstance(sub, _DEFS))
            continue
        node = None
        for candidate in scope:
            if isinstance(candidate, _DEFS) and candidate.name == part:
                node = candidate
        if node is None:
            return None
        scope = _definitions(node.body)
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def _definitions(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for stmt in body:
        if isinstance(stmt, _COMPOUND):
            for field in ("body", "orelse", "finalbody"):
                yield from _definitions(getattr(stmt, field, []))
            for handler in getattr(stmt, "handlers", []):
                yield from _definitions(handler.body)
        else:
            yield stmt


def _bound_names(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, _DEFS):
        return {stmt.name}
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {
            alias.asname or alias.name.split(".")[0] for alias in stmt.names if alias.name != "*"
        }
    if isinstance(stmt, ast.Assign):
        return {name for target in stmt.targets for name in _target_names(target)}
    if isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
        return _target_names(stmt.target)
    if hasattr(ast, "TypeAlias") and isinstance(stmt, ast.TypeAlias):  # 3.12+
        return _target_names(stmt.name)
    if isinstance(stmt, _COMPOUND):
        names: set[str] = set()
        for sub in _definitions([stmt]):
            names |= _bound_names(sub)
        for node in ast.walk(stmt):  # loop variables, `with … as x`, `except E as x`
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
        return names
    return set()


def _target_names(target: ast.expr) -> set[str]:
    """Names an assignment target binds; `X.a = …` and `X[k] = …` count as changing X."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return {name for item in target.elts for name in _target_names(item)}
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, (ast.Attribute, ast.Subscript)):
        return _target_names(target.value)
    return set()


def _kind(stmt: ast.stmt) -> str:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return "function"
    if isinstance(stmt, ast.ClassDef):
        return "class"
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return "import"
    if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return "assignment"
    return "statement"
