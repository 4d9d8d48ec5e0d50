"""`gc --remote` on S3 repacks partly dead packs (`merkl.remotes.repack`): the plan, the result
on a moto server, and gc killed with SIGKILL at random points while it repacks."""

from __future__ import annotations

import os
import random
import time

import boto3
import orjson
import pytest

from merkl.errors import RemoteError
from merkl.ops.roots import gc_remote
from merkl.remotes.config import get_remote
from merkl.remotes.packs import Location, Segment, dump_index, load_index
from merkl.remotes.records import object_key, record_key
from merkl.remotes.repack import PackInfo, parse_max_unused, plan_compaction
from merkl.remotes.roots import live_roots, read_roots
from merkl.repo import Repo
from tests.remotes.test_remote_gc import add_output, gc_finished_within, make_repo, pushed


def _index(keys: dict[str, tuple[str, int, int]]) -> tuple[str, dict[str, Location]]:
    """An index with one segment per key: {key: (pack, offset, length)}."""
    packs = sorted({pack for pack, _, _ in keys.values()})
    data = orjson.dumps(
        {
            "format": 1,
            "packs": packs,
            "keys": {k: [[packs.index(p), o, n]] for k, (p, o, n) in keys.items()},
        }
    )
    name, _ = dump_index([], [])
    name = name.rsplit("-", 1)[0] + "-" + _hash(data) + ".json"
    return name, load_index(data, name, "test")


def _hash(data: bytes) -> str:
    from merkl.hashing import hash_bytes

    return hash_bytes(data)


P1, P2, P3, ORPHAN = ("1" * 64, "2" * 64, "3" * 64, "4" * 64)


def test_plan_repacks_only_packs_dead_beyond_the_threshold():
    first = _index({"objects/a": (P1, 0, 10), "objects/b": (P1, 10, 90), "objects/c": (P2, 0, 50)})
    second = _index({"objects/d": (P2, 50, 50), "objects/e": (P3, 0, 100)})
    packs = {p: PackInfo(100, 0.0) for p in (P1, P2, P3)} | {ORPHAN: PackInfo(7, 0.0)}
    plan = plan_compaction(
        dict([first, second]),
        packs,
        {"objects/b", "objects/d"},
        max_unused=0.2,
        orphan_before=1.0,
    )
    # P1 is 90 % dead (a is moved), P2 50 % (c is moved), P3 all live (kept as is).
    assert plan.repack == [P1, P2]
    assert sorted(plan.moved) == ["objects/a", "objects/c"]
    assert plan.sizes == {"objects/b": 90, "objects/d": 50}
    assert plan.rewrite[first[0]] is None  # nothing left in it
    name, data = plan.rewrite[second[0]]  # type: ignore[misc]
    assert load_index(data, name, "test") == {"objects/e": Location(name, (Segment(P3, 0, 100),))}
    assert plan.delete_packs == sorted([P1, P2, ORPHAN])
    assert plan.freed == 207
    assert plan.copied == 60

    lenient = plan_compaction(
        dict([first, second]),
        packs,
        {"objects/b", "objects/d"},
        max_unused=0.95,
        orphan_before=0.0,  # the orphan is too young
    )
    assert lenient.repack == []
    assert not lenient.moved
    assert lenient.delete_packs == []  # every pack keeps a live key


def test_a_key_pushed_twice_keeps_the_newest_copy_and_drops_the_other():
    older = _index({"objects/a": (P1, 0, 10)})
    newer = _index({"objects/a": (P2, 0, 10), "objects/b": (P2, 10, 10)})
    packs = {P1: PackInfo(10, 0.0), P2: PackInfo(20, 0.0)}
    plan = plan_compaction(dict([older, newer]), packs, set(), max_unused=0.2, orphan_before=0)
    assert plan.rewrite == {older[0]: None}
    assert plan.delete_packs == [P1]
    assert not plan.moved


def test_max_unused_option():
    assert parse_max_unused("20%", "x") == 0.2
    assert parse_max_unused(0.5, "x") == 0.5
    for bad in ("lots", 2, True, "-5%"):
        with pytest.raises(RemoteError, match="max_unused"):
            parse_max_unused(bad, "x")


