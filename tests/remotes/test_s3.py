"""The S3 remote against moto's server on loopback, through the real boto3 client.

Request counts are real: a botocore `before-send` hook on the remote's own client counts the
HTTP requests it sends to moto.
"""

from __future__ import annotations

import os
from collections import Counter

import orjson
import pytest

from merkl.cache.index import OutputEntry
from merkl.errors import MerklWarning, RemoteError, TransferError
from merkl.remotes import open_remote
from merkl.remotes.base import Remote
from merkl.remotes.read_through import ReadThrough
from merkl.remotes.records import Record, object_key
from merkl.remotes.tiered import TieredRemote
from tests.helpers import run_cli
from tests.remotes.contract import RemoteContract, fill, make_store


class TestS3Remote(RemoteContract):
    """Packed (the default), with packs small enough that the big object spans six."""

    big_size = 6 * 1024 * 1024

    @pytest.fixture
    def remote_spec(self, s3_bucket: str):
        return f"s3://{s3_bucket}/project/cache", {"pack_size": 1024 * 1024}

    @pytest.fixture
    def unusable_spec(self, s3_env: str):
        return "s3://merkl-no-such-bucket/x", {}


class TestS3RemoteLoose(RemoteContract):
    """`pack = false`: one key per blob, multipart above the threshold."""

    big_size = 6 * 1024 * 1024  # above the multipart threshold set below

    @pytest.fixture
    def remote_spec(self, s3_bucket: str):
        return f"s3://{s3_bucket}/loose", {"pack": False, "multipart_threshold": 5 * 1024 * 1024}

    @pytest.fixture
    def unusable_spec(self, s3_env: str):
        return "s3://merkl-no-such-bucket/x", {"pack": False}


