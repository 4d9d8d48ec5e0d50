"""Directory manifests: the canonical list of a tracked directory's files.

A tracked directory has one pointer whose `hash` is the oid of its manifest, an object in the
store like any other:

```json
{"files":[["a.csv","<64 hex>",12],["sub/b.bin","<64 hex>",34]],"format":1,"hash":"blake3"}
```

Entries are `[relative POSIX path, oid, size]`, sorted by path, so the same tree always gives the
same bytes and the same oid. A manifest may come from a remote, so reading one validates every
member path: an absolute path or one with `..` would let checkout write outside the directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson

from merkl.errors import CacheMissError, TrackingError
from merkl.hashing import hash_bytes

if TYPE_CHECKING:
    from merkl.repo import Repo

MANIFEST_FORMAT = 1
_OID = re.compile("[0-9a-f]{64}")
# Segments of one or more characters other than `/`, `\\` and NUL, none of them `.` or `..`.
_SEGMENT = r"(?!\.{1,2}(?:/|\x00|\Z))[^/\\\x00]+"
_SAFE_RELPATH = re.compile(rf"(?:{_SEGMENT}/)*{_SEGMENT}")
_SAFE_RELPATHS = re.compile(rf"(?:{_SEGMENT}/)*{_SEGMENT}(?:\x00(?:{_SEGMENT}/)*{_SEGMENT})*")
_OIDS = re.compile("[0-9a-f]{64}(?:\n[0-9a-f]{64})*")


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file of a tracked directory."""

    path: str  # relative to the directory, POSIX separators
    oid: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """The files of a tracked directory, sorted by path."""

    entries: tuple[ManifestEntry, ...]

    @classmethod
    def from_entries(cls, entries: Iterable[ManifestEntry]) -> Manifest:
        return cls(tuple(sorted(entries, key=lambda e: e.path)))

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    def dump(self) -> bytes:
        return self._dumped

    @cached_property
    def _dumped(self) -> bytes:  # 10,000 entries take 10 ms to dump: once per manifest
        files = [[e.path, e.oid, e.size] for e in self.entries]
        return orjson.dumps({"files": files, "format": MANIFEST_FORMAT, "hash": "blake3"})

    @cached_property
    def oid(self) -> str:
        return hash_bytes(self.dump())

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.entries}


def parse_manifest(raw: bytes, oid: str) -> Manifest:
    """Validate and parse manifest bytes (named by `oid` in errors)."""

    def bad(message: str) -> TrackingError:
        return TrackingError(
            f"directory manifest {oid[:12]} is invalid: {message}; run `merkl pull` again or "
            f"re-track the directory",
            oid=oid,
        )

    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad(f"invalid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise bad(f"expected an object with format {MANIFEST_FORMAT}")
    if data.get("hash") != "blake3" or not isinstance(data.get("files"), list):
        raise bad("expected 'hash': 'blake3' and a 'files' list")
    files = data["files"]
    if _all_valid(files):
        return Manifest(tuple(map(ManifestEntry, *zip(*files, strict=True))) if files else ())
    for item in files:  # find the first bad entry, for the message
        if not _all_valid([item]):
            raise bad(_what_is_wrong(item))
    raise AssertionError("unreachable")


def _all_valid(files: list[Any]) -> bool:
    """Every entry a [safe path, oid, size] list, checked a column at a time: each check is
    one C-level pass (joined strings through one regex), so 100,000 entries take milliseconds.
    """
    if not all(type(item) is list and len(item) == 3 for item in files):
        return False
    rels = [item[0] for item in files]
    oids = [item[1] for item in files]
    sizes = [item[2] for item in files]
    if not (all(type(r) is str for r in rels) and all(type(o) is str for o in oids)):
        return False
    if not all(type(n) is int and n >= 0 for n in sizes):
        return False
    if not files:
        return True
    # NUL cannot occur in a valid path nor a newline in an oid: they separate unambiguously.
    return bool(_SAFE_RELPATHS.fullmatch("\0".join(rels)) and _OIDS.fullmatch("\n".join(oids)))


def _what_is_wrong(item: Any) -> str:
    if not (isinstance(item, list) and len(item) == 3):
        return f"expected [path, oid, size] entries, got {item!r}"
    rel, member_oid, size = item
    if not isinstance(rel, str) or not is_safe_relpath(rel):
        return f"member path {rel!r} is not a plain relative path"
    if not isinstance(member_oid, str) or not _OID.fullmatch(member_oid):
        return f"member {rel!r} has a malformed oid {member_oid!r}"
    return f"member {rel!r} has a bad size {size!r}"


def is_safe_relpath(rel: str) -> bool:
    """True for a non-empty relative POSIX path without `..`, `.` or empty parts (nor `\\`)."""
    return _SAFE_RELPATH.fullmatch(rel) is not None


def find_manifest(repo: Repo, oid: str) -> Manifest | None:
    """The manifest `oid` from the local store, or None when the store does not hold it."""
    try:
        raw = repo.store.get_bytes(oid)
    except FileNotFoundError:
        return None
    return parse_manifest(raw, oid)


def get_manifest(repo: Repo, oid: str) -> Manifest:
    """The manifest `oid` from the local store; CacheMissError when it is not there."""
    manifest = find_manifest(repo, oid)
    if manifest is None:
        raise CacheMissError(
            f"directory manifest {oid[:12]} is not in the local store; run `merkl pull`",
            oid=oid,
        )
    return manifest


def iter_manifest_oids(manifest: Manifest) -> Iterator[str]:
    seen: set[str] = set()
    for entry in manifest.entries:
        if entry.oid not in seen:
            seen.add(entry.oid)
            yield entry.oid
