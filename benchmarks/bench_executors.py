"""Executor benchmarks (issue 7): parallel merkl against in-process sequential merkl (the peer).

Every figure is the wall time of a whole `merkl run` command in a fresh process and a fresh
repository (nothing comes from a cache; every output is stored), as a user would see it:
interpreter start, imports, worker start-up and shutdown included.

1. 16 independent CPU-bound tasks of ~0.5 s each: `merkl run --jobs 2` (worker processes;
   target >= 1.7x faster than sequential) and `merkl run --executor dask --jobs 2` (a
   LocalCluster of 2 workers started and stopped by the run; target >= 1.5x faster).
2. Per-task scheduling overhead for 1,000 trivial tasks, for every executor; Dask is also
   measured on an already running cluster (`--scheduler`).
3. Peak RSS of a fresh process evaluating a chain of 20 and of 200 tasks that each return
   1 MiB, in-process, on threads and on a LocalCluster (the driver's RSS; target: 200 within
   60 MiB of 20).
4. Peak RSS of the driver of `merkl run --executor dask -j 2` over 4 shards of 64 MiB, with
   and without `--worker-remote` (a directory remote: the workers store the shards there and
   only hashes come back; without it every shard crosses to the driver).
5. Per-task cost of `merkl run --executor dask -j 2 --worker-remote` at 10,000 and 100,000
   tasks (groups of 1,000 leaves and their sums; Dask tasks run chunks of up to 1,000 merkl
   calls), on a directory remote and on a Redis remote (`--redis URL`, skipped if unreachable).

Run: `.venv-bench/bin/python benchmarks/bench_executors.py` (`make bench` runs every benchmark).
Other load on the machine shows up in wall times: the CPU-bound commands run in interleaved
rounds (each round gives a ratio; min and median are printed), the overhead figures are the best
of `--repeat` runs, and the load average is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PIPELINE = '''
from merkl import task

@task
def burn(seed, rounds):
    """Pure-Python CPU work: `rounds` multiply-adds."""
    x = seed
    for _ in range(rounds):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x

@task
def trivial(i):
    return i

def sixteen(rounds: int):
    return [burn(seed, rounds) for seed in range(16)]

def many(n: int):
    return [trivial(i) for i in range(n)]
'''


def merkl_run(*args: str) -> tuple[float, str]:
    """Wall time and stdout of `merkl run ARGS` in a new process and a new repository."""
    with tempfile.TemporaryDirectory(prefix="merkl-bench-exec-") as folder:
        root = Path(folder)
        (root / "bench_exec_pipeline.py").write_text(PIPELINE)
        merkl = [sys.executable, "-m", "merkl"]
        subprocess.run([*merkl, "init"], cwd=root, check=True, capture_output=True)
        start = time.perf_counter()
        done = subprocess.run(
            [*merkl, "run", *args], cwd=root, capture_output=True, text=True, timeout=600
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"merkl run {' '.join(args)} failed:\n{done.stderr}")
    return seconds, done.stdout.splitlines()[-1]


def best(repeat: int, *args: str) -> tuple[float, str]:
    runs = [merkl_run(*args) for _ in range(repeat)]
    return min(runs, key=lambda run: run[0])


def interleaved(repeat: int, commands: dict[str, list[str]]) -> dict[str, list[float]]:
    """Wall times of each command, `repeat` rounds of one run each in turn: load from other
    work on the machine then falls on every command alike, and each round gives a ratio."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    outputs: set[str] = set()
    for number in range(1, repeat + 1):
        load = os.getloadavg()[0]
        for name, args in commands.items():
            seconds, output = merkl_run(*args)
            times[name].append(seconds)
            outputs.add(output)
        done = ", ".join(f"{name} {runs[-1]:.2f} s" for name, runs in times.items())
        print(f"  round {number}: {done} (load average {load:.2f} before)", flush=True)
    if len(outputs) != 1:
        raise SystemExit("executors disagree on the results")
    return times


def calibrate(seconds: float) -> int:
    """Rounds of `burn` that take about `seconds` on this machine."""
    namespace: dict[str, object] = {}
    exec(PIPELINE.replace("@task", ""), namespace)
    burn = namespace["burn"]
    probe = 2_000_000
    fastest = float("inf")
    for _ in range(5):  # the fastest of a few: other load only ever slows a probe down
        start = time.perf_counter()
        burn(1, probe)  # type: ignore[operator]
        fastest = min(fastest, time.perf_counter() - start)
    return int(probe * seconds / fastest)


