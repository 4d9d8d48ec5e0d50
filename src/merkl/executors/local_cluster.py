"""A Dask `LocalCluster` for one run, started and stopped as fast as the machine allows.

Workers start with `forkserver` rather than Dask's default `spawn` (where the platform has it
and the user has not configured a method; see `merkl.executors.start`): forked from a server
process that has already imported `distributed`, they skip starting an interpreter, and they
exit without finalizing one, which is most of a spawned cluster's shutdown time. The server
outlives the run, so later clusters in the same process start in a fraction of a second.

The cluster lives for one run and nobody watches its dashboard, so its background chores are
turned down (`_QUIET`): Dask's defaults (a 10 ms statistical profiler in every worker, event
loop health ticks every 20 ms, memory checks every 100 ms) cost CPU-bound task bodies 6-11%
of their speed when the workers fill every core (measured in `docs/executors.md`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from merkl.executors.start import DASK_PRELOAD, has_forkserver, start_worker_server

if TYPE_CHECKING:
    import distributed

_START_METHOD = "distributed.worker.multiprocessing-method"

# Config for a cluster merkl starts and stops itself; a cluster given by address is untouched.
_QUIET = {
    "distributed.worker.profile.enabled": False,  # feeds only the dashboard's profile page
    "distributed.admin.tick.interval": "1s",  # event loop health: logs warnings, silenced here
    "distributed.admin.system-monitor.interval": "2s",  # dashboard and heartbeat statistics
    # Pause/spill/terminate checks: a worker that outgrows its memory is still stopped.
    "distributed.worker.memory.monitor-interval": "500ms",
}


def start_method() -> str:
    """The start method for local Dask workers: `forkserver` instead of the default `spawn`
    where the platform has it; a method the user configured is kept."""
    import dask

    configured = str(dask.config.get(_START_METHOD, default="spawn"))  # before distributed
    return "forkserver" if configured == "spawn" and has_forkserver() else configured


def warm_up() -> None:
    """Start what local workers fork from, while the run is being prepared."""
    start_worker_server(DASK_PRELOAD)


@contextlib.contextmanager
def local_client(workers: int) -> Iterator[distributed.Client]:
    """A client of a new cluster of `workers` single-threaded worker processes; both are shut
    down when the block ends."""
    import dask
    import distributed

    # The workers read this config in their own processes: it travels with them when they start.
    with dask.config.set({**_QUIET, _START_METHOD: start_method()}):
        cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # None would still bind the HTTP server to :8787
            worker_dashboard_address=None,
            silence_logs=logging.CRITICAL,  # a task failure is reported once, by merkl
            env=dict(os.environ),  # a forkserver child would see the server's environment
        )
    with cluster, distributed.Client(cluster, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        yield client
