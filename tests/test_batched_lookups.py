"""`merkl run --dry` and `merkl dag` look up a DAG's outputs in batches, not one query each
(issue 22), and say exactly what the per-node lookup said."""

from __future__ import annotations

import json

import pytest

from merkl.cache import CachePolicy
from merkl.cache.index import Index
from merkl.evaluation import EvalStats, evaluate
from merkl.repo import Repo
from merkl.session import use_session
from tests.helpers import import_fresh, run_cli, write_module

PIPELINE = """
    from merkl import task

    @task
    def add_one(x):
        return x + 1

    @task
    def total(values):
        return sum(values)

    def pipeline(n: int = 1200, cached_below: int = 0):
        return total([add_one(i) for i in range(n)])
"""


def _queries(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the index's lookups of outputs (spies: the queries still run)."""
    counts = {"single": 0, "batched": 0}
    single, batched = Index.find_output, Index.find_outputs

    def one(self: Index, out_hash: str):  # type: ignore[no-untyped-def]
        counts["single"] += 1
        return single(self, out_hash)

    def many(self: Index, out_hashes):  # type: ignore[no-untyped-def]
        wanted = list(out_hashes)
        counts["batched"] += (len(wanted) + 499) // 500
        return batched(self, wanted)

    monkeypatch.setattr(Index, "find_output", one)
    monkeypatch.setattr(Index, "find_outputs", many)
    return counts


def _half_cached(repo: Repo) -> None:
    write_module(repo.root, "small", PIPELINE)
    small = import_fresh(repo.root, "small")
    with use_session(repo=repo):
        evaluate([small.add_one(i) for i in range(0, 1200, 2)])


def test_dry_run_looks_up_outputs_in_batches(repo: Repo, monkeypatch) -> None:
    _half_cached(repo)
    counts = _queries(monkeypatch)
    result = run_cli("run", "--dry", "small.pipeline")
    assert result.code == 0, result.err
    states = [line.split()[-1] for line in result.out.splitlines()]
    assert states.count("cached") == 600
    assert states.count("missing") == 601  # the odd add_one calls and total
    assert counts == {"single": 0, "batched": 3}  # 1,201 outputs: 3 queries (1,201 before)


def test_dag_looks_up_outputs_in_batches(repo: Repo, monkeypatch) -> None:
    _half_cached(repo)
    counts = _queries(monkeypatch)
    result = run_cli("dag", "--format", "json", "small.pipeline")
    assert result.code == 0, result.err
    states = [n["state"] for n in json.loads(result.out)["nodes"] if n["kind"] == "output"]
    assert states.count("cached") == 600
    assert states.count("missing") == 601
    assert counts == {"single": 0, "batched": 3}


def test_find_many_agrees_with_find(repo: Repo) -> None:
    """Missing objects, other serializers, memory and never policies: the same answers."""
    write_module(repo.root, "small", PIPELINE)
    small = import_fresh(repo.root, "small")
    with use_session(repo=repo):
        evaluate([small.add_one(i) for i in range(4)])
    hashes = [small.add_one(i).hash for i in range(5)]  # the last one was never computed
    cache = repo.cache
    gone = cache.index.find_output(hashes[0])
    assert gone is not None
    repo.store.remove(gone.oid)  # indexed, object deleted
    cache._entries.clear()
    wanted = [
        (hashes[0], CachePolicy.EVERYWHERE, "json"),
        (hashes[1], CachePolicy.EVERYWHERE, "pickle"),  # written by another serializer
        (hashes[2], CachePolicy.EVERYWHERE, "json"),
        (hashes[3], CachePolicy.NEVER, None),
        (hashes[4], CachePolicy.EVERYWHERE, None),
    ]
    expected = {h for h, policy, ser in wanted if cache.find(h, policy, ser) is not None}
    cache._entries.clear()
    assert set(cache.find_many(wanted)) == expected == {hashes[2]}


def test_a_run_plans_with_one_lookup_per_level(repo: Repo, monkeypatch) -> None:
    """Planning a run of `total` over 1,200 calls, half cached: the root, then its 1,200
    arguments (3 batches of 500): 4 queries, not 1,201; the cached half is loaded, not run."""
    _half_cached(repo)
    small = import_fresh(repo.root, "small")
    counts = _queries(monkeypatch)
    stats = EvalStats()
    with use_session(repo=repo):
        (value,) = evaluate([small.pipeline()], stats=stats)
    assert value == sum(range(1, 1201))
    assert (stats.ran, stats.loaded) == (601, 600)
    # Single lookups: `evaluate` first tries the target alone (the all-cached fast path), and
    # each of the 601 computed calls looks once more under its lease (another process may
    # have stored it since the plan: `merkl.cache.lease`). Planning itself is 4 batches.
    assert counts == {"single": 1 + 601, "batched": 4}


def test_a_get_that_misses_is_not_looked_up_again_by_its_plan(repo: Repo, monkeypatch) -> None:
    """A first `.get()` asks the index for its output once before it runs (the miss) and once
    under its lease (stored meanwhile by another process?), not a third time in its plan; the
    plan still looks up the outputs the call reads."""
    write_module(repo.root, "small", PIPELINE)
    small = import_fresh(repo.root, "small")
    with use_session(repo=repo):
        small.add_one(1).get()
        counts = _queries(monkeypatch)
        assert small.add_one(2).get() == 3
        assert counts == {"single": 2, "batched": 0}
        counts.update(single=0, batched=0)
        assert small.total([small.add_one(1), small.add_one(3)]).get() == 6
        # total: the miss and the lease's look; add_one(1), add_one(3): one batch; add_one(3)
        # under its lease
        assert counts == {"single": 3, "batched": 1}
