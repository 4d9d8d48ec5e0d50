"""`merkl run --worker-remote NAME`: Dask workers store outputs on a shared remote themselves.

A worker serializes each output it computes, writes the object and its output record to the
remote (signed with the worker's own key when it has one: `merkl.remotes.signing`), and
returns only a `StoredElsewhere` entry (hash, oid, serializer, size). Dependents on any worker
read their inputs back from the remote, so no big value crosses to the driver, which only
indexes the entries and logs the runs.

The driver sends the remote's URL exactly as configured, `${VAR}` references unexpanded, and
its options: each worker expands them from its own environment, so credentials never travel
in the task graph. Outputs whose policy keeps them off remotes (`local`, `memory`, `never`)
still travel back as values, as without `--worker-remote`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from merkl.cache import CachePolicy
from merkl.cache.facade import StoredElsewhere
from merkl.cache.index import OutputEntry
from merkl.errors import CacheMissError, SerializationError, UsageError
from merkl.executors.base import as_stored, refused_output, split_result, timed_call
from merkl.executors.worker import CallSpec, DepSlot, resolve_task
from merkl.hashing import hash_bytes
from merkl.placeholder import Lazy
from merkl.remotes.records import object_key
from merkl.serializers import get_serializer
from merkl.tasks import Task, iter_lazy, substitute

if TYPE_CHECKING:
    from merkl.cache import Cache
    from merkl.cache.store import ObjectStore
    from merkl.remotes.base import Remote
    from merkl.remotes.signing import Signer
    from merkl.repo import Repo


@dataclass(frozen=True)
class RemoteSpec:
    """How a worker opens the remote: its name, URL and options as configured (no secret:
    config refuses literal passwords, so secrets are `${VAR}` references until opened)."""

    name: str
    url: str
    options: tuple[tuple[str, Any], ...]


def remote_spec(repo: Repo, name: str) -> RemoteSpec:
    """The spec of configured remote `name`; a tiered remote cannot be a worker remote."""
    from merkl.remotes.config import anchor_path, get_remote_config

    config = get_remote_config(repo, name)
    if config.is_tiered:
        raise UsageError(
            f"--worker-remote {name!r} is a tiered remote; name one of its tiers instead",
            exit_code=2,
        )
    # A relative directory is the project's, not the worker's working directory.
    url = config.url if "${" in config.url else anchor_path(repo, config.url)
    return RemoteSpec(config.name, url, tuple(sorted(config.options.items())))


class RemoteObjects:
    """`Cache.elsewhere` for the driver: objects on the worker remote count as cached, and a
    value needed here (the pipeline's result) is pulled into the local store."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self._held: dict[str, bool] = {}

    def has(self, oid: str) -> bool:
        held = self._held.get(oid)
        if held is None:
            held = self._held[oid] = bool(self.remote.has([object_key(oid)]))
        return held

    def fetch(self, oid: str, store: ObjectStore) -> None:
        self.remote.pull(store, [oid], inline=True).raise_for_failures("pull", self.remote.label)


def attach_worker_remote(cache: Cache, repo: Repo, name: str) -> None:
    """Let `cache` count outputs whose objects are on worker remote `name` as cached (before
    planning, so a re-run resumes from what reached the remote)."""
    if cache.elsewhere is None:
        from merkl.remotes.config import get_remote

        cache.elsewhere = RemoteObjects(get_remote(repo, name))


# Per worker process: remotes opened and the signing key (None: the worker has none).
_remotes: dict[RemoteSpec, Remote] = {}
_signer: list[Signer | None] = []


def _open(spec: RemoteSpec) -> Remote:
    remote = _remotes.get(spec)
    if remote is None:
        from merkl.remotes import open_remote

        where = f"worker remote {spec.name!r}"
        remote = open_remote(spec.url, name=spec.name, options=dict(spec.options), where=where)
        _remotes[spec] = remote
    return remote


def _worker_signer() -> Signer | None:
    if not _signer:
        from merkl.remotes.signing import load_signer

        _signer.append(load_signer())
    return _signer[0]


def run_call_to_remote(
    spec: CallSpec, remote_spec: RemoteSpec, out_hashes: tuple[str, ...], *deps: Any
) -> tuple[tuple[Any, ...], float, bool]:
    """Dask job: run one call, store its outputs on the remote; return their entries (values
    for outputs kept off remotes), the duration, and whether the records were signed."""
    remote = _open(remote_spec)
    task = resolve_task(spec.ref)
    slots: dict[Lazy, Any] = {}
    for slot in iter_lazy((spec.args, spec.kwargs)):
        assert isinstance(slot, DepSlot)
        value = deps[slot.position]
        item = value if slot.index is None else value[0][slot.index]
        slots[slot] = _read(remote, item) if isinstance(item, StoredElsewhere) else item
    args, kwargs = substitute((spec.args, spec.kwargs), slots)
    result, duration = timed_call(task.fn, args, kwargs, spec.label)
    del args, kwargs, slots
    outputs = split_result(task, spec.n_outs, result)
    del result
    signer = _worker_signer()
    stored: list[Any] = []
    entries: list[OutputEntry] = []
    for index, value in enumerate(outputs):
        if task.policy(index) is not CachePolicy.EVERYWHERE:
            stored.append(as_stored(task, index, value))
            continue
        entry = _write(remote, task, index, out_hashes[index], value)
        entries.append(entry)
        stored.append(StoredElsewhere(entry))
    if entries:  # objects first, then the records that name them
        remote.push_outputs(entries, signer).raise_for_failures("push", remote.label)
    return tuple(stored), duration, signer is not None


def _write(remote: Remote, task: Task, index: int, out_hash: str, value: Any) -> OutputEntry:
    serializer = task.serializer(index)
    try:
        data = serializer.dump(value)
    except SerializationError as exc:
        raise refused_output(task, index, exc) from exc
    oid = hash_bytes(data)
    key = object_key(oid)
    if not remote.has([key]):
        remote.put([(key, data)])
    return OutputEntry(out_hash, oid, serializer.name, len(data), True)


def _read(remote: Remote, stored: StoredElsewhere) -> Any:
    """An input's value, fetched from the remote and checked against its oid."""
    entry = stored.entry
    with tempfile.TemporaryDirectory(prefix="merkl-input-") as tmp:
        found = remote.fetch_verified([entry.oid], Path(tmp), limit=max(entry.size, 1))
    data = found.get(entry.oid)
    if data is None:
        raise CacheMissError(
            f"input {entry.out_hash[:12]} (object {entry.oid[:12]}) is missing or corrupt on "
            f"{remote.label}; run again to compute it",
            out_hash=entry.out_hash,
        )
    return get_serializer(entry.serializer).load(data)
