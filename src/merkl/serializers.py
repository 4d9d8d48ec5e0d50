"""Serializers turn task outputs into the bytes stored in the cache and back.

JSON (orjson) is the default: a value comes back exactly or is refused (`merkl.typed_json`).
`BytesSerializer` stores raw bytes, `NumpySerializer` `.npy` arrays, and `PickleSerializer`
anything picklable — opt-in only, and never loaded from bytes that came from a remote or a client
unless the user allowed it (`is_safe = False`).
"""

from __future__ import annotations

import io
import pickle
from typing import Any, ClassVar

import orjson

from merkl import typed_json
from merkl.errors import SerializationError


class Serializer:
    """Base class: `dump(value) -> bytes` and `load(bytes) -> value`.

    Subclasses set a stable `name` (recorded in the index so a cached object is always read back
    with the serializer that wrote it) and may set `is_safe = True` when loading bytes from
    someone else (a remote, a client of `merkl serve`) cannot run code. It defaults to False:
    outputs of a custom serializer pulled from a remote are then loaded only with
    `--trust-pickle` (or `trust_pickle = true` for the remote), like pickle.
    """

    name: ClassVar[str] = ""
    is_safe: ClassVar[bool] = False

    def dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def load(self, data: bytes) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class JsonSerializer(Serializer):
    """JSON that gives back exactly what was stored, or refuses to store it.

    Plain data (dicts with str keys, lists, str, int, finite floats, bool, None) is written as
    plain JSON (orjson); anything else merkl can restore without running code — NaN and ±inf,
    tuples, sets, non-str dict keys, bytes, numpy arrays and scalars, datetimes, Decimal,
    paths — in a typed envelope (see `merkl.typed_json`). Other values raise a
    SerializationError naming their type and where they are in the output.
    """

    name = "json"
    is_safe = True

    def dump(self, value: Any) -> bytes:
        return typed_json.dumps(value)

    def load(self, data: bytes) -> Any:
        try:
            return typed_json.loads(data)
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise SerializationError(f"stored JSON is not valid: {exc}") from exc


class BytesSerializer(Serializer):
    """Raw bytes, stored as they are."""

    name = "bytes"
    is_safe = True

    def dump(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise SerializationError(f"BytesSerializer expects bytes, got {type(value).__name__}")
        return bytes(value)

    def load(self, data: bytes) -> Any:
        return data


class NumpySerializer(Serializer):
    """A numpy array in `.npy` format (object arrays refused: they would need pickle)."""

    name = "npy"
    is_safe = True

    def dump(self, value: Any) -> bytes:
        import numpy as np

        buffer = io.BytesIO()
        try:
            np.save(buffer, np.asarray(value), allow_pickle=False)
        except ValueError as exc:
            raise SerializationError(f"cannot store the array as .npy: {exc}") from exc
        return buffer.getvalue()

    def load(self, data: bytes) -> Any:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)


class PickleSerializer(Serializer):
    """Pickle (opt-in). Loading pickle can run code, so remote pickles need explicit consent."""

    name = "pickle"
    is_safe = False

    def dump(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=5)
        except Exception as exc:
            raise SerializationError(f"cannot pickle {type(value).__name__}: {exc}") from exc

    def load(self, data: bytes) -> Any:
        return pickle.loads(data)


_BY_NAME: dict[str, Serializer] = {
    cls.name: cls() for cls in (JsonSerializer, BytesSerializer, NumpySerializer, PickleSerializer)
}
DEFAULT_SERIALIZER: Serializer = _BY_NAME["json"]


def get_serializer(name: str) -> Serializer:
    """The serializer recorded under `name` in the index."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise SerializationError(
            f"unknown serializer {name!r}; known: {', '.join(sorted(_BY_NAME))}"
        ) from None


def register_serializer(serializer: Serializer) -> None:
    """Make a custom serializer loadable by name from the cache."""
    if not serializer.name:
        raise SerializationError(f"{serializer!r} has no `name`; set a stable class attribute")
    _BY_NAME[serializer.name] = serializer
