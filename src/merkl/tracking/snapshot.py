"""Folder snapshots: `merkl status` of an unchanged tracked folder without its manifest.

Checking a tracked folder member by member means parsing its manifest, loading the stat cache
and listing the store, which is most of the time `merkl status` takes on 10,000 files. So
when a folder is found clean, a snapshot of it is recorded: its fingerprint, a digest of every
member's path and of what `stat` sees through it (inode, size, mtime, ctime, link count…), and
its listing with each subfolder's (inode, mtime, ctime). The next status stats every member
again, straight from the listing while no subfolder changed (or after walking the folder), and
if the digest is the same the folder is still clean (DVC keys its state on a similar digest of
a folder's mtimes and sizes).

`merkl track` records the snapshot of the folder it just linked, so the first status after
it is already fast; a status that checks a folder member by member and finds it clean records
one too. A snapshot is recorded only when
- every member *is* its store object (the same inode: a symlink or hard link into the store),
  so the objects' presence follows from the members' — removing an object breaks the symlink
  or lowers the hard link's count, and either changes the digest; folders of copies are always
  checked member by member;
- every member's stat is one its oid was computed for: `track` compares it with the stat taken
  before the member was read (or the stat cache's record of its store object), so an edit made
  while a long `track` ran is never recorded as clean.

"Racy" members, as git calls them: one modified within `RACY_SECONDS` of the recording could
be edited again in the same clock tick just after it, leaving every stat field the same. Such
members are listed in the snapshot, and every status re-reads them (their content hash must
still be the recorded one) until one, at least `RACY_SECONDS` after their last change, finds
them clean and records the snapshot without them. A subfolder modified that recently keeps the
listing out of the snapshot (a status then walks the folder) until a later status adds it.
"""

from __future__ import annotations

import errno
import marshal
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from stat import S_ISDIR

from merkl.cache.stat_cache import racy_since, record_settled
from merkl.hashing import hash_bytes, hash_file
from merkl.repo import Repo

Stats = Sequence[os.stat_result | None]


_GONE = (errno.ELOOP, errno.ENOTDIR)
_PARALLEL_STATS = 2048  # below this, a second thread costs more than it saves


def stat_files(paths: Sequence[str]) -> list[os.stat_result | None]:
    """`os.stat` of each path, following links; None where nothing is (or a dangling link).

    Many paths are split over two threads: `stat` releases the GIL for the system call, which
    is most of its cost (10,000 stats through symlinks: 41 ms on one thread, 29 ms on two).
    Overlapping the stats with the directory walk instead was slower: the walk holds the GIL
    between system calls, so the stat thread waits for it.
    """
    if len(paths) < _PARALLEL_STATS:
        return _stat_all(paths)
    half = len(paths) // 2
    other: list[list[os.stat_result | None] | OSError] = []

    def second_half() -> None:
        try:
            other.append(_stat_all(paths[half:]))
        except OSError as exc:  # raised below, in the caller's thread
            other.append(exc)

    thread = threading.Thread(target=second_half)
    thread.start()
    first = _stat_all(paths[:half])
    thread.join()
    if isinstance(other[0], OSError):
        raise other[0]
    return first + other[0]


def _stat_all(paths: Sequence[str]) -> list[os.stat_result | None]:
    stat = os.stat
    result: list[os.stat_result | None] = []
    for path in paths:
        try:
            result.append(stat(path))
        except FileNotFoundError:
            result.append(None)
        except OSError as exc:
            if exc.errno not in _GONE:
                raise
            result.append(None)  # a link loop or a file where a folder was: no file there
    return result


def fingerprint(files: Mapping[str, str], stats: Stats) -> str | None:
    """Digest of the members (relative path → path) as `stats` saw them; None if one is gone.

    Per member: mode, inode, device, link count, owner, group, size, and mtime and ctime in ns
    (ctime changes on any write or chmod, even when the mtime is set back).
    """
    if None in stats:
        return None
    numbers = [(*st[:7], st.st_mtime_ns, st.st_ctime_ns) for st in stats if st is not None]
    names = "\0".join(files).encode("utf-8", "surrogateescape")
    # marshal format 2 writes tuples of ints the same way every time (no shared references,
    # unlike 3+); a fingerprint is only ever compared on this machine.
    return hash_bytes(names + b"\n" + marshal.dumps(numbers, 2))


