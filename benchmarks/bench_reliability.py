"""Integrity-check benchmark (issue 10): `merkl verify` vs `git fsck --full` on the same data.

Both re-hash every stored object and check their bookkeeping: merkl's BLAKE3 store and SQLite
index, git's zlib-compressed SHA-1 loose objects and refs. The data: two 256 MiB files and
5,000 files of 1 KiB, tracked by merkl (`merkl track`) and committed to git (`git add`,
`git commit`) in twin folders. Each figure is a whole command in a fresh process, the median
of three runs with a warm page cache; `cat` of the same bytes is the floor.

Run: `.venv-bench/bin/python benchmarks/bench_reliability.py` (`make bench` runs every benchmark).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
MERKL = [str(BIN / "merkl")]
BIG_FILES, BIG = 2, 256 << 20
SMALL_FILES, SMALL = 5_000, 1 << 10
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV |= {
    "CI": "1",
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def sh(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        args, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}: {proc.stderr.decode()[-2000:]}")
    return elapsed


def median(args: list[str], cwd: Path, runs: int = 3) -> float:
    sh(args, cwd)  # warm-up: page cache, bytecode
    return statistics.median(sh(args, cwd) for _ in range(runs))


def make_data(folder: Path) -> None:
    rng = random.Random(10)
    for i in range(BIG_FILES):
        chunk = rng.randbytes(1 << 20)  # one per file: identical files would be stored once
        with open(folder / f"big{i}.bin", "wb") as handle:
            for n in range(BIG >> 20):
                handle.write(chunk[n:] + chunk[:n])  # distinct MiBs, cheap to make
    small = folder / "small"
    small.mkdir()
    for i in range(SMALL_FILES):
        (small / f"f{i:05d}.txt").write_bytes(rng.randbytes(SMALL))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        root = Path(tmp)
        merkl_repo, git_repo = root / "merkl", root / "git"
        for folder in (merkl_repo, git_repo):
            folder.mkdir()
        make_data(merkl_repo)
        shutil.copytree(merkl_repo, git_repo, dirs_exist_ok=True)
        total = BIG_FILES * BIG + SMALL_FILES * SMALL

        sh([*MERKL, "init"], merkl_repo)
        sh([*MERKL, "track", *(f"big{i}.bin" for i in range(BIG_FILES)), "small"], merkl_repo)
        sh(["git", "init", "-q"], git_repo)
        sh(["git", "add", "."], git_repo)
        sh(["git", "commit", "-q", "-m", "data"], git_repo)

        files = [str(p) for p in (merkl_repo / ".merkl" / "objects").rglob("*") if p.is_file()]
        cat = median(["sh", "-c", 'cat "$@" > /dev/null', "cat", *files], root)
        verify = median([*MERKL, "verify"], merkl_repo)
        fsck = median(["git", "fsck", "--full", "--no-dangling"], git_repo)

        mib = total / (1 << 20)
        print(
            f"data: {BIG_FILES} x {BIG >> 20} MiB + {SMALL_FILES} x {SMALL >> 10} KiB "
            f"= {mib:.0f} MiB, {os.cpu_count()} cores"
        )
        print(f"cat of the store:       {cat:7.2f} s  ({mib / cat:7.0f} MiB/s)")
        print(f"merkl verify:           {verify:7.2f} s  ({mib / verify:7.0f} MiB/s)")
        print(f"git fsck --full:        {fsck:7.2f} s  ({mib / fsck:7.0f} MiB/s)")
        print(f"ratio git fsck / merkl verify: {fsck / verify:.1f}x")
        print(f"ratio merkl verify / cat:      {verify / cat:.2f}x")


if __name__ == "__main__":
    main()
