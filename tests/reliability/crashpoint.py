"""Run `merkl ARGS…` and SIGKILL the process at its N-th file-system mutation.

    python -m tests.reliability.crashpoint N -- ARGS…

Every call to the `os` functions that change the file system (rename, replace, link, symlink,
unlink, chmod, mkdir, fsync, …) is counted; the N-th one kills the process before it happens,
as a power cut or `kill -9` at exactly that point would. N = 0 runs to the end and prints the
number of mutations seen to stderr as `crashpoint: mutations=K`, so a test can then crash at
every point 1…K in turn (the approach of ALICE/CrashMonkey, at the system-call level that
Python code reaches).
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

MUTATIONS = (
    "rename", "replace", "link", "symlink", "unlink", "remove", "rmdir", "chmod", "mkdir",
    "fsync", "truncate", "ftruncate", "utime",
)
_count = 0


def _counting(name: str, original: Callable[..., Any], crash_at: int) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _count
        _count += 1
        if _count == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    return wrapper


def main() -> int:
    crash_at = int(sys.argv[1])
    assert sys.argv[2] == "--", "usage: crashpoint N -- merkl arguments"
    for name in MUTATIONS:
        setattr(os, name, _counting(name, getattr(os, name), crash_at))
    from merkl.cli import main as merkl_main

    code = merkl_main(sys.argv[3:])
    print(f"crashpoint: mutations={_count}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
