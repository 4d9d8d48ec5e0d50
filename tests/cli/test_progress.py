"""Progress on a terminal for long local work; quiet with -q, in CI and in pipes."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_module

SLOW = """
import time
from merkl import task


@task
def step(i):
    time.sleep(0.3)
    return i


def pipe(n: int = 3):
    return [step(i) for i in range(n)]
"""


def on_terminal(cwd: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `merkl ARGV…` with stderr on a pseudo-terminal; returns (status, what it showed)."""
    master, slave = pty.openpty()
    base = {k: v for k, v in os.environ.items() if k != "CI"}
    base.update({"TERM": "xterm", "COLUMNS": "120"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "merkl", *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**base, **(env or {})},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_local_executor_shows_the_running_task_and_done_total(repo):
    write_module(repo.root, "slow", SLOW)
    status, shown = on_terminal(repo.root, "run", "slow.pipe")
    assert status == 0, shown
    assert "slow.step" in shown
    assert "/3" in shown
    assert "0:00:0" in shown  # elapsed


def test_quiet_and_ci_show_no_bar(repo):
    write_module(repo.root, "slow", SLOW)
    status, shown = on_terminal(repo.root, "-q", "run", "slow.pipe", "2")
    assert status == 0, shown
    assert "slow.step" not in shown
    assert "task(s) run" in shown  # the summary stays
    status, shown = on_terminal(repo.root, "run", "slow.pipe", "4", env={"CI": "true"})
    assert status == 0, shown
    assert "slow.step" not in shown


def test_quiet_after_the_command_name(repo):
    write_module(repo.root, "slow", SLOW)
    status, shown = on_terminal(repo.root, "run", "--quiet", "slow.pipe", "5")
    assert status == 0, shown
    assert "slow.step" not in shown


def test_track_of_a_big_file_shows_bytes(repo):
    big = repo.root / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(256 << 20)  # sparse: 256 MiB to hash, no disk used
    status, shown = on_terminal(repo.root, "track", "big.bin")
    assert status == 0, shown
    assert "hashing" in shown
    assert "268.4 MB" in shown or "256.0 MiB" in shown
    quiet_file = repo.root / "quiet.bin"
    with open(quiet_file, "wb") as handle:
        handle.truncate(64 << 20)
    status, shown = on_terminal(repo.root, "-q", "track", "quiet.bin")
    assert status == 0, shown
    assert "hashing" not in shown
