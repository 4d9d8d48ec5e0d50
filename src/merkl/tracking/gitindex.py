"""What git itself holds: files it tracks (merkl must not take them over) and the pointer files
of HEAD and the index (whose data `merkl gc` keeps).

Outside a git work tree, or without git installed, there is nothing to report: merkl works
without git.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

from merkl.errors import PointerFileError
from merkl.pointer import POINTER_SUFFIX, Pointer, parse_pointer
from merkl.tracking.history import iter_batch


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes | None:
    """git's output, or None when git is missing or fails (not a repository, no HEAD yet)."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, input=stdin, capture_output=True, check=False
        )
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_tracked(root: Path, rels: Sequence[str]) -> list[str]:
    """The files among `rels` (repo-relative, folders included) that git tracks or has
    staged, in one `git ls-files` call."""
    if not rels or (not (root / ".git").exists() and _git(root, "rev-parse") is None):
        return []
    out = _git(root, "ls-files", "-z", "--full-name", "--", *(f":(literal){r}" for r in rels))
    if not out:
        return []
    return [p.decode(errors="surrogateescape") for p in out.split(b"\0") if p]


def head_and_index_pointers(root: Path) -> list[Pointer]:
    """The valid pointers of HEAD's tree and of the git index (staged)."""
    blobs: dict[str, None] = {}
    tree = _git(root, "ls-tree", "-r", "-z", "HEAD") or b""
    for line in tree.split(b"\0"):
        meta, _, path = line.partition(b"\t")
        if path.endswith(POINTER_SUFFIX.encode()) and len(meta.split()) == 3:
            blobs[meta.split()[2].decode()] = None
    index = _git(root, "ls-files", "--stage", "-z") or b""
    for line in index.split(b"\0"):
        meta, _, path = line.partition(b"\t")
        if path.endswith(POINTER_SUFFIX.encode()) and len(meta.split()) == 3:
            blobs[meta.split()[1].decode()] = None
    if not blobs:
        return []
    out = _git(root, "cat-file", "--batch", stdin="".join(b + "\n" for b in blobs).encode())
    pointers: list[Pointer] = []
    for blob_id, raw in iter_batch(out or b""):
        with contextlib.suppress(PointerFileError):  # conflicted or hand-edited: nothing to keep
            pointers.append(parse_pointer(raw, Path(f"git blob {blob_id}")))
    return pointers
