"""Tracking a path (`merkl track`, `write_file(track=True)`): store it, link it back, write its
pointer file.

For each path: hash it (stat-cached; big files on all cores), rename it into the store (no
copy), link it back (symlink by default), write `<path>.merkl` and add `/<name>` to the
`.gitignore` beside it. Every path is checked before anything changes, and a failure while
tracking one path (a full disk) puts that path back exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from merkl.cache.lock import shared_lock
from merkl.cache.stat_cache import Row, file_oid_and_stat, record_settled
from merkl.errors import CacheError, MerklError, PointerFileError, TrackingError
from merkl.fs import replace_with
from merkl.pointer import (
    POINTER_SUFFIX,
    Pointer,
    dump_pointer,
    iter_pointer_files,
    pointer_path,
    read_pointer,
)
from merkl.repo import Repo
from merkl.tracking import snapshot
from merkl.tracking.gitignore import GITIGNORE, gitignore_entry, read_gitignore, with_entry
from merkl.tracking.gitindex import start_git_tracked
from merkl.tracking.integrity import (
    forget_rehomed,
    linked_object,
    object_intact,
    rehome_if_changed,
)
from merkl.tracking.journal import intent
from merkl.tracking.links import get_link_type, is_linked, link_object
from merkl.tracking.manifest import is_safe_relpath
from merkl.tracking.tree import hash_members, scan_dir
from merkl.tracking.txn import StagedFile, UndoLog
from merkl.tracking.worktree import find_enclosing_dir_pointer, repo_path


@dataclass
class TrackedItem:
    """One tracked path and what tracking it did."""

    rel: str
    pointer: Pointer
    changed: bool  # False: pointer, link and .gitignore were already up to date
    skipped_symlinks: list[str] = field(default_factory=list)


def track(repo: Repo, paths: Iterable[str | Path]) -> list[TrackedItem]:
    """Track files and directories (re-tracking updates their pointers).

    Raises:
        TrackingError: a path is missing, outside the repo, inside `.merkl/`, a pointer file,
            inside a tracked directory, or could not be tracked (then it is left unchanged).
    """
    link_type = get_link_type(repo)
    targets = list(dict.fromkeys(check_trackable(repo, raw) for raw in paths))
    git_check = _GitCheck(repo, targets)
    try:
        return _track_all(repo, targets, link_type, git_check)
    finally:
        git_check.finish()


def _track_all(
    repo: Repo, targets: list[Path], link_type: str, git_check: _GitCheck
) -> list[TrackedItem]:
    items: list[TrackedItem] = []
    for path in targets:
        try:
            with shared_lock(repo, f"merkl track {repo.relpath(path)}"):
                if path.is_dir() and not path.is_symlink():
                    items.append(_track_dir(repo, path, link_type, git_check))
                else:
                    items.append(_track_file(repo, path, link_type, git_check=git_check))
        except (OSError, CacheError) as exc:
            done = f" ({len(items)} earlier path(s) were tracked)" if items else ""
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise TrackingError(
                f"cannot track {repo.relpath(path)!r}: {reason}; it was left unchanged{done}",
                path=path,
            ) from exc
    return items


class _GitCheck:
    """Refuses paths git tracks: git would commit merkl's link into `.merkl/`, which dangles
    in every clone. `git ls-files` runs while the first path is hashed; its answer is awaited
    before anything changes."""

    def __init__(self, repo: Repo, targets: list[Path]) -> None:
        self.repo = repo
        self._collect: Callable[[], list[str]] | None = start_git_tracked(
            repo.root, [repo.relpath(path) for path in targets]
        )

    def finish(self) -> None:
        """Wait for git if nothing did yet (a failure before the first change)."""
        if self._collect is not None:
            self._collect()
            self._collect = None

    def __call__(self) -> None:
        if self._collect is None:
            return
        found, self._collect = self._collect(), None
        if found:
            shown = found[0] if len(found) == 1 else f"{found[0]} (and {len(found) - 1} more)"
            more = " …" if len(found) > 1 else ""
            raise TrackingError(
                f"cannot track {shown!r}: git tracks it; run `git rm --cached "
                f"{shlex.quote(found[0])}`{more} (the file stays) and track it again",
                path=self.repo.root / found[0],
            )


def check_trackable(repo: Repo, raw: str | Path) -> Path:
    """The absolute path to track, or a TrackingError saying why `raw` cannot be tracked."""
    path = repo_path(repo, raw)

    def refuse(reason: str) -> TrackingError:
        return TrackingError(f"cannot track {str(raw)!r}: {reason}", path=path)

    if path == repo.root:
        raise refuse("it is the repository root; track the data files or folders in it")
    if not path.name.isascii():
        _check_utf8(repo, path.parent, path.name, refuse)
    if path.name.endswith(POINTER_SUFFIX):
        data = path.name[: -len(POINTER_SUFFIX)]
        raise refuse(f"it is a merkl pointer file; track the data file {data!r} instead")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise refuse("no such file or directory") from None
    if stat.S_ISLNK(mode):
        target = os.path.realpath(path)
        if repo.objects_dir not in Path(target).parents:
            raise refuse(f"it is a symlink to {target!r}; track the file it points to instead")
        if not os.path.exists(path):
            raise refuse("its link into the store is broken; `merkl checkout` restores it")
    elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise refuse("it is not a regular file or a directory")
    enclosing = find_enclosing_dir_pointer(repo, path)
    if enclosing is not None:
        folder = repo.relpath(enclosing.with_name(enclosing.name[: -len(POINTER_SUFFIX)]))
        raise refuse(f"it is inside the tracked directory {folder!r}; re-track {folder!r}")
    if stat.S_ISDIR(mode):
        nested = next(iter_pointer_files(path), None)
        if nested is not None:
            raise refuse(
                f"it contains the tracked file {repo.relpath(nested)[: -len(POINTER_SUFFIX)]!r};"
                f" `merkl untrack` it first"
            )
    return path


def _track_file(
    repo: Repo,
    path: Path,
    link_type: str,
    known_oid: str | None = None,
    output: str | None = None,
    serializer: str | None = None,
    git_check: Callable[[], None] | None = None,
) -> TrackedItem:
    hashed: os.stat_result | None = None
    if known_oid is None:
        known_oid, hashed = file_oid_and_stat(path, repo)
    oid = known_oid
    pointer = _new_pointer(
        path,
        Pointer(
            oid, os.stat(path).st_size, repo.relpath(path), output=output, serializer=serializer
        ),
    )
    if git_check is not None:
        git_check()
    with intent(repo, f"merkl track {repo.relpath(path)}", [oid]):
        changed = _commit(
            repo, path, pointer, lambda undo: _link_in(repo, path, oid, link_type, undo)
        )
    _record(repo, [(path, oid, hashed)])
    return TrackedItem(repo.relpath(path), pointer, changed)


def track_written_output(
    repo: Repo, path: Path, oid: str, *, output: str | None, serializer: str | None
) -> TrackedItem:
    """Track a file `write_file(..., track=True)` just wrote (content `oid`), like `track`."""
    target = check_trackable(repo, path)
    try:
        with shared_lock(repo, f"merkl track {repo.relpath(target)}"):
            return _track_file(
                repo, target, get_link_type(repo), oid, output=output, serializer=serializer
            )
    except OSError as exc:
        raise TrackingError(
            f"cannot track {repo.relpath(target)!r}: {exc.strerror or exc}", path=target
        ) from exc


def _track_dir(
    repo: Repo, path: Path, link_type: str, git_check: Callable[[], None]
) -> TrackedItem:
    scan = scan_dir(repo, path)
    for rel in scan.files:
        if not rel.isascii():
            _check_utf8(repo, path, rel)
        if not is_safe_relpath(rel):
            raise TrackingError(
                f"cannot track {repo.relpath(path)!r}: the name {rel!r} inside it cannot be "
                f"stored portably (a backslash or a NUL); rename it",
                path=path,
            )
    hashed = hash_members(repo, scan)
    manifest = hashed.manifest
    pointer = _new_pointer(
        path,
        Pointer(
            manifest.oid,
            manifest.size,
            repo.relpath(path),
            type="dir",
            files=len(manifest.entries),
        ),
    )
    paths = list(scan.files.values())
    symlinked = link_type == "symlink"
    # Members that already are symlinks naming their object need nothing: a re-track after
    # one edit links, and records in the stat cache, only what changed.
    todo = [
        i
        for i, (rel, oid) in enumerate(zip(scan.files, hashed.oids, strict=True))
        if not (symlinked and scan.link_oids.get(rel) == oid)
    ]

    def link_members(undo: UndoLog) -> bool:
        repo.store.put_bytes(manifest.dump(), manifest.oid)
        changed = False
        for i in todo:
            changed = _link_in(repo, paths[i], hashed.oids[i], link_type, undo) or changed
        return changed

    oids = [manifest.oid, *(e.oid for e in manifest.entries)]
    git_check()
    with intent(repo, f"merkl track {repo.relpath(path)}", oids):
        changed = _commit(repo, path, pointer, link_members)
    _record(repo, [(paths[i], hashed.oids[i], hashed.stats[i]) for i in todo])
    if link_type != "copy" and not scan.skipped_symlinks:
        with contextlib.suppress(OSError, MerklError):  # only a shortcut for the next status
            snapshot.record_tracked(
                repo,
                str(path),
                manifest.oid,
                scan.files,
                hashed.oids,
                hashed.stats,
                todo,
                symlinked=symlinked,
            )
    return TrackedItem(repo.relpath(path), pointer, changed, scan.skipped_symlinks)


def _check_utf8(
    repo: Repo, folder: Path, rel: str, refuse: Callable[[str], TrackingError] | None = None
) -> None:
    """Names are stored as UTF-8 in pointers, manifests and the index: refuse, naming it, one
    that is not (a name from another system's encoding)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
        advice = "is not valid UTF-8; rename it (e.g. with `convmv`)"
        if refuse is not None:
            raise refuse(f"the name {shown!r} {advice}") from None
        raise TrackingError(
            f"cannot track {repo.relpath(folder)!r}: the name {shown!r} inside it {advice}",
            path=folder,
        ) from None


def _new_pointer(path: Path, pointer: Pointer) -> Pointer:
    """Keep the old pointer's timestamp when the content did not change (no git diff noise)."""
    try:
        old = read_pointer(pointer_path(path))
    except PointerFileError:
        return pointer  # none yet, or broken (a merge conflict): re-tracking rewrites it
    if (old.oid, old.type) == (pointer.oid, pointer.type):
        # Same content: keep when it was recorded and which task output it is.
        return Pointer(
            pointer.oid,
            pointer.size,
            pointer.path,
            old.timestamp,
            pointer.output or old.output,
            pointer.serializer or old.serializer,
            pointer.type,
            pointer.files,
        )
    return pointer


def _commit(repo: Repo, path: Path, pointer: Pointer, link: Callable[[UndoLog], bool]) -> bool:
    """Stage the pointer and `.gitignore`, run `link(undo)`, then rename the staged files in."""
    staged: list[StagedFile] = []
    undo = UndoLog()
    try:
        pointer_file = pointer_path(path)
        data = dump_pointer(pointer)
        if not _has_content(pointer_file, data):
            staged.append(StagedFile(pointer_file, data))
        ignore = with_entry(read_gitignore(path.parent), gitignore_entry(path.name))
        if ignore is not None:
            staged.append(StagedFile(path.parent / GITIGNORE, ignore.encode()))
        linked = link(undo)
        for item in staged:
            item.commit()
    except BaseException:
        undo.rollback()
        for item in staged:
            item.discard()
        raise
    return linked or bool(staged)


def _has_content(file: Path, data: bytes) -> bool:
    try:
        return file.read_bytes() == data
    except OSError:
        return False


def _link_in(repo: Repo, path: Path | str, oid: str, link_type: str, undo: UndoLog) -> bool:
    """Store `path` (content `oid`) as object `oid` and leave a link to it; False if it already
    was one. The real file is stored, never a symlink, and an object already stored under
    `oid` is checked before `path` is deduplicated onto it."""
    if is_linked(repo, path, oid, link_type):
        # `oid` was just hashed through `path`: the object it links to is intact.
        if not repo.store.has_file(oid):
            repo.store.put_file(Path(path), oid)
        return False
    if os.path.islink(path):
        return _link_symlink(repo, os.fspath(path), oid, link_type, undo)
    if repo.store.has_file(oid) and not object_intact(repo, oid):
        rehome_if_changed(repo, oid)  # another edit made in place: kept under its own hash
    mode = os.stat(path).st_mode
    obj = repo.store.oid_to_path(oid)
    if repo.store.move_in(Path(path), oid):

        def move_back() -> None:
            if os.path.lexists(path):
                os.unlink(path)
            os.rename(obj, path)
            os.chmod(path, stat.S_IMODE(mode))
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(obj))  # only if this left it empty

        undo.add(move_back)
        if link_type != "hardlink":  # `path` is the object's own inode: a hardlink already
            link_object(repo, oid, path, link_type)  # atomically over `path`: never without data
    else:
        link_object(repo, oid, path, link_type)

        def copy_back() -> None:
            link_object(repo, oid, path, "copy")
            os.chmod(path, stat.S_IMODE(mode))

        undo.add(copy_back)
    return True


