"""Crash a merkl command at its N-th file-system mutation, as `kill -9` there would.

`crash_at(n, argv, cwd)` forks; the child counts every call to the `os` functions that change
the file system (rename, replace, link, symlink, unlink, chmod, mkdir, fsync, …) and SIGKILLs
itself just before the n-th one, so nothing after that point happens — no `finally`, no
rollback. With n = 0 the command runs to the end, and the count tells the test how many points
to try: 1…K in turn (the approach of ALICE/CrashMonkey, at the level Python code reaches).
Forking instead of starting an interpreter keeps each crash to milliseconds.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MUTATIONS = (
    "rename",
    "replace",
    "link",
    "symlink",
    "unlink",
    "remove",
    "rmdir",
    "chmod",
    "mkdir",
    "fsync",
    "truncate",
    "ftruncate",
    "utime",
)


@dataclass
class CrashResult:
    killed: bool  # the child died by SIGKILL at the chosen point
    exit_code: int | None  # when it ran to the end
    mutations: int  # how many mutations it reached
    stderr: str = ""  # what the command wrote to stderr (why a run that ended failed)


def child_env() -> dict[str, str]:
    """The environment for a `python -m merkl` child that can import this test package."""
    from tests.helpers import REPO_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def crash_at(n: int, argv: Sequence[str], cwd: Path) -> CrashResult:
    """Run `merkl ARGV` in a forked child that SIGKILLs itself at mutation `n` (0: never)."""
    with tempfile.TemporaryFile() as err_file:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            code = 70
            try:
                code = _child(n, argv, cwd, write_end, err_file)
            finally:
                os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            reported = pipe.read()
        _, status = os.waitpid(pid, 0)
        count = int(reported.rsplit(b" ", 1)[-1] or 0) if reported else 0
        err_file.seek(0)
        stderr = err_file.read().decode(errors="replace")
        if os.WIFSIGNALED(status):
            return CrashResult(os.WTERMSIG(status) == signal.SIGKILL, None, count, stderr)
        return CrashResult(False, os.WEXITSTATUS(status), count, stderr)


def _child(n: int, argv: Sequence[str], cwd: Path, report_fd: int, err_file: IO[bytes]) -> int:
    os.chdir(cwd)
    count = 0
    lock = threading.Lock()
    real_write = os.write

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            with lock:  # transfers run in threads: every number must be seen once
                count += 1
                real_write(report_fd, f" {count}".encode())
                if count == n:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        return wrapper

    for name in MUTATIONS:
        setattr(os, name, counting(getattr(os, name)))
    from merkl.cli import main

    with open(os.devnull, "w") as devnull, open(err_file.fileno(), "w", closefd=False) as err:
        code = main(list(argv), out=devnull, err=err)
    sys.stdout.flush()
    return code
