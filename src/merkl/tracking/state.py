"""The state of a tracked item: does the work tree hold what its pointer records?

States, as `merkl status` shows them:
- clean: the work tree matches the pointer and the store holds the data.
- modified: the work tree holds something else (`merkl track` records it, `merkl checkout`
  restores the tracked version).
- missing: the work tree lacks the data but the store has it (`merkl checkout`).
- not in cache: the work tree matches the pointer but the local store lacks the object
  (`merkl track` stores it again).
- pointer without data: neither the work tree nor the store has it (`merkl pull`).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from merkl.repo import Repo
from merkl.tracking import snapshot
from merkl.tracking.tree import DirScan, LinkChecker, scan_dir
from merkl.tracking.worktree import Tracked

if TYPE_CHECKING:
    from merkl.tracking.manifest import Manifest

# Content hashing (`merkl.files`) and manifests are imported where a check needs them: an
# unchanged folder is answered from its fingerprint, and `merkl status` starts faster without.


class State(enum.Enum):
    CLEAN = "clean"
    MODIFIED = "modified"
    MISSING = "missing"
    NOT_IN_CACHE = "not in cache"
    NO_DATA = "pointer without data"


@dataclass
class DirChanges:
    """Member-level differences between a tracked directory and its manifest."""

    modified: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.modified or self.added or self.deleted)

    def summary(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in vars(self).items() if v]
        return ", ".join(parts)


@dataclass
class ItemState:
    """One tracked item's state; for directories also which members differ."""

    tracked: Tracked
    state: State
    changes: DirChanges | None = None
    # Directory members: relative path → (absolute path, current oid), for checkout.
    current: dict[str, tuple[str, str]] | None = None
    manifest: Manifest | None = None


def file_state(repo: Repo, tracked: Tracked, current_oid: str | None) -> State:
    """State of a tracked file whose current content hash is `current_oid` (None: absent)."""
    in_store = repo.store.has(tracked.pointer.oid)
    if current_oid is None:
        return State.MISSING if in_store else State.NO_DATA
    if current_oid != tracked.pointer.oid:
        return State.MODIFIED
    return State.CLEAN if in_store else State.NOT_IN_CACHE


def current_file_oids(repo: Repo, items: list[Tracked]) -> list[str | None]:
    """Current content hash of each tracked file (None when absent or not a file)."""
    if not items:
        return []
    from merkl.cache.stat_cache import find_file_oids

    paths = [t.data_path for t in items]
    present = [i for i, p in enumerate(paths) if not os.path.isdir(p)]
    found = find_file_oids([paths[i] for i in present], repo)
    result: list[str | None] = [None] * len(items)
    for i, oid in zip(present, found, strict=True):
        result[i] = oid
    return result


