"""Packs: many blobs in one remote object, found through immutable index files.

On an object store every request has a fixed cost (a round trip, a server-side handler), so
pushing 1,000 small objects as 1,000 PUTs is bound by requests, not bytes. A remote that packs
writes blobs back to back into a few large objects instead, the layout restic uses (`data/` +
`index/`):

- `packs/<blake3 of the pack>.pack`: the blobs' bytes back to back, nothing else.
- `index/<stamp>-<blake3 of the index>.json`, written after every pack it names:
  `{"format": 1, "packs": [pack ids], "keys": {key: [[pack, offset, length], …]}}`; a key's
  bytes are its segments concatenated. A blob bigger than a pack spans several packs (so no
  object needs a multipart upload); an empty blob has no segment.

A key is on the remote once an index lists it: a push killed before its index is written leaves
packs that nobody reads, and the next push sends those keys again. Indexes are never modified,
so a reader fetches each one once. `stamp` (16 hex digits of the writer's clock in ns) orders
them: when two indexes list a key, the newer one wins, which is what "put replaces" means.

This module is storage-neutral (planning, encoding, lookup); `merkl.remotes.s3` does the I/O.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import orjson

from merkl.errors import RemoteError
from merkl.fs import write_atomic
from merkl.hashing import hash_bytes, is_hex_hash

INDEX_FORMAT = 1
PACKS = "packs/"
INDEX = "index/"
#: Adjacent wanted ranges of a pack closer than this are read in one GET: reading 1 MiB more
#: costs less than another request's round trip.
MAX_GAP = 1 << 20

Source = Path | bytes


class Segment(NamedTuple):
    """`length` bytes at `offset` in pack `pack` (its id)."""

    pack: str
    offset: int
    length: int


@dataclass(frozen=True)
class Piece:
    """Bytes `start … start+length` of a key's blob, as planned for one pack."""

    key: str
    source: Source
    start: int
    length: int


class Location(NamedTuple):
    """Where a key's bytes are: its segments in order, and the index that says so."""

    index_name: str
    segments: tuple[Segment, ...]

    @property
    def size(self) -> int:
        return sum(segment.length for segment in self.segments)


def pack_key(pack_id: str) -> str:
    return f"{PACKS}{pack_id}.pack"


def plan_packs(items: Sequence[tuple[str, Source, int]], pack_size: int) -> list[list[Piece]]:
    """Group (key, source, size) into packs of at most `pack_size` bytes.

    A blob that fits is never split (one ranged GET reads it back); a blob bigger than a pack
    is cut into `pack_size` pieces, each the start of a pack of its own.
    """
    packs: list[list[Piece]] = []
    current: list[Piece] = []
    used = 0
    for key, source, size in items:
        if size == 0:
            continue  # an empty blob has no bytes to place; its index entry has no segment
        if size > pack_size:
            for start in range(0, size, pack_size):
                packs.append([Piece(key, source, start, min(pack_size, size - start))])
            continue
        if current and used + size > pack_size:
            packs.append(current)
            current, used = [], 0
        current.append(Piece(key, source, 0, size))
        used += size
    if current:
        packs.append(current)
    return packs


def read_pack(pieces: Sequence[Piece]) -> bytearray:
    """The pack's bytes, read straight into one buffer. A source file that changed size since
    planning is an error, so an index never describes bytes that are not in its pack."""
    buffer = bytearray(sum(piece.length for piece in pieces))
    view = memoryview(buffer)
    at = 0
    for piece in pieces:
        target = view[at : at + piece.length]
        if isinstance(piece.source, bytes):
            got = len(piece.source[piece.start : piece.start + piece.length])
            target[:got] = piece.source[piece.start : piece.start + got]
        else:
            with open(piece.source, "rb") as handle:
                handle.seek(piece.start)
                got = handle.readinto(target)
        if got != piece.length:
            raise OSError(
                f"{piece.source!r} changed while it was being packed (expected {piece.length} "
                f"bytes at offset {piece.start}, read {got})"
            )
        at += piece.length
    return buffer


_clock_lock = threading.Lock()
_last_stamp = 0


def new_stamp() -> int:
    """The wall clock in ns, strictly increasing within this process."""
    global _last_stamp
    with _clock_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def dump_index(
    pack_ids: Sequence[str], pieces: Sequence[Sequence[Piece]], empty: Sequence[str] = ()
) -> tuple[str, bytes]:
    """(key, bytes) of the index for packs `pack_ids` holding `pieces` (pack by pack), plus
    the keys of `empty` blobs."""
    keys: dict[str, list[list[int]]] = {key: [] for key in empty}
    for number, pack in enumerate(pieces):
        offset = 0
        for piece in pack:
            keys.setdefault(piece.key, []).append([number, offset, piece.length])
            offset += piece.length
    data = orjson.dumps({"format": INDEX_FORMAT, "packs": list(pack_ids), "keys": keys})
    return f"{INDEX}{new_stamp():016x}-{hash_bytes(data)}.json", data


