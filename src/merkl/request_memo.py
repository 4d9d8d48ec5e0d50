"""Repeated pipeline requests without rebuilding the DAG (`merkl serve`, `merkl ui`).

Building a pipeline's DAG calls the pipeline function and hashes every node: about 0.3 s for
10,000 tasks, on every request. What comes out depends only on the code (the pipeline
function's, its tasks'), the arguments, and the files read while building it (file inputs,
pointer files). A `RequestMemo` keeps, per target and arguments, what its caller derived from
the built DAG (serve: the root outputs; ui: the built pipeline), with

- the stat snapshot (size, mtime, ctime, inode) of every file read while building, taken before
  reading it, and of the module files of the pipeline function and of every task in the DAG;
- the code hash of every task in the DAG (a notebook cell run since changes it);
- the pipeline function object itself (a module imported again makes a new one).

`get` hands the value back only while all of these still match; otherwise the caller builds the
DAG again, exactly as without the memo. A DAG with a folder input is not memoized (its snapshot
would have to cover every member). The pipeline function must be deterministic given the above:
one that reads other files with `open()`, the environment or the clock outside its tasks must
not be memoized (`MERKL_REQUEST_MEMO=0`, or `merkl serve --no-memo`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from merkl.cache import Cache, CachePolicy
from merkl.errors import CacheMissError, CorruptObjectError, MerklError
from merkl.graph import iter_nodes
from merkl.hashing import encode_value, hash_bytes
from merkl.placeholder import Lazy, Placeholder
from merkl.tasks import Task, iter_lazy, substitute

MEMO_ENV = "MERKL_REQUEST_MEMO"  # "0" turns every request memo of the process off
DEFAULT_MAX_ENTRIES = 1024

Fingerprint = tuple[int, int, int, int] | None  # size, mtime_ns, ctime_ns, inode; None: absent


def fingerprint(path: str) -> Fingerprint:
    """The stat snapshot of `path` (symlinks followed); None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def memo_enabled() -> bool:
    return os.environ.get(MEMO_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class Reads:
    """The files read while building one DAG, each with its snapshot from before the read."""

    def __init__(self) -> None:
        self.files: dict[str, Fingerprint] = {}
        self.unmemoizable: str | None = None  # why this DAG must be built every time


_reads: contextvars.ContextVar[Reads | None] = contextvars.ContextVar(
    "merkl_request_reads", default=None
)


@contextlib.contextmanager
def recording() -> Iterator[Reads]:
    """Collect the files `note_read` is told about inside the block (this thread's)."""
    reads = Reads()
    token = _reads.set(reads)
    try:
        yield reads
    finally:
        _reads.reset(token)


def note_read(path: os.PathLike[str] | str) -> None:
    """`path` is about to be read to build a DAG: snapshot it first, so an edit made while it
    is read shows as a changed snapshot next time (never as a stale hash)."""
    reads = _reads.get()
    if reads is not None:
        key = os.path.abspath(path)
        if key not in reads.files:
            reads.files[key] = fingerprint(key)


def note_unmemoizable(reason: str) -> None:
    """The DAG being built depends on something a stat snapshot does not cover."""
    reads = _reads.get()
    if reads is not None and reads.unmemoizable is None:
        reads.unmemoizable = reason


def arguments_key(args: Iterable[Any], kwargs: dict[str, Any]) -> str | None:
    """A canonical key for bound arguments (`1` ≠ `1.0` ≠ `True`); None when one has no
    canonical encoding (such a request is not memoized)."""
    try:
        return hash_bytes(encode_value([list(args), kwargs], "arguments"))
    except MerklError:
        return None


@dataclass(frozen=True)
class _Entry:
    function: Callable[..., Any]
    files: tuple[tuple[str, Fingerprint], ...]
    tasks: tuple[tuple[Task, str], ...]  # each task of the DAG and its code hash then
    value: Any


class RequestMemo:
    """Values derived from built DAGs, by key, valid while code and files are unchanged.

    Thread-safe; at most `max_entries`, least recently used first out.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, enabled: bool | None = None):
        self.enabled = memo_enabled() if enabled is None else enabled
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, function: Callable[..., Any]) -> Any:
        """The value stored for `key` if `function`, its code and its files are unchanged;
        else None (and the stale entry is dropped)."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None:
            return None
        if entry.function is function and _unchanged(entry):
            return entry.value
        self.drop(key, entry)
        return None

    def put(
        self,
        key: Hashable,
        function: Callable[..., Any],
        reads: Reads,
        roots: Iterable[Lazy],
        value: Any,
    ) -> None:
        """Remember `value`, derived from the DAG of `roots` built by calling `function` while
        `reads` recorded."""
        if not self.enabled or reads.unmemoizable is not None:
            return
        tasks: dict[Task, str] = {}
        for node in iter_nodes(roots):
            if isinstance(node, Placeholder) and node.call.task not in tasks:
                tasks[node.call.task] = node.call.task.code_hash
        files = dict(reads.files)
        codes: list[Callable[..., Any]] = [function, *tasks]
        for code in codes:
            module_file = _module_file(code)
            if module_file is not None and module_file not in files:
                files[module_file] = fingerprint(module_file)
        entry = _Entry(function, tuple(files.items()), tuple(tasks.items()), value)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def drop(self, key: Hashable, entry: _Entry | None = None) -> None:
        """Forget `key` (only if it still holds `entry`, when given)."""
        with self._lock:
            if entry is None or self._entries.get(key) is entry:
                self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _unchanged(entry: _Entry) -> bool:
    for path, snapshot in entry.files:
        if fingerprint(path) != snapshot:
            return False
    try:
        return all(task.code_hash == code_hash for task, code_hash in entry.tasks)
    except MerklError:  # its source cannot be read now: let the full path say so
        return False


def _module_file(code: Callable[..., Any]) -> str | None:
    function = code.fn if isinstance(code, Task) else code
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    file = getattr(module, "__file__", None)
    return os.path.abspath(file) if file else None


class _Slot(Lazy):
    """Stands for root number `index` in a memoized result."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


@dataclass(frozen=True)
class CachedRoots:
    """A pipeline's result with its root outputs taken out: what answering it again needs."""

    template: Any  # the result, each root output replaced by a `_Slot`
    slots: tuple[_Slot, ...]
    outputs: tuple[tuple[str, CachePolicy, str], ...]  # hash, policy, serializer of each root

    @classmethod
    def of(cls, result: Any, extra: Iterable[Lazy] = ()) -> CachedRoots | None:
        """For `result` (and `extra` roots, whose values are loaded but not returned); None
        when a root is not a task output with a known hash."""
        roots = list(dict.fromkeys([*iter_lazy(result), *extra]))
        outputs = []
        for root in roots:
            if type(root) is not Placeholder or root.hash is None:
                return None
            task, index = root.call.task, root.index
            outputs.append((root.hash, task.policy(index), task.serializer(index).name))
        slots = tuple(_Slot(i) for i in range(len(roots)))
        template = substitute(result, dict(zip(roots, slots, strict=True)))
        return cls(template, slots, tuple(outputs))

    def load(self, cache: Cache) -> Any:
        """The result with every root output loaded from `cache`; `_MISSING` as soon as one
        is not cached (evicted, collected) or cannot be read."""
        entries = []
        for out_hash, policy, serializer in self.outputs:
            entry = cache.find(out_hash, policy, serializer)
            if entry is None:
                return MISSING
            entries.append(entry)
        try:
            values = [
                cache.load(out_hash, entry)
                for (out_hash, _, _), entry in zip(self.outputs, entries, strict=True)
            ]
        except (CacheMissError, CorruptObjectError):
            return MISSING
        return substitute(self.template, dict(zip(self.slots, values, strict=True)))


MISSING: Any = object()  # `CachedRoots.load`: some root output is not in the cache
