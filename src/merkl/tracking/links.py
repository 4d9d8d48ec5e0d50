"""How a tracked file in the work tree points at its object: symlink, hardlink, copy or reflink.

The link type is `[core] link` in `merkl.toml` (local `.merkl/config.toml` wins). Symlinks are
relative, so a repository can be moved. Hardlinks and reflinks fall back to a copy (with a
warning) where the filesystem cannot do them, as DVC's `cache.type` list does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from merkl.errors import ConfigError, MerklWarning
from merkl.fs import NO_LINK_ERRNOS, replace_with

if TYPE_CHECKING:
    from merkl.repo import Repo

LINK_TYPES = ("symlink", "hardlink", "copy", "reflink")
DEFAULT_LINK_TYPE = "symlink"
_FICLONE = 0x40049409  # Linux ioctl: share extents between two files (btrfs, xfs, bcachefs)


def get_link_type(repo: Repo) -> str:
    """The configured link type; ConfigError for an unknown one."""
    core = repo.config.get("core", {})
    link = core.get("link", DEFAULT_LINK_TYPE) if isinstance(core, dict) else DEFAULT_LINK_TYPE
    if link not in LINK_TYPES:
        source = repo.setting_file("core", "link")
        raise ConfigError(
            f"{source}: [core] link = {link!r} is not a link type; use one "
            f"of {', '.join(LINK_TYPES)}",
            path=source,
            key="core.link",
        )
    return str(link)


def link_object(repo: Repo, oid: str, target: Path | str, link_type: str) -> None:
    """Make `target` the object `oid` (by `link_type`), atomically replacing a file there.

    The link is built under a temporary name and renamed over `target`, so on any failure
    (a full disk during a copy) `target` is left as it was, and at no moment is it missing.
    """
    obj = repo.store.materialize(oid)  # an inline object (a tracked output) gets its file
    replace_with(target, lambda tmp: _make_link(obj, tmp, link_type, repo))


def is_linked(repo: Repo, path: Path | str, oid: str, link_type: str) -> bool:
    """True when `path` already is the object `oid` the way `link_type` links it."""
    obj = os.fspath(repo.store.oid_to_path(oid))
    try:
        st = os.lstat(path)
        if link_type == "symlink":
            if not stat.S_ISLNK(st.st_mode):
                return False
            target = os.path.join(os.path.dirname(path), os.readlink(path))
            return os.path.normpath(target) == obj
        if stat.S_ISLNK(st.st_mode):
            return False
        if link_type == "hardlink":
            obj_st = os.stat(obj)
            return (st.st_ino, st.st_dev) == (obj_st.st_ino, obj_st.st_dev)
        return st.st_nlink == 1 and os.path.exists(obj)  # a private copy of stored content
    except FileNotFoundError:
        return False


def relative_link(repo: Repo, obj: str, folder: str) -> str:
    """The relative symlink text from `folder` (inside the repo) to `obj` (in the store).

    Plain string arithmetic (both paths are absolute and normalized under the repo root):
    `os.path.relpath` costs more than the symlink itself when linking 10,000 files.
    """
    root = str(repo.root)
    if folder == root:
        return obj[len(root) + 1 :]
    if not folder.startswith(root + os.sep):
        return os.path.relpath(obj, folder)
    depth = folder[len(root) + 1 :].count(os.sep) + 1
    return "../" * depth + obj[len(root) + 1 :]


def _make_link(obj: Path | str, dest: str, link_type: str, repo: Repo) -> None:
    if link_type == "symlink":
        obj_path = os.fspath(obj)
        os.symlink(relative_link(repo, obj_path, os.path.dirname(dest)), dest)
        return
    if link_type == "hardlink":
        try:
            os.link(obj, dest)
            return
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            _warn_fallback("hardlink", exc)
    elif link_type == "reflink":
        try:
            _reflink(obj, dest)
            return
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            _warn_fallback("reflink", exc)
    shutil.copyfile(obj, dest)  # a fresh file with default permissions: writable


def _reflink(src: Path | str, dest: str) -> None:
    import fcntl

    with open(src, "rb") as source, open(dest, "wb") as target:
        try:
            fcntl.ioctl(target.fileno(), _FICLONE, source.fileno())
        except OSError:
            target.close()
            os.unlink(dest)
            raise


_warned: set[str] = set()


def _warn_fallback(link_type: str, exc: OSError) -> None:
    if link_type in _warned:
        return
    _warned.add(link_type)
    warnings.warn(
        f"cannot {link_type} from the merkl store here ({exc.strerror}); copying instead. Set "
        f'[core] link = "copy" in merkl.toml to silence this',
        MerklWarning,
        stacklevel=4,
    )


def copy_out(path: Path) -> None:
    """Replace a link at `path` by a private, writable copy of its content (for untrack)."""
    st = os.lstat(path)
    if not stat.S_ISLNK(st.st_mode) and st.st_nlink == 1 and st.st_mode & 0o200:
        return  # already a private, writable file (a copy or a reflink)
    replace_with(path, lambda tmp: shutil.copyfile(path, tmp))


def remove_path(path: Path) -> None:
    """Remove a file, a symlink or a directory tree."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
