"""In-process sequential execution: the default; breakpoints and debuggers just work."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from merkl.executors.base import Executor, ValueMap, run_call
from merkl.executors.dependencies import CallDependencies
from merkl.graph import Plan
from merkl.progress import Progress
from merkl.session import Session


class LocalExecutor(Executor):
    """Runs calls one after the other in this thread, dependencies first.

    On a terminal a bar shows calls done / total and the task running now with its elapsed
    time; a `breakpoint()` in a task takes the bar away before the debugger starts.
    """

    name = "local"

    def run(self, plan: Plan, values: ValueMap, session: Session) -> None:
        dependencies = CallDependencies(plan)  # `f(1)` written twice runs once
        calls = dependencies.calls
        values.expect(calls)
        with (
            Progress("running", "tasks", len(calls), show_running=True) as progress,
            _bar_off_for_breakpoints(progress),
        ):
            for call in calls:
                progress.running(f"{call.task.module}.{call.task.name}")
                stored = run_call(call, values, session)
                dependencies.set_values(values, call, stored)
                progress.advance()


@contextlib.contextmanager
def _bar_off_for_breakpoints(progress: Progress) -> Iterator[None]:
    """While `progress` shows, `breakpoint()` first stops it (a live bar garbles pdb)."""
    if not progress.shown:
        yield
        return
    original = sys.breakpointhook

    def hook(*args: Any, **kwargs: Any) -> Any:
        progress.close()
        sys.breakpointhook = original
        if original is sys.__breakpointhook__ and os.environ.get("PYTHONBREAKPOINT", "") == "":
            import pdb

            # Stop in the task's frame, not in this hook's.
            return pdb.Pdb().set_trace(sys._getframe(1))
        return original(*args, **kwargs)

    sys.breakpointhook = hook
    try:
        yield
    finally:
        if sys.breakpointhook is hook:
            sys.breakpointhook = original
