"""`merkl status --remote NAME`: what a remote lacks, and what it has that is not here (DVC's
`status -c`): tracked files per file, cached outputs as counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from merkl.remotes.config import get_remote
from merkl.repo import Repo
from merkl.tracking import iter_pointer_oids
from merkl.tracking.worktree import iter_tracked


@dataclass
class RemoteStatus:
    remote: str  # the remote's label
    not_pushed: list[str] = field(default_factory=list)  # tracked paths the remote lacks
    not_pulled: list[str] = field(default_factory=list)  # tracked paths only the remote has
    outputs_not_pushed: int = 0  # pushable cached outputs the remote has no record of
    outputs_not_pulled: int = 0  # records on the remote this cache lacks
    # Outputs whose object only a remote holds (`merkl run --worker-remote`), by remote name.
    outputs_on_remotes: dict[str, int] = field(default_factory=dict)


def remote_status(repo: Repo, remote_name: str | None) -> RemoteStatus:
    """Compare the work tree's tracked files and the output cache with a remote.

    Raises:
        RemoteError: the remote cannot be reached or used.
    """
    remote = get_remote(repo, remote_name)
    try:
        report = RemoteStatus(remote.label)
        items = [(t.rel, list(iter_pointer_oids(repo, t.pointer))) for t in iter_tracked(repo)]
        has, _lacks = remote.status(oid for _, oids in items for oid in oids)
        local = repo.store.find_present(oid for _, oids in items for oid in oids)
        for rel, oids in items:
            if any(oid in local and oid not in has for oid in oids):
                report.not_pushed.append(rel)
            elif any(oid not in local and oid in has for oid in oids):
                report.not_pulled.append(rel)
        remote_outputs = set(remote.iter_output_hashes())
        entries = list(repo.index.iter_outputs())
        elsewhere = {e.out_hash for e in entries if e.remote and not repo.store.has(e.oid)}
        for entry in entries:
            if entry.out_hash in elsewhere:
                held = report.outputs_on_remotes
                held[entry.remote or ""] = held.get(entry.remote or "", 0) + 1
        report.outputs_not_pushed = sum(  # push sends only what this cache holds
            1
            for e in entries
            if e.pushable and e.out_hash not in remote_outputs and e.out_hash not in elsewhere
        )
        report.outputs_not_pulled = len(remote_outputs - {e.out_hash for e in entries})
        return report
    finally:
        remote.close()
