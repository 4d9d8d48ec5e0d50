"""Compute once across clones: two clones share a Redis remote with `lease = true`.

Real processes, a real Redis; the task bodies of every clone append to one log file, so the
log counts how often each body ran anywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merkl.errors import ConfigError, MerklWarning
from merkl.evaluation import evaluate
from merkl.remotes.config import remote_configs
from merkl.repo import Repo
from merkl.session import Session, use_session
from tests.helpers import REPO_ROOT, import_fresh, write_module
from tests.remotes.conftest import REDIS_URL

PIPELINE = """
import os, time
from pathlib import Path

LOG = Path(os.environ["LEASE_TEST_LOG"])
SLOW_ONCE = LOG.with_name("slow-once")  # present: the first body to see it hangs

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
import clonepipe
from merkl.evaluation import evaluate
from merkl.repo import Repo
from merkl.session import Session, use_session
while not go.exists():
    time.sleep(0.01)
with use_session(Session(Repo(root))):
    print(evaluate([clonepipe.root(int(sys.argv[3]))])[0])
"""

WIDTH = 6
EXPECTED = sum(i * i for i in range(WIDTH))
ALL_BODIES = sorted(["total"] + [f"leaf{i}" for i in range(WIDTH)])


def _clone(folder: Path, prefix: str, ttl: float) -> Repo:
    folder.mkdir()
    repo = Repo.init(folder)
    (folder / "merkl.toml").write_text(
        f'[remotes.origin]\nurl = "{REDIS_URL}"\nprefix = "{prefix}"\n'
        f"read_through = true\nlease = true\nlease_ttl = {ttl}\n"
    )
    write_module(folder, "clonepipe", PIPELINE)
    return repo


def _start(repo: Repo, go: Path, log: Path) -> subprocess.Popen[str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(repo.root)]),
        LEASE_TEST_LOG=str(log),
    )
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(repo.root), str(go), str(WIDTH)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(log: Path) -> list[str]:
    return sorted(line.split()[0] for line in log.read_text().splitlines()) if log.exists() else []


def test_two_clones_sharing_redis_compute_once(redis_prefix: str, tmp_path: Path) -> None:
    clones = [_clone(tmp_path / name, redis_prefix, 5) for name in ("a", "b")]
    go, log = tmp_path / "go", tmp_path / "ran.log"
    procs = [_start(repo, go, log) for repo in clones for _ in range(2)]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split() == [str(EXPECTED)]
        assert "Warning" not in err, err
    assert _runs(log) == ALL_BODIES


def test_a_killed_holder_in_another_clone_expires_and_is_taken_over(
    redis_prefix: str, tmp_path: Path
) -> None:
    ttl = 1.0
    first, second = (_clone(tmp_path / name, redis_prefix, ttl) for name in ("a", "b"))
    go, log = tmp_path / "go", tmp_path / "ran.log"
    (tmp_path / "slow-once").touch()
    go.touch()
    holder = _start(first, go, log)
    deadline = time.monotonic() + 60
    while (tmp_path / "slow-once").exists():  # the holder hangs inside leaf(0), renewing
        assert time.monotonic() < deadline
        assert holder.poll() is None
        time.sleep(0.02)
    waiter = _start(second, go, log)
    time.sleep(3 * ttl + 2)  # longer than the ttl: renewal keeps the lease
    assert waiter.poll() is None, waiter.communicate()
    assert _runs(log) == ["leaf0"]
    holder.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    out, err = waiter.communicate(timeout=60)
    took_over = time.monotonic() - killed
    holder.communicate()
    assert waiter.returncode == 0, err
    assert out.split() == [str(EXPECTED)]
    assert took_over < 2 * ttl + 1.0, took_over  # expiry, one poll, then six short bodies
    print(
        f"\nremote lease: waiter done {took_over:.2f} s after kill -9 of the holder (ttl {ttl} s)"
    )
    assert _runs(log) == sorted(["leaf0", *ALL_BODIES])


def test_lease_ttl_must_be_a_positive_number(tmp_path: Path) -> None:
    repo = Repo.init(tmp_path / "r")
    (repo.root / "merkl.toml").write_text(
        '[remotes.origin]\nurl = "/tmp/x"\nlease = true\nlease_ttl = "soon"\n'
    )
    with pytest.raises(ConfigError, match=r"remotes.origin.lease_ttl must be a positive number"):
        remote_configs(repo)


def test_lease_on_a_kind_without_leases_warns_once_and_computes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repo.init(tmp_path / "r")
    (repo.root / "merkl.toml").write_text(
        f'[remotes.origin]\nurl = "{tmp_path / "remote"}"\nread_through = true\nlease = true\n'
    )
    write_module(repo.root, "clonepipe", PIPELINE)
    log = tmp_path / "ran.log"
    monkeypatch.setenv("LEASE_TEST_LOG", str(log))
    pipe = import_fresh(repo.root, "clonepipe")
    with use_session(Session(repo)), pytest.warns(MerklWarning) as caught:
        assert evaluate([pipe.root(WIDTH)]) == [EXPECTED]
    leases = [str(w.message) for w in caught if "leases on remote" in str(w.message)]
    assert len(leases) == 1, leases
    assert "has no leases (Redis remotes have them)" in leases[0]
    assert _runs(log) == ALL_BODIES
