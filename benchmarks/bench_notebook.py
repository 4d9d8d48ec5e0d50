"""What notebook caching (issue 24) costs: hashing a cell-defined task vs the same task in a
module, and a kernel restart + "run all" of `examples/notebook/analysis.ipynb` (cold, then all
cached) next to `merkl run` of the same notebook function.

1. 20,000 calls + `.hash` of a task whose code lives in 202 cells (its identity against the
   notebook-level bindings) vs a FUNCTION-mode task of a file module; the first hash (parsing
   every cell) and the re-hash after one more cell ran.
2. Wall time of executing the example notebook in a new kernel, twice, and of `merkl run`.

Run: `.venv/bin/python benchmarks/bench_notebook.py` (no peers; needs the [notebook] and [test]
extras; best of several runs for part 1).
"""

from __future__ import annotations

import linecache
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

from merkl import CodeHashMode, task
from merkl.deps import InteractiveModule, register_interactive

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "notebook"
CALLS = 20_000


def cell_module(cells: list[str]) -> types.ModuleType:
    module = types.ModuleType("bench_cells")
    sys.modules[module.__name__] = module
    register_interactive(module.__name__, InteractiveModule("bench.ipynb", lambda: cells))
    for number, source in enumerate(cells):
        filename = f"<bench cell {number}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), module.__dict__)
    return module


def per_call_us(fn: object) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(CALLS):
            fn(i).hash  # type: ignore[operator]  # noqa: B018
        best = min(best, time.perf_counter() - start)
    return best / CALLS * 1e6


def hashing(folder: Path) -> None:
    helpers = [f"def h{i}(x):\n    return x + {i}\n" for i in range(200)]
    body = "SCALE = 3\n\ndef helper(x):\n    return h1(x) * SCALE\n\n"
    body += "def f(x):\n    return helper(x)\n"
    cells = ["from merkl import task\n", *helpers, body]
    in_cells = task(cell_module(cells).f)
    start = time.perf_counter()
    in_cells(0).hash  # noqa: B018
    first_ms = (time.perf_counter() - start) * 1e3
    cell_us = per_call_us(in_cells)
    cells.append("X = 1\n")
    start = time.perf_counter()
    in_cells(0).hash  # noqa: B018
    rehash_ms = (time.perf_counter() - start) * 1e3
    (folder / "bench_file_module.py").write_text("".join(helpers) + body)
    sys.path.insert(0, str(folder))
    import bench_file_module  # type: ignore[import-not-found]

    in_file = task(code_hash_mode=CodeHashMode.FUNCTION)(bench_file_module.f)
    file_us = per_call_us(in_file)
    print(
        f"call + .hash: cell task {cell_us:.1f} us, file module task {file_us:.1f} us; "
        f"first hash over 202 cells {first_ms:.1f} ms, re-hash after a new cell {rehash_ms:.2f} ms"
    )


def wall_s(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def kernels(folder: Path) -> None:
    for name in ("analysis.ipynb", "run_notebook.py"):
        shutil.copy(EXAMPLE / name, folder / name)
    bin_dir = Path(sys.executable).parent
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    subprocess.run([bin_dir / "merkl", "init"], cwd=folder, check=True, capture_output=True)
    run_all = [sys.executable, "run_notebook.py", "analysis.ipynb"]
    cold, cached = wall_s(run_all, folder), wall_s(run_all, folder)
    merkl_run = wall_s([str(bin_dir / "merkl"), "run", "analysis.ipynb:pipeline", "1000"], folder)
    print(
        f"examples/notebook/analysis.ipynb in a new kernel: {cold:.2f} s cold, {cached:.2f} s "
        f"all cached; merkl run analysis.ipynb:pipeline (cached) {merkl_run:.2f} s"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hashing(Path(tmp))
        kernels(Path(tmp))


if __name__ == "__main__":
    main()