# -- on a moto server ---------------------------------------------------------------------------


def _bucket_keys(bucket: str, top: str) -> dict[str, int]:
    client = boto3.client("s3")
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"team/{top}"
    ):
        for item in page.get("Contents", []):
            found[item["Key"][len("team/") :]] = item["Size"]
    return found


def _assert_readable(repo: Repo, bucket: str) -> None:
    """Every pack an index names exists, and every output a live root names has its record and
    its object, both readable and the object matching its hash."""
    packs = set(_bucket_keys(bucket, "packs/"))
    client = boto3.client("s3")
    for name in _bucket_keys(bucket, "index/"):
        data = client.get_object(Bucket=bucket, Key=f"team/{name}")["Body"].read()
        for pack in orjson.loads(data)["packs"]:
            assert f"packs/{pack}.pack" in packs, f"{name} names a missing pack"
    remote = get_remote(repo, "shared")
    try:
        live, _ = live_roots(read_roots(remote), time.time(), 0)
        wanted = {h for root in live for h in root.outputs}
        folder = repo.dot_dir / "check"
        records, invalid = remote.fetch_outputs(wanted, folder)
        assert not invalid
        assert set(records) == wanted
        oids = {record.entry.oid for record in records.values()}
        assert remote.confirm(oids, folder) == oids
    finally:
        remote.close()


