"""Bind JSON arguments to a pipeline's signature, naming the argument when they do not fit.

Parameters annotated `int`, `float`, `str`, `bool` or `Path` are checked, and widened where JSON
cannot say it (an integer for a `float`, a string for a `Path`), so a request hashes its
arguments exactly as `merkl run` does after clize converted the same values from the command line.
"""

from __future__ import annotations

import inspect
import pathlib
import typing
from collections.abc import Callable
from typing import Any

from merkl.serve.payload import RequestError, short_repr

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)


def type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of `function`; empty when they cannot be resolved."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # a forward reference that does not resolve: check nothing
        return {}


def bind_arguments(
    name: str,
    signature: inspect.Signature,
    hints: dict[str, Any],
    args: list[Any],
    kwargs: dict[str, Any],
) -> inspect.BoundArguments:
    """`args`/`kwargs` bound to `signature`; `name` is the pipeline, for messages.

    Raises:
        RequestError: 422 naming the missing, unexpected or mistyped argument.
    """
    params = signature.parameters
    kinds = {p.kind for p in params.values()}
    listing = ", ".join(params) or "no arguments"
    for key in kwargs:
        param = params.get(key)
        if param is None or param.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD):
            if _P.VAR_KEYWORD not in kinds:
                raise RequestError(
                    422, f"{name}: unexpected argument {short_repr(key)}; it takes: {listing}"
                )
        elif param.kind is _P.POSITIONAL_ONLY:
            raise RequestError(
                422, f'{name}: argument {key!r} is positional-only; pass it in "args"'
            )
    positional = [p.name for p in params.values() if p.kind in _POSITIONAL]
    if len(args) > len(positional) and _P.VAR_POSITIONAL not in kinds:
        raise RequestError(
            422,
            f"{name}: takes at most {len(positional)} positional argument(s) "
            f"({', '.join(positional) or 'none'}), got {len(args)}",
        )
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:  # a missing argument, or one given twice
        raise RequestError(422, f"{name}: {exc}; it takes: {listing}") from None
    for key, value in bound.arguments.items():
        if params[key].kind in _POSITIONAL or params[key].kind is _P.KEYWORD_ONLY:
            bound.arguments[key] = _check_type(name, key, value, hints.get(key))
    return bound


def _check_type(name: str, key: str, value: Any, hint: Any) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is pathlib.Path and isinstance(value, str):
        return pathlib.Path(value)
    if hint in (int, float, str, bool, pathlib.Path) and (
        not isinstance(value, hint) or (hint is int and isinstance(value, bool))
    ):
        expected = "a string path" if hint is pathlib.Path else hint.__name__
        raise RequestError(
            422, f"{name}: argument {key!r} expects {expected}, got {short_repr(value)}"
        )
    return value
