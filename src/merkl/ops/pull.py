"""`merkl pull`: fetch tracked files and cached task outputs from a remote.

Every object is re-hashed before it enters the store, so nothing corrupt is cached or checked
out. A tracked file is checked out only when all of its objects arrived. Output records are
added to the local index only after their objects are stored, and records of outputs whose
serializer is not safe to load from elsewhere (pickle, or one this process does not know) are
skipped unless the user trusts the remote (`--trust-pickle`, or `trust_pickle = true` in the
remote's config).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from os.path import abspath as os_abspath
from pathlib import Path
from typing import TYPE_CHECKING

from merkl.cache.index import OutputEntry
from merkl.cache.lock import shared_lock
from merkl.ops.checkout import CheckoutResult, checkout
from merkl.ops.evict import evict_if_configured
from merkl.progress import Progress
from merkl.remotes.base import Remote
from merkl.remotes.config import configured_jobs, get_remote
from merkl.remotes.records import digest_of
from merkl.remotes.transfer import TransferResult
from merkl.remotes.trust import RecordPolicy, record_policy
from merkl.repo import Repo
from merkl.tracking import iter_pointer_oids
from merkl.tracking.integrity import usable_objects
from merkl.tracking.manifest import find_manifest
from merkl.tracking.worktree import Tracked, iter_tracked

if TYPE_CHECKING:
    from merkl.files import FileRef, StoredOutput
    from merkl.placeholder import Lazy
    from merkl.session import Session


@dataclass
class PullReport:
    remote: str  # the remote's label, secrets masked
    objects: TransferResult = field(default_factory=TransferResult)
    outputs: int = 0  # output records added to the local index
    untrusted: int = 0  # records skipped: not signed by a trusted key
    pickled: int = 0  # records skipped: unsafe serializer and no opt-in
    invalid: dict[str, str] = field(default_factory=dict)  # record key → reason
    checkout: CheckoutResult | None = None

    def summary(self) -> str:
        line = self.objects.summary("pulled", f"from {self.remote}")
        if self.outputs:
            line += f"; {self.outputs} output record(s)"
        if self.checkout is not None and self.checkout.restored:
            line += f"; checked out {len(self.checkout.restored)} file(s)"
        kept = self.checkout.modified + self.checkout.added if self.checkout else []
        if kept:
            line += (
                f"; left {len(kept)} locally changed file(s) as they are ({kept[0]!r}…: "
                f"`merkl checkout --force` replaces them)"
            )
        if self.untrusted:
            line += f"; skipped {self.untrusted} untrusted output record(s) from {self.remote}"
        if self.pickled:
            line += (
                f"; skipped {self.pickled} pickled output(s) (not trusted: pass "
                f"--trust-pickle or set trust_pickle = true for this remote)"
            )
        return line

    def raise_for_failures(self) -> None:
        merged = TransferResult(failed={**self.objects.failed, **self.invalid})
        merged.transferred = self.objects.transferred
        merged.raise_for_failures("pull from", self.remote)


def pull(
    repo: Repo,
    remote_name: str | None = None,
    paths: Sequence[str | Path] | None = None,
    *,
    jobs: int | None = None,
    outputs: bool = True,
    trust_pickle: bool = False,
    force: bool = False,
) -> PullReport:
    """Fetch and check out tracked files (all, or those `paths` name) and, when no paths are
    given, every cached output the remote holds.

    Raises:
        RemoteError: the remote cannot be reached or used; nothing local was changed.
        TrackingError: a path is not tracked.
    """
    items = list(iter_tracked(repo, paths or None))
    remote = get_remote(repo, remote_name)
    report = PullReport(remote.label)
    jobs = jobs or configured_jobs(remote)
    with shared_lock(repo, "merkl pull"):
        done = _pull(repo, remote, items, report, jobs, outputs, trust_pickle, force, paths)
    evict_if_configured(repo)
    return done


def _pull(
    repo: Repo,
    remote: Remote,
    items: list[Tracked],
    report: PullReport,
    jobs: int | None,
    outputs: bool,
    trust_pickle: bool,
    force: bool,
    paths: Sequence[str | Path] | None,
) -> PullReport:
    try:
        # A bad [trust] fails before anything is transferred.
        policy = record_policy(repo, remote, trust_pickle) if outputs and not paths else None
        with Progress(f"pull from {remote.name}", "objects") as progress:
            _fetch_tracked(repo, remote, items, report, jobs, progress)
            if policy is not None:
                pull_outputs(repo, remote, None, report, policy, jobs, progress)
    finally:
        remote.close()
    _checkout_complete(repo, items, report, force)
    return report


def _fetch_tracked(
    repo: Repo,
    remote: Remote,
    items: Sequence[Tracked],
    report: PullReport,
    jobs: int | None,
    progress: Progress | None = None,
) -> None:
    """The objects of tracked files and folders. Manifests first: a folder's members are
    listed in its manifest object. Then everything else at once, so one big file does not hold
    up the small ones."""
    manifests = [i.pointer.oid for i in items if i.pointer.type == "dir"]
    report.objects.merge(remote.pull(repo.store, manifests, jobs=jobs, progress=progress))
    usable_objects(repo, _uses(repo, items))  # re-homes edited ones: the pull fetches them
    oids = [o for i in items for o in iter_pointer_oids(repo, i.pointer)]
    report.objects.merge(remote.pull(repo.store, oids, jobs=jobs, progress=progress))


def _uses(repo: Repo, items: Sequence[Tracked]) -> Iterable[tuple[str, Path]]:
    """(oid, work-tree path meant to hold it) for every tracked file and folder member."""
    for item in items:
        if item.pointer.type != "dir":
            yield item.pointer.oid, item.data_path
            continue
        manifest = find_manifest(repo, item.pointer.oid)
        for entry in manifest.entries if manifest is not None else ():
            yield entry.oid, item.data_path / entry.path


def _checkout_complete(
    repo: Repo, items: Sequence[Tracked], report: PullReport, force: bool = False
) -> None:
    """Check out the items whose objects are all in the store now."""
    complete = [
        i for i in items if all(repo.store.has(o) for o in iter_pointer_oids(repo, i.pointer))
    ]
    if not complete:
        return
    result = checkout(repo, [i.pointer_file for i in complete], force=force)
    if report.checkout is None:
        report.checkout = result
    else:
        report.checkout.restored += result.restored
        report.checkout.modified += result.modified
        report.checkout.added += result.added


def pull_outputs(
    repo: Repo,
    remote: Remote,
    out_hashes: Iterable[str] | None,
    report: PullReport,
    policy: RecordPolicy,
    jobs: int | None,
    progress: Progress | None = None,
) -> list[OutputEntry]:
    """Fetch the records of `out_hashes` (None: every record on the remote) that the local
    cache lacks, then their objects; index those the policy accepts and whose object came
    from this remote and hashed right. Returns the indexed entries."""
    if out_hashes is None:
        out_hashes = remote.iter_output_hashes()
    wanted = [h for h in dict.fromkeys(out_hashes) if not _is_cached(repo, h)]
    if not wanted:
        return []
    records, invalid = remote.fetch_outputs(wanted, repo.tmp_dir)
    report.invalid.update(invalid)
    signed = policy.signed(records.values(), remote, repo.tmp_dir)
    report.untrusted += len(records) - len(signed)
    allowed = [r.entry for r in signed if policy.is_loadable(r)]
    report.pickled += len(signed) - len(allowed)
    held = {e.oid for e in allowed if repo.store.has(e.oid)}
    pulled = remote.pull(
        repo.store,
        [e.oid for e in allowed if e.oid not in held],
        jobs=jobs,
        progress=progress,
        inline=True,
    )
    report.objects.merge(pulled)
    verified = {digest_of(key) for key in pulled.transferred}
    verified |= remote.confirm(held, repo.tmp_dir, jobs=jobs) if held else set()
    arrived = [e for e in allowed if e.oid in verified]
    repo.index.add_outputs(arrived)
    report.outputs += len(arrived)
    return arrived


def _is_cached(repo: Repo, out_hash: str) -> bool:
    entry = repo.index.find_output(out_hash)
    return entry is not None and repo.store.has(entry.oid)


# -- `merkl run --pull`: exactly what a pipeline needs ---------------------------------------
def pull_tracked_arguments(repo: Repo, remote_name: str | None, args: Sequence[str]) -> None:
    """Before the pipeline is called: pull the tracked files its arguments name, so that
    `merkl.path(arg)` finds them (the seed's deploy step: `--model my_large_model.pickle`)."""
    named = [a.partition("=")[2] if a.startswith("--") else a for a in args]
    tracked = [a for a in named if a and _is_tracked_path(repo, a)]
    if not tracked:
        return
    report = pull(repo, remote_name, tracked, outputs=False)
    report.raise_for_failures()


def _is_tracked_path(repo: Repo, arg: str) -> bool:
    from merkl.pointer import POINTER_SUFFIX, pointer_path

    path = Path(arg)
    try:
        inside = repo.root in Path(os_abspath(path)).parents
    except (OSError, ValueError):
        return False
    candidate = path if path.name.endswith(POINTER_SUFFIX) else pointer_path(path)
    return inside and candidate.is_file()


def pull_for_pipeline(
    repo: Repo,
    remote_name: str | None,
    roots: Iterable[Lazy],
    *,
    trust_pickle: bool = False,
    jobs: int | None = None,
) -> PullReport:
    """Fetch the cached outputs a DAG needs, top down: an output found locally or on the
    remote stops the walk, so upstream results are fetched only if something must run."""
    from merkl.cache import CachePolicy
    from merkl.files import FileRef, StoredOutput
    from merkl.placeholder import Placeholder

    remote = get_remote(repo, remote_name)
    report = PullReport(remote.label)
    jobs = jobs or configured_jobs(remote)
    seen: set[Lazy] = set()
    frontier = list(roots)
    try:
        accept = record_policy(repo, remote, trust_pickle)
        while frontier:
            wanted: dict[str, Placeholder] = {}
            upstream: list[Lazy] = []
            stored: list[StoredOutput] = []
            inputs: list[FileRef] = []
            for node in frontier:
                if node in seen:
                    continue
                seen.add(node)
                if isinstance(node, StoredOutput):
                    stored.append(node)
                if isinstance(node, FileRef) and node.pointer_file and not node.path.exists():
                    inputs.append(node)  # a tracked input a task to run reads: not checked out
                if not isinstance(node, Placeholder):
                    continue
                policy = node.task.policy(node.index)
                out_hash = node.hash
                if out_hash is not None and node.find_cached(repo.cache) is not None:
                    continue
                if out_hash is not None and policy is CachePolicy.EVERYWHERE:
                    wanted[out_hash] = node
                else:
                    upstream.extend(node.call.deps)
            if stored:
                _pull_stored(repo, remote, stored, report, accept, jobs)
            if inputs:
                _pull_inputs(repo, remote, inputs, report, jobs)
            fetched = pull_outputs(repo, remote, wanted, report, accept, jobs)
            arrived = {entry.out_hash for entry in fetched}
            upstream += [d for h, n in wanted.items() if h not in arrived for d in n.call.deps]
            frontier = upstream
    finally:
        remote.close()
    return report


def _pull_inputs(
    repo: Repo, remote: Remote, inputs: Sequence[FileRef], report: PullReport, jobs: int | None
) -> None:
    """Tracked input files (`merkl.path`, `merkl.read_file`): fetch and check them out."""
    items = list(iter_tracked(repo, [i.pointer_file for i in inputs if i.pointer_file]))
    _fetch_tracked(repo, remote, items, report, jobs)
    _checkout_complete(repo, items, report)


def _pull_stored(
    repo: Repo,
    remote: Remote,
    stored: Sequence[StoredOutput],
    report: PullReport,
    policy: RecordPolicy,
    jobs: int | None,
) -> None:
    """Outputs loaded with `merkl.load(pointer)`: their record if pushed, else their object."""
    hashes = [s.pointer.output for s in stored if s.pointer.output]
    pull_outputs(repo, remote, hashes, report, policy, jobs)
    present, _absent = remote.status(s.pointer.oid for s in stored)  # absent: resolved locally
    report.objects.merge(remote.pull(repo.store, present, jobs=jobs))


def pull_for_run(
    repo: Repo, remote_name: str | None, roots: Sequence[Lazy], session: Session
) -> None:
    """`merkl run --pull`: fetch what the DAG needs, report on stderr, raise failures."""
    from merkl.files import FileOutput

    needed = [r.source if isinstance(r, FileOutput) else r for r in roots]
    report = pull_for_pipeline(repo, remote_name, needed, trust_pickle=session.trust_pickle)
    print(f"merkl: {report.summary()}", file=sys.stderr)
    report.raise_for_failures()
