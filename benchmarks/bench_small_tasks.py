"""Many small tasks (issue 22), merkl and joblib.Memory on the same work in one run.

1. First run of 2,000 distinct trivial task calls (`add_one(i).get()` for i < 2,000) in a fresh
   repository vs 2,000 first calls through `joblib.Memory` in a fresh folder (target: merkl
   <= 1/2 of joblib's time). merkl runs with its default `[core] fsync = true`.
2. The same 2,000 calls again, all cached (a warm process), for reference.

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


def merkl_first_run(work: Path) -> float:
    subprocess.run(
        [sys.executable, "-m", "merkl", "init"], cwd=work, check=True, capture_output=True
    )
    return _fresh_process(
        work,
        f"""
        import sys, time
        sys.path.insert(0, ".")
        import merkl_tasks
        merkl_tasks.add_one(-1).get()  # opens the repository: not part of the per-call cost
        start = time.perf_counter()
        for i in range({N_CALLS}):
            merkl_tasks.add_one(i).get()
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


def first_runs(repeats: int = 3) -> tuple[float, float]:
    """Best of `repeats` first runs each, merkl and joblib alternating."""
    merkl_s, joblib_s = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="merkl-bench-small-") as tmp:
            work = Path(tmp)
            (work / "merkl_tasks.py").write_text(TASKS)
            (work / "plain_tasks.py").write_text(PLAIN)
            merkl_s.append(merkl_first_run(work))
            joblib_s.append(joblib_first_run(work))
    return min(merkl_s), min(joblib_s)


def main() -> None:
    merkl_s, joblib_s = first_runs()
    print(
        f"first run of {N_CALLS:,} trivial task calls: merkl {merkl_s:.3f} s "
        f"({merkl_s / N_CALLS * 1e3:.2f} ms/call), joblib.Memory {joblib_s:.3f} s -> merkl "
        f"{merkl_s / joblib_s:.2f}x joblib's time (target <= 0.5x); load average "
        f"{os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
