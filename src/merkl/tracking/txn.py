"""All-or-nothing changes to the work tree: staged small files and an undo log.

`merkl track` first writes every small file it will change (pointer, `.gitignore`) under a
temporary name, then moves and links the data, and only then renames the small files into
place. Renames need no free space, so a full disk fails before anything visible changed, and a
failure while linking undoes the links and moves the data back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from merkl.fs import temp_sibling


class StagedFile:
    """New content for `target`, written now under a temporary name and renamed on commit."""

    def __init__(self, target: Path, data: bytes) -> None:
        self.target = target
        self.tmp = temp_sibling(target)
        try:
            with open(self.tmp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            self.discard()
            raise

    def commit(self) -> None:
        os.replace(self.tmp, self.target)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class UndoLog:
    """Steps that reverse what was done so far, run newest first on failure."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def rollback(self) -> None:
        for step in reversed(self._steps):
            with contextlib.suppress(OSError):
                step()
        self._steps.clear()
