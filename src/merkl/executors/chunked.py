"""`--worker-remote` runs in chunks: one Dask task runs many merkl calls.

A Dask task costs a few milliseconds of scheduling, far more than a small task body, so a run
with a worker remote groups its calls: by level (a call's level is one more than its producers'
highest, so the calls of a level never read one another) and, within a level, into chunks of
at most `MAX_CHUNK` calls, and at least `CHUNKS_PER_THREAD` chunks per worker thread where the
level has that many calls (so long tasks still spread over the cluster).

Each chunk is one Dask task (`run_chunk_to_remote`) that takes the futures of the chunks it
reads from. Its output stays in the worker's memory: the values later chunks read, by output
hash, which Dask moves to the worker that needs them, and the entries of what it stored on the
remote. A second, tiny task on the same worker (`chunk_results`) picks out the entries: only
those reach the driver, which indexes them and logs the runs as they arrive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from merkl.executors.base import call_arguments, store_many, task_label
from merkl.executors.dask import _DaskRun, _failure
from merkl.executors.dependencies import CallDependencies
from merkl.executors.worker import CallSpec, DepSlot
from merkl.executors.worker_remote import (
    ChunkCall,
    UpstreamFailedError,
    chunk_results,
    run_chunk_to_remote,
)
from merkl.placeholder import Lazy
from merkl.progress import Progress
from merkl.tasks import Call

if TYPE_CHECKING:
    import distributed

MAX_CHUNK = 1000  # calls per Dask task at most
CHUNKS_PER_THREAD = 4  # chunks per worker thread at least, where a level has the calls


def chunk_calls(dependencies: CallDependencies, threads: int) -> list[list[Call]]:
    """The calls to run in chunks, each made of calls of one level, producers' chunks first."""
    levels: list[list[Call]] = []
    level: dict[Call, int] = {}
    for call in dependencies.calls:  # producers come first
        depth = max((level[p] + 1 for p in dependencies.producers[call]), default=0)
        level[call] = depth
        if depth == len(levels):
            levels.append([])
        levels[depth].append(call)
    chunks: list[list[Call]] = []
    for calls in levels:
        size = max(1, min(MAX_CHUNK, len(calls) // (CHUNKS_PER_THREAD * max(threads, 1))))
        chunks.extend(calls[i : i + size] for i in range(0, len(calls), size))
    return chunks


class ChunkedRun(_DaskRun):
    """A `_DaskRun` whose workers store outputs on the worker remote, in chunks."""

    def run(self) -> None:
        self.values.expect(self.dependencies.calls)
        inputs = self._scatter_inputs()
        threads = sum(self.client.nthreads().values())  # type: ignore[no-untyped-call]
        read = self._read_by_workers()
        futures: dict[Call, distributed.Future[Any]] = {}  # call -> future of its chunk
        pending: dict[distributed.Future[Any], tuple[list[Call], distributed.Future[Any]]] = {}
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
        with Progress("running (dask)", "tasks", len(self.dependencies.calls)) as progress:
            self._collect_chunks(pending, progress)
        self._report_unsigned()

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
