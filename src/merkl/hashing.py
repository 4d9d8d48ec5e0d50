"""Canonical, type-tagged encoding of values and BLAKE3 hashing.

Every value that feeds a Merkle hash is first turned into bytes by `encode_value`. The encoding
is deterministic across processes, machines and `PYTHONHASHSEED` (no `hash()`, no pickle) and
injective: every value starts with a one-byte type tag and every variable-length part carries
its length, so `[1]` ≠ `(1,)`, `{1: x}` ≠ `{"1": x}`, `1` ≠ `1.0` ≠ `True`, `"a"` ≠ `b"a"`.

Bumping `HASH_SCHEMA` invalidates every cached output; the golden digests in
`tests/test_hashing.py` pin it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import mmap
import os
import pathlib
import struct
import sys
import types
from binascii import hexlify as _hexlify
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import blake3

from merkl.errors import HashingError
from merkl.progress import advance_bytes, wants_bytes

HASH_SCHEMA = 2
HASH_PREFIX = "blake3:"
HEX_LEN = 64
_MMAP_THRESHOLD = 4 << 20  # below this, a plain read beats mmap + threads
_PROGRESS_CHUNK = 64 << 20  # large enough for BLAKE3's threads, small enough for a moving bar

_FUNCTION_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType)
_Encoder = Callable[[Any, bytearray, str], None]
_user_encoders: dict[type, Callable[[Any], Any]] = {}


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    """BLAKE3 hex digest (64 hex chars) of raw bytes."""
    return blake3.blake3(data).hexdigest()


def hash_digest(data: bytes | bytearray | memoryview) -> bytes:
    """BLAKE3 digest (32 bytes) of raw bytes: half the memory of its hex form."""
    return _blake3(data).digest()


_blake3 = blake3.blake3  # one attribute lookup less per hash on the cache-hit path


def hash_struct(*parts: Any) -> str:
    """Hash a domain-tagged struct of encodable values, e.g. `hash_struct("output", ...)`."""
    return hash_bytes(encode_value(list(parts)))


def hash_file(path: Path | str) -> str:
    """BLAKE3 of a file's content; large files are hashed memory-mapped on all cores.

    While a byte progress bar is shown (`merkl track` on a terminal), large files are hashed
    in chunks of the mapping, reporting each, instead of in one call.
    """
    size = os.path.getsize(path)
    if size < _MMAP_THRESHOLD:
        with open(path, "rb") as handle:
            digest = hash_bytes(handle.read())
        advance_bytes(size)
        return digest
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    if not wants_bytes():
        hasher.update_mmap(path)
        return hasher.hexdigest()
    with (
        open(path, "rb") as handle,
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
        memoryview(mapped) as view,
    ):
        for start in range(0, len(view), _PROGRESS_CHUNK):
            with view[start : start + _PROGRESS_CHUNK] as chunk:
                hasher.update(chunk)
                advance_bytes(len(chunk))
    return hasher.hexdigest()


def output_hash_prefix(code_hash: str) -> bytes:
    """Encoded head of `["merkl.output", HASH_SCHEMA, code_hash, args_hash, index]`, up to
    the header of `args_hash`: computed once per task, completed by `output_digest` once per
    output."""
    head = encode_value(["merkl.output", HASH_SCHEMA, code_hash])
    # A list of 5 items instead of 3: patch the count in the header.
    return head[:1] + (5).to_bytes(8, "big") + head[9:] + _HEX_STR_HEAD


def output_hash(prefix: bytes, args_hash: str, index: int) -> str:
    """`hash_struct("merkl.output", HASH_SCHEMA, code_hash, args_hash, index)` from the
    task's `output_hash_prefix`."""
    return output_digest(prefix, bytes.fromhex(args_hash), index).hex()


def output_digest(prefix: bytes, args_digest: bytes, index: int) -> bytes:
    """`output_hash` as its 32-byte digest, from the arguments' digest: this runs once per
    node of a 1e6-task dry run and once per cache hit."""
    index_bytes = _INDEXES[index] if index < len(_INDEXES) else encode_value(index)
    return _blake3(prefix + _hexlify(args_digest) + index_bytes).digest()


def encode_value(value: Any, path: str = "value") -> bytes:
    """Canonical bytes of `value`; `path` names it in errors (e.g. `argument 'x'`)."""
    out = bytearray()
    try:
        _encode(value, out, path)
    except RecursionError:
        raise _too_deep(path) from None
    return bytes(out)


def _too_deep(path: str) -> HashingError:
    return HashingError(
        f"cannot hash {path}: it is nested too deeply for Python's recursion limit "
        f"({sys.getrecursionlimit()}); flatten it, or register an encoder for its type",
        path=path,
    )


def register_encoder(cls: type, fn: Callable[[Any], Any]) -> None:
    """Teach merkl to hash values of `cls`: `fn(value)` returns an encodable stand-in.

    The stand-in is tagged with the class's qualified name, so two types that map to the same
    stand-in still hash differently.

    Example:
        >>> register_encoder(Decimal, str)
    """
    if not isinstance(cls, type):
        raise HashingError(f"register_encoder: expected a class, got {cls!r}")
    _user_encoders[cls] = fn


