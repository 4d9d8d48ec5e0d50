"""`gc --remote`: delete from a remote what no live root of any repository needs.

Under the remote's exclusive lock (`merkl.remotes.locks`; pushes hold it shared, so none is
half-way while gc looks), gc
1. reads every root and keeps the live ones (`merkl.remotes.roots.live_roots`),
2. marks the output records they name, and the objects those records and roots name (a
   record's batch manifest included),
3. lists `outputs/` and `objects/`; an unmarked key is deleted once it has been unmarked for
   `grace` seconds: the first gc to find it notes the time in `gc/pending`, later ones delete
   it when that is `grace` old (with `grace = 0`, at once). That protects keys written outside
   a push, such as write-through outputs of `read_through` remotes, for the grace window
   without needing write times the backends do not keep,
4. deletes records first, then objects, then superseded roots: a killed gc leaves at worst
   objects no record names, never a record without its object, so the remote stays readable.
   On S3 the second step also repacks packs whose dead share exceeds the remote's
   `max_unused` (`merkl.remotes.repack`).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from merkl.remotes.base import Reclaimed, Remote
from merkl.remotes.locks import GC, RemoteLock
from merkl.remotes.records import OBJECTS, OUTPUTS, object_key, record_key
from merkl.remotes.roots import Root, live_roots, read_roots

PENDING = "gc/pending"


@dataclass
class RemoteGcResult:
    deleted: list[str] = field(default_factory=list)  # keys deleted (or, dry run, to delete)
    kept: int = 0  # records and objects a live root needs
    waiting: int = 0  # unneeded, but inside the grace window
    live_roots: int = 0
    dead_roots: list[str] = field(default_factory=list)
    space: Reclaimed = field(default_factory=Reclaimed)  # bytes, and packs repacked (S3)


def collect_remote(
    remote: Remote, *, grace: float, dry_run: bool = False, lock_wait: float = 600.0
) -> RemoteGcResult:
    """Delete (or, with `dry_run`, list) the keys no live root needs.

    Raises:
        RemoteError: the remote cannot be used, a push holds its lock for `lock_wait` seconds,
            or a root is damaged (then nothing is deleted).
    """
    if not remote.supports_gc:
        raise remote.error(
            "gc --remote is not supported for this kind of remote yet",
            hint="it works on directory, S3, Redis and SQL remotes",
        )
    remote.prepare(write=True)
    lock = RemoteLock(remote, GC)
    lock.acquire(lock_wait)
    try:
        now = time.time()
        live, dead = live_roots(read_roots(remote), now, grace)
        needed = _needed_keys(remote, live)
        unneeded = {
            key
            for top in (OUTPUTS, OBJECTS)
            for key in remote.list(top + "/")
            if key not in needed
        }
        pending = _read_pending(remote)
        first_seen = {key: pending.get(key, now) for key in unneeded}
        doomed = [key for key, seen in first_seen.items() if now - seen >= grace]
        result = RemoteGcResult(
            deleted=sorted(doomed, key=lambda k: (not k.startswith(OUTPUTS), k)),
            kept=len(needed),
            waiting=len(unneeded) - len(doomed),
            live_roots=len(live),
            dead_roots=[root.key for root in dead],
        )
        if dry_run:
            result.space = remote.reclaim(result.deleted, dry_run=True)
            return result
        gone = set(doomed)
        state = {key: seen for key, seen in first_seen.items() if key not in gone}
        remote.put([(PENDING, orjson.dumps(state))])
        records = [key for key in result.deleted if key.startswith(OUTPUTS)]
        objects = [key for key in result.deleted if not key.startswith(OUTPUTS)]
        # Every record gone before any object; packs are repacked with the objects (a pack's
        # dead share is known once both are gone). `lock.check` before each batch: never
        # delete on a lock another process took for stale.
        first = remote.reclaim(records, repack=False, check=lock.check)
        result.space = remote.reclaim(objects, check=lock.check)
        result.space.sizes.update(first.sizes)
        result.space.freed += first.freed
        result.space.packs_deleted += first.packs_deleted
        remote.delete(result.dead_roots)
        return result
    finally:
        lock.release()


def _needed_keys(remote: Remote, live: list[Root]) -> set[str]:
    outputs = {h for root in live for h in root.outputs}
    objects = {oid for root in live for oid in root.objects}
    with tempfile.TemporaryDirectory(prefix="merkl-gc-") as folder:
        records, invalid = remote.fetch_outputs(outputs, Path(folder))
    for record in records.values():
        objects.add(record.entry.oid)
        if record.batch:
            objects.add(record.batch)
    del invalid  # kept like any named record; their objects are unknown
    return {record_key(h) for h in outputs} | {object_key(oid) for oid in objects}


def _read_pending(remote: Remote) -> dict[str, float]:
    data = remote.read_small(PENDING)
    if data is None:
        return {}
    try:
        state = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}  # a damaged note only restarts the grace clocks: safe
    return {str(k): float(v) for k, v in state.items()} if isinstance(state, dict) else {}
