"""Compute once: a lease on an output hash, held while one process computes that output.

Concurrent runs of one repository (processes, or threads of one process) that miss the same
output would each compute it. Before computing, a run takes the lease on the output's hash:
an exclusive `flock` on `.merkl/leases/<hash>`; a second run blocks there, and once it holds
the lease finds the output in the cache and loads it instead of computing it.

On Linux the lease is a one-byte lock, at an offset taken from the hash, in one of 256
shared files (`.merkl/leases/ranges.N`, an open-file-description lock: `F_OFD_SETLK`) rather
than a file of its own: creating and unlinking a file per computed output cost 0.1-0.4 ms
on this machine's file system, more than a tiny task's whole bookkeeping; opening an existing
file costs a few µs. Elsewhere it is an exclusive `flock` on `.merkl/leases/<hash>`, a file
that exists only while held.

The lease needs no heartbeat: the kernel drops either lock the moment its holder dies, even by
kill -9, so a waiter takes over at once and computes the output itself. (A holder that hangs
without dying keeps its lease, as it would keep a heartbeat going.) Both locks belong to an
open file, so threads of one process exclude each other as processes do. An executor's
coordinating thread that holds a lease per call keeps them all on one open file per ranges file
(`LeaseFile`).

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
RANGES_FILE = "ranges"  # the byte-range leases' files: ranges.0 ... ranges.255, in LEASES_DIR
# The kernel checks a new lock against every lock on its file (a list per inode), so a run
# holding all its leases at once (Dask) would take them in quadratic time on one file (30,000
# locks: 19.6 s here). Over 256 files 100,000 took 3.1-3.6 s (64 files: 9.5 s), for at most
# 256 open files per run.
RANGE_SHARDS = 256
_OFD = hasattr(fcntl, "F_OFD_SETLK")  # Linux 3.15+


class SharedLeases(Protocol):
    """Leases shared by the clones of one remote (`Cache.shared_leases`)."""

    def hold(self, out_hash: str) -> AbstractContextManager[None]:
        """Hold the remote's lease on `out_hash`, waiting while another clone holds it."""

    def many(self) -> HeldShared:
        """An empty set of leases one thread takes and releases one by one (executors that
        run many calls at a time), renewed together."""

    def publish(self, out_hashes: list[str]) -> None:
        """Write the just-stored outputs through to the remote, for the clones waiting."""


class HeldShared(Protocol):
    """Leases on a remote held by one thread (`SharedLeases.many`)."""

    def try_take(self, out_hash: str) -> bool:
        """Take the lease on `out_hash` unless another clone holds it (False). True also when
        the remote cannot give leases (reported once): the caller then computes it anyway."""

    def take(self, out_hash: str) -> None:
        """`try_take` until it succeeds."""

    def release(self, out_hash: str) -> None:
        """Drop the lease on `out_hash` if held."""

    def close(self) -> None:
        """Release every lease still held."""


class Lease:
    """A held lease; `release()` it, or `settle(defer)` once its output is stored."""

    __slots__ = ()

    def release(self) -> None:
        """Let the next waiter in (idempotent)."""
        raise NotImplementedError

    def settle(self, defer: Callable[[Callable[[], None]], bool] | None) -> None:
        """The output is stored: release once its index rows are written (`output_lease`)."""
        if defer is None or not defer(self.release):
            self.release()


