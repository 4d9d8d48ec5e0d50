"""File-system primitives every layer shares: atomic replacement of a file, temporary names.

A file is always built under a temporary name and renamed over its target, so a reader (or a
process after a crash) sees the old file or the new one, never a mix or a truncated file.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import sys
from collections.abc import Callable
from pathlib import Path

# errno values meaning "this file system cannot link/clone here": fall back to a copy.
NO_LINK_ERRNOS = frozenset(
    {
        errno.EXDEV,
        errno.EPERM,
        errno.EACCES,
        errno.EMLINK,
        errno.ENOTSUP,
        errno.EOPNOTSUPP,
        errno.EINVAL,
        errno.ENOTTY,
        errno.ENOSYS,
    }
)

# Unique per process (and per fork: the pid is read at each call), cheaper than uuid4.
_TOKEN = os.urandom(4).hex()
_counter = itertools.count()


def temp_sibling(target: Path) -> Path:
    """A unique hidden name next to `target`, for building a file before renaming it over."""
    return Path(temp_sibling_str(str(target)))


def temp_sibling_str(target: str, folder: str | None = None) -> str:
    """`temp_sibling` as a string; in `folder` instead of beside `target` when given."""
    parent, name = os.path.split(target)
    return os.path.join(
        folder if folder is not None else parent,
        f".{name}.merkl-tmp-{os.getpid()}-{_TOKEN}-{next(_counter)}",
    )


def replace_with(
    target: Path | str,
    build: Callable[[str], object],
    *,
    tmp_dir: Path | str | None = None,
    mode: int | None = None,
) -> None:
    """`build(tmp)` a new file at a temporary name, then rename it over `target`.

    The temporary name is beside `target`, or in `tmp_dir` (same file system) when given.
    `mode` is applied before the rename, so the file never appears with another mode. On any
    failure the temporary file is removed and `target` is left as it was.
    """
    target = os.fspath(target)
    tmp = temp_sibling_str(target, os.fspath(tmp_dir) if tmp_dir is not None else None)
    try:
        build(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_new(path: str, data: bytes, *, fsync: bool = True) -> None:
    """Write `data` to a file that must not exist yet (a temporary name), optionally fsynced."""
    with open(path, "xb") as handle:
        handle.write(data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())


_SYNCFS_FROM = 16  # files in a batch from which one `syncfs` beats an fsync each


def sync_files(paths: list[str]) -> None:
    """Make the data of `paths` (files written without fsync) durable, in one call when it can.

    On Linux that is `syncfs` of their file system: one disk flush for a batch of thousands of
    small files instead of one fsync each (~3 ms apiece on a build machine's disk). A few files
    are fsynced each: `syncfs` also flushes every other writer's data on that file system
    (~9 ms on a shared build machine). Elsewhere, or when `syncfs` fails, each file is fsynced.
    """
    if not paths:
        return
    if len(paths) >= _SYNCFS_FROM and _syncfs(paths[0]):
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _syncfs(path: str) -> bool:
    """`syncfs(2)` of the file system holding `path`; False where it is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


def write_atomic(
    target: Path,
    data: bytes,
    *,
    fsync: bool = True,
    mode: int | None = None,
    tmp_dir: Path | None = None,
) -> None:
    """Replace `target` with `data` so readers see the old or the new file, never a mix.

    `fsync=False` for copies that are checked when read (a cache): no wait for the disk. The
    file gets the usual umask mode unless `mode` is given.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if tmp_dir is not None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
    replace_with(target, lambda tmp: write_new(tmp, data, fsync=fsync), tmp_dir=tmp_dir, mode=mode)
