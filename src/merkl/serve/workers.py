"""Bounded worker slots with a deadline, for `merkl serve`'s request handlers.

A task body is plain sync code that may never return. Python cannot stop a thread, so a request
that passes its deadline is answered (504) and gives its slot back while its thread runs on,
counted as hung until it ends. The threads are daemon threads: a hung one does not hold the
process at exit (`concurrent.futures` joins its pool threads at exit, so a SIGTERM would wait
forever). New work gets a fresh thread; a flood of hung requests is capped.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from merkl.errors import MerklError

_T = TypeVar("_T")
_MIN_START_SECONDS = 1.0  # do not start work that has less time left than this (or 1/10)


class TooManyHungError(MerklError):
    """Too many requests hang already: refuse new work (503) rather than start more threads."""


class DaemonThreads:
    """Run callables on daemon threads, reusing idle ones, starting one when none is idle."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._idle = 0
        self._started = 0
        self._lock = threading.Lock()

    def submit(self, function: Callable[[], _T]) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            start = self._idle == 0
            if start:
                self._started += 1
            else:
                self._idle -= 1
        self._jobs.put((future, function))
        if start:
            name = f"{self.name}-{self._started}"
            threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, function = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(function())
                except BaseException as exc:  # handed to the waiting request
                    future.set_exception(exc)
            del future, function
            with self._lock:
                self._idle += 1


class Workers:
    """At most `slots` callables at once; each waits and runs within a deadline.

    Counters (read by `/healthz`) change only on the event loop's thread.
    """

    def __init__(self, slots: int, name: str, max_hung: int) -> None:
        self.slots = slots
        self.max_hung = max_hung
        self.busy = 0
        self.queued = 0
        self.hung = 0
        self._free: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = DaemonThreads(name)

    def _semaphore(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        """The slots of the running loop (a test client may start the app on a new loop)."""
        if self._free is None or self._loop is not loop:
            self._free, self._loop = asyncio.Semaphore(self.slots), loop
        return self._free

    async def run(self, function: Callable[[], _T], deadline: float) -> _T:
        """`function()` on a worker thread, waiting for a free slot first.

        Raises:
            TimeoutError: the deadline (`loop.time()`) passed, waiting or running.
            TooManyHungError: `max_hung` requests hang already.
        """
        if self.hung >= self.max_hung:
            raise TooManyHungError(f"{self.hung} requests hang")
        loop = asyncio.get_running_loop()
        start = loop.time()
        free = self._semaphore(loop)
        self.queued += 1
        try:
            async with asyncio.timeout_at(deadline):
                await free.acquire()
        finally:
            self.queued -= 1
        if deadline - loop.time() < min(_MIN_START_SECONDS, (deadline - start) / 10):
            # Too little time left to be worth starting (a slot freed just as it expires).
            free.release()
            raise TimeoutError
        self.busy += 1
        future = self._threads.submit(function)
        waiting = asyncio.wrap_future(future, loop=loop)
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(waiting)
        except TimeoutError:
            self.hung += 1
            waiting.add_done_callback(self._ended)
            raise
        finally:
            self.busy -= 1
            free.release()

    def _ended(self, waiting: asyncio.Future[Any]) -> None:
        """A hung call returned at last (its answer was given up on)."""
        self.hung -= 1
        if not waiting.cancelled():
            waiting.exception()  # retrieved: asyncio would log it as never retrieved

    def status(self) -> dict[str, int]:
        return {"slots": self.slots, "busy": self.busy, "queued": self.queued, "hung": self.hung}
