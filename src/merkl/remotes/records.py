"""Keys on a remote and the small output records stored beside the objects.

A remote holds two kinds of blobs under one flat key space:

- `objects/ab/cdef…`: the bytes of an object, exactly as in the local store (`ab` = first two
  hex digits of the oid). Pulled bytes are re-hashed and refused when they do not match.
- `outputs/ab/cdef…`: a cached task output, keyed by its Merkle hash: a JSON record
  `{"format": 1, "oid": "blake3:…", "serializer": "json", "size": 123}`, plus `"key"` and
  `"sig"` when the pusher signed it (`merkl.remotes.signing`). The Merkle hash is of the
  inputs and code, not of the value, so a record cannot be checked by hashing; it is validated
  strictly instead (and its signature against the trusted keys), and its object is verified
  like any other. Readers ignore fields they do not know, so older versions read signed records.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from merkl.cache.index import OutputEntry
from merkl.errors import RemoteError, SerializationError
from merkl.hashing import HASH_PREFIX, is_hex_hash
from merkl.serializers import get_serializer

RECORD_FORMAT = 1
#: A record is about 200 bytes; anything far larger was planted, and is refused unread.
MAX_RECORD_BYTES = 64 * 1024
OBJECTS = "objects"
OUTPUTS = "outputs"
#: Small keys that are rewritten and deleted (locks, roots, gc state): never packed on S3.
LOOSE_TOPS = ("locks/", "roots/", "gc/")


def object_key(oid: str) -> str:
    return f"{OBJECTS}/{oid[:2]}/{oid[2:]}"


def record_key(out_hash: str) -> str:
    return f"{OUTPUTS}/{out_hash[:2]}/{out_hash[2:]}"


def digest_of(key: str) -> str:
    """The hash a key names: `objects/ab/cdef…` → `abcdef…`."""
    return key.partition("/")[2].replace("/", "")


@dataclass(frozen=True, slots=True)
class Record:
    """An output record as stored on a remote: the entry, and who signed it (if anyone)."""

    entry: OutputEntry
    key: str | None = None  # the signer's public key, `ed25519:<base64>`
    sig: str | None = None  # base64 signature of the batch manifest's hash
    batch: str | None = None  # oid of the batch manifest listing this record


def dump_record(record: Record) -> bytes:
    entry = record.entry
    fields: dict[str, object] = {
        "format": RECORD_FORMAT,
        "oid": HASH_PREFIX + entry.oid,
        "serializer": entry.serializer,
        "size": entry.size,
    }
    if record.key and record.sig and record.batch:
        fields["key"], fields["sig"] = record.key, record.sig
        fields["batch"] = HASH_PREFIX + record.batch
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def load_record(data: bytes, out_hash: str, where: str) -> Record:
    """Parse and validate a record fetched from `where` (a remote's label)."""

    def bad(why: str) -> RemoteError:
        return RemoteError(
            f"output record {out_hash[:12]} on {where} is invalid ({why}); it was ignored — "
            f"push it again from a machine that has the output",
            key=record_key(out_hash),
        )

    if len(data) > MAX_RECORD_BYTES:
        raise bad(f"larger than {MAX_RECORD_BYTES} bytes")
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
    entry = OutputEntry(out_hash, oid, serializer, size, True)
    key, sig, batch = raw.get("key"), raw.get("sig"), raw.get("batch")
    if (
        isinstance(key, str)
        and isinstance(sig, str)
        and isinstance(batch, str)
        and batch.startswith(HASH_PREFIX)
        and is_hex_hash(batch[len(HASH_PREFIX) :])
    ):
        return Record(entry, key, sig, batch[len(HASH_PREFIX) :])
    return Record(entry)  # unsigned, or a malformed signature: refused where trust applies


def record_too_large(size: int, out_hash: str, where: str) -> str:
    """The reason a record of `size` bytes is refused before it is read."""
    return (
        f"output record {out_hash[:12]} on {where} is invalid (larger than {MAX_RECORD_BYTES} "
        f"bytes: {size}); it was ignored"
    )


def is_safe_serializer(name: str) -> bool:
    """True for serializers whose bytes cannot run code when loaded (not pickle, not unknown)."""
    try:
        return get_serializer(name).is_safe
    except SerializationError:
        return False
