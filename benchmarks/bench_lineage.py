"""OpenLineage overhead per executed task (issue 20), with the client's file transport.

Runs trees of 999 trivial tasks (fresh arguments each round, so every task executes) in one
process, alternating rounds without lineage and with an `openlineage.yml` selecting the file
transport, and reports per executed task (target: < 0.2 ms):
- the run's wall time, what the user waits for; on a loaded 2-core machine this includes the
  sender process competing for the cores;
- the CPU the run's process spends on lineage (watcher calls and the emitter thread making the
  records), which is what every run pays whatever the machine;
- the CPU of the sender process (the client making, serializing and writing the events).
The sender's start (Python and the client's imports) is excluded by a warm-up run.

Run: `.venv/bin/python benchmarks/bench_lineage.py` (needs merkl[openlineage]).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TASKS = """
from merkl import task

@task
def inc(x, salt):
    return x + 1

@task
def add(a, b):
    return a + b

def tree(n_leaves, salt):
    level = [inc(i, salt) for i in range(n_leaves)]
    while len(level) > 1:
        pairs = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]
"""
OPENLINEAGE_YML = "transport:\n  type: file\n  log_file_path: {path}\n  append: true\n"
N_LEAVES = 500  # 999 tasks per round
ROUNDS = 7


def main() -> None:
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE")]:
        del os.environ[key]
    with tempfile.TemporaryDirectory(prefix="merkl-bench-lineage-") as tmp:
        work = Path(tmp)
        os.chdir(work)
        (work / "bench_tasks.py").write_text(textwrap.dedent(TASKS))
        sys.path.insert(0, str(work))
        from merkl.repo import Repo

        Repo.init(work)
        config = work / "merkl.toml"  # fsync off: task overhead, not the disk, is measured
        config.write_text(config.read_text().replace("fsync = true", "fsync = false"))
        import bench_tasks

        import merkl.lineage

        events = work / "events.ndjson"
        salt = iter(range(10**6))

        tasks = 2 * N_LEAVES - 1

        def one_round(lineage: bool) -> tuple[float, float, float]:
            """(wall, own CPU, sender CPU) per task; the sender is waited for and stopped."""
            yml = work / "openlineage.yml"
            if lineage:
                yml.write_text(OPENLINEAGE_YML.format(path=events))
            elif yml.exists():
                yml.unlink()
            merkl.lineage.reset()
            root = bench_tasks.tree(N_LEAVES, next(salt))
            before = os.times()
            start = time.perf_counter()
            root.get()
            wall = time.perf_counter() - start
            assert merkl.lineage.flush(120)
            own = os.times()
            assert merkl.lineage.close(120)
            after = os.times()
            cpu = own.user + own.system - before.user - before.system
            sender = after.children_user + after.children_system
            sender -= before.children_user + before.children_system
            return wall / tasks, cpu / tasks, sender / tasks

        one_round(True)  # warm-up
        one_round(False)
        rounds: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
        for _ in range(ROUNDS):
            for lineage in (False, True):
                rounds[lineage].append(one_round(lineage))
        lines = events.read_text().count("\n")
        assert lines == (2 * tasks + 2) * (ROUNDS + 1), lines

        def extra(column: int) -> list[float]:
            pairs = zip(rounds[True], rounds[False], strict=True)
            return [(w[column] - b[column]) * 1e3 for w, b in pairs]

        def show(values: list[float]) -> str:
            return f"{statistics.median(values):.3f} ms ({min(values):.3f}-{max(values):.3f})"

        base_wall = [r[0] * 1e3 for r in rounds[False]]
        sender = [r[2] * 1e3 for r in rounds[True]]
        print(f"per executed task, {ROUNDS} rounds of {tasks} tasks, median (range):")
        print(f"  run without lineage:                 {show(base_wall)}")
        print(f"  added wall time of the run:          {show(extra(0))}  target < 0.2 ms")
        print(f"  added CPU of the run's process:      {show(extra(1))}")
        print(f"  CPU of the sender process:           {show(sender)}")


if __name__ == "__main__":
    main()
