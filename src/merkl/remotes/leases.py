"""Compute once across machines: leases on a shared remote (`lease = true`).

Clones that share a remote with `read_through = true` and `lease = true` take, before computing
a missing output, the remote's lease on its hash (Redis: `SET leases/<hash> token NX PX ttl`;
SQL: a lease row, see `merkl.remotes.sql`). The holder renews it every third of `lease_ttl`
(default 15 s) from a background thread (one for all the leases an executor's run holds:
`HeldLeases`), writes the outputs through to the remote as soon as they are stored, then drops
the lease; a clone that finds the lease taken polls until it is free and then reads the value
through. A holder that dies stops renewing: its lease expires within `lease_ttl` and a waiter
takes over.

Only kinds with an atomic create-if-absent have leases (Redis, SQL); on others `lease = true` is
reported once and runs compute locally. A remote that fails is reported once and not asked
again in this process (as read-through does).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from merkl.errors import MerklError
from merkl.remotes.lazy import LazyRemote

if TYPE_CHECKING:
    from merkl.remotes.base import Remote
    from merkl.repo import Repo

LEASES = "leases/"  # key prefix on the remote


class RemoteLeases:
    """`Cache.shared_leases` over one remote, opened on first use (set up by
    `merkl.remotes.read_through.install_read_through`)."""

    DEFAULT_TTL = 15.0  # seconds a lease outlives its last renewal

    def __init__(self, repo: Repo, remote_name: str, ttl: float) -> None:
        self.repo = repo
        self.remote_name = remote_name
        self.ttl = ttl
        self._remote = LazyRemote(
            repo,
            remote_name,
            "leases on",
            "missing outputs are computed here without asking other clones",
        )

    @contextlib.contextmanager
    def hold(self, out_hash: str) -> Iterator[None]:
        held = self.many()
        try:
            held.take(out_hash)
            yield
        finally:
            held.close()

    def many(self) -> HeldLeases:
        return HeldLeases(self)

    def publish(self, out_hashes: list[str]) -> None:
        from merkl.remotes.signing import load_signer

        remote = self._remote.open()
        if remote is None:
            return
        index = self.repo.index
        entries = [e for e in map(index.find_output, out_hashes) if e is not None and e.pushable]
        if not entries:
            return
        try:
            pushed = remote.push(self.repo.store, [e.oid for e in entries], jobs=1)
            if not pushed.failed:
                remote.push_outputs(entries, signer=load_signer())
        except MerklError as exc:
            self._remote.give_up(exc)


class HeldLeases:
    """Leases on the remote that one thread takes and releases one by one (`many`: executors
    running many calls hold one per call), renewed together by one background thread."""

    def __init__(self, leases: RemoteLeases) -> None:
        self._leases = leases
        self._ttl_ms = max(1, int(leases.ttl * 1000))
        self._tokens: dict[str, str] = {}  # out_hash -> the token holding its lease
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_take(self, out_hash: str) -> bool:
        remote = self._leases._remote.open()
        if remote is None:
            return True  # no leases to be had: compute it here
        token = secrets.token_hex(16)
        try:
            if not remote.try_lease(LEASES + out_hash, token, self._ttl_ms):
                return False  # another clone computes it
        except MerklError as exc:
            self._leases._remote.give_up(exc)
            return True
        with self._lock:
            self._tokens[out_hash] = token
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew, args=(remote,), daemon=True)
            self._renewer.start()
        return True

    def take(self, out_hash: str) -> None:
        while not self.try_take(out_hash):
            time.sleep(min(0.2, self._leases.ttl / 10))

    def release(self, out_hash: str) -> None:
        with self._lock:
            token = self._tokens.pop(out_hash, None)
        if token is None:
            return
        remote = self._leases._remote.open()
        if remote is not None:
            with contextlib.suppress(MerklError):
                remote.release_lease(LEASES + out_hash, token)  # else it expires by itself

    def close(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        for out_hash in list(self._tokens):
            self.release(out_hash)

    def _renew(self, remote: Remote) -> None:
        while not self._stop.wait(self._leases.ttl / 3):
            with self._lock:
                held = list(self._tokens.items())
            for out_hash, token in held:
                try:
                    if not remote.renew_lease(LEASES + out_hash, token, self._ttl_ms):
                        # Expired (a long pause): another clone may compute it too.
                        with self._lock:
                            if self._tokens.get(out_hash) == token:
                                del self._tokens[out_hash]
                except MerklError:
                    return
