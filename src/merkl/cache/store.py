"""ObjectStore: content-addressed, read-only blobs under `.merkl/objects/ab/cdef…`.

Every write goes to a temporary file in `.merkl/tmp`, is fsynced, made read-only and renamed into
place, so a crash at any moment leaves either no object or a complete one. Reads re-hash the bytes
(BLAKE3 runs at GB/s), and an object that does not match its oid is moved to `.merkl/quarantine/`
and reported, never served.

Task outputs smaller than `inline_max` are kept *inline*: as rows of the index's `blobs` table
(`inline`), written with the output's row, instead of one file each. `has`, `get_bytes`, `size`,
`find_present`, `remove` and `quarantine` see both kinds; code that needs a file (a link, a
memory map) asks `materialize`, which writes an inline object out as a file on demand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import blake3

from merkl.errors import CorruptObjectError
from merkl.fs import NO_LINK_ERRNOS, replace_with, sync_files, write_atomic
from merkl.hashing import hash_bytes, is_hex_hash

_READ_ONLY = 0o444
_CHUNK = 1 << 20
QUARANTINE_DIR = "quarantine"
_blake3 = blake3.blake3
# Reads leave the access time alone: under `relatime` the first read of an object written
# since its last read would otherwise write its inode (merkl records last use itself).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOATIME", 0)
#: Outputs whose serialized bytes are fewer than this are stored inline (`[cache] inline_max`).
INLINE_MAX = 4096
#: Verified inline objects a process keeps in memory (bytes in all): an index query costs more
#: than reading a small file, so a repeated hit must not pay it again.
_REMEMBERED_BYTES = 32 << 20


class InlineObjects(Protocol):
    """Where inline objects live: the index's `blobs` table (`merkl.cache.index.Index`)."""

    def find_blob(self, oid: str) -> bytes | None: ...

    def has_blob(self, oid: str) -> bool: ...

    def find_blobs(self, oids: Iterable[str]) -> set[str]: ...

    def blob_size(self, oid: str) -> int | None: ...

    def put_blobs(self, items: Iterable[tuple[str, bytes]]) -> None: ...

    def remove_blobs(self, oids: Iterable[str]) -> None: ...

    def iter_blob_sizes(self) -> Iterator[tuple[str, int]]: ...


