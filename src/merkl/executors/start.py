"""How local worker processes start: `forkserver` where the platform has it, else `spawn`;
never `fork`, which is unsafe in a process with threads.

A forkserver child is forked from a small server process (started once per process, with some
modules already imported) instead of starting a new interpreter, and it exits without
finalizing one: a pool of workers starts and stops in a fraction of the time. Each child still
receives this process's working directory and `sys.path` when it starts; the environment is
passed separately (the server's is from when it started).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context

# Imported in the server, so that forked workers need not: merkl's worker side for pools,
# and `distributed` with it for a LocalCluster (whichever executor starts the server first).
POOL_PRELOAD = ["merkl.executors.worker"]
DASK_PRELOAD = ["merkl.executors.dask_preload"]


def has_forkserver() -> bool:
    return "forkserver" in multiprocessing.get_all_start_methods()


def worker_context(preload: list[str]) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for worker processes."""
    if not has_forkserver():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)  # only used if this starts the server
    return context


def start_worker_server(preload: list[str]) -> None:
    """Start the forkserver now, without waiting for it: while it imports `preload`, this
    process goes on (importing the pipeline, planning, importing `distributed`), which on
    two cores hides most of the workers' start-up."""
    if has_forkserver():
        from multiprocessing import forkserver

        worker_context(preload)
        forkserver.ensure_running()
