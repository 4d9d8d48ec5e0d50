"""An S3 remote (`s3://bucket/prefix`), for AWS or any S3-compatible endpoint.

Credentials come from boto3's standard chain (environment, profile, instance role); the endpoint
from the `endpoint_url` option or `AWS_ENDPOINT_URL`. Small objects use one PUT/GET; objects
above `multipart_threshold` are uploaded in parallel multipart parts (boto3's transfer manager)
and downloaded as one GET of the first `multipart_threshold` bytes plus parallel ranged GETs.
`has` HEADs a few keys in parallel, and lists the prefix instead when asked about many, which
costs one request per 1,000 keys.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from merkl.errors import CacheMissError
from merkl.remotes.base import Remote, Source

_T = TypeVar("_T")
_LIST_THRESHOLD = 100  # above this many keys, one listing beats parallel HEADs
_MULTIPART = 64 << 20
_PART = 16 << 20  # multipart upload part (downloads use parts of `multipart_threshold`)
_PART_THREADS = 8
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
    """Objects under `s3://bucket/prefix/objects/ab/cdef…`."""

    default_jobs = min(32, 4 * (os.cpu_count() or 2))  # network-bound: as DVC, 4 per CPU
    known_options = frozenset({"endpoint_url", "region", "multipart_threshold", "checksums"})

    def __init__(
        self, url: str, *, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(url, name=name, options=options)
        rest = url.split("://", 1)[1]
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise self.error("the URL names no bucket", hint="write s3://BUCKET/PREFIX")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = int(self.options.get("multipart_threshold", _MULTIPART))
        self._prepared = False

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

    def has(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        if len(keys) > _LIST_THRESHOLD:
            tops = {key.split("/", 1)[0] + "/" for key in keys}
            listed = {k for top in tops for k in self.list(top)}
            return {key for key in keys if key in listed}
        with ThreadPoolExecutor(max_workers=min(16, len(keys))) as pool:
            found = list(pool.map(self._exists, keys))
        return {key for key, ok in zip(keys, found, strict=True) if ok}

    def _exists(self, key: str) -> bool:
        try:
            self._call(
                lambda: self.client.head_object(Bucket=self.bucket, Key=self.prefix + key), key=key
            )
        except CacheMissError:
            return False
        return True

    def get(self, items: Sequence[tuple[str, Path]]) -> None:
        for key, dest in items:
            self._download(key, dest)

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

    def put(self, items: Sequence[tuple[str, Source]]) -> None:
        client = self.client
        for key, source in items:
            full = self.prefix + key
            if isinstance(source, Path) and source.stat().st_size > self.multipart_threshold:
                config = self._transfer_config()
                self._call(
                    partial(client.upload_file, str(source), self.bucket, full, Config=config)
                )
                continue
            data = source if isinstance(source, bytes) else source.read_bytes()
            self._call(partial(client.put_object, Bucket=self.bucket, Key=full, Body=data))

    def list(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = self._call(
            lambda: iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix))
        )
        while True:
            page = self._call(lambda: next(pages, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()
