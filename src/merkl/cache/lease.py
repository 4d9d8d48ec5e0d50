"""Compute once: a lease on an output hash, held while one process computes that output.

Concurrent runs of one repository (processes, or threads of one process) that miss the same
output would each compute it. Before computing, a run takes the lease on the output's hash:
an exclusive `flock` on `.merkl/leases/<hash>`; a second run blocks there, and once it holds
the lease finds the output in the cache and loads it instead of computing it.

The lease needs no heartbeat: the kernel drops a `flock` the moment its holder dies, even by
kill -9, so a waiter takes over at once and computes the output itself. (A holder that hangs
without dying keeps its lease, as it would keep a heartbeat going.) `flock` is per open file,
so threads of one process exclude each other as processes do. The file exists only while held.

Across machines, a remote with `lease = true` adds a second, shared lease (`SharedLeases`, set
on the cache by `merkl.remotes.leases`), taken inside the local one, so one process per machine
asks the remote.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

LEASES_DIR = "leases"


class SharedLeases(Protocol):
    """Leases shared by the clones of one remote (`Cache.shared_leases`)."""

    def hold(self, out_hash: str) -> AbstractContextManager[None]:
        """Hold the remote's lease on `out_hash`, waiting while another clone holds it."""

    def publish(self, out_hashes: list[str]) -> None:
        """Write the just-stored outputs through to the remote, for the clones waiting."""


class Lease:
    """A held lease; `release()` it, or `settle(defer)` once its output is stored."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd: int | None = fd

    def release(self) -> None:
        """Let the next waiter in (idempotent)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        # Unlinked while still held: a waiter that opened this file sees it gone and retries
        # on a fresh one, so two holders can never lock two different files of one hash.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(fd)

    def settle(self, defer: Callable[[Callable[[], None]], bool] | None) -> None:
        """The output is stored: release once its index rows are written (`output_lease`)."""
        if defer is None or not defer(self.release):
            self.release()


def take_lease(
    dot_dir: Path, out_hash: str, before_wait: Callable[[], None] | None = None
) -> Lease:
    """The lease on `out_hash`, waiting while another holds it (`before_wait()` first)."""
    path = os.path.join(dot_dir, LEASES_DIR, out_hash)
    fd = _acquire(path, before_wait, wait=True)
    assert fd is not None
    return Lease(path, fd)


def try_lease(dot_dir: Path, out_hash: str) -> Lease | None:
    """The lease on `out_hash` if nobody holds it, else None at once (executors that run many
    calls at a time take leases without blocking, and retry the busy ones later)."""
    path = os.path.join(dot_dir, LEASES_DIR, out_hash)
    fd = _acquire(path, wait=False)
    return None if fd is None else Lease(path, fd)


@contextlib.contextmanager
def output_lease(
    dot_dir: Path,
    out_hash: str,
    *,
    before_wait: Callable[[], None] | None = None,
    defer: Callable[[Callable[[], None]], bool] | None = None,
) -> Iterator[None]:
    """Hold the lease on `out_hash` while the block runs, waiting for another holder first.

    A run writes its index rows in batches, so an output stored in the block may not be
    visible to other processes yet when the block ends: `defer(release)` keeps the lease
    until the rows are written (False: nothing pending, release now). Before blocking on
    another holder, `before_wait()` writes this thread's rows and so releases the leases it
    kept: two runs can never wait for each other's deferred leases.
    """
    lease = take_lease(dot_dir, out_hash, before_wait)
    try:
        yield
    except BaseException:
        lease.release()
        raise
    lease.settle(defer)


def _acquire(
    path: str, before_wait: Callable[[], None] | None = None, *, wait: bool
) -> int | None:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    return None
                if before_wait is not None:
                    before_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_named(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder unlinked it as it finished: lock the current file


def _still_named(fd: int, path: str) -> bool:
    """Whether `path` is still the file open as `fd` (not unlinked or replaced meanwhile)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
