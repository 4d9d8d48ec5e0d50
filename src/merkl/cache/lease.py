"""Compute once: a lease on an output hash, held while one process computes that output.

Concurrent runs of one repository (processes, or threads of one process) that miss the same
output would each compute it. Before computing, a run takes the lease on the output's hash:
an exclusive `flock` on `.merkl/leases/<hash>`; a second run blocks there, and once it holds
the lease finds the output in the cache and loads it instead of computing it.

On Linux the lease is a one-byte lock, at an offset taken from the hash, in one shared file
(`.merkl/leases/ranges`, an open-file-description lock: `F_OFD_SETLK`) rather than a file of
its own: creating and unlinking a file per computed output cost 0.1-0.4 ms on this machine's
file system, more than a tiny task's whole bookkeeping; opening the existing file costs a few
µs. Elsewhere it is an exclusive `flock` on `.merkl/leases/<hash>`, a file that exists only
while held.

The lease needs no heartbeat: the kernel drops either lock the moment its holder dies, even by
kill -9, so a waiter takes over at once and computes the output itself. (A holder that hangs
without dying keeps its lease, as it would keep a heartbeat going.) Both locks belong to an
open file, so threads of one process exclude each other as processes do.

Across machines, a remote with `lease = true` adds a second, shared lease (`SharedLeases`, set
on the cache by `merkl.remotes.leases`), taken inside the local one, so one process per machine
asks the remote.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

LEASES_DIR = "leases"
RANGES_FILE = "ranges"  # the byte-range leases' file, in LEASES_DIR
_OFD = hasattr(fcntl, "F_OFD_SETLK")  # Linux 3.15+


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
    if _OFD:
        fd = _acquire_range(os.path.join(dot_dir, LEASES_DIR, RANGES_FILE), out_hash, before_wait)

        def release() -> None:
            os.close(fd)  # drops the lock: it belongs to this open file

    else:
        path = os.path.join(dot_dir, LEASES_DIR, out_hash)
        fd = _acquire(path, before_wait)

        def release() -> None:
            # Unlinked while still held: a waiter that opened this file sees it gone and
            # retries on a fresh one, so two holders can never lock two files of one hash.
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


def _open_creating(path: str) -> int:
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)


def _acquire_range(path: str, out_hash: str, before_wait: Callable[[], None] | None) -> int:
    """An open file of `path` holding the write lock on `out_hash`'s byte (see above)."""
    try:
        offset = int(out_hash[:15], 16)  # 60 bits of the hash: distinct outputs never meet
    except ValueError:
        offset = int.from_bytes(out_hash.encode()[:7].ljust(7, b"\0"), "big")
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding.
    lock = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, offset, 1, 0)
    fd = _open_creating(path)
    try:
        try:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if before_wait is not None:
                before_wait()
            fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, lock)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _acquire(path: str, before_wait: Callable[[], None] | None = None) -> int:
    while True:
        fd = _open_creating(path)
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
