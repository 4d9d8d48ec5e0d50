"""Dask distributed: the whole plan is submitted at once as futures with their dependencies.

Each call becomes one `client.submit(run_call, spec, *dependency_futures)`; Dask's scheduler
runs it when its inputs exist and moves intermediate values between workers. Values already in
a cache are loaded here and scattered once, never recomputed. By default every result is
also sent back to this process, which stores it in the local cache (and so for remotes):
workers need no shared disk and no credentials, and each output is stored exactly once. With
`worker_remote` the workers store outputs on that remote themselves and send back only their
entries (`merkl.executors.worker_remote`), and each Dask task runs a chunk of calls
(`merkl.executors.chunked`).

Without a scheduler address a `LocalCluster` of `jobs` single-threaded worker processes is
started for the run and shut down after it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from merkl.cache.facade import StoredElsewhere
from merkl.collector import gc_paused
from merkl.errors import ExecutorError, UsageError
from merkl.executors.base import (
    Executor,
    ValueMap,
    call_arguments,
    store_many,
    store_outputs,
    task_label,
)
from merkl.executors.chunked import chunk_calls
from merkl.executors.dependencies import CallDependencies
from merkl.executors.leases import RunLeases
from merkl.executors.local_cluster import local_client, warm_up
from merkl.executors.pool import check_jobs, default_jobs
from merkl.executors.worker import CallSpec, DepSlot, TaskRef, run_call, task_ref
from merkl.executors.worker_remote import (
    ChunkCall,
    RemoteSpec,
    UpstreamFailedError,
    chunk_results,
    remote_spec,
    run_chunk_to_remote,
)
from merkl.graph import Plan
from merkl.placeholder import Lazy, Placeholder
from merkl.progress import Progress
from merkl.session import Session
from merkl.tasks import Call, Task

if TYPE_CHECKING:
    import distributed


# `distributed` itself is imported when first needed: a dry run does not pay for it.
if importlib.util.find_spec("distributed") is None:  # pragma: no cover - installed in tests
    raise ExecutorError(
        "the dask executor needs dask.distributed; install it with pip install 'merkl[dask]'"
    )

_CONNECT_TIMEOUT = 10  # seconds to reach a scheduler before giving up


class DaskExecutor(Executor):
    """Runs the plan on a Dask cluster: the one at `scheduler` (`tcp://host:port`), the given
    `client`'s, or a `LocalCluster` of `jobs` worker processes started for this run."""

    name = "dask"

    def __init__(
        self,
        jobs: int | None = None,
        scheduler: str | None = None,
        client: distributed.Client | None = None,
        worker_remote: str | None = None,
    ) -> None:
        self.jobs = check_jobs(jobs, self.name) if jobs is not None else None
        if scheduler is not None and (not isinstance(scheduler, str) or not scheduler):
            raise UsageError(
                f"dask executor: scheduler must be an address like 'tcp://host:8786', "
                f"got {scheduler!r}",
                exit_code=2,
            )
        self.scheduler = scheduler
        self.client = client
        self.worker_remote = worker_remote
        if scheduler is None and client is None:
            warm_up()

    def run(self, plan: Plan, values: ValueMap, session: Session) -> None:
        if not plan.calls:
            return
        leases = RunLeases(session)
        try:
            # The whole plan is submitted at once, so its leases are taken first (those
            # another process holds are waited for), and what that process stored is loaded.
            leases.take_all(plan, values.wanted)
            if not plan.calls:
                return
            dependencies = CallDependencies(plan)
            refs: dict[Call, TaskRef] = {}  # before connecting
            by_task: dict[Task, TaskRef] = {}  # finding a task's import root takes time: once
            for call in dependencies.calls:
                ref = by_task.get(call.task)
                if ref is None:
                    ref = by_task[call.task] = task_ref(call.task)
                refs[call] = ref
            spec = self._remote_spec(session)
            run_class = _DaskRun if spec is None else _ChunkedRun
            with self._connect(len(refs)) as client:
                run_class(client, dependencies, values, session, refs, spec, leases).run()
        finally:
            leases.release_all()  # calls that did not finish

    def _remote_spec(self, session: Session) -> RemoteSpec | None:
        """The worker remote's spec (None: results come back here)."""
        if self.worker_remote is None or not session.use_cache:
            return None
        return remote_spec(session.require_repo(), self.worker_remote)

    @contextlib.contextmanager
    def _connect(self, n_calls: int) -> Iterator[distributed.Client]:
        _import_distributed()
        import distributed

        if self.client is not None:
            yield self.client
            return
        if self.scheduler is not None:
            try:
                client = distributed.Client(  # type: ignore[no-untyped-call]
                    self.scheduler, timeout=_CONNECT_TIMEOUT, set_as_default=False
                )
            except (OSError, TimeoutError, ValueError) as exc:
                raise ExecutorError(
                    f"cannot connect to the Dask scheduler {self.scheduler!r}: {exc}; start "
                    f"one with `dask scheduler`, or leave out --scheduler to use a local cluster"
                ) from exc
            with client:
                yield client
            return
        with local_client(min(self.jobs or default_jobs(), n_calls)) as client:
            yield client


