"""The cache facade: find, load and save task outputs by Merkle hash.

Lookup order lives in one place, `Cache.find`: the process memory, then the local store and
index, then (when configured) remotes through `read_through`.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from merkl.cache.index import Index, OutputEntry, RunRecord
from merkl.cache.lease import SharedLeases
from merkl.cache.store import ObjectStore
from merkl.errors import CacheMissError, CorruptObjectError, MerklError, SerializationError
from merkl.hashing import hash_bytes
from merkl.serializers import Serializer, get_serializer


class CachePolicy(enum.Enum):
    """Where a task output is cached."""

    EVERYWHERE = "everywhere"  # local store, and pushed to remotes
    LOCAL = "local"  # local store only, never pushed
    MEMORY = "memory"  # this process only
    NEVER = "never"  # recomputed every time


_NEVER, _MEMORY = CachePolicy.NEVER, CachePolicy.MEMORY  # read on every hit: no enum lookups
_MAX_MEMO_ENTRIES = 100_000
_MEMORY_ENTRY = OutputEntry("", "", "memory", 0, False)
_memory: dict[str, Any] = {}
_memory_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class StoredElsewhere:
    """An output a Dask worker serialized and stored on a remote itself: what the driver
    records and passes on instead of the value (`merkl run --worker-remote`)."""

    entry: OutputEntry


class ObjectsElsewhere(Protocol):
    """A place holding objects the local store lacks but the index names (a worker remote)."""

    def fetch(self, oid: str, store: ObjectStore) -> None: ...


def clear_memory_cache() -> None:
    """Forget every memory-cached value in this process."""
    with _memory_lock:
        _memory.clear()


#: Hits remembered before their last use is written (one transaction per this many).
_MAX_PENDING_USE = 10_000


class Cache:
    """Task outputs by Merkle hash, over an object store and an index."""

    def __init__(self, store: ObjectStore, index: Index) -> None:
        self.store = store
        self.index = index
        # out_hash -> entry of earlier hits: a row never changes once written. If the object
        # is deleted later (gc), `load` raises CacheMissError and forgets the entry.
        self._entries: dict[str, OutputEntry] = {}
        # Set by remotes: fetch an output into the local store on a miss; returns the entry.
        self.read_through: Callable[[str], OutputEntry | None] | None = None
        # Set by `merkl.remotes`: the remote of a name, which an indexed output whose object a
        # worker stored there (`OutputEntry.remote`) is fetched from when its value is needed.
        self.remotes: Callable[[str], ObjectsElsewhere] | None = None
        # Set by a remote with `lease = true`: compute once across the clones sharing it.
        self.shared_leases: SharedLeases | None = None
        # Outputs hit since the last `flush_use`: last use is written in one batch, not per hit.
        self.used: set[str] = set()

    def batched(self) -> AbstractContextManager[None]:
        """A run: its index and run-log rows are written in batches (`Index.batched`)."""
        return self.index.batched(self.store.sync_objects)

    def find(
        self,
        out_hash: str,
        policy: CachePolicy,
        serializer: str | None = None,
        *,
        remote: bool = True,
        stat: bool = True,
    ) -> OutputEntry | None:
        """The entry for `out_hash` if some cache that `policy` allows holds it (with `remote`
        False, only this process and the local store are asked, not `read_through`).

        With `serializer` (the task's own), an entry written by another serializer is refused
        and forgotten: a record from a remote must not change the type a task returns (a JSON
        task made to return bytes), and the output is computed again.

        With `stat` False, an indexed output counts as held without checking its object: for
        a caller that `load`s it next, whose CacheMissError (the object has gone) sends it to
        the planner, which asks again with `stat` (and then the remotes).
        """
        if policy is _NEVER:
            return None
        if policy is _MEMORY:
            return _MEMORY_ENTRY if out_hash in _memory else None
        entry = self._entries.get(out_hash)
        if entry is not None and (serializer is None or entry.serializer == serializer):
            self.used.add(out_hash)
            return entry  # `load` drops it if the object has gone since
        entry = self.index.find_output(out_hash)
        if entry is not None and not _agrees(entry, serializer):
            self._forget(out_hash)
            entry = None
        if entry is not None and (
            not stat or entry.remote is not None or self.store.has(entry.oid)
        ):
            if len(self._entries) >= _MAX_MEMO_ENTRIES:  # a long-lived server: stay bounded
                self._entries.clear()
            self._entries[out_hash] = entry
            self.used.add(out_hash)
            if len(self.used) >= _MAX_PENDING_USE:  # a long-lived process: flush now and then
                self.flush_use()
            return entry
        if remote and self.read_through is not None and policy is CachePolicy.EVERYWHERE:
            entry = self.read_through(out_hash)
            if entry is not None and not _agrees(entry, serializer):
                self._forget(out_hash)
                return None
            return entry
        return None

    def find_many(
        self, wanted: Iterable[tuple[str, CachePolicy, str | None]]
    ) -> dict[str, OutputEntry]:
        """`find` of many (out_hash, policy, serializer): the found entries by hash, with one
        index query per 500 hashes and one listing per crowded object folder, not a query and
        a `stat` per output (`merkl run --dry`, `merkl dag` over thousands of nodes)."""
        found: dict[str, OutputEntry] = {}
        lookup: list[tuple[str, CachePolicy, str | None]] = []
        for out_hash, policy, serializer in wanted:
            entry = self._entries.get(out_hash)
            if policy in (CachePolicy.NEVER, CachePolicy.MEMORY):
                if self.find(out_hash, policy, serializer) is not None:
                    found[out_hash] = _MEMORY_ENTRY
            elif entry is not None and _agrees(entry, serializer):
                found[out_hash] = entry
            else:
                lookup.append((out_hash, policy, serializer))
        rows = self.index.find_outputs(h for h, _, _ in lookup)
        present = self.store.find_present({entry.oid for entry in rows.values()})
        for out_hash, policy, serializer in lookup:
            entry = rows.get(out_hash)
            if (
                entry is not None
                and (entry.oid in present or entry.remote is not None)
                and _agrees(entry, serializer)
            ):
                if len(self._entries) >= _MAX_MEMO_ENTRIES:
                    self._entries.clear()
                self._entries[out_hash] = entry
                found[out_hash] = entry
            elif entry is not None or self.read_through is not None:
                # A disagreeing serializer, a missing object or a remote: `find` decides.
                entry = self.find(out_hash, policy, serializer)
                if entry is not None:
                    found[out_hash] = entry
        self.used.update(h for h, entry in found.items() if entry is not _MEMORY_ENTRY)
        if len(self.used) >= _MAX_PENDING_USE:
            self.flush_use()
        return found

    def flush_use(self) -> None:
        """Write the last use of the outputs hit since the previous flush (LRU eviction)."""
        if self.used:
            used, self.used = self.used, set()
            self.index.mark_used(used, time.time())

    def _forget(self, out_hash: str) -> None:
        self._entries.pop(out_hash, None)
        self.index.remove_outputs([out_hash])

    def load(self, out_hash: str, entry: OutputEntry) -> Any:
        """The value of a found output; a corrupt object becomes a CacheMissError."""
        if entry is _MEMORY_ENTRY:
            try:
                return _memory[out_hash]
            except KeyError:
                raise CacheMissError(f"output {out_hash[:12]} left the memory cache") from None
        if entry.remote is not None and not self.store.has(entry.oid):
            self._fetch(out_hash, entry)
        try:
            data = self.store.get_bytes(entry.oid, size=entry.size)
        except FileNotFoundError:
            self._entries.pop(out_hash, None)
            raise CacheMissError(
                f"output {out_hash[:12]} is indexed but object {entry.oid[:12]} is missing",
                out_hash=out_hash,
            ) from None
        except CorruptObjectError:
            self._entries.pop(out_hash, None)
            self.index.remove_outputs([out_hash])
            raise
        serializer = get_serializer(entry.serializer)
        try:
            return serializer.load(data)
        except SerializationError:
            raise
        except Exception as exc:
            raise SerializationError(
                f"cannot load output {out_hash[:12]} with serializer {entry.serializer!r}: {exc}"
            ) from exc

    def _fetch(self, out_hash: str, entry: OutputEntry) -> None:
        """Bring the object of an output stored on remote `entry.remote` into the store."""
        if self.remotes is None:
            raise CacheMissError(
                f"output {out_hash[:12]} is on remote {entry.remote!r}, which this process "
                f"cannot open",
                out_hash=out_hash,
            )
        try:
            self.remotes(entry.remote or "").fetch(entry.oid, self.store)
        except MerklError as exc:
            self._entries.pop(out_hash, None)
            raise CacheMissError(
                f"output {out_hash[:12]} is on remote {entry.remote!r} but cannot be fetched "
                f"from it: {exc}",
                out_hash=out_hash,
            ) from exc

    def save(
        self,
        outputs: list[tuple[str, Any, Serializer, CachePolicy]],
        runs: list[RunRecord],
        code_parts: Mapping[str, Mapping[str, str]] | None = None,
    ) -> list[Any]:
        """Store computed outputs as their policies say; return the values as a later cache hit
        would give them back (serialized and loaded), so first and later runs agree.

        `outputs` holds (out_hash, value, serializer, policy); `runs` the matching log rows,
        whose sizes are filled in here; `code_parts` the parts of their code hashes.
        """
        values: list[Any] = []
        entries: list[OutputEntry] = []
        logged: list[RunRecord] = []
        blobs: dict[str, bytes] = {}  # small outputs: stored inline, with their rows
        for (out_hash, value, serializer, policy), run in zip(outputs, runs, strict=True):
            size = 0
            if isinstance(value, StoredElsewhere):  # indexed only: its object is on a remote
                entries.append(value.entry)
                size = value.entry.size
                values.append(value)
            elif policy is CachePolicy.MEMORY:
                with _memory_lock:
                    _memory[out_hash] = value
                values.append(value)
            elif policy is CachePolicy.NEVER:
                values.append(value)
            else:
                try:
                    data = serializer.dump(value)
                except SerializationError as exc:
                    exc.out_hash = out_hash  # type: ignore[attr-defined]  # names the output
                    raise
                size = len(data)
                oid = hash_bytes(data)
                if self.store.inlines(size):
                    blobs[oid] = data
                else:  # in a run, the fsync waits for the batch: one `syncfs` before its rows
                    self.store.put_bytes(data, oid, sync=not self.index.hold_object(oid))
                pushable = policy is CachePolicy.EVERYWHERE
                entries.append(OutputEntry(out_hash, oid, serializer.name, size, pushable))
                values.append(serializer.load(data))
            logged.append(_with_size(run, size))
        self.index.add_outputs(entries, logged, code_parts, blobs)
        return values


def _agrees(entry: OutputEntry, serializer: str | None) -> bool:
    return serializer is None or entry.serializer == serializer


def _with_size(run: RunRecord, size: int) -> RunRecord:
    # Spelled out: `dataclasses.replace` cost more than the rest of storing a tiny output.
    return RunRecord(
        run.out_hash,
        run.out_index,
        run.task,
        run.module,
        run.code_hash,
        run.args_hash,
        run.arg_hashes,
        run.parents,
        run.duration,
        size,
        run.time,
        run.arg_values,
    )
