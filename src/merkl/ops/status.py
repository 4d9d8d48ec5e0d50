"""`merkl status`: does the work tree hold what each pointer file records?"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from merkl.repo import Repo
from merkl.tracking.integrity import edited_in_store
from merkl.tracking.state import ItemState, State, item_states
from merkl.tracking.worktree import iter_tracked

HINTS = {
    State.CLEAN: "",
    State.MODIFIED: "`merkl track` records the change, `merkl checkout --force` discards it "
    "(`merkl unprotect` makes a linked file safe to edit)",
    State.MISSING: "`merkl checkout` restores it",
    State.NOT_IN_CACHE: "`merkl track` stores it again",
    State.NO_DATA: "`merkl pull` fetches it",
}
EDITED_IN_STORE = (
    "edited in place through its link into the store, so the tracked version is no longer "
    "stored here: `merkl track` keeps the edit, `merkl pull` then `merkl checkout --force` "
    "brings the tracked version back; `merkl unprotect` a file before editing it"
)
OTHER_STORED_VERSION = "the work tree holds another stored version: run `merkl checkout`"


def status(repo: Repo, paths: Iterable[str | Path] | None = None) -> list[ItemState]:
    """The state of every tracked item (or of those `paths` name), sorted by path.

    Raises:
        PointerFileError: a pointer file is invalid.
        TrackingError: a path is not tracked.
    """
    items = sorted(iter_tracked(repo, paths), key=lambda t: t.rel)
    return item_states(repo, items, members=False)


def hint(repo: Repo, item: ItemState) -> str:
    """What to do about `item`, in one line: for a modified item, whether it was edited
    through a link into the store, or is another stored version (after `git checkout`)."""
    if item.state is not State.MODIFIED or not item.current:
        return HINTS[item.state]
    expected = _expected_oids(item)
    current = {rel: oid for rel, (_, oid) in item.current.items()}
    changed = [rel for rel, oid in current.items() if rel in expected and expected[rel] != oid]
    if any(edited_in_store(repo, item.current[rel][0], expected[rel]) for rel in changed):
        return EDITED_IN_STORE
    added = any(rel not in expected for rel in current)
    wanted = {current[rel] for rel in changed} | {expected[rel] for rel in changed}
    if changed and not added and len(repo.store.find_present(wanted)) == len(wanted):
        return OTHER_STORED_VERSION
    return HINTS[item.state]


def _expected_oids(item: ItemState) -> dict[str, str]:
    if not item.tracked.is_dir:
        return {"": item.tracked.pointer.oid}
    if item.manifest is None:
        return {}
    return {e.path: e.oid for e in item.manifest.entries}


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
