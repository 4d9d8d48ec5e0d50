"""`merkl gc --remote`: roots published by pushes, grace, locks, two repositories sharing a
remote, gc racing real push processes, and gc killed with SIGKILL (docs/remotes.md)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from merkl.cache.index import OutputEntry
from merkl.errors import RemoteError
from merkl.ops.push import push
from merkl.ops.roots import gc_remote
from merkl.pointer import read_pointer
from merkl.remotes.config import get_remote
from merkl.remotes.locks import PUSH, RemoteLock
from merkl.remotes.records import OBJECTS, OUTPUTS, object_key, record_key
from merkl.remotes.roots import ROOTS
from merkl.repo import Repo
from merkl.tracking.track import track
from tests.remotes.conftest import REDIS_URL

Spec = tuple[str, dict[str, object]]


@pytest.fixture(params=["dir", "redis", "postgres", "sqlite", "s3", "s3-loose"])
def remote_spec(request, tmp_path: Path) -> Spec:
    kind = request.param
    if kind.startswith("s3"):
        bucket = request.getfixturevalue("s3_bucket")
        return f"s3://{bucket}/team", {"pack": kind == "s3"}
    if kind == "dir":
        return str(tmp_path / "remote"), {}
    if kind == "redis":
        return REDIS_URL, {"prefix": request.getfixturevalue("redis_prefix")}
    if kind == "postgres":
        url, schema = request.getfixturevalue("postgres_schema")
        return url, {"schema": schema}
    return f"sqlite:///{tmp_path / 'remote.db'}", {}


def make_repo(folder: Path, spec: Spec, **extra: object) -> Repo:
    folder.mkdir(parents=True)
    repo = Repo.init(folder)
    url, options = spec
    lines = ["[remotes.shared]", f"url = {orjson.dumps(url).decode()}"]
    lines += [f"{k} = {orjson.dumps(v).decode()}" for k, v in {**options, **extra}.items()]
    (folder / "merkl.toml").write_text("\n".join(lines) + "\n")
    return repo


def track_file(repo: Repo, name: str, data: bytes) -> str:
    path = repo.root / name
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data)
    (item,) = track(repo, [path])
    return item.pointer.oid


def add_output(repo: Repo, value: bytes) -> tuple[str, str]:
    """A cached output (as `merkl run` leaves one): (Merkle hash, oid)."""
    oid = repo.store.put_bytes(value)
    out_hash = os.urandom(32).hex()
    repo.index.add_outputs([OutputEntry(out_hash, oid, "json", len(value), True)])
    return out_hash, oid


def remote_keys(repo: Repo, top: str) -> set[str]:
    remote = get_remote(repo, "shared")
    try:
        return set(remote.list(top + "/"))
    finally:
        remote.close()


def pushed(repo: Repo) -> None:
    report = push(repo, "shared")
    report.raise_for_failures()
    assert report.root


def test_gc_keeps_every_repositorys_data_and_reclaims_superseded_versions(tmp_path, remote_spec):
    a = make_repo(tmp_path / "a", remote_spec)
    b = make_repo(tmp_path / "b", remote_spec)
    a_old = track_file(a, "data.bin", b"a, first version")
    a_out, a_value = add_output(a, b'"a output"')
    pushed(a)
    b_data = track_file(b, "data.bin", b"b's data")
    b_out, b_value = add_output(b, b'"b output"')
    pushed(b)
    a.index.remove_outputs([a_out])
    a_new = track_file(a, "data.bin", b"a, second version")
    pushed(a)

    kept = gc_remote(a, "shared", grace=3600)  # A's old root is inside the grace window
    assert not kept.deleted
    assert not kept.dead_roots
    objects = remote_keys(a, OBJECTS)
    assert {object_key(o) for o in (a_old, a_value, a_new, b_data, b_value)} <= objects

    result = gc_remote(a, "shared", grace=0)
    objects = remote_keys(a, OBJECTS)
    assert object_key(a_old) not in objects
    assert object_key(a_value) not in objects
    assert {object_key(o) for o in (a_new, b_data, b_value)} <= objects
    assert remote_keys(a, OUTPUTS) == {record_key(b_out)}
    assert sorted(result.deleted) == sorted(
        [object_key(a_old), object_key(a_value), record_key(a_out)]
    )
    assert len(result.dead_roots) == 1
    assert result.live_roots == 2
    assert len(remote_keys(a, ROOTS)) == 2
    assert not remote_keys(a, "locks")  # gc and pushes released their locks


def test_dry_run_deletes_nothing(tmp_path):
    repo = make_repo(tmp_path / "a", (str(tmp_path / "remote"), {}))
    old = track_file(repo, "x.bin", b"one")
    pushed(repo)
    track_file(repo, "x.bin", b"two")
    pushed(repo)
    before = remote_keys(repo, "")
    result = gc_remote(repo, "shared", grace=0, dry_run=True)
    assert result.deleted == [object_key(old)]
    assert len(result.dead_roots) == 1
    assert remote_keys(repo, "") == before


def test_dry_run_prints_each_key_and_the_space_it_returns(tmp_path, remote_spec, monkeypatch):
    from tests.helpers import run_cli

    repo = make_repo(tmp_path / "a", remote_spec)
    old = track_file(repo, "x.bin", b"1" * 3000)
    old_out, old_value = add_output(repo, b'"' + b"2" * 2046 + b'"')
    pushed(repo)
    repo.index.remove_outputs([old_out])
    track_file(repo, "x.bin", b"new")
    pushed(repo)
    monkeypatch.chdir(repo.root)
    before = remote_keys(repo, "")
    result = run_cli("gc", "--remote", "shared", "--grace", "0", "--dry-run")
    assert result.code == 0, result.err
    assert f"would delete {object_key(old)}  2.9 KiB" in result.out
    assert f"would delete {object_key(old_value)}  2.0 KiB" in result.out
    assert f"would delete {record_key(old_out)}  " in result.out
    assert "(superseded root)" in result.out
    summary = result.out.strip().splitlines()[-1]
    assert summary.startswith("Would delete 3 key(s) (5.1 KiB) and 1 superseded root(s)"), summary
    assert "; would free " in summary
    assert remote_keys(repo, "") == before
    done = run_cli("gc", "--remote", "shared", "--grace", "0", "--yes")
    assert done.out.startswith("Deleted 3 key(s) (5.1 KiB)"), done.out
    if remote_spec[1].get("pack") is not True:  # one key per blob: its bytes are the space
        assert "; freed 5.1 KiB" in done.out, done.out


def _commit(repo: Repo, message: str) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "-A"], cwd=repo.root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], cwd=repo.root, check=True)


def test_push_all_commits_keeps_history_through_gc_and_later_pushes(tmp_path, monkeypatch):
    """Two repositories share a remote: A pushes with --all-commits once, then plainly; B
    only plainly. gc keeps every version A committed, and only B's newest."""
    from tests.helpers import run_cli

    spec: Spec = (str(tmp_path / "remote"), {})
    a = make_repo(tmp_path / "a", spec)
    b = make_repo(tmp_path / "b", spec)
    subprocess.run(["git", "init", "-q"], cwd=a.root, check=True)
    lost = track_file(a, "data.bin", b"a v0, gone from the cache before any push")
    _commit(a, "v0")
    a.store.remove(lost)
    versions = []
    for n in (1, 2):
        versions.append(track_file(a, "data.bin", b"a v%d" % n))
        _commit(a, f"v{n}")
    monkeypatch.chdir(a.root)
    result = run_cli("push", "--all-commits")
    assert result.code == 0, result.err
    assert "1 object(s) of older commits are neither in the local cache" in result.out
    b_old = track_file(b, "b.bin", b"b v1")
    pushed(b)
    b_new = track_file(b, "b.bin", b"b v2")
    pushed(b)
    versions.append(track_file(a, "data.bin", b"a v3"))
    _commit(a, "v3")
    pushed(a)  # a plain push supersedes A's branch root, not its history root

    gc_remote(a, "shared", grace=0)
    objects = remote_keys(a, OBJECTS)
    assert {object_key(o) for o in versions} <= objects
    assert object_key(b_new) in objects
    assert object_key(b_old) not in objects
    assert len(remote_keys(a, ROOTS)) == 3  # A's branch and history, B's branch

    usage = run_cli("push", "--all-commits", "data.bin")
    assert usage.code == 1
    assert "give no PATH" in usage.err