def unregister_encoder(cls: type) -> None:
    """Remove an encoder added by `register_encoder` (mainly for tests)."""
    _user_encoders.pop(cls, None)


def is_hex_hash(text: str) -> bool:
    """True for a 64-char lowercase hex string."""
    return len(text) == HEX_LEN and all(c in "0123456789abcdef" for c in text)


_pack_length = struct.Struct(">Q").pack
_HASH_HEAD = b"H" + _pack_length(HEX_LEN)  # a hex digest's tag and length, encoded once


def _put(out: bytearray, tag: bytes, payload: bytes) -> None:
    out += tag
    out += _pack_length(len(payload))
    out += payload


def _put_str(out: bytearray, tag: bytes, text: str) -> None:
    _put(out, tag, text.encode("utf-8", "surrogatepass"))


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _enc_none(value: Any, out: bytearray, path: str) -> None:
    out += b"N"


def _enc_bool(value: Any, out: bytearray, path: str) -> None:
    out += b"T" if value else b"F"


def _enc_int(value: Any, out: bytearray, path: str) -> None:
    value = int(value)
    if 0 <= value < _SMALL_INT_COUNT:  # indexes, counters: encoded once
        out += _SMALL_INTS[value]
        return
    try:
        data = str(value).encode()
    except ValueError:  # over sys.get_int_max_str_digits(): the same digits, the long way
        data = _decimal(value).encode()
    out += b"i"
    out += _pack_length(len(data))
    out += data


_SMALL_INT_COUNT = 4096
_SMALL_INTS = [b"i" + _pack_length(len(str(n))) + str(n).encode() for n in range(_SMALL_INT_COUNT)]


def _decimal(value: int) -> str:
    """`str(value)` for any size, without the interpreter's digit limit (divide and conquer)."""
    if value < 0:
        return "-" + _decimal(-value)
    if value < 10**600:  # below the smallest limit Python allows (640 digits)
        return str(value)
    half = int(value.bit_length() * 0.30103) // 2  # about half the decimal digits
    high, low = divmod(value, 10**half)
    return _decimal(high) + _decimal(low).rjust(half, "0")


def _enc_float(value: Any, out: bytearray, path: str) -> None:
    value = float(value)
    if math.isnan(value):
        value = math.nan  # one NaN, whatever its payload bits
    out += b"f"
    out += struct.pack(">d", value)


def _enc_str(value: Any, out: bytearray, path: str) -> None:
    _put_str(out, b"s", value)


def _enc_bytes(value: Any, out: bytearray, path: str) -> None:
    _put(out, b"b", bytes(value))


def _enc_seq(tag: bytes) -> _Encoder:
    def encode(value: Any, out: bytearray, path: str) -> None:
        out += tag
        out += _pack_length(len(value))
        exact = _EXACT
        for i, item in enumerate(value):
            encoder = exact.get(type(item))
            if encoder in _PATHLESS:  # cannot fail: no path to spell (1e6 in a big DAG)
                encoder(item, out, path)
            else:
                _encode(item, out, f"{path}[{i}]")

    return encode


def _enc_dict(value: Any, out: bytearray, path: str) -> None:
    items = sorted(
        ((encode_value(k, f"{path} key"), v, k) for k, v in value.items()),
        key=lambda item: item[0],
    )
    out += b"d"
    out += struct.pack(">Q", len(items))
    for key_bytes, item, key in items:
        out += key_bytes
        _encode(item, out, f"{path}[{key!r}]")


def _enc_set(tag: bytes) -> _Encoder:
    def encode(value: Any, out: bytearray, path: str) -> None:
        encoded = sorted(encode_value(item, f"{path} item") for item in value)
        out += tag
        out += struct.pack(">Q", len(encoded))
        for item_bytes in encoded:
            out += item_bytes

    return encode


_EXACT: dict[type, _Encoder] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    list: _enc_seq(b"l"),
    tuple: _enc_seq(b"t"),
    dict: _enc_dict,
    set: _enc_set(b"S"),
    frozenset: _enc_set(b"Z"),
}


def _encode(value: Any, out: bytearray, path: str) -> None:
    encoder = _EXACT.get(type(value))
    if encoder is not None:
        encoder(value, out, path)
        return
    merkle_hash = getattr(value, "__merkl_hash__", None)
    if merkle_hash is not None and not isinstance(value, type):
        _enc_merkle(value, out, path)
        return
    _encode_other(value, out, path)


def _enc_merkle(value: Any, out: bytearray, path: str) -> None:
    digest = value.__merkl_hash__()
    if digest is None:
        raise _UnknownHashError(path)
    data = digest.encode("utf-8", "surrogatepass")
    out += _HASH_HEAD if len(data) == HEX_LEN else b"H" + _pack_length(len(data))
    out += data


