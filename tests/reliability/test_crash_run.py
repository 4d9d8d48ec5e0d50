"""Crash safety of `merkl run`: SIGKILL at random moments and at every file-system mutation.

After every crash: `merkl verify` finds no error (leftover temporary files and orphaned objects
are notices), the `-0` output file is absent or complete, and a re-run returns the right value.
"""

from __future__ import annotations

import ast
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import blake3
import orjson
import pytest

from merkl.ops.verify import VerifyReport, verify
from merkl.repo import Repo
from tests.helpers import run_cli, write_module
from tests.reliability.crashpoint import child_env, crash_at

ITERATIONS = int(os.environ.get("MERKL_TEST_CRASH_ITERATIONS", "48"))
SEED = int(os.environ.get("MERKL_TEST_CRASH_SEED", "20261123"))

PIPELINE = """
    import sys

    import blake3
    from merkl import BytesSerializer, task

    def started(name):
        print(f"body {name}", file=sys.stderr, flush=True)

    @task(serializers=BytesSerializer())
    def chunk(seed, i, mib):
        started("chunk")
        return blake3.blake3(f"{seed}:{i}".encode()).digest(length=mib << 20)

    @task
    def digest(data):
        started("digest")
        return blake3.blake3(data).hexdigest()

    @task
    def numbers(seed, n):
        started("numbers")
        return [(seed * 7919 + k * 104729) % 1000003 for k in range(n)]

    @task
    def combine(digests, nums):
        started("combine")
        return {"digests": digests, "total": sum(nums), "count": len(nums)}

    def pipeline(seed: int, parts: int = 4, mib: int = 4, n: int = 200000):
        chunks = [chunk(seed, i, mib) for i in range(parts)]
        return combine([digest(c) for c in chunks], numbers(seed, n))
"""


def expected(seed: int, parts: int, mib: int, n: int) -> dict[str, object]:
    """The pipeline's value, computed here without merkl."""
    digests = [
        blake3.blake3(blake3.blake3(f"{seed}:{i}".encode()).digest(length=mib << 20)).hexdigest()
        for i in range(parts)
    ]
    nums = [(seed * 7919 + k * 104729) % 1000003 for k in range(n)]
    return {"digests": digests, "total": sum(nums), "count": n}


def _assert_recovered(
    repo: Repo,
    args: list[str],
    want: dict[str, object],
    before: object = None,
    report: VerifyReport | None = None,
) -> None:
    """No verify errors, the output file absent or whole (`before` or `want`), and a re-run
    gives `want`."""
    report = report or verify(repo)
    assert report.ok, [f for f in report.findings if f.is_error]
    out_file = repo.root / "out" / "result.json"
    if out_file.exists():
        assert orjson.loads(out_file.read_bytes()) in (before, want)  # never partial
    result = run_cli("run", "crashpipe.pipeline", *args, "-0", "out/result.json")
    assert result.code == 0, result.err
    assert ast.literal_eval(result.out.splitlines()[-1]) == want
    assert orjson.loads(out_file.read_bytes()) == want


@pytest.fixture
def crash_repo(repo: Repo) -> Repo:
    write_module(repo.root, "crashpipe", PIPELINE)
    return repo


def test_kill9_at_random_moments(crash_repo):
    """Start runs writing 8 MiB of outputs each and SIGKILL them at seeded random moments.

    A moment is "after the r-th task body started, plus 0-60 ms" (each body announces itself
    on stderr), so kills spread over every stage of a run however loaded the machine is.
    """
    repo = crash_repo
    rng = random.Random(SEED)
    cmd = [sys.executable, "-m", "merkl", "run", "crashpipe.pipeline"]
    stats = {"killed": 0, "finished": 0, "tmp_left": 0, "orphans_left": 0, "out_tmp_left": 0}
    orphans: set[str] = set()
    last_want: object = None  # what out/result.json holds from the iteration before
    for iteration in range(ITERATIONS):
        # Every 4th run repeats the previous seed: that kill meets a partially filled cache.
        seed = iteration - 1 if iteration % 4 == 3 else iteration
        args = [str(seed), "8", "1", "200000"]
        proc = subprocess.Popen(
            [*cmd, *args, "-0", "out/result.json"],
            cwd=repo.root,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        for _ in range(rng.randint(0, 18)):  # 18 bodies: 8 chunks, 8 digests, numbers, combine
            if not proc.stderr.readline():
                break
        time.sleep(rng.uniform(0, 0.06))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            stats["killed"] += 1
        else:
            stats["finished"] += 1
        proc.communicate()
        report = verify(repo)
        stats["tmp_left"] += len(report.of_kind("temp-file"))
        new_orphans = {f.subject for f in report.of_kind("orphaned-object")} - orphans
        stats["orphans_left"] += len(new_orphans)
        orphans |= new_orphans
        stats["out_tmp_left"] += len(list((repo.root / "out").glob(".result.json.*")))
        want = expected(seed, 8, 1, 200000)
        _assert_recovered(repo, args, want, last_want, report)
        last_want = want
        for leftover in (repo.root / "out").glob(".result.json.*"):
            leftover.unlink()  # keep the per-iteration count honest
        shutil.rmtree(repo.tmp_dir, ignore_errors=True)  # likewise for the store's temp files
    print(f"\nkill -9 during merkl run: {ITERATIONS} iterations, {stats}")
    assert stats["killed"] >= ITERATIONS // 2  # the schedule must actually interrupt runs


def test_crash_at_every_mutation_point(crash_repo):
    """SIGKILL at the 1st, 2nd, … K-th file-system change of a run, each from a fresh cache."""
    repo = crash_repo
    args = ["7", "3", "1", "1000"]
    want = expected(7, 3, 1, 1000)
    argv = ["run", "crashpipe.pipeline", *args, "-0", "out/result.json"]

    def fresh() -> None:
        shutil.rmtree(repo.dot_dir)
        shutil.rmtree(repo.root / "out", ignore_errors=True)
        Repo.init(repo.root)

    fresh()
    full = crash_at(0, argv, repo.root)
    assert full.exit_code == 0, full.stderr
    assert full.mutations >= 20
    for point in range(1, full.mutations + 1):
        fresh()
        crashed = crash_at(point, argv, repo.root)
        assert crashed.killed, point
        _assert_recovered(repo, args, want)
        assert verify(repo).ok
    print(f"\ncrash points in merkl run: {full.mutations}, all recovered")
