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
from typing import TYPE_CHECKING, Any, NamedTuple

from merkl.cache import CachePolicy
from merkl.cache.facade import StoredElsewhere
from merkl.cache.index import OutputEntry
from merkl.errors import CacheMissError, ExecutorError, SerializationError, UsageError
from merkl.executors.base import as_stored, refused_output, split_result, timed_call
from merkl.executors.worker import CallSpec, DepSlot, resolve_task
from merkl.hashing import hash_bytes
from merkl.placeholder import Lazy
from merkl.remotes.records import object_key
from merkl.serializers import get_serializer
from merkl.tasks import Task, iter_lazy, substitute

if TYPE_CHECKING:
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


class ChunkCall(NamedTuple):
    """One call of a chunk: how to run it and the Merkle hashes of its outputs (a tuple:
    pickled without Python-level code, 1,000 to a chunk)."""

    spec: CallSpec
    out_hashes: tuple[str, ...]


@dataclass(slots=True)
class ChunkOutput:
    """What a chunk job leaves in its worker's memory: `values` (by output hash) of the
    outputs later chunks read, which Dask hands to them (moving them between workers when it
    must), and `results`, the only part sent to the driver (see `chunk_results`)."""

    values: dict[str, Any]
    results: list[tuple[tuple[Any, ...], float]]
    signed: bool
    failure: Exception | None = None


class UpstreamFailedError(ExecutorError):
    """An input of a chunk's call was not computed: an earlier chunk failed (the driver
    reports that failure instead)."""


#: Serialized bytes a chunk holds before writing them to the remote in one batch.
_FLUSH_BYTES = 64 << 20
_SMALL = 64 << 10  # bytes up to which an object is written without asking if it is there


def run_chunk_to_remote(
    calls: list[ChunkCall], keep: frozenset[str], remote_spec: RemoteSpec, *deps: Any
) -> ChunkOutput:
    """Dask job: run `calls` (independent of one another) one after the other, storing their
    outputs on the remote in batches (objects, then the records naming them), and keep the
    values of the outputs in `keep` for the chunks that read them.

    A failing call ends the chunk: what finished before it is stored and returned with the
    failure, so the driver indexes it and a re-run resumes after it.
    """
    remote = _open(remote_spec)
    signer = _worker_signer()
    batch = _Batch(remote, signer)
    out = ChunkOutput({}, [], signer is not None)
    try:
        for call in calls:
            task = resolve_task(call.spec.ref)
            outputs, duration = _run(task, call.spec, deps, remote)
            stored: list[Any] = []
            for index, value in enumerate(outputs):
                out_hash = call.out_hashes[index]
                if task.policy(index) is CachePolicy.EVERYWHERE:
                    entry, data = _serialized(task, index, out_hash, value, remote_spec.name)
                    if out_hash in keep:
                        out.values[out_hash] = task.serializer(index).load(data)
                    batch.add(entry, data)
                    stored.append(StoredElsewhere(entry))
                else:  # kept off remotes: the value travels, as without a worker remote
                    stored.append(as_stored(task, index, value))
                    if out_hash in keep:
                        out.values[out_hash] = stored[-1]
            del outputs
            out.results.append((tuple(stored), duration))
    except Exception as exc:  # reported by the driver, after storing what finished
        out.failure = exc
    batch.flush()
    return out


def chunk_results(
    out: ChunkOutput,
) -> tuple[list[tuple[tuple[Any, ...], float]], bool, Exception | None]:
    """Dask job on the chunk's worker: the part of its output the driver receives."""
    return out.results, out.signed, out.failure


def _run(
    task: Task, spec: CallSpec, deps: tuple[Any, ...], remote: Remote
) -> tuple[tuple[Any, ...], float]:
    slots: dict[Lazy, Any] = {}
    for slot in iter_lazy((spec.args, spec.kwargs)):
        assert isinstance(slot, DepSlot)
        slots[slot] = _input(deps[slot.position], slot.index, remote, spec.label)
    args, kwargs = substitute((spec.args, spec.kwargs), slots)
    del slots
    result, duration = timed_call(task.fn, args, kwargs, spec.label)
    return split_result(task, spec.n_outs, result), duration


def _input(dep: Any, out_hash: int | str | None, remote: Remote, label: str) -> Any:
    """A dependency's value: from an earlier chunk's output (in this worker's memory, or
    moved here by Dask), or a value the driver scattered (read from the remote if only the
    remote holds it)."""
    if isinstance(dep, ChunkOutput):
        try:
            return dep.values[out_hash]  # type: ignore[index]
        except KeyError:
            raise UpstreamFailedError(
                f"an input of task {label} was not computed (its task failed)"
            ) from None
    return _read(remote, dep) if isinstance(dep, StoredElsewhere) else dep


def _serialized(
    task: Task, index: int, out_hash: str, value: Any, remote: str
) -> tuple[OutputEntry, bytes]:
    serializer = task.serializer(index)
    try:
        data = serializer.dump(value)
    except SerializationError as exc:
        raise refused_output(task, index, exc) from exc
    entry = OutputEntry(out_hash, hash_bytes(data), serializer.name, len(data), True, remote)
    return entry, data


class _Batch:
    """Objects and their output records, written to the remote together: one existence
    check and one write per batch instead of one each (objects before the records)."""

    def __init__(self, remote: Remote, signer: Signer | None) -> None:
        self.remote = remote
        self.signer = signer
        self.objects: dict[str, bytes] = {}
        self.entries: list[OutputEntry] = []
        self.nbytes = 0

    def add(self, entry: OutputEntry, data: bytes) -> None:
        self.objects[object_key(entry.oid)] = data
        self.entries.append(entry)
        self.nbytes += len(data)
        if self.nbytes >= _FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        remote = self.remote
        if self.objects:
            # Small objects are written again rather than looked up first: as cheap, one
            # request fewer. Their content names them, so rewriting one changes nothing.
            held = remote.has([k for k, data in self.objects.items() if len(data) > _SMALL])
            missing = [(key, data) for key, data in self.objects.items() if key not in held]
            if missing:
                remote.put(missing)
        if self.entries:
            remote.push_outputs(self.entries, self.signer).raise_for_failures("push", remote.label)
        self.objects, self.entries, self.nbytes = {}, [], 0


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
