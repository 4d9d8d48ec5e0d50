"""Executor benchmarks (issue 7): parallel merkl against in-process sequential merkl (the peer).

1. 16 independent CPU-bound tasks of ~0.5 s each: `--jobs 2` (worker processes, pool start
   included; target >= 1.7x faster) and Dask with 2 workers (LocalCluster start and shutdown
   and the `distributed` import included; target >= 1.5x faster).
2. Per-task scheduling overhead for 1,000 trivial tasks, for every executor (Dask measured on a
   running cluster; its start-up is reported separately).

Every run uses a fresh repository, so nothing comes from a cache and every output is stored.
Run: `.venv-bench/bin/python benchmarks/bench_executors.py` (`make bench` runs every benchmark).
The machine's other load shows up in these wall times: each figure is the best of `--repeat`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PIPELINE = '''
from merkl import task

@task
def burn(seed, rounds):
    """Pure-Python CPU work: about `rounds` multiply-adds."""
    x = seed
    for _ in range(rounds):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x

@task
def trivial(i):
    return i
'''


@contextlib.contextmanager
def fresh_repo() -> Iterator[Any]:
    """A new merkl repo holding the pipeline module, as the working directory and session."""
    from merkl.repo import Repo
    from merkl.session import Session, use_session

    with tempfile.TemporaryDirectory(prefix="merkl-bench-exec-") as folder:
        root = Path(folder)
        (root / "bench_exec_pipeline.py").write_text(PIPELINE)
        repo = Repo.init(root)
        sys.path.insert(0, folder)
        sys.modules.pop("bench_exec_pipeline", None)
        importlib.invalidate_caches()
        try:
            with contextlib.chdir(root), use_session(Session(repo)):
                yield importlib.import_module("bench_exec_pipeline")
        finally:
            sys.path.remove(folder)
            repo.index.close()


def timed(run: Callable[[Any], Any], executor_factory: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of `run(module)` with a fresh repo, executor creation included."""
    import merkl

    with fresh_repo() as module:
        start = time.perf_counter()
        values = merkl.evaluate(run(module), executor=executor_factory())
        return time.perf_counter() - start, values


def calibrate(seconds: float) -> int:
    """Rounds of `burn` that take about `seconds` here (in-process, unloaded)."""
    with fresh_repo() as module:
        probe = 200_000
        start = time.perf_counter()
        module.burn.fn(1, probe)
        return int(probe * seconds / (time.perf_counter() - start))


def cpu_bound(repeat: int) -> None:
    from merkl.executors import get_executor

    rounds = calibrate(0.5)

    def sixteen(module: Any) -> list[Any]:
        return [module.burn(seed, rounds) for seed in range(16)]

    def runs(factory: Callable[[], Any]) -> list[tuple[float, Any]]:
        return [timed(sixteen, factory) for _ in range(repeat)]

    sequential, expected = min(runs(lambda: get_executor("local")), key=lambda r: r[0])
    processes, values_p = min(runs(lambda: get_executor("processes", jobs=2)), key=lambda r: r[0])
    # The first Dask run also pays for importing `distributed`: reported on its own.
    dask_runs = runs(lambda: get_executor("dask", jobs=2))
    dask, values_d = min(dask_runs, key=lambda r: r[0])
    first_dask = dask_runs[0][0]
    assert values_p == expected, "processes disagree with in-process"
    assert values_d == expected, "dask disagrees with in-process"
    print(f"executors: 16 CPU-bound tasks of ~0.5 s ({rounds} rounds), best of {repeat}:")
    print(f"  in-process sequential merkl (peer): {sequential:.2f} s")
    print(
        f"  merkl --jobs 2 (processes, pool start included): {processes:.2f} s -> "
        f"{sequential / processes:.2f}x faster (target >= 1.7x)"
    )
    print(
        f"  merkl --executor dask, 2 workers (cluster start included): {dask:.2f} s -> "
        f"{sequential / dask:.2f}x faster (target >= 1.5x)"
    )
    print(
        f"  (first Dask run, importing distributed too: {first_dask:.2f} s -> "
        f"{sequential / first_dask:.2f}x)"
    )


def overhead(n_tasks: int) -> None:
    import distributed

    from merkl.executors import get_executor

    def trivial(module: Any) -> list[Any]:
        return [module.trivial(i) for i in range(n_tasks)]

    results = {}
    results["local"], _ = timed(trivial, lambda: get_executor("local"))
    for name in ("threads", "processes"):
        results[name], _ = timed(trivial, lambda name=name: get_executor(name, jobs=2))
    start = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=50,
    )
    cluster_start = time.perf_counter() - start
    with cluster, distributed.Client(cluster, set_as_default=False) as client:
        results["dask"], _ = timed(trivial, lambda: get_executor("dask", client=client))
    print(f"executors: scheduling overhead, {n_tasks} trivial tasks (wall time per task):")
    base = results["local"]
    for name, seconds in results.items():
        extra = "" if name == "local" else f", +{(seconds - base) / n_tasks * 1e3:.2f} ms vs local"
        note = {
            "processes": " (pool start included)",
            "dask": f" (running 2-worker cluster; its start took {cluster_start:.2f} s)",
        }.get(name, "")
        print(f"  {name:>9}: {seconds / n_tasks * 1e3:.2f} ms/task{extra}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (best kept)")
    parser.add_argument("--trivial", type=int, default=1000, help="tasks for the overhead run")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    cpu_bound(args.repeat)
    overhead(args.trivial)


if __name__ == "__main__":  # worker processes are spawned: they re-import this module
    main()