def _import_distributed() -> None:
    """Import `distributed` with the cyclic garbage collector paused: the ~130 collections its
    import would set off cost more than the one young collection that follows it (the import
    takes ~10 ms, 4%, less)."""
    if "distributed" not in sys.modules:
        with gc_paused():
            import distributed  # noqa: F401


class _DaskRun:
    """One evaluation on one client: submit everything, then collect and store."""

    def __init__(
        self,
        client: distributed.Client,
        dependencies: CallDependencies,
        values: ValueMap,
        session: Session,
        refs: dict[Call, TaskRef],
        remote: RemoteSpec | None = None,
        leases: RunLeases | None = None,
    ) -> None:
        self.client = client
        self.dependencies = dependencies
        self.values = values
        self.session = session
        self.refs = refs
        self.remote = remote
        self.leases = leases
        self.unsigned = 0  # calls whose records a worker stored unsigned (it has no key)
        self.token = uuid.uuid4().hex[:8]

    def run(self) -> None:
        self.values.expect(self.dependencies.calls)
        inputs = self._scatter_inputs()
        futures: dict[Call, distributed.Future[Any]] = {}
        for call in self.dependencies.calls:  # producers first, so they have futures
            futures[call] = self._submit(call, futures, inputs)
            self.values.started(call)  # its inputs are on the cluster now
        pending = {future: call for call, future in futures.items()}
        # Only `pending` holds the futures from here: a collected result the calls still to
        # run do not need leaves the workers' memory.
        futures.clear()
        inputs.clear()
        with Progress("running (dask)", "tasks", len(pending)) as progress:
            self._collect(pending, progress)

    def _report_unsigned(self) -> None:
        if self.unsigned:
            print(
                f"merkl: {self.unsigned} task(s) stored unsigned output records on the worker "
                f"remote (the workers have no signing key; see `merkl key generate`)",
                file=sys.stderr,
            )

    def _scatter_inputs(self) -> dict[Lazy, distributed.Future[Any]]:
        """Cached outputs and leaves the calls read, loaded here and sent to the cluster once."""
        needed: dict[Lazy, None] = {}
        for call in self.dependencies.calls:
            for dep in call.deps:
                if self.dependencies.producer_of(dep) is None:
                    needed[dep] = None
        nodes = list(needed)
        if not nodes:
            return {}
        loaded = [self._input(node) for node in nodes]  # a missing argument raises here
        scattered = self.client.scatter(loaded, hash=False)  # type: ignore[no-untyped-call]
        return dict(zip(nodes, scattered, strict=True))

    def _input(self, node: Lazy) -> Any:
        """The value to send for a cached output or leaf; with a worker remote, the entry of
        a cached output only the remote holds (the workers read it there)."""
        if self.remote is not None and isinstance(node, Placeholder):
            entry = self.dependencies.cached_entry(node)
            cache = self.session.require_repo().cache
            if entry is not None and entry.pushable and not cache.store.has(entry.oid):
                return StoredElsewhere(entry)
        return self.values[node]

    def _submit(
        self,
        call: Call,
        futures: dict[Call, distributed.Future[Any]],
        inputs: dict[Lazy, distributed.Future[Any]],
    ) -> distributed.Future[Any]:
        extra: list[distributed.Future[Any]] = []
        positions: dict[int, int] = {}  # id(future) -> index in `extra`
        slots: dict[Lazy, DepSlot] = {}
        for dep in call.deps:
            if dep in slots:
                continue
            producer = self.dependencies.producer_of(dep)
            if producer is not None:
                assert isinstance(dep, Placeholder)
                source, index = futures[producer], dep.index
            else:
                source, index = inputs[dep], None
            position = positions.setdefault(id(source), len(extra))
            if position == len(extra):
                extra.append(source)
            slots[dep] = DepSlot(position, index)
        args, kwargs = call_arguments(call, slots)
        spec = CallSpec(self.refs[call], call.n_outs, args, kwargs, task_label(call))
        key = f"{call.task.name}-{(call.outputs[0].hash or 'nohash')[:16]}-{self.token}"
        return self.client.submit(run_call, spec, *extra, key=key, pure=False)

    def _collect(self, pending: dict[distributed.Future[Any], Call], progress: Progress) -> None:
        """Store results as they arrive. On the first failure cancel what has not finished,
        store what has (so a re-run resumes after it), then raise that failure."""
        import distributed

        completed = distributed.as_completed(  # type: ignore[no-untyped-call]
            list(pending), loop=self.client.loop, with_results=True, raise_errors=False
        )
        failure: BaseException | None = None
        for future, result in completed:
            call = pending.pop(future)
            if future.status == "finished":
                outputs, duration = result
                stored = store_outputs(call, outputs, duration, self.session)
                if self.leases is not None:
                    self.leases.stored(call)
                self.dependencies.set_values(self.values, call, self._loaded(stored, call))
                progress.advance()
            elif failure is None:
                failure = _failure(task_label(call), future, result)
                self.client.cancel([f for f in pending if f.status != "finished"])  # type: ignore[no-untyped-call]
        if failure is not None:
            raise failure

    def _loaded(self, stored: list[Any], call: Call) -> list[Any]:
        """Outputs as values: those the caller asked for are fetched from the worker remote
        (other outputs stored there are never needed here again)."""
        if self.remote is None:
            return stored
        cache = self.session.require_repo().cache
        twins = self.dependencies.twins(call)
        return [
            cache.load(value.entry.out_hash, value.entry)
            if isinstance(value, StoredElsewhere)
            and any(self.values.wanted(twin.outputs[i]) for twin in twins)
            else value
            for i, value in enumerate(stored)
        ]