class ObjectStore:
    """Blobs addressed by the BLAKE3 hash (`oid`) of their bytes."""

    def __init__(
        self,
        root: Path,
        tmp_dir: Path,
        *,
        fsync: bool = True,
        inline: InlineObjects | None = None,
        inline_max: int = INLINE_MAX,
    ) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        # fsync costs ~3 ms per object on this disk. Without it a power loss can leave an
        # object empty or partial, which reads detect (they verify the oid) and recompute.
        self.fsync = fsync
        self._prefix = str(root) + os.sep  # string paths: pathlib costs µs on the hit path
        self.inline = inline
        self.inline_max = inline_max if inline is not None else 0
        # oid -> bytes of inline objects read and verified by this process (immutable: an
        # oid names its bytes); forgotten when this process removes them.
        self._remembered: dict[str, bytes] = {}
        self._remembered_bytes = 0

    def inlines(self, size: int) -> bool:
        """Whether a task output of `size` bytes is stored inline rather than as a file."""
        return size < self.inline_max

    def oid_to_path(self, oid: str) -> Path:
        return Path(self._path(oid))

    def oid_to_str(self, oid: str) -> str:
        """`oid_to_path` as a plain string: cheaper when there are thousands of them."""
        return self._path(oid)

    def oids_to_strs(self, oids: Iterable[str]) -> list[str]:
        """`oid_to_str` of many oids (10,000 in 2 ms rather than 15)."""
        prefix, sep = self._prefix, os.sep
        return [f"{prefix}{oid[:2]}{sep}{oid[2:]}" for oid in oids]

    def _path(self, oid: str) -> str:
        return f"{self._prefix}{oid[:2]}{os.sep}{oid[2:]}"

    def has(self, oid: str) -> bool:
        if oid in self._remembered or os.path.exists(self._path(oid)):
            return True
        if self.inline is None:
            return False
        data = self.inline.find_blob(oid)  # as cheap as asking: kept for the read that follows
        if data is not None and hash_bytes(data) == oid:
            self._remember(oid, data)
        return data is not None

    def _remember(self, oid: str, data: bytes) -> None:
        if self._remembered_bytes + len(data) > _REMEMBERED_BYTES:
            self._remembered, self._remembered_bytes = {}, 0  # a long-lived server: bounded
        self._remembered[oid] = data
        self._remembered_bytes += len(data)

    def _forget(self, oids: Iterable[str]) -> None:
        for oid in oids:
            self._remembered.pop(oid, None)

    def has_file(self, oid: str) -> bool:
        """Whether the object exists as a file (not only inline)."""
        return os.path.exists(self._path(oid))

    def size(self, oid: str) -> int:
        try:
            return os.stat(self._path(oid)).st_size
        except FileNotFoundError:
            size = self.inline.blob_size(oid) if self.inline is not None else None
            if size is None:
                raise
            return size

    def put_inline(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Store small objects inline now (verified bytes from a remote)."""
        if self.inline is None:
            raise RuntimeError("this store keeps no inline objects")
        self.inline.put_blobs(items)

    def materialize(self, oid: str) -> Path:
        """The object's file, written from its inline bytes when it has none yet (a link
        to a tracked output, a memory map); raises FileNotFoundError or CorruptObjectError."""
        path = self.oid_to_path(oid)
        if os.path.exists(path) or self.inline is None:
            return path
        data = self._inline_bytes(oid, verify=True)
        write_atomic(path, data, fsync=self.fsync, mode=_READ_ONLY, tmp_dir=self.tmp_dir)
        return path

    def source(self, oid: str) -> Path | bytes:
        """The object as a file path, or its inline bytes (unverified): what a push sends."""
        path = self.oid_to_path(oid)
        if self.inline is None or os.path.exists(path):
            return path
        data = self.inline.find_blob(oid)
        return path if data is None else data

    def put_bytes(self, data: bytes, oid: str | None = None, *, sync: bool = True) -> str:
        """Store `data` (if not already there) and return its oid.

        `sync=False` leaves the fsync (under `fsync = true`) to a later `sync_objects` of a
        batch: nothing may refer to the object durably before that.
        """
        oid = oid or hash_bytes(data)
        if not self.has_file(oid):
            write_atomic(
                self.oid_to_path(oid),
                data,
                fsync=self.fsync and sync,
                mode=_READ_ONLY,
                tmp_dir=self.tmp_dir,
            )
        return oid

    def sync_objects(self, oids: list[str]) -> None:
        """Make objects stored with `sync=False` durable (one `syncfs` for the lot on Linux)."""
        if self.fsync:
            sync_files([self._path(oid) for oid in oids if self.has(oid)])

    def put_file(self, source: Path, oid: str) -> None:
        """Copy a file whose content hashes to `oid` into the store."""
        if self.has_file(oid):
            return
        target = self.oid_to_path(oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        replace_with(
            target, lambda tmp: self._copy(source, tmp), tmp_dir=self.tmp_dir, mode=_READ_ONLY
        )

    def _copy(self, source: Path, tmp: str) -> None:
        with open(source, "rb") as src, open(tmp, "xb") as handle:
            shutil.copyfileobj(src, handle, _CHUNK)
            if self.fsync:
                handle.flush()
                os.fsync(handle.fileno())

    def move_in(self, source: Path, oid: str) -> bool:
        """Make the file `source` (content hashing to `oid`) the object `oid` without a copy.

        Returns True when `source` itself became the object: it is hard-linked under the
        store's name (same inode), and the caller then replaces `source` by a link. False when
        the store already had the object or cannot hard-link `source` (another filesystem):
        then it is copied. Linking, not renaming, means a crash at any moment leaves the data
        at `source`. It takes microseconds for gigabytes; the bytes are not re-read or fsynced,
        since reads verify objects against their oid anyway.
        """
        if self.has_file(oid):
            return False
        target = self.oid_to_path(oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        st = os.stat(source)
        if st.st_nlink > 1:
            # Other names share this inode (a hard link outside the store): making it the
            # object would turn them read-only, and an edit through them would change it.
            self.put_file(source, oid)
            return False
        mode = st.st_mode
        os.chmod(source, _READ_ONLY)
        try:
            os.link(source, target)
        except OSError as exc:
            os.chmod(source, mode)
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            self.put_file(source, oid)
            return False
        return True

    def get_bytes(self, oid: str, *, verify: bool = True, size: int = -1) -> bytes:
        """The object's bytes; raises FileNotFoundError or CorruptObjectError. `size`, when
        known (the index records it), lets a small object be read in one system call."""
        data = self._remembered.get(oid)
        if data is not None:
            return data
        path = f"{self._prefix}{oid[:2]}{os.sep}{oid[2:]}"  # `_path`, without a call per hit
        try:
            data = _read(path, size)
        except FileNotFoundError:
            if self.inline is None:
                raise
            return self._inline_bytes(oid, verify=verify)
        if verify and _blake3(data).hexdigest() != oid:
            if size >= 0:
                return self.get_bytes(oid)  # judged on a read to the end, not on `size`
            self._corrupt(oid, path)
        return data

    def _inline_bytes(self, oid: str, *, verify: bool) -> bytes:
        data = self.inline.find_blob(oid) if self.inline is not None else None
        if data is None:
            raise FileNotFoundError(2, "no such object", self._path(oid))
        if verify:
            if hash_bytes(data) != oid:
                self._corrupt(oid, "the index")
            self._remember(oid, data)
        return data

    def _corrupt(self, oid: str, where: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            where = str(self.quarantine(oid))  # maybe an edit made through a link: kept
        raise CorruptObjectError(
            f"object {oid[:12]} does not match its hash; it was moved to {where} and will "
            f"be recomputed or pulled again",
            oid=oid,
            path=where,
        )

    def verify(self, oid: str) -> bool:
        """True when the object hashes to `oid` (large files hashed in parallel)."""
        path = self.oid_to_path(oid)
        if self.inline is not None and not os.path.exists(path):
            data = self.inline.find_blob(oid)
            if data is not None:
                return hash_bytes(data) == oid
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(path)
        return hasher.hexdigest() == oid

    def rehome(self, oid: str, actual: str) -> None:
        """Object `oid`, whose bytes were changed in place and now hash to `actual`, moves to
        that address, so the bytes (someone's edit, maybe the only copy) are kept under their
        true name and `oid` counts as absent."""
        if self.has(actual):
            self.remove(oid)  # the same bytes are stored already
            return
        target = self._path(actual)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(self._path(oid), target)

    def quarantine(self, oid: str) -> Path:
        """Move a corrupt object aside to `.merkl/quarantine/` (never delete what may be the
        only copy of someone's data); returns where it went. An object with no file but
        inline bytes has them written there and its row removed."""
        folder = self.root.parent / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        target = folder / f"{oid}.{time.time_ns()}"
        try:
            os.rename(self._path(oid), target)
        except FileNotFoundError:
            if self.inline is None or not self.inline.has_blob(oid):
                raise
            return self.quarantine_inline(oid)
        return target

    def quarantine_inline(self, oid: str) -> Path:
        """`quarantine` of an inline object: its bytes go to a file there, its row goes."""
        data = self.inline.find_blob(oid) if self.inline is not None else None
        if data is None or self.inline is None:
            raise FileNotFoundError(2, "no such inline object", oid)
        folder = self.root.parent / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        target = folder / f"{oid}.{time.time_ns()}"
        write_atomic(target, data, fsync=False, tmp_dir=self.tmp_dir)
        self.inline.remove_blobs([oid])
        self._forget([oid])
        return target

    def remove(self, oid: str) -> None:
        self.remove_many([oid])

    def _unlink(self, oid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(oid))

    def remove_many(self, oids: Iterable[str], jobs: int = 8) -> None:
        """Remove objects, inline ones in one transaction and files with a few threads: an
        unlink waits on the file system's journal (about 0.2-0.4 ms each here), and threads
        overlap those waits (5x faster for 4,000). Each thread takes a slice of the list: a
        future per object cost the submitting thread tens of microseconds each under load, a
        third of the time of 100,000 unlinks."""
        from concurrent.futures import ThreadPoolExecutor

        todo = list(oids)
        self._forget(todo)
        if self.inline is not None and todo:
            held = self.inline.find_blobs(todo)
            self.inline.remove_blobs(held)
            todo = [oid for oid in todo if oid not in held or self.has_file(oid)]
        if len(todo) < 64:
            for oid in todo:
                self._unlink(oid)
            return

        def remove_slice(start: int) -> None:
            for oid in todo[start::jobs]:
                self._unlink(oid)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for _ in pool.map(remove_slice, range(jobs)):
                pass

    def find_present(self, oids: Iterable[str], *, inline: bool = True) -> set[str]:
        """The subset of `oids` the store holds (with `inline` False: as files), in one listing
        per crowded prefix folder.

        Checking 10,000 directory members one `stat` at a time costs more than listing the
        (at most 256) folders they fall in.
        """
        by_prefix: dict[str, list[str]] = {}
        for oid in oids:
            by_prefix.setdefault(oid[:2], []).append(oid)
        present: set[str] = set()
        for prefix, group in by_prefix.items():
            if len(group) < 8:
                present.update(oid for oid in group if self.has_file(oid))
                continue
            try:
                names = set(os.listdir(self._prefix + prefix))
            except FileNotFoundError:
                continue
            present.update(oid for oid in group if oid[2:] in names)
        if inline and self.inline is not None:
            rest = [oid for group in by_prefix.values() for oid in group if oid not in present]
            present |= self.inline.find_blobs(rest) if rest else set()
        return present

    def materialize_missing(self, oids: Iterable[str]) -> set[str]:
        """Write out the file of each of `oids` held only inline and intact (what is to be
        linked into the work tree); returns those."""
        rest = list(oids)
        if self.inline is None or not rest:
            return set()
        written = set()
        for oid in self.inline.find_blobs(rest):
            with contextlib.suppress(CorruptObjectError, FileNotFoundError):
                self.materialize(oid)
                written.add(oid)
        return written

    def iter_inline(self) -> Iterator[tuple[str, int]]:
        """(oid, size) of every inline object (`iter_oids` lists the files)."""
        if self.inline is not None:
            yield from self.inline.iter_blob_sizes()

    def iter_oids(self) -> Iterator[str]:
        """The oid of every object file (inline objects: `iter_inline`)."""
        if not self.root.is_dir():
            return
        for prefix in sorted(os.listdir(self.root)):
            folder = self.root / prefix
            if len(prefix) != 2 or not folder.is_dir():
                continue
            for rest in sorted(os.listdir(folder)):
                if is_hex_hash(prefix + rest):
                    yield prefix + rest


def _read(path: str, size: int = -1) -> bytes:
    """The file's bytes. With its expected `size`, asks for one byte more: getting exactly
    `size` bytes means the end was reached, without the usual second read that returns none
    (any other count reads on to the end; the caller verifies the bytes anyway)."""
    # os.open/os.read: a buffered `open()` costs several µs more on the cache-hit path.
    try:
        fd = os.open(path, _READ_FLAGS)
    except PermissionError:  # O_NOATIME is refused to whoever does not own the file
        fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        if 0 <= size < _CHUNK:
            chunk = os.read(fd, size + 1)
            if len(chunk) == size:
                return chunk
            chunks.append(chunk)
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
