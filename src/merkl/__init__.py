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
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from merkl.cache import CachePolicy
    from merkl.deps import CodeHashMode
    from merkl.errors import MerklError
    from merkl.evaluate import evaluate
    from merkl.files import FileOutput, FileRef, load, path, read_file, write_file
    from merkl.hashing import register_encoder
    from merkl.placeholder import Lazy, MissingArgument, Placeholder
    from merkl.serializers import (
        BytesSerializer,
        JsonSerializer,
        NumpySerializer,
        PickleSerializer,
        Serializer,
    )
    from merkl.task import Task, task

# Exported name -> the module defining it. Imported on first use, so that `merkl status` does
# not pay for the pipeline engine at start-up (PEP 562).
_EXPORTS = {
    "CachePolicy": "merkl.cache",
    "CodeHashMode": "merkl.deps",
    "MerklError": "merkl.errors",
    "evaluate": "merkl.evaluate",
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
    "Task": "merkl.task",
    "task": "merkl.task",
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


class _Package(types.ModuleType):
    """`merkl` with lazily imported exports.

    `merkl.task` and `merkl.evaluate` are both submodules and exported functions. Importing a
    submodule makes Python set it as an attribute of the package; this class keeps the exported
    function under those names instead (as the eager `from merkl.task import task` did), so
    `@merkl.task` works whichever module was imported first.
    """

    def __getattr__(self, name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'merkl' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        types.ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            self.__dict__.pop(name, None)  # the submodule, not the export: resolve lazily
            return
        super().__setattr__(name, value)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


sys.modules[__name__].__class__ = _Package
