"""Exact JSON for task outputs: plain JSON when the value is plain, a typed envelope otherwise.

A value made only of dicts with str keys, lists, str, int, finite float, bool and None is written
as the plain JSON of it (orjson; the standard library past 64-bit integers), which reads back
equal and of the same types. Any other value is written as a typed envelope,
`{"merkl.typed": 1, "value": NODE}`, where each NODE is `[tag, payload]` and a plain part is
`["j", <its plain JSON>]`. The envelope restores exactly, and without running code:

| tag | type | payload |
|---|---|---|
| `j` | a plain JSON part | the JSON itself |
| `f` | float NaN, inf, -inf | `"nan"`, `"inf"`, `"-inf"` |
| `l`, `t`, `s`, `z` | list, tuple, set, frozenset | `[NODE, …]` |
| `d` | dict (any keys) | `[[NODE, NODE], …]` |
| `b`, `ba` | bytes, bytearray | base64 |
| `c` | complex | `[NODE, NODE]` (real, imaginary) |
| `dt`, `date`, `time` | datetime (naive or fixed offset), date, time | ISO 8601 |
| `td` | timedelta | `[days, seconds, microseconds]` |
| `dec` | decimal.Decimal | its string |
| `p` | pathlib paths | `[class name, path]` |
| `np` | numpy array or scalar (no object dtype) | base64 of its `.npy` bytes (never pickled) |

Anything else — instances of user classes, dataclasses, enums, named tuples, pandas objects,
object arrays — would come back as something else (or need pickle to come back at all), so
`dumps` refuses it with a `SerializationError` naming where it is in the value and its type.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import json
import math
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import orjson

from merkl.errors import SerializationError
from merkl.hashing import encode_value

ENVELOPE_KEY = "merkl.typed"
_BIG_INTS = b" "  # JSON allows leading whitespace: a marker every JSON parser ignores
_SCALARS = frozenset({str, int, bool, type(None)})
_FLOAT = frozenset({float})
_STR = frozenset({str})
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_PATHS: dict[str, type[pathlib.PurePath]] = {
    cls.__name__: cls
    for cls in (pathlib.PurePosixPath, pathlib.PureWindowsPath, pathlib.PosixPath)
}
if sys.platform == "win32":  # pragma: no cover
    _PATHS["WindowsPath"] = pathlib.WindowsPath


def dumps(value: Any) -> bytes:
    """JSON bytes that `loads` turns back into `value`, exactly; SerializationError if none."""
    if is_plain(value) and not (type(value) is dict and ENVELOPE_KEY in value):
        return _dump_json(value)
    try:
        node = _encode(value, "value")
    except RecursionError:
        raise SerializationError(
            "cannot store the value as JSON: it is nested too deeply; flatten it"
        ) from None
    return _dump_json({ENVELOPE_KEY: 1, "value": node})


def loads(data: bytes) -> Any:
    """The value `dumps` wrote."""
    # A leading space marks JSON with integers beyond 64 bits, which orjson would read as
    # floats: the standard library reads them exactly.
    document = json.loads(data) if data[:1] == _BIG_INTS else orjson.loads(data)
    if type(document) is dict and ENVELOPE_KEY in document:
        return _decode(document["value"])
    return document


def is_plain(value: Any) -> bool:
    """True if `value` is plain JSON data that reads back equal and of the same types."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
        elif kind is list:
            types = set(map(type, item))
            if types <= _FLOAT:  # a long list of floats: checked at C speed
                if not all(map(math.isfinite, item)):
                    return False
            elif not types <= _SCALARS:
                stack.extend(item)
        elif kind is dict:
            if not set(map(type, item)) <= _STR:
                return False
            stack.extend(item.values())
        else:
            return False
    return True


def _dump_json(document: Any) -> bytes:
    try:
        return orjson.dumps(document)
    except TypeError as exc:
        if "64-bit" in str(exc):  # orjson's limit; the standard library has none
            text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
            return _BIG_INTS + text.encode()
        raise SerializationError(f"cannot store the value as JSON: {exc}") from exc


def _encode(value: Any, path: str) -> list[Any]:
    if is_plain(value):
        return ["j", value]
    kind = type(value)
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return encoder(value, path)
    if _is_numpy(value):
        return _encode_numpy(value, path)
    if isinstance(value, pathlib.PurePath) and kind.__name__ in _PATHS:
        return ["p", [kind.__name__, str(value)]]
    raise _refused(value, path)


def _encode_float(value: float, path: str) -> list[Any]:
    return ["f", "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")]


