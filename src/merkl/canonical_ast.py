"""Code identity as merkl's own canonical walk of the AST, the same on every Python version.

`ast.dump` is not a stable format: 3.12 added fields (`type_params`) and 3.13 stopped printing
empty ones, so hashing its output would make every interpreter upgrade (and a team on mixed
versions) miss every cache. The walk here writes each node as its type name and its fields
sorted by name, skipping fields that are empty (None or []) — so a field a newer Python adds
with an empty default changes nothing — and encodes constants with merkl's canonical,
type-tagged value encoding. Positions, comments, formatting and docstrings are not code and are
left out; the `u` prefix of a string (`Constant.kind`), `# type:` comments and empty pieces of
f-strings as well.

The walk uses an explicit stack, so a 5,000-term expression cannot hit the recursion limit.
"""

from __future__ import annotations

import ast
import struct
from collections.abc import Sequence
from typing import Any

from merkl.hashing import encode_value, hash_bytes

# Fields that do not change what code does.
_SKIPPED_FIELDS = frozenset({"kind", "type_comment"})
# Nodes whose body may open with a docstring.
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


class _Raw(bytes):
    """Pre-encoded bytes on the walk's stack (a `bytes` constant is a plain `bytes`)."""


def ast_digest(node: ast.AST | Sequence[ast.AST]) -> str:
    """BLAKE3 of the canonical encoding of `node` (or of a list of statements)."""
    return hash_bytes(canonical_bytes(node))


def canonical_bytes(node: ast.AST | Sequence[ast.AST]) -> bytes:
    """The canonical encoding of `node`: injective, independent of the Python version."""
    out = bytearray(b"merkl.ast\x00")
    stack: list[Any] = [node if isinstance(node, ast.AST) else list(node)]
    while stack:
        item = stack.pop()
        if type(item) is _Raw:
            out += item
        elif isinstance(item, ast.AST):
            fields = _fields(item)
            out += b"n"
            out += _name(type(item).__name__)
            out += struct.pack(">Q", len(fields))
            for name, value in reversed(fields):
                stack.append(value)
                stack.append(_name(name))
        elif type(item) is list:
            out += b"l"
            out += struct.pack(">Q", len(item))
            stack.extend(reversed(item))
        else:
            out += _constant(item)
    return bytes(out)


def _name(text: str) -> _Raw:
    """The encoding of a node type or field name (a few hundred of them: encoded once)."""
    encoded = _NAMES.get(text)
    if encoded is None:
        encoded = _NAMES[text] = _Raw(encode_value(text))
    return encoded


_NAMES: dict[str, _Raw] = {}


def without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    """`body` without a leading docstring statement."""
    if body and _is_docstring(body[0]):
        return body[1:]
    return body


def _fields(node: ast.AST) -> list[tuple[str, Any]]:
    found = []
    for name in sorted(node._fields):
        if name in _SKIPPED_FIELDS:
            continue
        value: Any = getattr(node, name, None)
        if name == "body" and isinstance(node, _DOCUMENTED):
            value = without_docstring(value)
        elif name == "values" and isinstance(node, ast.JoinedStr):
            # 3.12.0-3.12.x end some f-string format specs with an empty piece; others do not.
            value = [v for v in value if not (isinstance(v, ast.Constant) and v.value == "")]
        if value is None or (type(value) is list and not value):
            continue  # absent, or a field this Python version has and another lacks
        found.append((name, value))
    return found


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _constant(value: Any) -> bytes:
    """A literal's encoding: the canonical value encoding, plus the two literal types it lacks."""
    if value is Ellipsis:
        return b"e"
    if type(value) is complex:
        return b"c" + encode_value((value.real, value.imag))
    return encode_value(value, "constant")
