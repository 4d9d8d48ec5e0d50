"""Commands for tracked data: `track`, `untrack`, `status`, `checkout`, `gc`."""

from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from merkl.errors import TrackingError, UsageError
from merkl.progress import byte_progress
from merkl.repo import Repo
from merkl.units import human_size, parse_duration

if TYPE_CHECKING:
    from merkl.remotes.collect import RemoteGcResult

_LIST_LIMIT = 10


def track(*paths: str) -> str:
    """Track large files or folders: store them outside git, commit small pointers instead.

    Each PATH is hashed, moved into the local store (.merkl/objects) and linked back (a
    symlink unless [core] link in merkl.toml says hardlink, copy or reflink); PATH.merkl
    records its hash and PATH is added to .gitignore. Tracking again after a change updates
    the pointer. Commit the .merkl files and .gitignore; `merkl push` uploads the data.

    :param paths: files or folders inside the repository
    """
    from merkl.ops.evict import evict_if_configured
    from merkl.tracking.track import track as track_paths

    if not paths:
        raise UsageError("merkl track: give at least one PATH to track", exit_code=2)
    repo = Repo.find()
    with byte_progress("hashing", _total_size(paths)):
        items = track_paths(repo, paths)
    evict_if_configured(repo)
    lines = []
    for item in items:
        pointer = item.pointer
        what = f"{pointer.files} files, " if pointer.type == "dir" else ""
        verb = "tracked" if item.changed else "unchanged"
        lines.append(
            f"{verb:9} {item.rel} ({what}{human_size(pointer.size)}, blake3:{pointer.oid[:12]})"
        )
        if item.skipped_symlinks:
            shown = ", ".join(item.skipped_symlinks[:_LIST_LIMIT])
            lines.append(
                f"          skipped {len(item.skipped_symlinks)} symlink(s) pointing "
                f"outside {item.rel!r}: {shown}"
            )
    return "\n".join(lines)


def untrack(*paths: str) -> str:
    """Stop tracking files or folders; they stay in place as ordinary, writable files.

    Removes PATH.merkl and the .gitignore line; the stored copy stays until `merkl gc`.

    :param paths: tracked files or folders (or their .merkl pointers)
    """
    from merkl.ops.untrack import untrack as untrack_paths

    if not paths:
        raise UsageError("merkl untrack: give at least one PATH to untrack", exit_code=2)
    return "\n".join(f"untracked {rel}" for rel in untrack_paths(Repo.find(), paths))


def unprotect(*paths: str) -> str:
    """Make tracked files safe to edit: replace their links into the store by writable copies.

    They stay tracked; `merkl track` records an edit. Without this, an edit made through a
    link (as root, the store's read-only mode does not stop it) changes the stored object.

    :param paths: tracked files or folders (or their .merkl pointers)
    """
    from merkl.ops.unprotect import unprotect as unprotect_paths

    if not paths:
        raise UsageError("merkl unprotect: give at least one PATH to unprotect", exit_code=2)
    return "\n".join(f"unprotected {rel}" for rel in unprotect_paths(Repo.find(), paths))


def status(*paths: str, json: bool = False, remote: bool = False) -> str:
    """Show whether tracked files match their pointers.

    States: clean; modified (the file differs from its pointer); missing (not in the work
    tree, but in the store: `merkl checkout`); not in cache (the file matches but the store
    lacks it); pointer without data (`merkl pull`). Exits 0 whatever the states.

    :param paths: limit to these tracked files or folders (default: all); with --remote,
        the remote's name (default: the default remote, else every configured remote)
    :param json: print a JSON list instead of a table
    :param remote: compare with a remote instead, `merkl status --remote [NAME]`: which
        tracked files and cached outputs it lacks, and which it has that are not here
    """
    from merkl.ops.status import detail, hint, status_json, summary

    if remote:
        return _remote_status(paths)
    from merkl.ops.status import status as get_status

    repo = Repo.find()
    items = get_status(repo, paths or None)
    if json:
        import orjson

        return orjson.dumps(status_json(items), option=orjson.OPT_INDENT_2).decode()
    rows = [(i.state.value, i.tracked.rel, detail(i), hint(repo, i)) for i in items]
    _print_table(("state", "path", "details", "what to do"), rows)
    return summary(items)


