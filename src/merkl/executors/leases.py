"""Compute once on the executors that run many calls at a time (threads, processes, Dask).

Their coordinating thread, the one that stores every output, takes the lease on a call's
first output (`merkl.cache.lease`) before the call goes to a worker, and settles it once the
outputs are stored; workers never touch the repository. A worker that dies, even by kill -9,
fails its call in the coordinator, which releases that lease at once; a coordinator that dies
drops its locks with it. A lease another process holds is never waited for while this run
holds others, except in hash order (`take_all`), so two runs cannot wait for each other.

A run's leases are bytes locked on one open file per ranges file (`LeaseFile`: 256 at most),
so Dask holds its whole plan's leases whatever the open-file limit. With a remote's shared
lease (`lease = true`) a call also takes that, inside the local one and the same way (without
waiting, or in hash order for `take_all`); its outputs are written through to the remote
before that lease is released.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable, Iterable
from typing import Any

from merkl.cache.index import OutputEntry
from merkl.cache.lease import Lease, LeaseFile
from merkl.executors.base import leased, shared_leased
from merkl.graph import Plan
from merkl.placeholder import Lazy, Placeholder, cached_values
from merkl.session import Session
from merkl.tasks import Call

#: Seconds between two tries of a lease another process holds.
RETRY_SECONDS = 0.02
#: Open files kept free for everything but leases (sockets to the cluster, the index, ...).
_OTHER_FILES = 512


class RunLeases:
    """The leases one run's coordinator holds, by call."""

    def __init__(self, session: Session) -> None:
        self.repo = repo = session.require_repo() if session.use_cache else None
        self.file = LeaseFile(repo.dot_dir) if repo is not None else None
        self.held: dict[Call, Lease] = {}
        self.shared = repo.cache.shared_leases if repo is not None else None
        self.shared_held = self.shared.many() if self.shared is not None else None
        self.sharing: set[Call] = set()  # calls holding the shared lease too

    def _shares(self, call: Call) -> bool:
        """Whether `call` takes the remote's shared lease as well."""
        return self.shared_held is not None and shared_leased(call)

    def _first(self, call: Call) -> str | None:
        """The hash the lease of `call` is on; None when `call` takes no lease."""
        if self.repo is None or not leased(call):
            return None
        return call.outputs[0].hash

    def claim(self, call: Call) -> list[Any] | bool:
        """Take the lease of `call` without waiting. True: this run holds it (or `call` needs
        none) and computes `call`; False: another process holds it, try again later; a list:
        the outputs of `call`, stored meanwhile by another process (no lease is kept)."""
        first = self._first(call)
        if first is None:
            return True
        assert self.repo is not None
        assert self.file is not None
        lease = self.file.take(first, wait=False)
        if lease is None:
            return False
        cache = self.repo.cache
        stored = cached_values(call.outputs, cache, remote=False)
        if stored is None and self._shares(call):
            assert self.shared_held is not None
            if not self.shared_held.try_take(first):
                lease.release()  # another clone computes it: try again later
                return False
            stored = cached_values(call.outputs, cache)  # by another clone?
            if stored is not None:
                self.shared_held.release(first)
        if stored is not None:
            lease.release()
            return stored
        self.held[call] = lease
        if self._shares(call):
            self.sharing.add(call)
        return True

    def take_all(self, plan: Plan, wanted: Callable[[Lazy], bool]) -> None:
        """Hold the leases of every call of `plan` (waiting for other holders, in hash order),
        then drop from `plan` the calls another process stored meanwhile, and the calls only
        they needed (for executors that submit a whole plan at once: Dask)."""
        if self.repo is None:
            return
        assert self.file is not None
        cache = self.repo.cache
        by_hash: dict[str, Call] = {}
        for call in plan.calls:
            if first := self._first(call):
                by_hash.setdefault(first, call)  # the call that runs (not a later twin)
        firsts = sorted(by_hash)
        room = len(firsts) if LeaseFile.SHARED_FILES else _open_files_room(len(firsts))
        if room < len(firsts):
            print(
                f"merkl: this run leases {room} of its {len(firsts)} calls (the open-file limit "
                f"is too low for one lease each): concurrent runs may compute the others twice",
                file=sys.stderr,
            )
        for first in firsts[:room]:
            call = by_hash[first]
            lease = self.file.take(first, cache.index.flush)
            assert lease is not None
            self.held[call] = lease
            if self._shares(call) and cached_values(call.outputs, cache, remote=False) is None:
                assert self.shared_held is not None
                self.shared_held.take(first)  # in hash order too: after the local lease
                self.sharing.add(call)
        found: dict[Placeholder, OutputEntry] = {}
        for call in self.held:
            remote = call in self.sharing  # stored by another clone meanwhile?
            entries = {p: p.find_cached(cache, remote=remote) for p in call.outputs}
            if all(entry is not None for entry in entries.values()):
                found.update({p: e for p, e in entries.items() if e is not None})
        if found:
            plan.cached.update(found)
            plan.calls[:] = _still_needed(plan, {p.hash for p in found}, wanted)
            for call in set(self.held) - set(plan.calls):
                self.failed(call)

    def stored(self, call: Call) -> None:
        """The outputs of `call` are stored: write them through to the shared remote and
        release its shared lease, and release its local lease once their rows are written."""
        lease = self.held.pop(call, None)
        if lease is None:
            return
        assert self.repo is not None
        self._drop_shared(call, publish=True)
        lease.settle(self.repo.cache.index.after_flush)

    def failed(self, call: Call) -> None:
        """`call` did not run to the end: let another process compute it now."""
        lease = self.held.pop(call, None)
        self._drop_shared(call, publish=False)
        if lease is not None:
            lease.release()

    def _drop_shared(self, call: Call, *, publish: bool) -> None:
        """Release the shared lease of `call` if it holds one; first, with `publish`, write
        its stored outputs through to the remote (for the clones waiting for them)."""
        if call not in self.sharing or self.shared is None or self.shared_held is None:
            return
        self.sharing.discard(call)
        if publish:
            self.shared.publish([p.hash or "" for p in call.outputs])
        self.shared_held.release(call.outputs[0].hash or "")

    def release_all(self) -> None:
        """Release the leases of calls whose outputs were not stored (an interrupted run)."""
        if self.shared_held is not None:
            self.shared_held.close()
        self.sharing.clear()
        for lease in self.held.values():
            lease.release()
        self.held.clear()

    def write_rows(self) -> None:
        """Write this thread's pending index rows, which releases the leases settled until
        then: before waiting for another process, which may be waiting for one of them."""
        if self.repo is not None:
            self.repo.cache.index.flush()