class TestS3RemoteAtBucketRoot(RemoteContract):
    """No prefix, endpoint given as an option rather than through AWS_ENDPOINT_URL, and boto3's
    own checksums turned back on."""

    @pytest.fixture
    def remote_spec(self, s3_bucket: str, s3_env: str, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        return f"s3://{s3_bucket}", {"endpoint_url": s3_env, "checksums": True}

    @pytest.fixture
    def unusable_spec(self, s3_env: str, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.delenv("AWS_ENDPOINT_URL")
        return "s3://merkl-test-bucket", {"endpoint_url": "http://127.0.0.1:1"}


# -- packs, S3-specific --------------------------------------------------------------------


def open_s3(bucket: str, prefix: str = "p", **options) -> Remote:
    remote = open_remote(f"s3://{bucket}/{prefix}", name="origin", options=options)
    remote.prepare(write=True)
    return remote


def count_requests(remote: Remote) -> Counter[str]:
    """Every HTTP request the remote's client sends from now on, by method."""
    sent: Counter[str] = Counter()

    def hook(request, **kwargs) -> None:
        sent[request.method] += 1

    remote.client.meta.events.register("before-send.s3", hook)
    return sent


def bucket_keys(bucket: str, prefix: str = "") -> list[str]:
    import boto3

    client = boto3.client("s3")
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    client.close()
    return keys


@pytest.fixture
def remote(s3_bucket: str):
    remote = open_s3(s3_bucket)
    yield remote
    remote.close()


def test_push_writes_a_pack_and_an_index_in_few_requests(s3_bucket, remote, tmp_path):
    store = make_store(tmp_path / "a")
    oids = fill(store, 200)
    sent = count_requests(remote)
    pushed = remote.push(store, oids, jobs=4)
    assert len(pushed.transferred) == 200
    # listing of indexes, probe for loose keys, one pack, one index
    assert sum(sent.values()) <= 4, sent
    keys = bucket_keys(s3_bucket, "p/")
    assert [k.rsplit(".", 1)[1] for k in sorted(keys)] == ["json", "pack"]
    assert not [k for k in keys if k.startswith("p/objects/")]

    fresh = open_s3(s3_bucket)  # a colleague's process: knows no index yet
    sent = count_requests(fresh)
    other = make_store(tmp_path / "b")
    pulled = fresh.pull(other, oids, jobs=4)
    assert not pulled.failed
    assert len(pulled.transferred) == 200
    assert sum(sent.values()) <= 3, sent  # list + fetch the index, one ranged GET of the pack
    assert all(other.get_bytes(o) == store.get_bytes(o) for o in oids)
    sent.clear()
    assert fresh.status(oids) == (set(oids), set())
    assert sum(sent.values()) == 0  # indexes are immutable: known ones are not fetched again
    fresh.close()


def test_indexes_are_read_from_the_local_cache_in_later_processes(s3_bucket, tmp_path):
    """After the first contact, a new process lists the indexes but fetches none of them: a
    remote that has seen many pushes opens in one request. A tampered copy is not used."""
    cache = tmp_path / "remote-cache"
    store = make_store(tmp_path / "a")
    for _ in range(3):  # three pushes: three indexes
        first = open_s3(s3_bucket)
        first.local_cache = cache
        first.push(store, fill(store, 5))
        first.close()
    oids = list(store.iter_oids())
    assert len(list(cache.iterdir())) == 3

    later = open_s3(s3_bucket)
    later.local_cache = cache
    sent = count_requests(later)
    assert later.status(oids) == (set(oids), set())
    assert sent == {"GET": 1}, sent  # the listing of index/ only
    later.close()

    victim = sorted(cache.iterdir())[0]
    victim.write_bytes(victim.read_bytes().replace(b'"keys"', b'"kyes"'))
    again = open_s3(s3_bucket)
    again.local_cache = cache
    sent = count_requests(again)
    assert again.status(oids) == (set(oids), set())
    assert sent == {"GET": 2}, sent  # the listing, and the one index whose copy was bad
    assert b'"keys"' in victim.read_bytes()  # replaced by the good copy
    again.close()


def test_big_object_spans_packs_and_comes_back_whole(s3_bucket, tmp_path):
    remote = open_s3(s3_bucket, pack_size=64 * 1024)
    store = make_store(tmp_path / "a")
    big = store.put_bytes(os.urandom(200_000))
    small = fill(store, 3, size=30_000)
    remote.push(store, [big, *small])
    packs = list(bucket_keys(s3_bucket, "p/packs/"))
    assert len(packs) == 4 + 2  # the big one in 64 KiB pieces, the small ones in two packs
    other = make_store(tmp_path / "b")
    pulled = open_s3(s3_bucket).pull(other, [big, *small])
    assert not pulled.failed
    assert other.get_bytes(big) == store.get_bytes(big)
    remote.close()


def test_killed_push_leaves_an_invisible_pack_and_the_next_push_completes(
    s3_bucket, remote, tmp_path, monkeypatch
):
    store = make_store(tmp_path / "a")
    oids = fill(store, 5)
    real_put_object = remote.client.put_object

    def die_before_the_index(**kwargs):
        if "/index/" in kwargs["Key"]:
            raise KeyboardInterrupt  # the process is stopped between the pack and its index
        return real_put_object(**kwargs)

    monkeypatch.setattr(remote.client, "put_object", die_before_the_index)
    with pytest.raises(KeyboardInterrupt):
        remote.push(store, oids, jobs=1)
    monkeypatch.setattr(remote.client, "put_object", real_put_object)
    assert len(bucket_keys(s3_bucket, "p/packs/")) == 1  # the orphan
    fresh = open_s3(s3_bucket)
    assert fresh.has([object_key(o) for o in oids]) == set()
    assert list(fresh.list("objects/")) == []
    again = fresh.push(store, oids)
    assert len(again.transferred) == 5
    assert not again.failed
    other = make_store(tmp_path / "b")
    assert not open_s3(s3_bucket).pull(other, oids).failed


def test_tampered_byte_in_a_pack_refuses_that_object_only(s3_bucket, remote, tmp_path):
    import boto3

    store = make_store(tmp_path / "a")
    oids = fill(store, 3, size=1000)
    remote.push(store, oids)
    (pack,) = bucket_keys(s3_bucket, "p/packs/")
    (index,) = bucket_keys(s3_bucket, "p/index/")
    client = boto3.client("s3")
    listed = orjson.loads(client.get_object(Bucket=s3_bucket, Key=index)["Body"].read())
    victim_key, [[_, offset, _]] = sorted(listed["keys"].items(), key=lambda kv: kv[1])[1]
    victim = victim_key.replace("objects/", "").replace("/", "")
    data = bytearray(client.get_object(Bucket=s3_bucket, Key=pack)["Body"].read())
    data[offset + 10] ^= 0xFF  # one byte inside the second object of the pack
    client.put_object(Bucket=s3_bucket, Key=pack, Body=bytes(data))
    client.close()

    other = make_store(tmp_path / "b")
    fresh = open_s3(s3_bucket)
    result = fresh.pull(other, oids)
    assert list(result.failed) == [object_key(victim)]
    assert sorted(result.transferred) == sorted(object_key(o) for o in oids if o != victim)
    with pytest.raises(TransferError, match=f"object {victim[:12]}.*'origin'.*do not match"):
        result.raise_for_failures("pull from", fresh.label)
    assert not other.has(victim)


def test_mixed_loose_and_packed_remote(s3_bucket, tmp_path):
    store = make_store(tmp_path / "a")
    oids = fill(store, 6)
    loose = open_s3(s3_bucket, pack=False)
    loose.push(store, oids[:3])  # what an older merkl (or `pack = false`) wrote
    packed = open_s3(s3_bucket)
    pushed = packed.push(store, oids)
    assert pushed.skipped == 3
    assert len(pushed.transferred) == 3
    packed.put([(object_key(oids[0]), store.get_bytes(oids[0]))])  # one key in both layouts
    assert len(bucket_keys(s3_bucket, "p/objects/")) == 3
    reader = open_s3(s3_bucket)
    assert sorted(reader.list("objects/")) == sorted(object_key(o) for o in oids)
    other = make_store(tmp_path / "b")
    pulled = reader.pull(other, oids)
    assert not pulled.failed
    assert len(pulled.transferred) == 6


def test_a_long_lived_instance_sees_packs_pushed_later(s3_bucket, remote, tmp_path):
    store = make_store(tmp_path / "a")
    first, later = fill(store, 2)
    remote.push(store, [first])
    server = open_s3(s3_bucket)  # e.g. `merkl serve` reading through
    assert server.has([object_key(first)]) == {object_key(first)}
    remote.push(store, [later])
    assert server.has([object_key(later)]) == {object_key(later)}  # re-listed on the miss
    dest = tmp_path / "later"
    server.get([(object_key(later), dest)])
    assert dest.read_bytes() == store.get_bytes(later)


def test_output_records_are_packed_and_listed(s3_bucket, remote, tmp_path):
    store = make_store(tmp_path / "a")
    (oid,) = fill(store, 1)
    entries = [OutputEntry(f"{i:02x}" * 32, oid, "json", 1004, True) for i in range(3)]
    remote.push(store, [oid])
    remote.push_outputs(entries)
    assert not bucket_keys(s3_bucket, "p/outputs/")
    fresh = open_s3(s3_bucket)
    assert sorted(fresh.iter_output_hashes()) == sorted(e.out_hash for e in entries)
    found, invalid = fresh.fetch_outputs([e.out_hash for e in entries], tmp_path / "tmp")
    assert not invalid
    assert found == {e.out_hash: Record(e) for e in entries}


def test_read_through_fetches_one_packed_output(s3_bucket, repo, tmp_path, monkeypatch):
    store = make_store(tmp_path / "elsewhere")
    (oid,) = fill(store, 1)
    others = fill(store, 50)
    entry = OutputEntry("cd" * 32, oid, "json", 1004, True)
    pusher = open_s3(s3_bucket)
    pusher.push(store, [oid, *others])
    pusher.push_outputs([entry])
    url = f"s3://{s3_bucket}/p"
    assert run_cli("remote", "add", "origin", url, "read_through=true", "--default").code == 0
    read_through = ReadThrough(repo, "origin")
    fetched = read_through(entry.out_hash)
    assert fetched is not None
    assert fetched.oid == oid
    assert repo.store.get_bytes(oid) == store.get_bytes(oid)
    assert not any(repo.store.has(o) for o in others)  # one object, not its pack-mates


def test_tiered_pull_from_packed_s3_backfills_the_fast_tier(s3_bucket, tmp_path):
    store = make_store(tmp_path / "a")
    oids = fill(store, 4)
    open_s3(s3_bucket).push(store, oids)
    (tmp_path / "fast").mkdir()
    fast = open_remote(str(tmp_path / "fast"), name="fast")
    both = TieredRemote(
        "tiered:fast,slow", name="both", options={"tiers": [fast, open_s3(s3_bucket)]}
    )
    other = make_store(tmp_path / "b")
    pulled = both.pull(other, oids)
    assert not pulled.failed
    assert len(pulled.transferred) == 4
    assert fast.status(oids) == (set(oids), set())


def test_invalid_index_warns_and_its_keys_are_sent_again(s3_bucket, remote, tmp_path):
    import boto3

    store = make_store(tmp_path / "a")
    oids = fill(store, 2)
    remote.push(store, oids)
    (index,) = bucket_keys(s3_bucket, "p/index/")
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key=index, Body=orjson.dumps({"format": 99}))
    client.close()
    fresh = open_s3(s3_bucket)
    with pytest.warns(MerklWarning, match=rf"pack index {index[2:]} on remote 'origin'.*format"):
        assert fresh.has([object_key(o) for o in oids]) == set()
    again = fresh.push(store, oids)
    assert len(again.transferred) == 2
    with pytest.warns(MerklWarning, match="invalid"):  # every new reader says so
        assert open_s3(s3_bucket).status(oids) == (set(oids), set())


def test_missing_pack_is_a_miss_naming_it(s3_bucket, remote, tmp_path):
    import boto3

    store = make_store(tmp_path / "a")
    (oid,) = fill(store, 1)
    remote.push(store, [oid])
    (pack,) = bucket_keys(s3_bucket, "p/packs/")
    client = boto3.client("s3")
    client.delete_object(Bucket=s3_bucket, Key=pack)
    client.close()
    result = open_s3(s3_bucket).pull(make_store(tmp_path / "b"), [oid])
    assert "is missing" in result.failed[object_key(oid)]
    assert pack[2:] in result.failed[object_key(oid)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pack": "yes"}, "option pack must be true or false, got 'yes'"),
        ({"pack_size": 1000}, "option pack_size must be a number of bytes from 65536"),
        ({"pack_size": "32MiB"}, "got '32MiB'"),
    ],
)
def test_bad_pack_options_are_one_clear_error(s3_env, options, message):
    with pytest.raises(RemoteError, match=message):
        open_remote("s3://bucket/p", name="origin", options=options)


