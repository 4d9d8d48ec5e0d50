"""Roots: what each repository and branch needs a remote to keep.

Every `merkl push` publishes a root `roots/<repo>/<branch>/<time>-<digest>`: JSON naming the
repository (a random id kept in `.merkl/repo-id`), the git branch, the time, the objects of its
tracked files and the Merkle hashes of its pushable cached outputs. The key ends in the hash of
the body, so a damaged or altered root is detected, and gc then stops rather than guess. A newer
root of the same repository and branch supersedes the older; the older stays live for the grace
window (`merkl.remotes.collect`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from merkl.hashing import hash_bytes
from merkl.remotes.base import Remote

ROOTS = "roots"
ROOT_FORMAT = 1


@dataclass(frozen=True)
class Root:
    key: str
    repo: str
    branch: str
    created: float
    objects: frozenset[str]
    outputs: frozenset[str]


def branch_token(branch: str) -> str:
    """A key-safe name for a branch (branch names hold `/`)."""
    return hash_bytes(branch.encode())[:16]


def publish_root(
    remote: Remote, repo_id: str, branch: str, objects: Iterable[str], outputs: Iterable[str]
) -> str:
    """Store a root for this repository and branch; returns its key."""
    created = time.time()
    body = orjson.dumps(
        {
            "format": ROOT_FORMAT,
            "repo": repo_id,
            "branch": branch,
            "created": created,
            "objects": sorted(set(objects)),
            "outputs": sorted(set(outputs)),
        }
    )
    key = f"{ROOTS}/{repo_id}/{branch_token(branch)}/{int(created * 1e6):020d}-{hash_bytes(body)}"
    remote.put([(key, body)])
    return key


def read_roots(remote: Remote) -> list[Root]:
    """Every root on the remote.

    Raises:
        RemoteError: a root is unreadable or does not match its hash (gc must not guess).
    """
    roots = []
    for key in sorted(remote.list(ROOTS + "/")):
        data = remote.read_small(key)
        if data is None:  # removed by a gc that finished while we listed
            continue
        digest = key.rsplit("-", 1)[-1]
        if hash_bytes(data) != digest:
            raise remote.error(
                f"root {key} does not match its hash",
                hint="delete that key by hand if it is damaged; gc deleted nothing",
            )
        body = orjson.loads(data)
        roots.append(
            Root(
                key=key,
                repo=str(body["repo"]),
                branch=str(body["branch"]),
                created=float(body["created"]),
                objects=frozenset(body["objects"]),
                outputs=frozenset(body["outputs"]),
            )
        )
    return roots


def live_roots(roots: Iterable[Root], now: float, grace: float) -> tuple[list[Root], list[Root]]:
    """(live, superseded-and-expired): per repository and branch the newest root is live, and
    an older one while its successor is younger than `grace` seconds."""
    chains: dict[tuple[str, str], list[Root]] = {}
    for root in roots:
        chains.setdefault((root.repo, root.branch), []).append(root)
    live: list[Root] = []
    dead: list[Root] = []
    for chain in chains.values():
        chain.sort(key=lambda r: (r.created, r.key))
        live.append(chain[-1])
        for older, newer in itertools.pairwise(chain):
            (live if now - newer.created < grace else dead).append(older)
    return live, dead