def _open_files_room(wanted: int) -> int:
    """How many leases (one open file each) this process can hold at once, besides what it
    opens otherwise; raises the soft open-file limit up to the hard one when `wanted` needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted + _OTHER_FILES > soft and soft != resource.RLIM_INFINITY:
        target = hard if hard == resource.RLIM_INFINITY else min(hard, wanted + _OTHER_FILES)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return wanted if soft == resource.RLIM_INFINITY else max(0, min(wanted, soft - _OTHER_FILES))


def _still_needed(
    plan: Plan, found: set[str | None], wanted: Callable[[Lazy], bool]
) -> list[Call]:
    """The calls of `plan` (in order) still to run once the outputs `found` are cached: those
    whose outputs are wanted, or read by a call still to run."""
    needed: set[str | None] = set()
    kept: list[Call] = []
    for call in reversed(plan.calls):
        first = call.outputs[0].hash
        if first in found:
            continue
        if first in needed or any(wanted(p) for p in call.outputs):
            kept.append(call)
            needed.update(_produced(call.deps, found))
    return kept[::-1]


def _produced(deps: Iterable[Lazy], found: set[str | None]) -> Iterable[str | None]:
    """The first-output hashes of the calls producing `deps` that are not cached."""
    for dep in deps:
        if isinstance(dep, Placeholder) and dep.hash not in found:
            yield dep.call.outputs[0].hash
