"""What git itself holds: files it tracks (merkl must not take them over) and the pointer files
of HEAD and the index (whose data `merkl gc` keeps).

Outside a git work tree, or without git installed, there is nothing to report: merkl works
without git.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from merkl.errors import PointerFileError
from merkl.pointer import POINTER_SUFFIX, Pointer, parse_pointer


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes | None:
    """git's output, or None when git is missing or fails (not a repository, no HEAD yet)."""
    import subprocess  # not at module level: `merkl track` outside git never needs it

    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, input=stdin, capture_output=True, check=False
        )
    except OSError:
        return None
    return proc.stdout if proc.returncode == 0 else None


def start_git_tracked(root: Path, rels: Sequence[str]) -> Callable[[], list[str]]:
    """Start `git ls-files` for `rels` (repo-relative, folders included) and return a function
    that waits for it and gives the files among them git tracks or has staged. It runs while
    the caller hashes; and none runs when git's index file cannot list any of them."""
    if not rels or not _index_may_list(root, rels):
        return list
    import subprocess

    args = ["git", "ls-files", "-z", "--", *(f":(literal){r}" for r in rels)]  # relative to root
    try:
        proc = subprocess.Popen(args, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return list  # git is not installed

    def collect() -> list[str]:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            return []
        return [p.decode(errors="surrogateescape") for p in out.split(b"\0") if p]

    return collect


def _index_may_list(root: Path, rels: Sequence[str]) -> bool:
    """False when git surely tracks none of `rels`: no git work tree, no index file yet, or an
    index (versions 2 and 3 store whole paths) that contains none of their names. A git
    process costs milliseconds; reading the index, microseconds per kilobyte."""
    for top in (root, *root.parents):
        dot_git = top / ".git"
        if dot_git.is_dir():
            break
        if dot_git.exists():
            return True  # a worktree or submodule: `.git` names the real folder; ask git
    else:
        return False
    try:
        with open(dot_git / "index", "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return False  # nothing committed or staged yet
    except OSError:
        return True
    if data[4:8] not in (b"\0\0\0\2", b"\0\0\0\3"):
        return True  # version 4 compresses paths: ask git
    prefix = root.relative_to(top).as_posix()
    names = [(f"{prefix}/{rel}" if prefix != "." else rel) for rel in rels]
    return any(os.fsencode(name) in data for name in names)


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


def iter_batch(out: bytes) -> Iterator[tuple[str, bytes]]:
    """(blob id, content) of each blob in `git cat-file --batch` output."""
    pos = 0
    while pos < len(out):
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        pos = header_end + 1
        if len(header) < 3 or header[1] != b"blob":
            continue  # "<id> missing": a shallow clone lacks it
        size = int(header[2])
        yield header[0].decode(), out[pos : pos + size]
        pos += size + 1
