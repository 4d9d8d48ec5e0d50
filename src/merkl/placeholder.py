"""Lazy values: task outputs (`Placeholder`) and the leaves a DAG starts from.

A lazy value knows its Merkle `hash` without being computed; `.get()` computes or fetches it.
Using one as if it were its value (truth-testing, iteration, `len`, arithmetic, comparison,
indexing) raises an error telling the user to call `.get()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

from merkl.errors import CacheMissError, CorruptObjectError, EvaluationError, UsageError
from merkl.hashing import register_hashed_type

if TYPE_CHECKING:
    from merkl.cache import Cache
    from merkl.cache.index import OutputEntry
    from merkl.session import Session
    from merkl.tasks import Call, Task


class Lazy:
    """Base of everything `.get()`-able. Subclasses set `hash` and implement `resolve` (leaves)
    or carry a `call` (task outputs)."""

    __slots__ = ()

    @property
    def hash(self) -> str | None:
        raise NotImplementedError

    def __merkl_hash__(self) -> str | None:
        return self.hash

    def get(self, *, executor: Any = None) -> Any:
        """Compute or fetch the value, running only what no cache holds."""
        return (_evaluate_one or _evaluator())(self, executor)

    def resolve(self, session: Session) -> Any:
        """The value of a leaf (a file, a stored output); task outputs are evaluated instead."""
        raise NotImplementedError

    def _misuse(self, what: str) -> NoReturn:
        raise UsageError(
            f"{what} on {self!r}, which is a placeholder for a value that has not been computed; "
            f"call .get() to get the value"
        )

    def __bool__(self) -> bool:
        self._misuse("truth-testing")

    def __len__(self) -> int:
        self._misuse("len()")

    def __iter__(self) -> NoReturn:
        self._misuse("iterating")

    def __contains__(self, item: object) -> bool:
        self._misuse("`in`")

    def __getitem__(self, key: object) -> NoReturn:
        self._misuse("indexing")

    def __int__(self) -> int:
        self._misuse("int()")

    def __float__(self) -> float:
        self._misuse("float()")

    def __index__(self) -> int:
        self._misuse("using as an index")


# `merkl.evaluation.evaluate_one`, imported at the first `.get()` (it imports this module); an
# import statement in `get` would cost 1 µs of every cache hit.
_evaluate_one: Callable[[Lazy, Any], Any] | None = None


def _evaluator() -> Callable[[Lazy, Any], Any]:
    global _evaluate_one
    from merkl.evaluation import evaluate_one

    _evaluate_one = evaluate_one
    return evaluate_one


def _make_misuse(op: str) -> Any:
    def method(self: Lazy, *args: object) -> NoReturn:
        self._misuse(f"`{op}`")

    return method


for _name, _op in {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "matmul": "@",
    "truediv": "/",
    "floordiv": "//",
    "mod": "%",
    "pow": "**",
    "and": "&",
    "or": "|",
    "xor": "^",
    "lshift": "<<",
    "rshift": ">>",
}.items():
    setattr(Lazy, f"__{_name}__", _make_misuse(_op))
    setattr(Lazy, f"__r{_name}__", _make_misuse(_op))
for _name, _op in {
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "neg": "-",
    "pos": "+",
    "abs": "abs()",
    "invert": "~",
    "round": "round()",
}.items():
    setattr(Lazy, f"__{_name}__", _make_misuse(_op))


class Placeholder(Lazy):
    """Output number `index` of one task call."""

    # Kept small: a DAG may hold a million of them. The hash is kept as its 32-byte digest
    # (65 bytes of memory instead of 113 for the hex string) and spelled out on each use.
    __slots__ = ("_digest", "call", "index")

    def __init__(self, call: Call, index: int) -> None:
        self.call = call
        self.index = index
        self._digest: bytes | None = None

    @property
    def hash(self) -> str | None:
        digest = self._digest
        if digest is None:
            digest = self._digest = self.call.out_digest(self.index)
            if digest is None:
                return None
        return digest.hex()

    @property
    def task(self) -> Task:
        return self.call.task

    def find_cached(
        self, cache: Cache, *, remote: bool = True, stat: bool = True
    ) -> OutputEntry | None:
        """This output's cache entry, if cached under the policy and serializer of its task
        (`remote` False: without asking a read-through remote; `stat` False: see
        `Cache.find`)."""
        out_hash = self.hash
        if out_hash is None:
            return None
        policy, serializer = self.call.task.lookup(self.index)
        return cache.find(out_hash, policy, serializer, remote=remote, stat=stat)

    def __repr__(self) -> str:
        digest = self.hash
        short = digest[:8] if digest else "????????"
        suffix = f"[{self.index}]" if self.call.n_outs > 1 else ""
        return f"<{self.call.task.name}(…){suffix}@{short}>"


register_hashed_type(Placeholder)


def cached_values(
    outputs: Iterable[Placeholder], cache: Cache, *, remote: bool = True
) -> list[Any] | None:
    """The values of `outputs` when every one is cached; None as soon as one is not, or when
    one vanished or was corrupt since it was found (the caller then computes it)."""
    found = []
    for output in outputs:
        entry = output.find_cached(cache, remote=remote, stat=False)  # `load` reads it anyway
        if entry is None:
            return None
        found.append((output.hash or "", entry))
    try:
        return [cache.load(out_hash, entry) for out_hash, entry in found]
    except (CacheMissError, CorruptObjectError):
        return None


NOT_CACHED: Any = object()  # what `cached_value` returns for an output it cannot load
# ... when no cache holds it at all (so a plan made now need not look it up again)
NOT_FOUND: Any = object()


def cached_value(output: Placeholder, cache: Cache) -> Any:
    """`cached_values([output], cache)[0]` (the hit path of `.get()`); NOT_FOUND when no cache
    (this process, the index, a read-through remote) has it, NOT_CACHED when one has it but
    it cannot be loaded (the object vanished or was corrupt)."""
    out_hash = output.hash
    if out_hash is None:
        return NOT_CACHED
    policy, serializer = output.call.task.lookup(output.index)
    entry = cache.find(out_hash, policy, serializer, stat=False)
    if entry is None:
        return NOT_FOUND
    try:
        return cache.load(out_hash, entry)
    except (CacheMissError, CorruptObjectError):
        return NOT_CACHED


class MissingArgument(Lazy):
    """Stands in for a pipeline argument that was not given (`merkl run --fill-missing`).

    Its hash is unknown, so everything computed from it has an unknown hash too.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def hash(self) -> None:
        return None

    def resolve(self, session: Session) -> NoReturn:
        raise EvaluationError(
            f"pipeline argument {self.name!r} was not given (filled in by --fill-missing); "
            f"pass it to compute the outputs that depend on it",
            argument=self.name,
        )

    def _misuse(self, what: str) -> NoReturn:
        # Not "call .get()": there is no value to get until the argument is given.
        raise EvaluationError(
            f"pipeline argument {self.name!r} was not given (filled in by --fill-missing), so "
            f"{what} on it cannot be computed; pass the argument, or do this computation "
            f"inside a task so --fill-missing can skip it",
            argument=self.name,
        )

    def __repr__(self) -> str:
        return f"<missing argument {self.name!r}>"
