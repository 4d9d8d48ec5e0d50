"""Compute once: concurrent runs of one repository compute each missing output once.

Real processes on one repository; every body logs its runs (`tests.lease_helpers`).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from merkl.cache.lease import RANGE_SHARDS, RANGES_FILE, Lease, LeaseFile, take_lease
from merkl.evaluation import evaluate
from merkl.repo import Repo
from merkl.session import Session, use_session
from tests.helpers import REPO_ROOT, import_fresh, write_module
from tests.lease_helpers import (
    MODULE,
    all_bodies,
    expected,
    kill_and_time_takeover,
    runs,
    start,
    start_merkl_run,
    wait_until_hanging,
    write_pipeline,
)

WIDTH = 8


@pytest.fixture
def log(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_pipeline(repo.root)
    monkeypatch.setenv("LEASE_TEST_LOG", str(repo.root / "ran.log"))
    return repo.root / "ran.log"


def run_together(
    repo: Repo, log: Path, tmp_path: Path, executors: list[tuple[str | None, int]]
) -> None:
    """One process per (executor, jobs), started together; each must print the result."""
    go = tmp_path / "go"
    procs = [start(repo.root, go, log, WIDTH, executor, jobs) for executor, jobs in executors]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.split() == [str(expected(WIDTH))]


def start_hanging_holder(
    repo: Repo, log: Path, tmp_path: Path, executor: str | None = None
) -> tuple[subprocess.Popen[str], Path]:
    """A process (on `executor`, 2 workers) hanging inside leaf(0), and its `go` file."""
    slow_once = log.with_name("slow-once")
    slow_once.touch()
    go = tmp_path / "go"
    go.touch()
    holder = start(repo.root, go, log, WIDTH, executor, 2)
    wait_until_hanging(slow_once, holder)
    return holder, go


@pytest.mark.parametrize(
    ("executor", "jobs"), [(None, 1), ("threads", 3), ("processes", 2), ("dask", 2)]
)
def test_four_processes_run_each_body_once(
    repo: Repo, log: Path, tmp_path: Path, executor: str | None, jobs: int
) -> None:
    run_together(repo, log, tmp_path, [(executor, jobs)] * 4)
    assert runs(log) == all_bodies(WIDTH)
    # A lease file of its own lives while held; Linux's byte-range leases share 256 files.
    names = {p.name for p in (repo.dot_dir / "leases").iterdir()}
    assert all(name.startswith(f"{RANGES_FILE}.") for name in names), names


@pytest.mark.parametrize("executor", [None, "threads"])
def test_threads_of_one_process_run_each_body_once(
    repo: Repo, log: Path, executor: str | None
) -> None:
    pipe = import_fresh(repo.root, MODULE)
    results: list[int] = []
    barrier = threading.Barrier(6)

    def run() -> None:
        with use_session(Session(repo)):
            barrier.wait()
            results.append(evaluate([pipe.root(WIDTH)], executor=executor)[0])

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
    holder, go = start_hanging_holder(repo, log, tmp_path)  # inside leaf(0), hanging
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


def test_runs_on_different_executors_share_their_leases(
    repo: Repo, log: Path, tmp_path: Path
) -> None:
    run_together(repo, log, tmp_path, [(e, 2) for e in ("threads", "processes", "dask", None)])
    assert runs(log) == all_bodies(WIDTH)


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_four_merkl_runs_on_a_pool_run_each_body_once(
    repo: Repo, log: Path, tmp_path: Path, executor: str
) -> None:
    go = tmp_path / "go"
    procs = [start_merkl_run(repo.root, go, log, WIDTH, executor) for _ in range(4)]
    go.touch()  # each waits for it as it imports the pipeline
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.split() == [str(expected(WIDTH))]
    assert runs(log) == all_bodies(WIDTH)


def test_a_killed_worker_process_is_taken_over_at_once(
    repo: Repo, log: Path, tmp_path: Path
) -> None:
    holder, go = start_hanging_holder(repo, log, tmp_path, "processes")  # a worker hangs
    name, worker = log.read_text().split()[:2]
    assert int(worker) != holder.pid
    waiter = start(repo.root, go, log, WIDTH, "threads", 2)
    time.sleep(3)  # time to start and reach the lease the holder's worker computes
    assert waiter.poll() is None, waiter.communicate()
    os.kill(int(worker), signal.SIGKILL)
    killed = time.monotonic()
    out, err = waiter.communicate(timeout=60)
    took_over = time.monotonic() - killed
    assert waiter.returncode == 0, err
    assert out.split() == [str(expected(WIDTH))]
    _, holder_err = holder.communicate(timeout=60)
    assert holder.returncode == 1, holder_err
    assert "worker process died" in holder_err
    assert took_over < 2.0, took_over
    print(f"\nprocesses executor: waiter done {took_over:.2f} s after kill -9 of a worker")
    bodies = runs(log)
    assert bodies.count(name) == 2  # the killed worker's body, then the waiter's
    assert sorted(set(bodies)) == all_bodies(WIDTH)


NESTED = """
import time
from merkl import task