@dataclass(frozen=True)
class Snapshot:
    """A folder as last seen clean: its pointer oid, fingerprint and listing."""

    oid: str
    fingerprint: str
    # Every folder walked (relative, "" for the root) with (inode, mtime_ns, ctime_ns); empty
    # when a folder was too recent to rely on (every status then walks the folder).
    folders: tuple[tuple[str, tuple[int, int, int]], ...]
    members: tuple[str, ...]  # relative paths, in the fingerprint's order
    oids: tuple[str, ...]  # the store object each member was (the same inode), in order
    racy: tuple[int, ...]  # members modified too recently to trust their stat: re-read

    def is_listed(self, root: str) -> bool:
        """True when the listing is recorded and no folder under `root` changed since: adding,
        removing or renaming an entry changes its folder's mtime."""
        if not self.folders:
            return False
        for rel, seen in self.folders:
            try:
                st = os.lstat(os.path.join(root, rel) if rel else root)
            except OSError:
                return False
            if (st.st_ino, st.st_mtime_ns, st.st_ctime_ns) != seen or not S_ISDIR(st.st_mode):
                return False
        return True

    def objects(self, repo: Repo) -> dict[str, str]:
        """Member (relative) → its store object's path. While `is_listed`, every member is the
        very entry recorded: the symlink (links never change in place) or hard link to that
        object, so stat'ing the object sees what a stat through the member would (the same
        inode), without resolving 10,000 links."""
        return dict(zip(self.members, repo.store.oids_to_strs(self.oids), strict=True))


def load(repo: Repo, folder: str) -> Snapshot | None:
    found = repo.index.find_dir_snapshot(folder)
    if found is None:
        return None
    oid, digest, listing = found
    try:
        folders, members, oids, racy = marshal.loads(listing)
        return Snapshot(oid, digest, tuple(folders), tuple(members), tuple(oids), tuple(racy))
    except (EOFError, ValueError, TypeError):
        return None  # from another version, or damaged: check member by member


def is_unchanged(snapshot: Snapshot | None, oid: str, digest: str | None) -> bool:
    """True when the folder was recorded clean for pointer `oid` with this same fingerprint."""
    return (
        snapshot is not None
        and digest is not None
        and (snapshot.oid, snapshot.fingerprint) == (oid, digest)
    )


def still_clean(repo: Repo, folder: str, known: Snapshot, files: Mapping[str, str]) -> bool:
    """True when the folder is as `known` recorded it: `files` (relative path → a path to stat,
    the member or its object) have the recorded fingerprint, and every racy member still holds
    its recorded content. Then the snapshot sheds what is no longer too recent to trust."""
    paths = list(files.values())
    stats = stat_files(paths)
    if fingerprint(files, stats) != known.fingerprint:
        return False
    for i in known.racy:
        try:
            if hash_file(paths[i]) != known.oids[i]:
                return False
        except OSError:
            return False
    newest = racy_since()
    racy = tuple(i for i in known.racy if _mtime(stats[i]) >= newest)
    if racy != known.racy:  # re-read and settled now: the stat cache may keep them
        _remember(repo, folder, known, [i for i in known.racy if i not in racy], stats)
    folders = known.folders or tuple(_settled_folders(folder, newest))
    if (racy, folders) != (known.racy, known.folders):
        _write(
            repo, folder, known.oid, known.fingerprint, known.members, known.oids, racy, folders
        )
    return True


def record(
    repo: Repo,
    folder: str,
    oid: str,
    files: Mapping[str, str],
    stats: Stats,
    digest: str | None,
    expected: Mapping[str, str],
    known: Snapshot | None,
) -> bool:
    """Remember a folder just found clean, if it qualifies (see the module docstring).

    `files` and `stats` are its members as just walked and stat'ed, `digest` their fingerprint,
    `expected` each member's oid, `known` the snapshot recorded before (if any). Returns
    whether the folder has a snapshot now.
    """
    if digest is None or set(files) != set(expected):
        return False
    if is_unchanged(known, oid, digest) and known is not None and known.is_listed(folder):
        return True  # nothing new to record
    oids = [expected[rel] for rel in files]
    objects = stat_files(repo.store.oids_to_strs(oids))
    for st, obj in zip(stats, objects, strict=True):
        if st is None or _inode(obj) != _inode(st):
            return False
    _record_new(repo, folder, oid, digest, files, oids, stats)
    return True