def dir_state(repo: Repo, tracked: Tracked, *, members: bool = True) -> ItemState:
    """State of a tracked directory, member by member when its manifest is in the store.

    With `members=False` (for `merkl status`) a folder whose fingerprint shows it unchanged
    since it was last seen clean is reported clean without its manifest (`snapshot`); the
    result then lacks `current` and `manifest`.
    """
    path = tracked.data_path
    oid = tracked.pointer.oid
    if not path.is_dir() or path.is_symlink():
        from merkl.tracking.manifest import find_manifest

        manifest = find_manifest(repo, oid)
        if path.exists() or path.is_symlink():
            return ItemState(tracked, State.MODIFIED, manifest=manifest)
        complete = manifest is not None and _members_stored(repo, manifest)
        return ItemState(tracked, State.MISSING if complete else State.NO_DATA, manifest=manifest)
    folder = str(path)
    known = snapshot.load(repo, folder)
    scan = None
    if not members and known is not None and known.oid == oid and repo.store.has(oid):
        if known.is_listed(folder):
            files = known.objects(repo)
        else:
            scan = scan_dir(repo, path, check_links=False)
            files = scan.files
        if snapshot.still_clean(repo, folder, known, files):
            return ItemState(tracked, State.CLEAN, DirChanges())
    if scan is None:
        scan = scan_dir(repo, path, check_links=False)
    stats = snapshot.stat_files(list(scan.files.values()))
    digest = snapshot.fingerprint(scan.files, stats)
    from merkl.tracking.manifest import Manifest, ManifestEntry, find_manifest

    manifest = find_manifest(repo, oid)
    current = _current_members(repo, path, scan, stats)
    if manifest is None:
        # Without the manifest only the whole tree's hash can be compared.
        entries = [
            ManifestEntry(rel, oid, os.stat(p).st_size) for rel, (p, oid) in current.items()
        ]
        same = Manifest.from_entries(entries).oid == tracked.pointer.oid
        return ItemState(tracked, State.NOT_IN_CACHE if same else State.MODIFIED)
    expected = manifest.by_path()
    changes = DirChanges(
        modified=[
            r for r, (_, oid) in current.items() if r in expected and expected[r].oid != oid
        ],
        added=[r for r in current if r not in expected],
        deleted=[r for r in expected if r not in current],
    )
    if changes.modified or changes.added:
        state = State.MODIFIED
    elif changes.deleted:
        stored = all(repo.store.has(expected[r].oid) for r in changes.deleted)
        state = State.MISSING if stored else State.NO_DATA
    else:
        state = State.CLEAN if _members_stored(repo, manifest) else State.NOT_IN_CACHE
    if state is State.CLEAN:
        oids = {rel: oid for rel, (_, oid) in current.items()}
        snapshot.record(repo, folder, oid, scan.files, stats, digest, oids, known)
    return ItemState(tracked, state, changes, current, manifest)


def _current_members(
    repo: Repo, root: Path, scan: DirScan, stats: snapshot.Stats
) -> dict[str, tuple[str, str]]:
    """The files of a tracked directory now: relative path → (path, oid).

    Every member is checked against the stat cache, links into the store too: as root, a
    read-only object can still be edited in place, and that must show as modified. A link
    the stat cache knows (as it is now) was made by merkl, so it is not read; only unknown
    links are checked, and those leading out of the directory are left out, as in `track`.
    """
    from merkl.cache.stat_cache import find_cached_file_oids, find_file_oids

    rels = list(scan.files)
    paths = list(scan.files.values())
    cached, missing = find_cached_file_oids(paths, repo, stats, scan.root)
    current: dict[str, tuple[str, str]] = {}
    checker = LinkChecker(repo, root)
    unknown: list[tuple[str, str]] = []
    for i, (rel, member) in enumerate(zip(rels, paths, strict=True)):
        oid = cached[i]
        if i in missing:
            continue  # a dangling link counts as a deleted member
        if oid is not None:
            current[rel] = (member, oid)
        elif rel not in scan.unchecked_links or checker.check(member, os.path.dirname(member)):
            unknown.append((rel, member))
    found = find_file_oids([member for _, member in unknown], repo)
    for (rel, member), oid in zip(unknown, found, strict=True):
        if oid is not None:
            current[rel] = (member, oid)
    return dict(sorted(current.items()))


def _members_stored(repo: Repo, manifest: Manifest) -> bool:
    oids = {e.oid for e in manifest.entries}
    return len(repo.store.find_present(oids)) == len(oids)


def item_states(repo: Repo, items: list[Tracked], *, members: bool = True) -> list[ItemState]:
    """States of many tracked items, files checked in one stat-cache batch.

    `members=False`: unchanged folders may come without member details (see `dir_state`).
    """
    files = [t for t in items if not t.is_dir]
    oids = dict(zip((t.pointer_file for t in files), current_file_oids(repo, files), strict=True))
    states = []
    for tracked in items:
        if tracked.is_dir:
            states.append(dir_state(repo, tracked, members=members))
        else:
            current = oids[tracked.pointer_file]
            if current is None and tracked.data_path.is_dir():
                states.append(ItemState(tracked, State.MODIFIED))  # a folder is in the way
                continue
            state = ItemState(tracked, file_state(repo, tracked, current))
            if current is not None:
                state.current = {"": (str(tracked.data_path), current)}
            states.append(state)
    return states
