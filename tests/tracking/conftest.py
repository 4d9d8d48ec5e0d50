"""Fixtures for tracking tests: a file-tree builder and a snapshot of everything on disk."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


def make_tree(root: Path, spec: dict[str, object]) -> None:
    """Create files from `{"name": "text" | b"bytes" | {nested}}`."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in spec.items():
        path = root / name
        if isinstance(content, dict):
            make_tree(path, content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content))


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under `root`: kind, content or link target, and permission bits.

    The index database is left out: its stat cache may learn a file's hash on a failed run;
    so are the repository lock and the (emptied) intent-record folder, bookkeeping of any run.
    """
    state: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel.startswith((".merkl/index.sqlite", ".merkl/lock", ".merkl/journal")):
                continue
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                state[rel] = ("file", path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_ino)
    return state


def set_link_type(root: Path, link: str) -> None:
    (root / "merkl.toml").write_text(f'[core]\nlink = "{link}"\n')


@pytest.fixture
def tree(repo):
    """`tree({"data": {"a.csv": "1,2"}})` creates files in the repo; returns the repo root."""

    def build(spec: dict[str, object]) -> Path:
        make_tree(repo.root, spec)
        return repo.root

    return build
