"""`Remote`: four batched primitives per backend; push, pull and status derived once here.

A backend implements `has`, `get`, `put` and `list` over a flat key space (see
`merkl.remotes.records` for the keys), and translates its library's connection, credential and
missing-bucket errors into `RemoteError` (which aborts a transfer at once). Everything else —
skipping what the other side has, bounded parallelism, re-hashing what arrives, moving verified
objects into the store, progress and the summary — lives in this module, so a new kind of remote
is one small module (fsspec's `AbstractFileSystem` and dvc-data's `transfer` work the same way).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from merkl.cache.index import OutputEntry
from merkl.cache.store import ObjectStore
from merkl.errors import CacheMissError, RemoteError
from merkl.hashing import hash_bytes, hash_file
from merkl.progress import Progress
from merkl.remotes.records import (
    MAX_RECORD_BYTES,
    OUTPUTS,
    Record,
    digest_of,
    dump_record,
    load_record,
    object_key,
    record_key,
    record_too_large,
)
from merkl.remotes.signing import as_records
from merkl.remotes.transfer import Stopwatch, TransferResult, make_batches, run_batches
from merkl.remotes.urls import mask_url, scrub, url_secrets

if TYPE_CHECKING:
    from merkl.remotes.signing import Signer
Source = Path | bytes
#: Locks, roots and gc state are read whole into memory; anything larger was planted.
MAX_SMALL_BYTES = 512 << 20


@dataclass
class Reclaimed:
    """What deleting keys did (or, in a dry run, would do) to a remote's storage."""

    sizes: dict[str, int] = field(default_factory=dict)  # bytes of each deleted key
    freed: int = 0  # bytes of storage returned (packs repacked: less what was copied)
    repacked: int = 0  # packs whose live keys were copied into new ones
    copied: int = 0  # bytes copied doing that
    packs_deleted: int = 0


