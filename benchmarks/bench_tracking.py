"""File-tracking benchmarks (issue 4): `merkl` and DVC on the same files in one run.

1. Tracking a 256 MiB file with a warm page cache: `merkl track` vs `dvc add` (target: >= 3x
   faster) and vs just reading it, `cat FILE > /dev/null` (target: within 1.5x).
2. `status` of 10,000 unchanged tracked small files (one tracked directory): `merkl status`
   vs `dvc status` (target: >= 5x faster).
3. Tracking a directory of 10,000 small files: `merkl track` vs `dvc add` (target: faster).
4. Re-tracking that directory after one file changed: `merkl track` vs `dvc add` again, and
   against merkl's first track of it (target: the cost of what changed, not of every file).
5. `merkl status` right after `merkl track` of 100,000 small files, against a later status
   (target: <= 1.5x); merkl only (`--after-track-only` runs just this; `BENCH_BIG_TREE` sets the
   number of files).

Every figure is a whole command in a fresh process (start-up included), the median of several
runs. DVC runs twice: with its default cache type (copies on this ext4 volume, since it cannot
reflink) and with `cache.type symlink`, merkl's default; ratios use the faster DVC setting.

Run: `.venv-bench/bin/python benchmarks/bench_tracking.py [--big-only|--small-only]` (`make bench`
runs every benchmark).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
MERKL = [str(BIN / "merkl")]
DVC = [str(BIN / "dvc")]
BIG = 256 << 20
SMALL_FILES = 10_000
# As users run them: bytecode cached (a warm-up run writes it), no terminal, no analytics.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV |= {
    "CI": "1",
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}
# The same operations inside one Python process: the work itself, without start-up.
IN_PROCESS = """
import sys, time
from merkl.tracking.track import track
from merkl.repo import Repo
start = time.perf_counter()
track(Repo.find(), [sys.argv[1]])
print(time.perf_counter() - start)
"""
# The floor for any tool that hashes the file with BLAKE3: the hash alone, on every core.
HASH_ONLY = """
import sys, time
import blake3
start = time.perf_counter()
hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
hasher.update_mmap(sys.argv[1])
hasher.hexdigest()
print(time.perf_counter() - start)
"""
STATUS_IN_PROCESS = """
import time
from merkl.ops.status import status
from merkl.repo import Repo
status(Repo.find())
start = time.perf_counter()
status(Repo.find())
print(time.perf_counter() - start)
"""


def sh(args: list[str], cwd: Path, stdout: int | None = subprocess.DEVNULL) -> float:
    """Run a command; return its wall time in seconds (it must succeed)."""
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=ENV, stdout=stdout, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}: {proc.stderr.decode()[-2000:]}")
    return elapsed


def timed_script(script: str, cwd: Path, *args: str) -> float:
    """Run one of the scripts above in a fresh interpreter; it prints the seconds it measured."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=ENV,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def merkl_repo(path: Path) -> Path:
    path.mkdir()
    sh(["git", "init", "-q"], path)
    sh([*MERKL, "init"], path)
    return path


def dvc_repo(path: Path, cache_type: str | None) -> Path:
    path.mkdir()
    sh(["git", "init", "-q"], path)
    sh([*DVC, "init", "-q"], path)
    sh([*DVC, "config", "core.autostage", "false"], path)
    if cache_type:
        sh([*DVC, "config", "cache.type", cache_type], path)
    return path


def interleaved(runs: int, measures: dict[str, Callable[[int], float]]) -> dict[str, float]:
    """Median time of each measure, run in rounds (a, b, c, a, b, c, …) so that load from
    other processes on the machine hits every contender alike."""
    times: dict[str, list[float]] = {name: [] for name in measures}
    for i in range(runs):
        for name, measure in measures.items():
            times[name].append(measure(i))
    return {name: statistics.median(values) for name, values in times.items()}


def write_small_tree(root: Path, count: int = SMALL_FILES) -> None:
    for i in range(count):
        folder = root / f"part{i // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:05d}.txt").write_bytes(f"row {i}\n".encode() * 8)


def prepare_big(repo: Path, source: Path, i: int) -> None:
    """A fresh copy (a new inode: no stat cache helps), read once: a warm page cache."""
    target = repo / f"big{i}.bin"
    shutil.copyfile(source, target)
    subprocess.run(["cat", str(target)], stdout=subprocess.DEVNULL, check=True)


