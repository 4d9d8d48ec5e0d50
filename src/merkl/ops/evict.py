"""Bounded local caches: `[cache] max_size` / `max_age`, and `merkl cache clear --task`.

After `run`, `pull` and `track`, cached outputs are evicted least recently *used* first (last use
is written in one batch per command by `Cache.flush_use`, so a hit costs a set insertion) until
the outputs' objects fit in `max_size` and none was last used more than `max_age` ago. Never
evicted: objects of tracked files (work tree, git index, HEAD), outputs pinned by
`write_file(..., track=True)` (their pointer names them), objects of an unfinished track or
checkout, and anything while another merkl command runs: eviction takes the repository lock
exclusively *without waiting*, and skips this time when a command holds it. An evicted output is
recomputed, or pulled by read-through, when next needed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from merkl.cache.index import OutputEntry
from merkl.cache.lock import try_exclusive_lock
from merkl.ops.gc import protected_oids, tracked_pointers
from merkl.repo import Repo
from merkl.units import parse_duration, parse_size


@dataclass
class EvictResult:
    dropped: list[str] = field(default_factory=list)  # out_hashes no longer cached
    freed: int = 0
    skipped: bool = False  # another command held the repository lock


def cache_limits(repo: Repo) -> tuple[int | None, float | None]:
    """(`max_size` bytes, `max_age` seconds) from `[cache]`, None when unset.

    Raises:
        UsageError: a value is not a size or a duration.
    """
    table = repo.config.get("cache", {})
    size, age = table.get("max_size"), table.get("max_age")
    return (
        None if size is None else parse_size(str(size), "[cache] max_size in merkl.toml"),
        None if age is None else parse_duration(str(age), "[cache] max_age in merkl.toml"),
    )


def evict_if_configured(repo: Repo) -> EvictResult | None:
    """Apply `[cache]` limits, if any (called after run, pull and track)."""
    max_size, max_age = cache_limits(repo)
    if max_size is None and max_age is None:
        return None
    return evict(repo, max_size=max_size, max_age=max_age)


def evict(
    repo: Repo,
    *,
    max_size: int | None = None,
    max_age: float | None = None,
    only: set[str] | None = None,
) -> EvictResult:
    """Drop cached outputs, least recently used first, until within the limits; with `only`,
    drop exactly those out_hashes (protected ones excepted)."""
    result = EvictResult()
    with try_exclusive_lock(repo, "merkl cache eviction") as held:
        if not held:
            result.skipped = True
            return result
        pointers = tracked_pointers(repo)
        pinned = {p.output for p in pointers if p.output}
        keep = protected_oids(repo, pointers)
        entries = sorted(
            # Outputs whose object only a remote holds take no room here (`--worker-remote`).
            (pair for pair in repo.index.iter_output_use() if _held_here(repo, pair[0])),
            key=lambda pair: pair[1],
        )
        sizes = {entry.oid: entry.size for entry, _ in entries}
        total = sum(size for oid, size in sizes.items() if oid not in keep)
        cutoff = time.time() - max_age if max_age is not None else None
        doomed: list[OutputEntry] = []
        for entry, used in entries:
            if entry.out_hash in pinned or entry.oid in keep:
                continue
            if only is not None:
                wanted = entry.out_hash in only
            else:
                too_old = cutoff is not None and used < cutoff
                wanted = too_old or (max_size is not None and total > max_size)
            if wanted:
                doomed.append(entry)
                total -= entry.size if entry.oid in sizes else 0
                sizes.pop(entry.oid, None)
        _drop(repo, doomed, keep, result)
    return result


def _held_here(repo: Repo, entry: OutputEntry) -> bool:
    return entry.remote is None or repo.store.has(entry.oid)


def _drop(repo: Repo, doomed: list[OutputEntry], keep: set[str], result: EvictResult) -> None:
    # An output a worker stored on a remote keeps its row: only the local copy goes.
    repo.index.remove_outputs({entry.out_hash for entry in doomed if entry.remote is None})
    still = {entry.oid for entry in repo.index.iter_outputs() if entry.remote is None}
    freed = {entry.oid: entry.size for entry in doomed if entry.oid not in still | keep}
    repo.store.remove_many(freed)
    result.freed = sum(freed.values())
    result.dropped = sorted(entry.out_hash for entry in doomed)
