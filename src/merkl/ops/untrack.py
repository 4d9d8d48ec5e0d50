"""`merkl untrack`: stop tracking files; the data stays as ordinary, writable files.

The pointer file and the `.gitignore` line go away; each link into the store is replaced by a
private copy. The objects stay in the store until `merkl gc` finds them unreferenced.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from merkl.cache.lock import shared_lock
from merkl.errors import TrackingError
from merkl.repo import Repo
from merkl.tracking.gitignore import GITIGNORE, gitignore_entry, read_gitignore, without_entry
from merkl.tracking.links import copy_out, link_object
from merkl.tracking.manifest import find_manifest
from merkl.tracking.tree import scan_dir
from merkl.tracking.txn import StagedFile
from merkl.tracking.worktree import Tracked, iter_tracked


def untrack(repo: Repo, paths: Iterable[str | Path]) -> list[str]:
    """Untrack the items `paths` name; returns their repo-relative paths.

    Raises:
        TrackingError: a path is not tracked, or its data is neither in the work tree nor in
            the store (`merkl pull` it first, or delete the pointer by hand to drop it).
        PointerFileError: a pointer file is invalid.
    """
    items = list(iter_tracked(repo, paths))
    for item in items:
        _check_data_available(repo, item)
    with shared_lock(repo, "merkl untrack"):
        _untrack(repo, items)
    return [item.rel for item in items]


def _untrack(repo: Repo, items: list[Tracked]) -> None:
    for item in items:
        _materialize(repo, item)
        folder = item.data_path.parent
        text = without_entry(read_gitignore(folder), gitignore_entry(item.data_path.name))
        if text is not None:
            StagedFile(folder / GITIGNORE, text.encode()).commit()
        os.unlink(item.pointer_file)


def _check_data_available(repo: Repo, item: Tracked) -> None:
    if os.path.exists(item.data_path) or repo.store.has(item.pointer.oid):
        return
    raise TrackingError(
        f"cannot untrack {item.rel!r}: its data is neither in the work tree nor in the local "
        f"store; `merkl pull {item.rel}` first, or delete {item.rel + '.merkl'!r} to drop it",
        path=item.data_path,
    )


def _materialize(repo: Repo, item: Tracked) -> None:
    """Make the data real, writable files (restoring it from the store if it is missing)."""
    if not item.is_dir:
        if not os.path.exists(item.data_path):
            link_object(repo, item.pointer.oid, item.data_path, "copy")
        copy_out(item.data_path)
        return
    if not item.data_path.is_dir():
        manifest = find_manifest(repo, item.pointer.oid)
        for entry in manifest.entries if manifest else ():
            target = item.data_path / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            if repo.store.has(entry.oid):
                link_object(repo, entry.oid, target, "copy")
    for member in scan_dir(repo, item.data_path).files.values():
        if os.path.exists(member):
            copy_out(Path(member))