def bench_big_file(work: Path, runs: int) -> dict[str, float]:
    source = work / "source.bin"
    with open(source, "wb") as handle:
        for _ in range(BIG >> 24):
            handle.write(os.urandom(1 << 24))
    merkl = merkl_repo(work / "m-big")
    dvc = dvc_repo(work / "d-big", None)
    dvc_symlink = dvc_repo(work / "d-big-sym", "symlink")
    plain = work / "plain"
    plain.mkdir()

    def timed(repo: Path, command: list[str]) -> Callable[[int], float]:
        def measure(i: int) -> float:
            prepare_big(repo, source, i)
            return sh([*command, f"big{i}.bin"], repo)

        return measure

    def in_process(i: int) -> float:
        prepare_big(merkl, source, runs + i)
        return timed_script(IN_PROCESS, merkl, f"big{runs + i}.bin")

    def cat(i: int) -> float:
        prepare_big(plain, source, i)
        return sh(["sh", "-c", f"cat big{i}.bin > /dev/null"], plain)

    def hash_only(i: int) -> float:
        prepare_big(plain, source, i)
        return timed_script(HASH_ONLY, plain, f"big{i}.bin")

    return interleaved(
        runs,
        {
            "merkl": timed(merkl, [*MERKL, "track"]),
            "dvc": timed(dvc, [*DVC, "add", "-q"]),
            "dvc-symlink": timed(dvc_symlink, [*DVC, "add", "-q"]),
            "merkl-in-process": in_process,
            "cat": cat,
            "blake3-alone": hash_only,
        },
    )