RAN = []

@task
def base(i):
    RAN.append(i)
    return i * 10

@task
def reader(value, i):
    time.sleep(0.3)  # the coordinator stored base(i) and is idle, waiting for this body
    return base(i).get() + value  # nested: the lease of base(i) is this process's own
"""


def test_a_body_reading_an_output_its_own_run_just_stored_does_not_deadlock(
    repo: Repo,
) -> None:
    write_module(repo.root, "nestedpipe", NESTED)
    pipe = import_fresh(repo.root, "nestedpipe")
    results: list[object] = []

    def run() -> None:
        with use_session(Session(repo)):
            targets = [pipe.reader(pipe.base(i), i) for i in range(3)]
            results.extend(evaluate(targets, executor="threads"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "deadlocked on a lease its own process holds"
    assert results == [0, 20, 40]
    assert sorted(pipe.RAN) == [0, 1, 2]  # the nested reads loaded base(i): run once each


def _take_in_thread(take: Callable[[], object]) -> threading.Thread:
    """A thread running `take` (a blocking lease), started; alive while it waits."""
    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    thread.join(timeout=0.3)
    return thread


@pytest.mark.skipif(not LeaseFile.SHARED_FILES, reason="byte-range leases on one file: Linux")
def test_many_leases_of_one_run_share_a_few_open_files(repo: Repo) -> None:
    leases = os.path.realpath(repo.dot_dir / "leases")

    def open_on_ranges() -> int:
        """How many of this process's open files are ranges files."""
        fds = Path("/proc/self/fd").iterdir()
        return sum(1 for fd in fds if os.path.dirname(os.path.realpath(fd)) == leases)

    file = LeaseFile(repo.dot_dir)
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(1000)]
    held = [file.take(out_hash) for out_hash in hashes]
    assert open_on_ranges() == len({int(h[:15], 16) % RANGE_SHARDS for h in hashes}) <= 256
    for lease in held:
        assert lease is not None
        lease.release()
    assert open_on_ranges() == 0  # closed with its last lease


def test_a_run_holding_leases_on_one_file_excludes_other_threads(repo: Repo) -> None:
    ours, other = "ab" * 32, "cd" * 32
    file = LeaseFile(repo.dot_dir)
    first, second = file.take(ours), file.take(other)
    assert first is not None
    assert second is not None
    # Another thread's lease (its own open file), and another thread's run, wait for ours.
    taken: list[Lease] = []
    waiter = _take_in_thread(lambda: taken.append(take_lease(repo.dot_dir, ours)))
    other_run = LeaseFile(repo.dot_dir)
    assert other_run.take(other, wait=False) is None
    assert waiter.is_alive()
    first.release()  # one byte unlocked: the other stays held
    waiter.join(timeout=10)
    assert len(taken) == 1
    assert other_run.take(other, wait=False) is None
    run_waiter = _take_in_thread(lambda: taken.append(other_run.take(other) or first))
    assert run_waiter.is_alive()
    second.release()
    run_waiter.join(timeout=10)
    assert len(taken) == 2
    # And the other way round: a held `take_lease` keeps a run out.
    assert file.take(ours, wait=False) is None
    taken[0].release()
    again = file.take(ours, wait=False)
    assert again is not None
    again.release()
    taken[1].release()


MANY = """
import hashlib
import os
from merkl import task

@task
def square(i):
    with open(os.environ["LEASE_TEST_LOG"], "a") as log:
        log.write(f"square{i} {os.getpid()}\\n")
    return i * i

def root(n):
    return [square(i) for i in range(n)]
"""

LOW_LIMIT = """
import resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))  # soft and hard: cannot be raised
root, go, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, str(root))
import manypipe
from merkl.evaluation import evaluate
from merkl.executors import get_executor
from merkl.repo import Repo
from merkl.session import Session, use_session
executor = get_executor("dask", jobs=1)
while not go.exists():
    time.sleep(0.01)
with use_session(Session(Repo(root))):
    print(sum(evaluate(manypipe.root(n), executor=executor)))
"""


def test_dask_leases_every_call_beyond_the_open_file_limit(
    repo: Repo, log: Path, tmp_path: Path
) -> None:
    n = 1000
    write_module(repo.root, "manypipe", MANY)
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(repo.root)]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LOW_LIMIT, str(repo.root), str(go), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.split() == [str(sum(i * i for i in range(n)))]
        assert "open-file limit" not in err, err
    assert runs(log) == sorted(f"square{i}" for i in range(n))
