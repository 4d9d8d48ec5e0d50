"""Hand lineage to the sender process from one background thread: a run never waits.

The run's thread queues work items (a run, the `RunRecorder` method making its records and
the arguments) in a bounded queue and goes on; when the queue is full, events are dropped with
one warning. The thread makes the records (plain data, tens of microseconds per task) and writes
them to the sender process (`merkl.lineage.sender`), started at the first event, which makes
the OpenLineage events and emits them. At exit the process waits at most the `[lineage]
timeout` for the sender to finish, then stops it with one warning.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import orjson

from merkl.lineage.config import DEFAULT_TIMEOUT
from merkl.lineage.run import PipelineRun
from merkl.lineage.sender import warn

MAX_QUEUED = 10_000  # work items (about two events each); beyond that events are dropped

_SRC = str(Path(__file__).resolve().parents[2])  # where `merkl` is imported from


class _Control:
    """A flush or close request travelling through the queue behind earlier work."""

    def __init__(self, kind: str, token: int = 0) -> None:
        self.kind = kind
        self.token = token
        self.done = threading.Event()
        self.sender: subprocess.Popen[bytes] | None = None


# A run, the name of the `RunRecorder` method making its records, the method's arguments.
Work = tuple[PipelineRun, str, tuple[Any, ...]]


class Emitter:
    """One per process: a bounded queue, a daemon thread and the sender process it feeds."""

    def __init__(self, max_queued: int = MAX_QUEUED) -> None:
        self._queue: queue.Queue[Work | _Control] = queue.Queue(max_queued)
        self._pid = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._sender: subprocess.Popen[bytes] | None = None
        self._retired: list[subprocess.Popen[bytes]] = []
        self._renew = False
        self._stopping = False
        self._broken = False  # the sender died on its own: no new one until `renew_sender`
        self.timeout = DEFAULT_TIMEOUT
        self.dropped = 0

    def submit(self, run: PipelineRun, build: str, *args: Any) -> None:
        """Queue `RunRecorder.<build>(*args)`; never blocks, drops when the queue is full."""
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait((run, build, args))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                warn(f"more than {self._queue.maxsize} events waiting; dropping events")

    def renew_sender(self) -> None:
        """Start a new sender (reading the OpenLineage configuration again) for later events."""
        self._renew = True
        self._broken = False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent (or dropped); False after `timeout`
        (default: the `[lineage] timeout`)."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._flush_lock:
            control = _Control("flush", next(self._tokens))
            if not self._put(control, deadline):
                return False
            if control.sender is None:
                return True
            return _wait_for_answer(control.sender, control.token, deadline)

    def _put(self, control: _Control, deadline: float) -> bool:
        try:
            self._queue.put(control, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return False
        return control.done.wait(max(0.0, deadline - time.monotonic()))

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid == 0:
                atexit.register(self._close_at_exit)
            else:  # forked: the parent's thread, queue and sender are not ours
                self._queue = queue.Queue(self._queue.maxsize)
                self._sender, self._retired = None, []
            self._pid = os.getpid()
            threading.Thread(target=self._work, name="merkl-lineage", daemon=True).start()

    def close(self, timeout: float | None = None) -> bool:
        """Let the senders finish what they have, for at most `timeout` (default: the
        `[lineage] timeout`); stop those still busy then. False if one had to be stopped."""
        if self._pid != os.getpid():
            return True
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        self._put(_Control("close"), deadline)
        senders, self._sender, self._retired = [*self._retired, self._sender], None, []
        stopped = False
        for sender in senders:
            if sender is None:
                continue
            try:
                sender.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._stopping = True  # the thread's write to it fails: no second warning
                sender.kill()
                sender.wait()
                stopped = True
            _close_pipes(sender)
        return not stopped

    def _close_at_exit(self) -> None:
        if not self.close():
            warn(
                f"gave up sending lineage after {self.timeout:g}s ([lineage] timeout) waiting "
                f"for the endpoint; the run itself is unaffected"
            )

    def _work(self) -> None:
        while True:
            batch: list[Work] = []
            control: _Control | None = None
            item = self._queue.get()
            while True:  # what else is waiting goes in the same write, up to a control
                if isinstance(item, _Control):
                    control = item
                    break
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            data = b"".join(self._records(work) for work in batch) if not self._broken else b""
            if data:
                try:
                    stdin = self._stdin()
                    stdin.write(data)
                    stdin.flush()
                except OSError as exc:  # the sender died: these events are lost
                    if not self._stopping:
                        warn(f"lineage not sent ({type(exc).__name__}: {exc}); sending stops")
                        self._broken = True  # not a sender per batch if it cannot start
                    self._sender = None
            if control is not None:
                self._control(control)

    def _records(self, item: Work) -> bytes:
        """The records of one work item, one JSON document a line."""
        run, build, args = item
        if run.failed:
            return b""
        try:
            if run.recorder is None:
                from merkl.lineage.records import RunRecorder

                run.recorder = RunRecorder(run)
            records = getattr(run.recorder, build)(*args)
            for record in records:
                record["pipeline"] = run.name
            return b"".join(orjson.dumps(r) + b"\n" for r in records)
        except Exception as exc:  # a bug in merkl: never fail the run for it
            run.failed = True
            warn(f"lineage of {run.name} not sent ({type(exc).__name__}: {exc})")
            return b""

    def _control(self, control: _Control) -> None:
        sender = self._sender
        try:
            if sender is not None and control.kind == "flush":
                _stdin(sender).write(orjson.dumps({"flush": control.token}) + b"\n")
                _stdin(sender).flush()
                control.sender = sender
            elif sender is not None and control.kind == "close":
                _stdin(sender).close()
        except OSError:
            pass  # the sender is gone: nothing more to wait for
        control.done.set()

    def _stdin(self) -> IO[bytes]:
        if self._sender is not None and self._renew:
            _stdin(self._sender).close()  # it finishes what it has, then exits
            for done in [s for s in self._retired if s.poll() is not None]:
                self._retired.remove(done)
                _close_pipes(done)
            self._retired.append(self._sender)
            self._sender = None
        if self._sender is None:
            self._renew = self._stopping = False
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": _SRC + (os.pathsep + path if path else "")}
            self._sender = subprocess.Popen(
                [sys.executable, "-m", "merkl.lineage.sender"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        return _stdin(self._sender)


def _close_pipes(sender: subprocess.Popen[bytes]) -> None:
    for pipe in (sender.stdin, sender.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):  # a failed last write: the data is lost anyway
                pipe.close()


def _stdin(sender: subprocess.Popen[bytes]) -> IO[bytes]:
    assert sender.stdin is not None
    return sender.stdin


def _wait_for_answer(sender: subprocess.Popen[bytes], token: int, deadline: float) -> bool:
    """Read the sender's answers until `token` (it answers flushes in order)."""
    assert sender.stdout is not None
    fd = sender.stdout.fileno()
    buffered = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return False
        chunk = os.read(fd, 4096)
        if not chunk:
            return True  # the sender exited: nothing is left to send
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        if any(int(line) >= token for line in lines if line):
            return True
