"""Progress bars: rich on a terminal (on stderr, so stdout stays for results), none in CI, with
`merkl -q`, or when output is redirected; in a notebook, the bars `merkl.notebook` draws in
cell outputs. Shared by transfers (`merkl push/pull`), executors and file hashing (`merkl
track` of a big file)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

_quiet = False
# Called with a byte count as large files are hashed; set by `byte_progress`.
_byte_meter: Callable[[int], None] | None = None
# Makes bars drawn elsewhere than on a terminal (in a notebook's cell outputs), from a unit;
# they have rich Progress's methods that `Progress` uses. Set by `set_bar_maker`.
_bar_maker: Callable[[str], Any] | None = None


def set_bar_maker(maker: Callable[[str], Any] | None) -> None:
    """Draw bars with `maker` (None: rich on stderr again); shown even without a terminal."""
    global _bar_maker
    _bar_maker = maker


def set_quiet(quiet: bool) -> None:
    """`merkl -q/--quiet`: no progress bars in this process."""
    global _quiet
    _quiet = quiet


def is_interactive() -> bool:
    """True when stderr is a terminal, `CI` is not set and `-q` was not given (or, in a
    notebook, unless `-q`)."""
    if _bar_maker is not None:
        return not _quiet
    if _quiet or os.environ.get("CI", "") not in ("", "0", "false"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def make_bar(unit: str, *extra_columns: Any) -> Any:
    """A transient rich `Progress`: description, bar, `done/total <unit>` (or a byte count
    when `unit` is "bytes"), elapsed time, and any `extra_columns`; in a notebook, its bar."""
    if _bar_maker is not None:
        return _bar_maker(unit)
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
        *extra_columns,
        console=Console(stderr=True),
        transient=True,
    )


class Progress:
    """Counts units of work (`objects` of a transfer, `tasks` of a run, `bytes` hashed) and
    draws a transient bar only when interactive. Thread-safe: workers may call `advance`
    concurrently.

    `total` may be given now or by `start(total)`; a further `start` (another stage, such as
    the next tier of a remote) restarts the count. With `show_running`, the bar also shows
    what `running(label)` last named and for how long (the local executor's current task).
    """

    def __init__(
        self,
        description: str,
        unit: str,
        total: int | None = None,
        *,
        enabled: bool | None = None,
        show_running: bool = False,
    ) -> None:
        self.description = description
        self.unit = unit
        self.enabled = is_interactive() if enabled is None else enabled
        self.show_running = show_running
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

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def start(self, total: int | None) -> None:
        """Show the bar for `total` units (None: not known in advance)."""
        if not self.enabled or total == 0:
            return
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=0)
            return
        extra = [_running_column()] if self.show_running else []
        self._bar = make_bar(self.unit, *extra)
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=total, call="", since=0.0)

    def running(self, label: str) -> None:
        """`label` (e.g. module.task) starts now: shown with its own elapsed time."""
        if self._bar is not None:
            self._bar.update(self._task, call=label, since=time.monotonic())

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            if self._bar is not None:
                self._bar.advance(self._task, count)

    def close(self) -> None:
        """Take the bar off the terminal (also before a debugger prompt)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _running_column() -> Any:
    """A rich column: what runs now and its elapsed seconds (rich imported only here)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RunningColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            label = task.fields.get("call")
            if not label:
                return Text("")
            return Text(f"{label} {time.monotonic() - task.fields['since']:.1f}s", style="cyan")

    return RunningColumn()


@contextlib.contextmanager
def byte_progress(description: str, total: int) -> Iterator[None]:
    """A bar of bytes while the body runs, moved by `advance_bytes` (only when interactive)."""
    global _byte_meter
    with Progress(description, "bytes", total) as bar:
        if bar.shown:
            _byte_meter = bar.advance
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