def checkout(*paths: str, force: bool = False) -> str:
    """Restore tracked files from the local store (after `git checkout`, `git clone` + pull).

    A file that differs from its pointer is replaced only if its current content is in the
    store too (nothing is lost); otherwise it is left alone unless --force is given.

    :param paths: tracked files or folders to restore (default: all)
    :param force: overwrite modified files even though their content is not stored
    """
    from merkl.ops.checkout import checkout as checkout_paths

    result = checkout_paths(Repo.find(), paths or None, force=force)
    lines = [f"restored  {rel}" for rel in result.restored[:_LIST_LIMIT]]
    lines += [f"removed   {rel}" for rel in result.removed[:_LIST_LIMIT]]
    print("\n".join([*lines, _more(result.restored + result.removed, len(lines))]).strip())
    print(
        f"{len(result.restored)} restored, {len(result.removed)} removed, "
        f"{len(result.unchanged)} unchanged"
    )
    problems = []
    if result.modified:
        problems.append(f"{_names(result.modified)} modified, not overwritten (use --force)")
    if result.added:
        problems.append(f"{_names(result.added)} added, not removed (use --force)")
    if result.missing:
        problems.append(f"{_names(result.missing)} not in the local store (run `merkl pull`)")
    if problems:
        raise TrackingError("; ".join(problems))
    return ""


def gc(
    *,
    dry_run: bool = False,
    all_commits: bool = False,
    keep_days: float = math.inf,
    yes: bool = False,
    remote: str = "",
    grace: str = "24h",
) -> str:
    """Delete stored objects that nothing references, and report the space freed.

    Kept: objects of tracked files in the work tree, in HEAD and in the git index (with
    --all-commits: in any git commit), objects a work-tree file links to, objects of an
    unfinished (killed) track or checkout, and every cached task output (with --keep-days N:
    only outputs computed in the last N days; older ones are dropped from the cache). On a
    terminal, gc lists what it will delete and asks first. It waits for running merkl
    commands that add data (track, checkout, pull, run) to finish.

    :param dry_run: only list what would be deleted, with sizes and the space it frees
    :param all_commits: also keep data referenced by pointer files in any git commit
    :param keep_days: drop cached task outputs last computed more than this many days ago
        (inf keeps them all)
    :param yes: delete without asking, even on a terminal
    :param remote: collect on this remote instead: delete what no live root of any
        repository pushing to it needs; on S3 also repack packs more than max_unused
        (default 20%) dead (see docs/remotes.md)
    :param grace: with --remote: keep superseded roots, and keys nothing needs, this long
        (30m, 24h, 7d; 0 keeps only the newest root of each repository and branch)
    """
    from merkl.ops.gc import gc as collect

    if remote:
        return _gc_remote(remote, parse_duration(grace, "--grace"), dry_run=dry_run, yes=yes)

    if not keep_days >= 0:
        raise UsageError(f"--keep-days must be 0 or more, got {keep_days!r}", exit_code=2)
    repo = Repo.find()

    def waiting(holders: str) -> None:
        print(f"merkl gc: waiting for {holders} to finish", file=sys.stderr, flush=True)

    options = {
        "all_commits": all_commits,
        "keep_days": None if math.isinf(keep_days) else keep_days,
        "on_wait": waiting,
    }
    only = None
    if not (dry_run or yes) and sys.stdin.isatty() and sys.stdout.isatty():
        preview = collect(repo, dry_run=True, **options)  # type: ignore[arg-type]
        if not preview.removed:
            return f"nothing to delete; kept {preview.kept} object(s)"
        for oid, size in preview.removed[:_LIST_LIMIT]:
            print(f"will delete {oid[:16]}  {human_size(size)}")
        print(_more([oid for oid, _ in preview.removed], _LIST_LIMIT))
        question = (
            f"delete {len(preview.removed)} object(s), freeing {human_size(preview.freed)}? [y/N] "
        )
        if input(question).strip().lower() not in ("y", "yes"):
            return "nothing deleted"
        only = {oid for oid, _ in preview.removed}
    result = collect(repo, dry_run=dry_run, only=only, **options)  # type: ignore[arg-type]
    verb = "would remove" if dry_run else "removed"
    if dry_run:
        for oid, size in result.removed:
            print(f"{verb} {oid[:16]}  {human_size(size)}")
    lines = [
        f"{verb.capitalize()} {len(result.removed)} object(s), freeing "
        f"{human_size(result.freed)}; kept {result.kept}"
    ]
    if result.dropped_outputs:
        lines.append(
            f"{'would drop' if dry_run else 'dropped'} {len(result.dropped_outputs)} "
            f"cached task output(s) older than {keep_days:g} day(s)"
        )
    if result.stale_tmp_files:
        lines.append(f"{verb} {result.stale_tmp_files} stale temporary file(s)")
    if result.unreadable_history_pointers:
        lines.append(
            f"ignored {result.unreadable_history_pointers} unreadable pointer "
            f"file(s) in git history"
        )
    return "\n".join(lines)


