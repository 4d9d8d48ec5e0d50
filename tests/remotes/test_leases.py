"""Compute once across clones: two clones share a remote with `lease = true`.

Real processes, a real Redis, PostgreSQL and MariaDB; the task bodies of every clone log their
runs to one file (`tests.lease_helpers`), so the log counts how often each body ran anywhere.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from merkl.errors import ConfigError, MerklWarning
from merkl.evaluation import evaluate
from merkl.remotes.config import get_remote, remote_configs
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
    start_merkl_run,
    wait_until_hanging,
    write_pipeline,
)
from tests.remotes.conftest import REDIS_URL

KINDS = ["redis", "postgres", "mysql"]

WIDTH = 6
EXPECTED = expected(WIDTH)
ALL_BODIES = all_bodies(WIDTH)


@pytest.fixture(params=KINDS)
def shared(request: pytest.FixtureRequest) -> str:
    """The `[remotes.origin]` lines of a fresh shared remote of each kind with leases."""
    if request.param == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        return f'url = "{REDIS_URL}"\nprefix = "{prefix}"\n'
    if request.param == "postgres":
        url, schema = request.getfixturevalue("postgres_schema")
        return f'url = "{url}"\nschema = "{schema}"\n'
    return f'url = "{request.getfixturevalue("mysql_database")}"\n'


def _clone(folder: Path, shared: str, ttl: float) -> Repo:
    folder.mkdir()
    repo = Repo.init(folder)
    (folder / "merkl.toml").write_text(
        f"[remotes.origin]\n{shared}read_through = true\nlease = true\nlease_ttl = {ttl}\n"
    )
    write_pipeline(folder)
    remote = get_remote(repo, "origin")
    remote.prepare(write=True)  # a remote someone pushed to (SQL: its table exists)
    remote.close()
    return repo


def _each_body_ran_once(procs: list[subprocess.Popen[str]], log: Path) -> None:
    """Every process printed the result, without a warning, and each body ran once in all."""
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.split() == [str(EXPECTED)]
        assert "Warning" not in err, err
    assert runs(log) == ALL_BODIES


def test_two_clones_sharing_a_remote_compute_once(shared: str, tmp_path: Path) -> None:
    clones = [_clone(tmp_path / name, shared, 5) for name in ("a", "b")]
    go, log = tmp_path / "go", tmp_path / "ran.log"
    procs = [start(repo.root, go, log, WIDTH) for repo in clones for _ in range(2)]
    go.touch()
    _each_body_ran_once(procs, log)


@pytest.mark.parametrize("executors", [("threads", "processes"), ("dask", "threads")])
def test_two_clones_running_on_executors_sharing_redis_compute_once(
    redis_prefix: str, tmp_path: Path, executors: tuple[str, str]
) -> None:
    shared = f'url = "{REDIS_URL}"\nprefix = "{redis_prefix}"\n'
    clones = [_clone(tmp_path / name, shared, 5) for name in ("a", "b")]
    go, log = tmp_path / "go", tmp_path / "ran.log"
    procs = [
        start_merkl_run(repo.root, go, log, WIDTH, executor)
        for repo, executor in zip(clones, executors, strict=True)
    ]
    go.touch()  # each waits for it as it imports the pipeline
    _each_body_ran_once(procs, log)


def test_a_killed_holder_in_another_clone_expires_and_is_taken_over(
    shared: str, tmp_path: Path
) -> None:
    ttl = 1.0
    first, second = (_clone(tmp_path / name, shared, ttl) for name in ("a", "b"))
    go, log = tmp_path / "go", tmp_path / "ran.log"
    (tmp_path / "slow-once").touch()
    go.touch()
    holder = start(first.root, go, log, WIDTH)
    wait_until_hanging(tmp_path / "slow-once", holder)  # inside leaf(0), renewing its lease
    waiter = start(second.root, go, log, WIDTH)
    time.sleep(3 * ttl + 2)  # longer than the ttl: renewal keeps the lease
    assert waiter.poll() is None, waiter.communicate()
    assert runs(log) == ["leaf0"]
    out, err, took_over = kill_and_time_takeover(holder, waiter)
    assert waiter.returncode == 0, err
    assert out.split() == [str(EXPECTED)]
    assert took_over < 2 * ttl + 1.0, took_over  # expiry, one poll, then six short bodies
    print(
        f"\nremote lease: waiter done {took_over:.2f} s after kill -9 of the holder (ttl {ttl} s)"
    )
    assert runs(log) == sorted(["leaf0", *ALL_BODIES])


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
    write_pipeline(repo.root)
    log = tmp_path / "ran.log"
    monkeypatch.setenv("LEASE_TEST_LOG", str(log))
    pipe = import_fresh(repo.root, MODULE)
    with use_session(Session(repo)), pytest.warns(MerklWarning) as caught:
        assert evaluate([pipe.root(WIDTH)]) == [EXPECTED]
    leases = [str(w.message) for w in caught if "leases on remote" in str(w.message)]
    assert len(leases) == 1, leases
    assert "has no leases (Redis and SQL remotes have them)" in leases[0]
    assert runs(log) == ALL_BODIES
