"""Tracked files and directories: manifests, links into the store, work-tree state.

`iter_pointer_oids` is what remotes use to know which objects a pointer needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from merkl.pointer import Pointer
    from merkl.repo import Repo

__all__ = ["iter_pointer_oids"]


def iter_pointer_oids(repo: Repo, pointer: Pointer) -> Iterator[str]:
    """Every object `pointer` needs: its own oid, then for a directory each member's oid.

    A directory's own oid is its manifest. The manifest is read from the local store only after
    its oid has been yielded, so a caller that fetches each oid as it comes (`pull`) gets the
    members listed too. If the manifest is still not in the store, only its oid is yielded.
    Each oid is yielded once.
    """
    from merkl.tracking.manifest import find_manifest, iter_manifest_oids

    yield pointer.oid
    if pointer.type != "dir":
        return
    manifest = find_manifest(repo, pointer.oid)
    if manifest is None:
        return
    for oid in iter_manifest_oids(manifest):
        if oid != pointer.oid:
            yield oid
