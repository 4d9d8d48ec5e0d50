"""A remote used behind the scenes of a run (read-through, leases): opened on first use, and
given up for the rest of the process, with one warning, the first time it fails."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

from merkl.errors import MerklError, MerklWarning

if TYPE_CHECKING:
    from merkl.remotes.base import Remote
    from merkl.repo import Repo


class LazyRemote:
    """`open()` gives the configured remote `name`, or None once it has failed.

    `purpose` and `fallback` word the warning: "{purpose} remote 'origin' disabled for this
    process: {error}; {fallback}". `prepare` runs once, before the first open, under the same
    lock (a MerklError from it gives up too).
    """

    def __init__(
        self,
        repo: Repo,
        name: str,
        purpose: str,
        fallback: str,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.repo = repo
        self.name = name
        self._purpose = purpose
        self._fallback = fallback
        self._prepare = prepare
        self._remote: Remote | None = None
        self._broken = False
        self._lock = threading.Lock()

    def open(self) -> Remote | None:
        from merkl.remotes.config import get_remote

        with self._lock:
            if self._remote is None and not self._broken:
                try:
                    if self._prepare is not None:
                        self._prepare()
                    self._remote = get_remote(self.repo, self.name)
                except MerklError as exc:
                    self._give_up(exc)
            return self._remote

    def give_up(self, exc: MerklError) -> None:
        """Stop using the remote in this process (after an error while using it)."""
        with self._lock:
            self._give_up(exc)

    def _give_up(self, exc: MerklError) -> None:
        if self._broken:
            return  # reported once
        self._broken = True
        self._remote = None
        warnings.warn(
            f"{self._purpose} remote {self.name!r} disabled for this process: {exc}; "
            f"{self._fallback}",
            MerklWarning,
            stacklevel=5,
        )
