"""Files as DAG nodes: inputs (`path`, `read_file`), outputs (`write_file`), pointers (`load`).

A file input's hash is its content hash (BLAKE3), looked up in the index's stat cache first, so
an unchanged file is never re-read and a pipeline re-runs exactly when its input data changes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from merkl.cache.stat_cache import file_oid
from merkl.errors import (
    CacheMissError,
    NotARepoError,
    PathOutsideRepoError,
    SerializationError,
    TrackedFileChangedError,
)
from merkl.fs import write_atomic
from merkl.hashing import hash_bytes
from merkl.placeholder import Lazy, Placeholder
from merkl.pointer import Pointer, pointer_path, read_pointer
from merkl.repo import Repo
from merkl.request_memo import note_read, note_unmemoizable
from merkl.serializers import get_serializer
from merkl.session import Session, current_session
from merkl.tracking.state import State, dir_state
from merkl.tracking.tree import hash_dir, scan_dir
from merkl.tracking.worktree import load_tracked


def _session_repo() -> Repo | None:
    try:
        session = current_session()
    except Exception:
        return None
    return session.repo if session.use_cache else None


def _check_confined(file: Path, what: str) -> None:
    """Refuse a file outside the session's `confine_paths` (symlinks followed).

    Raises:
        PathOutsideRepoError: naming the file and how to allow it.
    """
    try:
        root = current_session().confine_paths
    except Exception:
        return
    if root is None:
        return
    resolved = _resolved(file, follow=what != "write_file")
    if resolved != root and root not in resolved.parents:
        raise PathOutsideRepoError(
            f"{what} {str(file)!r} is outside the repository {str(root)!r}; the server refuses "
            f"it (start it with --allow-outside-paths to allow such paths)",
            path=str(file),
        )


def _resolved(file: Path, *, follow: bool) -> Path:
    """`file` with symlinks resolved: all of them when reading; for a write only its folder's
    (a write replaces a symlink rather than writing through it)."""
    if follow:
        for _attempt in range(3):
            try:
                return Path(os.path.realpath(file))
            except OSError:  # a link swapped by another writer while it was read: again
                continue
    if file.name in ("", ".", ".."):
        return Path(os.path.realpath(file))
    return Path(os.path.realpath(file.parent)) / file.name


class FileRef(Lazy):
    """An input file or folder; its hash is its content hash. `as_bytes` makes `.get()` read a
    file (a folder is always passed as its path).

    A folder's hash is its tree hash, as `merkl track` records it: from its pointer when the
    folder is tracked and unchanged (stat snapshot first, so nothing is re-read), else from
    the names and content hashes of its members (stat-cached).

    A tracked file or folder whose data is not in the work tree (a fresh clone before
    `merkl pull`) takes its hash from its pointer, so the DAG can still be built, found cached,
    or pulled for (`merkl run --pull` fetches it only if a task that reads it must run).
    """

    __slots__ = ("_oid", "as_bytes", "is_dir", "path", "pointer_file")

    def __init__(self, path: Path | str, *, as_bytes: bool) -> None:
        self.path = Path(path)
        self.as_bytes = as_bytes
        _check_confined(self.path, "read_file" if as_bytes else "path")
        note_read(self.path)  # a request memo's snapshot (merkl.request_memo), before reading
        self.pointer_file: Path | None = None
        if not self.path.exists():
            self.pointer_file = pointer_path(self.path)
            note_read(self.pointer_file)
            pointer = _absent_tracked_item(self.path, self.pointer_file)
            self._oid, self.is_dir = pointer.oid, pointer.type == "dir"
            return
        self.is_dir = self.path.is_dir()
        if self.is_dir:
            note_unmemoizable(f"folder input {str(self.path)!r}")
            self._oid = folder_oid(self.path, _folder_repo(self.path))
        else:
            self._oid = file_oid(self.path, _session_repo())

    @property
    def hash(self) -> str:
        return self._oid

    def resolve(self, session: Session) -> Any:
        if self.pointer_file is not None and not self.path.exists():
            shown = str(self.path)
            raise FileNotFoundError(
                f"input {'folder' if self.is_dir else 'file'} {shown!r} is tracked but not in "
                f"the work tree; run "
                f"`merkl pull {shown}` (or `merkl run --pull …`) to fetch it"
            )
        if not self.as_bytes or self.is_dir:
            return self.path
        data = self.path.read_bytes()
        if hash_bytes(data) != self._oid:
            raise TrackedFileChangedError(
                f"input file {str(self.path)!r} changed while the pipeline ran; run it again",
                path=self.path,
            )
        return data

    def __repr__(self) -> str:
        kind = "read_file" if self.as_bytes and not self.is_dir else "path"
        return f"<{kind}({str(self.path)!r})@{self._oid[:8]}>"


def _absent_tracked_item(file: Path, pointer_file: Path) -> Pointer:
    """The pointer of a tracked item missing from the work tree; FileNotFoundError if none."""
    if not pointer_file.is_file():
        raise FileNotFoundError(f"input file {str(file)!r} does not exist")
    return read_pointer(pointer_file)


def folder_oid(folder: Path, repo: Repo) -> str:
    """The tree hash of `folder` as `merkl track` would record it now."""
    pointer_file = pointer_path(folder)
    if pointer_file.is_file():
        tracked = load_tracked(repo, pointer_file)
        if tracked.is_dir and dir_state(repo, tracked, members=False).state in (
            State.CLEAN,
            State.NOT_IN_CACHE,  # the same content, only not in the local store
        ):
            return tracked.pointer.oid
    return hash_dir(repo, scan_dir(repo, folder)).oid


def _folder_repo(folder: Path) -> Repo:
    """The repository whose stat cache and store a folder input is checked against."""
    try:
        repo = current_session().repo
    except Exception:
        repo = None
    if repo is None:
        raise NotARepoError(
            f"input folder {str(folder)!r}: hashing a folder needs a merkl repository (for its "
            f"stat cache); run `merkl init` in the project"
        )
    return repo


def path(file: Path | str) -> FileRef:
    """A task input standing for the path of a file or folder; its hash is the file's content
    hash (a folder's: its tree hash, as `merkl track` records it)."""
    return FileRef(file, as_bytes=False)


def read_file(file: Path | str) -> FileRef:
    """A task input standing for a file's bytes (a folder's path); its hash is the content
    hash (a folder's: its tree hash)."""
    return FileRef(file, as_bytes=True)


class FileOutput(Lazy):
    """A pending `write_file`: evaluating it writes the serialized value of `source`."""

    __slots__ = ("oid", "path", "source", "track")

    def __init__(self, source: Placeholder, file: Path | str, track: bool) -> None:
        self.source = source
        self.path = Path(file)
        self.track = track
        _check_confined(self.path, "write_file")
        self.oid: str | None = None  # the written bytes' content hash, once written

    @property
    def hash(self) -> str | None:
        return self.source.hash

    def write(self, value: Any, session: Session) -> Path:
        """Write the serialized value unless the file already holds exactly those bytes."""
        serializer = self.source.task.serializer(self.source.index)
        data = serializer.dump(value)
        oid = self.oid = hash_bytes(data)
        repo = session.repo if session.use_cache else None
        # One writer per file at a time, across threads and processes (`merkl serve` answers
        # requests concurrently): the file and its pointer always name the same value.
        with _file_write_lock(session.require_repo() if self.track else repo, self.path):
            if not (self.path.is_file() and file_oid(self.path, repo) == oid):
                write_atomic(self.path, data)
            if self.track:
                # Linked into the store and ignored by git exactly as `merkl track` does it.
                from merkl.tracking.track import track_written_output

                track_written_output(
                    session.require_repo(),
                    self.path,
                    oid,
                    output=self.source.hash,
                    serializer=serializer.name,
                )
        return self.path

    def __repr__(self) -> str:
        return f"<write_file({str(self.path)!r}) of {self.source!r}>"


def _file_write_lock(repo: Repo | None, file: Path) -> contextlib.AbstractContextManager[object]:
    """An exclusive lock on writing `file` (a lock file under `.merkl/locks/`)."""
    if repo is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    name = hash_bytes(os.path.abspath(file).encode())[:24]
    folder = repo.dot_dir / "locks"
    folder.mkdir(exist_ok=True)
    return FileLock(folder / f"write-{name}.lock")


def write_file(source: Placeholder, file: Path | str, track: bool = False) -> FileOutput:
    """Write a task output to `file` (serialized as the task's serializer does).

    Inside `merkl run` (or any pipeline session) the write is queued and happens after the
    pipeline's outputs are evaluated, and not at all with `--dry`; elsewhere it happens now.
    With `track=True`, `file.merkl` records the output hash so `merkl.load()` can give the
    placeholder back in another process.
    """
    if not isinstance(source, Placeholder):
        raise TypeError(
            f"write_file expects a task output placeholder, got {type(source).__name__}"
        )
    output = FileOutput(source, file, track)
    session = current_session()
    if session.pending_writes is not None:
        session.pending_writes.append(output)
    else:
        output.get()
    return output


class StoredOutput(Lazy):
    """A task output recorded in a pointer file by `write_file(..., track=True)`."""

    __slots__ = ("pointer", "pointer_file")

    def __init__(self, pointer_file: Path, pointer: Pointer) -> None:
        self.pointer_file = pointer_file
        self.pointer = pointer

    @property
    def hash(self) -> str:
        return self.pointer.output or self.pointer.oid

    def resolve(self, session: Session) -> Any:
        from merkl.cache import CachePolicy

        repo = session.require_repo()
        entry = repo.cache.find(self.hash, CachePolicy.EVERYWHERE)
        if entry is not None:
            return repo.cache.load(self.hash, entry)
        serializer = get_serializer(self.pointer.serializer or "bytes")
        if not serializer.is_safe and not session.trust_pickle:
            # The bytes below came with a clone or a pull, not from this cache's own runs.
            raise SerializationError(
                f"{self.pointer_file}: output {self.hash[:12]} is not in the local cache, and "
                f"its file would be loaded with the {serializer.name!r} serializer, which can "
                f"run code; if you trust where it came from, load it inside "
                f"merkl.session.use_session(trust_pickle=True)",
                out_hash=self.hash,
            )
        if repo.store.has(self.pointer.oid):
            return serializer.load(repo.store.get_bytes(self.pointer.oid))
        data_file = repo.root / self.pointer.path
        if data_file.is_file() and file_oid(data_file, repo) == self.pointer.oid:
            return serializer.load(data_file.read_bytes())
        raise CacheMissError(
            f"{self.pointer_file}: output {self.hash[:12]} is in no cache and "
            f"{self.pointer.path!r} does not hold it; run the pipeline or `merkl pull`",
            out_hash=self.hash,
        )

    def __repr__(self) -> str:
        return f"<load({str(self.pointer_file)!r})@{self.hash[:8]}>"


def load(file: Path | str) -> StoredOutput:
    """The placeholder recorded in `file` (a `.merkl` pointer, or the data file beside one)."""
    pointer_file = pointer_path(file) if not str(file).endswith(".merkl") else Path(file)
    note_read(pointer_file)
    return StoredOutput(pointer_file, read_pointer(pointer_file))
