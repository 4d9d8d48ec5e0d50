"""The cache: the object store (`store`), the SQLite index (`index`) and the facade over them
(`facade`: `Cache`, `CachePolicy`).

The facade is imported on first use (PEP 562): commands that only open the store and the index,
such as `merkl status`, do not pay for the serializers it brings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from merkl.cache.facade import Cache, CachePolicy, clear_memory_cache
    from merkl.repo import Repo

__all__ = ["Cache", "CachePolicy", "clear_memory_cache"]

# Called with (repo, cache) when a repository opens its cache. Higher layers extend the cache
# here without the repository knowing them: the package adds remote read-through.
CACHE_OPEN_HOOKS: list[Callable[[Repo, Cache], None]] = []


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("merkl.cache.facade"), name)
    raise AttributeError(f"module 'merkl.cache' has no attribute {name!r}")
