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
