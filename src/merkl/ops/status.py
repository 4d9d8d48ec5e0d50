"""`merkl status`: does the work tree hold what each pointer file records?"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from merkl.repo import Repo
from merkl.tracking.state import ItemState, State, item_states
from merkl.tracking.worktree import iter_tracked

HINTS = {
    State.CLEAN: "",
    State.MODIFIED: "`merkl track` records the change, `merkl checkout --force` discards it",
    State.MISSING: "`merkl checkout` restores it",
    State.NOT_IN_CACHE: "`merkl track` stores it again",
    State.NO_DATA: "`merkl pull` fetches it",
}


def status(repo: Repo, paths: Iterable[str | Path] | None = None) -> list[ItemState]:
    """The state of every tracked item (or of those `paths` name), sorted by path.

    Raises:
        PointerFileError: a pointer file is invalid.
        TrackingError: a path is not tracked.
    """
    items = sorted(iter_tracked(repo, paths), key=lambda t: t.rel)
    return item_states(repo, items, members=False)


def detail(item: ItemState) -> str:
    """A short description of what differs (directory members, or what is at the path)."""
    if item.changes:
        return item.changes.summary()
    if item.state is State.MODIFIED and item.tracked.is_dir and item.changes is None:
        return "not a folder" if item.tracked.data_path.exists() else "content differs"
    return ""


def status_json(items: list[ItemState]) -> list[dict[str, Any]]:
    """Machine-readable status: one object per tracked item."""
    rows = []
    for item in items:
        pointer = item.tracked.pointer
        row: dict[str, Any] = {
            "path": item.tracked.rel,
            "type": pointer.type,
            "state": item.state.value,
            "hash": "blake3:" + pointer.oid,
            "size": pointer.size,
        }
        if item.changes is not None:
            row["changes"] = dict(vars(item.changes))
        rows.append(row)
    return rows


def summary(items: list[ItemState]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.state.value] = counts.get(item.state.value, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in counts.items())
    return f"{len(items)} tracked: {parts}" if items else "no tracked files"