def _encode_items(tag: str) -> Callable[[Any, str], list[Any]]:
    def encode(value: Any, path: str) -> list[Any]:
        items = value if tag in ("l", "t") else _sorted_for_storage(value)
        return [tag, [_encode(item, f"{path}[{i}]") for i, item in enumerate(items)]]

    return encode


def _sorted_for_storage(items: Any) -> list[Any]:
    """Set items in a fixed order, so the same set is always stored as the same bytes."""
    try:
        return sorted(items)
    except TypeError:  # mixed types: order by their canonical encoding instead
        return sorted(items, key=lambda item: encode_value(item, "set item"))


def _encode_dict(value: dict[Any, Any], path: str) -> list[Any]:
    return [
        "d",
        [
            [_encode(key, f"{path} key {key!r}"), _encode(item, f"{path}[{key!r}]")]
            for key, item in value.items()
        ],
    ]


def _encode_datetime(value: dt.datetime, path: str) -> list[Any]:
    if value.tzinfo is not None and type(value.tzinfo) is not dt.timezone:
        raise SerializationError(
            f"cannot store {path} (a datetime in time zone {value.tzinfo!r}) as JSON: it would "
            f"come back with a fixed UTC offset instead; convert it with .astimezone(UTC), or "
            f"use @task(serializers={{index: PickleSerializer()}})",
            path=path,
            type=type(value),
        )
    return ["dt", value.isoformat()]


def _encode_numpy(value: Any, path: str) -> list[Any]:
    import numpy as np

    if value.dtype.hasobject:
        raise _refused(value, path, detail="dtype object")
    if type(value) is not np.ndarray and not isinstance(value, np.generic):
        raise _refused(value, path)  # a subclass (masked array, matrix) would come back plain
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value), allow_pickle=False)
    return ["np", [isinstance(value, np.generic), base64.b64encode(buffer.getvalue()).decode()]]


_ENCODERS: dict[type, Callable[[Any, str], list[Any]]] = {
    float: _encode_float,
    list: _encode_items("l"),
    tuple: _encode_items("t"),
    set: _encode_items("s"),
    frozenset: _encode_items("z"),
    dict: _encode_dict,
    bytes: lambda v, p: ["b", base64.b64encode(v).decode()],
    bytearray: lambda v, p: ["ba", base64.b64encode(v).decode()],
    complex: lambda v, p: ["c", [_encode(v.real, p), _encode(v.imag, p)]],
    dt.datetime: _encode_datetime,
    dt.date: lambda v, p: ["date", v.isoformat()],
    dt.time: lambda v, p: ["time", v.isoformat()],
    dt.timedelta: lambda v, p: ["td", [v.days, v.seconds, v.microseconds]],
    decimal.Decimal: lambda v, p: ["dec", str(v)],
}


def _decode(node: Any) -> Any:
    tag, payload = node
    if tag == "j":
        return payload
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise SerializationError(f"stored JSON has an unknown type tag {tag!r}")
    return decoder(payload)


def _decode_numpy(payload: list[Any]) -> Any:
    import numpy as np

    is_scalar, data = payload
    array = np.load(io.BytesIO(base64.b64decode(data)), allow_pickle=False)
    return array[()] if is_scalar else array


def _decode_path(payload: list[str]) -> pathlib.PurePath:
    name, text = payload
    cls = _PATHS.get(name)
    if cls is None:
        raise SerializationError(f"stored JSON has a path of unknown type {name!r}")
    return cls(text)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "f": lambda p: _NONFINITE[p],
    "l": lambda p: [_decode(item) for item in p],
    "t": lambda p: tuple(_decode(item) for item in p),
    "s": lambda p: {_decode(item) for item in p},
    "z": lambda p: frozenset(_decode(item) for item in p),
    "d": lambda p: {_decode(key): _decode(item) for key, item in p},
    "b": lambda p: base64.b64decode(p),
    "ba": lambda p: bytearray(base64.b64decode(p)),
    "c": lambda p: complex(_decode(p[0]), _decode(p[1])),
    "dt": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "td": lambda p: dt.timedelta(days=p[0], seconds=p[1], microseconds=p[2]),
    "dec": decimal.Decimal,
    "p": _decode_path,
    "np": _decode_numpy,
}


def _is_numpy(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic))


def _refused(value: Any, path: str, detail: str = "") -> SerializationError:
    cls = type(value)
    shown = f"{cls.__module__}.{cls.__qualname__}" + (f", {detail}" if detail else "")
    return SerializationError(
        f"cannot store {path} ({shown}) as JSON: it would not come back as the same type; "
        f"return plain data (dict, list, str, numbers, numpy arrays), or use "
        f"@task(serializers={{index: PickleSerializer()}})",
        path=path,
        type=cls,
    )
