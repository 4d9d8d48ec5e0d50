"""Compute once: concurrent runs of one repository compute each missing output once.

Real processes on one repository; every body appends a line to a log file, so the log counts
how often each body ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from merkl.evaluation import evaluate
from merkl.repo import Repo
from merkl.session import Session, use_session
from tests.helpers import REPO_ROOT, import_fresh, write_module

PIPELINE = """
import os, time
from pathlib import Path

LOG = Path(__file__).with_name("ran.log")
SLOW_ONCE = Path(__file__).with_name("slow-once")  # present: the first body to see it hangs

def ran(name):
    with open(LOG, "a") as log:
        log.write(f"{name} {os.getpid()}\\n")
    if SLOW_ONCE.exists():
        SLOW_ONCE.unlink()
        time.sleep(120)

from merkl import task

@task
def leaf(i):
    ran(f"leaf{i}")
    time.sleep(0.05)
    return i * i

@task
def total(parts):
    ran("total")
    return sum(parts)

def root(width):
    return total([leaf(i) for i in range(width)])
"""

CHILD = """
import sys, time
from pathlib import Path
root, go = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(root))
import leasepipe
from merkl.evaluation import evaluate
from merkl.repo import Repo
from merkl.session import Session, use_session
while not go.exists():
    time.sleep(0.01)
with use_session(Session(Repo(root))):
    print(evaluate([leasepipe.root(int(sys.argv[3]))])[0])
"""

WIDTH = 8
EXPECTED = sum(i * i for i in range(WIDTH))


def _start(repo: Repo, go: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(repo.root)]))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(repo.root), str(go), str(WIDTH)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(repo: Repo) -> list[str]:
    """The bodies that ran, one name per run."""
    log = repo.root / "ran.log"
    return sorted(line.split()[0] for line in log.read_text().splitlines()) if log.exists() else []


def test_four_processes_run_each_body_once(repo: Repo, tmp_path: Path) -> None:
    write_module(repo.root, "leasepipe", PIPELINE)
    go = tmp_path / "go"
    procs = [_start(repo, go) for _ in range(4)]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split() == [str(EXPECTED)]
    assert _runs(repo) == sorted(["total"] + [f"leaf{i}" for i in range(WIDTH)])
    assert not any((repo.dot_dir / "leases").iterdir())  # a lease file lives while held


def test_threads_of_one_process_run_each_body_once(repo: Repo) -> None:
    write_module(repo.root, "leasepipe", PIPELINE)
    pipe = import_fresh(repo.root, "leasepipe")
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
    assert results == [EXPECTED] * 6
    assert _runs(repo) == sorted(["total"] + [f"leaf{i}" for i in range(WIDTH)])


def test_a_killed_lease_holder_is_taken_over_at_once(repo: Repo, tmp_path: Path) -> None:
    write_module(repo.root, "leasepipe", PIPELINE)
    (repo.root / "slow-once").touch()
    go = tmp_path / "go"
    go.touch()
    holder = _start(repo, go)
    deadline = time.monotonic() + 60
    while (repo.root / "slow-once").exists():  # the holder is inside leaf(0), hanging
        assert time.monotonic() < deadline
        assert holder.poll() is None
        time.sleep(0.02)
    waiter = _start(repo, go)
    time.sleep(3)  # time to start and reach the lease on leaf(0)
    assert waiter.poll() is None, waiter.communicate()  # it waits, it does not compute
    assert _runs(repo) == ["leaf0"]
    holder.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    out, err = waiter.communicate(timeout=60)
    took_over = time.monotonic() - killed
    holder.communicate()
    assert waiter.returncode == 0, err
    assert out.split() == [str(EXPECTED)]
    # No heartbeat to wait out: the kernel drops a dead holder's flock at once.
    assert took_over < 2.0, took_over
    print(f"\nlocal lease: waiter done {took_over:.2f} s after kill -9 of the holder")
    assert _runs(repo) == sorted(["leaf0", "total"] + [f"leaf{i}" for i in range(WIDTH)])