def _outputs(repo: Repo, count: int, size: int) -> list[tuple[str, str]]:
    return [
        add_output(repo, orjson.dumps(os.urandom(size // 2).hex()[: size - 2]))
        for _ in range(count)
    ]


def _keep_only(repo: Repo, keep: list[tuple[str, str]]) -> None:
    drop = {h for h, _ in keep}
    repo.index.remove_outputs(
        [e.out_hash for e in repo.index.iter_outputs() if e.out_hash not in drop]
    )


def test_gc_repacks_a_pack_mostly_dead_and_everything_live_stays_readable(tmp_path, s3_bucket):
    repo = make_repo(tmp_path / "a", (f"s3://{s3_bucket}/team", {}), pack_size=65536)
    made = _outputs(repo, 60, 4000)  # 240 KB: four packs of up to 64 KiB
    pushed(repo)
    packs_before = _bucket_keys(s3_bucket, "packs/")
    keep = made[::4]  # a quarter stays live: every pack is about 75 % dead
    _keep_only(repo, keep)
    pushed(repo)

    preview = gc_remote(repo, "shared", grace=0, dry_run=True)
    assert preview.space.repacked >= 4
    assert _bucket_keys(s3_bucket, "packs/").keys() >= packs_before.keys()  # nothing deleted

    result = gc_remote(repo, "shared", grace=0)
    assert result.space.repacked == preview.space.repacked
    packs_after = _bucket_keys(s3_bucket, "packs/")
    assert not set(packs_after) & set(packs_before)  # the old object packs all went
    assert sum(packs_after.values()) < sum(packs_before.values()) / 2
    assert result.space.freed > 100_000
    assert len(result.deleted) == 2 * (60 - len(keep))
    _assert_readable(repo, s3_bucket)
    remote = get_remote(repo, "shared")
    assert {record_key(h) for h, _ in keep} <= set(remote.list("outputs/"))
    assert {object_key(o) for _, o in keep} == set(remote.list("objects/"))
    remote.close()

    again = gc_remote(repo, "shared", grace=0)  # nothing more to do
    assert not again.deleted
    assert again.space.repacked == 0
    assert again.space.packs_deleted == 0


def test_a_pack_under_the_threshold_keeps_its_dead_bytes(tmp_path, s3_bucket):
    repo = make_repo(
        tmp_path / "a", (f"s3://{s3_bucket}/team", {}), pack_size=65536, max_unused="90%"
    )
    made = _outputs(repo, 10, 4000)
    pushed(repo)
    before = _bucket_keys(s3_bucket, "packs/")
    _keep_only(repo, made[:5])
    pushed(repo)
    result = gc_remote(repo, "shared", grace=0)
    assert result.space.repacked == 0
    assert set(before) <= set(_bucket_keys(s3_bucket, "packs/"))  # half dead, not 90 %
    _assert_readable(repo, s3_bucket)


def test_a_reader_that_read_the_indexes_before_a_repack_reads_them_again(tmp_path, s3_bucket):
    repo = make_repo(tmp_path / "a", (f"s3://{s3_bucket}/team", {}), pack_size=65536)
    made = _outputs(repo, 20, 4000)
    pushed(repo)
    keep = {oid for _, oid in made[:3]}
    _keep_only(repo, made[:3])
    pushed(repo)
    reader = get_remote(repo, "shared")
    assert reader.has([object_key(oid) for oid in keep])  # it knows the old packs
    assert gc_remote(repo, "shared", grace=0).space.repacked
    assert reader.confirm(keep, tmp_path / "check") == keep  # old pack gone: re-read, retried
    reader.close()


def test_a_damaged_pack_stops_gc_before_it_deletes_an_object(tmp_path, s3_bucket):
    repo = make_repo(tmp_path / "a", (f"s3://{s3_bucket}/team", {}), pack_size=65536)
    made = _outputs(repo, 12, 4000)
    pushed(repo)
    _keep_only(repo, made[:2])
    pushed(repo)
    client = boto3.client("s3")
    remote = get_remote(repo, "shared")
    objects_before = set(remote.list("objects/"))
    remote.close()
    for key, size in _bucket_keys(s3_bucket, "packs/").items():
        if size > 40_000:  # the object pack (records are small): same length, other bytes
            client.put_object(Bucket=s3_bucket, Key=f"team/{key}", Body=b"\0" * size)
    with pytest.raises(RemoteError, match="does not match its hash in its pack; gc stopped"):
        gc_remote(repo, "shared", grace=0)
    remote = get_remote(repo, "shared")
    assert set(remote.list("objects/")) == objects_before
    remote.close()


def test_kill_9_of_gc_while_it_repacks_leaves_every_live_object_readable(tmp_path, s3_bucket):
    repo = make_repo(
        tmp_path / "a", (f"s3://{s3_bucket}/team", {}), pack_size=65536, lock_timeout=1.0
    )
    rng = random.Random(int(os.environ.get("MERKL_TEST_SEED", "17")))
    keep: list[tuple[str, str]] = []
    killed = 0
    # An unkilled gc of this size takes 0.7-1.5 s under load, start-up (~0.5 s) included, but
    # well under 0.5 s on a quiet machine: a gc that ended by itself narrows the next delays to
    # its own duration, so that at least 3 of the (at most 12) rounds are killed mid-way.
    low, high = 0.5, 1.3
    for round_ in range(12):
        made = _outputs(repo, 300, 3000)
        pushed(repo)
        keep = keep + made[:: 3 + round_]
        _keep_only(repo, keep)
        pushed(repo)
        took = gc_finished_within(repo, rng.uniform(low, high))
        if took is None:
            killed += 1
        else:
            low, high = min(low, took * 0.4), min(high, took * 0.95)
        _assert_readable(repo, s3_bucket)
        time.sleep(1.1)  # the killed gc's lock expires
        if killed >= 3 and round_ >= 5:
            break
    assert killed >= 3
    result = gc_remote(repo, "shared", grace=0)
    _assert_readable(repo, s3_bucket)
    remote = get_remote(repo, "shared")
    assert set(remote.list("outputs/")) == {record_key(h) for h, _ in keep}
    remote.close()
    # packs of killed gcs and pushes that no index names are gone too (older than lock_timeout)
    named = set()
    client = boto3.client("s3")
    for name in _bucket_keys(s3_bucket, "index/"):
        data = client.get_object(Bucket=s3_bucket, Key=f"team/{name}")["Body"].read()
        named.update(f"packs/{p}.pack" for p in orjson.loads(data)["packs"])
    assert set(_bucket_keys(s3_bucket, "packs/")) == named
    assert result.live_roots == 1
