"""Tiny task outputs live inline in the index (issue 22): no object file each, still verified
on read, pushed and pulled, checked by verify, removed by gc and eviction."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from merkl.cache.store import INLINE_MAX
from merkl.errors import CorruptObjectError
from merkl.evaluation import EvalStats, evaluate
from merkl.ops.evict import evict
from merkl.ops.gc import gc
from merkl.ops.verify import verify
from merkl.repo import Repo
from merkl.session import use_session
from tests.helpers import damage_object, import_fresh, run_cli, write_module

TASKS = """
    from merkl import BytesSerializer, task, write_file

    CALLS = []

    @task
    def add_one(x):
        CALLS.append(x)
        return x + 1

    @task(serializers=BytesSerializer())
    def sized(n):
        CALLS.append(n)
        return b"x" * n

    def tracked(n):
        return write_file(add_one(n), f"out{n}.json", track=True)
"""


@pytest.fixture
def tasks(repo: Repo):  # type: ignore[no-untyped-def]
    write_module(repo.root, "tiny", TASKS)
    module = import_fresh(repo.root, "tiny")
    with use_session(repo=repo):
        yield module


def _object_files(repo: Repo) -> list[str]:
    return list(repo.store.iter_oids())


def blob_rows(repo: Repo) -> int:
    """Inline rows another connection sees (another process would find them)."""
    with sqlite3.connect(repo.index.path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM blobs").fetchone()[0])


def test_tiny_outputs_are_stored_in_the_index_not_as_files(repo: Repo, tasks) -> None:
    assert evaluate([tasks.add_one(i) for i in range(50)]) == list(range(1, 51))
    assert _object_files(repo) == []
    assert blob_rows(repo) == 50
    tasks.CALLS.clear()
    repo.cache._entries.clear()  # read back from the database, not from memory
    assert evaluate([tasks.add_one(i) for i in range(50)]) == list(range(1, 51))
    assert tasks.CALLS == []
    entry = repo.index.find_output(tasks.add_one(7).hash)
    assert repo.store.has(entry.oid)
    assert not repo.store.has_file(entry.oid)
    assert repo.store.get_bytes(entry.oid) == b"8"
    assert repo.store.size(entry.oid) == 1


def test_the_size_threshold(repo: Repo, tasks) -> None:
    """Below INLINE_MAX bytes: inline; from INLINE_MAX on: an object file."""
    below, at = tasks.sized(INLINE_MAX - 1), tasks.sized(INLINE_MAX)
    evaluate([below, at])
    small = repo.index.find_output(below.hash).oid
    large = repo.index.find_output(at.hash).oid
    assert not repo.store.has_file(small)
    assert repo.store.has(small)
    assert _object_files(repo) == [large]
    assert repo.store.get_bytes(small) == b"x" * (INLINE_MAX - 1)


def test_inline_max_setting_and_zero_turns_it_off(repo: Repo) -> None:
    with open(repo.root / "merkl.toml", "a") as handle:
        handle.write('\n[cache]\ninline_max = "100B"\n')
    assert Repo(repo.root).store.inline_max == 100
    (repo.dot_dir / "config.toml").write_text("[cache]\ninline_max = 0\n")
    fresh = Repo(repo.root)
    write_module(repo.root, "tiny", TASKS)
    tiny = import_fresh(repo.root, "tiny")
    with use_session(repo=fresh):
        assert tiny.add_one(1).get() == 2
    assert len(_object_files(fresh)) == 1
    assert blob_rows(fresh) == 0
    (repo.dot_dir / "config.toml").write_text('[cache]\ninline_max = "2MB"\n')
    result = run_cli("run", "tiny.add_one", "3")
    assert result.code == 1
    assert "config.toml: [cache] inline_max must be at most 1MiB" in result.err


def test_a_corrupt_inline_object_is_never_returned(repo: Repo, tasks) -> None:
    out = tasks.add_one(41)
    assert out.get() == 42
    oid = repo.index.find_output(out.hash).oid
    damage_object(repo, oid, b"666")
    with pytest.raises(CorruptObjectError, match="does not match its hash"):
        repo.store.get_bytes(oid)
    assert not repo.store.has(oid)  # quarantined: its bytes kept in a file, its row gone
    [kept] = (repo.dot_dir / "quarantine").iterdir()
    assert kept.read_bytes() == b"666"
    damage_object(repo, repo.store.put_bytes(b"43"), b"666")  # a file this time: the same
    repo.cache._entries.clear()
    tasks.CALLS.clear()
    assert tasks.add_one(41).get() == 42  # the row went with the object: recomputed
    assert tasks.CALLS == [41]


def test_pending_inline_objects_are_read_by_their_thread(repo: Repo, tasks) -> None:
    with repo.cache.batched():
        assert tasks.add_one(5).get() == 6
        oid = repo.index.find_output(tasks.add_one(5).hash).oid
        assert repo.store.get_bytes(oid) == b"6"  # pending: not written yet
        assert blob_rows(repo) == 0
    assert blob_rows(repo) == 1


def test_gc_keeps_cached_inline_outputs_and_drops_them_by_age(repo: Repo, tasks) -> None:
    evaluate([tasks.add_one(i) for i in range(5)])
    orphan = "a" * 64
    repo.store.put_inline([(orphan, b"an orphan, as a killed pull could leave")])
    result = gc(repo)
    assert [oid for oid, _ in result.removed] == [orphan]
    assert blob_rows(repo) == 5
    result = gc(repo, keep_days=0)
    assert len(result.removed) == 5
    assert len(result.dropped_outputs) == 5
    assert blob_rows(repo) == 0
    assert repo.index.find_output(tasks.add_one(1).hash) is None


def test_eviction_and_cache_commands_cover_inline_outputs(repo: Repo, tasks) -> None:
    evaluate([tasks.add_one(i) for i in range(10)] + [tasks.sized(10)])
    size = run_cli("cache", "size")
    assert "10 output(s)  tiny.add_one" in size.out
    cleared = run_cli("cache", "clear", "--task", "tiny.sized")
    assert cleared.code == 0, cleared.err
    assert blob_rows(repo) == 10
    oids = {e.out_hash: e.oid for e in repo.index.iter_outputs()}
    assert all(repo.store.get_bytes(oid) for oid in oids.values())  # remembered by this process
    result = evict(repo, max_size=5)  # "1".."10": 11 bytes; the oldest go first
    assert len(result.dropped) >= 5
    assert result.freed >= 6
    assert blob_rows(repo) == 10 - len(result.dropped)
    assert not any(repo.store.has(oids[h]) for h in result.dropped)  # and forgotten
    assert verify(repo).findings == []


def test_verify_checks_inline_objects(repo: Repo, tasks) -> None:
    evaluate([tasks.add_one(i) for i in range(3)])
    assert verify(repo).objects == 3
    oid = repo.index.find_output(tasks.add_one(2).hash).oid
    damage_object(repo, oid)
    report = verify(repo)
    assert sorted(f.kind for f in report.findings) == ["corrupt-object", "corrupt-output"]
    assert blob_rows(repo) == 3  # reported only
    repaired = verify(repo, repair=True)
    assert all(f.repaired for f in repaired.findings)
    assert blob_rows(repo) == 2
    assert verify(repo).findings == []


def test_a_tracked_output_is_checked_out_from_its_inline_object(repo: Repo, tasks) -> None:
    """`write_file(track=True)` links to an object file; one gone is written out again from
    the inline bytes when checked out."""
    path = tasks.tracked(1).get()
    assert path.read_text() == "2"
    oid = repo.index.find_output(tasks.add_one(1).hash).oid
    os.chmod(repo.store.oid_to_path(oid), 0o644)
    os.unlink(repo.store.oid_to_path(oid))
    path.unlink()
    assert run_cli("checkout").code == 0
    assert path.read_text() == "2"
    assert repo.store.has_file(oid)


def test_an_old_index_without_the_blobs_table_keeps_working(tmp_path: Path) -> None:
    """An index written before inline objects: its rows and object files are read as they
    were, the table is added on first open, and new tiny outputs go inline."""
    work = tmp_path / "old"
    repo = Repo.init(work)
    write_module(work, "tiny", TASKS)
    tiny = import_fresh(work, "tiny")
    with use_session(repo=repo):
        repo.store.inline_max = 0
        assert tiny.add_one(1).get() == 2  # an object file, as before
    repo.index.close()
    with sqlite3.connect(repo.index.path) as conn:
        conn.execute("DROP TABLE blobs")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    again = Repo(work)
    stats = EvalStats()
    with use_session(repo=again):
        assert evaluate([tiny.add_one(1), tiny.add_one(2)], stats=stats) == [2, 3]
    assert (stats.ran, stats.loaded) == (1, 1)
    assert len(_object_files(again)) == 1
    assert blob_rows(again) == 1
    with sqlite3.connect(again.index.path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    assert verify(again).findings == []
