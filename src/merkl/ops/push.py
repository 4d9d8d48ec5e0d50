"""`merkl push`: send tracked files and cached task outputs that a remote lacks.

Objects go first, then the output records that point at them, so a remote never holds a
record whose object is missing. Outputs cached with `CachePolicy.LOCAL` are never pushed.
Records are signed with the user's key when they have one (`merkl key generate`), so
repositories that trust that key accept them (`merkl.remotes.signing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from merkl.cache.index import OutputEntry
from merkl.errors import UsageError
from merkl.ops.roots import history_objects, publish, publish_history
from merkl.progress import Progress
from merkl.remotes.base import Remote
from merkl.remotes.config import configured_jobs, get_remote
from merkl.remotes.locks import PUSH, RemoteLock
from merkl.remotes.records import digest_of, object_key
from merkl.remotes.signing import Signer, load_signer
from merkl.remotes.transfer import TransferResult
from merkl.remotes.trust import trusted_keys
from merkl.repo import Repo
from merkl.tracking import iter_pointer_oids
from merkl.tracking.integrity import intact_objects
from merkl.tracking.worktree import Tracked, iter_tracked


@dataclass
class PushReport:
    remote: str  # the remote's label, secrets masked
    objects: TransferResult = field(default_factory=TransferResult)
    outputs: TransferResult = field(default_factory=TransferResult)
    signing: str = ""  # a note when records went out unsigned or signed by an untrusted key
    root: str = ""  # the key of the root published (`merkl.remotes.roots`)
    history_root: str = ""  # with all_commits: the root naming every commit's objects
    history_missing: int = 0  # objects of older commits neither here nor on the remote

    def summary(self) -> str:
        line = self.objects.summary("pushed", f"to {self.remote}")
        records = len(self.outputs.transferred)
        line += f"; {records} output record(s)" if records else ""
        if self.history_missing:
            line += (
                f"; {self.history_missing} object(s) of older commits are neither in the local "
                f"cache nor on the remote (not pushed)"
            )
        return line

    def raise_for_failures(self) -> None:
        merged = TransferResult(failed={**self.objects.failed, **self.outputs.failed})
        merged.transferred = self.objects.transferred
        merged.raise_for_failures("push to", self.remote)


def push(
    repo: Repo,
    remote_name: str | None = None,
    paths: Sequence[str | Path] | None = None,
    *,
    jobs: int | None = None,
    all_commits: bool = False,
) -> PushReport:
    """Push the objects of tracked files (all, or those `paths` name) and, when no paths are
    given, every pushable cached output; returns a report (raise its failures with
    `report.raise_for_failures()`).

    `all_commits`: also the objects of every tracked file in any git commit that the local
    cache holds, and publish a second root naming them all, so `gc --remote` keeps history.

    Raises:
        RemoteError: the remote cannot be reached or used; nothing was sent.
        TrackingError: a path is not tracked, PATHs with `all_commits`, or not a git work tree.
    """
    if all_commits and paths:
        raise UsageError("merkl push --all-commits pushes every tracked file; give no PATH")
    history = history_objects(repo) if all_commits else []
    items = list(iter_tracked(repo, paths or None))  # a bad path fails before any transfer
    entries = outputs_to_push(repo, items, every_output=not paths)
    signer = load_signer() if entries else None
    remote = get_remote(repo, remote_name)
    report = PushReport(remote.label, signing=_signing_note(repo, signer) if entries else "")
    lock = RemoteLock(remote, PUSH)
    try:
        if remote.supports_gc:
            remote.prepare(write=True)
            lock.acquire()  # shared: gc --remote (exclusive) never runs while this is half-done
        tracked = [oid for item in items for oid in iter_pointer_oids(repo, item.pointer)]
        changed = _changed_objects(repo, tracked)
        oids = [oid for oid in tracked if oid not in changed]
        oids += [entry.oid for entry in entries]
        if history:
            oids += _history_to_push(repo, remote, history, set(tracked), report)
        with Progress(f"push to {remote.name}", "objects") as progress:
            report.objects = remote.push(
                repo.store, oids, jobs=jobs or configured_jobs(remote), progress=progress
            )
        for oid in changed:
            report.objects.failed[object_key(oid)] = (
                "changed in place since it was stored (an edit through a link?); not pushed: "
                "`merkl status` says what to do"
            )
        failed = {digest_of(key) for key in report.objects.failed}
        report.outputs = remote.push_outputs(
            (e for e in entries if e.oid not in failed), signer=signer
        )
        # A root says "all this branch needs is here": only after a push without failures
        # (what a failed push sent waits out the grace window like any unneeded key).
        if remote.supports_gc and not (report.objects.failed or report.outputs.failed):
            lock.check()  # lost (this process paused too long): a gc may have run; no root
            report.root = publish(repo, remote)
            if all_commits:
                report.history_root = publish_history(repo, remote, history)
    finally:
        lock.release()
        remote.close()
    return report


def _history_to_push(
    repo: Repo, remote: Remote, history: list[str], tracked: set[str], report: PushReport
) -> list[str]:
    """The objects of older commits to send: those in the local cache (and intact). Those it
    lacks are no failure when the remote has them; the others are counted in the report."""
    older = [oid for oid in history if oid not in tracked]
    here = repo.store.find_present(older)
    absent = [oid for oid in older if oid not in here]
    if absent:
        held, _lacks = remote.status(absent)
        report.history_missing = len(absent) - len(held)
    intact = intact_objects(repo, here)
    return [oid for oid in older if oid in intact]


def _changed_objects(repo: Repo, oids: list[str]) -> set[str]:
    """Tracked objects present locally whose bytes no longer hash to their names: never
    pushed (cached outputs are checked as they are read)."""
    present = repo.store.find_present(oids)
    return present - intact_objects(repo, present)


def _signing_note(repo: Repo, signer: Signer | None) -> str:
    """Why readers of this repository may skip the records pushed (empty when they will not)."""
    keys = trusted_keys(repo)
    if signer is None:
        return (
            "output records were pushed unsigned; repositories that trust keys skip them "
            "(create a key with `merkl key generate`)"
            if keys
            else ""
        )
    if keys and not any(key.text == signer.public.text for key in keys.keys):
        return (
            f"your key {signer.public.text} is not in [trust] keys of merkl.toml; add it with "
            f"`merkl trust add` so others accept your records"
        )
    return ""


def outputs_to_push(repo: Repo, items: Iterable[Tracked], every_output: bool) -> list[OutputEntry]:
    """Pushable outputs whose object is in the local store: all of them, or those the selected
    pointers record (`write_file(..., track=True)`)."""
    if every_output:
        candidates: Iterable[OutputEntry] = repo.index.iter_outputs()
    else:
        found = (repo.index.find_output(i.pointer.output) for i in items if i.pointer.output)
        candidates = (entry for entry in found if entry is not None)
    pushable = [e for e in candidates if e.pushable]
    present = repo.store.find_present(e.oid for e in pushable)  # files and inline ones
    return [e for e in pushable if e.oid in present]
