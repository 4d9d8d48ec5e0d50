"""Imported by the worker forkserver (see `merkl.executors.start`) when a Dask LocalCluster
starts it, before it forks any worker; not meant to be imported anywhere else.

It imports what every Dask worker needs with the cyclic garbage collector paused (the imports
would set off ~130 collections that free next to nothing), fills the caches each worker would
otherwise fill when it registers with the scheduler (package versions, platform facts), and
then freezes everything imported: forked workers never scan those objects in their own
collections, nor copy the memory pages that hold them by touching them (the use `gc.freeze`
is documented for).
"""

from __future__ import annotations

import gc


def _preload() -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        import distributed.versions

        import merkl.executors.worker  # noqa: F401

        distributed.versions.get_versions()
    finally:
        if was_enabled:
            gc.enable()
    gc.freeze()


_preload()
