"""The UI's only writes (with `merkl ui --allow-writes`): forget a cached output, pull one.

Both act on one output, named by its full hash, and each request must repeat that hash as its
confirmation (`app.py` checks it). Forgetting drops the output from the cache index (the object
stays until `merkl gc`), so the next run computes it again; pulling fetches its record and
object from the default remote, as `merkl pull` does for every output.
"""

from __future__ import annotations

from typing import Any

from merkl.errors import CacheError, UsageError
from merkl.ops.pull import PullReport, pull_outputs
from merkl.remotes.config import configured_jobs, get_remote
from merkl.repo import Repo


def forget_output(repo: Repo, out_hash: str) -> dict[str, Any]:
    """Raises: CacheError when the output is not in the cache index."""
    if repo.index.find_output(out_hash) is None:
        raise CacheError(f"output {out_hash[:16]} is not in the cache: nothing to forget")
    repo.index.remove_outputs([out_hash])
    return {"forgot": out_hash}


def pull_output(repo: Repo, out_hash: str) -> dict[str, Any]:
    """Fetch one output from the default remote.

    Raises:
        UsageError: no default remote, or the remote does not hold the output.
        RemoteError: the remote cannot be reached.
    """
    remote = get_remote(repo)
    try:
        report = PullReport(remote.label)
        trusted = bool(remote.options.get("trust_pickle", False))
        arrived = pull_outputs(repo, remote, [out_hash], report, trusted, configured_jobs(remote))
        report.raise_for_failures()
    finally:
        remote.close()
    if not arrived and repo.index.find_output(out_hash) is None:
        reason = (
            "it is pickled and the remote is not trusted"
            if report.untrusted
            else ("the remote does not hold it")
        )
        raise UsageError(f"output {out_hash[:16]} not pulled from {remote.label}: {reason}")
    return {"pulled": out_hash, "remote": remote.name, "summary": report.summary()}