def cpu_bound(repeat: int) -> None:
    target = ["bench_exec_pipeline.sixteen", str(calibrate(0.5))]
    print(f"executors: 16 CPU-bound tasks of ~0.5 s, whole `merkl run`, {repeat} rounds:")
    times = interleaved(
        repeat,
        {
            "sequential": target,
            "processes": ["--jobs", "2", *target],
            "dask": ["--executor", "dask", "--jobs", "2", *target],
        },
    )
    sequential = times["sequential"]
    print(
        f"  in-process sequential merkl (peer): min {min(sequential):.2f} s, "
        f"median {statistics.median(sequential):.2f} s"
    )
    labels = {
        "processes": ("merkl run --jobs 2 (worker processes)", 1.7),
        "dask": ("merkl run --executor dask --jobs 2 (LocalCluster started and stopped)", 1.5),
    }
    for name, (label, target_ratio) in labels.items():
        ratios = [s / t for s, t in zip(sequential, times[name], strict=True)]
        print(
            f"  {label}: min {min(times[name]):.2f} s, median "
            f"{statistics.median(times[name]):.2f} s -> {min(sequential) / min(times[name]):.2f}x "
            f"faster (best vs best; per round min {min(ratios):.2f}x, median "
            f"{statistics.median(ratios):.2f}x; target >= {target_ratio}x)"
        )


def overhead(repeat: int, n_tasks: int) -> None:
    import distributed

    target = ("bench_exec_pipeline.many", str(n_tasks))
    results = {
        "local": best(repeat, *target)[0],
        "threads": best(repeat, "--executor", "threads", "-j", "2", *target)[0],
        "processes": best(repeat, "--executor", "processes", "-j", "2", *target)[0],
        "dask": best(repeat, "--executor", "dask", "-j", "2", *target)[0],
    }
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    with cluster:
        address = cluster.scheduler_address
        results["dask, running cluster"] = best(repeat, "--scheduler", address, *target)[0]
    print(f"executors: {n_tasks} trivial tasks, whole `merkl run`, best of {repeat}:")
    base = results["local"]
    for name, seconds in results.items():
        extra = (seconds - base) / n_tasks * 1e3
        print(
            f"  {name:>22}: {seconds:.2f} s, {seconds / n_tasks * 1e3:.2f} ms/task"
            + ("" if name == "local" else f" (+{extra:.2f} ms/task scheduling vs local)")
        )


CHAIN = """
from merkl import task
from merkl.serializers import BytesSerializer

@task(serializers=BytesSerializer())
def grow(previous, i):
    return bytes([i % 256]) * (1 << 20)

def chain(n):
    value = None
    for i in range(n):
        value = grow(value, i)
    return value
"""

CHAIN_RUN = """
import resource, sys
sys.path.insert(0, ".")
import chain_tasks
from merkl.evaluation import evaluate
if __name__ == "__main__":  # Dask's workers re-import the main module
    executor = None if sys.argv[2] == "local" else sys.argv[2]
    value = evaluate([chain_tasks.chain(int(sys.argv[1]))], executor=executor)[0]
    assert len(value) == 1 << 20
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def chain_memory() -> None:
    """Peak RSS of chains of 1 MiB outputs: a run holds its live frontier, not every value."""
    print("peak RSS of a chain of tasks returning 1 MiB each (fresh process, fresh repo):")
    for executor in ("local", "threads", "dask"):  # for Dask: the driver's RSS
        peaks = {}
        for links in (20, 200):
            with tempfile.TemporaryDirectory(prefix="merkl-bench-chain-") as tmp:
                work = Path(tmp)
                (work / "chain_tasks.py").write_text(CHAIN)
                (work / "chain_run.py").write_text(CHAIN_RUN)
                subprocess.run(
                    [sys.executable, "-m", "merkl", "init"],
                    cwd=work,
                    check=True,
                    capture_output=True,
                )
                out = subprocess.run(
                    [sys.executable, "chain_run.py", str(links), executor],
                    cwd=work,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                peaks[links] = int(out.stdout.split()[-1])
        print(
            f"  {executor:>8}: 20 tasks {peaks[20]} MiB, 200 tasks {peaks[200]} MiB "
            f"(+{peaks[200] - peaks[20]} MiB; target <= +60)"
        )


SHARDS = """
import hashlib
from merkl import task
from merkl.serializers import BytesSerializer

@task(serializers=BytesSerializer())
def shard(i, mib):
    return bytes([i]) * (mib << 20)

@task
def checksum(data):
    return hashlib.sha256(data).hexdigest()[:16]

@task
def combine(sums):
    return sums

def pipeline(n: int = 4, mib: int = 64):
    return combine([checksum(shard(i, mib)) for i in range(n)])
