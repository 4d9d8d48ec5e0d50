"""Pointer files in git history, for `merkl gc --all-commits`.

One `git rev-list --all --objects` lists every blob of every commit reachable from any ref
(branches, tags, stash) with its path; the `*.merkl` blobs, plus those staged in the index, are
then read in one `git cat-file --batch`. Two processes in all, however long the history.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

from merkl.errors import PointerFileError, TrackingError
from merkl.pointer import POINTER_SUFFIX, Pointer, parse_pointer
from merkl.tracking.gitindex import iter_batch


def iter_history_pointers(root: Path) -> tuple[list[Pointer], int]:
    """Every valid pointer in any commit or the git index, and how many blobs were unreadable."""
    blobs = dict.fromkeys(_pointer_blobs(root))
    pointers: list[Pointer] = []
    unreadable = 0
    for blob_id, raw in _read_blobs(root, list(blobs)):
        try:
            pointers.append(parse_pointer(raw, Path(f"git blob {blob_id}")))
        except PointerFileError:
            unreadable += 1  # an old, hand-edited or conflicted pointer: nothing to keep
    return pointers, unreadable


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=root, input=stdin, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise TrackingError(
            "--all-commits needs git, which is not installed; install git or drop the option"
        ) from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise TrackingError(
            f"--all-commits: `git {args[0]}` failed in {str(root)!r}: "
            f"{message[-1] if message else 'no message'}; is this a git repository?",
            path=root,
        )
    return proc.stdout


def _pointer_blobs(root: Path) -> Iterator[str]:
    if _git(root, "rev-parse", "--is-inside-work-tree").strip() != b"true":
        raise TrackingError(f"--all-commits: {str(root)!r} is not in a git work tree")
    has_commits = (
        subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "HEAD"],
            cwd=root,
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if has_commits or _git(root, "for-each-ref", "--count=1").strip():
        for line in _git(root, "rev-list", "--all", "--objects").splitlines():
            blob_id, _, path = line.partition(b" ")
            if path.endswith(POINTER_SUFFIX.encode()):
                yield blob_id.decode()
    for line in _git(root, "ls-files", "--stage", "-z").split(b"\0"):
        meta, _, path = line.partition(b"\t")
        if path.endswith(POINTER_SUFFIX.encode()):
            yield meta.split()[1].decode()


def _read_blobs(root: Path, blob_ids: list[str]) -> Iterator[tuple[str, bytes]]:
    if not blob_ids:
        return
    yield from iter_batch(
        _git(root, "cat-file", "--batch", stdin="".join(b + "\n" for b in blob_ids).encode())
    )
