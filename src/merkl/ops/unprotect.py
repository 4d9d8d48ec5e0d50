"""`merkl unprotect`: make tracked files safe to edit (DVC's verb).

Each link into the store is replaced by a private, writable copy of its content, so an edit
changes the copy and never the stored object (as root, or through a file opened before it
was tracked, an edit through a link would reach the object). The files stay tracked:
`merkl status` calls them clean until edited, and `merkl track` records an edit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from merkl.cache.lock import shared_lock
from merkl.cache.stat_cache import find_file_oids, record_file_oids
from merkl.repo import Repo
from merkl.tracking.links import copy_out
from merkl.tracking.tree import scan_dir
from merkl.tracking.worktree import iter_tracked


def unprotect(repo: Repo, paths: Iterable[str | Path]) -> list[str]:
    """Replace the links of the tracked items `paths` name by writable copies; returns their
    repo-relative paths.

    Raises:
        TrackingError: a path is not tracked.
        PointerFileError: a pointer file is invalid.
    """
    items = list(iter_tracked(repo, paths))
    with shared_lock(repo, "merkl unprotect"):
        for item in items:
            if item.is_dir:
                files = list(scan_dir(repo, item.data_path).files.values())
            else:
                files = [str(item.data_path)] if os.path.exists(item.data_path) else []
            oids = find_file_oids(files, repo)  # known through the links: no reading
            for file in files:
                copy_out(Path(file))
            record_file_oids(
                [(f, oid) for f, oid in zip(files, oids, strict=True) if oid is not None], repo
            )
    return [item.rel for item in items]
