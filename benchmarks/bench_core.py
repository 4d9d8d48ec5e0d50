"""Core engine benchmarks (issue 3), merkl and its peers on the same work in one run.

1. Cache-hit overhead: a new call + `.get()` of a trivial cached task vs a cached call through
   `joblib.Memory` (target: merkl >= 3x lower overhead per call; issue 22: <= 10 us).
   Random hits (issue 22): 10,000 outputs cached, then 5,000 random keys hit through fresh
   calls and `.get()` in a fresh process, vs `joblib.Memory` on the same 10,000 keys and the
   same draws (target: merkl <= 1/10 of joblib's time per hit).
2. Re-evaluating a fully cached 1,000-task DAG vs redun's warm `Scheduler.run` of the same DAG
   (target: >= 10x faster).
3. Hashing a 100,000-task DAG (a dry run: building it and hashing every node) in a fresh
   process (target: < 1 s).
4. Building and hashing 1,000 groups of 1,000 leaves (1,001,001 tasks; and 100 groups,
   100,101 tasks) in a fresh process: wall time, CPU time and peak RSS (target for 1e6:
   <= 8 s and <= 500 MiB).

Run: `.venv-bench/bin/python benchmarks/bench_core.py [--big-only|--hits-only]` (`make bench`
runs every benchmark).
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


def best_of(repeats: int, fn, clock=time.perf_counter) -> float:
    return min(_timed(fn, clock) for _ in range(repeats))


def _timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def bench_cache_hit(work: Path, calls: int = 3000) -> tuple[float, float, float, float]:
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
    merkl_cpu = best_of(3, merkl_hits, time.process_time) / calls
    joblib_cpu = best_of(3, joblib_hits, time.process_time) / calls
    return merkl_s, joblib_s, merkl_cpu, joblib_cpu


RANDOM_KEYS = 10_000
RANDOM_HITS = 5_000

# Fills the cache (first argument "fill") or times RANDOM_HITS random hits in a fresh process,
# so each hit is the first of its key in that process for most keys (no memo of earlier hits).
MERKL_RANDOM = """
import random, sys, time
sys.path.insert(0, ".")
import merkl, bench_tasks
add_one = bench_tasks.add_one
if sys.argv[1] == "fill":
    merkl.evaluate([add_one(i) for i in range({keys})])
    sys.exit()
keys = [random.Random(int(sys.argv[2])).randrange({keys}) for _ in range({hits})]
add_one(-1).get()  # opens the repository: not part of the per-hit cost
start, cpu = time.perf_counter(), time.process_time()
for key in keys:
    value = add_one(key).get()
print(time.perf_counter() - start, time.process_time() - cpu)
assert [add_one(key).get() for key in keys[:100]] == [key + 1 for key in keys[:100]]
"""

JOBLIB_RANDOM = """
import random, sys, time
sys.path.insert(0, ".")
import joblib, jl_tasks
add_one = joblib.Memory("joblib-random", verbose=0).cache(jl_tasks.add_one)
if sys.argv[1] == "fill":
    for i in range({keys}):
        add_one(i)
    sys.exit()
keys = [random.Random(int(sys.argv[2])).randrange({keys}) for _ in range({hits})]
add_one(-1)
start, cpu = time.perf_counter(), time.process_time()
for key in keys:
    value = add_one(key)
print(time.perf_counter() - start, time.process_time() - cpu)
"""


def bench_random_hits(work: Path, rounds: int = 3) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds per hit of merkl and joblib.Memory in `rounds` interleaved fresh
    processes each (new random draws each round), over caches of RANDOM_KEYS outputs."""
    scripts = {"merkl": MERKL_RANDOM, "joblib": JOBLIB_RANDOM}
    for name, body in scripts.items():
        (work / f"{name}_random.py").write_text(body.format(keys=RANDOM_KEYS, hits=RANDOM_HITS))
    env = {**os.environ, "MERKL_FSYNC": "0"}  # filling is not what is measured
    for name in scripts:
        subprocess.run(
            [sys.executable, f"{name}_random.py", "fill"], cwd=work, env=env, check=True
        )
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in scripts}
    for seed in range(rounds):
        for name in scripts:
            out = subprocess.run(
                [sys.executable, f"{name}_random.py", "hit", str(seed)],
                cwd=work,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            times[name].append((float(out[-2]) / RANDOM_HITS, float(out[-1]) / RANDOM_HITS))
    return times


def print_random_hits(work: Path) -> None:
    times = bench_random_hits(work)
    for what, i in (("wall", 0), ("CPU", 1)):
        merkl_s = [t[i] for t in times["merkl"]]
        joblib_s = [t[i] for t in times["joblib"]]
        ratios = [j / m for m, j in zip(merkl_s, joblib_s, strict=True)]
        print(
            f"random hits in a {RANDOM_KEYS:,}-output cache ({RANDOM_HITS:,} per fresh process, "
            f"{len(ratios)} rounds), {what} time: merkl {_span(merkl_s, 1e6)} us, joblib.Memory "
            f"{_span(joblib_s, 1e6)} us per hit -> joblib/merkl {min(ratios):.1f}-"
            f"{max(ratios):.1f}x (target >= 10x; load average {os.getloadavg()[0]:.1f})"
        )


def _span(values: list[float], scale: float) -> str:
    return f"{min(values) * scale:.1f}-{max(values) * scale:.1f}"


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
    hits_only = "--hits-only" in sys.argv[1:]
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

        merkl_hit, joblib_hit, merkl_cpu, joblib_cpu = bench_cache_hit(work)
        print(
            f"cache hit per call: merkl {merkl_hit * 1e6:.1f} us ({merkl_cpu * 1e6:.1f} us CPU), "
            f"joblib.Memory {joblib_hit * 1e6:.1f} us ({joblib_cpu * 1e6:.1f} us CPU) -> merkl "
            f"{joblib_hit / merkl_hit:.1f}x lower (target >= 3x, <= 10 us)"
        )
        print_random_hits(work)
        if hits_only:
            return
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
