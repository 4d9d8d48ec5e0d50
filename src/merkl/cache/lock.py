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
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from merkl.repo import Repo

LOCK_FILE = "lock"
HOLDERS_DIR = "locks"


@dataclass
class _Hold:
    """This process's hold of one lock file; nested and concurrent holds in the process (pull
    runs checkout, threads track outputs) share it, and the last one out releases it. A forked
    child sees another pid and takes its own."""

    pid: int
    fd: int
    mode: int
    users: int = 1
    named: bool = True  # wrote `.merkl/locks/<pid>`


_held: dict[str, _Hold] = {}
_guard = threading.Lock()


@contextlib.contextmanager
def shared_lock(repo: Repo, command: str | None) -> Iterator[None]:
    """Hold the repository lock shared while the block runs (waits only for gc/repair).
    With `command` None the hold is not named in `.merkl/locks` (evaluations from Python,
    where writing that file would cost more than the work of a small run)."""
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


def held_here(repo: Repo) -> bool:
    """Whether this process holds the repository lock (a command or an evaluation runs)."""
    with _guard:
        return os.path.join(repo.dot_dir, LOCK_FILE) in _held


@contextlib.contextmanager
def try_exclusive_lock(repo: Repo, command: str) -> Iterator[bool]:
    """Hold the repository lock alone if nobody holds it (yields True), else yield False at
    once: for housekeeping that may simply skip a turn (cache eviction)."""
    path = os.path.join(repo.dot_dir, LOCK_FILE)
    with _guard:
        busy = path in _held  # this process holds it already (shared or not)
    if busy:
        yield False
        return
    fd = _open(repo, path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    hold = _Hold(os.getpid(), fd, fcntl.LOCK_EX)
    with _guard:
        _held[path] = hold  # nested shared locks of this process reuse it
    try:
        yield True
    finally:
        with _guard:
            if _held.get(path) is hold:
                del _held[path]
        os.close(fd)


@contextlib.contextmanager
def _lock(
    repo: Repo, command: str | None, mode: int, on_wait: Callable[[str], None] | None
) -> Iterator[None]:
    path = os.path.join(repo.dot_dir, LOCK_FILE)
    with _guard:
        hold = _held.get(path)
        if hold is not None and hold.pid == os.getpid():
            if mode == fcntl.LOCK_EX and hold.mode != fcntl.LOCK_EX:
                raise RuntimeError("cannot upgrade the shared repository lock to exclusive")
            hold.users += 1
    if hold is None or hold.pid != os.getpid():
        hold = _acquire(repo, path, command, mode, on_wait)
    try:
        yield
    finally:
        with _guard:
            hold.users -= 1
            last = hold.users == 0
            if last and _held.get(path) is hold:
                del _held[path]
            # No other hold of this process remains:
            named = last and hold.named and path not in _held
        if named:
            with contextlib.suppress(OSError):
                os.unlink(repo.dot_dir / HOLDERS_DIR / str(hold.pid))
        if last:
            os.close(hold.fd)  # releases the flock


def _acquire(
    repo: Repo, path: str, command: str | None, mode: int, on_wait: Callable[[str], None] | None
) -> _Hold:
    fd = _open(repo, path)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait(describe_holders(repo))
            fcntl.flock(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    if command is not None:
        holder = repo.dot_dir / HOLDERS_DIR / str(os.getpid())
        with contextlib.suppress(OSError):
            holder.parent.mkdir(exist_ok=True)
            holder.write_text(command)
    hold = _Hold(os.getpid(), fd, mode, named=command is not None)
    with _guard:
        _held.setdefault(path, hold)  # another thread may have taken its own meanwhile
    return hold


def _open(repo: Repo, path: str) -> int:
    """The lock file open (created with `.merkl/` if need be: a `makedirs` on every
    evaluation would cost more than the lock)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except FileNotFoundError:
        os.makedirs(repo.dot_dir, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


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