"""

# `merkl run` in this process, then its own peak RSS (MiB) on the last stderr line.
DRIVER = (
    "import resource, sys\n"
    "from merkl.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def cluster_memory(n_shards: int = 4, mib: int = 64) -> None:
    """The driver's peak RSS on a Dask run of big shards, with and without a worker remote."""
    print(f"driver peak RSS, Dask LocalCluster of 2, {n_shards} shards of {mib} MiB:")
    for worker_remote in (False, True):
        with tempfile.TemporaryDirectory(prefix="merkl-bench-shards-") as tmp:
            work = Path(tmp)
            (work / "bench_shards.py").write_text(SHARDS)
            merkl = [sys.executable, "-m", "merkl"]
            subprocess.run([*merkl, "init"], cwd=work, check=True, capture_output=True)
            add = [*merkl, "remote", "add", "shared", str(work / "remote")]
            subprocess.run(add, cwd=work, check=True, capture_output=True)
            extra = ["--worker-remote", "shared"] if worker_remote else []
            start = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    DRIVER,
                    "run",
                    "--executor",
                    "dask",
                    "-j",
                    "2",
                    *extra,
                    "bench_shards.pipeline",
                    str(n_shards),
                    str(mib),
                ],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=600,
            )
            seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"shards run failed:\n{done.stderr}")
        peak = int(done.stderr.split()[-1])
        name = "--worker-remote" if worker_remote else "results to the driver"
        print(f"  {name:>22}: {peak} MiB ({seconds:.1f} s)")


STRESS = """
from merkl import task

@task
def leaf(g, i):
    return g * 1000 + i

@task
def total(values):
    return sum(values)

def pipeline(groups: int):
    return total([total([leaf(g, i) for i in range(1000)]) for g in range(groups)])
"""


def worker_remote_overhead(redis_url: str, sizes: tuple[int, ...] = (10_000, 100_000)) -> None:
    """Whole `merkl run --worker-remote` commands over many small tasks: seconds per task."""
    import uuid

    remotes = {"directory": ""}
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
        remotes["redis"] = redis_url
    except Exception as exc:  # the Redis figure is optional
        print(f"  (no Redis at {redis_url}: {exc}; directory remote only)")
    print("merkl run --executor dask -j 2 --worker-remote, small tasks (fresh repo each):")
    for n in sizes:
        for kind, url in remotes.items():
            prefix = f"merkl-bench-{uuid.uuid4().hex[:8]}:"
            with tempfile.TemporaryDirectory(prefix="merkl-bench-wr-") as tmp:
                work = Path(tmp)
                (work / "bench_stress.py").write_text(STRESS)
                merkl = [sys.executable, "-m", "merkl"]
                subprocess.run([*merkl, "init"], cwd=work, check=True, capture_output=True)
                with (work / "merkl.toml").open("a") as config:
                    config.write(
                        f'\n[remotes.shared]\nurl = "{url or work / "remote"}"\n'
                        + (f'prefix = "{prefix}"\n' if url else "")
                    )
                load = os.getloadavg()[0]
                start = time.perf_counter()
                run = ["run", "--executor", "dask", "-j", "2", "--worker-remote", "shared", "-q"]
                done = subprocess.run(
                    [*merkl, *run, "bench_stress.pipeline", str(n // 1000)],
                    cwd=work,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                seconds = time.perf_counter() - start
            if url:
                client = redis.Redis.from_url(url)
                keys = list(client.scan_iter(match=prefix + "*", count=5000))
                for first in range(0, len(keys), 5000):
                    client.delete(*keys[first : first + 5000])
            if done.returncode != 0 or done.stdout.split()[-1] != str(sum(range(n))):
                raise SystemExit(f"worker-remote run failed:\n{done.stderr}")
            tasks = n + n // 1000 + 1
            print(
                f"  {tasks:>7} tasks, {kind:>9} remote: {seconds:.1f} s, "
                f"{seconds / tasks * 1e3:.2f} ms/task (load average {load:.1f} before)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="rounds (CPU-bound) or runs per figure (overhead, best kept)",
    )
    parser.add_argument("--trivial", type=int, default=1000, help="tasks for the overhead run")
    parser.add_argument(
        "--only",
        choices=["cpu", "overhead", "memory", "cluster", "worker-remote"],
        help="run one of the benchmarks",
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/0", help="Redis for --only worker-remote"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    if args.only in (None, "cpu"):
        cpu_bound(args.repeat)
    if args.only in (None, "overhead"):
        overhead(args.repeat, args.trivial)
    if args.only in (None, "memory"):
        chain_memory()
    if args.only in (None, "cluster"):
        cluster_memory()
    if args.only in (None, "worker-remote"):
        worker_remote_overhead(args.redis)
    print(f"machine: load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":  # LocalCluster workers re-import this module
    main()
