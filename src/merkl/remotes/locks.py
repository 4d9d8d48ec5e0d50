"""Locks on a remote: pushes hold one shared, `gc --remote` holds one exclusively (as restic's
backup and prune do).

A lock is a small key `locks/<kind>-<nonce>` holding `{"kind", "time", "host", "pid"}`. It is
taken by *create, then check*: write our key, list `locks/`, and back off (delete ours, wait a
random moment, retry) when a conflicting live lock is there: for a push, a `gc` lock; for gc,
any other lock. Two processes racing both see each other's key, so at most one side proceeds;
this needs only that a listing shows every key written before it started, which directories,
Redis, SQL and S3 (strongly consistent since 2020) all give. A holder rewrites its key every
`timeout / 4` seconds; a lock not rewritten for `timeout` seconds (option `lock_timeout`,
default 1800) belongs to a killed process and is ignored and removed.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson

from merkl.errors import RemoteError

if TYPE_CHECKING:
    from merkl.remotes.base import Remote

LOCKS = "locks"
PUSH = "push"
GC = "gc"
DEFAULT_TIMEOUT = 1800.0
DEFAULT_WAIT = 600.0


def lock_timeout(remote: Remote) -> float:
    return float(remote.options.get("lock_timeout", DEFAULT_TIMEOUT))


class RemoteLock:
    """One lock held on a remote; `refresh` it (a background thread does) until `release`."""

    def __init__(self, remote: Remote, kind: str) -> None:
        self.remote = remote
        self.kind = kind
        self.key = f"{LOCKS}/{kind}-{secrets.token_hex(8)}"
        self.timeout = lock_timeout(remote)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False
        self.lost = False

    def _write(self) -> None:
        body = {"kind": self.kind, "time": time.time(), "host": socket.gethostname()}
        self.remote.put([(self.key, orjson.dumps({**body, "pid": os.getpid()}))])

    def try_acquire(self) -> str:
        """Take the lock, or return who holds a conflicting one (then nothing is held)."""
        self._write()
        conflicts = [
            holder
            for key, holder in live_locks(self.remote, self.timeout)
            if key != self.key and (self.kind == GC or holder.startswith(GC))
        ]
        if conflicts:
            self.remote.delete([self.key])
            return conflicts[0]
        return ""

    def acquire(self, wait: float = DEFAULT_WAIT) -> None:
        """Take the lock, retrying with random back-off for up to `wait` seconds.

        Raises:
            RemoteError: another process holds a conflicting lock all that time.
        """
        deadline = time.monotonic() + wait
        pause = 0.05
        while True:
            holder = self.try_acquire()
            if not holder:
                break
            if time.monotonic() > deadline:
                what = "a push" if self.kind == GC else "`merkl gc --remote`"
                raise self.remote.error(
                    f"{what} holds the remote's lock ({holder})",
                    hint="retry when it has finished; a lock of a killed process expires "
                    f"after lock_timeout = {self.timeout:g} s",
                )
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, 2.0)
        self.held = True
        self.remote.forget()  # what was read before the lock may have changed since
        self._thread = threading.Thread(target=self._keep_fresh, daemon=True)
        self._thread.start()

    def _keep_fresh(self) -> None:
        while not self._stop.wait(self.timeout / 4):
            with contextlib.suppress(RemoteError):
                if not self.remote.has([self.key]):  # removed as a dead process's: stays lost
                    self.lost = True
                    return
                self._write()

    def check(self) -> None:
        """Fail unless our lock is still on the remote (nobody took it for a dead one)."""
        if self.lost or not self.remote.has([self.key]):
            raise self.remote.error(
                f"lost its lock {self.key} (it was taken for a dead process's)",
                hint="raise lock_timeout if this process was paused that long",
            )

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.remote.delete([self.key])

    def __enter__(self) -> RemoteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def live_locks(remote: Remote, timeout: float) -> Iterator[tuple[str, str]]:
    """(key, description) of each lock refreshed in the last `timeout` seconds; stale locks
    (their holder was killed) are removed on the way."""
    now = time.time()
    for key in sorted(remote.list(LOCKS + "/")):
        body = _read(remote, key)
        if body is None:  # released while we listed
            continue
        age = now - float(body.get("time", 0))
        if age > timeout:
            with contextlib.suppress(RemoteError):
                remote.delete([key])
            continue
        yield key, f"{body.get('kind')} by pid {body.get('pid')} on {body.get('host')}"


def _read(remote: Remote, key: str) -> dict[str, Any] | None:
    data = remote.read_small(key)
    if data is None:
        return None
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {"kind": "unreadable", "time": 0}
    return body if isinstance(body, dict) else {"kind": "unreadable", "time": 0}
