"""Send lineage events from one background thread, so a run never waits for an endpoint.

Work items (a run and a function building its events) go into a bounded queue; the thread
builds the events and hands them to the OpenLineage client's configured transport. A run whose
first event cannot be sent is reported by one line on stderr and its remaining events are
dropped. At exit the process waits at most the `[lineage] timeout` for the queue to drain.
"""

from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from merkl.lineage.config import DEFAULT_TIMEOUT
from merkl.lineage.run import PipelineRun

MAX_QUEUED = 10_000  # work items (about two events each); beyond that events are dropped
# Importing the client takes ~0.2 s of CPU, holding the GIL: the thread waits for the first run
# to end (or this long) before it does, so a short run is not slowed by it.
CLIENT_IMPORT_DELAY = 1.0

# A run, the name of the `EventBuilder` method making the events, its arguments.
Work = tuple[PipelineRun, str, tuple[Any, ...]]


def warn(message: str) -> None:
    print(f"merkl: OpenLineage: {message}", file=sys.stderr, flush=True)


class Emitter:
    """One per process: a queue, a daemon thread and the OpenLineage client it owns."""

    def __init__(self, make_client: Callable[[], Any], max_queued: int = MAX_QUEUED) -> None:
        self._make_client = make_client
        self._queue: queue.Queue[Work | threading.Event] = queue.Queue(max_queued)
        self._thread: threading.Thread | None = None
        self._client: Any = None  # made on the thread at its first event
        self._run_ended = threading.Event()
        self._pid = 0
        self._lock = threading.Lock()
        self.timeout = DEFAULT_TIMEOUT
        self.dropped = 0
        self.sent = 0

    def submit(self, run: PipelineRun, build: str, *args: Any) -> None:
        """Queue the events `EventBuilder.<build>(*args)` makes (on the thread); never blocks,
        drops when the queue is full."""
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait((run, build, args))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                warn(f"more than {self._queue.maxsize} events waiting; dropping events")

    def run_ended(self) -> None:
        """A run finished: the thread may import the client now without slowing it."""
        self._run_ended.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent (or dropped); False after `timeout`."""
        if self._thread is None or self._pid != os.getpid():
            return True
        done = threading.Event()
        self._run_ended.set()
        limit = self.timeout if timeout is None else timeout
        try:
            self._queue.put(done, timeout=limit)
        except queue.Full:
            return False
        return done.wait(limit)

    def renew_client(self) -> None:
        """Read the OpenLineage configuration again before the next event."""
        self._client = None

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid == 0:
                atexit.register(self._drain_at_exit)
                # The client imports this module, which registers an exit hook: that must
                # happen now, not on the thread while the interpreter is shutting down.
                import concurrent.futures.thread  # noqa: F401
            else:  # forked: the parent's thread and queue do not exist here
                self._queue = queue.Queue(self._queue.maxsize)
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._work, name="merkl-lineage", daemon=True)
            self._thread.start()

    def _drain_at_exit(self) -> None:
        start = time.monotonic()
        if not self.flush():
            warn(
                f"gave up sending lineage after {time.monotonic() - start:.1f}s "
                f"([lineage] timeout) waiting for the endpoint; the run itself is unaffected"
            )

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            run, build, args = item
            if run.failed:
                continue
            try:
                if self._client is None:
                    self._run_ended.wait(CLIENT_IMPORT_DELAY)
                    self._client = self._make_client()
                if run.builder is None:
                    from merkl.lineage.events import EventBuilder

                    run.builder = EventBuilder(run)
                for event in getattr(run.builder, build)(*args):
                    self._client.emit(event)
                    self.sent += 1
            except Exception as exc:  # a dead endpoint, a bad openlineage.yml: never the run
                run.failed = True
                message = str(exc).splitlines()[0] if str(exc) else ""
                warn(
                    f"lineage of {run.name} not sent ({type(exc).__name__}: {message[:200]}); "
                    f"the run itself is unaffected"
                )
