"""A pipeline whose bodies log each run, and processes that evaluate it (compute-once tests).

Every body appends `name pid` to the file `$LEASE_TEST_LOG`; when `slow-once` exists beside
that file, the first body to see it deletes it and hangs (a lease holder to kill). Importing the
pipeline waits for the file `$LEASE_TEST_GO`, if set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO_ROOT, write_module

MODULE = "leasepipe"
PIPELINE = """
import os, time
from pathlib import Path

LOG = Path(os.environ["LEASE_TEST_LOG"])
SLOW_ONCE = LOG.with_name("slow-once")
GO = os.environ.get("LEASE_TEST_GO")  # `merkl run`s start together once this file exists
while GO and not Path(GO).exists():
    time.sleep(0.01)

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
executor = None
if len(sys.argv) > 4:  # an executor and its number of workers
    from merkl.executors import get_executor
    executor = get_executor(sys.argv[4], jobs=int(sys.argv[5]))
with use_session(Session(Repo(root))):
    print(evaluate([leasepipe.root(int(sys.argv[3]))], executor=executor)[0])
"""


def write_pipeline(root: Path) -> None:
    write_module(root, MODULE, PIPELINE)


def expected(width: int) -> int:
    return sum(i * i for i in range(width))


def all_bodies(width: int) -> list[str]:
    """Each body of `root(width)` once, as `runs` lists them."""
    return sorted(["total"] + [f"leaf{i}" for i in range(width)])


def start(
    root: Path, go: Path, log: Path, width: int, executor: str | None = None, jobs: int = 2
) -> subprocess.Popen[str]:
    """A process that evaluates `root(width)` in the repository at `root` once `go` exists
    (on `executor` with `jobs` workers, or in-process)."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(root)]),
        LEASE_TEST_LOG=str(log),
    )
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(go), str(width)]
        + ([executor, str(jobs)] if executor else []),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_merkl_run(
    root: Path, go: Path, log: Path, width: int, executor: str, jobs: int = 2
) -> subprocess.Popen[str]:
    """`merkl run --executor EXECUTOR --jobs JOBS leasepipe.root WIDTH` in the repository at
    `root`; the pipeline's import waits for `go`."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "src"), str(root)]),
        LEASE_TEST_LOG=str(log),
        LEASE_TEST_GO=str(go),
    )
    command = [sys.executable, "-m", "merkl", "run", "--executor", executor, "--jobs", str(jobs)]
    return subprocess.Popen(
        [*command, f"{MODULE}.root", str(width)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def runs(log: Path) -> list[str]:
    """The bodies that ran, one name per run, sorted."""
    return sorted(line.split()[0] for line in log.read_text().splitlines()) if log.exists() else []


def wait_until_hanging(slow_once: Path, holder: subprocess.Popen[str]) -> None:
    """Wait (at most 60 s) until `holder` took the `slow-once` flag: it hangs inside a body."""
    deadline = time.monotonic() + 60
    while slow_once.exists():
        assert time.monotonic() < deadline
        assert holder.poll() is None
        time.sleep(0.02)


def kill_and_time_takeover(
    holder: subprocess.Popen[str], waiter: subprocess.Popen[str]
) -> tuple[str, str, float]:
    """SIGKILL the lease holder; the waiter's stdout, stderr and seconds until it finished."""
    holder.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    out, err = waiter.communicate(timeout=60)
    took_over = time.monotonic() - killed
    holder.communicate()
    return out, err, took_over
