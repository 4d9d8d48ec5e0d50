"""Local worker pools: independent calls run concurrently on N threads or processes.

The parent submits a call once every call it depends on has finished, with the values of its
arguments; workers run only the task body and send the result back; the parent stores each
call's outputs (exactly once) and hands dependents the stored values, exactly as the in-process
executor does. Threads suit bodies that release the GIL (I/O, numpy); processes suit pure-Python
CPU work.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import os
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from merkl.cache.index import BATCH_SECONDS
from merkl.errors import ExecutorError, UsageError
from merkl.executors.base import (
    Executor,
    ValueMap,
    call_arguments,
    split_outputs,
    store_outputs,
    task_label,
    timed_call,
)
from merkl.executors.dependencies import CallDependencies
from merkl.executors.leases import RETRY_SECONDS, RunLeases
from merkl.executors.start import POOL_PRELOAD, start_worker_server, worker_context
from merkl.executors.worker import TaskRef, adopt_environment, run_task, task_ref
from merkl.graph import Plan
from merkl.progress import Progress
from merkl.session import Session
from merkl.tasks import Call


def default_jobs() -> int:
    """The number of CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_jobs(jobs: object, executor: str) -> int:
    """`jobs` as a positive int (None: one per CPU), or a UsageError naming it."""
    if jobs is None:
        return default_jobs()
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(
            f"{executor} executor: jobs must be a whole number >= 1, got {jobs!r}",
            exit_code=2,
        )
    return jobs


class PoolExecutor(Executor):
    """Runs independent calls concurrently on a `concurrent.futures` pool of `jobs` workers."""

    name = "pool"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = check_jobs(jobs, self.name)

    def _make_pool(self, calls: list[Call]) -> _Pool:
        """A pool for this run; checks first that every call can be sent to a worker."""
        raise NotImplementedError

    def run(self, plan: Plan, values: ValueMap, session: Session) -> None:
        if not plan.calls:
            return
        dependencies = CallDependencies(plan)
        values.expect(dependencies.calls)
        pool = self._make_pool(dependencies.calls)
        try:
            with Progress(
                f"running ({self.name}, {self.jobs} workers)", "tasks", len(dependencies.calls)
            ) as progress:
                _run_all(pool, dependencies, values, session, progress)
        except Exception:
            pool.shutdown(wait=True)  # every started call has been collected already
            raise
        except BaseException:
            # Ctrl-C: start nothing new and do not wait for running bodies.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


