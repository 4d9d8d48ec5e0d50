"""Who a push's root belongs to, what it names, and `merkl gc --remote`.

A repository is a clone: a random id made on its first push and kept in `.merkl/repo-id` (two
clones of one project publish separate roots, so neither's gc drops what the other needs). The
branch is git's current branch (`HEAD` when detached, `-` outside git).
"""

from __future__ import annotations

import secrets
import subprocess

from merkl.remotes.base import Remote
from merkl.remotes.collect import RemoteGcResult, collect_remote
from merkl.remotes.config import get_remote
from merkl.remotes.roots import publish_root
from merkl.repo import Repo
from merkl.tracking import iter_pointer_oids
from merkl.tracking.worktree import iter_tracked

_ID_FILE = "repo-id"


def repo_id(repo: Repo) -> str:
    path = repo.dot_dir / _ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = secrets.token_hex(8)
        path.write_text(ident + "\n")
        return ident


def current_branch(repo: Repo) -> str:
    try:
        done = subprocess.run(
            ["git", "symbolic-ref", "--short", "-q", "HEAD"],
            cwd=repo.root,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "-"
    if done.returncode == 0:
        return done.stdout.strip()
    return "HEAD" if done.returncode == 1 else "-"


def root_contents(repo: Repo) -> tuple[list[str], list[str]]:
    """(objects of every tracked file, Merkle hashes of every pushable cached output)."""
    objects = [
        oid for item in iter_tracked(repo, None) for oid in iter_pointer_oids(repo, item.pointer)
    ]
    outputs = [e.out_hash for e in repo.index.iter_outputs() if e.pushable]
    return objects, outputs


def publish(repo: Repo, remote: Remote) -> str:
    """Publish this repository's root for its current branch on `remote`; returns its key."""
    objects, outputs = root_contents(repo)
    return publish_root(remote, repo_id(repo), current_branch(repo), objects, outputs)


#: The chain of `push --all-commits` roots: its own, so a plain push never supersedes it.
HISTORY = "(all commits)"


def history_objects(repo: Repo) -> list[str]:
    """The objects of every pointer in any commit of any ref, or staged (a directory's members
    only when its manifest is in the local store)."""
    from merkl.tracking.history import iter_history_pointers

    pointers, _unreadable = iter_history_pointers(repo.root)
    return list(dict.fromkeys(oid for p in pointers for oid in iter_pointer_oids(repo, p)))


def publish_history(repo: Repo, remote: Remote, objects: list[str]) -> str:
    """Publish the root naming the objects of every commit (`merkl push --all-commits`)."""
    return publish_root(remote, repo_id(repo), HISTORY, objects, [])


def gc_remote(
    repo: Repo, remote_name: str | None, *, grace: float, dry_run: bool = False
) -> RemoteGcResult:
    """Run `collect_remote` on a configured remote."""
    remote = get_remote(repo, remote_name)
    try:
        return collect_remote(remote, grace=grace, dry_run=dry_run)
    finally:
        remote.close()
