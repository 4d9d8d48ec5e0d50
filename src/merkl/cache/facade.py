"""The cache facade: find, load and save task outputs by Merkle hash.

Lookup order lives in one place, `Cache.find`: the process memory, then the local store and
index, then (when configured) remotes through `read_through`.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from merkl.cache.index import Index, OutputEntry, RunRecord
from merkl.cache.store import ObjectStore
from merkl.errors import CacheMissError, CorruptObjectError, SerializationError
from merkl.serializers import Serializer, get_serializer


class CachePolicy(enum.Enum):
    """Where a task output is cached."""

    EVERYWHERE = "everywhere"  # local store, and pushed to remotes
    LOCAL = "local"  # local store only, never pushed
    MEMORY = "memory"  # this process only
    NEVER = "never"  # recomputed every time


_MAX_MEMO_ENTRIES = 100_000
_MEMORY_ENTRY = OutputEntry("", "", "memory", 0, False)
_memory: dict[str, Any] = {}
_memory_lock = threading.Lock()


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
        # Outputs hit since the last `flush_use`: last use is written in one batch, not per hit.
        self.used: set[str] = set()

    def find(
        self, out_hash: str, policy: CachePolicy, serializer: str | None = None
    ) -> OutputEntry | None:
        """The entry for `out_hash` if some cache that `policy` allows holds it.

        With `serializer` (the task's own), an entry written by another serializer is refused
        and forgotten: a record from a remote must not change the type a task returns (a JSON
        task made to return bytes), and the output is computed again.
        """
        if policy is CachePolicy.NEVER:
            return None
        if policy is CachePolicy.MEMORY:
            return _MEMORY_ENTRY if out_hash in _memory else None
        entry = self._entries.get(out_hash)
        if entry is not None and _agrees(entry, serializer):
            self.used.add(out_hash)
            return entry  # `load` drops it if the object has gone since
        entry = self.index.find_output(out_hash)
        if entry is not None and not _agrees(entry, serializer):
            self._forget(out_hash)
            entry = None
        if entry is not None and self.store.has(entry.oid):
            if len(self._entries) >= _MAX_MEMO_ENTRIES:  # a long-lived server: stay bounded
                self._entries.clear()
            self._entries[out_hash] = entry
            self.used.add(out_hash)
            if len(self.used) >= _MAX_PENDING_USE:  # a long-lived process: flush now and then
                self.flush_use()
            return entry
        if self.read_through is not None and policy is CachePolicy.EVERYWHERE:
            entry = self.read_through(out_hash)
            if entry is not None and not _agrees(entry, serializer):
                self._forget(out_hash)
                return None
            return entry
        return None

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
        try:
            data = self.store.get_bytes(entry.oid)
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
        for (out_hash, value, serializer, policy), run in zip(outputs, runs, strict=True):
            size = 0
            if policy is CachePolicy.MEMORY:
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
                oid = self.store.put_bytes(data)
                pushable = policy is CachePolicy.EVERYWHERE
                entries.append(OutputEntry(out_hash, oid, serializer.name, size, pushable))
                values.append(serializer.load(data))
            logged.append(_with_size(run, size))
        self.index.add_outputs(entries, logged, code_parts)
        return values


def _agrees(entry: OutputEntry, serializer: str | None) -> bool:
    return serializer is None or entry.serializer == serializer


def _with_size(run: RunRecord, size: int) -> RunRecord:
    from dataclasses import replace

    return replace(run, size=size)
