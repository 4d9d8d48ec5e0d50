"""Walking a tracked directory: which files it holds, and which symlinks are left out.

A symlink inside a tracked directory is followed only when it points at a file inside that
directory or at an object of the store (a member linked by merkl itself). A symlink to anything
else, or to a folder, is skipped: following it could read (and later publish) files from
outside the directory, such as `~/.ssh`.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from merkl.tracking.links import relative_link

if TYPE_CHECKING:
    from merkl.repo import Repo
    from merkl.tracking.manifest import Manifest

TEMP_MARKER = ".merkl-tmp-"


@dataclass
class DirScan:
    """The files of a directory: relative POSIX path → absolute path."""

    root: str = ""
    files: dict[str, str] = field(default_factory=dict)
    skipped_symlinks: list[str] = field(default_factory=list)
    # With check_links=False: symlinks listed in `files` but not yet checked.
    unchecked_links: set[str] = field(default_factory=set)
    # Symlinks into the store: relative path → the oid their text names (its object's path).
    link_oids: dict[str, str] = field(default_factory=dict)


def scan_dir(repo: Repo, root: Path, *, check_links: bool = True) -> DirScan:
    """Every regular file under `root` (and every symlink safe to follow), sorted by path.

    With `check_links=False` symlinks are listed without being read, in `unchecked_links`:
    `merkl status` first asks the stat cache, which knows a link it made, and checks only the
    others with `check_link` (reading 10,000 long symlinks costs more than the rest of it).
    """
    scan = DirScan(os.path.abspath(root))
    checker = LinkChecker(repo, root)
    stack = [(str(root), "")]
    while stack:
        folder, rel_folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = rel_folder + entry.name
                if entry.name.startswith(".") and TEMP_MARKER in entry.name:
                    continue  # a link or copy being written by another merkl process
                if entry.is_symlink():
                    if not check_links:
                        scan.files[rel] = entry.path
                        scan.unchecked_links.add(rel)
                        continue
                    oid = checker.check(entry.path, folder)
                    if oid is None:
                        scan.skipped_symlinks.append(rel)
                        continue
                    if oid:
                        scan.link_oids[rel] = oid
                    scan.files[rel] = entry.path
                elif entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    scan.files[rel] = entry.path
    scan.files = dict(sorted(scan.files.items()))
    scan.skipped_symlinks.sort()
    return scan


class LinkChecker:
    """Decides whether a symlink inside a tracked directory may be followed."""

    def __init__(self, repo: Repo, root: Path) -> None:
        self.repo = repo
        self.objects_prefix = os.path.join(str(repo.objects_dir), "")
        self.root_prefix = os.path.join(os.path.realpath(root), "")
        self._store_link: tuple[str, str] = ("", "")  # (folder, link text to the store)

    def check(self, link: str, folder: str) -> str | None:
        """The oid for a link into the store, "" for a file inside the directory, None for
        anything else (outside, a folder, dangling)."""
        text = os.readlink(link)
        if self._store_link[0] != folder:
            self._store_link = (folder, relative_link(self.repo, self.objects_prefix, folder))
        oid = _stored_oid(text, self._store_link[1])
        if oid is None:
            target = os.path.normpath(os.path.join(folder, text))
            if target.startswith(self.objects_prefix):
                oid = target[len(self.objects_prefix) :].replace("/", "")
        if oid is not None:
            return oid  # the store holds only real folders and files: no further check
        return "" if _is_inside(link, self.root_prefix) else None


def _stored_oid(text: str, prefix: str) -> str | None:
    """The oid a link text names when it is exactly what merkl writes: `<prefix>ab/cdef…`."""
    n = len(prefix)
    if len(text) == n + 65 and text.startswith(prefix) and text[n + 2] == "/":
        return text[n : n + 2] + text[n + 3 :]  # compared with manifest oids, never trusted
    return None


def _is_inside(link: str, root_prefix: str) -> bool:
    """True when `link` resolves to a regular file inside the tracked directory."""
    real = os.path.realpath(link)
    if not real.startswith(root_prefix):
        return False
    try:
        return stat.S_ISREG(os.stat(real).st_mode)
    except OSError:
        return False


@dataclass
class HashedDir:
    """A scanned directory's manifest, and how its members (in `scan.files` order) were read."""

    manifest: Manifest
    oids: list[str]
    stats: list[os.stat_result]  # the stat each oid belongs to, taken before reading the file
    fresh: list[int]  # members hashed now: the stat cache did not know them as they are


def hash_dir(repo: Repo, scan: DirScan) -> Manifest:
    """The manifest of the scanned files (content hashes through the stat cache)."""
    return hash_members(repo, scan).manifest


def hash_members(repo: Repo, scan: DirScan) -> HashedDir:
    """Every member's content hash: stat'ed on two threads, looked up in the stat cache rows
    of the folder (one range query), and only the members it does not know as they are now
    are read. Re-tracking a folder after one edit reads one file."""
    from merkl.cache.stat_cache import find_cached_file_oids, record_settled
    from merkl.hashing import hash_file
    from merkl.tracking.manifest import Manifest, ManifestEntry
    from merkl.tracking.snapshot import stat_files

    paths = list(scan.files.values())
    found = stat_files(paths)
    stats: list[os.stat_result] = []
    for path, st in zip(paths, found, strict=True):
        if st is None:  # gone since the walk, or a link into the store whose object is gone
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        stats.append(st)
    cached, _ = find_cached_file_oids(paths, repo, stats, scan.root or None)
    fresh = [i for i, oid in enumerate(cached) if oid is None]
    rows = []
    for i in fresh:
        st = stats[i]
        cached[i] = oid = hash_file(paths[i])
        rows.append((paths[i], st.st_ino, st.st_size, st.st_mtime_ns, oid))
    record_settled(repo, rows)
    oids = [oid for oid in cached if oid is not None]
    entries = [
        ManifestEntry(rel, oid, st.st_size)
        for rel, oid, st in zip(scan.files, oids, stats, strict=True)
    ]
    return HashedDir(Manifest.from_entries(entries), oids, stats, fresh)
