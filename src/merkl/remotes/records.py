"""Keys on a remote and the small output records stored beside the objects.

A remote holds two kinds of blobs under one flat key space:

- `objects/ab/cdef…`: the bytes of an object, exactly as in the local store (`ab` = first two
  hex digits of the oid). Pulled bytes are re-hashed and refused when they do not match.
- `outputs/ab/cdef…`: a cached task output, keyed by its Merkle hash: a JSON record
  `{"format": 1, "oid": "blake3:…", "serializer": "json", "size": 123}`. The Merkle hash is of
  the inputs and code, not of the value, so a record cannot be checked by hashing; it is
  validated strictly instead, and its object is verified like any other.
"""

from __future__ import annotations

import orjson

from merkl.cache.index import OutputEntry
from merkl.errors import RemoteError, SerializationError
from merkl.hashing import HASH_PREFIX, is_hex_hash
from merkl.serializers import get_serializer

RECORD_FORMAT = 1
OBJECTS = "objects"
OUTPUTS = "outputs"


def object_key(oid: str) -> str:
    return f"{OBJECTS}/{oid[:2]}/{oid[2:]}"


def record_key(out_hash: str) -> str:
    return f"{OUTPUTS}/{out_hash[:2]}/{out_hash[2:]}"


def digest_of(key: str) -> str:
    """The hash a key names: `objects/ab/cdef…` → `abcdef…`."""
    return key.partition("/")[2].replace("/", "")


def dump_record(entry: OutputEntry) -> bytes:
    return orjson.dumps(
        {
            "format": RECORD_FORMAT,
            "oid": HASH_PREFIX + entry.oid,
            "serializer": entry.serializer,
            "size": entry.size,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def load_record(data: bytes, out_hash: str, where: str) -> OutputEntry:
    """Parse and validate a record fetched from `where` (a remote's label)."""

    def bad(why: str) -> RemoteError:
        return RemoteError(
            f"output record {out_hash[:12]} on {where} is invalid ({why}); it was ignored — "
            f"push it again from a machine that has the output",
            key=record_key(out_hash),
        )

    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise bad("not JSON") from None
    if not isinstance(raw, dict) or raw.get("format") != RECORD_FORMAT:
        raise bad(f"expected a format {RECORD_FORMAT} object")
    oid = raw.get("oid")
    if not isinstance(oid, str) or not oid.startswith(HASH_PREFIX):
        raise bad(f"oid {oid!r}")
    oid = oid[len(HASH_PREFIX) :]
    serializer = raw.get("serializer")
    size = raw.get("size")
    if not is_hex_hash(oid):
        raise bad(f"oid {oid!r}")
    if not isinstance(serializer, str) or not serializer:
        raise bad(f"serializer {serializer!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad(f"size {size!r}")
    return OutputEntry(out_hash, oid, serializer, size, True)


def is_safe_serializer(name: str) -> bool:
    """True for serializers whose bytes cannot run code when loaded (not pickle, not unknown)."""
    try:
        return get_serializer(name).is_safe
    except SerializationError:
        return False
