"""Finding tracked items in the work tree and checking user paths against the repository."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from merkl.errors import TrackingError
from merkl.pointer import POINTER_SUFFIX, Pointer, iter_pointer_files, pointer_path, read_pointer
from merkl.repo import DOT_DIR, Repo


@dataclass(frozen=True)
class Tracked:
    """A pointer file and the data path it stands for (absolute paths)."""

    pointer_file: Path
    data_path: Path
    rel: str  # data path relative to the repo root, POSIX form
    pointer: Pointer

    @property
    def is_dir(self) -> bool:
        return self.pointer.type == "dir"


def load_tracked(repo: Repo, pointer_file: Path) -> Tracked:
    """Read (and validate) a pointer; the data path is the pointer's location minus `.merkl`."""
    pointer = read_pointer(pointer_file)
    data_path = pointer_file.with_name(pointer_file.name[: -len(POINTER_SUFFIX)])
    return Tracked(pointer_file, data_path, repo.relpath(data_path), pointer)


def iter_tracked(repo: Repo, paths: Iterable[str | Path] | None = None) -> Iterator[Tracked]:
    """Tracked items under the repo, or those that `paths` name (data, pointer or folder paths).

    Every path is resolved before anything is yielded, so a bad one fails before any work.
    """
    if paths is None:
        pointer_files: Iterable[Path] = iter_pointer_files(repo.root)
    else:
        pointer_files = _select_pointer_files(repo, list(paths))
    for pointer_file in pointer_files:
        yield load_tracked(repo, pointer_file)


def _select_pointer_files(repo: Repo, paths: list[str | Path]) -> list[Path]:
    selected: dict[Path, None] = {}
    for raw in paths:
        path = repo_path(repo, raw)
        if path.name.endswith(POINTER_SUFFIX) and path.is_file():
            selected[path] = None
            continue
        if pointer_path(path).is_file():
            selected[pointer_path(path)] = None
            continue
        if path.is_dir() and not path.is_symlink():
            found = list(iter_pointer_files(path))
            if found:
                selected.update(dict.fromkeys(found))
                continue
        enclosing = find_enclosing_dir_pointer(repo, path)
        if enclosing is not None:
            selected[enclosing] = None
            continue
        raise TrackingError(
            f"{str(raw)!r} is not tracked (no {pointer_path(Path(raw)).name!r} beside it); "
            f"track it with `merkl track {raw}`",
            path=path,
        )
    return list(selected)


def find_enclosing_dir_pointer(repo: Repo, path: Path) -> Path | None:
    """The pointer of a tracked directory that contains `path`, if any."""
    for parent in path.parents:
        if parent == repo.root or repo.root not in parent.parents:
            return None
        candidate = pointer_path(parent)
        if candidate.is_file():
            return candidate
    return None


def repo_path(repo: Repo, raw: str | Path) -> Path:
    """`raw` as an absolute path inside the repo (symlinks in its last part are not followed).

    Raises TrackingError for a path outside the repository or inside `.merkl/`.
    """
    absolute = Path(os.path.abspath(raw))
    # Resolve the folder, not the file: a tracked file is often a symlink into the store.
    path = absolute.parent.resolve() / absolute.name if absolute.name else absolute.resolve()
    if path != repo.root and repo.root not in path.parents:
        raise TrackingError(
            f"{str(raw)!r} is outside the repository {str(repo.root)!r}; merkl only tracks "
            f"files inside it",
            path=path,
        )
    rel_parts = path.relative_to(repo.root).parts
    if rel_parts[:1] == (DOT_DIR,):
        raise TrackingError(
            f"{str(raw)!r} is inside merkl's own {DOT_DIR}/ folder; track your data files, "
            f"not the cache",
            path=path,
        )
    return path


def work_tree_links(repo: Repo) -> set[str]:
    """Oids of the store objects that symlinks anywhere in the work tree point at (`.git/`
    and `.merkl/` aside): a file the user sees must never dangle after `merkl gc`, whether
    or not a pointer names its object."""
    prefix = os.path.join(str(repo.objects_dir), "")
    found: set[str] = set()
    stack = [str(repo.root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                target = os.path.normpath(os.path.join(folder, os.readlink(entry.path)))
                if not target.startswith(prefix):
                    target = os.path.realpath(entry.path)  # through another link
                if target.startswith(prefix):
                    found.add(target[len(prefix) :].replace(os.sep, ""))
            elif entry.is_dir(follow_symlinks=False) and entry.name not in (DOT_DIR, ".git"):
                stack.append(entry.path)
    return found
