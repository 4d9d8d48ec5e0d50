"""Many small tasks (issue 22), merkl and joblib.Memory on the same work in one run.

First run of 2,000 distinct trivial task calls in a fresh repository vs 2,000 first calls
through `joblib.Memory` in a fresh folder (target: merkl <= 1/2 of joblib's time), merkl with its
default `[core] fsync = true` and with `MERKL_FSYNC=0`, in two shapes:
- one call at a time (`add_one(i).get()`): one run, so one index transaction, per call;
- one run of the 2,000 calls (`merkl.evaluate([...])`): rows written in batches.

Disk per tiny output: `du` of `.merkl/` (and of joblib's cache folder) after 10,000 first calls
in one run, divided by 10,000 (target: merkl <= 1.5 KB; tiny outputs live inline in the index).

100,000 distinct tiny tasks in one run, first run, DAG build included (target: < 20 s).

Then `merkl run --dry` of a 10,001-output pipeline, half of it cached (batched lookups), timed
inside the process (the DAG build and the lookups, not the interpreter start).

Run: `.venv-bench/bin/python benchmarks/bench_small_tasks.py [--disk-only|--big-only]` (`make
bench` runs every benchmark; joblib alone is enough: `pip install joblib`).
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


def merkl_first_run(work: Path, statement: str, fsync: bool) -> float:
    """Seconds `statement` takes in a fresh process on a fresh repository in `work`."""
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
        {statement}
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
                        merkl_first_run(work, SHAPES[shape], fsync)
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


DISK_CALLS = 10_000


def _du(folder: Path) -> int:
    """Bytes of disk `folder` takes, as `du` counts them (allocated blocks)."""
    out = subprocess.run(["du", "-s", "-B1", str(folder)], check=True, capture_output=True)
    return int(out.stdout.split()[0])


def disk_per_output(inline: bool = True) -> tuple[float, float]:
    """(merkl, joblib) bytes of disk per tiny output after DISK_CALLS first calls, each in a
    process that has exited (so SQLite's WAL is checkpointed into the database, as it is at
    rest). `inline=False`: every output an object file, as before issue 22."""
    with tempfile.TemporaryDirectory(prefix="merkl-bench-disk-") as tmp:
        work = Path(tmp)
        (work / "merkl_tasks.py").write_text(TASKS)
        (work / "plain_tasks.py").write_text(PLAIN)
        subprocess.run(
            [sys.executable, "-m", "merkl", "init"], cwd=work, check=True, capture_output=True
        )
        if not inline:
            (work / ".merkl" / "config.toml").write_text("[cache]\ninline_max = 0\n")
        empty = _du(work / ".merkl")
        os.environ["MERKL_FSYNC"] = "0"
        _fresh_process(
            work,
            f"""
            import sys, merkl, merkl_tasks
            merkl.evaluate([merkl_tasks.add_one(i) for i in range({DISK_CALLS})])
            print(0)
            """,
        )
        merkl_bytes = _du(work / ".merkl") - empty
        _fresh_process(
            work,
            f"""
            import joblib, plain_tasks
            cached = joblib.Memory("joblib-cache", verbose=0).cache(plain_tasks.add_one)
            for i in range({DISK_CALLS}):
                cached(i)
            print(0)
            """,
        )
        joblib_bytes = _du(work / "joblib-cache")
    return merkl_bytes / DISK_CALLS, joblib_bytes / DISK_CALLS


BIG_CALLS = 100_000


def big_first_run(fsync: bool) -> float:
    """Seconds of one run of BIG_CALLS distinct tiny tasks in a fresh repository, building
    the DAG included (not the interpreter start)."""
    with tempfile.TemporaryDirectory(prefix="merkl-bench-big-") as tmp:
        work = Path(tmp)
        (work / "merkl_tasks.py").write_text(TASKS)
        statement = f"merkl.evaluate([merkl_tasks.add_one(i) for i in range({BIG_CALLS})])"
        return merkl_first_run(work, statement, fsync)


def report_disk() -> None:
    merkl_b, joblib_b = disk_per_output()
    files_b, _ = disk_per_output(inline=False)
    print(
        f"disk per tiny output after {DISK_CALLS:,} first calls: merkl {merkl_b / 1e3:.2f} KB "
        f"(target <= 1.5 KB; one object file each, `inline_max = 0`: {files_b / 1e3:.2f} KB), "
        f"joblib.Memory {joblib_b / 1e3:.2f} KB -> {merkl_b / joblib_b:.2f}x joblib's"
    )


def report_big() -> None:
    for fsync in (True, False):
        seconds = big_first_run(fsync)
        print(
            f"first run of {BIG_CALLS:,} tiny tasks, fsync {'on' if fsync else 'off'}: "
            f"{seconds:.2f} s ({seconds / BIG_CALLS * 1e3:.3f} ms/task; target < 20 s)"
        )


def main() -> None:
    if "--disk-only" in sys.argv:
        report_disk()
        return
    if "--big-only" in sys.argv:
        report_big()
        return
    merkl_s, joblib_s = first_runs()
    print(f"first run of {N_CALLS:,} trivial task calls, joblib.Memory: {joblib_s:.3f} s")
    for (shape, fsync), seconds in merkl_s.items():
        print(
            f"  merkl, {shape}, fsync {'on' if fsync else 'off'}: {seconds:.3f} s "
            f"({seconds / N_CALLS * 1e3:.2f} ms/call) -> {seconds / joblib_s:.2f}x joblib's "
            f"time (target <= 0.5x)"
        )
    report_disk()
    report_big()
    seconds = dry_run()
    print(
        f"merkl run --dry, 10,001 outputs (5,000 cached): {seconds:.3f} s "
        f"({seconds / 10_001 * 1e6:.0f} us/node, DAG build and hashing included)"
    )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