def test_keys_no_root_names_wait_out_the_grace_window(tmp_path):
    """A key written outside a push (a write-through output) is deleted only once it has been
    unneeded for the grace window."""
    repo = make_repo(tmp_path / "a", (str(tmp_path / "remote"), {}))
    track_file(repo, "x.bin", b"tracked")
    pushed(repo)
    remote = get_remote(repo, "shared")
    stray = repo.store.put_bytes(b"written through by a run")
    remote.push(repo.store, [stray])
    first = gc_remote(repo, "shared", grace=1.0)
    assert first.deleted == []
    assert first.waiting == 1
    assert object_key(stray) in remote_keys(repo, OBJECTS)
    time.sleep(1.1)
    second = gc_remote(repo, "shared", grace=1.0)
    assert second.deleted == [object_key(stray)]
    assert object_key(stray) not in remote_keys(repo, OBJECTS)


def test_a_damaged_root_stops_gc_before_it_deletes_anything(tmp_path):
    repo = make_repo(tmp_path / "a", (str(tmp_path / "remote"), {}))
    track_file(repo, "x.bin", b"one")
    pushed(repo)
    track_file(repo, "x.bin", b"two")
    pushed(repo)
    root = sorted(remote_keys(repo, ROOTS))[0]
    path = tmp_path / "remote" / root
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"objects"', b'"object5"'))
    before = remote_keys(repo, "")
    with pytest.raises(RemoteError, match="does not match its hash"):
        gc_remote(repo, "shared", grace=0)
    assert remote_keys(repo, "") == before


