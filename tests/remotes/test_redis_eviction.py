"""A Redis that evicts keys (maxmemory with an LRU policy) can drop one chunk of a large object:
only that object fails, and a tiered remote then reads it from the next tier."""

from __future__ import annotations

from pathlib import Path

import redis

from merkl.remotes import open_remote
from merkl.remotes.base import Remote
from merkl.remotes.records import object_key
from merkl.remotes.tiered import TieredRemote
from tests.remotes.conftest import REDIS_URL
from tests.remotes.contract import fill, make_store

CHUNK = 64 * 1024


def _pull_after_eviction(remote: Remote, prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Push one big (chunked) and some small objects, evict a chunk of the big one on Redis,
    pull everything into a fresh store; returns (result, store, big oid, small oids)."""
    source = make_store(tmp_path / "source")
    big = fill(source, 1, size=5 * CHUNK)
    small = fill(source, 20)
    try:
        assert not remote.push(source, big + small).failed
        client = redis.Redis.from_url(REDIS_URL)
        assert client.delete(f"{prefix}{object_key(big[0])}#1") == 1
        client.close()
        target = make_store(tmp_path / "target")
        return remote.pull(target, big + small), target, big[0], small
    finally:
        remote.close()


def _fast(prefix: str) -> Remote:
    return open_remote(REDIS_URL, name="fast", options={"prefix": prefix, "chunk_size": CHUNK})


def test_an_evicted_chunk_fails_only_its_object(redis_prefix, tmp_path):
    result, target, big, small = _pull_after_eviction(_fast(redis_prefix), redis_prefix, tmp_path)
    assert list(result.failed) == [object_key(big)]
    assert "chunk" in result.failed[object_key(big)]
    assert all(target.has(oid) for oid in small)
    assert not target.has(big)


def test_a_tiered_remote_reads_an_evicted_object_from_the_next_tier(redis_prefix, tmp_path):
    slow = open_remote(str(tmp_path / "slow"), name="slow")
    tiers = [_fast(redis_prefix), slow]
    tiered = TieredRemote("tiered:fast,slow", name="both", options={"tiers": tiers})
    result, target, big, small = _pull_after_eviction(tiered, redis_prefix, tmp_path)
    assert result.failed == {}
    assert all(target.has(oid) for oid in [big, *small])
