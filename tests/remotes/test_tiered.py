"""A tiered remote: Redis in front of S3 (moto), both real."""

from __future__ import annotations

import pytest

from merkl.remotes import open_remote
from merkl.remotes.base import Remote
from merkl.remotes.records import object_key
from merkl.remotes.tiered import TieredRemote
from tests.remotes.conftest import REDIS_URL
from tests.remotes.contract import RemoteContract, fill, losing_connection_after, make_store


@pytest.fixture
def tier_specs(redis_prefix: str, s3_bucket: str):
    return [
        ("fast", REDIS_URL, {"prefix": redis_prefix, "chunk_size": 64 * 1024}),
        ("slow", f"s3://{s3_bucket}/tiered", {}),
    ]


@pytest.fixture
def tiers(tier_specs) -> list[Remote]:
    opened = [open_remote(url, name=name, options=opts) for name, url, opts in tier_specs]
    yield opened
    for tier in opened:
        tier.close()


class TestTieredRemote(RemoteContract):
    copies = 2

    @pytest.fixture
    def remote_spec(self):
        return "tiered:fast,slow", {}

    @pytest.fixture
    def extra_remotes(self, tier_specs):
        return tier_specs

    @pytest.fixture
    def remote(self, tiers: list[Remote]) -> Remote:
        remote = TieredRemote("tiered:fast,slow", name="test", options={"tiers": tiers})
        remote.prepare(write=True)
        return remote

    @pytest.fixture
    def unusable_spec(self, s3_env: str):
        return "s3://merkl-no-such-bucket/x", {}

    def test_interrupted_push_resumes(self, remote, store, monkeypatch):
        """The connection to the slow tier drops midway; the next push sends only the rest."""
        fast, slow = remote.tiers
        oids = fill(store, 12)
        keys = {object_key(o) for o in oids}
        real_put = slow.put
        sent: list[str] = []
        put_then_lose_connection = losing_connection_after(5, real_put, sent)

        monkeypatch.setattr(slow, "put", put_then_lose_connection)
        first = remote.push(store, oids, jobs=1)
        # S3 sends its 12 keys in one batch, so all may be reported failed: the 5 stored before
        # the drop are simply skipped next time.
        assert set(first.failed) >= keys - set(sent)
        monkeypatch.setattr(slow, "put", real_put)
        assert fast.has(sorted(keys)) == keys
        assert slow.has(sorted(keys)) == set(sent)
        second = remote.push(store, oids, jobs=2)
        assert not second.failed
        assert set(second.transferred) == keys - set(sent)
        assert slow.has(sorted(keys)) == keys


def test_push_writes_every_tier(tiers, tmp_path):
    store = make_store(tmp_path)
    oids = fill(store, 4)
    remote = TieredRemote("tiered:fast,slow", name="both", options={"tiers": tiers})
    remote.push(store, oids)
    for tier in tiers:
        assert tier.status(oids) == (set(oids), set())


def test_pull_reads_in_order_and_back_fills_faster_tiers(tiers, tmp_path):
    fast, slow = tiers
    store = make_store(tmp_path / "a")
    oids = fill(store, 5)
    slow.push(store, oids)
    fast.push(store, oids[:2])
    remote = TieredRemote("tiered:fast,slow", name="both", options={"tiers": tiers})
    fresh = make_store(tmp_path / "b")
    result = remote.pull(fresh, oids)
    assert not result.failed
    assert len(result.transferred) == 5
    assert fast.status(oids) == (set(oids), set())  # back-filled


def test_a_good_copy_on_a_slower_tier_wins_over_a_corrupt_fast_one(tiers, tmp_path):
    fast, slow = tiers
    store = make_store(tmp_path / "a")
    (oid,) = fill(store, 1)
    slow.push(store, [oid])
    fast.put([(object_key(oid), b"corrupt")])
    remote = TieredRemote("tiered:fast,slow", name="both", options={"tiers": tiers})
    fresh = make_store(tmp_path / "b")
    result = remote.pull(fresh, [oid])
    assert not result.failed
    assert fresh.get_bytes(oid) == store.get_bytes(oid)


def test_tiered_remote_needs_named_tiers():
    from merkl.errors import UsageError

    with pytest.raises(UsageError, match="tiered:fast,slow"):
        TieredRemote("tiered:a,b", name="t")
