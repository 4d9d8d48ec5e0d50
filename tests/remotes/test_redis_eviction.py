"""A Redis that evicts keys (maxmemory with an LRU policy) can drop one chunk of a large object:
only that object fails, and a tiered remote then reads it from the next tier."""

from __future__ import annotations

import redis

from merkl.remotes import open_remote
from merkl.remotes.records import object_key
from merkl.remotes.tiered import TieredRemote
from tests.remotes.conftest import REDIS_URL
from tests.remotes.contract import fill, make_store

CHUNK = 64 * 1024


def _evict_one_chunk(prefix: str, oid: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    assert client.delete(f"{prefix}{object_key(oid)}#1") == 1
    client.close()


def test_an_evicted_chunk_fails_only_its_object(redis_prefix, tmp_path):
    source = make_store(tmp_path / "source")
    big = fill(source, 1, size=5 * CHUNK)
    small = fill(source, 20)
    remote = open_remote(
        REDIS_URL, name="fast", options={"prefix": redis_prefix, "chunk_size": CHUNK}
    )
    try:
        assert not remote.push(source, big + small).failed
        _evict_one_chunk(redis_prefix, big[0])
        target = make_store(tmp_path / "target")
        result = remote.pull(target, big + small)
    finally:
        remote.close()
    assert list(result.failed) == [object_key(big[0])]
    assert "chunk" in result.failed[object_key(big[0])]
    assert all(target.has(oid) for oid in small)
    assert not target.has(big[0])


def test_a_tiered_remote_reads_an_evicted_object_from_the_next_tier(redis_prefix, tmp_path):
    source = make_store(tmp_path / "source")
    big = fill(source, 1, size=5 * CHUNK)
    small = fill(source, 5)
    fast = open_remote(
        REDIS_URL, name="fast", options={"prefix": redis_prefix, "chunk_size": CHUNK}
    )
    slow = open_remote(str(tmp_path / "slow"), name="slow")
    tiered = TieredRemote("tiered:fast,slow", name="both", options={"tiers": [fast, slow]})
    try:
        assert not tiered.push(source, big + small).failed
        _evict_one_chunk(redis_prefix, big[0])
        target = make_store(tmp_path / "target")
        result = tiered.pull(target, big + small)
    finally:
        tiered.close()
    assert result.failed == {}
    assert all(target.has(oid) for oid in big + small)
