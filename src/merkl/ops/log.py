"""`merkl log`: the outputs computed in this repository, newest first, from the run log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merkl.cache.index import RunRecord
from merkl.errors import UsageError
from merkl.provenance.history import RunLog
from merkl.provenance.text import HASH_CHARS, local_time, table_text
from merkl.repo import Repo
from merkl.units import human_size

HASH_SHOWN = 2 * HASH_CHARS


@dataclass
class LogEntry:
    run: RunRecord
    label: str  # module.task, with [i] for one of several outputs
    cached: bool

    def to_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "output": run.out_hash,
            "task": run.task,
            "module": run.module,
            "index": run.out_index,
            "time": run.time,
            "duration": run.duration,
            "size": run.size,
            "code_hash": run.code_hash,
            "cached": self.cached,
        }


def log(repo: Repo, *, limit: int = 20, task: str | None = None) -> list[LogEntry]:
    """The `limit` most recent computed outputs, of `task` (`name` or `module.name`) if given.

    Raises:
        UsageError: a limit below 1, or a `task` that never ran here.
    """
    if limit < 1:
        raise UsageError(f"--limit must be 1 or more, got {limit!r}", exit_code=2)
    history = RunLog(repo)
    runs = repo.index.iter_runs() if task else repo.index.iter_runs(limit=limit)
    entries: list[LogEntry] = []
    for run in runs:
        if task and task not in (run.task, f"{run.module}.{run.task}"):
            continue
        entries.append(LogEntry(run, history.label(run), history.is_cached(run.out_hash)))
        if len(entries) == limit:
            break
    if task and not entries:
        known = sorted({f"{run.module}.{run.task}" for run in repo.index.iter_runs()})
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        raise UsageError(
            f"no task {task!r} in the run log of {repo.root}; "
            + (f"tasks that ran: {shown}" if known else "no task has run here yet")
        )
    return entries


def render_log(entries: list[LogEntry], *, color: bool = False) -> str:
    """A table: time, task, duration, size, cached, output hash."""
    if not entries:
        return "no outputs computed yet: `merkl run module.function` computes and logs them\n"
    header = ("TIME", "TASK", "DURATION", "SIZE", "CACHED", "OUTPUT")
    rows = [
        (
            local_time(e.run.time),
            e.label,
            f"{e.run.duration:.3f}s",
            human_size(e.run.size),
            "yes" if e.cached else "no",
            e.run.out_hash[:HASH_SHOWN],
        )
        for e in entries
    ]
    return table_text(header, rows, color=color)
