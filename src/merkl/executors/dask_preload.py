"""Imported by the worker forkserver (see `merkl.executors.start`) when a Dask LocalCluster
starts it, before it forks any worker; not meant to be imported anywhere else.

It imports what every Dask worker needs with the cyclic garbage collector paused, fills the
caches each worker would otherwise fill when it registers with the scheduler (package
versions, platform facts: ~10 ms a worker), and then freezes everything imported: forked
workers never scan those objects in their own collections, nor copy the memory pages that hold
them by touching them (the use `gc.freeze` is documented for).
"""

from __future__ import annotations

import gc

from merkl.collector import gc_paused


def _preload() -> None:
    with gc_paused():
        import distributed.versions

        import merkl.executors.worker  # noqa: F401

        distributed.versions.get_versions()
    gc.freeze()


_preload()
