"""`merkl cache size` and `merkl cache clear --task MODULE.FUNCTION`."""

from __future__ import annotations

from merkl.errors import UsageError
from merkl.repo import Repo
from merkl.units import human_size


def cache_size() -> str:
    """Report the space cached task outputs use, per task (largest first), and the limits."""
    from merkl.ops.evict import cache_limits

    repo = Repo.find()
    sizes = {e.out_hash: e.size for e in repo.index.iter_outputs()}
    rows = []
    for task, outs in repo.index.task_outputs().items():
        rows.append((sum(sizes.get(h, 0) for h in outs), len(outs), task))
    rows.sort(reverse=True)
    lines = [f"{human_size(size):>10}  {count:>7} output(s)  {task}" for size, count, task in rows]
    max_size, max_age = cache_limits(repo)
    limits = []
    if max_size is not None:
        limits.append(f"max_size {human_size(max_size)}")
    if max_age is not None:
        limits.append(f"max_age {max_age / 86400:g} day(s)")
    lines.append(
        f"{human_size(sum(sizes.values())):>10}  {len(sizes):>7} output(s)  total"
        + (f" ([cache] {', '.join(limits)})" if limits else "")
    )
    return "\n".join(lines)


def cache_clear(*, task: str = "") -> str:
    """Drop cached outputs: every output of one task (all argument sets).

    Outputs pinned by write_file(track=True) and objects of tracked files stay.

    :param task: MODULE.FUNCTION of the task, as `merkl cache size` lists it
    """
    from merkl.ops.evict import evict

    if not task:
        raise UsageError("merkl cache clear: give --task MODULE.FUNCTION", exit_code=2)
    repo = Repo.find()
    by_task = repo.index.task_outputs()
    if task not in by_task:
        known = ", ".join(sorted(by_task)[:5]) or "none"
        raise UsageError(
            f"--task {task!r}: no cached outputs of that task (tasks with outputs: {known})",
            exit_code=2,
        )
    result = evict(repo, only=by_task[task])
    if result.skipped:
        raise UsageError("another merkl command holds the repository; retry when it has finished")
    freed = human_size(result.freed)
    return f"dropped {len(result.dropped)} cached output(s) of {task}, freeing {freed}"
