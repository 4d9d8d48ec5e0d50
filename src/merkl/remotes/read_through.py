"""Read-through: on a local cache miss during `.get()`, fetch the output from a remote.

Enabled per remote with `read_through = true` in its `[remotes.NAME]` table (the default
remote is preferred when several say so). The remote is opened on the first miss, not before,
so `import merkl` and cached runs stay fast. Records follow `merkl pull`'s rules (a trusted
signature when `[trust] keys` is set, a safe serializer unless pickle is trusted). The object is
verified like any pulled object and only then stored and indexed: a partial or corrupt object is
never used. A remote that cannot be reached is reported once with a warning and not asked again
in this process; the task is computed locally instead.
"""

from __future__ import annotations

import functools
import threading
import warnings
from typing import TYPE_CHECKING

from merkl.cache.index import OutputEntry
from merkl.errors import MerklError, MerklWarning
from merkl.remotes.lazy import LazyRemote
from merkl.remotes.records import Record, is_safe_serializer, object_key

if TYPE_CHECKING:
    from merkl.cache import Cache
    from merkl.cache.store import ObjectStore
    from merkl.remotes.base import Remote
    from merkl.remotes.config import RemoteConfig
    from merkl.remotes.trust import RecordPolicy
    from merkl.repo import Repo


def install_read_through(repo: Repo, cache: Cache) -> None:
    """Set `cache.read_through` (and `cache.shared_leases` with `lease = true`) when a
    configured remote asks for it; errors in the configuration surface later, on use, not
    while opening the cache. Also set `cache.remotes`, which opens a remote by name when an
    output a worker stored there is needed (`merkl run --worker-remote`)."""
    cache.remotes = functools.partial(_remote_objects, repo)
    config = preferred_read_through(repo)
    if config is None:
        return
    cache.read_through = ReadThrough(repo, config.name)
    if config.flag("lease"):
        from merkl.remotes.leases import RemoteLeases

        ttl = float(config.options.get("lease_ttl", RemoteLeases.DEFAULT_TTL))
        cache.shared_leases = RemoteLeases(repo, config.name, ttl)


class RemoteObjects:
    """What `Cache.remotes` gives for a remote: fetches the objects of outputs a worker stored
    there into the local store (the pipeline's result, or a `.get()` later)."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def fetch(self, oid: str, store: ObjectStore) -> None:
        self.remote.pull(store, [oid], inline=True).raise_for_failures("pull", self.remote.label)


def _remote_objects(repo: Repo, name: str) -> RemoteObjects:
    from merkl.remotes.config import get_remote

    return RemoteObjects(get_remote(repo, name))


def preferred_read_through(repo: Repo) -> RemoteConfig | None:
    """The remote read-through uses: the default one if it says `read_through = true`, else
    the first that does; None when none does or the configuration is invalid."""
    from merkl.remotes.config import default_remote_name, remote_configs

    try:
        configs = remote_configs(repo)
        default = default_remote_name(repo) if configs else None
    except MerklError:
        return None
    chosen = [name for name, config in configs.items() if config.flag("read_through")]
    if not chosen:
        return None
    return configs[default if default in chosen else chosen[0]]


class ReadThrough:
    """The `Cache.read_through` callable: out_hash → a fresh local `OutputEntry` or None."""

    def __init__(self, repo: Repo, remote_name: str) -> None:
        self.repo = repo
        self.remote_name = remote_name
        self._policy: RecordPolicy | None = None
        self._untrusted = 0  # records skipped for want of a trusted signature
        self._lock = threading.Lock()
        self._remote = LazyRemote(
            repo,
            remote_name,
            "read-through from",
            "tasks are computed locally",
            prepare=self._load_policy,
        )

    def _load_policy(self) -> None:
        from merkl.remotes.trust import RecordPolicy, trusted_keys

        # invalid trust: fail closed
        self._policy = RecordPolicy(trusted_keys(self.repo), trust_pickle=False)

    def __call__(self, out_hash: str) -> OutputEntry | None:
        remote = self._remote.open()
        if remote is None:
            return None
        repo = self.repo
        try:
            found, _invalid = remote.fetch_outputs([out_hash], repo.tmp_dir)
            record = found.get(out_hash)
            if record is None or not self._signed(remote, record):
                return None
            entry = record.entry
            if not self._trusted(remote, entry):
                return None
            if repo.store.has(entry.oid):
                # Index it only if the remote really holds that object: a planted record must
                # not make a local, never-pushed object look like a pushable output.
                if not remote.confirm([entry.oid], repo.tmp_dir, jobs=1):
                    return None
            else:
                result = remote.pull(repo.store, [entry.oid], jobs=1, inline=True)
                if result.failed:
                    reason = result.failed.get(object_key(entry.oid), "failed")
                    warnings.warn(
                        f"read-through: object {entry.oid[:12]} of output {out_hash[:12]} from "
                        f"{remote.label} refused: {reason}; computing it locally",
                        MerklWarning,
                        stacklevel=3,
                    )
                    return None
        except MerklError as exc:
            self._remote.give_up(exc)
            return None
        repo.index.add_outputs([entry])
        return entry

    def _signed(self, remote: Remote, record: Record) -> bool:
        """Signed by a trusted key; the first refusal in a process is reported (once)."""
        assert self._policy is not None  # set by _load_policy when the remote was opened
        if self._policy.signed([record], remote, self.repo.tmp_dir):
            return True
        with self._lock:
            self._untrusted += 1
            first = self._untrusted == 1
        if first:
            warnings.warn(
                f"read-through: skipped an untrusted output record from {remote.label} (not "
                f"signed by a key in [trust] keys); computing it locally (further ones are "
                f"skipped silently)",
                MerklWarning,
                stacklevel=4,
            )
        return False

    @staticmethod
    def _trusted(remote: Remote, entry: OutputEntry) -> bool:
        from merkl.session import current_session

        if is_safe_serializer(entry.serializer):
            return True
        if remote.options.get("trust_pickle"):
            return True
        try:
            return current_session().trust_pickle
        except MerklError:
            return False
