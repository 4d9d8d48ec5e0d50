"""The stat cache: a file's content hash, re-read only when its size, mtime or inode changed.

Rows live in the local index (`path, inode, size, mtime_ns -> oid`), so an unchanged file is
never hashed twice, in this process or the next.

A file modified within `RACY_SECONDS` before it was read is recorded *smudged* (git calls such
index entries "racy" and smudges their size too): it could be written again in the same clock
tick right after the read, leaving its inode, size and mtime as they were, so its row keeps the
oid (which content the path last had, for provenance) with the size `SMUDGED`, which no stat
matches. It is read again until its last change is old enough.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from merkl.hashing import hash_file

RACY_SECONDS = 2.0
SMUDGED = -1  # the size of a racy row: never matches a file's

Row = tuple[str, int, int, int, str]  # path, inode, size, mtime_ns, oid

if TYPE_CHECKING:
    from merkl.repo import Repo


def file_oid(path: Path | str, repo: Repo | None) -> str:
    """Content hash of `path`, from the stat cache when size, mtime and inode are unchanged."""
    if repo is None:
        return hash_file(path)
    return file_oid_and_stat(path, repo)[0]


def file_oid_and_stat(path: Path | str, repo: Repo) -> tuple[str, os.stat_result]:
    """`file_oid`, and the `stat` the oid belongs to (taken before the file was read)."""
    st = os.stat(path)
    key = os.path.abspath(path)
    oid = repo.index.find_file_oid(key, st.st_ino, st.st_size, st.st_mtime_ns)
    if oid is None:
        oid = hash_file(path)
        record_settled(repo, [(key, st.st_ino, st.st_size, st.st_mtime_ns, oid)])
    return oid, st


def file_oids(paths: Sequence[Path | str], repo: Repo) -> list[str]:
    """Content hashes of many files: one stat each, re-hashing only the changed ones.

    Past a few hundred files the whole stat cache is read in one query instead of one query
    per file, and new rows are written in one transaction: checking 10,000 files costs two
    round trips to SQLite, not 20,000.
    """
    return [oid for oid in _file_oids(paths, repo, missing_ok=False) if oid is not None]


def find_file_oids(paths: Sequence[Path | str], repo: Repo) -> list[str | None]:
    """Like `file_oids`, with None for a missing file or a dangling link."""
    return _file_oids(paths, repo, missing_ok=True)


def _file_oids(paths: Sequence[Path | str], repo: Repo, *, missing_ok: bool) -> list[str | None]:
    find = _stat_cache_lookup(repo, len(paths))
    oids: list[str | None] = []
    new_rows: list[tuple[str, int, int, int, str]] = []
    for file in paths:
        try:
            st = os.stat(file)
        except FileNotFoundError:
            if not missing_ok:
                raise
            oids.append(None)
            continue
        # Paths from a directory scan are absolute already; abspath() costs µs per file.
        key = file if type(file) is str and file[:1] == "/" else os.path.abspath(file)
        oid = find(key, st.st_ino, st.st_size, st.st_mtime_ns)
        if oid is None:
            oid = hash_file(file)
            new_rows.append((key, st.st_ino, st.st_size, st.st_mtime_ns, oid))
        oids.append(oid)
    record_settled(repo, new_rows)
    return oids


def find_cached_file_oids(
    paths: Sequence[str],
    repo: Repo,
    stats: Sequence[os.stat_result | None],
    under: str | None = None,
) -> tuple[list[str | None], set[int]]:
    """Stat-cache answers without reading any file: (oid or None per path, missing indices).

    `stats` are the paths' `os.stat` results as the caller took them (None: missing). None
    in the answer means the cache does not know the file as it is now; the caller decides
    whether to hash it. Missing indices are paths that do not exist (or dangling links).
    With `under` (a folder holding every path) only that folder's rows are read.
    """
    find = _stat_cache_lookup(repo, len(paths), under)
    oids: list[str | None] = []
    missing: set[int] = set()
    for i, (file, st) in enumerate(zip(paths, stats, strict=True)):
        if st is None:
            missing.add(i)
            oids.append(None)
            continue
        key = file if file[:1] == "/" else os.path.abspath(file)
        oids.append(find(key, st.st_ino, st.st_size, st.st_mtime_ns))
    return oids, missing


_BULK_LOOKUP_MIN = 256


def _stat_cache_lookup(
    repo: Repo, count: int, under: str | None = None
) -> Callable[[str, int, int, int], str | None]:
    if count < _BULK_LOOKUP_MIN:
        return repo.index.find_file_oid
    rows = {
        path: (ino, size, mtime, oid)
        for path, ino, size, mtime, oid in repo.index.iter_file_states(under)
    }

    def find(path: str, inode: int, size: int, mtime_ns: int) -> str | None:
        row = rows.get(path)
        return row[3] if row is not None and row[:3] == (inode, size, mtime_ns) else None

    return find


def racy_since() -> float:
    """The oldest mtime (ns since the epoch) still too recent to trust: `RACY_SECONDS` ago."""
    return (time.time() - RACY_SECONDS) * 1e9


def record_settled(repo: Repo, rows: Sequence[Row]) -> None:
    """Record the rows (stats taken before their files were read), racy ones smudged."""
    newest = racy_since()
    checked = [r if r[3] < newest else (r[0], r[1], SMUDGED, r[3], r[4]) for r in rows]
    if checked:
        repo.index.set_file_oids(checked)


def record_file_oids(pairs: Iterable[tuple[Path | str, str]], repo: Repo) -> None:
    """Tell the stat cache that each file (as it is now) has the given oid, in one transaction."""
    rows = []
    for file, oid in pairs:
        st = os.stat(file)
        rows.append((os.path.abspath(file), st.st_ino, st.st_size, st.st_mtime_ns, oid))
    if rows:
        repo.index.set_file_oids(rows)
