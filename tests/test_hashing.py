"""Canonical encoding and golden digests. Changing a digest on purpose means bumping
HASH_SCHEMA in the same commit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import os
import pathlib
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pytest

from merkl.errors import HashingError
from merkl.hashing import (
    HASH_SCHEMA,
    encode_value,
    hash_bytes,
    hash_struct,
    register_encoder,
    unregister_encoder,
)


class Color(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int
    y: float


def _golden_table():
    return [
        ("none", None),
        ("true", True),
        ("int", 42),
        ("bigint", 2**100),
        ("float", 1.5),
        ("negzero", -0.0),
        ("str", "héllo"),
        ("bytes", b"\x00\x01"),
        ("list", [1, "a"]),
        ("tuple", (1, "a")),
        ("dict", {"b": 1, "a": [None]}),
        ("set", {3, 1, 2}),
        ("dataclass", Point(1, 2.5)),
        ("enum", Color.RED),
        ("path", pathlib.PurePosixPath("data/train.csv")),
        ("datetime", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("ndarray", np.arange(6, dtype="<i4").reshape(2, 3)),
    ]


def _digests():
    return {name: hash_bytes(encode_value(value)) for name, value in _golden_table()}


GOLDEN = {
    "none": "34ab8b65c2622b75106dba567a23b032357b6f78bb9893221cf5c4a61cfc4689",
    "true": "3d5ce082d3e6c13e406b078e5157bb6ac5a91d7eb1c56359bd02c59d8a4b7f65",
    "int": "378a0b5214c1f142a7f141d8b2bcd8a12ac2b42f875a0ecbc93fb1c4050c672b",
    "bigint": "d700e21956d826c3beff15ec17368ea9caa42df8b1bfa377fe0cbf2018da90c9",
    "float": "b4a81b31be75623d1adf5a540acdb72a42fd91103af0c172c56fb3a21ee71a12",
    "negzero": "eb912d2295ccb6930bf29a8fa00d3e934bac822384f8a4432729041da9f6a838",
    "str": "5ab57be032f6e231695309646eabe38608c16582be704ab246d804d7ef89a9cc",
    "bytes": "a7010a1faa84172b672ad4f2b50134352fa4480a382d8468c93f4ea186e0b8ee",
    "list": "22a5d00f1c45e80d47ef2f4a85da53e2c994fc778f934f53f72018d0b645ac0e",
    "tuple": "cc1a6aee76773f06a654cb88efe4c53771bf5caea0cd3d57fc40f02904e6a502",
    "dict": "07e1c8088b564404567ab3fbc3eb52c1a03e1e2cf19c617c8533f253cf0d0799",
    "set": "59ede662bd253f44ddc827df7384412c30bb76668e57ea40af285c1def981ace",
    "dataclass": "a041ca2b6e236eab589c51b433ef2bb66f9ee4a405351a4e17a8b16ef6b35b86",
    "enum": "4125be91ab4f61aecf22d43f716bb450641a52c368758d3d1ad7bd5acbbeabaf",
    "path": "c8e3637bcb139b35c624ad8d5ceff4ee61be2e5041b051726719467828ecd511",
    "datetime": "736857b4d13a19d3b3cb3c5ae4007c85e988472bdd0be2411396ce1cfc65cebb",
    "ndarray": "1cecd8f8ea94ec7b4a10cabb6e63cc17b27fc78b9ed0df60ba682115ffaaa2ef",
}


def test_hash_schema_is_pinned():
    assert HASH_SCHEMA == 2


def test_golden_digests():
    assert _digests() == GOLDEN


def test_digests_are_stable_across_processes_and_hash_seeds():
    root = pathlib.Path(__file__).resolve().parents[1]
    script = (
        f"import sys, json; sys.path.insert(0, {str(root)!r}); "
        "from tests.test_hashing import _digests; print(json.dumps(_digests()))"
    )
    for seed in ("0", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        ).stdout
        assert json.loads(out) == GOLDEN


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1, 2], (1, 2)),
        ({1: "x"}, {"1": "x"}),
        (1, 1.0),
        (1, True),
        (0, False),
        ("a", b"a"),
        (0.0, -0.0),
        (None, "None"),
        ([], ()),
        ({}, set()),
        (set(), frozenset()),
        ([[1], 2], [1, [2]]),
        (["ab"], ["a", "b"]),
        (Point(1, 2.0), {"x": 1, "y": 2.0}),
        (Color.RED, 1),
        (pathlib.PurePosixPath("a"), "a"),
        (np.array([1, 2], dtype="<i4"), np.array([1, 2], dtype="<i8")),
        (np.array([1, 2, 3, 4]), np.array([[1, 2], [3, 4]])),
    ],
)
def test_distinct_values_encode_differently(a, b):
    assert encode_value(a) != encode_value(b)


def test_dict_and_set_order_does_not_matter():
    assert encode_value({"a": 1, "b": 2}) == encode_value({"b": 2, "a": 1})
    assert encode_value({3, 1, 2}) == encode_value({2, 3, 1})
    assert encode_value({1: "a", "1": "b"}) == encode_value({"1": "b", 1: "a"})


def test_unhashable_value_names_argument_and_fix():
    with pytest.raises(HashingError) as info:
        encode_value({"k": [object()]}, "argument 'cfg'")
    message = str(info.value)
    assert "argument 'cfg'['k'][0]" in message
    assert "builtins.object" in message
    assert "merkl.register_encoder(object, fn)" in message


def test_register_encoder():
    with pytest.raises(HashingError):
        encode_value(Decimal("1.10"))
    register_encoder(Decimal, str)
    try:
        assert encode_value(Decimal("1.10")) != encode_value(Decimal("1.1"))
        assert encode_value(Decimal("1.10")) != encode_value("1.10")
    finally:
        unregister_encoder(Decimal)


def test_object_arrays_are_refused():
    with pytest.raises(HashingError, match="dtype object"):
        encode_value(np.array([object()]))


def test_hash_struct_is_domain_tagged():
    assert hash_struct("a", 1) != hash_struct("b", 1)
    assert hash_struct("a", 1) == hash_struct("a", 1)


# --- code identity -------------------------------------------------------------------------
# A module exercising most of the syntax a task can use. Its digests are pinned: they must be
# the same on every Python version merkl supports (the canonical AST walk, not `ast.dump`).
GOLDEN_MODULE = '''
"""Golden module for code identity."""
import functools

from merkl import CodeHashMode, task

SCALE = 3
UNUSED = 4


def deco(fn):
    """A decorator."""
    return fn


def helper(values):
    return [v * SCALE for v in values]


@deco
@task(code_hash_mode=CodeHashMode.FUNCTION)
def everything(x: int, y: float = 1.5, *args, z=u"k", w=-1.5, **kw) -> str:
    """Docstrings are not code."""

    @functools.lru_cache(maxsize=2)
    def inner(a, /, b=None, *, c=...):
        return a if b is None else b

    scale = lambda q: q * SCALE  # noqa: E731
    if (n := len(args)) > 2:
        x += n
    match x:
        case 0 | 1:
            out = f"{x!r:>{n}} and {y:.2f} {{}} {b'0'!a}"
        case [a, *rest]:
            out = str(rest)
        case {"k": v, **others}:
            out = v
        case complex(real=0) as p:
            out = p * 2j
        case _:
            out = ...
    async def later():
        async with deco(None) as ctx:
            return [i async for i in ctx]
    return inner(out, b=scale(x)) + str(helper([x]))


@task
def module_mode(x):
    return x + 1
'''

GOLDEN_CODE = {
    "module_ast": "2c25b2ddcd94ef13aed0cbe43d138fde2592d531d82494a2c87307a334ac5bd8",
    "everything": "2b510b0cd43e321aff387da8957e980e4600cdc72bc50dff222eb2eb4c29b582",
    "module_mode": "9f4c165fcbf761010b7411d066726df5c3b86157dfc5362e26df1733d481e79f",
}


def code_digests(folder: pathlib.Path) -> dict[str, str]:
    """Digests of `GOLDEN_MODULE`: its canonical AST and two task code hashes."""
    import ast
    import textwrap

    from merkl.canonical_ast import ast_digest
    from tests.helpers import import_fresh

    source = textwrap.dedent(GOLDEN_MODULE)
    (folder / "golden_code.py").write_text(source)
    module = import_fresh(folder, "golden_code")
    return {
        "module_ast": ast_digest(ast.parse(source)),
        "everything": module.everything.code_hash,
        "module_mode": module.module_mode.code_hash,
    }


def test_golden_code_digests(tmp_path):
    assert code_digests(tmp_path) == GOLDEN_CODE


def test_code_digests_do_not_use_ast_dump(tmp_path, monkeypatch):
    import ast

    monkeypatch.setattr(ast, "dump", lambda *args, **kwargs: "not the AST")
    assert code_digests(tmp_path) == GOLDEN_CODE


def test_code_digests_match_in_dev_mode_and_another_process(tmp_path):
    root = pathlib.Path(__file__).resolve().parents[1]
    script = (
        f"import sys, json, pathlib; sys.path.insert(0, {str(root)!r}); "
        "from tests.test_hashing import code_digests; "
        f"print(json.dumps(code_digests(pathlib.Path({str(tmp_path)!r}))))"
    )
    for flags in ([], ["-X", "dev"]):
        out = subprocess.run(
            [sys.executable, *flags, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        assert json.loads(out) == GOLDEN_CODE
