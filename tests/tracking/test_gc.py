"""`merkl gc`: what it keeps (pointers, git history, cached outputs) and what it frees."""

from __future__ import annotations

import subprocess
import time

import pytest
from tests.helpers import run_cli

from merkl.cache.index import OutputEntry, RunRecord
from merkl.hashing import hash_bytes
from merkl.ops.gc import gc
from merkl.repo import Repo


def _git(root, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_removes_only_unreferenced_objects(tree):
    root = tree({"keep.bin": "K", "dir": {"a": "A", "b": "B"}, "old.bin": "v1"})
    run_cli("track", "keep.bin", "dir", "old.bin")
    (root / "old.bin").unlink()
    (root / "old.bin").write_text("version 2")
    run_cli("track", "old.bin")
    repo = Repo(root)
    orphan = repo.store.put_bytes(b"x" * 1000)
    dry = run_cli("gc", "--dry-run")
    assert dry.code == 0, dry.err
    assert f"would remove {orphan[:16]}  1000 B" in dry.out
    assert f"would remove {hash_bytes(b'v1')[:16]}  2 B" in dry.out
    assert "Would remove 2 object(s), freeing 1002 B; kept 5" in dry.out
    assert repo.store.has(orphan)
    real = run_cli("gc")
    assert real.out.strip() == "Removed 2 object(s), freeing 1002 B; kept 5"
    assert not repo.store.has(orphan)
    assert not repo.store.has(hash_bytes(b"v1"))
    assert run_cli("status", "--json").out.count('"clean"') == 3
    assert run_cli("gc").out.strip() == "Removed 0 object(s), freeing 0 B; kept 5"


def test_all_commits_keeps_data_of_older_commits(tree):
    root = tree({"m.bin": "v1", "d": {"x": "X1"}})
    _git(root, "init", "-q")
    run_cli("track", "m.bin", "d")
    _git(root, "add", "m.bin.merkl", "d.merkl", ".gitignore")
    _git(root, "commit", "-q", "-m", "v1")
    (root / "m.bin").unlink()
    (root / "m.bin").write_text("v2")
    (root / "d" / "x").unlink()
    (root / "d" / "x").write_text("X2")
    run_cli("track", "m.bin", "d")
    _git(root, "commit", "-q", "-am", "v2")
    (root / "m.bin").unlink()
    (root / "m.bin").write_text("v3 staged only")
    run_cli("track", "m.bin")
    _git(root, "add", "m.bin.merkl")
    (root / "m.bin").unlink()
    (root / "m.bin").write_text("v4 work tree")
    run_cli("track", "m.bin")
    repo = Repo(root)
    old = [hash_bytes(b"v1"), hash_bytes(b"X1"), hash_bytes(b"v2"), hash_bytes(b"v3 staged only")]
    assert run_cli("gc", "--all-commits").out.startswith("Removed 0 object(s)")
    assert all(repo.store.has(oid) for oid in old)
    result = run_cli("gc")  # keeps what HEAD (v2, X2) and the index (v3) name
    assert result.out.startswith("Removed 3 object(s)")  # v1, X1 and the v1 manifest
    assert not any(repo.store.has(oid) for oid in old[:2])
    assert all(repo.store.has(oid) for oid in old[2:])


def test_all_commits_outside_git_is_an_error(repo):
    result = run_cli("gc", "--all-commits")
    assert result.code == 1
    assert "--all-commits" in result.err
    assert "git" in result.err


def _cache_output(repo: Repo, data: bytes, age_days: float) -> OutputEntry:
    oid = repo.store.put_bytes(data)
    out_hash = hash_bytes(b"out" + data)
    entry = OutputEntry(out_hash, oid, "bytes", len(data), True)
    run = RunRecord(
        out_hash,
        0,
        "t",
        "m",
        "c" * 64,
        "a" * 64,
        {},
        [],
        0.1,
        len(data),
        time.time() - age_days * 86400,
    )
    repo.index.add_outputs([entry], [run])
    return entry


def test_cached_outputs_are_kept_unless_keep_days_says_otherwise(repo):
    fresh = _cache_output(repo, b"fresh", 1)
    stale = _cache_output(repo, b"stale", 30)
    assert run_cli("gc").out.startswith("Removed 0 object(s)")
    dry = run_cli("gc", "--keep-days", "7", "--dry-run")
    assert "would drop 1 cached task output(s) older than 7 day(s)" in dry.out
    assert repo.index.find_output(stale.out_hash) is not None
    result = run_cli("gc", "--keep-days", "7")
    assert result.out.startswith("Removed 1 object(s), freeing 5 B")
    assert repo.index.find_output(stale.out_hash) is None
    assert not repo.store.has(stale.oid)
    assert repo.store.has(fresh.oid)
    run_cli("gc", "--keep-days", "0")
    assert not repo.store.has(fresh.oid)


def test_an_output_also_tracked_by_a_pointer_keeps_its_object(tree):
    root = tree({"out.bin": "shared"})
    repo = Repo(root)
    entry = _cache_output(repo, b"shared", 100)
    run_cli("track", "out.bin")
    gc(repo, keep_days=1)
    assert repo.store.has(entry.oid)
    assert repo.index.find_output(entry.out_hash) is None


def test_stale_temporary_files_are_cleaned(repo):
    import os

    old = repo.tmp_dir / "abc.partial"
    old.write_bytes(b"12345")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    fresh = repo.tmp_dir / "def.partial"
    fresh.write_bytes(b"1")
    result = run_cli("gc")
    assert "removed 1 stale temporary file(s)" in result.out
    assert not old.exists()
    assert fresh.exists()


def test_bad_keep_days(repo):
    result = run_cli("gc", "--keep-days", "-3")
    assert result.code == 2
    assert "--keep-days must be 0 or more, got -3.0" in result.err
    with pytest.raises(ValueError, match="--keep-days"):
        gc(repo, keep_days=-1)
