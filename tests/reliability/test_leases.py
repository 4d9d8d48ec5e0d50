"""Compute once: concurrent runs of one repository compute each missing output once.

Real processes on one repository; every body logs its runs (`tests.lease_helpers`).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from merkl.cache.lease import RANGES_FILE
from merkl.evaluation import evaluate
from merkl.repo import Repo
from merkl.session import Session, use_session
from tests.helpers import import_fresh
from tests.lease_helpers import (
    MODULE,
    all_bodies,
    expected,
    kill_and_time_takeover,
    runs,
    start,
    wait_until_hanging,
    write_pipeline,
)

WIDTH = 8


@pytest.fixture
def log(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_pipeline(repo.root)
    monkeypatch.setenv("LEASE_TEST_LOG", str(repo.root / "ran.log"))
    return repo.root / "ran.log"


def test_four_processes_run_each_body_once(repo: Repo, log: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [start(repo.root, go, log, WIDTH) for _ in range(4)]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split() == [str(expected(WIDTH))]
    assert runs(log) == all_bodies(WIDTH)
    # A lease file of its own lives while held; Linux's byte-range leases share one file.
    assert {p.name for p in (repo.dot_dir / "leases").iterdir()} <= {RANGES_FILE}


def test_threads_of_one_process_run_each_body_once(repo: Repo, log: Path) -> None:
    pipe = import_fresh(repo.root, MODULE)
    results: list[int] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        with use_session(Session(repo)):
            barrier.wait()
            results.append(evaluate([pipe.root(WIDTH)])[0])

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [expected(WIDTH)] * 6
    assert runs(log) == all_bodies(WIDTH)


def test_a_killed_lease_holder_is_taken_over_at_once(
    repo: Repo, log: Path, tmp_path: Path
) -> None:
    slow_once = log.with_name("slow-once")
    slow_once.touch()
    go = tmp_path / "go"
    go.touch()
    holder = start(repo.root, go, log, WIDTH)
    wait_until_hanging(slow_once, holder)  # the holder is inside leaf(0), hanging
    waiter = start(repo.root, go, log, WIDTH)
    time.sleep(3)  # time to start and reach the lease on leaf(0)
    assert waiter.poll() is None, waiter.communicate()  # it waits, it does not compute
    assert runs(log) == ["leaf0"]
    out, err, took_over = kill_and_time_takeover(holder, waiter)
    assert waiter.returncode == 0, err
    assert out.split() == [str(expected(WIDTH))]
    # No heartbeat to wait out: the kernel drops a dead holder's flock at once.
    assert took_over < 2.0, took_over
    print(f"\nlocal lease: waiter done {took_over:.2f} s after kill -9 of the holder")
    assert runs(log) == sorted(["leaf0", *all_bodies(WIDTH)])