class _Pool:
    """A `concurrent.futures` pool and how to send one call to it."""

    def __init__(self, pool: cf.Executor) -> None:
        self.pool = pool

    def submit(self, call: Call, args: list[Any], kwargs: dict[str, Any]) -> cf.Future[Any]:
        raise NotImplementedError

    def shutdown(self, wait: bool, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def _run_all(
    pool: _Pool,
    dependencies: CallDependencies,
    values: ValueMap,
    session: Session,
    progress: Progress,
) -> None:
    """Submit each call when its producers are done; store each result as it arrives.

    Each call is submitted under its lease (`merkl.executors.leases`): a call another process
    computes waits until that process stored it, and is then loaded instead of run.
    """
    leases = RunLeases(session)
    try:
        _submit_and_collect(pool, dependencies, values, session, progress, leases)
    finally:
        leases.release_all()  # calls that did not finish (an error or Ctrl-C)


def _submit_and_collect(
    pool: _Pool,
    dependencies: CallDependencies,
    values: ValueMap,
    session: Session,
    progress: Progress,
    leases: RunLeases,
) -> None:
    ready = deque(dependencies.initial())
    busy: list[Call] = []  # ready, but another process holds their lease
    running: dict[cf.Future[Any], Call] = {}
    failure: BaseException | None = None

    def done(call: Call, stored: list[Any]) -> None:
        dependencies.set_values(values, call, stored)
        progress.advance()
        if failure is None:
            ready.extend(dependencies.finish(call))

    while ready or running:
        while ready and failure is None:
            call = ready.popleft()
            claim = leases.claim(call)
            if claim is False:
                busy.append(call)
                continue
            if claim is not True:  # stored meanwhile by the process that held the lease
                values.started(call)
                done(call, claim)
                continue
            try:
                args, kwargs = call_arguments(call, values)
            except Exception as exc:  # e.g. a missing pipeline argument
                failure = exc
                break
            values.started(call)
            running[pool.submit(call, args, kwargs)] = call
        if failure is not None:
            ready.clear()
            busy.clear()
            for future in running:
                future.cancel()  # only those not started yet
        if busy:
            # Another process may wait for a lease this run settled: write the rows first.
            leases.write_rows()
            ready.extend(busy)
            busy.clear()
        if not running:
            if ready and failure is None:
                time.sleep(RETRY_SECONDS)
            continue
        finished, _ = cf.wait(
            running,
            timeout=RETRY_SECONDS if ready else BATCH_SECONDS,
            return_when=cf.FIRST_COMPLETED,
        )
        if not finished:
            # Idle: write the pending rows, so that the leases settled on them are released
            # while the bodies still run (another process, or a body calling `.get()`, may
            # wait for them).
            leases.write_rows()
        for future in finished:
            call = running.pop(future)
            if future.cancelled():
                leases.failed(call)
                continue
            try:
                result, duration = future.result()
                stored = store_outputs(call, split_outputs(call, result), duration, session)
            except BrokenProcessPool as exc:
                leases.failed(call)
                failure = failure or ExecutorError(
                    f"a worker process died while running task {task_label(call)} "
                    f"(killed, out of memory, or a crash in native code): {exc}"
                )
                continue
            except Exception as exc:
                leases.failed(call)
                # The first failure is the one reported; calls already running finish and
                # are stored, so a re-run resumes after them.
                failure = failure or exc
                continue
            leases.stored(call)
            done(call, stored)
    if failure is not None:
        raise failure


class ThreadsExecutor(PoolExecutor):
    """Calls on a pool of threads in this process: no pickling, each body sees the caller's
    session; best for I/O or code that releases the GIL."""

    name = "threads"

    def _make_pool(self, calls: list[Call]) -> _Pool:
        return _ThreadPool(
            cf.ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="merkl-task")
        )


class _ThreadPool(_Pool):
    def submit(self, call: Call, args: list[Any], kwargs: dict[str, Any]) -> cf.Future[Any]:
        # A fresh copy per call: one Context cannot be entered by two threads at once.
        context = contextvars.copy_context()
        return self.pool.submit(
            context.run, timed_call, call.task.fn, args, kwargs, task_label(call)
        )


class ProcessesExecutor(PoolExecutor):
    """Calls on worker processes started for this run (best for CPU-bound Python).

    Tasks must be defined at the top level of an importable module; arguments and results
    must be picklable. Workers get this process's working directory, `sys.path` and
    environment, and none of its threads or open connections (see `merkl.executors.start`).
    """

    name = "processes"

    def __init__(self, jobs: int | None = None) -> None:
        super().__init__(jobs)
        start_worker_server(POOL_PRELOAD)

    def _make_pool(self, calls: list[Call]) -> _Pool:
        refs = {call: task_ref(call.task) for call in calls}
        pool = cf.ProcessPoolExecutor(
            max_workers=min(self.jobs, len(refs)),
            mp_context=worker_context(POOL_PRELOAD),
            initializer=adopt_environment,
            initargs=(dict(os.environ),),
        )
        return _ProcessPool(pool, refs)


class _ProcessPool(_Pool):
    def __init__(self, pool: cf.Executor, refs: dict[Call, TaskRef]) -> None:
        super().__init__(pool)
        self.refs = refs

    def submit(self, call: Call, args: list[Any], kwargs: dict[str, Any]) -> cf.Future[Any]:
        return self.pool.submit(run_task, self.refs[call], args, kwargs, task_label(call))
