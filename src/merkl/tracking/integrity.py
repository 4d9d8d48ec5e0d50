"""Is a stored object still what its name says, before it is linked, served or called clean?

As root (the default in containers and CI), or through a file opened before `merkl track`, an
edit of a tracked file through its link writes into the object itself: its 0444 mode does not
stop root. So an object is checked before it is trusted: its stat fingerprint (inode, size,
mtime), recorded in the stat cache under the object's own path when it entered the store, is
compared with what `stat` sees now, and the object is re-hashed only when they differ.

An object found changed is never deleted: its bytes are someone's edit, maybe the only copy.
They are *re-homed* under their new content address, and the old address counts as absent
(`merkl pull` fetches it again from a remote). Until a pointer records it (`merkl track`), a
re-homed edit is listed in `.merkl/rehomed`: `gc` keeps it, and `checkout` treats it as unsaved
work (replaced only with `--force`, which discards it from the list).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

from merkl.cache.stat_cache import file_oid, find_file_oids, record_file_oids
from merkl.fs import write_atomic
from merkl.repo import Repo
from merkl.tracking.links import link_object

REHOMED_FILE = "rehomed"


def object_intact(repo: Repo, oid: str) -> bool:
    """True when object `oid` is in the store and its bytes still hash to `oid`."""
    try:
        return file_oid(repo.store.oid_to_str(oid), repo) == oid
    except FileNotFoundError:
        return False


def rehome_if_changed(repo: Repo, oid: str) -> str | None:
    """If object `oid` was changed in place, move its bytes to their own address and return
    it; None when the object is intact or absent."""
    path = repo.store.oid_to_str(oid)
    try:
        actual = file_oid(path, repo)
    except FileNotFoundError:
        return None
    if actual == oid:
        return None
    repo.store.rehome(oid, actual)
    record_objects(repo, [actual])
    with open(repo.dot_dir / REHOMED_FILE, "a") as handle:
        handle.write(actual + "\n")
    return actual


def rehomed_oids(repo: Repo) -> set[str]:
    """Edits re-homed in the store that no pointer has recorded yet."""
    try:
        return set((repo.dot_dir / REHOMED_FILE).read_text().split())
    except FileNotFoundError:
        return set()


def forget_rehomed(repo: Repo, oids: Iterable[str]) -> None:
    """Drop `oids` from the re-homed list (a pointer records them now, or the user discarded
    them with `checkout --force`)."""
    known = rehomed_oids(repo)
    if not known or known.isdisjoint(oids):
        return
    left = known.difference(oids)
    write_atomic(repo.dot_dir / REHOMED_FILE, "".join(f"{o}\n" for o in sorted(left)).encode())


def record_objects(repo: Repo, oids: list[str]) -> None:
    """Record the stat fingerprint of objects just stored (and known to hold their oid)."""
    path_of = repo.store.oid_to_str
    with contextlib.suppress(OSError):
        record_file_oids([(path_of(oid), oid) for oid in oids], repo)


def linked_object(repo: Repo, path: str) -> str | None:
    """The oid of the store object `path` is a symlink to (directly or through another
    symlink), or None for anything else."""
    if not os.path.islink(path):
        return None
    real = os.path.realpath(path)
    prefix = os.path.join(str(repo.objects_dir), "")
    if not real.startswith(prefix):
        return None
    oid = real[len(prefix) :].replace(os.sep, "")
    return oid if len(oid) == 64 else None


def edited_in_store(repo: Repo, path: str, oid: str) -> bool:
    """True when the work-tree file `path`, whose content is no longer `oid`, is a link to the
    object `oid` itself: the edit went through the link into the store."""
    if os.path.islink(path):
        return linked_object(repo, path) == oid
    try:
        st, obj = os.stat(path), os.stat(repo.store.oid_to_str(oid))
    except OSError:
        return False
    return (st.st_ino, st.st_dev) == (obj.st_ino, obj.st_dev)  # a hard link


def intact_objects(repo: Repo, oids: Iterable[str]) -> set[str]:
    """The oids among `oids` whose objects are present and still hash to their names: stat
    fingerprints first (one stat-cache pass), re-hashing only what changed or was never
    fingerprinted (an object a pull wrote)."""
    wanted = list(dict.fromkeys(oids))
    found = find_file_oids([repo.store.oid_to_str(oid) for oid in wanted], repo)
    return {oid for oid, actual in zip(wanted, found, strict=True) if actual == oid}


def usable_objects(repo: Repo, uses: Iterable[tuple[str, Path]]) -> set[str]:
    """The oids among `uses` (oid, the work-tree path that should hold it) whose objects are
    present and intact, after re-homing every one changed in place: a path that was a symlink
    to it follows its bytes to their new address, so the edit stays where the user sees it.
    A re-homed oid is absent afterwards (a pull fetches it, a checkout reports it missing)."""
    paths: dict[str, list[Path]] = {}
    for oid, path in uses:
        paths.setdefault(oid, []).append(path)
    present = repo.store.find_present(paths, inline=False)
    present |= repo.store.materialize_missing(oid for oid in paths if oid not in present)
    intact = intact_objects(repo, present)
    for oid in present - intact:
        linked = [p for p in paths[oid] if linked_object(repo, str(p)) == oid]
        actual = rehome_if_changed(repo, oid)
        if actual is None:
            continue
        for path in linked:
            link_object(repo, actual, path, "symlink")
    return intact
