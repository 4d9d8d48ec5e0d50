"""Transfer progress: a rich bar on a terminal, nothing in CI or when output is redirected."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from merkl.progress import is_interactive, make_bar


class TransferProgress:
    """Counts the objects of one transfer; draws a bar only when interactive.

    Thread-safe: workers call `advance` concurrently.
    """

    def __init__(self, description: str, *, enabled: bool | None = None) -> None:
        self.description = description
        self.enabled = is_interactive() if enabled is None else enabled
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self, total_objects: int) -> None:
        if not self.enabled or total_objects == 0:
            return
        if self._bar is not None:  # a further stage (another tier): restart the count
            self._bar.update(self._task, total=total_objects, completed=0)
            return
        self._bar = make_bar("objects")
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total_objects)

    def advance(self, objects: int) -> None:
        if self._bar is None:
            return
        with self._lock:
            self._bar.advance(self._task, objects)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