def bench_small_files(work: Path, runs: int) -> tuple[dict[str, float], dict[str, float]]:
    template = work / "template"
    write_small_tree(template)
    makers: dict[str, Callable[[Path], Path]] = {
        "merkl": merkl_repo,
        "dvc": lambda path: dvc_repo(path, None),
        "dvc-symlink": lambda path: dvc_repo(path, "symlink"),
    }
    repos: dict[str, Path] = {}

    def add(name: str) -> Callable[[int], float]:
        def measure(i: int) -> float:
            repo = repos[name] = makers[name](work / f"{name}-small-{i}")
            shutil.copytree(template, repo / "data")
            tool = MERKL if name == "merkl" else DVC
            return sh([*tool, "track" if name == "merkl" else "add", "data"], repo)

        return measure

    add_times = interleaved(max(2, runs // 2), {name: add(name) for name in makers})

    def readd(name: str) -> Callable[[int], float]:
        def measure(i: int) -> float:
            member = repos[name] / "data" / "part042" / "f04242.txt"
            member.unlink()  # a link (or DVC's copy) is replaced, as an editor would save it
            member.write_bytes(f"edit {i}\n".encode())
            tool = MERKL if name == "merkl" else DVC
            return sh([*tool, "track" if name == "merkl" else "add", "data"], repos[name])

        return measure

    for name, times in interleaved(runs, {name: readd(name) for name in makers}).items():
        add_times[f"{name}-again"] = times

    def status(name: str) -> Callable[[int], float]:
        command = [*MERKL, "status"] if name == "merkl" else [*DVC, "status", "-q"]
        sh(command, repos[name])  # a first run may fill caches: measure the steady state
        return lambda i: sh(command, repos[name])

    empty = merkl_repo(work / "merkl-empty")

    def status_in_process(i: int) -> float:
        return timed_script(STATUS_IN_PROCESS, repos["merkl"])

    measures = {name: status(name) for name in makers}
    measures["merkl-start-up"] = lambda i: sh([*MERKL, "status"], empty)
    measures["merkl-in-process"] = status_in_process
    return add_times, interleaved(runs, measures)


def bench_status_after_track(work: Path, runs: int) -> dict[str, list[float]]:
    """`merkl status` as the first command after `merkl track` of a big tree, and later (past
    the two-second racy window, once the first later status has updated the snapshot)."""
    count = int(os.environ.get("BENCH_BIG_TREE", "100000"))
    template = work / "big-template"
    write_small_tree(template, count)
    times: dict[str, list[float]] = {"track": [], "first": [], "later": [], "again": []}
    for i in range(runs):
        repo = merkl_repo(work / f"merkl-big-tree-{i}")
        shutil.copytree(template, repo / "data")
        times["track"].append(sh([*MERKL, "track", "data"], repo))
        times["first"].append(sh([*MERKL, "status"], repo))
        time.sleep(2.5)
        sh([*MERKL, "status"], repo)
        times["later"].append(statistics.median(sh([*MERKL, "status"], repo) for _ in range(3)))
        member = repo / "data" / f"part{420 % (count // 100):03d}" / f"f{42042 % count:05d}.txt"
        member.unlink()
        member.write_bytes(b"edited\n")
        times["again"].append(sh([*MERKL, "track", "data"], repo))
        shutil.rmtree(repo)
        print(
            f"  run {i + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()),
            flush=True,
        )
    times["count"] = [count]
    return times


def main() -> None:
    runs = int(os.environ.get("BENCH_RUNS", "5"))
    for warm_up in ([*MERKL, "--help"], [*DVC, "--version"]):
        sh(warm_up, Path.cwd())
    only = {arg for arg in sys.argv[1:] if arg.endswith("-only")}
    with tempfile.TemporaryDirectory(prefix="merkl-bench-tracking-") as tmp:
        work = Path(tmp)
        big = bench_big_file(work, runs) if only <= {"--big-only"} else None
        small = bench_small_files(work, runs) if only <= {"--small-only"} else None
        tree = bench_status_after_track(work, 3) if only <= {"--after-track-only"} else None
    if big is not None:
        report_big(big)
    if small is not None:
        report_small(*small)
    if tree is not None:
        report_after_track(tree)


def report_big(big: dict[str, float]) -> None:
    dvc_big = min(big["dvc"], big["dvc-symlink"])
    print(
        f"track 256 MiB file: merkl {big['merkl']:.3f}s, dvc add {big['dvc']:.3f}s "
        f"(symlink cache {big['dvc-symlink']:.3f}s), cat > /dev/null {big['cat']:.3f}s"
    )
    print(f"  merkl vs dvc add: {dvc_big / big['merkl']:.1f}x faster (target >= 3x)")
    print(
        f"  merkl vs cat: {big['merkl'] / big['cat']:.2f}x the time of reading it (target <= 1.5x)"
    )
    print(
        f"  merkl's tracking work alone (no interpreter start-up or imports): "
        f"{big['merkl-in-process']:.3f}s = {big['merkl-in-process'] / big['cat']:.2f}x cat"
    )
    print(
        f"  BLAKE3 alone over the file (all cores, in-process): {big['blake3-alone']:.3f}s = "
        f"{big['blake3-alone'] / big['cat']:.2f}x cat (the floor for any BLAKE3-hashing tool)"
    )


def report_small(add: dict[str, float], status: dict[str, float]) -> None:
    dvc_add = min(add["dvc"], add["dvc-symlink"])
    dvc_status = min(status["dvc"], status["dvc-symlink"])
    print(
        f"status, {SMALL_FILES:,} unchanged files: merkl {status['merkl']:.3f}s, dvc "
        f"{status['dvc']:.3f}s (symlink cache {status['dvc-symlink']:.3f}s)"
    )
    print(f"  merkl vs dvc status: {dvc_status / status['merkl']:.1f}x faster (target >= 5x)")
    print(
        f"  of which merkl start-up (status of an empty repo) {status['merkl-start-up']:.3f}s; "
        f"the status work alone {status['merkl-in-process']:.3f}s"
    )
    print(
        f"track a {SMALL_FILES:,}-file directory: merkl {add['merkl']:.3f}s, dvc add "
        f"{add['dvc']:.3f}s (symlink cache {add['dvc-symlink']:.3f}s)"
    )
    print(f"  merkl vs dvc add: {dvc_add / add['merkl']:.1f}x faster (target > 1x)")
    dvc_again = min(add["dvc-again"], add["dvc-symlink-again"])
    print(
        f"track it again after one file changed: merkl {add['merkl-again']:.3f}s "
        f"({add['merkl-again'] / add['merkl']:.2f}x its first track), dvc add "
        f"{add['dvc-again']:.3f}s (symlink cache {add['dvc-symlink-again']:.3f}s)"
    )
    print(f"  merkl vs dvc add: {dvc_again / add['merkl-again']:.1f}x faster")


def report_after_track(times: dict[str, list[float]]) -> None:
    def span(name: str) -> str:
        low, high = min(times[name]), max(times[name])
        return f"{low:.2f}s" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}s"

    ratios = [first / later for first, later in zip(times["first"], times["later"], strict=True)]
    print(
        f"{times['count'][0]:,} files: track {span('track')}, then status {span('first')}; "
        f"a later status {span('later')}"
    )
    print(
        f"  first status after track vs a later one: {min(ratios):.2f}-{max(ratios):.2f}x "
        f"(target <= 1.5x)"
    )
    again = [a / t for a, t in zip(times["again"], times["track"], strict=True)]
    print(
        f"  track again after one file changed: {span('again')} = "
        f"{min(again):.2f}-{max(again):.2f}x the first track"
    )


if __name__ == "__main__":
    main()