def _link_symlink(repo: Repo, path: str, oid: str, link_type: str, undo: UndoLog) -> bool:
    """`path` is a symlink whose target holds content `oid`: a link into the store whose object
    was edited in place, or an alias of another file of a tracked folder (`best.pt ->
    epoch_10.pt`), in either order of linking."""
    target = linked_object(repo, path)
    if target is not None:
        if target != oid:
            rehome_if_changed(repo, target)  # the edited object moves to `oid`: edit kept
        if not repo.store.has_file(oid):
            raise TrackingError(f"{path!r} changed while being tracked; track it again")
        link_object(repo, oid, path, link_type)  # no undo: the old link's object is gone
        return True
    if not (repo.store.has_file(oid) and object_intact(repo, oid)):
        if repo.store.has_file(oid):
            rehome_if_changed(repo, oid)
        # A copy of the alias's target, which stays the user's file until its own turn.
        repo.store.put_file(Path(os.path.realpath(path)), oid)
    text = os.readlink(path)

    def relink() -> None:
        replace_with(path, lambda tmp: os.symlink(text, tmp))

    link_object(repo, oid, path, link_type)
    undo.add(relink)
    return True


def _record(repo: Repo, rows: list[tuple[Path | str, str, os.stat_result | None]]) -> None:
    """Tell the stat cache each tracked file's oid and each object's fingerprint (to check it
    cheaply before it is used again), in one transaction.

    `rows` are (file, oid, the stat the oid was computed for, or None when it came from the
    caller). A file still that inode but with another size or mtime was edited after it was
    read, while tracking ran: it is left out, so the next command reads it again.
    """
    states: list[Row] = []
    objects: dict[str, None] = {}
    path_of = repo.store.oid_to_str
    with contextlib.suppress(OSError):
        for file, oid, hashed in rows:
            paths = [file] if oid in objects else [file, path_of(oid)]
            objects[oid] = None
            for one in paths:
                st = os.stat(one)  # a link's stat is its object's
                if hashed is not None and _edited_since(st, hashed):
                    continue
                states.append((os.path.abspath(one), st.st_ino, st.st_size, st.st_mtime_ns, oid))
    # The stat cache only saves re-hashing later; tracking itself has succeeded. Content the
    # caller gave (a file merkl just wrote) is recorded even when new: no one else wrote it.
    with contextlib.suppress(MerklError):
        if rows and rows[0][2] is None:
            repo.index.set_file_oids(states)
        else:
            record_settled(repo, states)
    forget_rehomed(repo, objects)  # a pointer records these edits now


def _edited_since(st: os.stat_result, hashed: os.stat_result) -> bool:
    """True for the inode that was read, with another size or mtime now (a copy or another
    object stored for the content is a new inode, and fine)."""
    same = (st.st_size, st.st_mtime_ns) == (hashed.st_size, hashed.st_mtime_ns)
    return st.st_ino == hashed.st_ino and not same
