"""Pointer files `<path>.merkl`: small, committed, diff-friendly JSON records of tracked data.

```json
{"format": 1, "hash": "blake3:<64 hex>", "path": "data/train.csv", "size": 123,
 "timestamp": "2026-11-23T12:00:00Z"}
```
plus, for task outputs written with `write_file(track=True)`, `"output"` (the Merkle hash) and
`"serializer"`. Reading validates everything: an unknown format, a malformed hash, or a path that
is absolute or escapes the repo is a `PointerFileError` naming the file.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from merkl.errors import PointerFileError
from merkl.fs import write_atomic
from merkl.hashing import HASH_PREFIX, is_hex_hash

POINTER_SUFFIX = ".merkl"
POINTER_FORMAT = 1
_KNOWN_KEYS = {
    "format",
    "hash",
    "path",
    "size",
    "timestamp",
    "output",
    "serializer",
    "type",
    "files",
}


@dataclass(frozen=True)
class Pointer:
    """What a pointer file records. `oid` and `output` are bare 64-hex hashes."""

    oid: str
    size: int
    path: str
    timestamp: str = field(default_factory=lambda: utc_timestamp())
    output: str | None = None
    serializer: str | None = None
    type: str = "file"  # "file" or "dir"
    files: int | None = None  # number of files, for directories

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": POINTER_FORMAT,
            "hash": HASH_PREFIX + self.oid,
            "path": self.path,
            "size": self.size,
            "timestamp": self.timestamp,
        }
        if self.output is not None:
            data["output"] = HASH_PREFIX + self.output
        if self.serializer is not None:
            data["serializer"] = self.serializer
        if self.type != "file":
            data["type"] = self.type
            data["files"] = self.files
        return data


def utc_timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pointer_path(data_path: Path | str) -> Path:
    """`data/train.csv` → `data/train.csv.merkl`."""
    data_path = Path(data_path)
    return data_path.with_name(data_path.name + POINTER_SUFFIX)


def dump_pointer(pointer: Pointer) -> bytes:
    options = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
    return orjson.dumps(pointer.to_json(), option=options) + b"\n"


def write_pointer(file: Path, pointer: Pointer) -> None:
    """Write a pointer file atomically (unchanged content is not rewritten)."""
    data = dump_pointer(pointer)
    try:
        if file.read_bytes() == data:
            return
    except FileNotFoundError:
        pass
    write_atomic(file, data)


def read_pointer(file: Path | str) -> Pointer:
    """Parse and validate a pointer file."""
    file = Path(file)
    try:
        raw = _read_small_regular_file(file)
    except FileNotFoundError:
        raise PointerFileError(f"{file}: pointer file not found", path=file) from None
    except OSError as exc:
        raise PointerFileError(f"{file}: cannot read pointer file: {exc}", path=file) from exc
    return parse_pointer(raw, file)


_MAX_POINTER_BYTES = 1 << 16


def _read_small_regular_file(file: Path) -> bytes:
    # A cloned repo may hold `x.merkl` as a symlink to /dev/zero or a FIFO: reading it whole
    # would never end. Non-blocking open, a regular-file check and a size cap prevent that.
    fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file (pointer files are small JSON files)")
        raw = handle.read(_MAX_POINTER_BYTES + 1)
    if len(raw) > _MAX_POINTER_BYTES:
        raise OSError(f"larger than {_MAX_POINTER_BYTES} bytes, so not a pointer file")
    return raw


def parse_pointer(raw: bytes, file: Path) -> Pointer:
    def bad(message: str) -> PointerFileError:
        return PointerFileError(f"{file}: {message}", path=file)

    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad(f"not a valid merkl pointer (invalid JSON: {exc})") from None
    if not isinstance(data, dict):
        raise bad("not a valid merkl pointer (expected a JSON object)")
    version = data.get("format")
    if version != POINTER_FORMAT:
        raise bad(
            f"unknown pointer format {version!r} (this merkl reads format {POINTER_FORMAT}); "
            f"upgrade merkl"
        )
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise bad(f"unknown field(s) {', '.join(sorted(unknown))}")
    oid = _parse_hash(data.get("hash"), "hash", bad)
    output = _parse_hash(data["output"], "output", bad) if "output" in data else None
    size = data.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad(f"field 'size' must be a non-negative integer, got {size!r}")
    rel = data.get("path")
    if not isinstance(rel, str) or not rel:
        raise bad(f"field 'path' must be a relative path, got {rel!r}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("\\") or (len(rel) > 1 and rel[1] == ":"):
        raise bad(f"field 'path' must be relative to the repository, got {rel!r}")
    if ".." in pure.parts:
        raise bad(f"field 'path' escapes the repository: {rel!r}")
    timestamp = data.get("timestamp", "")
    if not isinstance(timestamp, str):
        raise bad(f"field 'timestamp' must be a string, got {timestamp!r}")
    serializer = data.get("serializer")
    if serializer is not None and not isinstance(serializer, str):
        raise bad(f"field 'serializer' must be a string, got {serializer!r}")
    kind = data.get("type", "file")
    if kind not in ("file", "dir"):
        raise bad(f"field 'type' must be 'file' or 'dir', got {kind!r}")
    files = data.get("files")
    if files is not None and (isinstance(files, bool) or not isinstance(files, int)):
        raise bad(f"field 'files' must be an integer, got {files!r}")
    return Pointer(oid, size, rel, timestamp, output, serializer, kind, files)


def _parse_hash(value: Any, key: str, bad: Any) -> str:
    if not isinstance(value, str) or not value.startswith(HASH_PREFIX):
        raise bad(f"field {key!r} must look like 'blake3:<64 hex digits>', got {value!r}")
    digest = value[len(HASH_PREFIX) :]
    if not is_hex_hash(digest):
        raise bad(f"field {key!r} must look like 'blake3:<64 hex digits>', got {value!r}")
    return digest


_SKIP_DIRS = {".git", ".merkl", ".venv", ".venv-bench", "node_modules", "__pycache__", ".hg"}


def iter_pointer_files(root: Path) -> Iterator[Path]:
    """Every `*.merkl` pointer file under `root`, sorted, skipping `.git`, `.merkl` and venvs.

    Tracked directories (a folder `d` beside a `d.merkl`) are not entered: they hold data,
    not pointers, and listing 100,000 linked files would dominate `merkl status`. Symlinked
    folders are not followed.
    """
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        names = {e.name for e in entries}
        subdirs = []
        for entry in entries:
            name = entry.name
            if entry.is_dir(follow_symlinks=False):
                if (
                    name not in _SKIP_DIRS
                    and not name.startswith(".venv")
                    and name + POINTER_SUFFIX not in names
                ):
                    subdirs.append(entry.path)
            elif name.endswith(POINTER_SUFFIX) and len(name) > len(POINTER_SUFFIX):
                yield Path(entry.path)
        stack.extend(reversed(subdirs))
