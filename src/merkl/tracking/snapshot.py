"""Folder snapshots: `merkl status` of an unchanged tracked folder without its manifest.

Checking a tracked folder member by member means parsing its manifest, loading the stat cache
and listing the store, which is most of the time `merkl status` takes on 10,000 files. So
when a folder is found clean, a snapshot of it is recorded: its fingerprint, a digest of every
member's path and of what `stat` sees through it (inode, size, mtime, ctime, link count…), and
its listing with each subfolder's (inode, mtime, ctime). The next status stats every member
again, straight from the listing while no subfolder changed (or after walking the folder), and
if the digest is the same the folder is still clean (DVC keys its state on a similar digest of
a folder's mtimes and sizes).

A snapshot is recorded only when
- every member *is* its store object (the same inode: a symlink or hard link into the store),
  so the objects' presence follows from the members' — removing an object breaks the symlink
  or lowers the hard link's count, and either changes the digest; folders of copies are always
  checked member by member;
- no member was modified within the last `RACY_SECONDS`: as git does for "racy" index entries,
  an edit in the same clock tick as the recording could otherwise hide behind an unchanged
  mtime. A subfolder modified that recently keeps the listing out of the snapshot.
"""

from __future__ import annotations

import errno
import marshal
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from stat import S_ISDIR

from merkl.hashing import hash_bytes
from merkl.repo import Repo

RACY_SECONDS = 2.0

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
    numbers = [(st[:7], st.st_mtime_ns, st.st_ctime_ns) for st in stats if st is not None]
    names = "\0".join(files).encode("utf-8", "surrogateescape")
    # marshal format 2 writes tuples of ints the same way every time (no shared references,
    # unlike 3+); a fingerprint is only ever compared on this machine.
    return hash_bytes(names + b"\n" + marshal.dumps(numbers, 2))


@dataclass(frozen=True)
class Snapshot:
    """A folder as last seen clean: its pointer oid, fingerprint and listing."""

    oid: str
    fingerprint: str
    # Every folder walked (relative, "" for the root) with (inode, mtime_ns, ctime_ns), and
    # the members' relative paths in order; empty when a folder was too recent to rely on.
    folders: tuple[tuple[str, tuple[int, int, int]], ...]
    members: tuple[str, ...]
    oids: tuple[str, ...]  # the store object each member was (the same inode), in order

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
        path_of = repo.store.oid_to_str
        return {rel: path_of(oid) for rel, oid in zip(self.members, self.oids, strict=True)}


def load(repo: Repo, folder: str) -> Snapshot | None:
    found = repo.index.find_dir_snapshot(folder)
    if found is None:
        return None
    oid, digest, listing = found
    try:
        folders, members, oids = marshal.loads(listing)
        return Snapshot(oid, digest, tuple(folders), tuple(members), tuple(oids))
    except (EOFError, ValueError, TypeError):
        return None  # from another Python version, or damaged: check member by member


def is_unchanged(snapshot: Snapshot | None, oid: str, digest: str | None) -> bool:
    """True when the folder was recorded clean for pointer `oid` with this same fingerprint."""
    return (
        snapshot is not None
        and digest is not None
        and (snapshot.oid, snapshot.fingerprint) == (oid, digest)
    )


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
    newest = (time.time() - RACY_SECONDS) * 1e9
    path_of = repo.store.oid_to_str
    for rel, st in zip(files, stats, strict=True):
        if st is None or st.st_mtime_ns >= newest:
            return False
        try:
            obj = os.stat(path_of(expected[rel]))
        except FileNotFoundError:
            return False
        if (obj.st_dev, obj.st_ino) != (st.st_dev, st.st_ino):
            return False
    folders = _folders(folder)
    if folders is None or any(seen[1] >= newest for _, seen in folders):
        folders = []  # racy: the fingerprint only, every status walks the folder
    members = list(files) if folders else []
    listing = marshal.dumps((folders, members, [expected[rel] for rel in members]), 2)
    repo.index.set_dir_snapshot(folder, oid, digest, listing)
    return True


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
