"""Core engine benchmarks (issue 3), merkl and its peers on the same work in one run.

1. Cache-hit overhead: a new call + `.get()` of a trivial cached task vs a cached call through
   `joblib.Memory` (target: merkl >= 3x lower overhead per call).
2. Re-evaluating a fully cached 1,000-task DAG vs redun's warm `Scheduler.run` of the same DAG
   (target: >= 10x faster).
3. Hashing a 100,000-task DAG (a dry run: building it and hashing every node) in a fresh
   process (target: < 1 s).
4. Building and hashing 1,000 groups of 1,000 leaves (1,001,001 tasks; and 100 groups,
   100,101 tasks) in a fresh process: wall time, CPU time and peak RSS (target for 1e6:
   <= 8 s and <= 500 MiB).

Run: `.venv-bench/bin/python benchmarks/bench_core.py [--big-only]` (`make bench` runs every
benchmark).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TASKS_MODULE = """
from merkl import task

@task
def add_one(x):
    return x + 1

@task
def inc(x):
    return x + 1

@task
def add(a, b):
    return a + b

@task
def leaf(group, i):
    return group * i

@task
def combine(parts):
    return sum(parts)

def groups(n_groups, n_leaves):
    '''n_groups combine() calls of n_leaves leaf() calls each, under one combine().'''
    return combine([combine([leaf(g, i) for i in range(n_leaves)]) for g in range(n_groups)])

def tree(n_leaves):
    '''inc() on every leaf, then add() pairwise up to one root: 2 * n_leaves - 1 tasks.'''
    level = [inc(i) for i in range(n_leaves)]
    while len(level) > 1:
        pairs = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]
"""

REDUN_MODULE = """
from redun import task

redun_namespace = "merkl_bench"

@task()
def inc(x):
    return x + 1

@task()
def add(a, b):
    return a + b

@task()
def tree(n_leaves):
    level = [inc(i) for i in range(n_leaves)]
    while len(level) > 1:
        pairs = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]
"""

JOBLIB_MODULE = """
def add_one(x):
    return x + 1