def test_cli_push_packs_by_default_and_pack_false_writes_loose_keys(s3_bucket, repo):
    (repo.root / "data.bin").write_bytes(b"payload")
    assert run_cli("track", "data.bin").code == 0
    for name, extra in (("packed", []), ("loose", ["pack=false"])):
        url = f"s3://{s3_bucket}/{name}"
        assert run_cli("remote", "add", name, url, *extra).code == 0
        pushed = run_cli("push", "-r", name)
        assert pushed.code == 0, pushed.err
    assert len(bucket_keys(s3_bucket, "packed/packs/")) == 1
    assert not bucket_keys(s3_bucket, "packed/objects/")
    assert not bucket_keys(s3_bucket, "loose/packs/")
    assert len(bucket_keys(s3_bucket, "loose/objects/")) == 1


def test_query_secrets_never_become_part_of_keys(repo, s3_bucket, monkeypatch):
    """`?secret=${PW}` (percent-encoded or not) is no part of the prefix or any key."""
    monkeypatch.setenv("MERKL_TEST_PW", "Pa%21ss-w0rd-5e1d%2Fq")
    (repo.root / "data.bin").write_bytes(b"payload")
    url = f"s3://{s3_bucket}/cache?secret=${{MERKL_TEST_PW}}"
    assert run_cli("remote", "add", "origin", url, "--default").code == 0
    assert run_cli("track", "data.bin").code == 0
    pushed = run_cli("push")
    assert pushed.code == 0, pushed.err
    import boto3

    client = boto3.client("s3")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    client.close()
    assert keys
    assert all(key.startswith("cache/") for key in keys), keys
    assert not any("secret" in key or "w0rd" in key for key in keys)
