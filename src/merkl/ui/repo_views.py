"""The data behind `/runs`, `/files` and the overview, as plain JSON-ready dicts.

Each function reads the repository afresh (the run log, pointer files, remote settings), so a
page reloaded while `merkl run` goes on shows what it has done so far. These dicts are what the
`/api/…` twins return and what the HTML pages render.
"""

from __future__ import annotations

import os
import time
from typing import Any

from merkl.errors import MerklError
from merkl.ops.log import log as log_op
from merkl.ops.status import HINTS, detail, status, status_json
from merkl.pointer import POINTER_SUFFIX, iter_pointer_files
from merkl.provenance.history import RunLog
from merkl.remotes.config import default_remote_name, get_remote, remote_configs
from merkl.remotes.records import record_key
from merkl.remotes.urls import mask_url
from merkl.repo import Repo
from merkl.tracking.state import State

DEFAULT_RUNS = 200
MAX_RUNS = 10_000
_INDEX_FILES = ("index.sqlite", "index.sqlite-wal")


def runs_data(
    repo: Repo, *, task: str | None = None, since_hours: float | None = None, limit: int = 0
) -> dict[str, Any]:
    """The newest runs (of `task`, within `since_hours`), with totals for the page's header."""
    limit = min(limit or DEFAULT_RUNS, MAX_RUNS)
    entries = log_op(repo, limit=MAX_RUNS if since_hours else limit, task=task or None)
    if since_hours:
        oldest = time.time() - since_hours * 3600
        entries = [e for e in entries if e.run.time >= oldest][:limit]
    rows = [{**e.to_json(), "label": e.label} for e in entries]
    return {
        "task": task or "",
        "since_hours": since_hours,
        "limit": limit,
        "runs": rows,
        "tasks": sorted({f"{r.module}.{r.task}" for r in RunLog(repo).all_runs()}),
    }


def files_data(repo: Repo, *, check_remotes: bool = False) -> dict[str, Any]:
    """Tracked files and folders with their state; with `check_remotes`, which remotes hold
    each one's content (one `has` call per remote)."""
    items = status(repo)
    rows = status_json(items)
    for row, item in zip(rows, items, strict=True):
        row["detail"] = detail(item)
        row["hint"] = HINTS[item.state]
        row["clean"] = item.state is State.CLEAN
    result: dict[str, Any] = {"files": rows, "remotes_checked": check_remotes, "problems": []}
    if check_remotes:
        holders, problems = _holders(repo, [i.tracked.pointer.oid for i in items], [])
        for row, item in zip(rows, items, strict=True):
            row["remotes"] = holders.get(item.tracked.pointer.oid, [])
        result["problems"] = problems
    return result


def remotes_data(repo: Repo) -> list[dict[str, Any]]:
    """The configured remotes: name, URL with secrets masked, whether it is the default."""
    try:
        configs = remote_configs(repo)
        default = default_remote_name(repo)
    except MerklError as exc:
        return [{"name": "?", "url": "", "default": False, "error": str(exc)}]
    return [
        {
            "name": name,
            "url": mask_url(config.url),
            "default": name == default,
            "options": {k: v for k, v in config.options.items() if isinstance(v, bool | int)},
        }
        for name, config in sorted(configs.items())
    ]


def output_remotes(repo: Repo, out_hash: str) -> dict[str, Any]:
    """Which configured remotes hold the record of output `out_hash`."""
    holders, problems = _holders(repo, [], [out_hash])
    return {"output": out_hash, "remotes": holders.get(out_hash, []), "problems": problems}


def _holders(
    repo: Repo, oids: list[str], out_hashes: list[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """{oid or output hash: names of the remotes holding it}, and one line per remote that
    could not be asked."""
    holders: dict[str, list[str]] = {}
    problems: list[str] = []
    try:
        names = sorted(remote_configs(repo))
    except MerklError as exc:
        return holders, [str(exc)]
    keys = {record_key(h): h for h in out_hashes}
    for name in names:
        try:
            remote = get_remote(repo, name)
            try:
                present, _ = remote.status(oids) if oids else (set(), set())
                records = remote.has(list(keys)) if keys else set()
            finally:
                remote.close()
        except MerklError as exc:
            problems.append(str(exc))
            continue
        for found in (*present, *(keys[k] for k in records)):
            holders.setdefault(found, []).append(name)
    return holders, problems


def overview_data(repo: Repo, pipelines: list[dict[str, Any]]) -> dict[str, Any]:
    """Pipelines, the ten newest runs, tracked files and remotes."""
    files = files_data(repo)["files"]
    counts: dict[str, int] = {}
    for row in files:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return {
        "root": str(repo.root),
        "pipelines": pipelines,
        "runs": runs_data(repo, limit=10)["runs"],
        "files": files,
        "file_states": counts,
        "remotes": remotes_data(repo),
    }


def fingerprint(repo: Repo) -> str:
    """Changes whenever the run log, the cache index or a pointer file changes: what the
    pages poll to know when to refresh."""
    parts = []
    for name in _INDEX_FILES:
        try:
            st = os.stat(repo.dot_dir / name)
        except FileNotFoundError:
            continue
        parts.append(f"{st.st_mtime_ns}:{st.st_size}")
    for pointer in iter_pointer_files(repo.root):
        try:
            st = os.stat(pointer)
        except FileNotFoundError:
            continue
        parts.append(f"{pointer}:{st.st_mtime_ns}")
        try:  # the data beside it: an edit makes it `modified`
            st = os.stat(str(pointer)[: -len(POINTER_SUFFIX)])
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except FileNotFoundError:
            parts.append("gone")
    return f"{len(parts)}-{hash(tuple(parts)) & 0xFFFFFFFF:08x}"
