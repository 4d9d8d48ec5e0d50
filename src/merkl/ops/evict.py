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

import atexit
import contextlib
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from merkl.cache.index import OutputEntry
from merkl.cache.lock import held_here, try_exclusive_lock
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
    watch = _watches.get(repo.dot_dir)
    if watch is not None:  # this command's own evaluations need no other check
        watch.grown = False
    return evict(repo, max_size=max_size, max_age=max_age)


# -- after library evaluations ---------------------------------------------------------------
# A script, notebook or server calling `.get()` / `merkl.evaluate` runs no command after
# which to evict, so the evaluations that computed something check the limits themselves:
# the first in the process at once, later ones at most every `CHECK_SECONDS`, and the process
# once more as it exits. A size limit is checked with one SUM over the index first, and the
# eviction runs only when the cache grew past the limit (or past what the last eviction left:
# protected outputs alone may exceed it). Cache hits never check anything.

CHECK_SECONDS = 30.0


@dataclass
class _Watch:
    due: float = 0.0  # time.monotonic() of the next check
    grown: bool = False  # an evaluation computed outputs since the last check
    floor: int = 0  # bytes of outputs the last eviction left (protected ones)
    # The open caches of this repository, whose hits are written at exit.
    repos: weakref.WeakSet[Repo] = field(default_factory=weakref.WeakSet)


_watches: dict[Path, _Watch] = {}


def watch_limits(repo: Repo) -> None:
    """Apply this repository's `[cache]` limits after library evaluations (called when the
    cache opens and the limits are set), and record hits for LRU before the process exits."""
    watch = _watches.get(repo.dot_dir)
    if watch is None:
        watch = _watches[repo.dot_dir] = _Watch()
        atexit.register(_at_exit, watch)
    watch.repos.add(repo)


def evict_after_evaluation(repo: Repo) -> EvictResult | None:
    """After an evaluation that computed outputs: evict if the cache grew past its limits
    (see above); None when nothing was checked."""
    watch = _watches.get(repo.dot_dir)
    if watch is None:
        return None
    watch.grown = True
    # A command or another evaluation of this process still reads the cache: it checks later.
    if time.monotonic() < watch.due or held_here(repo):
        return None
    return _check(repo, watch)


def _check(repo: Repo, watch: _Watch) -> EvictResult | None:
    watch.due = time.monotonic() + CHECK_SECONDS
    watch.grown = False
    max_size, max_age = cache_limits(repo)
    repo.cache.flush_use()
    if max_age is None and (
        max_size is None or repo.index.outputs_size() <= max(max_size, watch.floor)
    ):
        return None
    result = evict(repo, max_size=max_size, max_age=max_age)
    if result.skipped:
        watch.grown = True  # another process reads the cache now: try again later
    else:
        watch.floor = repo.index.outputs_size()
    return result


def _at_exit(watch: _Watch) -> None:
    # Best effort: the repository may be gone, or another process holds it.
    with contextlib.suppress(Exception):
        repos = list(watch.repos)
        for repo in repos:
            repo.cache.flush_use()
        if repos and watch.grown and not held_here(repos[0]):
            _check(repos[0], watch)


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
