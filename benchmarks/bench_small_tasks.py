"""Many small tasks (issue 22), merkl and joblib.Memory on the same work in one run.

First run of 2,000 distinct trivial task calls in a fresh repository vs 2,000 first calls
through `joblib.Memory` in a fresh folder (target: merkl <= 1/2 of joblib's time), merkl with its
default `[core] fsync = true` and with `MERKL_FSYNC=0`, in two shapes:
- one call at a time (`add_one(i).get()`): one run, so one index transaction, per call;
- one run of the 2,000 calls (`merkl.evaluate([...])`): rows written in batches.

Then `merkl run --dry` of a 10,001-output pipeline, half of it cached (batched lookups), timed
inside the process (the DAG build and the lookups, not the interpreter start).

Run: `.venv-bench/bin/python benchmarks/bench_small_tasks.py` (`make bench` runs every benchmark;
joblib alone is enough: `pip install joblib`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TASKS = """
from merkl import task

@task
def add_one(x):
    return x + 1
"""

PLAIN = """
def add_one(x):
    return x + 1
"""

N_CALLS = 2000


def _fresh_process(work: Path, body: str) -> float:
    """Seconds reported by `body` run in a fresh interpreter in `work` (imports not counted)."""
    script = textwrap.dedent(body)
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=work, check=True, capture_output=True, text=True
    ).stdout.split()
    return float(out[-1])


SHAPES = {
    "one .get() per call": f"for i in range({N_CALLS}): merkl_tasks.add_one(i).get()",
    "one run of all calls": f"merkl.evaluate([merkl_tasks.add_one(i) for i in range({N_CALLS})])",
}


def merkl_first_run(work: Path, shape: str, fsync: bool) -> float:
    subprocess.run(
        [sys.executable, "-m", "merkl", "init"], cwd=work, check=True, capture_output=True
    )
    os.environ["MERKL_FSYNC"] = "1" if fsync else "0"
    return _fresh_process(
        work,
        f"""
        import sys, time
        sys.path.insert(0, ".")
        import merkl, merkl_tasks
        merkl_tasks.add_one(-1).get()  # opens the repository: not part of the per-call cost
        start = time.perf_counter()
        {SHAPES[shape]}
        print(time.perf_counter() - start)
        """,
    )


def joblib_first_run(work: Path) -> float:
    return _fresh_process(
        work,
        f"""
        import sys, time
        sys.path.insert(0, ".")
        import joblib, plain_tasks
        cached = joblib.Memory("joblib-cache", verbose=0).cache(plain_tasks.add_one)
        cached(-1)
        start = time.perf_counter()
        for i in range({N_CALLS}):
            cached(i)
        print(time.perf_counter() - start)
        """,
    )


def first_runs(repeats: int = 3) -> tuple[dict[tuple[str, bool], float], float]:
    """Best of `repeats` first runs of each merkl variant and of joblib, interleaved."""
    merkl_s: dict[tuple[str, bool], list[float]] = {}
    joblib_s = []
    for _ in range(repeats):
        for shape in SHAPES:
            for fsync in (True, False):
                with tempfile.TemporaryDirectory(prefix="merkl-bench-small-") as tmp:
                    work = Path(tmp)
                    (work / "merkl_tasks.py").write_text(TASKS)
                    merkl_s.setdefault((shape, fsync), []).append(
                        merkl_first_run(work, shape, fsync)
                    )
        with tempfile.TemporaryDirectory(prefix="merkl-bench-small-") as tmp:
            work = Path(tmp)
            (work / "plain_tasks.py").write_text(PLAIN)
            joblib_s.append(joblib_first_run(work))
    return {key: min(times) for key, times in merkl_s.items()}, min(joblib_s)


DRY_TASKS = """
from merkl import task

@task
def add_one(x):
    return x + 1

@task
def total(values):
    return sum(values)

def pipeline(n: int = 10_000):
    return total([add_one(i) for i in range(n)])
"""


def dry_run(repeats: int = 3) -> float:
    """Best wall time of `dry_run_table` over a 10,001-output pipeline, half cached."""
    with tempfile.TemporaryDirectory(prefix="merkl-bench-dry-") as tmp:
        work = Path(tmp)
        (work / "dry_tasks.py").write_text(DRY_TASKS)
        subprocess.run(
            [sys.executable, "-m", "merkl", "init"], cwd=work, check=True, capture_output=True
        )
        os.environ["MERKL_FSYNC"] = "0"
        return _fresh_process(
            work,
            f"""
            import sys, time
            sys.path.insert(0, ".")
            import merkl, dry_tasks
            from merkl.ops.run import dry_run_table
            from merkl.session import current_session
            merkl.evaluate([dry_tasks.add_one(i) for i in range(0, 10_000, 2)])
            best = float("inf")
            for _ in range({repeats}):
                current_session().require_repo().cache._entries.clear()  # no earlier hits
                start = time.perf_counter()
                table = dry_run_table(dry_tasks.pipeline(), [], current_session())
                best = min(best, time.perf_counter() - start)
            assert table.count(" cached") == 5000, table[:300]
            print(best)
            """,
        )


def main() -> None:
    merkl_s, joblib_s = first_runs()
    print(f"first run of {N_CALLS:,} trivial task calls, joblib.Memory: {joblib_s:.3f} s")
    for (shape, fsync), seconds in merkl_s.items():
        print(
            f"  merkl, {shape}, fsync {'on' if fsync else 'off'}: {seconds:.3f} s "
            f"({seconds / N_CALLS * 1e3:.2f} ms/call) -> {seconds / joblib_s:.2f}x joblib's "
            f"time (target <= 0.5x)"
        )
    seconds = dry_run()
    print(
        f"merkl run --dry, 10,001 outputs (5,000 cached): {seconds:.3f} s "
        f"({seconds / 10_001 * 1e6:.0f} us/node, DAG build and hashing included)"
    )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
