"""`merkl gc`: delete objects nothing needs any more, and say how much that frees.

An object is kept when
- a pointer file in the work tree, in HEAD's tree or staged in the git index needs it (a
  tracked file, a directory manifest or member); with `all_commits`, any commit's pointer too,
- a file of the work tree links to it: a symlink into the store, or a hard link (the object's
  inode has other names), even if no pointer names it (a `track` killed half-way, an edit
  re-homed by `checkout`),
- an intent record of a `track` or `checkout` names it (`merkl.tracking.journal`),
- it is an edit made in place through a link and re-homed, not yet recorded by a pointer
  (`merkl.tracking.integrity`),
- it is a cached task output, unless `keep_days` is given and the output was last computed
  more than that many days ago (its index entry is dropped too). By default every cached
  output is kept: deleting them would silently turn the next `merkl run` into a full
  recomputation, which is not what cleaning up tracked data should do.

gc holds the repository lock exclusively (`merkl.cache.lock`): it waits for running tracks,
checkouts, pulls and runs, which hold it shared, so it never sees their objects half-recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from merkl.cache.lock import exclusive_lock
from merkl.errors import UsageError
from merkl.pointer import Pointer
from merkl.repo import Repo
from merkl.tracking import iter_pointer_oids
from merkl.tracking.gitindex import head_and_index_pointers
from merkl.tracking.integrity import rehomed_oids
from merkl.tracking.journal import read_intents
from merkl.tracking.worktree import iter_tracked, work_tree_links

_STALE_TMP_SECONDS = 24 * 3600  # older temporary files are leftovers of killed processes


@dataclass
class GcResult:
    """What gc removed (or, with dry_run, would remove)."""

    removed: list[tuple[str, int]] = field(default_factory=list)  # (oid, size)
    kept: int = 0
    dropped_outputs: list[str] = field(default_factory=list)  # out_hashes no longer cached
    stale_tmp_files: int = 0
    freed: int = 0
    dry_run: bool = False
    unreadable_history_pointers: int = 0


def gc(
    repo: Repo,
    *,
    all_commits: bool = False,
    keep_days: float | None = None,
    dry_run: bool = False,
    only: set[str] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> GcResult:
    """Remove unreferenced objects from the local store (see the module docstring).

    `only`: delete no object outside this set (what the user was shown and approved).
    `on_wait(holders)` is called if gc must wait for the repository lock.

    Raises:
        UsageError: `keep_days` is negative.
        PointerFileError: a pointer in the work tree is invalid (gc stops rather than guess).
        TrackingError: `all_commits` outside a git work tree.
    """
    if keep_days is not None and keep_days < 0:
        raise UsageError(f"--keep-days must be 0 or more, got {keep_days!r}")
    with exclusive_lock(repo, "merkl gc", on_wait):
        return _collect(repo, all_commits, keep_days, dry_run, only)


def _collect(
    repo: Repo, all_commits: bool, keep_days: float | None, dry_run: bool, only: set[str] | None
) -> GcResult:
    result = GcResult(dry_run=dry_run)
    pointers: list[Pointer] = tracked_pointers(repo)
    if all_commits:
        from merkl.tracking.history import iter_history_pointers

        history, result.unreadable_history_pointers = iter_history_pointers(repo.root)
        pointers.extend(history)
    keep = protected_oids(repo, pointers)
    keep.update(_kept_outputs(repo, keep_days, result))
    for oid in repo.store.iter_oids():
        if oid in keep or (only is not None and oid not in only):
            result.kept += 1
            continue
        try:
            st = os.stat(repo.store.oid_to_str(oid))
        except FileNotFoundError:
            continue
        if st.st_nlink > 1:  # a hard link in the work tree (or elsewhere) is this file
            result.kept += 1
            continue
        size = st.st_size
        result.removed.append((oid, size))
        result.freed += size
    for oid, size in repo.store.iter_inline():  # small outputs kept in the index
        if oid in keep or (only is not None and oid not in only):
            result.kept += 1
        elif not repo.store.has_file(oid):  # else listed above already
            result.removed.append((oid, size))
            result.freed += size
    if not dry_run:
        repo.store.remove_many(oid for oid, _ in result.removed)
    if not dry_run and result.dropped_outputs:
        repo.index.remove_outputs(result.dropped_outputs)
    result.freed += _clean_tmp(repo, dry_run, result)
    return result


def tracked_pointers(repo: Repo) -> list[Pointer]:
    """The pointers of the work tree, HEAD and the git index."""
    return [t.pointer for t in iter_tracked(repo)] + list(head_and_index_pointers(repo.root))


def protected_oids(repo: Repo, pointers: list[Pointer]) -> set[str]:
    """Objects that must stay whatever the cache policy: those `pointers` need, those of an
    unfinished track or checkout, work-tree links and re-homed edits."""
    keep: set[str] = set()
    for pointer in pointers:
        keep.update(iter_pointer_oids(repo, pointer))
    for record in read_intents(repo):
        keep.update(record.oids)
    keep.update(work_tree_links(repo))
    keep.update(rehomed_oids(repo))
    return keep


def _kept_outputs(repo: Repo, keep_days: float | None, result: GcResult) -> set[str]:
    """Oids of the cached outputs to keep; fills `result.dropped_outputs` with the others."""
    entries = list(repo.index.iter_outputs())
    if keep_days is None:
        return {e.oid for e in entries}
    cutoff = time.time() - keep_days * 86400
    last_run: dict[str, float] = {}
    for run in repo.index.iter_runs():
        last_run[run.out_hash] = max(run.time, last_run.get(run.out_hash, 0.0))
    kept = set()
    for entry in entries:
        if last_run.get(entry.out_hash, 0.0) > cutoff:
            kept.add(entry.oid)
        else:
            result.dropped_outputs.append(entry.out_hash)
    return kept


def _clean_tmp(repo: Repo, dry_run: bool, result: GcResult) -> int:
    freed = 0
    cutoff = time.time() - _STALE_TMP_SECONDS
    try:
        entries = list(os.scandir(repo.tmp_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        if entry.is_file(follow_symlinks=False) and st.st_mtime < cutoff:
            result.stale_tmp_files += 1
            freed += st.st_size
            if not dry_run:
                os.unlink(entry.path)
    return freed
