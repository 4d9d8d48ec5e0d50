"""A run writes its index and run-log rows in batched transactions (issue 22), crash-safely."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from merkl.cache import index as index_module
from merkl.cache.index import Index, OutputEntry
from merkl.evaluation import EvalStats, evaluate
from merkl.ops.verify import verify
from merkl.repo import Repo
from merkl.session import use_session
from tests.helpers import import_fresh, write_module

TASKS = """
    import os, signal
    from merkl import task

    @task
    def add_one(x):
        if x == int(os.environ.get("KILL_AT", "-1")):
            os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of the run
        if x == int(os.environ.get("FAIL_AT", "-1")):
            raise ValueError("boom")
        return x + 1
"""


def _transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the index's write transactions from now on (a spy: they still run)."""
    count: list[int] = []
    original = Index._transaction

    def counted(self: Index, statements):  # type: ignore[no-untyped-def]
        count.append(1)
        return original(self, statements)

    monkeypatch.setattr(Index, "_transaction", counted)
    return count


def _rows(repo: Repo, table: str) -> int:
    """Rows another connection sees (what another process would find)."""
    with sqlite3.connect(repo.dot_dir / "index.sqlite") as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_a_run_of_many_tasks_commits_in_batches(repo: Repo, monkeypatch) -> None:
    write_module(repo.root, "small", TASKS)
    small = import_fresh(repo.root, "small")
    commits = _transactions(monkeypatch)
    monkeypatch.setattr(index_module, "BATCH_SECONDS", 3600.0)  # count-triggered batches only
    stats = EvalStats()
    with use_session(repo=repo):
        values = evaluate([small.add_one(i) for i in range(1200)], stats=stats)
    assert values == [i + 1 for i in range(1200)]
    assert stats.ran == 1200
    # One transaction per 512 outputs and one at the end, not one per output (1,200 before).
    assert len(commits) == 3
    assert _rows(repo, "outputs") == 1200
    assert _rows(repo, "runs") == 1200
    again = EvalStats()
    with use_session(repo=repo):
        evaluate([small.add_one(i) for i in range(1200)], stats=again)
    assert again.ran == 0
    assert again.loaded == 1200


def test_rows_are_written_after_at_most_batch_seconds(repo: Repo, monkeypatch) -> None:
    monkeypatch.setattr(index_module, "BATCH_SECONDS", 0.0)  # every add is due at once
    commits = _transactions(monkeypatch)
    write_module(repo.root, "small", TASKS)
    small = import_fresh(repo.root, "small")
    with use_session(repo=repo):
        evaluate([small.add_one(i) for i in range(5)])
    assert len(commits) == 5


def test_a_failing_task_keeps_the_outputs_computed_before_it(repo: Repo, monkeypatch) -> None:
    write_module(repo.root, "small", TASKS)
    small = import_fresh(repo.root, "small")
    monkeypatch.setenv("FAIL_AT", "7")
    with use_session(repo=repo), pytest.raises(ValueError, match="boom"):
        evaluate([small.add_one(i) for i in range(10)])
    assert _rows(repo, "outputs") == 7  # written when the batch ended with the error
    monkeypatch.delenv("FAIL_AT")
    stats = EvalStats()
    with use_session(repo=repo):
        evaluate([small.add_one(i) for i in range(10)], stats=stats)
    assert stats.ran == 3


def test_pending_rows_are_seen_by_their_own_thread(repo: Repo) -> None:
    entry = OutputEntry("a" * 64, "b" * 64, "json", 3, True)
    index = repo.index
    with index.batched():
        index.add_outputs([entry])
        assert index.find_output(entry.out_hash) == entry  # pending, seen by this thread
        assert _rows(repo, "outputs") == 0  # not written yet
        assert [e.out_hash for e in index.iter_outputs()] == [entry.out_hash]  # writes first
        assert _rows(repo, "outputs") == 1


def test_kill9_in_a_batched_run_loses_only_pending_rows(tmp_path: Path) -> None:
    """A run killed mid-batch leaves no row without its object; the re-run completes it."""
    work = tmp_path / "proj"
    work.mkdir()
    write_module(work, "small", TASKS)
    subprocess.run([sys.executable, "-m", "merkl", "init"], cwd=work, check=True)
    script = (
        "import small\nfrom merkl import evaluate\n"
        "print(sum(evaluate([small.add_one(i) for i in range(700)])))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(work), "KILL_AT": "650"}
    killed = subprocess.run([sys.executable, "-c", script], cwd=work, env=env)
    assert killed.returncode == -signal.SIGKILL
    repo = Repo(work)
    # The batches written before the kill are durable (by count or age); the pending rows died.
    assert 0 < _rows(repo, "outputs") <= 650
    report = verify(repo)
    assert not [f for f in report.findings if f.kind != "orphaned-object"], report.findings
    for entry in repo.index.iter_outputs():
        assert repo.store.verify(entry.oid)  # every visible output has its object
    env.pop("KILL_AT")
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0
    assert int(done.stdout) == sum(range(1, 701))
    assert _rows(repo, "outputs") == 700


def test_objects_of_a_run_are_synced_once_per_batch_before_its_rows(
    repo: Repo, monkeypatch
) -> None:
    """Under `[core] fsync = true` (the default) a run does not fsync each object: one sync of
    the batch's objects, before the rows that refer to them are written."""
    from merkl.cache.store import ObjectStore

    write_module(repo.root, "small", TASKS)
    small = import_fresh(repo.root, "small")
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    syncs: list[tuple[int, int]] = []  # (objects synced, rows written before the sync)
    real_sync = ObjectStore.sync_objects

    def spied(self: ObjectStore, oids: list[str]) -> None:
        syncs.append((len(oids), _rows(repo, "outputs")))
        real_sync(self, oids)

    monkeypatch.setattr(ObjectStore, "sync_objects", spied)
    monkeypatch.setattr(index_module, "BATCH_SECONDS", 3600.0)
    assert repo.store.fsync
    repo.store.inline_max = 0  # every output an object file (tiny ones are inline otherwise)
    with use_session(repo=repo):
        evaluate([small.add_one(i) for i in range(600)])
    assert syncs == [(512, 0), (88, 512)]
    if sys.platform.startswith("linux"):
        assert fsyncs == []  # one syncfs per batch (600 fsyncs before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_writes_its_parents_pending_rows(repo: Repo) -> None:
    entry = OutputEntry("c" * 64, "d" * 64, "json", 3, True)
    index = repo.index
    with index.batched():
        index.add_outputs([entry], [])
        pid = os.fork()
        if pid == 0:  # the child opens its own connection, then reads (which writes pending rows)
            index.find_output("e" * 64)
            list(index.iter_outputs())
            os._exit(0)
        os.waitpid(pid, 0)
        assert _rows(repo, "outputs") == 0  # the child dropped the inherited rows
    assert _rows(repo, "outputs") == 1  # the parent wrote them when its batch ended