def load_index(data: bytes, name: str, where: str) -> dict[str, Location]:
    """The locations an index (key `name`, fetched from `where`) gives, validated strictly.

    Raises:
        RemoteError: the index is not a valid format-1 index (names it and the remote).
    """

    def bad(why: str) -> RemoteError:
        return RemoteError(f"pack index {name} on {where} is invalid ({why})", key=name)

    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad("not JSON") from None
    if not isinstance(raw, dict) or raw.get("format") != INDEX_FORMAT:
        raise bad(f"expected a format {INDEX_FORMAT} object")
    pack_ids, keys = raw.get("packs"), raw.get("keys")
    if not isinstance(pack_ids, list) or not all(
        isinstance(p, str) and is_hex_hash(p) for p in pack_ids
    ):
        raise bad("'packs' must be a list of pack ids")
    if not isinstance(keys, dict):
        raise bad("'keys' must be an object")
    found: dict[str, Location] = {}
    count = len(pack_ids)
    for key, entries in keys.items():
        if type(entries) is not list or key.startswith((PACKS, INDEX)):
            raise bad(f"entry for {key!r}")
        segments = []
        for entry in entries:  # spelled out: this loop runs once per key of every index
            if type(entry) is not list or len(entry) != 3:
                raise bad(f"segment {entry!r} of {key!r}")
            pack, offset, length = entry
            if (
                type(pack) is not int
                or type(offset) is not int
                or type(length) is not int
                or not 0 <= pack < count
                or offset < 0
                or length < 0
            ):
                raise bad(f"segment {entry!r} of {key!r}")
            segments.append(Segment(pack_ids[pack], offset, length))
        found[key] = Location(name, tuple(segments))
    return found


def read_cached_index(folder: Path | None, name: str) -> bytes | None:
    """A local copy of index `name` that still hashes to its name, or None."""
    if folder is None:
        return None
    try:
        data = (folder / _cache_name(name)).read_bytes()
    except OSError:
        return None
    return data if hash_bytes(data) == _index_hash(name) else None


def cache_index(folder: Path | None, name: str, data: bytes) -> None:
    """Keep a copy of an index fetched from the remote (best effort: a cache, checked again
    when read; a bad copy is replaced)."""
    if folder is None or hash_bytes(data) != _index_hash(name):
        return
    with contextlib.suppress(OSError):
        write_atomic(folder / _cache_name(name), bytes(data), fsync=False)


def _cache_name(name: str) -> str:
    return name[len(INDEX) :] if name.startswith(INDEX) else name


def _index_hash(name: str) -> str:
    """The hash an index's name ends with (`index/<stamp>-<hash>.json`)."""
    return name.rpartition("-")[2].removesuffix(".json")


class PackCatalog:
    """The indexes a remote instance has read, merged: key → newest location. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: set[str] = set()
        self._where: dict[str, Location] = {}

    def is_known(self, index: str) -> bool:
        with self._lock:
            return index in self._indexes

    def add(self, index: str, locations: Mapping[str, Location]) -> None:
        """Record an index (also an unreadable one, with no locations: it is not re-read)."""
        with self._lock:
            self._indexes.add(index)
            for key, location in locations.items():
                held = self._where.get(key)
                if held is None or held.index_name < location.index_name:
                    self._where[key] = location

    def find(self, key: str) -> Location | None:
        with self._lock:
            return self._where.get(key)

    def keys(self, prefix: str) -> list[str]:
        with self._lock:
            return [key for key in self._where if key.startswith(prefix)]


class Write(NamedTuple):
    """`length` bytes at `offset` in a pack go to `dest` at `at` (they are part of `key`)."""

    offset: int
    length: int
    key: str
    dest: Path
    at: int


@dataclass
class RangeRead:
    """One ranged GET of a pack, `start … end` (exclusive), and where its bytes go."""

    pack: str
    start: int
    end: int
    writes: list[Write]


def plan_reads(
    wanted: Sequence[tuple[str, Path, Location]], max_gap: int = MAX_GAP
) -> list[RangeRead]:
    """Ranged GETs that fetch every segment of `wanted` (key, destination, location): per
    pack, segments in offset order, neighbours closer than `max_gap` merged into one range."""
    by_pack: dict[str, list[Write]] = {}
    for key, dest, location in wanted:
        at = 0
        for segment in location.segments:
            if segment.length:
                write = Write(segment.offset, segment.length, key, dest, at)
                by_pack.setdefault(segment.pack, []).append(write)
            at += segment.length
    reads: list[RangeRead] = []
    for pack, writes in by_pack.items():
        writes.sort(key=lambda write: write.offset)
        current: RangeRead | None = None
        for write in writes:
            # Overlapping segments (only a hand-made index has them) start a new range, so
            # every range is read front to back exactly once.
            if current is None or not (current.end <= write.offset <= current.end + max_gap):
                current = RangeRead(pack, write.offset, write.offset + write.length, [])
                reads.append(current)
            current.writes.append(write)
            current.end = write.offset + write.length
    return reads