"""


def best_of(repeats: int, fn) -> float:
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_cache_hit(work: Path, calls: int = 3000) -> tuple[float, float]:
    import bench_tasks
    import jl_tasks
    import joblib

    bench_tasks.add_one(5).get()  # warm: computed and cached
    memory = joblib.Memory(work / "joblib", verbose=0)
    cached = memory.cache(jl_tasks.add_one)
    cached(5)

    def merkl_hits() -> None:
        for _ in range(calls):
            bench_tasks.add_one(5).get()

    def joblib_hits() -> None:
        for _ in range(calls):
            cached(5)

    merkl_s = best_of(3, merkl_hits) / calls
    joblib_s = best_of(3, joblib_hits) / calls
    return merkl_s, joblib_s


def bench_cached_dag(n_leaves: int = 500) -> tuple[float, float]:
    import logging

    import bench_tasks
    import redun_tasks
    from redun import Scheduler

    root = bench_tasks.tree(n_leaves)
    expected = root.get()  # cold run fills the cache
    merkl_s = best_of(5, lambda: bench_tasks.tree(n_leaves).get())
    assert bench_tasks.tree(n_leaves).get() == expected

    logging.getLogger("redun").setLevel(logging.WARNING)  # one line per cached job otherwise
    scheduler = Scheduler()
    scheduler.load()
    assert scheduler.run(redun_tasks.tree(n_leaves)) == expected  # cold run
    redun_s = best_of(3, lambda: scheduler.run(redun_tasks.tree(n_leaves)))
    return merkl_s, redun_s


def bench_dry_run_hashing(work: Path, n_leaves: int = 50_000) -> tuple[float, float]:
    """Median wall and CPU seconds of three fresh processes building and hashing the tree."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(work)!r})
        import bench_tasks
        from merkl.graph import iter_nodes
        start, cpu = time.perf_counter(), time.process_time()
        root = bench_tasks.tree({n_leaves})
        count = sum(1 for node in iter_nodes([root]) if node.hash)
        print(count, time.perf_counter() - start, time.process_time() - cpu)
    """)
    walls, cpus = [], []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=work, check=True, capture_output=True, text=True
        ).stdout.split()
        assert int(out[0]) == 2 * n_leaves - 1
        walls.append(float(out[1]))
        cpus.append(float(out[2]))
    return statistics.median(walls), statistics.median(cpus)


def bench_big_dag(
    work: Path, n_groups: int, n_leaves: int = 1000, paused: bool = False
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of building and hashing `groups(...)` in a
    fresh process (the interpreter and merkl's import included in the RSS, not the times);
    `paused`: with the cyclic garbage collector off while building, as `merkl run` does."""
    script = textwrap.dedent(f"""
        import gc, resource, sys, time
        sys.path.insert(0, {str(work)!r})
        import bench_tasks
        from merkl.graph import iter_nodes
        wall, cpu = time.perf_counter(), time.process_time()
        if {paused}:
            gc.disable()
        root = bench_tasks.groups({n_groups}, {n_leaves})
        if {paused}:
            gc.enable()
            gc.collect()
        count = sum(1 for node in iter_nodes([root]) if node.hash)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(count, wall, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=work, check=True, capture_output=True, text=True
    ).stdout.split()
    assert int(out[0]) == n_groups * (n_leaves + 1) + 1
    return float(out[1]), float(out[2]), int(out[3])


def print_dry_run(work: Path) -> None:
    wall, cpu = bench_dry_run_hashing(work)
    print(
        f"dry run of a 100,000-task DAG (build + hash): {wall:.2f} s wall, {cpu:.2f} s CPU "
        f"(target < 1 s; load average {os.getloadavg()[0]:.1f})"
    )


def print_big_dags(work: Path) -> None:
    for n_groups, paused in ((100, False), (1000, False), (1000, True)):
        wall, cpu, rss = bench_big_dag(work, n_groups, paused=paused)
        target = " (target <= 8 s, <= 500 MiB)" if n_groups == 1000 else ""
        how = ", collector paused while building, as merkl run does" if paused else ""
        print(
            f"build + hash {n_groups * 1001 + 1:,} tasks ({n_groups:,} groups of 1,000 "
            f"leaves{how}): {wall:.2f} s wall, {cpu:.2f} s CPU, peak RSS {rss} MiB{target}; "
            f"load average {os.getloadavg()[0]:.1f}"
        )


def main() -> None:
    big_only = "--big-only" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="merkl-bench-core-") as tmp:
        work = Path(tmp)
        (work / "bench_tasks.py").write_text(TASKS_MODULE)
        (work / "redun_tasks.py").write_text(REDUN_MODULE)
        (work / "jl_tasks.py").write_text(JOBLIB_MODULE)
        os.chdir(work)
        sys.path.insert(0, str(work))
        if big_only:  # needs only merkl: no peer installed
            print_dry_run(work)
            print_big_dags(work)
            return
        subprocess.run([sys.executable, "-m", "merkl", "init"], check=True, capture_output=True)

        merkl_hit, joblib_hit = bench_cache_hit(work)
        print(
            f"cache hit per call: merkl {merkl_hit * 1e6:.1f} us, joblib.Memory "
            f"{joblib_hit * 1e6:.1f} us -> merkl {joblib_hit / merkl_hit:.1f}x lower "
            f"(target >= 3x)"
        )
        merkl_dag, redun_dag = bench_cached_dag()
        print(
            f"fully cached 1,000-task DAG: merkl {merkl_dag * 1e3:.1f} ms, redun warm "
            f"Scheduler.run {redun_dag * 1e3:.1f} ms -> merkl {redun_dag / merkl_dag:.1f}x "
            f"faster (target >= 10x)"
        )
        print_dry_run(work)
        print_big_dags(work)


if __name__ == "__main__":
    main()
