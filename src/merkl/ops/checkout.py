"""`merkl checkout`: put tracked files back in the work tree from the local store.

Never destroys data the store does not hold: a work-tree file that differs from its pointer is
replaced only when its current content is itself in the store (an older tracked version, e.g.
after `git checkout` of an older pointer) or with `force=True`; a folder standing where a
tracked file belongs is never removed without `force=True`, nor is an added file.

Every object is verified before it is linked (`merkl.tracking.integrity`): one edited in place
through a link is never restored; its bytes are re-homed under their own hash (files linked to
it follow them) and the tracked version is reported missing, to be pulled from a remote.
Checkout holds the repository lock shared.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from merkl.cache.lock import shared_lock
from merkl.cache.stat_cache import record_file_oids
from merkl.errors import TrackingError
from merkl.repo import Repo
from merkl.tracking.integrity import forget_rehomed, rehomed_oids, usable_objects
from merkl.tracking.journal import intent
from merkl.tracking.links import get_link_type, link_object, remove_path
from merkl.tracking.state import ItemState, State, item_states
from merkl.tracking.worktree import iter_tracked


@dataclass
class CheckoutResult:
    """What checkout did, as repo-relative paths (directory members as `dir/member`)."""

    restored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # extra files in tracked directories
    modified: list[str] = field(default_factory=list)  # left alone: differ, not in store
    added: list[str] = field(default_factory=list)  # left alone: new files, not in store
    missing: list[str] = field(default_factory=list)  # left alone: object not in local store

    @property
    def ok(self) -> bool:
        return not (self.modified or self.added or self.missing)


def checkout(
    repo: Repo, paths: Iterable[str | Path] | None = None, force: bool = False
) -> CheckoutResult:
    """Restore tracked files (all, or those `paths` name) from the local store.

    Args:
        repo: the repository.
        paths: data paths, pointer files or folders; None means every pointer in the work tree.
        force: also overwrite files whose current content is not saved in the store.

    Returns:
        A CheckoutResult; files it could not restore are listed in `modified` (would lose
        data; use force) and `missing` (object not in the local store; pull it first).

    Raises:
        TrackingError: a path is not tracked, or a restore would write through a symlink.
        PointerFileError: a pointer file is invalid.
    """
    items = list(iter_tracked(repo, paths))
    run = _Checkout(repo, get_link_type(repo), force)
    command = " ".join(
        ["merkl checkout", *(t.rel for t in items)] if paths else ["merkl checkout"]
    )
    with shared_lock(repo, command), intent(repo, command, []):
        for item in item_states(repo, items):
            if item.tracked.is_dir:
                run.directory(item)
            else:
                run.file(item)
        run.link_pending()
        record_file_oids(run.written, repo)
        forget_rehomed(repo, run.discarded)
    return run.result


class _Checkout:
    def __init__(self, repo: Repo, link_type: str, force: bool) -> None:
        self.repo = repo
        self.link_type = link_type
        self.force = force
        self.result = CheckoutResult()
        self.written: list[tuple[Path, str]] = []
        self.pending: list[tuple[str, Path, str]] = []  # (oid, target, rel) to link
        self.rehomed = rehomed_oids(repo)
        self.discarded: list[str] = []  # re-homed edits replaced with force
        self._safe_dirs: set[Path] = set()

    def _may_replace(self, current_oid: str | None) -> bool:
        """True when the current content is saved in the store (a re-homed edit no pointer
        records is not), or with force (which then forgets such an edit)."""
        if self.force:
            if current_oid in self.rehomed:
                self.discarded.append(current_oid)
            return True
        return (
            current_oid is not None
            and current_oid not in self.rehomed
            and self.repo.store.has(current_oid)
        )

    def _link(self, oid: str, target: Path, rel: str) -> None:
        """Queue `target` to become object `oid` (objects are verified in one batch)."""
        if target.is_dir() and not target.is_symlink() and not self.force:
            self.result.modified.append(rel)  # a user's folder: may hold anything
            return
        self.pending.append((oid, target, rel))

    def link_pending(self) -> None:
        """Link every queued target whose object is intact; re-home the edited ones."""
        usable = usable_objects(self.repo, ((oid, target) for oid, target, _ in self.pending))
        for oid, target, rel in self.pending:
            if oid not in usable:
                self.result.missing.append(rel)
                continue
            self._ensure_dir(target.parent)
            if self.force and target.is_dir() and not target.is_symlink():
                remove_path(target)  # a folder in the way: only with force (see _link)
            link_object(self.repo, oid, target, self.link_type)
            self.written.append((target, oid))
            self.result.restored.append(rel)

    def file(self, item: ItemState) -> None:
        tracked, oid = item.tracked, item.tracked.pointer.oid
        if item.state in (State.CLEAN, State.NOT_IN_CACHE):
            self.result.unchanged.append(tracked.rel)
        elif not self.repo.store.has(oid):
            self.result.missing.append(tracked.rel)
        elif item.state is State.MISSING:
            self._link(oid, tracked.data_path, tracked.rel)
        else:
            current = item.current[""][1] if item.current else None
            if self._may_replace(current):
                self._link(oid, tracked.data_path, tracked.rel)
            else:
                self.result.modified.append(tracked.rel)

    def directory(self, item: ItemState) -> None:
        tracked, manifest = item.tracked, item.manifest
        if manifest is None:
            self.result.missing.append(tracked.rel)
            return
        root = tracked.data_path
        if root.is_symlink() or (root.exists() and not root.is_dir()):
            if not self.force:
                self.result.modified.append(tracked.rel)
                return
            remove_path(root)
        current = item.current or {}
        for entry in manifest.entries:
            rel = f"{tracked.rel}/{entry.path}"
            now = current.get(entry.path)
            if now is not None and now[1] == entry.oid:
                self.result.unchanged.append(rel)
            elif not self.repo.store.has(entry.oid):
                self.result.missing.append(rel)
            elif now is None or self._may_replace(now[1]):
                self._link(entry.oid, root / entry.path, rel)
            else:
                self.result.modified.append(rel)
        expected = manifest.by_path()
        for member, (path, oid) in current.items():
            if member in expected:
                continue
            if self._may_replace(oid):
                os.unlink(path)
                _prune_empty_dirs(Path(path).parent, root)
                self.result.removed.append(f"{tracked.rel}/{member}")
            else:
                self.result.added.append(f"{tracked.rel}/{member}")

    def _ensure_dir(self, folder: Path) -> None:
        """Create `folder` inside the repo, refusing to go through a symlinked folder."""
        if folder in self._safe_dirs:
            return
        rel_parts = folder.relative_to(self.repo.root).parts
        current = self.repo.root
        for part in rel_parts:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                current.mkdir()
                continue
            if stat.S_ISLNK(mode):
                raise TrackingError(
                    f"refusing to check out into {self.repo.relpath(current)!r}: it is a "
                    f"symlink, and following it could write outside the repository; replace "
                    f"it with a folder",
                    path=current,
                )
            if not stat.S_ISDIR(mode):
                if not self.force:
                    raise TrackingError(
                        f"cannot check out into {self.repo.relpath(current)!r}: a file is "
                        f"in the way; move it or use --force",
                        path=current,
                    )
                os.unlink(current)
                current.mkdir()
        self._safe_dirs.add(folder)


def _prune_empty_dirs(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
