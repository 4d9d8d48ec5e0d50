"""Property tests of the canonical argument encoding (`merkl.hashing.encode_value`).

- Injective: values that differ in type or content (by a type-strict model of equality: list
  ≠ tuple, 1 ≠ 1.0 ≠ True, "a" ≠ b"a", {1: x} ≠ {"1": x}, -0.0 ≠ 0.0) never share an encoding,
  and values the model calls equal (a dict or set built in another order) always do.
- Deterministic across processes: two interpreters with other PYTHONHASHSEEDs (so other set
  and dict orders) compute the same digests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import os
import pathlib
import pickle
import random
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merkl.errors import HashingError
from merkl.hashing import encode_value, hash_bytes
from tests.helpers import REPO_ROOT

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("MERKL_TEST_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Colour(enum.Enum):
    RED = 1
    ONE = "1"


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.sampled_from([Colour.RED, Colour.ONE])
    | st.dates()
    | st.builds(pathlib.PurePosixPath, st.text(min_size=1, max_size=6))
)
# Dict keys and set items must be hashable, and NaN keys make distinct-but-unequal keys.
key_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.binary(max_size=6)
)
hashables = st.recursive(
    key_scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=5,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
        | st.builds(Point, inner, inner)
    ),
    max_leaves=16,
)


def model(value: Any) -> Any:
    """Type-strict structural identity: what must decide whether two encodings are equal."""
    kind = type(value)
    if kind is float:
        return ("float", "nan" if math.isnan(value) else struct.pack(">d", value))
    if kind in (type(None), bool, int, str, bytes, Colour, dt.date, pathlib.PurePosixPath):
        return (kind.__name__, value)
    if kind is list or kind is tuple:
        return (kind.__name__, tuple(model(item) for item in value))
    if kind is dict:
        return ("dict", frozenset((model(k), model(v)) for k, v in value.items()))
    if kind is set or kind is frozenset:
        return (kind.__name__, frozenset(model(item) for item in value))
    if kind is Point:
        return ("Point", model(value.x), model(value.y))
    raise AssertionError(f"no model for {kind}")


def confusions(value: Any) -> Iterator[Any]:
    """Values a careless encoding would confuse with `value`."""
    kind = type(value)
    if kind is bool:
        yield int(value)
        yield float(value)
    elif kind is int:
        yield bool(value) if value in (0, 1) else -value
        if abs(value) < 2**53:
            yield float(value)
        yield str(value)
    elif kind is float and not math.isnan(value) and not math.isinf(value):
        if value == int(value):
            yield int(value)
        yield -value
    elif kind is str:
        yield value.encode()
        yield [value]
    elif kind is bytes:
        yield value.decode("latin-1")
    elif kind is list:
        yield tuple(value)
        yield [value]
        if value:
            yield value[:-1]
    elif kind is tuple:
        yield list(value)
    elif kind is dict:
        yield {str(k): v for k, v in value.items()}
        yield sorted(value.items(), key=repr)
        yield set(value) if all(isinstance(k, (str, int)) for k in value) else list(value)
    elif kind is set:
        yield frozenset(value)
        yield sorted(value, key=repr)
    elif kind is Point:
        yield {"x": value.x, "y": value.y}
        yield (value.x, value.y)


@PROPERTY_SETTINGS
@given(st.lists(values, min_size=2, max_size=6))
def test_encoding_is_injective(batch):
    encodings = [encode_value(v) for v in batch]
    models = [model(v) for v in batch]
    for i in range(len(batch)):
        for j in range(i + 1, len(batch)):
            same_model = models[i] == models[j]
            assert same_model == (encodings[i] == encodings[j]), (batch[i], batch[j])


@PROPERTY_SETTINGS
@given(values)
def test_confusable_values_encode_differently(value):
    encoded = encode_value(value)
    for other in confusions(value):
        if model(other) != model(value):
            assert encode_value(other) != encoded, (value, other)


@PROPERTY_SETTINGS
@given(st.dictionaries(hashables, scalars, max_size=8), st.randoms(use_true_random=False))
def test_insertion_order_does_not_matter(mapping, rng):
    items = list(mapping.items())
    rng.shuffle(items)
    assert encode_value(dict(items)) == encode_value(mapping)
    keys = list(mapping)
    rng.shuffle(keys)
    assert encode_value(set(keys)) == encode_value(set(mapping))


@PROPERTY_SETTINGS
@given(values)
def test_encoding_is_self_delimiting(value):
    """No encoding is a prefix of a different value's: concatenations stay unambiguous."""
    encoded = encode_value(value)
    assert encode_value([value, None]) != encode_value([value]) + encode_value(None)
    for cut in {1, len(encoded) // 2, len(encoded) - 1} - {0, len(encoded)}:
        assert not _is_complete(encoded[:cut]), (value, cut)


def _is_complete(prefix: bytes) -> bool:
    """Whether a truncated encoding still parses as one whole value (it must not)."""
    try:
        end = _skip(prefix, 0)
    except (IndexError, struct.error, ValueError):
        return False
    return end == len(prefix)


def _skip(data: bytes, pos: int) -> int:
    tag = data[pos : pos + 1]
    pos += 1
    if tag in (b"N", b"T", b"F"):
        return pos
    if tag == b"f":
        if pos + 8 > len(data):
            raise ValueError("short float")
        return pos + 8
    if tag in (b"i", b"s", b"b", b"H"):
        (size,) = struct.unpack(">Q", data[pos : pos + 8])
        if pos + 8 + size > len(data):
            raise ValueError("short payload")
        return pos + 8 + size
    if tag in (b"l", b"t", b"S", b"Z", b"d"):
        (count,) = struct.unpack(">Q", data[pos : pos + 8])
        pos += 8
        for _ in range(count * (2 if tag == b"d" else 1)):
            pos = _skip(data, pos)
        return pos
    if tag in (b"E", b"C", b"P", b"W", b"U"):
        pos = _skip(data, pos)  # the type name
        return _skip(data, pos)
    raise ValueError(f"unknown tag {tag!r}")


class _HashChild:
    """A child interpreter with a fixed PYTHONHASHSEED that hashes batches of values."""

    def __init__(self, seed: int) -> None:
        env = dict(os.environ, PYTHONHASHSEED=str(seed), PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.hash_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def digests(self, batch: list[Any]) -> list[str]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        payload = pickle.dumps(batch)
        self.proc.stdin.write(struct.pack(">Q", len(payload)) + payload)
        self.proc.stdin.flush()
        return orjson.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def hash_children() -> Iterator[list[_HashChild]]:
    children = [_HashChild(0), _HashChild(random.Random(7).randrange(1, 2**32))]
    yield children
    for child in children:
        child.close()


@PROPERTY_SETTINGS
@given(st.lists(values, min_size=1, max_size=10))
def test_digests_agree_across_processes_and_hash_seeds(hash_children, batch):
    here = [hash_bytes(encode_value(v)) for v in batch]
    for child in hash_children:
        assert child.digests(batch) == here


def test_huge_integers_hash_whatever_the_str_digit_limit():
    """Python refuses str() of ints over 4300 digits; hashing must not care (nor change)."""
    huge = 7**20000  # 16,902 digits
    encoded = encode_value(huge)
    assert encoded != encode_value(huge + 1)
    limit = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)  # unlimited: the plain str() path
        assert encode_value(huge) == encoded
        assert encode_value(-huge) == encode_value(-huge)
    finally:
        sys.set_int_max_str_digits(limit)


def test_unhashable_values_raise_hashing_error_naming_the_path():
    with pytest.raises(HashingError, match=r"value\[1\]\['k'\].*object"):
        encode_value([1, {"k": object()}])


def test_deeply_nested_values_raise_hashing_error(repo, session):
    """Deeper than the recursion limit allows: a HashingError, not a bare RecursionError."""
    from tests.helpers import import_fresh, write_module

    deep: Any = 1
    for _ in range(sys.getrecursionlimit()):
        deep = [deep]
    with pytest.raises(HashingError, match="nested too deeply"):
        encode_value({"k": deep})
    write_module(
        repo.root,
        "deeppipe",
        """
        from merkl import task
        @task
        def count(config):
            return 1
    """,
    )
    pipe = import_fresh(repo.root, "deeppipe")
    config: Any = 1
    for _ in range(600):  # a task call walks it fine; hashing needs two frames a level
        config = {"inner": config}
    with pytest.raises(HashingError, match=r"argument 'config'.*nested too deeply"):
        _ = pipe.count(config).hash
