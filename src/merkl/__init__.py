"""merkl: track large ML files in git and run cached, Merkle-hashed pipelines in pure Python.

```python
from merkl import task

@task
def double(x):
    return 2 * x

double(21).hash   # known before anything runs
double(21).get()  # 42, computed once, then read from the cache
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from merkl.cache import CACHE_OPEN_HOOKS
from merkl.observers import EVALUATION_HOOKS, RUN_HOOKS

if TYPE_CHECKING:
    from merkl.cache import Cache, CachePolicy
    from merkl.deps import CodeHashMode
    from merkl.errors import MerklError
    from merkl.evaluation import evaluate
    from merkl.files import FileOutput, FileRef, load, path, read_file, write_file
    from merkl.hashing import register_encoder
    from merkl.observers import EvaluationWatcher
    from merkl.placeholder import Lazy, MissingArgument, Placeholder
    from merkl.repo import Repo
    from merkl.serializers import (
        BytesSerializer,
        JsonSerializer,
        NumpySerializer,
        PickleSerializer,
        Serializer,
    )
    from merkl.session import Session
    from merkl.tasks import Task, task

# Exported name -> the module defining it. Imported on first use, so that `merkl status` does
# not pay for the pipeline engine at start-up (PEP 562).
_EXPORTS = {
    "CachePolicy": "merkl.cache",
    "CodeHashMode": "merkl.deps",
    "MerklError": "merkl.errors",
    "evaluate": "merkl.evaluation",
    "FileOutput": "merkl.files",
    "FileRef": "merkl.files",
    "load": "merkl.files",
    "path": "merkl.files",
    "read_file": "merkl.files",
    "write_file": "merkl.files",
    "register_encoder": "merkl.hashing",
    "Lazy": "merkl.placeholder",
    "MissingArgument": "merkl.placeholder",
    "Placeholder": "merkl.placeholder",
    "BytesSerializer": "merkl.serializers",
    "JsonSerializer": "merkl.serializers",
    "NumpySerializer": "merkl.serializers",
    "PickleSerializer": "merkl.serializers",
    "Serializer": "merkl.serializers",
    "Task": "merkl.tasks",
    "task": "merkl.tasks",
}

__version__ = "0.1.0"

__all__ = [
    "BytesSerializer",
    "CachePolicy",
    "CodeHashMode",
    "FileOutput",
    "FileRef",
    "JsonSerializer",
    "Lazy",
    "MerklError",
    "MissingArgument",
    "NumpySerializer",
    "PickleSerializer",
    "Placeholder",
    "Serializer",
    "Task",
    "evaluate",
    "load",
    "path",
    "read_file",
    "register_encoder",
    "task",
    "write_file",
]


def _install_read_through(repo: Repo, cache: Cache) -> None:
    """Remote read-through on a local cache miss, when a remote says `read_through = true`
    (and its shared leases with `lease = true`)."""
    from merkl.remotes.read_through import install_read_through

    install_read_through(repo, cache)


def _bound_cache(repo: Repo, cache: Cache) -> None:
    """With `[cache] max_size`/`max_age`, evict after library evaluations too (merkl commands
    evict after themselves); other repositories never import `merkl.ops.evict`."""
    table = repo.config.get("cache")
    if isinstance(table, dict) and ("max_size" in table or "max_age" in table):
        from merkl.ops.evict import evict_after_evaluation, watch_limits

        watch_limits(repo)
        if evict_after_evaluation not in RUN_HOOKS:
            RUN_HOOKS.append(evict_after_evaluation)


def _watch_lineage(
    targets: list[Lazy], session: Session, pipeline: str | None
) -> EvaluationWatcher | None:
    """At the first evaluation, hand over to `merkl.lineage`'s hook (which stays registered
    only while OpenLineage is configured), so that `import merkl` does not import it."""
    from merkl.lineage import watch_evaluation

    EVALUATION_HOOKS[:] = [hook for hook in EVALUATION_HOOKS if hook is not _watch_lineage]
    if watch_evaluation in EVALUATION_HOOKS:
        return None  # registered already (`merkl.lineage.reset()`): it watches this one too
    EVALUATION_HOOKS.append(watch_evaluation)
    return watch_evaluation(targets, session, pipeline)


# The package ties the layers together: the cache (below) is extended by the remotes (above),
# evaluations (below) are watched by lineage (above).
CACHE_OPEN_HOOKS.append(_install_read_through)
CACHE_OPEN_HOOKS.append(_bound_cache)
EVALUATION_HOOKS.append(_watch_lineage)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext merkl` in IPython or Jupyter: cached tasks in notebook cells."""
    from merkl.notebook import load_ipython_extension

    load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from merkl.notebook import unload_ipython_extension

    unload_ipython_extension(ipython)


def __getattr__(name: str) -> Any:
    """Exported names are imported on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'merkl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
