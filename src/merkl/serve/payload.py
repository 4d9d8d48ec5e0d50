"""Request bodies in, JSON out: the parts of the wire format that need no web framework.

A run or dry-run body is a JSON object `{"args": [...], "kwargs": {...}, "cache": {...}}`, every
key optional. Parsing uses the standard library on purpose: orjson turns integers wider than 64
bits into floats, which would silently change an argument and so its Merkle hash.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from merkl.errors import UsageError
from merkl.hashing import is_hex_hash

BODY_KEYS = ("args", "kwargs", "cache")


class RequestError(UsageError):
    """A request the server refuses; `status` is the HTTP status to answer with (4xx)."""

    status: int

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message, status=status)


@dataclass
class RunRequest:
    """A parsed request body."""

    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # out_hash -> client-sent value


def parse_request(body: bytes) -> RunRequest:
    """Parse and shape-check a body; an empty body means no arguments.

    Raises:
        RequestError: 400 for text that is not JSON, 422 for JSON of the wrong shape.
    """
    if not body.strip():
        return RunRequest()
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise RequestError(400, f"the request body is not valid JSON: {exc}") from None
    try:  # what an answer that carries these values back needs: no lone surrogates, depth
        dump_json(data)
    except TypeError as exc:
        raise RequestError(400, f"the request body cannot be used: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(
            422,
            f'the request body must be a JSON object like {{"args": [], "kwargs": {{}}}}, '
            f"got {_kind(data)}",
        )
    unknown = sorted(set(data) - set(BODY_KEYS))
    if unknown:
        raise RequestError(
            422,
            f"unknown key(s) {', '.join(map(repr, unknown))} in the request body; "
            f"expected only {', '.join(map(repr, BODY_KEYS))}",
        )
    args, kwargs, cache = data.get("args", []), data.get("kwargs", {}), data.get("cache", {})
    if not isinstance(args, list):
        raise RequestError(422, f'"args" must be a JSON array of arguments, got {_kind(args)}')
    if not isinstance(kwargs, dict):
        raise RequestError(
            422, f'"kwargs" must be a JSON object of named arguments, got {_kind(kwargs)}'
        )
    if not isinstance(cache, dict):
        raise RequestError(
            422, f'"cache" must be a JSON object {{"<output hash>": value}}, got {_kind(cache)}'
        )
    bad = [key for key in cache if not is_hex_hash(key)]
    if bad:
        raise RequestError(
            422,
            f'"cache" key {short_repr(bad[0])} is not an output hash (64 lowercase hex '
            f"characters, as listed by the dry-run endpoint)",
        )
    return RunRequest(args, kwargs, cache)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
    }.get(type(value), "a number")


def short_repr(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dump_json(value: Any) -> bytes:
    """JSON bytes for a response or request body (numpy arrays and paths included).

    Raises:
        TypeError: for a value JSON cannot carry.
    """
    try:
        return orjson.dumps(
            value,
            default=_default,
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
        )
    except orjson.JSONEncodeError as exc:
        if "Integer exceeds 64-bit range" not in str(exc):
            raise TypeError(str(exc)) from None
    # orjson refuses integers wider than 64 bits; the standard library does not.
    return json.dumps(value, default=_default, allow_nan=False, separators=(",", ":")).encode()


def _default(value: Any) -> Any:
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"a value of type {type(value).__name__} has no JSON form")