def _remote_status(names: Sequence[str]) -> str:
    from merkl.ops.remote_status import remote_status
    from merkl.remotes.config import default_remote_name, remote_configs

    if len(names) > 1:
        raise UsageError(
            f"merkl status --remote takes one remote NAME at most, got {len(names)}: "
            f"{' '.join(names)}",
            exit_code=2,
        )
    repo = Repo.find()
    chosen = [name for name in names if name != "-"]  # `-`: the default, as before
    if not chosen:
        default = default_remote_name(repo)
        chosen = [default] if default else sorted(remote_configs(repo))
    if not chosen:
        raise UsageError(
            "merkl status --remote: no remote configured; add one with "
            "`merkl remote add NAME URL --default`"
        )
    lines = []
    for name in chosen:
        report = remote_status(repo, name)
        shown = [f"not pushed  {rel}" for rel in report.not_pushed[:_LIST_LIMIT]]
        shown += [f"not pulled  {rel}" for rel in report.not_pulled[:_LIST_LIMIT]]
        more = len(report.not_pushed) + len(report.not_pulled) - len(shown)
        if more > 0:
            shown.append(f"… and {more} more")
        shown.append(
            f"{report.remote}: lacks {len(report.not_pushed)} tracked file(s) and "
            f"{report.outputs_not_pushed} cached output(s) (`merkl push`); has "
            f"{len(report.not_pulled)} tracked file(s) and {report.outputs_not_pulled} cached "
            f"output(s) not here (`merkl pull`)"
        )
        for remote, count in sorted(report.outputs_on_remotes.items()):
            shown.append(
                f"{count} cached output(s) on remote {remote} only (stored there by workers)"
            )
        lines += shown
    return "\n".join(lines)


def _gc_remote(name: str, grace: float, *, dry_run: bool, yes: bool) -> str:
    from merkl.ops.roots import gc_remote

    repo = Repo.find()
    if not (dry_run or yes) and sys.stdin.isatty() and sys.stdout.isatty():
        preview = gc_remote(repo, name, grace=grace, dry_run=True)
        if not (preview.deleted or preview.dead_roots or preview.space.packs_deleted):
            return f"nothing to delete on remote {name!r}; kept {preview.kept} key(s)"
        question = f"{_remote_gc_what(preview, name, 'delete')}? [y/N] "
        if input(question).strip().lower() not in ("y", "yes"):
            return "nothing deleted"
    result = gc_remote(repo, name, grace=grace, dry_run=dry_run)
    if dry_run:
        sizes = result.space.sizes
        for key in result.deleted:
            print(f"would delete {key}  {human_size(sizes.get(key, 0))}")
        for key in result.dead_roots:
            print(f"would delete {key}  (superseded root)")
    what = _remote_gc_what(result, name, "would delete" if dry_run else "deleted")
    return (
        f"{what[0].upper()}{what[1:]}; kept {result.kept} key(s) named by {result.live_roots} "
        f"live root(s), {result.waiting} more inside the grace window"
    )


def _remote_gc_what(result: RemoteGcResult, name: str, verb: str) -> str:
    """`deleted 1204 key(s) (35.2 MB) and 3 superseded root(s) on remote 'origin'; repacked
    2 pack(s), copying 1.1 MB; freed 30.0 MB` (on S3 packs go whole, so the space freed is
    not the keys' bytes)."""
    space = result.space
    text = (
        f"{verb} {len(result.deleted)} key(s) ({human_size(sum(space.sizes.values()))}) and "
        f"{len(result.dead_roots)} superseded root(s) on remote {name!r}"
    )
    repack, free = {
        "delete": ("repack", "frees"),
        "would delete": ("would repack", "would free"),
        "deleted": ("repacked", "freed"),
    }[verb]
    if space.repacked:
        text += f"; {repack} {space.repacked} pack(s), copying {human_size(space.copied)}"
    return text + f"; {free} {human_size(max(space.freed, 0))}"


def _total_size(paths: Sequence[str]) -> int:
    """Bytes under `paths` (symlinks not followed): the length of `merkl track`'s bar."""
    total = 0
    for path in paths:
        for folder, _, files in os.walk(path):
            total += sum(_size(os.path.join(folder, name)) for name in files)
        total += _size(path) if not os.path.isdir(path) else 0
    return total


def _size(path: str) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _names(paths: list[str]) -> str:
    shown = ", ".join(repr(p) for p in paths[:3])
    return shown + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _more(paths: list[str], shown: int) -> str:
    return f"… and {len(paths) - shown} more" if len(paths) > shown else ""


def _print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """A rich table on a terminal; plain aligned columns when piped or in CI."""
    if not rows:
        return
    if sys.stdout.isatty() and os.environ.get("CI", "") in ("", "0", "false"):
        from rich.console import Console
        from rich.table import Table

        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip())
