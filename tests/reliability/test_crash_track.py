"""Crash safety of `merkl track`: SIGKILL at every file-system mutation and at random moments.

The user's data must survive any crash: every tracked file still reads back its original bytes
at its own path, `merkl verify` finds no error, and running `merkl track` again finishes the job.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from merkl.ops.verify import verify
from merkl.repo import Repo
from tests.helpers import run_cli
from tests.reliability.crashpoint import child_env, crash_at

SEED = int(os.environ.get("MERKL_TEST_CRASH_SEED", "20261123"))
ITERATIONS = int(os.environ.get("MERKL_TEST_CRASH_TRACK_ITERATIONS", "24"))


def _make_data(root: Path, rng: random.Random, big_mib: int, members: int) -> dict[str, bytes]:
    """A big file and a directory of small files; returns relative path → content."""
    content = {"data/big.bin": rng.randbytes(big_mib << 20)}
    for i in range(members):
        content[f"data/set/part{i:02d}.csv"] = f"{i},{rng.random()}\n".encode() * 50
    for rel, data in content.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return content


def _assert_data_intact(repo: Repo, content: dict[str, bytes], where: str) -> None:
    lost = []
    for rel, data in content.items():
        path = repo.root / rel
        try:
            if path.read_bytes() != data:
                lost.append(f"{rel}: different bytes")
        except OSError as exc:
            lost.append(f"{rel}: {exc.strerror}")
    assert not lost, f"{where}: user data lost: {lost}"


def _assert_finishes(repo: Repo, content: dict[str, bytes], where: str) -> None:
    report = verify(repo)
    assert report.ok, (where, [f for f in report.findings if f.is_error])
    again = run_cli("track", "data/big.bin", "data/set")
    assert again.code == 0, (where, again.err)
    _assert_data_intact(repo, content, f"{where}, after re-tracking")
    status = run_cli("status")
    assert status.code == 0, (where, status.out, status.err)
    assert verify(repo).ok


@pytest.mark.parametrize("link_type", ["symlink", "hardlink", "copy"])
def test_crash_at_every_mutation_point_of_track(repo, link_type):
    argv = ["track", "data/big.bin", "data/set"]

    def fresh() -> dict[str, bytes]:
        for name in (".merkl", "data"):
            shutil.rmtree(repo.root / name, ignore_errors=True)
        (repo.root / ".gitignore").unlink(missing_ok=True)
        Repo.init(repo.root)
        (repo.root / "merkl.toml").write_text(f'[core]\nlink = "{link_type}"\n')
        return _make_data(repo.root, random.Random(SEED), 1, 3)

    fresh()
    full = crash_at(0, argv, repo.root)
    assert full.exit_code == 0, full.stderr
    assert full.mutations >= 8
    failures = []
    for point in range(1, full.mutations + 1):
        content = fresh()
        assert crash_at(point, argv, repo.root).killed, point
        try:
            _assert_data_intact(repo, content, f"crash at mutation {point}")
            _assert_finishes(repo, content, f"crash at mutation {point}")
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    print(
        f"\ncrash points in merkl track ({link_type}): {full.mutations}, failures: {len(failures)}"
    )
    assert not failures, failures


_READY_THEN_RUN = (
    "import sys; from merkl.cli import main; print('ready', file=sys.stderr, flush=True); "
    "sys.exit(main(sys.argv[1:]))"
)


def test_kill9_track_at_random_moments(repo):
    """`merkl track` of an 8 MiB file and a 40-file folder, SIGKILLed at seeded random times
    measured from when the command starts working (so loaded machines still hit the work)."""
    rng = random.Random(SEED + 1)
    stats = {"killed": 0, "finished": 0}
    # The shortest observed time from "ready" to exit: a run slowed by a load spike must not
    # stretch the sleeps of every later run past the end of the work.
    work = 0.0
    for iteration in range(ITERATIONS):
        shutil.rmtree(repo.root / "data", ignore_errors=True)
        content = _make_data(repo.root, rng, 8, 40)
        proc = subprocess.Popen(
            [sys.executable, "-c", _READY_THEN_RUN, "track", "data/big.bin", "data/set"],
            cwd=repo.root,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        assert proc.stderr.readline() == b"ready\n"
        ready = time.perf_counter()
        if iteration > 0:  # the first run measures how long the work takes
            time.sleep(rng.uniform(0, work * 1.2))
        if proc.poll() is None and iteration > 0:
            proc.send_signal(signal.SIGKILL)
            stats["killed"] += 1
        else:
            stats["finished"] += 1
        proc.communicate()
        if proc.returncode == 0:
            elapsed = time.perf_counter() - ready
            work = elapsed if work == 0.0 else min(work, elapsed)
        where = f"iteration {iteration}"
        _assert_data_intact(repo, content, where)
        _assert_finishes(repo, content, where)
        assert run_cli("untrack", "data/big.bin", "data/set").code == 0
        assert run_cli("gc").code == 0  # keeps the store (and each verify) small
    print(f"\nkill -9 during merkl track: {ITERATIONS} iterations, {stats}")
    assert stats["killed"] >= ITERATIONS // 2


def _tracked_fixture(repo: Repo) -> dict[str, bytes]:
    """Fresh repo with data/big.bin and data/set tracked, an orphan and a cached output."""
    for name in (".merkl", "data"):
        shutil.rmtree(repo.root / name, ignore_errors=True)
    (repo.root / ".gitignore").unlink(missing_ok=True)
    Repo.init(repo.root)
    content = _make_data(repo.root, random.Random(SEED), 1, 3)
    assert run_cli("track", "data/big.bin", "data/set").code == 0
    repo.store.put_bytes(b"an orphaned object for gc to delete")
    return content


def _setup_checkout(repo: Repo) -> dict[str, bytes]:
    content = _tracked_fixture(repo)
    (repo.root / "data" / "big.bin").unlink()
    shutil.rmtree(repo.root / "data" / "set")
    return content


@pytest.mark.parametrize(
    ("argv", "setup", "data_must_survive"),
    [
        (["checkout"], _setup_checkout, False),  # nothing to lose: the files were deleted
        (["untrack", "data/big.bin", "data/set"], _tracked_fixture, True),
        (["gc"], _tracked_fixture, True),
    ],
    ids=["checkout", "untrack", "gc"],
)
def test_crash_at_every_mutation_point_of(repo, argv, setup, data_must_survive):
    setup(repo)
    full = crash_at(0, argv, repo.root)
    assert full.exit_code == 0, full.stderr
    failures = []
    for point in range(1, full.mutations + 1):
        content = setup(repo)
        assert crash_at(point, argv, repo.root).killed, point
        where = f"{argv[0]}: crash at mutation {point}"
        try:
            if data_must_survive:
                _assert_data_intact(repo, content, where)
            report = verify(repo)
            assert report.ok, (where, [f for f in report.findings if f.is_error])
            rerun = argv
            if argv[0] == "untrack":  # what is still tracked; what is not needs nothing
                rerun = ["untrack", *(p for p in argv[1:] if (repo.root / f"{p}.merkl").exists())]
            again = run_cli(*rerun) if rerun[1:] or argv[0] != "untrack" else None
            assert again is None or again.code == 0, (where, again.err)
            _assert_data_intact(repo, content, f"{where}, after running it again")
            if argv[0] == "untrack":  # plain files now: a later gc must not take them away
                assert not any((repo.root / rel).is_symlink() for rel in content), where
                assert run_cli("gc").code == 0
                _assert_data_intact(repo, content, f"{where}, after gc")
            assert verify(repo).ok
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    print(f"\ncrash points in merkl {argv[0]}: {full.mutations}, failures: {len(failures)}")
    assert not failures, failures