class _FileLease(Lease):
    """A lease that is a whole open file: a per-hash flock'd file, or the ranges file."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str | None, fd: int) -> None:
        self.path = path  # the per-hash file to unlink on release; None for a byte-range lock
        self.fd: int | None = fd

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        if self.path is not None:
            # Unlinked while still held: a waiter that opened this file sees it gone and
            # retries on a fresh one, so two holders can never lock two files of one hash.
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(fd)  # drops the lock: it belongs to this open file


class LeaseFile:
    """Many leases of one thread on one open file per ranges file (executors that hold a lease
    per call).

    An OFD lock belongs to an open file description, and one description holds locks on any
    number of bytes: a run that holds all its plan's leases at once (Dask) needs at most
    `RANGE_SHARDS` open files, not one per lease, whatever the open-file limit. Another open
    of a file (another thread or process) still conflicts with every byte held here. A file is
    closed once its last lease there is released. Not thread-safe: one thread's leases.
    Without OFD locks each lease is a file of its own (`take_lease`).
    """

    SHARED_FILES = _OFD  # False: one open file per held lease

    def __init__(self, dot_dir: Path) -> None:
        self.dot_dir = dot_dir
        self._open: dict[str, _Shard] = {}  # by path: the ranges files this holds leases on

    def take(
        self, out_hash: str, before_wait: Callable[[], None] | None = None, *, wait: bool = True
    ) -> Lease | None:
        """The lease on `out_hash`; without `wait`, None at once if another holds it."""
        if not _OFD:
            return _take(self.dot_dir, out_hash, before_wait, wait=wait)
        path, offset = _range_of(self.dot_dir, out_hash)
        shard = self._open.get(path)
        if shard is None:
            shard = self._open[path] = _Shard(_open_creating(path))
        shard.held += 1  # the file stays open while this waits
        try:
            taken = _lock_range(shard.fd, offset, before_wait, wait=wait)
        except BaseException:
            self._drop(path)
            raise
        if not taken:
            self._drop(path)
            return None
        return _RangeLease(self, path, offset)

    def _unlock(self, path: str, offset: int) -> None:
        fcntl.fcntl(self._open[path].fd, fcntl.F_OFD_SETLK, _flock(fcntl.F_UNLCK, offset))
        self._drop(path)

    def _drop(self, path: str) -> None:
        shard = self._open[path]
        shard.held -= 1
        if shard.held == 0:
            del self._open[path]
            os.close(shard.fd)


class _Shard:
    """One ranges file open in a `LeaseFile`, and how many leases it holds there."""

    __slots__ = ("fd", "held")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.held = 0


class _RangeLease(Lease):
    """One byte locked on a `LeaseFile`: released by unlocking it, the file stays open."""

    __slots__ = ("file", "offset", "path")

    def __init__(self, file: LeaseFile, path: str, offset: int) -> None:
        self.file: LeaseFile | None = file
        self.path = path
        self.offset = offset

    def release(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            file._unlock(self.path, self.offset)


def take_lease(
    dot_dir: Path, out_hash: str, before_wait: Callable[[], None] | None = None
) -> Lease:
    """The lease on `out_hash`, waiting while another holds it (`before_wait()` first)."""
    lease = _take(dot_dir, out_hash, before_wait, wait=True)
    assert lease is not None
    return lease


def try_lease(dot_dir: Path, out_hash: str) -> Lease | None:
    """The lease on `out_hash` if nobody holds it, else None at once (executors that run many
    calls at a time take leases without blocking, and retry the busy ones later)."""
    return _take(dot_dir, out_hash, None, wait=False)


def _take(
    dot_dir: Path, out_hash: str, before_wait: Callable[[], None] | None, *, wait: bool
) -> Lease | None:
    if _OFD:
        fd = _acquire_range(*_range_of(dot_dir, out_hash), before_wait, wait=wait)
        return None if fd is None else _FileLease(None, fd)
    path = os.path.join(dot_dir, LEASES_DIR, out_hash)
    fd = _acquire(path, before_wait, wait=wait)
    return None if fd is None else _FileLease(path, fd)


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


def _open_creating(path: str) -> int:
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)


def _range_of(dot_dir: Path, out_hash: str) -> tuple[str, int]:
    """The ranges file and the byte in it that are the lease on `out_hash`."""
    try:
        offset = int(out_hash[:15], 16)  # 60 bits of the hash: distinct outputs never meet
    except ValueError:
        offset = int.from_bytes(out_hash.encode()[:7].ljust(7, b"\0"), "big")
    name = f"{RANGES_FILE}.{offset % RANGE_SHARDS}"
    return os.path.join(dot_dir, LEASES_DIR, name), offset


def _flock(kind: int, offset: int) -> bytes:
    """struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding."""
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)


def _acquire_range(
    path: str, offset: int, before_wait: Callable[[], None] | None, *, wait: bool
) -> int | None:
    """An open file of `path` holding the write lock on byte `offset` (see above)."""
    fd = _open_creating(path)
    try:
        if _lock_range(fd, offset, before_wait, wait=wait):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _lock_range(
    fd: int, offset: int, before_wait: Callable[[], None] | None, *, wait: bool
) -> bool:
    """Write-lock byte `offset` on the open file `fd`; False if another holds it and not `wait`."""
    lock = _flock(fcntl.F_WRLCK, offset)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, lock)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        if not wait:
            return False
        if before_wait is not None:
            before_wait()
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, lock)
    return True


def _acquire(
    path: str, before_wait: Callable[[], None] | None = None, *, wait: bool
) -> int | None:
    while True:
        fd = _open_creating(path)
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
