"""`--worker-remote` on a LocalCluster at scale: 100,000 tasks in chunks, and values that move
from worker to worker (not through the driver, not back from the remote)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from merkl.repo import Repo
from tests.helpers import run_merkl_process, write_module

pytestmark = pytest.mark.slow

STRESS = """
    from merkl import task

    @task
    def leaf(g, i):
        return g * 1000 + i

    @task
    def total(values):
        return sum(values)

    def pipeline(groups: int, leaves: int):
        return total([total([leaf(g, i) for i in range(leaves)]) for g in range(groups)])
"""


@pytest.fixture
def redis_remote(repo: Repo) -> Iterator[str]:
    """A Redis remote `shared` under a key prefix of its own, deleted afterwards (Redis: one
    round trip per batch of writes, where a directory remote creates two files per output)."""
    import redis

    url = os.environ.get("MERKL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"merkl-test-chunks-{uuid.uuid4().hex[:8]}:"
    with (repo.root / "merkl.toml").open("a") as config:
        config.write(f'\n[remotes.shared]\nurl = "{url}"\nprefix = "{prefix}"\n')
    yield prefix
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=5000))
    for start in range(0, len(keys), 5000):
        client.delete(*keys[start : start + 5000])


def test_a_hundred_thousand_tasks_on_a_local_cluster(repo: Repo, redis_remote: str) -> None:
    import redis

    write_module(repo.root, "stress_tasks", STRESS)
    run = ("run", "--executor", "dask", "-j", "2", "--worker-remote", "shared", "-q")
    start = time.perf_counter()
    result = run_merkl_process(*run, "stress_tasks.pipeline", "100", "1000", cwd=repo.root)
    seconds = time.perf_counter() - start
    assert result.code == 0, result.err
    assert result.out.split()[-1] == str(sum(range(100_000)))
    assert "100101 task(s) run" in result.err
    print(f"100,101 tasks with --worker-remote on a LocalCluster of 2: {seconds:.1f} s")
    with sqlite3.connect(repo.dot_dir / "index.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM outputs").fetchone()[0] == 100_101
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 100_101
    client = redis.Redis.from_url(
        os.environ.get("MERKL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    records = sum(1 for _ in client.scan_iter(match=redis_remote + "outputs/*", count=5000))
    assert records == 100_101

    again = run_merkl_process(*run, "stress_tasks.pipeline", "100", "1000", cwd=repo.root)
    assert again.code == 0, again.err
    assert again.out.split()[-1] == str(sum(range(100_000)))
    assert "0 task(s) run" in again.err


SHARDS = """
    import hashlib
    import os
    import time
    from pathlib import Path

    from merkl import task
    from merkl.serializers import BytesSerializer

    MIB = {mib}
    BARRIER = Path({barrier!r})

    @task(serializers=BytesSerializer())
    def shard(i):
        # Wait until both workers run a shard, so the consumer reads some from another worker.
        (BARRIER / str(os.getpid())).touch()
        deadline = time.monotonic() + 30
        while len(list(BARRIER.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return bytes([i]) * (MIB << 20)

    @task
    def digest(shards):
        return [hashlib.sha256(s).hexdigest()[:16] for s in shards]

    def pipeline(n):
        return digest([shard(i) for i in range(n)])
"""

# The driver: its own LocalCluster of 2 workers; prints its peak RSS, the workers that ran a
# shard and the chunk outputs each worker received from another one.
DRIVER = """
import json, logging, resource, sys
sys.path.insert(0, ".")

if __name__ == "__main__":
    import distributed
    import merkl
    from merkl.executors.dask import DaskExecutor
    import shard_tasks

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    with cluster, distributed.Client(cluster) as client:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        executor = DaskExecutor(client=client, worker_remote="shared")
        (value,) = merkl.evaluate([shard_tasks.pipeline(int(sys.argv[1]))], executor=executor)
        moved = client.run(
            lambda dask_worker: sorted(
                key for entry in dask_worker.transfer_incoming_log for key in entry["keys"]
            )
        )
    print(json.dumps({
        "value": value,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "moved": moved,
        "before_mib": before,
    }))
"""


def test_dependents_read_values_from_the_worker_that_holds_them(
    repo: Repo, tmp_path: Path
) -> None:
    import hashlib

    n, mib = 8, 24
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    write_module(repo.root, "shard_tasks", SHARDS.format(mib=mib, barrier=str(barrier)))
    (repo.root / "driver.py").write_text(DRIVER)
    remote = tmp_path / "shared"
    assert run_merkl_process("remote", "add", "shared", str(remote), cwd=repo.root).code == 0
    done = subprocess.run(
        [sys.executable, "driver.py", str(n)],
        cwd=repo.root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    expected = [hashlib.sha256(bytes([i]) * (mib << 20)).hexdigest()[:16] for i in range(n)]
    assert report["value"] == expected
    assert len(list(barrier.iterdir())) == 2  # shards ran on both workers
    moved = [key for keys in report["moved"].values() for key in keys]
    assert any(key.startswith("merkl-chunk-") for key in moved), report["moved"]
    # The driver held neither the shards (8 x 24 MiB) nor a copy of them: its peak grows by
    # less than three shards during the run (its size at rest varies with the environment).
    growth = report["peak_mib"] - report["before_mib"]
    print(f"driver peak RSS: {report['peak_mib']} MiB, +{growth} during the run ({n} x {mib} MiB)")
    assert growth < 3 * mib, report


SMALL = """
    from merkl import task

    @task
    def square(x):
        return x * x

    @task
    def add(values):
        return sum(values)

    def pipeline(n: int):
        return add([square(i) for i in range(n)])
"""

GET = """
import sys
sys.path.insert(0, ".")
import small_tasks
print(small_tasks.square(3).get())
"""


def test_the_index_says_which_remote_holds_an_output(repo: Repo, tmp_path: Path) -> None:
    write_module(repo.root, "small_tasks", SMALL)
    remote = tmp_path / "shared"
    assert run_merkl_process("remote", "add", "shared", str(remote), cwd=repo.root).code == 0
    run = ("run", "--executor", "dask", "-j", "2", "--worker-remote", "shared", "-q")
    result = run_merkl_process(*run, "small_tasks.pipeline", "4", cwd=repo.root)
    assert result.code == 0, result.err
    assert result.out.split()[-1] == "14"

    index = Repo(repo.root).index
    entries = list(index.iter_outputs())
    assert len(entries) == 5
    only_remote = [e for e in entries if not repo.store.has(e.oid)]
    assert len(only_remote) == 4  # the squares; the result was fetched here
    assert {e.remote for e in only_remote} == {"shared"}

    # verify: not missing, a notice naming the remote; --repair keeps them.
    for argv in (("verify",), ("verify", "--repair")):
        checked = run_merkl_process(*argv, cwd=repo.root)
        assert checked.code == 0, checked.out + checked.err
        assert "remote-only cached outputs: 4" in checked.out
        assert "on remote shared" in checked.out
        assert "missing" not in checked.out
    assert len(list(Repo(repo.root).index.iter_outputs())) == 5
    status = run_merkl_process("status", "--remote", "shared", cwd=repo.root)
    assert status.code == 0, status.err
    assert "4 cached output(s) on remote shared only" in status.out
    assert "lacks 0 tracked file(s) and 0 cached output(s)" in status.out

    # `.get()` in another process reads an output through the remote named in the index.
    (repo.root / "get_square.py").write_text(GET)
    got = subprocess.run(
        [sys.executable, "get_square.py"], cwd=repo.root, capture_output=True, text=True
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.split()[-1] == "9"
    assert sum(repo.store.has(e.oid) for e in only_remote) == 1  # fetched into the store

    # Evicting the local cache to nothing drops the local copies (the result and the fetched
    # square), not the entries: the remote still holds those outputs.
    from merkl.ops.evict import evict

    assert len(evict(Repo(repo.root), max_size=0).dropped) == 2
    # (A fresh Repo: this process's store remembers the inline objects it has read.)
    fresh = Repo(repo.root)
    entries = list(fresh.index.iter_outputs())
    assert len(entries) == 5
    assert not any(fresh.store.has(e.oid) for e in entries)


FAILING = """
    import os

    from merkl import task

    @task
    def leaf(i):
        if i == 5 and os.environ.get("MERKL_TEST_FAIL"):
            raise ValueError("leaf five is broken")
        return i

    @task
    def add(values):
        return sum(values)

    def pipeline(n: int):
        return add([leaf(i) for i in range(n)])
"""


def test_a_failing_task_in_a_chunk_fails_the_run_and_what_finished_stays(
    repo: Repo, tmp_path: Path
) -> None:
    write_module(repo.root, "failing_tasks", FAILING)
    remote = tmp_path / "shared"
    assert run_merkl_process("remote", "add", "shared", str(remote), cwd=repo.root).code == 0
    run = ("run", "--executor", "dask", "-j", "2", "--worker-remote", "shared")
    env = {**os.environ, "MERKL_TEST_FAIL": "1"}
    # 64 leaves: chunks of 8, so leaf 5 fails the first chunk after leaves 0-4.
    failed = run_merkl_process(*run, "failing_tasks.pipeline", "64", cwd=repo.root, env=env)
    assert failed.code == 1
    assert "ValueError: leaf five is broken" in failed.err
    assert "not computed" not in failed.err  # the dependent's missing input is not the cause
    indexed = len(list(Repo(repo.root).index.iter_outputs()))
    assert 5 <= indexed < 64  # what finished before the failure stays

    again = run_merkl_process(*run, "failing_tasks.pipeline", "64", cwd=repo.root)
    assert again.code == 0, again.err
    assert again.out.split()[-1] == str(sum(range(64)))
    assert f"{65 - indexed} task(s) run" in again.err
