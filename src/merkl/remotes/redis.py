"""A Redis remote (`redis://[:${PASSWORD}@]host:6379/0`, `rediss://` for TLS).

Every key lives under a prefix (option `prefix`, default `merkl:`). A blob up to `chunk_size`
is stored inline as `b"\\0" + bytes`; a larger one as chunk keys `<key>#0…#n-1` plus the main
key `b"\\1" + {"parts": n, "size": s}` written last, so a key is complete exactly when its main
key exists and an interrupted push leaves nothing `has` reports. Batches travel in pipelines,
one round trip for many small objects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from merkl.errors import CacheMissError, RemoteError
from merkl.remotes.base import Remote, Source

_T = TypeVar("_T")
_INLINE = b"\0"
_CHUNKED = b"\1"
_CHUNK = 4 << 20
_CHUNKS_PER_TRIP = 4
# Compare-and-act on a lease key: only the token that holds it may extend or drop it.
_IF_HELD = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call"
_RENEW = _IF_HELD + "('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = _IF_HELD + "('del', KEYS[1]) end return 0"


class RedisRemote(Remote):
    """Blobs as Redis strings under a key prefix."""

    default_jobs = 8
    batch_items = 64
    batch_bytes = 16 << 20
    known_options = frozenset({"prefix", "chunk_size", "lock_timeout"})
    supports_gc = True

    def __init__(
        self, url: str, *, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(url, name=name, options=options)
        self.prefix = str(self.options.get("prefix", "merkl:"))
        self.chunk_size = int(self.options.get("chunk_size", _CHUNK))
        self._prepared = False

    @functools.cached_property
    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(
            self.url,
            socket_connect_timeout=5,
            socket_timeout=120,
            max_connections=max(self.default_jobs, int(self.options.get("jobs", 0))) + 4,
        )

    def _call(self, operation: Callable[[], _T]) -> _T:
        import redis

        try:
            return operation()
        except redis.AuthenticationError as exc:
            raise self.error(
                "authentication failed", exc, hint="check the password in the URL's ${VAR}"
            ) from exc
        except redis.ConnectionError as exc:
            raise self.error("cannot connect", exc) from exc
        except redis.TimeoutError as exc:
            raise self.error("timed out", exc) from exc
        except redis.ResponseError as exc:
            if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
                raise self.error("authentication failed", exc) from exc
            raise RemoteError(self.scrubbed(f"{self.label}: {exc}")) from exc

    def prepare(self, *, write: bool) -> None:
        if not self._prepared:
            self._call(self.client.ping)
            self._prepared = True

    def has(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 1000):
            part = keys[start : start + 1000]
            pipe = self.client.pipeline(transaction=False)
            for key in part:
                pipe.exists(self.prefix + key)
            flags = self._call(pipe.execute)
            found.update(k for k, flag in zip(part, flags, strict=True) if flag)
        return found

    def get(self, items: Sequence[tuple[str, Path]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, _dest in items:
            pipe.get(self.prefix + key)
        heads = self._call(pipe.execute)
        for (key, dest), head in zip(items, heads, strict=True):
            if head is None:
                raise CacheMissError(f"{key} is not on {self.label}", key=key, remote=self.name)
            with open(dest, "wb") as handle:
                if head[:1] == _INLINE:
                    handle.write(memoryview(head)[1:])
                    continue
                parts = int(orjson.loads(head[1:])["parts"])
                self._read_chunks(key, parts, handle.write)

    def _read_chunks(self, key: str, parts: int, write: Callable[[bytes], object]) -> None:
        for start in range(0, parts, _CHUNKS_PER_TRIP):
            pipe = self.client.pipeline(transaction=False)
            for index in range(start, min(parts, start + _CHUNKS_PER_TRIP)):
                pipe.get(f"{self.prefix}{key}#{index}")
            for chunk in self._call(pipe.execute):
                if chunk is None:  # evicted (maxmemory) or deleted: this object only is lost
                    raise CacheMissError(
                        f"a chunk of {key} is missing on {self.label} (evicted?); push it again",
                        key=key,
                        remote=self.name,
                    )
                write(chunk)

    def put(self, items: Sequence[tuple[str, Source]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, source in items:
            if isinstance(source, bytes):
                pipe.set(self.prefix + key, _INLINE + source)
                continue
            if source.stat().st_size <= self.chunk_size:
                pipe.set(self.prefix + key, _INLINE + source.read_bytes())
                continue
            self._put_chunked(key, source)
        self._call(pipe.execute)

    def _put_chunked(self, key: str, source: Path) -> None:
        parts = 0
        size = 0
        with open(source, "rb") as handle:
            while True:
                pipe = self.client.pipeline(transaction=False)
                queued = 0
                while queued < _CHUNKS_PER_TRIP:
                    chunk = handle.read(self.chunk_size)
                    if not chunk:
                        break
                    pipe.set(f"{self.prefix}{key}#{parts}", chunk)
                    parts += 1
                    size += len(chunk)
                    queued += 1
                if queued:
                    self._call(pipe.execute)
                if queued < _CHUNKS_PER_TRIP:
                    break
        header = orjson.dumps({"parts": parts, "size": size})
        self._call(lambda: self.client.set(self.prefix + key, _CHUNKED + header))

    def try_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        key = self.prefix + name
        return bool(self._call(lambda: self.client.set(key, token, nx=True, px=ttl_ms)))

    def renew_lease(self, name: str, token: str, ttl_ms: int) -> bool:
        key = self.prefix + name
        return bool(self._call(lambda: self.client.eval(_RENEW, 1, key, token, ttl_ms)))

    def release_lease(self, name: str, token: str) -> None:
        key = self.prefix + name
        self._call(lambda: self.client.eval(_RELEASE, 1, key, token))

    def delete(self, keys: Sequence[str]) -> None:
        """The main keys go first (a half-deleted blob is then invisible), then the chunks."""
        if not keys:
            return
        names = [self.prefix + key for key in keys]
        pipe = self.client.pipeline(transaction=False)
        for name in names:  # the first byte only: inline blobs may be megabytes each
            pipe.getrange(name, 0, 0)
        kinds = self._call(pipe.execute)
        chunked = [n for n, kind in zip(names, kinds, strict=True) if kind == _CHUNKED]
        headers = self._call(lambda: self.client.mget(chunked)) if chunked else []
        self._call(lambda: self.client.delete(*names))
        chunks = [
            f"{name}#{part}"
            for name, head in zip(chunked, headers, strict=True)
            if head is not None
            for part in range(int(orjson.loads(head[1:])["parts"]))
        ]
        for start in range(0, len(chunks), 1000):
            self._call(functools.partial(self.client.delete, *chunks[start : start + 1000]))

    def sizes(self, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(keys), 1000):
            part = keys[start : start + 1000]
            pipe = self.client.pipeline(transaction=False)
            for key in part:
                pipe.getrange(self.prefix + key, 0, 0)
                pipe.strlen(self.prefix + key)
            flat = self._call(pipe.execute)
            chunked = []
            for key, kind, length in zip(part, flat[::2], flat[1::2], strict=True):
                if kind == _INLINE:
                    found[key] = int(length) - 1
                elif kind == _CHUNKED:
                    chunked.append(key)
            if chunked:
                names = [self.prefix + k for k in chunked]
                heads = self._call(functools.partial(self.client.mget, names))
                for key, head in zip(chunked, heads, strict=True):
                    if head is not None:
                        found[key] = int(orjson.loads(head[1:])["size"])
        return found

    def list(self, prefix: str) -> Iterator[str]:
        pattern = _glob_escape(self.prefix + prefix) + "*"
        for raw in self._call(lambda: list(self.client.scan_iter(match=pattern, count=1000))):
            key = raw.decode()[len(self.prefix) :]
            if "#" not in key:
                yield key

    def close(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