def test_gc_waits_for_a_push_and_ignores_a_dead_ones_lock(tmp_path):
    repo = make_repo(tmp_path / "a", (str(tmp_path / "remote"), {}), lock_timeout=1.0)
    track_file(repo, "x.bin", b"one")
    pushed(repo)
    remote = get_remote(repo, "shared")
    held = RemoteLock(remote, PUSH)
    held.acquire()
    from merkl.remotes.collect import collect_remote

    with pytest.raises(RemoteError, match="a push holds the remote's lock"):
        collect_remote(get_remote(repo, "shared"), grace=0, lock_wait=0.3)
    held.release()
    dead = RemoteLock(remote, PUSH)
    dead.try_acquire()  # taken and never refreshed: its process was killed
    time.sleep(1.2)
    assert gc_remote(repo, "shared", grace=0).live_roots == 1
    assert not remote_keys(repo, "locks")


# -- real processes ---------------------------------------------------------------------------

PUSHER = """
import random, sys
from pathlib import Path
from merkl.ops.push import push
from merkl.pointer import read_pointer
from merkl.repo import Repo
from merkl.tracking.track import track

repo = Repo(Path(sys.argv[1]))
for round in range(int(sys.argv[2])):
    # contents from a small shared pool: repositories dedupe against each other's objects,
    # which is exactly what gc without locks would break (a push skips an object gc deletes)
    for name in ("a.bin", "b.bin"):
        path = repo.root / name
        if path.exists() or path.is_symlink():
            path.unlink()
        path.write_bytes(b"pool item %d" % random.randrange(6))
        track(repo, [path])
    push(repo, "shared").raise_for_failures()
"""