def record_tracked(
    repo: Repo,
    folder: str,
    oid: str,
    files: Mapping[str, str],
    oids: Sequence[str],
    hashed: Sequence[os.stat_result],
    relinked: Sequence[int],
    *,
    symlinked: bool,
) -> bool:
    """Record the snapshot of a folder `merkl track` just linked (pointer `oid`): `files` are
    its members, `oids` their content hashes, `hashed` the stats those were computed for, and
    `relinked` the members track (re)linked.

    A member left alone is recorded with the stat its oid was computed for: if it changed
    since, the next status sees another fingerprint. A relinked one is stat'ed again through
    its new link; the stat must still be one its oid was computed for (its own, or its store
    object's as the stat cache knows it), or the member changed while tracking ran and the
    folder is left to the next status, member by member. With `symlinked`, each member is a
    symlink naming its object (track just checked or made it); otherwise the member must be
    its object's inode.
    """
    stats: list[os.stat_result | None] = list(hashed)
    paths = list(files.values())
    for i, st in zip(relinked, stat_files([paths[i] for i in relinked]), strict=True):
        stats[i] = st
    known = {(member_oid, _key(seen)) for member_oid, seen in zip(oids, hashed, strict=True)}
    path_of = repo.store.oid_to_str
    checked = range(len(paths)) if not symlinked else relinked
    objects = [] if symlinked else stat_files(repo.store.oids_to_strs(oids))
    for i in checked:
        st, member_oid = stats[i], oids[i]
        if st is None:
            return False
        if not symlinked and _inode(objects[i]) != _inode(st):
            return False
        key = (member_oid, _key(st))
        if key not in known:  # linked to an object stored before: its stat-cache row
            if repo.index.find_file_oid(path_of(member_oid), *key[1]) != member_oid:
                return False
            known.add(key)
    digest = fingerprint(files, stats)
    if digest is None:
        return False
    _record_new(repo, folder, oid, digest, files, oids, stats)
    return True


def _inode(st: os.stat_result | None) -> tuple[int, int] | None:
    return (st.st_dev, st.st_ino) if st is not None else None


def _remember(repo: Repo, folder: str, known: Snapshot, members: list[int], stats: Stats) -> None:
    """Stat-cache rows for members just re-read (`stats` were taken before): under the
    member's path and its object's (the same inode)."""
    path_of = repo.store.oid_to_str
    rows = []
    for i in members:
        st, oid = stats[i], known.oids[i]
        if st is not None:
            key = (st.st_ino, st.st_size, st.st_mtime_ns, oid)
            rows += [(os.path.join(folder, known.members[i]), *key), (path_of(oid), *key)]
    record_settled(repo, rows)


def _key(st: os.stat_result) -> tuple[int, int, int]:
    """What the stat cache keys an oid by."""
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _mtime(st: os.stat_result | None) -> int:
    return st.st_mtime_ns if st is not None else 0


def _record_new(
    repo: Repo,
    folder: str,
    oid: str,
    digest: str,
    files: Mapping[str, str],
    oids: Sequence[str],
    stats: Stats,
) -> None:
    """Record a snapshot taken now (after `stats`), marking what is too recent to trust."""
    newest = racy_since()
    racy = tuple(i for i, st in enumerate(stats) if _mtime(st) >= newest)
    folders = tuple(_settled_folders(folder, newest))
    _write(repo, folder, oid, digest, tuple(files), tuple(oids), racy, folders)


def _write(
    repo: Repo,
    folder: str,
    oid: str,
    digest: str,
    members: Sequence[str],
    oids: Sequence[str],
    racy: Sequence[int],
    folders: Sequence[tuple[str, tuple[int, int, int]]],
) -> None:
    listing = marshal.dumps((list(folders), list(members), list(oids), list(racy)), 2)
    repo.index.set_dir_snapshot(folder, oid, digest, listing)


def _settled_folders(root: str, newest: float) -> list[tuple[str, tuple[int, int, int]]]:
    """`_folders(root)`, or none when one is gone or was modified too recently to rely on (an
    entry added in the same clock tick just after the listing would not change its mtime)."""
    folders = _folders(root)
    if folders is None or any(seen[1] >= newest for _, seen in folders):
        return []
    return folders


def _folders(root: str) -> list[tuple[str, tuple[int, int, int]]] | None:
    """Every real folder under `root` (links not followed, as `scan_dir` walks), with its
    (inode, mtime_ns, ctime_ns); None if one vanished meanwhile."""
    found: list[tuple[str, tuple[int, int, int]]] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        path = os.path.join(root, rel) if rel else root
        try:
            st = os.lstat(path)
            with os.scandir(path) as entries:
                subfolders = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            return None
        found.append((rel, (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)))
        stack.extend(f"{rel}/{name}" if rel else name for name in subfolders)
    return found
