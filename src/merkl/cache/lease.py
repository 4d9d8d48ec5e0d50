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
    path = os.path.join(dot_dir, LEASES_DIR, out_hash)
    fd = _acquire(path, before_wait)

    def release() -> None:
        # Unlinked while still held: a waiter that opened this file sees it gone and retries
        # on a fresh one, so two holders can never lock two different files of one hash.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)

    try:
        yield
    except BaseException:
        release()
        raise
    if defer is None or not defer(release):
        release()


def _acquire(path: str, before_wait: Callable[[], None] | None = None) -> int:
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
