"""What runs inside a worker process: find a task by reference and run its body there.

Tasks travel to other processes as a `TaskRef` (module, qualified name, code hash), never as
pickled code: `@task` puts the `Task` where the plain function was, so pickle cannot find the
function by name, and a reference keeps what runs tied to the hash that names its result. A
long-lived worker (a Dask cluster) that still holds an older version of the module re-imports
it; if its code still differs, the worker refuses to run rather than let a result be cached
under a hash its code did not produce.

Workers send values back; the parent process stores them (see `docs/executors.md`).
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from merkl.errors import ExecutorError
from merkl.executors.base import as_stored, split_result, timed_call
from merkl.placeholder import Lazy
from merkl.tasks import Task, iter_lazy, substitute


@dataclass(frozen=True)
class TaskRef:
    """How a worker finds a task: import `module` (from `import_root` if it exists there)."""

    module: str
    qualname: str
    code_hash: str
    import_root: str | None


def task_ref(task: Task) -> TaskRef:
    """A reference to `task` that another process can import; checked here, in the parent."""
    if "<locals>" in task.name:
        raise ExecutorError(
            f"task {task.module}.{task.name} is defined inside a function, so worker processes "
            f"cannot import it; define it at the top level of a module, or use the 'local' or "
            f"'threads' executor"
        )
    module = sys.modules.get(task.fn.__module__)
    if getattr(module, "__file__", None) is None:
        raise ExecutorError(
            f"task {task.name} is defined in {task.fn.__module__!r}, which has no source file "
            f"(a notebook or an interactive session), so worker processes cannot import it; "
            f"move it into a module, or use the 'local' or 'threads' executor"
        )
    return TaskRef(task.module, task.name, task.code_hash, _import_root(module, task.module))


def _import_root(module: Any, name: str) -> str | None:
    """The folder `name` is importable from: /x for module a.b in /x/a/b.py."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    folder = Path(file).resolve().parent
    levels = name.count(".") + (1 if Path(file).stem == "__init__" else 0)
    for _ in range(levels):
        folder = folder.parent
    return str(folder)


# Per worker process: references already resolved and checked.
_resolved: dict[TaskRef, Task] = {}


def resolve_task(ref: TaskRef) -> Task:
    """The task `ref` names, with exactly the code the parent hashed."""
    task = _resolved.get(ref)
    if task is None:
        task = _resolved[ref] = _load_checked(ref)
    return task


def _load_checked(ref: TaskRef) -> Task:
    if ref.import_root and Path(ref.import_root).is_dir() and ref.import_root not in sys.path:
        sys.path.insert(0, ref.import_root)
    task = _lookup(ref)
    if task.code_hash == ref.code_hash:
        return task
    # Stale modules from an earlier run (the source was edited since): import them afresh.
    _forget_project_modules(ref)
    if ref.import_root in sys.path:
        sys.path.remove(ref.import_root)
        sys.path.insert(0, ref.import_root)
    task = _lookup(ref)
    if task.code_hash != ref.code_hash:
        raise ExecutorError(
            f"worker on {socket.gethostname()} has different code for task "
            f"{ref.module}.{ref.qualname} (code hash {task.code_hash[:12]}, expected "
            f"{ref.code_hash[:12]}); start the workers with the same version of the project "
            f"on their sys.path"
        )
    return task


def _lookup(ref: TaskRef) -> Task:
    importlib.invalidate_caches()
    try:
        target: Any = importlib.import_module(ref.module)
    except ImportError as exc:
        raise ExecutorError(
            f"worker on {socket.gethostname()} cannot import module {ref.module!r} of task "
            f"{ref.qualname} ({exc}); workers need the pipeline's modules on their sys.path: "
            f"start them in the project folder or install the project there"
        ) from exc
    for part in ref.qualname.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, Task):
        raise ExecutorError(
            f"module {ref.module!r} in the worker has no task {ref.qualname!r} (found "
            f"{target!r}); the workers see a different version of the project"
        )
    return target


def _forget_project_modules(ref: TaskRef) -> None:
    """Drop the task's module and the project's other modules (under its import root), but
    never installed packages or merkl itself: those cannot be re-imported safely."""
    root = Path(ref.import_root).resolve() if ref.import_root else None
    installed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    for name, module in list(sys.modules.items()):
        if name == "merkl" or name.startswith("merkl."):
            continue
        file = getattr(module, "__file__", None)
        path = Path(file).resolve() if file else None
        is_project = path is not None and root is not None and path.is_relative_to(root)
        if path is not None and any(path.is_relative_to(p) for p in installed):
            is_project = False
        if name == ref.module or is_project:
            del sys.modules[name]


def adopt_environment(environ: dict[str, str]) -> None:
    """Worker initializer: the environment of the process that started the run (a forkserver
    child would otherwise see the server's, from when the server started)."""
    os.environ.clear()
    os.environ.update(environ)


def run_task(ref: TaskRef, args: list[Any], kwargs: dict[str, Any], label: str) -> Any:
    """Process-pool job: the raw result of one task body and its duration."""
    return timed_call(resolve_task(ref).fn, args, kwargs, label)


class DepSlot(Lazy):
    """Stands for a dependency's value in arguments sent to a Dask worker: output `index` of
    the call result at `position` among the job's extra arguments (None: the whole value; a
    Merkle hash: that output of a chunk, `merkl.executors.worker_remote`)."""

    __slots__ = ("index", "position")

    def __init__(self, position: int, index: int | str | None) -> None:
        self.position = position
        self.index = index

    @property
    def hash(self) -> None:
        return None


@dataclass(frozen=True)
class CallSpec:
    """Everything a Dask worker needs to run one call, besides its dependencies' values."""

    ref: TaskRef
    n_outs: int
    args: list[Any]
    kwargs: dict[str, Any]
    label: str


def run_call(spec: CallSpec, *deps: Any) -> tuple[tuple[Any, ...], float]:
    """Dask job: one call's outputs (as a cache hit would return them, with or without a
    cache, exactly as with the in-process executor) and its duration."""
    task = resolve_task(spec.ref)
    slots: dict[Lazy, Any] = {}
    for slot in iter_lazy((spec.args, spec.kwargs)):
        assert isinstance(slot, DepSlot)
        value = deps[slot.position]
        slots[slot] = value if slot.index is None else value[0][slot.index]
    args, kwargs = substitute((spec.args, spec.kwargs), slots)
    result, duration = timed_call(task.fn, args, kwargs, spec.label)
    outputs = split_result(task, spec.n_outs, result)
    return tuple(as_stored(task, i, value) for i, value in enumerate(outputs)), duration
