"""A tiered remote (`tiered:cache,origin`): named remotes, fastest first.

Push writes to every tier (each skips what it already has). Reads try the tiers in order and
back-fill the faster tiers with what a slower one had, so the next reader finds it up front —
e.g. Redis in front of S3.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merkl.cache.index import OutputEntry
from merkl.cache.store import ObjectStore
from merkl.errors import CacheMissError, UsageError
from merkl.progress import Progress
from merkl.remotes.base import Remote, Source
from merkl.remotes.records import Record, digest_of
from merkl.remotes.signing import as_records
from merkl.remotes.transfer import Stopwatch, TransferResult

if TYPE_CHECKING:
    from merkl.remotes.signing import Signer


class TieredRemote(Remote):
    """Several remotes used as one."""

    def __init__(
        self, url: str, *, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        options = dict(options or {})
        tiers = options.pop("tiers", None)
        super().__init__(url, name=name, options=options)
        if not tiers or not all(isinstance(t, Remote) for t in tiers):
            raise UsageError(
                f"tiered remote {name!r} needs its tiers opened by name; configure it as "
                f"url = 'tiered:fast,slow' in merkl.toml"
            )
        self.tiers: list[Remote] = list(tiers)
        self.default_jobs = max(t.default_jobs for t in self.tiers)

    @property
    def label(self) -> str:
        names = ", ".join(t.name or t.label for t in self.tiers)
        return f"remote {self.name!r} (tiers {names})"

    # -- primitives: the union of the tiers ------------------------------------------------
    def prepare(self, *, write: bool) -> None:
        for tier in self.tiers:
            tier.prepare(write=write)

    def has(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for tier in self.tiers:
            rest = [k for k in keys if k not in found]
            if not rest:
                break
            found |= tier.has(rest)
        return found

    def get(self, items: Sequence[tuple[str, Path]]) -> None:
        for key, dest in items:
            for tier in self.tiers:
                try:
                    tier.get([(key, dest)])
                    break
                except CacheMissError:
                    continue
            else:
                raise CacheMissError(
                    f"{key} is on no tier of {self.label}", key=key, remote=self.name
                )

    def put(self, items: Sequence[tuple[str, Source]]) -> None:
        for tier in self.tiers:
            tier.put(items)

    def list(self, prefix: str) -> Iterator[str]:
        seen: set[str] = set()
        for tier in self.tiers:
            for key in tier.list(prefix):
                if key not in seen:
                    seen.add(key)
                    yield key

    def close(self) -> None:
        for tier in self.tiers:
            tier.close()

    # -- derived operations, tier by tier ---------------------------------------------------
    def push(
        self,
        store: ObjectStore,
        oids: Iterable[str],
        *,
        jobs: int | None = None,
        progress: Progress | None = None,
    ) -> TransferResult:
        oids = list(dict.fromkeys(oids))
        result = TransferResult()
        for tier in self.tiers:
            result.merge(tier.push(store, oids, jobs=jobs, progress=progress))
        # An object sent to two tiers is one object pushed (its bytes count twice).
        result.transferred = list(dict.fromkeys(result.transferred))
        result.skipped = len(oids) - len(result.transferred) - len(result.failed)
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
        clock = Stopwatch()
        remaining = [oid for oid in dict.fromkeys(oids) if not store.has(oid)]
        result = TransferResult()
        for position, tier in enumerate(self.tiers):
            if not remaining:
                break
            got = tier.pull(store, remaining, jobs=jobs, progress=progress, inline=inline)
            result.transferred += got.transferred
            result.nbytes += got.nbytes
            result.failed = got.failed  # what is still missing after this tier, and why
            fetched = [digest_of(key) for key in got.transferred]
            for faster in self.tiers[:position]:
                faster.push(store, fetched, jobs=jobs)  # back-fill
            remaining = [oid for oid in remaining if not store.has(oid)]
        result.failed = {k: v for k, v in result.failed.items() if digest_of(k) in remaining}
        result.seconds = clock.elapsed()
        return result

    def push_outputs(
        self,
        entries: Iterable[OutputEntry | Record],
        signer: Signer | None = None,
        manifests: Mapping[str, bytes] | None = None,
    ) -> TransferResult:
        # Signed once, so every tier holds the same records and manifests.
        records, blobs = as_records(entries, signer, manifests)
        result = TransferResult()
        for tier in self.tiers:
            result.merge(tier.push_outputs(records, manifests=blobs))
        result.transferred = list(dict.fromkeys(result.transferred))
        result.skipped = len(records) - len(result.transferred) - len(result.failed)
        return result

    def fetch_outputs(
        self, out_hashes: Iterable[str], tmp_dir: Path
    ) -> tuple[dict[str, Record], dict[str, str]]:
        remaining = list(dict.fromkeys(out_hashes))
        found: dict[str, Record] = {}
        invalid: dict[str, str] = {}
        for position, tier in enumerate(self.tiers):
            if not remaining:
                break
            entries, bad = tier.fetch_outputs(remaining, tmp_dir)
            invalid.update(bad)
            found.update(entries)
            for faster in self.tiers[:position]:
                faster.push_outputs(entries.values())  # back-fill, signatures kept
            remaining = [h for h in remaining if h not in found]
        return found, {k: v for k, v in invalid.items() if digest_of(k) not in found}
