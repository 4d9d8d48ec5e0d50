"""Task progress for concurrent executors: a rich bar of calls done / total on a terminal."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from merkl.progress import is_interactive, make_bar


class TaskProgress:
    """Counts finished calls; draws a transient bar on stderr only when it is a terminal and
    `CI` is unset, so logs and pipes stay clean."""

    def __init__(self, total: int, description: str, *, enabled: bool | None = None) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        if total and (is_interactive() if enabled is None else enabled):
            self._bar = make_bar("tasks")
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> TaskProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self) -> None:
        """One more call finished (called from the thread that collects results)."""
        self.done += 1
        if self._bar is not None:
            self._bar.advance(self._task)
