"""Executors: where task bodies run. `local` (in-process, the default) and others by name."""

from __future__ import annotations

import importlib
from typing import Any

from merkl.errors import ExecutorError, UsageError
from merkl.executors.base import Executor

# name -> "module:Class"; imported on first use so `import merkl` stays light.
KNOWN_EXECUTORS: dict[str, str] = {
    "local": "merkl.executors.local:LocalExecutor",
    "threads": "merkl.executors.pool:ThreadsExecutor",
    "processes": "merkl.executors.pool:ProcessesExecutor",
    "dask": "merkl.executors.dask:DaskExecutor",
}


_local: Executor | None = None


def get_executor(spec: Executor | str | None = None, **options: Any) -> Executor:
    """An executor instance from an instance, a registered name, or None (local)."""
    if isinstance(spec, Executor):
        return spec
    if spec is None and not options:  # every `.get()`: the stateless local executor, once
        global _local
        if _local is None:
            _local = get_executor("local")
        return _local
    name = spec or "local"
    try:
        path = KNOWN_EXECUTORS[name]
    except KeyError:
        raise UsageError(
            f"unknown executor {name!r}; known: {', '.join(sorted(KNOWN_EXECUTORS))}"
        ) from None
    module_name, _, class_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise ExecutorError(f"executor {name!r} is not available: {exc}") from exc
    return cls(**options)  # type: ignore[no-any-return]
