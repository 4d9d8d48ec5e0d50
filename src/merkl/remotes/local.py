"""A directory remote (`/mnt/share/merkl`, `file:///mnt/share/merkl`): keys are relative paths.

Writes go to `<root>/tmp/` and are renamed into place, so a reader never sees half an object;
`tmp/` leftovers of an interrupted push are invisible to `has` and `list`.

Objects are always copied, never hard-linked, even on the same filesystem: a remote is a
backup, and a shared inode would let an edit made in place through a work-tree link (as root,
the object's 0444 mode does not stop it) damage the backup too. The old `hardlink` option is
accepted and ignored. Pulled objects are still re-hashed: a remote file damaged in place is
refused like any other corrupt object.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from merkl.errors import CacheMissError
from merkl.fs import replace_with, write_atomic
from merkl.remotes.base import Remote, Source
from merkl.remotes.records import OBJECTS, OUTPUTS


class LocalRemote(Remote):
    """Objects as files under a directory, laid out like the local store."""

    default_jobs = 8
    known_options = frozenset({"hardlink", "lock_timeout"})  # hardlink: ignored, always copied
    supports_gc = True

    def __init__(
        self, url: str, *, name: str | None = None, options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(url, name=name, options=options)
        self.root = Path(_path_of(url)).expanduser()

    def prepare(self, *, write: bool) -> None:
        if not self.root.is_dir() and not write:
            raise self.error(
                f"directory {str(self.root)!r} does not exist",
                hint="check the remote's path, or push to it first",
            )
        if not write:
            return
        # The top folders are made here, once, rather than by the parallel `put`s racing to
        # make them: a transfer then does the same file-system calls whichever thread is first.
        try:
            for folder in (self.root, self.root / OBJECTS, self.root / OUTPUTS, self.root / "tmp"):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self.error(f"cannot create directory {str(self.root)!r}", exc) from exc

    def has(self, keys: Sequence[str]) -> set[str]:
        return {key for key in keys if os.path.isfile(self.root / key)}

    def get(self, items: Sequence[tuple[str, Path]]) -> None:
        root = self.root
        for key, dest in items:
            try:
                shutil.copyfile(root / key, dest)
            except FileNotFoundError:
                raise CacheMissError(
                    f"{key} is not on {self.label}", key=key, remote=self.name
                ) from None

    def put(self, items: Sequence[tuple[str, Source]]) -> None:
        root = self.root
        tmp_dir = root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        for key, source in items:
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                write_atomic(target, source, fsync=False, mode=0o444, tmp_dir=tmp_dir)
            else:
                build = functools.partial(shutil.copyfile, source)
                replace_with(target, build, tmp_dir=tmp_dir, mode=0o444)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / key)

    def sizes(self, keys: Sequence[str]) -> dict[str, int]:
        found = {}
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                found[key] = os.stat(self.root / key).st_size
        return found

    def list(self, prefix: str) -> Iterator[str]:
        if not self.root.is_dir():
            return
        top = prefix.split("/", 1)[0]
        base = self.root / top
        for folder, _dirs, files in os.walk(base):
            rel = Path(folder).relative_to(self.root).as_posix()
            for name in files:
                key = f"{rel}/{name}"
                if key.startswith(prefix):
                    yield key


def _path_of(url: str) -> str:
    if url.startswith("file://"):
        parts = urlsplit(url)
        return (
            unquote(parts.netloc + parts.path)
            if parts.netloc not in ("", "localhost")
            else unquote(parts.path)
        )
    return url
