"""`merkl verify [--repair]`: every kind of damage is found, reported, and repaired."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from merkl.cache.stat_cache import file_oid
from merkl.hashing import hash_file
from merkl.ops.verify import verify
from merkl.tracking.track import track
from tests.helpers import damage_object, run_cli


def _damage(path, data: bytes | None = None) -> None:
    """Overwrite a read-only store object (simulating bit rot or a torn write)."""
    os.chmod(path, 0o644)
    if data is None:
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        data = bytes(raw)
    path.write_bytes(data)


def _kinds(report) -> list[str]:
    return sorted(f.kind for f in report.findings)


def test_clean_repo_is_ok(repo, pipe):
    assert pipe.total(pipe.square(3), pipe.square(4)).get() == 25
    assert len(pipe.blob(4096).get()) == 4096 * 256
    report = verify(repo)
    assert report.ok
    assert report.findings == []
    assert (report.objects, report.outputs) == (4, 4)  # 9, 16, 25 and the blob
    assert len(list(repo.store.iter_inline())) == 3  # the numbers: in the index, no files
    files = sum(repo.store.size(o) for o in repo.store.iter_oids())
    assert report.bytes == files + sum(size for _, size in repo.store.iter_inline())


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_corrupt_object_reported_then_repaired(repo, pipe, damage):
    out = pipe.blob(8192)  # 2 MiB: hashed through the memory-mapped path
    small = pipe.square(12)
    assert small.get() == 144
    assert len(out.get()) == 8192 * 256
    for placeholder in (out, small):  # a file, and an inline object (small outputs)
        oid = repo.index.find_output(placeholder.hash).oid
        original = repo.store.get_bytes(oid)
        damage_object(repo, oid, {"flip": None, "truncate": original[:-1], "empty": b""}[damage])
    assert len(list(repo.store.iter_inline())) == 1

    report = verify(repo)
    assert not report.ok
    assert _kinds(report) == ["corrupt-object"] * 2 + ["corrupt-output"] * 2
    assert all(obj.exists() for obj in repo.objects_dir.glob("*/*"))  # report only: no change
    assert len(list(repo.store.iter_inline())) == 1

    repaired = verify(repo, repair=True)
    assert all(f.repaired for f in repaired.findings)
    assert repo.index.find_output(out.hash) is None
    assert repo.index.find_output(small.hash) is None
    assert list(repo.store.iter_oids()) == []
    assert list(repo.store.iter_inline()) == []
    assert len(list((repo.dot_dir / "quarantine").iterdir())) == 2  # kept, not deleted
    assert verify(repo).ok
    assert small.get() == 144
    assert out.get() == bytes(range(256)) * 8192
    assert verify(repo).findings == []


def test_missing_object_reported_then_row_removed(repo, pipe):
    assert pipe.square(5).get() == 25
    entry = repo.index.find_output(pipe.square(5).hash)
    repo.store.remove(entry.oid)
    report = verify(repo)
    assert _kinds(report) == ["missing-object"]
    assert report.findings[0].subject == entry.out_hash
    verify(repo, repair=True)
    assert repo.index.find_output(entry.out_hash) is None
    assert verify(repo).ok
    assert pipe.square(5).get() == 25


def test_size_mismatch_row(repo, pipe):
    assert pipe.square(6).get() == 36
    with sqlite3.connect(repo.index.path) as conn:
        conn.execute("UPDATE outputs SET size = size + 1")
    report = verify(repo)
    assert _kinds(report) == ["size-mismatch"]
    verify(repo, repair=True)
    # The object is sound but nothing references it now: an orphan (a notice), recomputed later.
    assert _kinds(verify(repo)) == ["orphaned-object"]
    assert pipe.square(6).get() == 36


def test_orphaned_object_is_a_notice_and_never_deleted(repo, pipe):
    oid = repo.store.put_bytes(b"written by a process killed before its index row")
    report = verify(repo, repair=True)
    assert report.ok
    assert _kinds(report) == ["orphaned-object"]
    assert report.findings[0].subject == oid
    assert not report.findings[0].repaired
    assert repo.store.has(oid)


def test_tracked_files_and_directories_are_referenced(repo, pipe):
    (repo.root / "data").mkdir()
    (repo.root / "data" / "a.csv").write_text("1,2\n")
    (repo.root / "data" / "sub").mkdir()
    (repo.root / "data" / "sub" / "b.bin").write_bytes(os.urandom(1000))
    (repo.root / "model.bin").write_bytes(os.urandom(5000))
    track(repo, ["data", "model.bin"])
    report = verify(repo)
    assert report.ok
    assert report.pointers == 2
    assert report.objects == 4  # manifest, a.csv, b.bin, model.bin
    assert "orphaned-object" not in _kinds(report)


def test_corrupt_manifest_is_not_read_without_repair(repo):
    (repo.root / "data").mkdir()
    (repo.root / "data" / "a.csv").write_text("1,2\n")
    pointer = track(repo, ["data"])[0].pointer
    manifest = repo.store.oid_to_path(pointer.oid)
    _damage(manifest)
    report = verify(repo)
    assert "corrupt-object" in _kinds(report)
    assert manifest.exists()  # reading it through the store would have deleted it
    verify(repo, repair=True)
    assert not manifest.exists()


def test_stale_and_wrong_stat_cache_rows(repo):
    kept, gone = repo.root / "kept.txt", repo.root / "gone.txt"
    kept.write_bytes(b"version 1")
    gone.write_bytes(b"soon deleted")
    for path in (kept, gone):  # settled (a file written just now is not stat-cached)
        os.utime(path, (time.time() - 3600,) * 2)
    st = os.stat(kept)
    assert file_oid(kept, repo) == hash_file(kept)
    file_oid(gone, repo)
    gone.unlink()
    # Same size, same inode, mtime put back: the stat cache now vouches for the old content.
    with open(kept, "r+b") as handle:
        handle.write(b"version 2")
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_oid(kept, repo) != hash_file(kept)  # what verify is there to catch

    report = verify(repo)
    assert not report.ok
    assert _kinds(report) == ["stale-file-state", "wrong-file-state"]
    verify(repo, repair=True)
    assert verify(repo).findings == []
    assert file_oid(kept, repo) == hash_file(kept)


def test_a_racy_row_is_smudged_not_stale(repo):
    """A file hashed right after it was written keeps its oid in a row no stat matches: it is
    read again next time, and verify has nothing to say about it."""
    fresh = repo.root / "fresh.txt"
    fresh.write_bytes(b"just written")
    assert file_oid(fresh, repo) == hash_file(fresh)
    [row] = [r for r in repo.index.iter_file_states() if r[0] == str(fresh)]
    assert row[2] == -1
    report = verify(repo)
    assert report.findings == []
    assert report.file_states == 1


def test_invalid_pointer_files_are_errors_and_do_not_hang(repo):
    (repo.root / "broken.csv.merkl").write_text("{not json")
    (repo.root / "zero.merkl").symlink_to("/dev/zero")
    os.mkfifo(repo.root / "fifo.merkl")
    start = time.monotonic()
    report = verify(repo, repair=True)
    assert time.monotonic() - start < 10
    assert _kinds(report) == ["invalid-pointer"] * 3
    assert not any(f.repaired for f in report.findings)  # the user's files: never touched
    assert (repo.root / "broken.csv.merkl").read_text() == "{not json"


@pytest.mark.parametrize("page", [0, 3, 4])
def test_damaged_index_is_moved_aside_and_recreated(repo, pipe, page):
    repo.store.inline_max = 0  # object files, which outlive the index (inline ones go with it)
    for n in range(40):
        assert pipe.square(n).get() == n * n
    repo.index.close()
    with sqlite3.connect(repo.index.path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(repo.index.path.read_bytes())
    raw[4096 * page : 4096 * (page + 1)] = b"\xab" * 4096
    repo.index.path.write_bytes(bytes(raw))

    result = run_cli("verify")
    assert result.code == 1
    assert "damaged index" in result.out
    assert "verify --repair" in result.err
    report = verify(repo, repair=True)
    [damaged] = report.of_kind("index-corrupt")
    assert damaged.repaired
    # The fresh index knows no outputs: their objects are orphans, recomputed on demand.
    assert len(report.of_kind("orphaned-object")) == 40
    assert list(repo.dot_dir.glob("index.sqlite.corrupt-*"))
    after = verify(repo)
    assert after.ok
    assert set(_kinds(after)) == {"orphaned-object"}
    assert pipe.square(7).get() == 49


def test_temp_files_removed_only_when_old(repo):
    repo.tmp_dir.mkdir(exist_ok=True)
    old, young = repo.tmp_dir / "abc.old", repo.tmp_dir / "abc.young"
    old.write_bytes(b"x")
    young.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    report = verify(repo, repair=True)
    assert report.ok
    assert [(f.subject, f.repaired) for f in report.findings] == [
        (str(old), True),
        (str(young), False),
    ]
    assert not old.exists()
    assert young.exists()


def test_foreign_entries_and_symlinked_objects(repo, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    oid = "ab" * 32
    (repo.objects_dir / "ab").mkdir(parents=True)
    (repo.objects_dir / "ab" / oid[2:]).symlink_to(outside)
    (repo.objects_dir / "ab" / "README").write_text("foreign")
    report = verify(repo, repair=True)
    assert _kinds(report) == ["corrupt-object", "foreign-file"]
    assert report.of_kind("corrupt-object")[0].detail.startswith("not a regular file; moved to")
    assert not (repo.objects_dir / "ab" / oid[2:]).is_symlink()  # the link went, not its target
    assert outside.read_text() == "not yours"
    assert (repo.objects_dir / "ab" / "README").exists()


def test_cli_exit_codes_and_json(repo, pipe):
    assert pipe.square(2).get() == 4
    clean = run_cli("verify")
    assert clean.code == 0, clean.err
    assert "ok: no problems found" in clean.out

    entry = repo.index.find_output(pipe.square(2).hash)
    damage_object(repo, entry.oid)
    bad = run_cli("verify", "--json")
    assert bad.code == 1
    data = json.loads(bad.out)
    assert data["ok"] is False
    assert data["checked"]["objects"] == 1
    assert {f["kind"] for f in data["findings"]} == {"corrupt-object", "corrupt-output"}
    assert bad.err.strip().splitlines() == [
        f"merkl: error: verify found 2 problem(s) in {repo.dot_dir}; run `merkl verify "
        f"--repair` to fix"
    ]
    fixed = run_cli("verify", "--repair")
    assert fixed.code == 0  # everything found was repaired (issue 23)
    assert "repaired all 2 problem(s)" in fixed.err
    assert "[repaired]" in fixed.out
    assert run_cli("verify").code == 0


def test_cli_outside_a_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("verify")
    assert result.code == 1
    assert result.err.startswith("merkl: error: not a merkl repository")
    assert "Traceback" not in result.err


def test_cli_unknown_option_is_usage_error(repo):
    result = run_cli("verify", "--frobnicate")
    assert result.code == 2