def _failure(label: str, future: distributed.Future[Any], result: Any) -> BaseException:
    """The task's own exception, unchanged; an ExecutorError for a lost worker."""
    from distributed.scheduler import KilledWorker

    if future.status == "error":
        _, exc, traceback = result
        if isinstance(exc, KilledWorker):
            return ExecutorError(
                f"Dask lost the workers running task {label} ({exc}); it may "
                f"crash them or run out of memory"
            )
        return exc.with_traceback(traceback)  # type: ignore[no-any-return]
    return ExecutorError(
        f"task {label} was cancelled by the Dask cluster ({result!r}); were the "
        f"workers or the scheduler restarted?"
    )


class _ChunkedRun(_DaskRun):
    """A `_DaskRun` whose workers store outputs on the worker remote, in chunks."""

    def run(self) -> None:
        self.values.expect(self.dependencies.calls)
        threads = sum(self.client.nthreads().values())  # type: ignore[no-untyped-call]
        pending: dict[distributed.Future[Any], tuple[list[Call], distributed.Future[Any]]] = {}
        with gc_paused():  # ~10 objects per call that all live on: nothing for the collector
            self._submit_chunks(threads, pending)
        with Progress("running (dask)", "tasks", len(self.dependencies.calls)) as progress:
            self._collect_chunks(pending, progress)
        self._report_unsigned()

    def _submit_chunks(
        self,
        threads: int,
        pending: dict[distributed.Future[Any], tuple[list[Call], distributed.Future[Any]]],
    ) -> None:
        inputs = self._scatter_inputs()
        read = self._read_by_workers()
        futures: dict[Call, distributed.Future[Any]] = {}  # call -> future of its chunk
        for number, calls in enumerate(chunk_calls(self.dependencies, threads)):
            chunk = self._submit_chunk(number, calls, futures, inputs, read)
            results = self.client.submit(
                chunk_results, chunk, key=f"merkl-results-{number}-{self.token}", pure=False
            )
            pending[results] = (calls, chunk)
            for call in calls:
                futures[call] = chunk
                self.values.started(call)  # its inputs are on the cluster now
        # Only `pending` holds the chunks' futures from here: a chunk leaves the workers'
        # memory once its results are collected and the chunks reading it have run.
        futures.clear()
        inputs.clear()

    def _read_by_workers(self) -> set[str]:
        """Hashes of the outputs computed here that a call of this run reads."""
        producer_of = self.dependencies.producer_of
        return {
            dep.hash
            for call in self.dependencies.calls
            for dep in call.deps
            if dep.hash is not None and producer_of(dep) is not None
        }

    def _submit_chunk(
        self,
        number: int,
        calls: list[Call],
        futures: dict[Call, distributed.Future[Any]],
        inputs: dict[Lazy, distributed.Future[Any]],
        read: set[str],
    ) -> distributed.Future[Any]:
        extra: list[distributed.Future[Any]] = []
        positions: dict[int, int] = {}  # id(future) -> index in `extra`
        items = []
        keep: set[str] = set()
        for call in calls:
            slots: dict[Lazy, DepSlot] = {}
            for dep in call.deps:
                if dep in slots:
                    continue
                producer = self.dependencies.producer_of(dep)
                source = futures[producer] if producer is not None else inputs[dep]
                position = positions.setdefault(id(source), len(extra))
                if position == len(extra):
                    extra.append(source)
                slots[dep] = DepSlot(position, dep.hash if producer is not None else None)
            args, kwargs = call_arguments(call, slots)
            hashes = tuple(p.hash or "" for p in call.outputs)
            keep.update(h for h in hashes if h in read)
            spec = CallSpec(self.refs[call], call.n_outs, args, kwargs, task_label(call))
            items.append(ChunkCall(spec, hashes))
        return self.client.submit(
            run_chunk_to_remote,
            items,
            frozenset(keep),
            self.remote,
            *extra,
            key=f"merkl-chunk-{number}-{self.token}",
            pure=False,
        )

    def _collect_chunks(
        self,
        pending: dict[distributed.Future[Any], tuple[list[Call], distributed.Future[Any]]],
        progress: Progress,
    ) -> None:
        """Store results as they arrive. On the first failure cancel the chunks that have not
        finished, store what has (so a re-run resumes after it), then raise that failure."""
        import distributed

        completed = distributed.as_completed(  # type: ignore[no-untyped-call]
            list(pending), loop=self.client.loop, with_results=True, raise_errors=False
        )
        failure: BaseException | None = None
        upstream: BaseException | None = None  # a chunk that lacked an input: not the cause
        for future, result in completed:
            calls, _chunk = pending.pop(future)
            error: BaseException | None = None
            if future.status == "finished":
                results, signed, error = result
                done = [(c, outputs, t) for c, (outputs, t) in zip(calls, results, strict=False)]
                for (call, _, _), stored in zip(done, store_many(done, self.session), strict=True):
                    if self.leases is not None:
                        self.leases.stored(call)
                    self.dependencies.set_values(self.values, call, self._loaded(stored, call))
                if not signed:
                    self.unsigned += len(results)
                progress.advance(len(results))
            else:
                error = _failure(_chunk_label(calls), future, result)
            if isinstance(error, UpstreamFailedError):
                upstream = upstream or error
            elif error is not None and failure is None:
                failure = error
                unfinished = [c for _, c in pending.values() if c.status != "finished"]
                self.client.cancel(unfinished)  # type: ignore[no-untyped-call]
        if failure is not None or upstream is not None:
            raise failure or upstream  # type: ignore[misc]


def _chunk_label(calls: list[Call]) -> str:
    """The task a failed chunk was running, as `_failure` names it."""
    label = task_label(calls[0])
    return label if len(calls) == 1 else f"{label} (or one of {len(calls) - 1} more)"
