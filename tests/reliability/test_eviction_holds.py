"""Bounded caches with real processes: an eviction never deletes an output that a running
`merkl run` or library evaluation is about to read, and library evaluations evict too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.helpers import REPO_ROOT, run_merkl_process, write_module

TASKS = """
import os, time
from pathlib import Path
from merkl import task, CachePolicy

LOG = Path(__file__).with_name("ran.log")

def ran(name):
    with open(LOG, "a") as log:
        log.write(name + "\\n")

@task
def blob(n):
    ran(f"blob{n}")
    return "x" * 1000 + str(n)

@task(cache_policy=CachePolicy.NEVER)
def pause(n):
    ran(f"pause{n}")
    Path(__file__).with_name("paused").touch()
    time.sleep(float(os.environ.get("PAUSE", "0")))
    return n

@task
def combine(p, b):
    return len(b) + p

def reads(n: int):
    return combine(pause(n), blob(n))

def one(n: int):
    return blob(n)
"""

# A library evaluation (no merkl command): `python -c LIBRARY ROOT TARGET ARG...`.
LIBRARY = """
import sys
sys.path.insert(0, sys.argv[1])
import tasks
from merkl import evaluate
target = getattr(tasks, sys.argv[2])
print(evaluate([target(int(n)) for n in sys.argv[3:]]))
"""


def env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])
    return dict(os.environ, PYTHONPATH=path, **extra)


def library(root: Path, target: str, *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LIBRARY, str(root), target, *args],
        cwd=root,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli(root: Path, *argv: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "merkl", *argv],
        cwd=root,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def ran(root: Path) -> list[str]:
    log = root / "ran.log"
    return log.read_text().split() if log.exists() else []


def cached(root: Path) -> set[str]:
    return {e.out_hash for e in Repo(root).index.iter_outputs()}


@pytest.mark.parametrize("reader", ["merkl run", "library"])
def test_an_output_a_running_evaluation_will_read_is_never_evicted(
    repo: Repo, reader: str
) -> None:
    root = repo.root
    write_module(root, "tasks", TASKS)
    finish(cli(root, "run", "tasks.one", "1"))  # blob(1) is cached
    (root / "merkl.toml").write_text('[cache]\nmax_size = "0B"\n')
    # The reader plans blob(1) as cached, then pauses before it loads it.
    if reader == "library":
        running = library(root, "reads", "1", PAUSE="4")
    else:
        running = cli(root, "run", "tasks.reads", "1", PAUSE="4")
    deadline = time.monotonic() + 60
    while not (root / "paused").exists():
        assert time.monotonic() < deadline
        assert running.poll() is None, running.communicate()
        time.sleep(0.02)
    # Meanwhile: a command clearing the task, and a library run over the limit.
    clear = run_merkl_process("cache", "clear", "--task", "tasks.blob", cwd=root, env=env())
    assert clear.code == 1
    assert "another merkl command holds the repository" in clear.err
    finish(library(root, "one", "2"))  # computes blob(2): its eviction must skip
    assert running.poll() is None  # still pausing: the evictions did not wait for it
    assert "1002" in finish(running)  # len(blob(1)) + 1, read from the cache
    assert ran(root) == ["blob1", "pause1", "blob2"]  # blob(1) was never computed again
    # Once nothing runs, the limit applies.
    finish(library(root, "one", "3"))
    assert ran(root)[-1] == "blob3"
    assert cached(root) == set()


def test_a_library_process_evicts_to_the_limit(repo: Repo) -> None:
    root = repo.root
    write_module(root, "tasks", TASKS)
    (root / "merkl.toml").write_text('[cache]\nmax_size = "2500B"\n')
    # One process, three evaluations: the first checks at once, the others as it exits.
    script = LIBRARY.replace(
        "print(evaluate([target(int(n)) for n in sys.argv[3:]]))",
        "print([evaluate([target(int(n))]) for n in sys.argv[3:]])",
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(root), "one", "1", "2", "3"],
        cwd=root,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    index = Repo(root).index
    assert index.outputs_size() <= 2500
    assert len(cached(root)) == 2  # blob(1), least recently used, went
    finish(library(root, "one", "2", "3"))
    assert ran(root) == ["blob1", "blob2", "blob3"]  # 2 and 3 still cached
    finish(library(root, "one", "1"))
    assert ran(root)[-1] == "blob1"  # evicted: computed again
