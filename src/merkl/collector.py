"""Pausing Python's cyclic garbage collector around work that makes many long-lived objects."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused(collect_over: int | None = None) -> Iterator[None]:
    """The cyclic garbage collector off for the block (as it was before, after it).

    A large import such as `distributed` would set off ~130 collections, and a big DAG is
    millions of objects the collector would traverse again and again as they are made. With
    `collect_over`, one full collection follows when more objects than that were allocated:
    it moves them to the oldest generation at once, so later collections skip them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            if collect_over is not None and gc.get_count()[0] > collect_over:
                gc.collect()
