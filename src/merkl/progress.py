"""Progress bars: rich on a terminal (on stderr, so stdout stays for results), none in CI, with
`merkl -q`, or when output is redirected. Shared by transfers (`merkl push/pull`), executors
and file hashing (`merkl track` of a big file)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

_quiet = False
# Called with a byte count as large files are hashed; set by `byte_progress`.
_byte_meter: Callable[[int], None] | None = None


def set_quiet(quiet: bool) -> None:
    """`merkl -q/--quiet`: no progress bars in this process."""
    global _quiet
    _quiet = quiet


def is_interactive() -> bool:
    """True when stderr is a terminal, `CI` is not set and `-q` was not given."""
    if _quiet or os.environ.get("CI", "") not in ("", "0", "false"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def make_bar(unit: str) -> Any:
    """A transient rich `Progress`: description, bar, `done/total <unit>` (or a byte count
    when `unit` is "bytes"), elapsed time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    counts = [DownloadColumn()] if unit == "bytes" else [MofNCompleteColumn(), TextColumn(unit)]
    return RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


class Progress:
    """Counts units of work (`objects` of a transfer, `tasks` of a run) and draws a transient
    bar only when interactive. Thread-safe: workers may call `advance` concurrently.

    `total` may be given now or by `start(total)`; a further `start` (another stage, such as
    the next tier of a remote) restarts the count.
    """

    def __init__(
        self,
        description: str,
        unit: str,
        total: int | None = None,
        *,
        enabled: bool | None = None,
    ) -> None:
        self.description = description
        self.unit = unit
        self.enabled = is_interactive() if enabled is None else enabled
        self.done = 0
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        if total is not None:
            self.start(total)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self, total: int | None) -> None:
        """Show the bar for `total` units (None: not known in advance)."""
        if not self.enabled or total == 0:
            return
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=0)
            return
        self._bar = make_bar(self.unit)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total)

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            if self._bar is not None:
                self._bar.advance(self._task, count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
@contextlib.contextmanager
def byte_progress(description: str, total: int) -> Iterator[None]:
    """A bar of bytes while the body runs: `advance_bytes` moves it (only on a terminal)."""
    global _byte_meter
    if not is_interactive() or total <= 0:
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        _byte_meter = lambda size: bar.advance(task, size)  # noqa: E731 - thread-safe
        try:
            yield
        finally:
            _byte_meter = None


def advance_bytes(size: int) -> None:
    """`size` more bytes were processed (a no-op without a `byte_progress` bar)."""
    meter = _byte_meter
    if meter is not None:
        meter(size)


def wants_bytes() -> bool:
    """True while a byte bar is shown: hashing then reports in chunks."""
    return _byte_meter is not None
