"""Compute once across machines: leases on a shared remote (`lease = true`).

Clones that share a remote with `read_through = true` and `lease = true` take, before computing
a missing output, the remote's lease on its hash (Redis: `SET leases/<hash> token NX PX ttl`;
SQL: a lease row, see `merkl.remotes.sql`).
The holder renews it every third of `lease_ttl` (default 15 s) from a background thread,
writes the outputs through to the remote as soon as they are stored, then drops the lease; a
clone that finds the lease taken polls until it is free and then reads the value through. A
holder that dies stops renewing: its lease expires within `lease_ttl` and a waiter takes over.

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
        remote = self._remote.open()
        name = LEASES + out_hash
        token = secrets.token_hex(16)
        ttl_ms = max(1, int(self.ttl * 1000))
        try:
            while remote is not None and not remote.try_lease(name, token, ttl_ms):
                time.sleep(min(0.2, self.ttl / 10))  # another clone computes it
        except MerklError as exc:
            self._remote.give_up(exc)
            remote = None
        if remote is None:
            yield
            return
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(remote, name, token, ttl_ms, stop), daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            with contextlib.suppress(MerklError):
                remote.release_lease(name, token)  # else it expires by itself

    def _renew(
        self, remote: Remote, name: str, token: str, ttl_ms: int, stop: threading.Event
    ) -> None:
        while not stop.wait(self.ttl / 3):
            try:
                if not remote.renew_lease(name, token, ttl_ms):
                    return  # expired (a long pause): another clone may compute it too
            except MerklError:
                return

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
