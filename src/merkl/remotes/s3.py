"""An S3 remote (`s3://bucket/prefix`), for AWS or any S3-compatible endpoint.

Credentials come from boto3's standard chain (environment, profile, instance role); the endpoint
from the `endpoint_url` option or `AWS_ENDPOINT_URL`.

By default blobs are written in packs (`merkl.remotes.packs`): a push of 1,000 small objects
is a few PUTs of `pack_size` bytes plus one index per batch, and a pull a few ranged GETs,
because on an object store the cost is per request. Big blobs are cut into pack-sized pieces
uploaded in parallel, so no multipart upload is needed (none can be left half-done). With
`pack = false` each blob is its own key (`objects/ab/cdef…`): one PUT/GET, or above
`multipart_threshold` a multipart upload and parallel ranged GETs. Reads understand both
layouts, so remotes written by older versions or with packing off keep working.

`has` looks keys up in the pack indexes (listed once per instance, each fetched once, re-listed
when a key is missing), then looks for loose keys: HEADs for a few, a listing for many, and
nothing at all when the prefix holds no loose key.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from merkl.errors import CacheMissError, MerklWarning, RemoteError
from merkl.hashing import hash_bytes
from merkl.remotes.base import Reclaimed, Remote, Source
from merkl.remotes.locks import lock_timeout
from merkl.remotes.packs import (
    INDEX,
    PACKS,
    Location,
    PackCatalog,
    Piece,
    RangeRead,
    cache_index,
    dump_index,
    load_index,
    pack_key,
    plan_packs,
    plan_reads,
    read_cached_index,
    read_pack,
)
from merkl.remotes.records import LOOSE_TOPS, OBJECTS, digest_of
from merkl.remotes.repack import DEFAULT_MAX_UNUSED, PackInfo, parse_max_unused, plan_compaction

_T = TypeVar("_T")
_LIST_THRESHOLD = 100  # above this many keys, one listing beats parallel HEADs
_MULTIPART = 64 << 20
_PART = 16 << 20  # multipart upload part (downloads use parts of `multipart_threshold`)
_PART_THREADS = 8
_PACK_SIZE = 16 << 20  # restic's default too; on moto it pushed a little faster than 32 or 64 MiB
_PACK_SIZE_RANGE = (64 << 10, 1 << 30)
_PACK_MEMORY = 256 << 20  # pack buffers held at once by one remote (their number is capped)
_COPY = 1 << 20
_REPACK_BATCH = 64 << 20  # live bytes gc copies per round (held twice in memory)
_FATAL_CODES = {
    "AccessDenied": "access denied",
    "InvalidAccessKeyId": "the access key is not valid",
    "SignatureDoesNotMatch": "the secret key is wrong",
    "NoSuchBucket": "the bucket does not exist",
    "InvalidBucketName": "the bucket name is not valid",
    "ExpiredToken": "the session token has expired",
    "403": "access denied",
}
_CREDENTIALS_HINT = (
    "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE) and the "
    "endpoint (AWS_ENDPOINT_URL or the endpoint_url option)"
)


class S3Remote(Remote):
    """Blobs in packs under `s3://bucket/prefix/` (`packs/`, `index/`), or one key per blob
    (`objects/ab/cdef…`) with `pack = false`."""

    default_jobs = min(32, 4 * (os.cpu_count() or 2))  # network-bound: as DVC, 4 per CPU
    # One `put` packs up to this much (one index each); `get` reads its packs in parallel.
    batch_items: ClassVar[int] = 1000
    batch_bytes: ClassVar[int] = 128 << 20
    known_options = frozenset(
        {
            "endpoint_url",
            "region",
            "multipart_threshold",
            "checksums",
            "pack",
            "pack_size",
            "lock_timeout",
            "max_unused",
        }
    )
    supports_gc = True

    def __init__(
        self, url: str, *, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(url, name=name, options=options)
        rest = url.split("://", 1)[1].partition("?")[0].partition("#")[0]  # never in a key
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise self.error("the URL names no bucket", hint="write s3://BUCKET/PREFIX")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = int(self.options.get("multipart_threshold", _MULTIPART))
        self.pack = self.options.get("pack", True)
        if not isinstance(self.pack, bool):
            raise self.error(f"option pack must be true or false, got {self.pack!r}")
        self.pack_size = self.options.get("pack_size", _PACK_SIZE)
        low, high = _PACK_SIZE_RANGE
        if (
            isinstance(self.pack_size, bool)
            or not isinstance(self.pack_size, int)
            or not (low <= self.pack_size <= high)
        ):
            raise self.error(
                f"option pack_size must be a number of bytes from {low} to {high}, got "
                f"{self.pack_size!r}",
                hint=f"the default is {_PACK_SIZE} (16 MiB)",
            )
        self.max_unused = parse_max_unused(
            self.options.get("max_unused", DEFAULT_MAX_UNUSED), self.label
        )
        self._prepared = False
        self._catalog = PackCatalog()
        self._listed = False  # indexes listed at least once
        # Every index read, parsed ({name: locations}, None if invalid): an index never
        # changes, so gc plans from these rather than parsing them again.
        self._parsed: dict[str, dict[str, Location] | None] = {}
        self._refresh_lock = threading.Lock()
        self._pack_slots = threading.BoundedSemaphore(
            max(2, min(self.default_jobs, _PACK_MEMORY // self.pack_size))
        )

    @functools.cached_property
    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        checksums = self.options.get("checksums", False) is True
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=self.options.get("endpoint_url") or None,
            region_name=self.options.get("region") or None,
            config=Config(
                max_pool_connections=max(self.default_jobs, int(self.options.get("jobs", 0))) + 8,
                connect_timeout=5,
                read_timeout=120,
                retries={"max_attempts": 3, "mode": "standard"},
                # Pulls re-hash every object with BLAKE3, so boto3's own CRC of every body is
                # redundant work for both ends (about a third of a small PUT on a local
                # endpoint); the `checksums = true` option turns it back on.
                request_checksum_calculation="when_supported" if checksums else "when_required",
                response_checksum_validation="when_supported" if checksums else "when_required",
            ),
        )

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=_PART,
            max_concurrency=_PART_THREADS,
        )

    def _call(self, operation: Callable[[], _T], key: str | None = None) -> _T:
        """Run a boto3 call; fatal errors become `RemoteError`, a missing key `CacheMissError`."""
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            return operation()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if key is not None and code in ("404", "NoSuchKey", "NotFound"):
                raise CacheMissError(
                    f"{key} is not on {self.label}", key=key, remote=self.name
                ) from None
            if code in _FATAL_CODES:
                what = f"{_FATAL_CODES[code]} (bucket {self.bucket!r})"
                raise self.error(what, hint=_CREDENTIALS_HINT) from exc
            raise
        except NoCredentialsError as exc:
            raise self.error("no AWS credentials found", hint=_CREDENTIALS_HINT) from exc
        except EndpointConnectionError as exc:
            raise self.error("cannot reach the S3 endpoint", exc) from exc
        except BotoCoreError as exc:
            if "Connect" in type(exc).__name__:
                raise self.error("cannot reach the S3 endpoint", exc) from exc
            raise

    def prepare(self, *, write: bool) -> None:
        if self._prepared:
            return
        from botocore.exceptions import ClientError

        try:
            self._call(lambda: self.client.head_bucket(Bucket=self.bucket))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise self.error(
                    f"bucket {self.bucket!r} does not exist",
                    hint="create it first (merkl does not create buckets)",
                ) from exc
            raise self.error(f"cannot use bucket {self.bucket!r}", exc) from exc
        self._prepared = True

    # -- has ----------------------------------------------------------------------------------
    def has(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        if all(key.startswith(LOOSE_TOPS) for key in keys):  # locks, roots: never packed
            return self._has_loose(keys)
        found = self._packed(keys)
        rest = [key for key in keys if key not in found]
        return found | self._has_loose(rest) if rest else found

    def _packed(self, keys: Sequence[str]) -> set[str]:
        """The keys some pack index lists; re-lists the indexes once when one is missing (a
        long-lived process sees packs pushed since it last looked)."""
        listed_now = not self._listed
        if listed_now:
            self._refresh()
        found = {key for key in keys if self._catalog.find(key) is not None}
        if len(found) < len(keys) and not listed_now:
            self._refresh()
            found = {key for key in keys if self._catalog.find(key) is not None}
        return found

    def _has_loose(self, keys: Sequence[str]) -> set[str]:
        tops = {key.split("/", 1)[0] + "/" for key in keys}
        tops = {top for top in tops if self._holds_loose(top)}
        keys = [key for key in keys if key.split("/", 1)[0] + "/" in tops]
        if not keys:
            return set()
        if len(keys) > _LIST_THRESHOLD:
            listed = {k for top in tops for k in self._list_loose(top)}
            return {key for key in keys if key in listed}
        with ThreadPoolExecutor(max_workers=min(16, len(keys))) as pool:
            found = list(pool.map(self._exists, keys))
        return {key for key, ok in zip(keys, found, strict=True) if ok}

    def _holds_loose(self, top: str) -> bool:
        """Whether any loose key starts with `top`: one request that spares a packed remote
        a HEAD per key."""
        page = self._call(
            partial(
                self.client.list_objects_v2,
                Bucket=self.bucket,
                Prefix=self.prefix + top,
                MaxKeys=1,
            )
        )
        return bool(page.get("KeyCount") or page.get("Contents"))

    def _exists(self, key: str) -> bool:
        try:
            self._call(
                lambda: self.client.head_object(Bucket=self.bucket, Key=self.prefix + key), key=key
            )
        except CacheMissError:
            return False
        return True

    def _refresh(self) -> None:
        """Read the pack indexes this instance has not seen yet (they never change)."""
        with self._refresh_lock:
            names = [
                key
                for key in self._list_loose(INDEX)
                if key.endswith(".json") and not self._catalog.is_known(key)
            ]
            invalid: list[str] = []
            if names:
                with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
                    invalid = [w for w in pool.map(self._read_index, names) if w]
            self._listed = True
        for message in invalid:
            warnings.warn(message, MerklWarning, stacklevel=4)

    def _read_index(self, name: str) -> str:
        """Fetch one index into the catalog; returns why it is unusable, or ''.

        Indexes never change and are named by their hash, so a local copy that still hashes
        to its name is as good as the remote's: a remote's first contact in a new process
        then costs one listing, not one GET per index ever pushed.
        """
        data = read_cached_index(self.local_cache, name)
        fetched = data is None
        if data is None:
            try:
                response = self._call(
                    partial(self.client.get_object, Bucket=self.bucket, Key=self.prefix + name),
                    name,
                )
            except CacheMissError:
                return ""  # deleted since the listing
            with response["Body"] as body:
                data = body.read()
        try:
            locations = load_index(data, name, self.label)
        except RemoteError as exc:
            self._catalog.add(name, {})
            self._parsed[name] = None
            return f"{exc}; the keys it lists are treated as absent (a push sends them again)"
        self._catalog.add(name, locations)
        self._parsed[name] = locations
        if fetched:
            cache_index(self.local_cache, name, data)
        return ""

    # -- get ----------------------------------------------------------------------------------
    def get(self, items: Sequence[tuple[str, Path]]) -> None:
        if all(key.startswith(LOOSE_TOPS) for key, _ in items):  # locks, roots: never packed
            _run_all([partial(self._download, key, dest) for key, dest in items], 1)
            return
        if not self._listed:
            self._refresh()
        packed: list[tuple[str, Path, Location]] = []
        loose: list[tuple[str, Path]] = []
        for key, dest in items:
            location = self._catalog.find(key)
            if location is None:
                loose.append((key, dest))
            else:
                packed.append((key, dest, location))
        jobs: list[Callable[[], None]] = [partial(self._get_packed, packed)] if packed else []
        jobs += [partial(self._get_loose, key, dest) for key, dest in loose]
        _run_all(jobs, self.default_jobs)

    def _get_packed(self, packed: Sequence[tuple[str, Path, Location]]) -> None:
        """Ranged GETs of the packs; a missing pack (a gc repacked it since this instance read
        the indexes) makes it read every index again and retry once."""
        try:
            self._read_located(packed)
        except CacheMissError:
            self.forget()
            self._refresh()
            again = [(key, dest, self._catalog.find(key)) for key, dest, _ in packed]
            missing = [key for key, _, location in again if location is None]
            if missing:
                raise CacheMissError(
                    f"{missing[0]} is not on {self.label}", key=missing[0], remote=self.name
                ) from None
            self._read_located([(k, d, loc) for k, d, loc in again if loc is not None])

    def _read_located(self, packed: Sequence[tuple[str, Path, Location]]) -> None:
        for _, dest, location in packed:
            with open(dest, "wb") as handle:  # the size first: pieces land at their offsets
                handle.truncate(location.size)
        _run_all([partial(self._read_range, r) for r in plan_reads(packed)], self.default_jobs)

    def forget(self) -> None:
        self._catalog = PackCatalog()  # read the indexes again (local copies make it cheap)
        self._listed = False

    def _read_range(self, read: RangeRead) -> None:
        """One ranged GET of a pack, its pieces written into their destinations. A pack that
        is shorter than its index says leaves zeros behind, which the caller's re-hash refuses."""
        from botocore.exceptions import ClientError

        key = self.prefix + pack_key(read.pack)
        try:
            response = self._call(
                partial(
                    self.client.get_object,
                    Bucket=self.bucket,
                    Key=key,
                    Range=f"bytes={read.start}-{read.end - 1}",
                ),
                pack_key(read.pack),
            )
        except CacheMissError:
            first = read.writes[0].key
            raise CacheMissError(
                f"{first} is not on {self.label}: its pack {pack_key(read.pack)} is missing",
                key=first,
                remote=self.name,
            ) from None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return
            raise
        with response["Body"] as body:
            # A server that ignores Range answers with the whole pack: skip from its start.
            position = read.start if response.get("ContentRange") else 0
            for write in read.writes:
                if not _skip(body, write.offset - position):
                    return
                fd = os.open(write.dest, os.O_WRONLY)
                try:
                    copied = _copy_to(body, fd, write.at, write.length)
                finally:
                    os.close(fd)
                if copied < write.length:
                    return
                position = write.offset + write.length

    def _get_loose(self, key: str, dest: Path) -> None:
        try:
            self._download(key, dest)
        except CacheMissError:
            self._refresh()  # packed by someone since this instance last looked?
            location = self._catalog.find(key)
            if location is None:
                raise
            with open(dest, "wb") as handle:
                handle.truncate(location.size)
            for read in plan_reads([(key, dest, location)]):
                self._read_range(read)

    def _download(self, key: str, dest: Path) -> None:
        """One GET for the first `multipart_threshold` bytes, which is the whole object
        unless it is big; the rest in parallel ranged GETs of the same version (If-Match)."""
        from botocore.exceptions import ClientError

        client, full = self.client, self.prefix + key
        head = self.multipart_threshold
        try:
            first = self._call(
                partial(
                    client.get_object, Bucket=self.bucket, Key=full, Range=f"bytes=0-{head - 1}"
                ),
                key,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidRange":
                raise
            first = self._call(partial(client.get_object, Bucket=self.bucket, Key=full), key)
        content_range = first.get("ContentRange") or ""
        total = int(content_range.rpartition("/")[2] or first.get("ContentLength", 0))
        with open(dest, "wb") as handle:
            with first["Body"] as body:
                shutil.copyfileobj(body, handle, 1 << 20)
            if total <= head:
                return
            etag = first.get("ETag")
            fd = handle.fileno()

            def fetch(start: int) -> None:
                stop = min(start + head, total) - 1
                extra = {"IfMatch": etag} if etag else {}
                part = self._call(
                    partial(
                        client.get_object,
                        Bucket=self.bucket,
                        Key=full,
                        Range=f"bytes={start}-{stop}",
                        **extra,
                    ),
                    key,
                )
                with part["Body"] as body:
                    os.pwrite(fd, body.read(), start)

            with ThreadPoolExecutor(max_workers=_PART_THREADS) as pool:
                list(pool.map(fetch, range(head, total, head)))

    # -- put ----------------------------------------------------------------------------------
    def put(self, items: Sequence[tuple[str, Source]]) -> None:
        if not items:
            return
        if not self.pack:
            self._put_loose(items)
            return
        loose = [(key, source) for key, source in items if key.startswith(LOOSE_TOPS)]
        if loose:  # locks, roots, gc state: rewritten and deleted, so never packed
            self._put_loose(loose)
            items = [item for item in items if not item[0].startswith(LOOSE_TOPS)]
            if not items:
                return
        self._put_packed(items)

    def _put_packed(self, items: Sequence[tuple[str, Source]]) -> None:
        """Blobs into packs, uploaded in parallel, then one index naming them."""
        latest = dict(items)  # a key given twice: its last bytes win, as for loose keys
        sized = [
            (key, source, len(source) if isinstance(source, bytes) else source.stat().st_size)
            for key, source in latest.items()
        ]
        plans = plan_packs(sized, self.pack_size)
        if len(plans) > 1:
            with ThreadPoolExecutor(max_workers=min(_PART_THREADS, len(plans))) as pool:
                pack_ids = list(pool.map(self._put_pack, plans))
        else:
            pack_ids = [self._put_pack(plan) for plan in plans]
        empty = [key for key, _, size in sized if size == 0]
        name, data = dump_index(pack_ids, plans, empty)
        # Written last: until it exists, the packs above are invisible, so a killed push
        # leaves no key half there.
        self._put_bytes(name, data)
        locations = load_index(data, name, self.label)
        self._parsed[name] = locations
        self._catalog.add(name, locations)
        cache_index(self.local_cache, name, data)

    def _put_pack(self, pieces: Sequence[Piece]) -> str:
        with self._pack_slots:  # bounds the memory of packs being built and sent
            data = read_pack(pieces)
            pack_id = hash_bytes(data)
            self._put_bytes(pack_key(pack_id), data)
        return pack_id

    def _put_loose(self, items: Sequence[tuple[str, Source]]) -> None:
        _run_all([partial(self._put_one, key, source) for key, source in items], self.default_jobs)

    def _put_one(self, key: str, source: Source) -> None:
        if isinstance(source, Path) and source.stat().st_size > self.multipart_threshold:
            config = self._transfer_config()
            self._call(
                partial(
                    self.client.upload_file,
                    str(source),
                    self.bucket,
                    self.prefix + key,
                    Config=config,
                )
            )
            return
        self._put_bytes(key, source if isinstance(source, bytes) else source.read_bytes())

    def _put_bytes(self, key: str, data: bytes | bytearray) -> None:
        """One PUT of a whole object."""
        self._call(
            partial(self.client.put_object, Bucket=self.bucket, Key=self.prefix + key, Body=data)
        )

    # -- delete and gc ------------------------------------------------------------------------
    def delete(self, keys: Sequence[str]) -> None:
        """Loose keys go 1,000 per request; packed ones leave their indexes (`reclaim`)."""
        if all(key.startswith(LOOSE_TOPS) for key in keys):
            self._delete_keys(sorted(set(keys)))
        else:
            self.reclaim(keys, repack=False)

    def sizes(self, keys: Sequence[str]) -> dict[str, int]:
        return self.reclaim(keys, repack=False, dry_run=True).sizes

    def reclaim(
        self,
        keys: Sequence[str],
        *,
        repack: bool = True,
        dry_run: bool = False,
        check: Callable[[], None] | None = None,
    ) -> Reclaimed:
        """Delete `keys`: loose ones 1,000 per request; packed ones leave their indexes, and
        with `repack` the live keys of packs more than `max_unused` dead are copied into new
        packs; packs no index names any more are deleted whole (`merkl.remotes.repack` has
        the plan and the order that keeps every live key readable if this is killed)."""
        check = check or (lambda: None)
        doomed = set(keys)
        loose = self._loose_sizes(doomed)
        packs = self._list_packs()
        plan = plan_compaction(
            self._all_indexes(),
            packs,
            doomed,
            max_unused=self.max_unused if repack else None,
            orphan_before=time.time() - lock_timeout(self),
        )
        copied = plan.copied
        result = Reclaimed(
            sizes={**loose, **plan.sizes},
            freed=plan.freed + sum(loose.values()) - copied,
            repacked=len(plan.repack),
            copied=copied,
            packs_deleted=len(plan.delete_packs),
        )
        if dry_run:
            return result
        if plan.moved:
            check()
            self._copy_live(plan.moved)  # new packs and their index first
        for replacement in plan.rewrite.values():
            if replacement is not None:  # before the old index goes: a kill leaves both
                self._put_bytes(*replacement)
                cache_index(self.local_cache, *replacement)
        self._delete_keys(sorted(plan.rewrite), check)
        self._delete_keys(sorted(loose), check)
        self._delete_keys([pack_key(pack) for pack in plan.delete_packs], check)
        self.forget()
        return result

    def _delete_keys(self, keys: Sequence[str], check: Callable[[], None] | None = None) -> None:
        """DeleteObjects, 1,000 keys per request (S3's limit)."""
        for start in range(0, len(keys), 1000):
            if check is not None:
                check()
            objects = [{"Key": self.prefix + key} for key in keys[start : start + 1000]]
            self._call(
                partial(
                    self.client.delete_objects,
                    Bucket=self.bucket,
                    Delete={"Objects": objects, "Quiet": True},
                )
            )

    def _loose_sizes(self, keys: set[str]) -> dict[str, int]:
        """{key: bytes} of the loose keys among `keys` (one listing per top folder)."""
        tops = {key.split("/", 1)[0] + "/" for key in keys}
        return {
            key: size
            for top in sorted(tops)
            for key, size, _ in self._list_items(top)
            if key in keys
        }

    def _list_packs(self) -> dict[str, PackInfo]:
        return {
            key[len(PACKS) :].removesuffix(".pack"): PackInfo(size, modified)
            for key, size, modified in self._list_items(PACKS)
            if key.endswith(".pack")
        }

    def _all_indexes(self) -> dict[str, dict[str, Location] | None]:
        """Every index on the remote, parsed (None: invalid)."""
        names = [k for k in self._list_loose(INDEX) if k.endswith(".json")]
        unread = [name for name in names if name not in self._parsed]
        if unread:
            with ThreadPoolExecutor(max_workers=min(16, len(unread))) as pool:
                list(pool.map(self._read_index, unread))  # invalid ones: None, no warning
        return {name: self._parsed[name] for name in names if name in self._parsed}

    def _copy_live(self, moved: Mapping[str, Location]) -> None:
        """Copy live keys out of the packs being repacked into new packs, each batch (at most
        `_REPACK_BATCH` bytes, read into one scratch file) under an index of its own. Objects
        are re-hashed on the way: a damaged pack stops gc before it deletes anything more."""
        batches: list[list[tuple[str, Location]]] = [[]]
        used = 0
        for key, location in sorted(moved.items()):
            if batches[-1] and used + location.size > _REPACK_BATCH:
                batches.append([])
                used = 0
            batches[-1].append((key, location))
            used += location.size
        with tempfile.TemporaryDirectory(prefix="merkl-repack-") as folder:
            scratch = Path(folder) / "batch"
            for batch in batches:
                base: dict[str, int] = {}
                at = 0
                for key, location in batch:  # the batch's keys back to back in one file
                    base[key] = at
                    at += location.size
                self._read_into(scratch, batch, base)
                data = memoryview(scratch.read_bytes())
                blobs: list[tuple[str, Source]] = []
                for key, location in batch:
                    blob = bytes(data[base[key] : base[key] + location.size])
                    if key.startswith(OBJECTS + "/") and hash_bytes(blob) != digest_of(key):
                        raise self.error(
                            f"{key} does not match its hash in its pack; gc stopped",
                            hint="the pack is damaged; push the object again",
                        )
                    blobs.append((key, blob))
                self._put_packed(blobs)

    def _read_into(
        self, scratch: Path, batch: Sequence[tuple[str, Location]], base: Mapping[str, int]
    ) -> None:
        """Ranged GETs writing each key of `batch` at its `base` offset of `scratch`."""
        with open(scratch, "wb") as handle:
            handle.truncate(sum(location.size for _, location in batch))
        reads = plan_reads([(key, scratch, location) for key, location in batch])
        for read in reads:
            read.writes = [w._replace(at=base[w.key] + w.at) for w in read.writes]
        _run_all([partial(self._read_range, r) for r in reads], self.default_jobs)

    # -- list ---------------------------------------------------------------------------------
    def list(self, prefix: str) -> Iterator[str]:
        seen: set[str] = set()
        for key in self._list_loose(prefix):
            if not key.startswith((PACKS, INDEX)):
                seen.add(key)
                yield key
        if prefix.startswith(LOOSE_TOPS):
            return  # locks, roots, gc state: never packed
        self._refresh()
        for key in self._catalog.keys(prefix):
            if key not in seen:
                yield key

    def _list_loose(self, prefix: str) -> Iterator[str]:
        for key, _, _ in self._list_items(prefix):
            yield key

    def _list_items(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        """(key, size, modified) of every S3 object under `prefix`."""
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            lambda: iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix))
        )
        while True:
            page = self._call(lambda: next(pages, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                modified = item.get("LastModified")
                yield (
                    item["Key"][len(self.prefix) :],
                    int(item.get("Size", 0)),
                    modified.timestamp() if modified is not None else 0.0,
                )

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()


def _run_all(jobs: Sequence[Callable[[], None]], workers: int) -> None:
    """Run the jobs, several at once when there are several; the first failure is raised."""
    if len(jobs) == 1:
        jobs[0]()
    elif jobs:
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()


def _skip(body: Any, count: int) -> bool:
    """Read and drop `count` bytes (a gap between wanted pieces); False if the body ended."""
    while count > 0:
        chunk = body.read(min(count, _COPY))
        if not chunk:
            return False
        count -= len(chunk)
    return True


def _copy_to(body: Any, fd: int, at: int, length: int) -> int:
    """Copy `length` bytes of `body` to `fd` at offset `at`; returns how many arrived."""
    copied = 0
    while copied < length:
        chunk = body.read(min(length - copied, _COPY))
        if not chunk:
            break
        os.pwrite(fd, chunk, at + copied)
        copied += len(chunk)
    return copied