# Encoders that never name the path in an error (a placeholder's unknown hash is caught, not
# shown), so a sequence's items skip formatting it.
_PATHLESS = frozenset(
    {_enc_none, _enc_bool, _enc_int, _enc_float, _enc_str, _enc_bytes, _enc_merkle}
)


def register_hashed_type(cls: type) -> None:
    """Fast path for a class whose instances hash as their `__merkl_hash__()` (placeholders)."""
    _EXACT[cls] = _enc_merkle


def encode_arguments(keys: Sequence[tuple[int, str, bytes]], values: Sequence[Any]) -> bytearray:
    """`encode_value({name: value})` of a call's argument values (in parameter order), with
    the names given as `sorted_keys(names)` returns them: skips building the dict and
    re-encoding and sorting the keys on every call (and copying the result into bytes)."""
    out = bytearray(b"d")
    out += _pack_length(len(keys))
    exact = _EXACT
    for position, name, encoded_name in keys:
        out += encoded_name
        value = values[position]
        encoder = exact.get(type(value))
        try:
            if encoder is not None:
                encoder(value, out, name)
            else:
                _encode(value, out, f"arguments[{name!r}]")
        except RecursionError:
            raise _too_deep(f"argument {name!r}") from None
    return out


def sorted_keys(names: Sequence[str]) -> tuple[tuple[int, str, bytes], ...]:
    """(position, name, encoding) of each name, in the order the canonical dict encoding
    sorts them."""
    keyed = [(position, name, encode_value(name)) for position, name in enumerate(names)]
    return tuple(sorted(keyed, key=lambda k: k[2]))


class _UnknownHashError(Exception):
    """A placeholder whose hash is not known (a --fill-missing argument) was reached."""


def _encode_other(value: Any, out: bytearray, path: str) -> None:
    cls = type(value)
    for base in cls.__mro__:
        fn = _user_encoders.get(base)
        if fn is not None:
            out += b"U"
            _put_str(out, b"s", _type_name(base))
            _encode(fn(value), out, path)
            return
    if isinstance(value, enum.Enum):
        out += b"E"
        _put_str(out, b"s", _type_name(cls))
        _encode(value.value, out, path)
    elif dataclasses.is_dataclass(value):
        out += b"C"
        _put_str(out, b"s", _type_name(cls))
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        _enc_dict(fields, out, path)
    elif isinstance(value, pathlib.PurePath):
        out += b"P"
        _put_str(out, b"s", _type_name(cls))
        _put_str(out, b"s", value.as_posix())
    elif isinstance(value, (dt.datetime, dt.date, dt.time)):
        out += b"W"
        _put_str(out, b"s", _type_name(cls))
        _put_str(out, b"s", value.isoformat())
    elif isinstance(value, dt.timedelta):
        out += b"W"
        _put_str(out, b"s", "timedelta")
        _put_str(out, b"s", f"{value.days},{value.seconds},{value.microseconds}")
    elif _is_numpy(value):
        _enc_numpy(value, out, path)
    elif isinstance(value, (bool, int, float, str, bytes, list, tuple, dict, set, frozenset)):
        # Subclasses of builtins (IntFlag aside, caught above) encode as their base type.
        for base in cls.__mro__:
            if base in _EXACT:
                _EXACT[base](value, out, path)
                return
    elif callable(value) and isinstance(value, _FUNCTION_TYPES):
        what = "a lambda" if value.__name__ == "<lambda>" else f"function {value.__qualname__}"
        raise HashingError(
            f"cannot hash {path}: it is {what}, and merkl hashes values, not code; pass a "
            f"plain value that selects it (e.g. the string 'relu', looked up in a dict inside "
            f"the task), or call it inside the task, whose code is hashed",
            path=path,
            type=cls,
        )
    else:
        raise HashingError(
            f"cannot hash {path} of type {_type_name(cls)}: merkl hashes None, bool, int, float, "
            f"str, bytes, list, tuple, dict, set, dataclasses, enums, paths, datetimes and numpy "
            f"arrays; register an encoder with merkl.register_encoder({cls.__qualname__}, fn)",
            path=path,
            type=cls,
        )


def _is_numpy(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic))


def _enc_numpy(value: Any, out: bytearray, path: str) -> None:
    import numpy as np

    array = np.asarray(value)
    if array.dtype.hasobject:
        raise HashingError(
            f"cannot hash {path}: numpy array of dtype object; convert it to a list or a "
            f"numeric dtype",
            path=path,
            type=type(value),
        )
    out += b"A" if isinstance(value, np.ndarray) else b"a"
    _put_str(out, b"s", array.dtype.str)
    _enc_seq(b"t")(tuple(int(n) for n in array.shape), out, path)
    _put(out, b"b", np.ascontiguousarray(array).tobytes())


_HEX_STR_HEAD = encode_value("0" * 64)[:9]  # tag + length of a 64-char str
_INDEXES = [encode_value(i) for i in range(64)]
