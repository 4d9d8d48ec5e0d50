"""`merkl verify`: check (and repair) the local cache."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import orjson

from merkl.errors import CacheError
from merkl.ops.verify import VerifyReport
from merkl.ops.verify import verify as verify_repo
from merkl.progress import Progress
from merkl.repo import Repo
from merkl.units import human_size

_SHOWN_PER_KIND = 20
_TITLES = {
    "corrupt-object": "corrupt object",
    "corrupt-output": "cached output with a corrupt object",
    "missing-object": "cached output with a missing object",
    "size-mismatch": "size mismatch",
    "wrong-file-state": "wrong stat-cache row",
    "invalid-pointer": "invalid pointer file",
    "index-corrupt": "damaged index",
    "unfinished-command": "unfinished command",
    "orphaned-object": "orphaned object",
    "on-remote": "remote-only cached output",
    "stale-file-state": "stale stat-cache row",
    "temp-file": "temporary file",
    "foreign-file": "foreign file",
}


def verify(*, repair: bool = False, json: bool = False) -> None:
    """Check the local cache: re-hash every object and check the index against the store.

    Reports corrupt objects, cached outputs whose object is missing or damaged, stat-cache rows
    that no longer match their files, unreadable pointer files and a damaged index (errors:
    exit status 1, or 0 when --repair repaired them all), and orphaned objects, stale rows and
    leftover temporary files (notices: exit status 0). Orphaned objects are never deleted
    here: `merkl gc` does that.

    :param repair: remove what is bad so it is recomputed or pulled again: corrupt objects
        (moved to .merkl/quarantine/, never deleted), index rows pointing at missing or
        corrupt objects, wrong or stale stat-cache rows, old temporary files; a damaged index
        is moved aside and recreated
    :param json: print the report as JSON instead of text
    """
    repo = Repo.find()
    with _progress() as advance:
        report = verify_repo(repo, repair=repair, progress=advance)
    if json:
        sys.stdout.write(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_report(report))
    if not report.ok:
        errors = [f for f in report.findings if f.is_error]
        fixed = sum(f.repaired for f in errors)
        if repair and fixed == len(errors):
            # Everything found was repaired: the cache is sound now (exit 0).
            print(f"merkl: repaired all {fixed} problem(s) in {repo.dot_dir}", file=sys.stderr)
            return
        hint = f", {fixed} repaired" if repair else "; run `merkl verify --repair` to fix"
        raise CacheError(f"verify found {len(errors)} problem(s) in {repo.dot_dir}{hint}")


def format_report(report: VerifyReport) -> str:
    """The report as text: problems one per line (20 per kind), notices as counts."""
    lines = [
        f"checked {report.objects} object(s) ({human_size(report.bytes)}), {report.outputs} "
        f"cached output(s), {report.file_states} stat-cache row(s), {report.pointers} "
        f"pointer file(s)"
    ]
    for kind, title in _TITLES.items():
        found = report.of_kind(kind)
        if not found:
            continue
        if found[0].is_error:
            for finding in found[:_SHOWN_PER_KIND]:
                mark = " [repaired]" if finding.repaired else ""
                lines.append(f"{title}: {finding.subject}: {finding.detail}{mark}")
            if len(found) > _SHOWN_PER_KIND:
                lines.append(f"{title}: … and {len(found) - _SHOWN_PER_KIND} more (see --json)")
        else:
            repaired = sum(f.repaired for f in found)
            suffix = f", {repaired} removed" if repaired else ""
            lines.append(
                f"{title}s: {len(found)}{suffix} (e.g. {found[0].subject}: {found[0].detail})"
            )
    lines.append("ok: no problems found" if report.ok else "problems found")
    return "".join(f"{line}\n" for line in lines)


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[int], None] | None]:
    """A byte count on a terminal; nothing when piped or in CI."""
    with Progress("verifying objects", "bytes") as progress:
        if not progress.enabled:
            yield None
            return
        progress.start(None)
        yield progress.advance