def _python(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    src = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": src}
    return subprocess.Popen(
        [sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _newest_roots(repos: list[Repo]) -> dict[str, set[str]]:
    """{repo: objects of its newest root}, read from the remote."""
    from merkl.remotes.roots import live_roots, read_roots

    remote = get_remote(repos[0], "shared")
    live, _ = live_roots(read_roots(remote), time.time(), 0)
    return {root.repo: set(root.objects) for root in live}


@pytest.mark.parametrize("kind", ["dir", "redis", "s3"])
def test_gc_racing_pushes_loses_nothing(tmp_path, kind, request):
    spec: Spec = (str(tmp_path / "remote"), {})
    if kind == "redis":
        spec = (REDIS_URL, {"prefix": request.getfixturevalue("redis_prefix")})
    elif kind == "s3":  # tiny packs: most gcs repack some
        spec = (f"s3://{request.getfixturevalue('s3_bucket')}/team", {"pack_size": 65536})
    repos = [make_repo(tmp_path / f"r{i}", spec) for i in range(3)]
    script = tmp_path / "pusher.py"
    script.write_text(PUSHER)
    procs = [_python(str(script), str(r.root), "8", cwd=r.root) for r in repos]  # 24 pushes
    collections = 0
    while any(p.poll() is None for p in procs):
        try:
            gc_remote(repos[0], "shared", grace=0)
            collections += 1
        except RemoteError:
            pass  # pushes held the lock all the while: retried
    for proc in procs:
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
    gc_remote(repos[0], "shared", grace=0)
    objects = remote_keys(repos[0], OBJECTS)
    newest = _newest_roots(repos)
    assert len(newest) == 3
    for needed in newest.values():
        assert {object_key(o) for o in needed} <= objects
    for repo in repos:  # and each repository's own view agrees: everything it tracks is there
        for name in ("a.bin", "b.bin"):
            oid = read_pointer(repo.root / f"{name}.merkl").oid
            assert object_key(oid) in objects
    assert collections >= 1


def kill_gc_after(repo: Repo, seconds: float) -> bool:
    """Start `merkl gc --remote shared --grace 0 --yes` as a process, SIGKILL it after
    `seconds`; whether it was still running then."""
    return gc_finished_within(repo, seconds) is None


def gc_finished_within(repo: Repo, seconds: float) -> float | None:
    """`kill_gc_after`, telling how long the gc took when it ended by itself (None: killed)."""
    start = time.monotonic()
    proc = _python(
        "-m", "merkl", "gc", "--remote", "shared", "--grace", "0", "--yes", cwd=repo.root
    )
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.communicate()
    if proc.returncode == -signal.SIGKILL:
        return None
    return time.monotonic() - start


def _readable(folder: Path) -> None:
    """Every record has its object, and every newest root's objects are there."""
    records = {
        p.relative_to(folder).as_posix() for p in (folder / OUTPUTS).rglob("*") if p.is_file()
    }
    objects = {
        p.relative_to(folder).as_posix() for p in (folder / OBJECTS).rglob("*") if p.is_file()
    }
    for key in records:
        oid = orjson.loads((folder / key).read_bytes())["oid"].removeprefix("blake3:")
        assert object_key(oid) in objects, key


def test_kill_9_of_gc_leaves_the_remote_readable(tmp_path):
    folder = tmp_path / "remote"
    repo = make_repo(tmp_path / "a", (str(folder), {}), lock_timeout=1.0)
    rng = random.Random(17)
    for _ in range(3):
        for _dropped in range(400):  # outputs the next round drops: gc deletes record, then object
            add_output(repo, orjson.dumps(os.urandom(8).hex()))
        live = add_output(repo, b'"kept"')
        pushed(repo)
        repo.index.remove_outputs([e.out_hash for e in repo.index.iter_outputs()])
        repo.index.add_outputs([OutputEntry(live[0], live[1], "json", 6, True)])
        pushed(repo)
        kill_gc_after(repo, rng.uniform(0.3, 1.2))
        _readable(folder)
        assert record_key(live[0]) in remote_keys(repo, OUTPUTS)
    time.sleep(1.1)  # the killed gc's lock expires
    gc_remote(repo, "shared", grace=0)
    _readable(folder)
    assert remote_keys(repo, OUTPUTS) == {record_key(live[0])}


def test_s3_drops_dead_keys_from_indexes_and_deletes_dead_packs(tmp_path, s3_bucket):
    """Packs are not repacked: a pack goes when none of its keys is live any more."""
    import boto3

    repo = make_repo(tmp_path / "a", (f"s3://{s3_bucket}/team", {}))
    old = track_file(repo, "x.bin", b"one" * 1000)
    pushed(repo)
    track_file(repo, "x.bin", b"two" * 1000)
    pushed(repo)

    def bucket_keys(top: str) -> set[str]:
        listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix=f"team/{top}")
        return {item["Key"] for item in listed.get("Contents", [])}

    packs = bucket_keys("packs/")
    assert len(packs) == 2
    assert not bucket_keys("locks/")
    assert len(bucket_keys("roots/")) == 2  # loose, never packed
    gc_remote(repo, "shared", grace=0)
    assert len(bucket_keys("packs/")) == 1
    assert bucket_keys("packs/") < packs
    assert object_key(old) not in remote_keys(repo, OBJECTS)
    assert len(remote_keys(repo, OBJECTS)) == 1


def test_status_remote_says_what_each_side_lacks(tmp_path, monkeypatch):
    from tests.helpers import run_cli

    spec: Spec = (str(tmp_path / "remote"), {})
    a = make_repo(tmp_path / "a", spec)
    track_file(a, "pushed.bin", b"pushed")
    add_output(a, b'"pushed output"')
    pushed(a)
    track_file(a, "local.bin", b"only here")
    add_output(a, b'"only here"')
    monkeypatch.chdir(a.root)
    result = run_cli("status", "--remote", "shared")
    assert result.code == 0, result.err
    assert "not pushed  local.bin" in result.out
    assert "lacks 1 tracked file(s) and 1 cached output(s)" in result.out
    a.store.remove(read_pointer(a.root / "pushed.bin.merkl").oid)
    a.index.remove_outputs([e.out_hash for e in a.index.iter_outputs()])
    result = run_cli("status", "--remote", "shared")
    assert "not pulled  pushed.bin" in result.out
    assert "has 1 tracked file(s) and 1 cached output(s) not here" in result.out


def test_status_remote_without_a_name_uses_the_default_remote(tmp_path, monkeypatch):
    from tests.helpers import run_cli

    a = make_repo(tmp_path / "a", (str(tmp_path / "remote"), {}))
    track_file(a, "pushed.bin", b"pushed")
    pushed(a)
    track_file(a, "local.bin", b"only here")
    monkeypatch.chdir(a.root)
    for argv in (["--remote"], ["--remote", "-"], ["--remote", "shared"]):
        result = run_cli("status", *argv)
        assert result.code == 0, result.err
        assert "not pushed  local.bin" in result.out
        assert result.out.count("lacks 1 tracked file(s)") == 1

    config = a.root / "merkl.toml"
    config.write_text(
        config.read_text()
        + f'[remotes.other]\nurl = "{tmp_path / "other"}"\n'
        + "[core]\n"  # several remotes and none the default: each is compared
    )
    (tmp_path / "other").mkdir()
    result = run_cli("status", "--remote")
    assert result.code == 0, result.err
    assert "remote 'shared'" in result.out
    assert "remote 'other'" in result.out
    assert "lacks 2 tracked file(s)" in result.out  # nothing was pushed to 'other'

    usage = run_cli("status", "--remote", "shared", "other")
    assert usage.code == 2
    assert "one remote NAME at most" in usage.err

    config.write_text("")
    missing = run_cli("status", "--remote")
    assert missing.code == 1
    assert "no remote configured; add one with `merkl remote add" in missing.err


def test_redis_gc_deletes_the_chunks_of_large_blobs(tmp_path, redis_prefix):
    import redis

    repo = make_repo(tmp_path / "a", (REDIS_URL, {"prefix": redis_prefix, "chunk_size": 1000}))
    track_file(repo, "big.bin", os.urandom(5500))
    pushed(repo)
    client = redis.Redis.from_url(REDIS_URL)
    assert len(list(client.scan_iter(match=redis_prefix + "objects/*#*"))) == 6
    track_file(repo, "big.bin", b"small now")
    pushed(repo)
    gc_remote(repo, "shared", grace=0)
    assert not list(client.scan_iter(match=redis_prefix + "objects/*#*"))
    assert len(remote_keys(repo, OBJECTS)) == 1
    client.close()


def test_a_lock_taken_for_a_dead_ones_is_lost_for_good(tmp_path):
    """A holder paused past lock_timeout finds its lock gone and must not recreate it: a push
    then publishes no root, a gc deletes nothing more."""
    repo = make_repo(tmp_path / "a", (str(tmp_path / "remote"), {}), lock_timeout=0.4)
    remote = get_remote(repo, "shared")
    remote.prepare(write=True)
    lock = RemoteLock(remote, PUSH)
    lock.acquire()
    remote.delete([lock.key])  # what a gc does to a lock it finds stale
    time.sleep(0.3)  # the refresher runs every lock_timeout / 4
    with pytest.raises(RemoteError, match="lost its lock"):
        lock.check()
    assert not remote_keys(repo, "locks")
    lock.release()