class Remote:
    """A place objects and output records can be pushed to and pulled from.

    Subclasses implement the four primitives. Keys are strings like `objects/ab/cdef…`; each
    `put` must be atomic per key (a reader sees the whole blob or nothing), so an interrupted
    push leaves nothing that `has` reports.
    """

    #: Threads used when the caller gives no `--jobs` (a backend may set it per instance).
    default_jobs: int = 8
    #: Keys handed to one `get`/`put` call; raise it when round trips dominate (Redis, SQL).
    batch_items: ClassVar[int] = 1
    #: Rough upper bound of the bytes in one batch.
    batch_bytes: ClassVar[int] = 16 << 20
    #: Option names this kind accepts in `[remotes.NAME]` besides `url`.
    known_options: ClassVar[frozenset[str]] = frozenset()
    #: Keys per `delete` call of `gc --remote` (it checks its lock between calls).
    delete_batch: ClassVar[int] = 1000
    #: Whether `delete` works, so pushes take locks and publish roots and `gc --remote` runs.
    supports_gc: ClassVar[bool] = False
    #: A local folder where a backend may keep copies of immutable, self-verifying metadata
    #: (S3 pack indexes); `get_remote` sets it to one under `.merkl/`. None: keep nothing.
    local_cache: Path | None = None

    def __init__(
        self, url: str, *, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = url
        self.name = name
        self.options = dict(options or {})
        self.secrets = url_secrets(url)

    @property
    def label(self) -> str:
        """How messages name this remote: `remote 'origin' (s3://bucket/x)`, never a secret."""
        shown = mask_url(self.url)
        return f"remote {self.name!r} ({shown})" if self.name else f"remote {shown}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_url(self.url)!r})"

    # -- the four primitives ----------------------------------------------------------------
    def has(self, keys: Sequence[str]) -> set[str]:
        """The subset of `keys` the remote holds completely.

        Raises:
            RemoteError: the remote cannot be reached or used (one clear line).
        """
        raise NotImplementedError

    def get(self, items: Sequence[tuple[str, Path]]) -> None:
        """Write the bytes of each key to its path (overwriting it).

        Raises:
            CacheMissError: a key is not on the remote (attributes `key`, `remote`).
            RemoteError: the remote cannot be reached or used.
        """
        raise NotImplementedError

    def put(self, items: Sequence[tuple[str, Source]]) -> None:
        """Store each key's bytes (a file's content or bytes), replacing what is there.

        Each key must appear whole or not at all, even if the process is killed.
        """
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[str]:
        """Every key that starts with `prefix`, in no particular order."""
        raise NotImplementedError

    def try_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        """Take lease `name` for `ttl_ms` unless another token holds it (`lease = true`; see
        `merkl.remotes.leases`). A kind without an atomic create-if-absent has no leases."""
        raise self.error(
            "has no leases (Redis and SQL remotes have them); remove lease = true from its "
            "settings"
        )

    def renew_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        """Extend the lease `token` holds; False when it expired and another took it."""
        raise NotImplementedError

    def release_lease(self, name: str, token: str) -> None:
        """Drop the lease if `token` still holds it."""
        raise NotImplementedError

    def delete(self, keys: Sequence[str]) -> None:
        """Remove each key (a missing key is no error); used by locks and `gc --remote`.

        A backend must remove a key so that it is gone for `has` before any of its parts
        are (the reverse of `put`), so a killed delete leaves nothing half there.
        """
        raise self.error("cannot delete keys", hint="this kind of remote does not support gc")

    def sizes(self, keys: Sequence[str]) -> dict[str, int]:
        """The bytes each key holds (missing keys are left out); for `gc --remote` reports."""
        raise NotImplementedError

    def reclaim(
        self,
        keys: Sequence[str],
        *,
        repack: bool = True,
        dry_run: bool = False,
        check: Callable[[], None] | None = None,
    ) -> Reclaimed:
        """Delete `keys` (`gc --remote`), `delete_batch` at a time, calling `check` before
        each batch; with `dry_run`, only say what that would do. `repack`: a kind that packs
        blobs may also rewrite partly dead packs (S3)."""
        sizes = self.sizes(keys)
        if not dry_run:
            for start in range(0, len(keys), self.delete_batch):
                if check is not None:
                    check()
                self.delete(keys[start : start + self.delete_batch])
        return Reclaimed(sizes=sizes, freed=sum(sizes.values()))

    def forget(self) -> None:
        """Drop what this instance remembers of the remote's contents (called once a lock is
        taken: what others did before must be seen)."""

    def close(self) -> None:
        """Release connections (the remote may be used again afterwards)."""

    def prepare(self, *, write: bool) -> None:
        """Check the remote is usable before a transfer touches anything local.

        Backends raise `RemoteError` for an unreachable server, bad credentials or a missing
        bucket/directory/table; with `write=True` they may create the directory or table.
        """

    # -- helpers for backends ---------------------------------------------------------------
    def error(self, what: str, exc: BaseException | None = None, hint: str = "") -> RemoteError:
        """A `RemoteError` about this remote, with every secret masked."""
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        message = f"{self.label}: {what}{detail}" + (f"; {hint}" if hint else "")
        return RemoteError(scrub(message, self.secrets), remote=self.name)

    def scrubbed(self, text: str) -> str:
        return scrub(text, self.secrets)

    # -- derived operations -----------------------------------------------------------------
    def status(self, oids: Iterable[str]) -> tuple[set[str], set[str]]:
        """(oids the remote has, oids it lacks)."""
        wanted = {object_key(oid): oid for oid in dict.fromkeys(oids)}
        self.prepare(write=False)
        present = self.has(list(wanted))
        return {wanted[k] for k in present}, {o for k, o in wanted.items() if k not in present}

    def push(
        self,
        store: ObjectStore,
        oids: Iterable[str],
        *,
        jobs: int | None = None,
        progress: Progress | None = None,
    ) -> TransferResult:
        """Send the objects the remote lacks; each is re-hashed first, corrupt ones are refused."""
        clock = Stopwatch()
        self.prepare(write=True)
        result = TransferResult()
        keys: dict[str, str] = {}
        wanted = list(dict.fromkeys(oids))
        held = store.find_present(wanted)  # one listing or query per many, files and inline
        for oid in wanted:
            if oid in held:
                keys[object_key(oid)] = oid
            else:
                result.failed[object_key(oid)] = (
                    "not in the local cache, so there is nothing to send (pull it from the "
                    "remote that has it, or track the file again)"
                )
        present = self.has(list(keys)) if keys else set()
        result.skipped = len(present)
        todo = [k for k in keys if k not in present]
        sizes = {k: store.size(keys[k]) for k in todo}

        def send(batch: Sequence[str]) -> dict[str, str]:
            errors: dict[str, str] = {}
            ready: list[tuple[str, Source]] = []
            for key in batch:
                source = store.source(keys[key])  # a file, or an inline object's bytes
                digest = hash_file(source) if isinstance(source, Path) else hash_bytes(source)
                if digest != keys[key]:
                    errors[key] = "the local copy is corrupt (run `merkl verify --repair`)"
                else:
                    ready.append((key, source))
            if ready:
                self.put(ready)
            return errors

        done, failed = self._run(todo, sizes, send, jobs, progress)
        result.transferred += done
        result.failed.update(failed)
        result.nbytes = sum(sizes[k] for k in done)
        result.seconds = clock.elapsed()
        return result

    def pull(
        self,
        store: ObjectStore,
        oids: Iterable[str],
        *,
        jobs: int | None = None,
        progress: Progress | None = None,
        inline: bool = False,
    ) -> TransferResult:
        """Fetch the objects the local store lacks; each is re-hashed before it is stored.

        With `inline` (task outputs, never tracked files) those small enough are stored
        inline in the index rather than as files (`ObjectStore.inlines`).
        """
        clock = Stopwatch()
        self.prepare(write=False)
        result = TransferResult()
        unique = list(dict.fromkeys(oids))
        held = store.find_present(unique)
        wanted = {object_key(o): o for o in unique if o not in held}
        present = self.has(list(wanted)) if wanted else set()
        for key in wanted:
            if key not in present:
                result.failed[key] = f"not on {self.label}"
        todo = [k for k in wanted if k in present]
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        sizes: dict[str, int] = {}
        files: list[str] = []  # adopted as files (inline ones need no file-system sync)

        def fetch(batch: Sequence[str]) -> dict[str, str]:
            errors: dict[str, str] = {}
            small: list[tuple[str, bytes]] = []
            temps = {key: _temp_path(store.tmp_dir, "pull-") for key in batch}
            try:
                self.get([(key, temps[key]) for key in batch])
                for key in batch:
                    oid = wanted[key]
                    size = os.stat(temps[key]).st_size
                    data = temps[key].read_bytes() if inline and store.inlines(size) else None
                    digest = hash_file(temps[key]) if data is None else hash_bytes(data)
                    if digest != oid:
                        errors[key] = (
                            f"the bytes from {self.label} do not match the object's hash; "
                            f"refused (the remote copy is corrupt or was tampered with)"
                        )
                        continue
                    sizes[key] = size
                    if data is not None:
                        small.append((oid, data))
                    else:
                        _adopt(store, temps[key], oid)
                        files.append(key)
                if small:
                    store.put_inline(small)  # one transaction per batch
            finally:
                for temp in temps.values():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)
            return errors

        done, failed = self._run(todo, dict.fromkeys(todo, 0), fetch, jobs, progress)
        if files:
            sync_filesystem(store.root)
        result.transferred += done
        result.failed.update(failed)
        result.nbytes = sum(sizes.get(k, 0) for k in done)
        result.seconds = clock.elapsed()
        return result

    def confirm(self, oids: Iterable[str], tmp_dir: Path, *, jobs: int | None = None) -> set[str]:
        """The oids whose bytes this remote holds and that hash right: fetched and checked,
        then discarded (for objects already in the local store, which `pull` skips)."""
        self.prepare(write=False)
        wanted = {object_key(o): o for o in dict.fromkeys(oids)}
        held = self.has(list(wanted)) if wanted else set()
        present = [k for k in wanted if k in held]
        tmp_dir.mkdir(parents=True, exist_ok=True)

        def check(batch: Sequence[str]) -> dict[str, str]:
            temps = {key: _temp_path(tmp_dir, "confirm-") for key in batch}
            try:
                self.get([(key, temps[key]) for key in batch])
                return {
                    key: "the remote's bytes do not match the object's hash"
                    for key in batch
                    if hash_file(temps[key]) != wanted[key]
                }
            finally:
                for temp in temps.values():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)

        done, _failed = self._run(present, dict.fromkeys(present, 0), check, jobs, None)
        return {wanted[key] for key in done}

    def fetch_verified(self, oids: Iterable[str], tmp_dir: Path, limit: int) -> dict[str, bytes]:
        """The bytes of small objects (at most `limit` each) that hash right; others are left
        out (missing, too large, or not matching their oid)."""
        wanted = {object_key(o): o for o in dict.fromkeys(oids)}
        held = self.has(builtins.list(wanted)) if wanted else set()
        found: dict[str, bytes] = {}
        tmp_dir.mkdir(parents=True, exist_ok=True)
        for key in (k for k in wanted if k in held):
            temp = _temp_path(tmp_dir, "small-")
            try:
                self.get([(key, temp)])
                if os.stat(temp).st_size <= limit:
                    data = temp.read_bytes()
                    if hash_bytes(data) == wanted[key]:
                        found[wanted[key]] = data
            except CacheMissError:
                continue
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
        return found

    def push_outputs(
        self,
        entries: Iterable[OutputEntry | Record],
        signer: Signer | None = None,
        manifests: Mapping[str, bytes] | None = None,
    ) -> TransferResult:
        """Store the output records the remote lacks (push their objects first).

        Entries are signed with `signer` when given (their batch manifests are stored first);
        records keep the signature they came with, and `manifests` ({oid: bytes}) are stored
        with them.
        """
        clock = Stopwatch()
        self.prepare(write=True)
        ready, blobs = as_records(entries, signer, manifests)
        if blobs:  # the manifests before the records that name them
            wanted = {object_key(oid): data for oid, data in blobs.items()}
            held = self.has(builtins.list(wanted))
            missing: builtins.list[tuple[str, Source]] = [
                (key, data) for key, data in wanted.items() if key not in held
            ]
            if missing:
                self.put(missing)
        records = {record_key(r.entry.out_hash): dump_record(r) for r in ready}
        present = self.has(list(records)) if records else set()
        todo = [(k, v) for k, v in records.items() if k not in present]
        result = TransferResult(skipped=len(present))

        def send(batch: Sequence[tuple[str, Source]]) -> dict[str, str]:
            self.put(batch)
            return {}

        batches = make_batches(todo, [len(v) for _, v in todo], 256, self.batch_bytes)
        done, failed = run_batches(batches, send, lambda item: item[0], self.default_jobs)
        result.transferred, result.failed = done, failed
        result.nbytes = sum(len(records[k]) for k in done)
        result.seconds = clock.elapsed()
        return result

    def fetch_outputs(
        self, out_hashes: Iterable[str], tmp_dir: Path
    ) -> tuple[dict[str, Record], dict[str, str]]:
        """The records the remote has for `out_hashes`, and {key: reason} for invalid ones."""
        self.prepare(write=False)
        keys = {record_key(h): h for h in dict.fromkeys(out_hashes)}
        present = sorted(self.has(list(keys))) if keys else []
        entries: dict[str, Record] = {}
        invalid: dict[str, str] = {}
        tmp_dir.mkdir(parents=True, exist_ok=True)

        def fetch(batch: Sequence[str]) -> dict[str, str]:
            temps = {key: _temp_path(tmp_dir, "record-") for key in batch}
            errors: dict[str, str] = {}
            try:
                self.get([(key, temps[key]) for key in batch])
                for key in batch:
                    size = os.stat(temps[key]).st_size
                    if size > MAX_RECORD_BYTES:  # planted: never read into memory
                        errors[key] = record_too_large(size, keys[key], self.label)
                        continue
                    try:
                        record = load_record(temps[key].read_bytes(), keys[key], self.label)
                    except RemoteError as exc:
                        errors[key] = str(exc)
                        continue
                    entries[keys[key]] = record
            finally:
                for temp in temps.values():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)
            return errors

        batch_size = max(self.batch_items, 64) if self.batch_items > 1 else 1
        batches = make_batches(present, [0] * len(present), batch_size, self.batch_bytes)
        _, failed = run_batches(batches, fetch, lambda key: key, self.default_jobs)
        invalid.update(failed)
        return entries, invalid

    def read_small(self, key: str) -> bytes | None:
        """The bytes of one small key (a lock, a root, gc state), or None if it is missing."""
        with tempfile.TemporaryDirectory(prefix="merkl-") as folder:
            temp = Path(folder) / "blob"
            try:
                self.get([(key, temp)])
            except CacheMissError:
                return None
            if os.stat(temp).st_size > MAX_SMALL_BYTES:
                raise self.error(f"{key} is larger than {MAX_SMALL_BYTES} bytes; refused")
            return temp.read_bytes()

    def iter_output_hashes(self) -> Iterator[str]:
        """The Merkle hash of every output record on the remote."""
        self.prepare(write=False)
        for key in self.list(OUTPUTS + "/"):
            yield digest_of(key)

    def _run(
        self,
        keys: Sequence[str],
        sizes: Mapping[str, int],
        work: Any,
        jobs: int | None,
        progress: Progress | None,
    ) -> tuple[builtins.list[str], dict[str, str]]:
        batches = make_batches(keys, [sizes[k] for k in keys], self.batch_items, self.batch_bytes)
        if progress is not None:
            progress.start(len(keys))
        on_done = progress.advance if progress is not None else (lambda count: None)
        return run_batches(batches, work, lambda key: key, jobs or self.default_jobs, on_done)


def _temp_path(folder: Path, prefix: str) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix)
    os.close(fd)
    return Path(name)


def _adopt(store: ObjectStore, temp: Path, oid: str) -> None:
    """Move a verified temporary file into the store: read-only, atomic rename.

    Not fsynced one by one (a journal commit per object made pulls of many small files
    several times slower); `pull` syncs the store's filesystem once at the end instead.
    """
    os.chmod(temp, 0o444)
    target = store.oid_to_path(oid)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(temp, target)


def sync_filesystem(path: Path) -> None:
    """Flush the filesystem holding `path` to disk (Linux `syncfs`; elsewhere `os.sync`)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        syncfs(fd)
    finally:
        os.close(fd)
