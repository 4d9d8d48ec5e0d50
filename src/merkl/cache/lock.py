"""The repository lock: `flock` on `.merkl/lock`, shared or exclusive.

Commands that add objects or links (track, checkout, untrack, pull, the object writes of a run)
hold it shared, so they never wait for each other; commands that delete objects (`gc`,
`verify --repair`) hold it exclusively, so they never see a half-done track whose objects no
pointer names yet. The kernel drops the lock when its holder dies (even by kill -9), so a
crash never leaves the repository locked.

Each holder also writes `.merkl/locks/<pid>` with its command line, so a command that has to
wait can say whom it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from merkl.repo import Repo

LOCK_FILE = "lock"
HOLDERS_DIR = "locks"

# Per lock file: (pid, fd, mode, depth). Nested holds (pull runs checkout) reuse the fd: a
# second flock from the same process on another fd could deadlock against itself. The pid
# tells a forked child (which must take its own lock) from the process that took it.
_held: dict[str, tuple[int, int, int, int]] = {}


@contextlib.contextmanager
def shared_lock(repo: Repo, command: str) -> Iterator[None]:
    """Hold the repository lock shared while the block runs (waits only for gc/repair)."""
    with _lock(repo, command, fcntl.LOCK_SH, None):
        yield


@contextlib.contextmanager
def exclusive_lock(
    repo: Repo, command: str, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the repository lock alone. If others hold it, `on_wait(who)` is called with a
    description of the holders, then this waits for them to finish."""
    with _lock(repo, command, fcntl.LOCK_EX, on_wait):
        yield


@contextlib.contextmanager
def _lock(
    repo: Repo, command: str, mode: int, on_wait: Callable[[str], None] | None
) -> Iterator[None]:
    path = str(repo.dot_dir / LOCK_FILE)
    held = _held.get(path)
    if held is not None and held[0] == os.getpid():
        pid, fd, held_mode, depth = held
        if mode == fcntl.LOCK_EX and held_mode != fcntl.LOCK_EX:
            raise RuntimeError("cannot upgrade the shared repository lock to exclusive")
        _held[path] = (pid, fd, held_mode, depth + 1)
        try:
            yield
        finally:
            _held[path] = (pid, fd, held_mode, depth)
        return
    os.makedirs(repo.dot_dir, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    holder = repo.dot_dir / HOLDERS_DIR / str(os.getpid())
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(describe_holders(repo))
            fcntl.flock(fd, mode)
        _held[path] = (os.getpid(), fd, mode, 1)
        with contextlib.suppress(OSError):
            holder.parent.mkdir(exist_ok=True)
            holder.write_text(command)
        try:
            yield
        finally:
            del _held[path]
            with contextlib.suppress(OSError):
                holder.unlink()
    finally:
        os.close(fd)  # releases the flock


def describe_holders(repo: Repo) -> str:
    """`merkl track data (pid 123), …` for the live holders that left their name."""
    found = []
    with contextlib.suppress(OSError), os.scandir(repo.dot_dir / HOLDERS_DIR) as entries:
        for entry in entries:
            if not entry.name.isdigit() or not pid_alive(int(entry.name)):
                continue
            with contextlib.suppress(OSError), open(entry.path) as handle:
                found.append(f"{handle.read().strip()} (pid {entry.name})")
    return ", ".join(sorted(found)) or "another merkl process"


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
