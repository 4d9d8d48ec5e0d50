"""DAGs of a million calls: small nodes, hashing without recursion or DAG-sized sets (issue 18)."""

from __future__ import annotations

import tracemalloc

import pytest

from merkl import task
from merkl.errors import HashingError
from merkl.graph import iter_nodes
from merkl.hashing import HASH_SCHEMA, hash_struct


@task
def leaf(group, i):
    return group * i


@task
def combine(parts):
    return sum(parts)


@task
def pair(a, b):
    return (a, b)


def test_a_leaf_call_costs_under_400_bytes() -> None:
    groups = [0, 1]  # ints the calls share, as a real pipeline's arguments would be
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        leaves = [leaf(groups[n % 2], groups[n % 2]) for n in range(20_000)]
        for node in leaves:
            node.hash  # noqa: B018 - hashed, as a dry run hashes every node
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Before issue 18: ~700 bytes (a BoundArguments and its dict, an outputs list, two hex
    # hashes); now ~330: a call, its arguments tuple, its placeholder, two 32-byte digests.
    assert used / len(leaves) < 400, f"{used / len(leaves):.0f} bytes per leaf call"


def test_a_shared_upstream_hashes_the_same_whichever_path_reaches_it_first() -> None:
    shared = leaf(2, 3)
    # `top` reaches `shared` directly and through `middle`; the walk meets it twice.
    middle = pair(shared, 1)
    top = pair(shared, middle)
    assert top.hash is not None
    expected_shared = hash_struct(
        "merkl.output", HASH_SCHEMA, leaf.code_hash, shared.call.args_hash, 0
    )
    assert shared.hash == expected_shared
    fresh_shared = leaf(2, 3)
    fresh_middle = pair(fresh_shared, 1)
    assert fresh_middle.hash == middle.hash  # hashed bottom-up instead: the same hashes
    assert pair(fresh_shared, fresh_middle).hash == top.hash


def test_a_chain_of_100_000_calls_hashes_without_recursion() -> None:
    node = leaf(0, 0)
    for i in range(100_000):
        node = pair(node, i)
    assert node.hash is not None
    assert sum(1 for _ in iter_nodes([node])) == 100_001


def test_a_hashing_error_upstream_leaves_nothing_half_hashed() -> None:
    class Opaque:
        pass

    bad = leaf(Opaque(), 1)
    top = combine([pair(leaf(1, 1), bad), leaf(2, 2)])
    with pytest.raises(HashingError):
        top.hash  # noqa: B018
    for node in iter_nodes([top]):
        assert node.call._args_digest in (False, None) or isinstance(  # type: ignore[attr-defined]
            node.call._args_digest,  # type: ignore[attr-defined]
            bytes,
        )
    with pytest.raises(HashingError):  # the same error again, not a crash on a marker
        top.hash  # noqa: B018


def test_calls_with_keyword_only_and_variadic_parameters_keep_their_arguments() -> None:
    @task
    def flexible(a, *rest, scale=2, **options):
        return a

    out = flexible(1, 2, 3, scale=4, name="x")
    assert out.call.arguments == {
        "a": 1,
        "rest": (2, 3),
        "scale": 4,
        "options": {"name": "x"},
    }
    assert flexible(1, 2, 3, name="x", scale=4).hash == out.hash
    assert flexible(1).call.arguments == {"a": 1, "rest": (), "scale": 2, "options": {}}
