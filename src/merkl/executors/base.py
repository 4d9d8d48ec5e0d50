"""Executor interface and the steps every executor shares: run one call, store its outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from merkl.cache import CachePolicy
from merkl.cache.index import RunRecord
from merkl.cache.lease import output_lease
from merkl.errors import EvaluationError, SerializationError
from merkl.graph import Plan
from merkl.observers import call_finished
from merkl.placeholder import Lazy, cached_values
from merkl.session import Session
from merkl.tasks import Call, Task, substitute


class Executor:
    """Runs the calls of a `Plan`.

    `run(plan, values, session)` receives `values` already holding every cached output and
    leaf the plan needs (or a loader for them) and must add the value of every output of every
    call in `plan.calls`, running each call once, after its dependencies.
    """

    name = "base"

    def run(self, plan: Plan, values: ValueMap, session: Session) -> None:
        raise NotImplementedError


class ValueMap(dict[Lazy, Any]):
    """Values by lazy node; cached outputs are loaded from the cache on first use.

    A run's peak memory is its live frontier, not the sum of its values: once an executor has
    announced the calls it will run (`expect`), a value is dropped as soon as the last of those
    calls that reads it has started (`started`), and an output no call reads is not kept at all
    (`put`). The nodes in `keep` (what the caller asked for) are always kept.
    """

    def __init__(self, loader: Callable[[Lazy], Any], keep: Iterable[Lazy] = ()) -> None:
        super().__init__()
        self._loader = loader
        self._keep = set(keep)
        self._uses: dict[Lazy, int] | None = None  # None: not announced, keep everything

    def __missing__(self, key: Lazy) -> Any:
        value = self[key] = self._loader(key)
        return value

    def expect(self, calls: Iterable[Call]) -> None:
        """Count, for every node, the calls of this run that will read it."""
        uses = self._uses = {}
        for call in calls:
            for dep in dict.fromkeys(call.deps):
                uses[dep] = uses.get(dep, 0) + 1

    def started(self, call: Call) -> None:
        """`call` has its arguments: drop the values it was the last reader of."""
        uses = self._uses
        if uses is None:
            return
        for dep in dict.fromkeys(call.deps):
            left = uses.get(dep, 0) - 1
            if left > 0:
                uses[dep] = left
                continue
            uses.pop(dep, None)
            if dep not in self._keep:
                self.pop(dep, None)

    def wanted(self, node: Lazy) -> bool:
        """True for a node the caller asked for (its value is returned, not only stored)."""
        return node in self._keep

    def put(self, node: Lazy, value: Any) -> None:
        """Record the value of `node` if a call still to start reads it or the caller wants it."""
        if self._uses is None or node in self._uses or node in self._keep:
            self[node] = value


def run_call(call: Call, values: ValueMap, session: Session) -> list[Any]:
    """Run `call` and store its outputs; return their values as a cache hit would.

    With a cache, under the lease on the call's first output (`merkl.cache.lease`): when
    another process or thread of this repository computes the same call meanwhile, this waits
    for it and loads its outputs instead of running the body again. With a remote's shared
    lease as well, the same holds for the clones sharing that remote.
    """
    if not (session.use_cache and leased(call)):
        return _run_and_store(call, values, session)
    repo = session.require_repo()
    cache = repo.cache
    first = call.outputs[0].hash or ""
    with output_lease(
        repo.dot_dir, first, before_wait=cache.index.flush, defer=cache.index.after_flush
    ):
        # Stored since the plan was made, by the holder this waited for?
        stored = cached_values(call.outputs, cache, remote=False)
        shared = cache.shared_leases
        if stored is None and shared is not None and shared_leased(call):
            with shared.hold(first):
                stored = cached_values(call.outputs, cache)  # by another clone?
                if stored is None:
                    stored = _run_and_store(call, values, session)
                    shared.publish([p.hash or "" for p in call.outputs])
                    return stored
        if stored is not None:
            values.started(call)  # as `call_body` would
            return stored
        return _run_and_store(call, values, session)


_LOCAL_POLICIES = (CachePolicy.EVERYWHERE, CachePolicy.LOCAL)


def leased(call: Call) -> bool:
    """Whether computing `call` takes a lease: its outputs are stored where another process
    of this repository can load them, under a known hash."""
    return call.outputs[0].hash is not None and _shared_by(call, _LOCAL_POLICIES)


def shared_leased(call: Call) -> bool:
    """Whether computing `call` also takes the remote's shared lease (`Cache.shared_leases`):
    its outputs are pushed, so another clone can read them through."""
    return _shared_by(call, (CachePolicy.EVERYWHERE,))


def _run_and_store(call: Call, values: ValueMap, session: Session) -> list[Any]:
    outputs, duration = call_body(call, values)
    return store_outputs(call, outputs, duration, session)


def _shared_by(call: Call, policies: tuple[CachePolicy, ...]) -> bool:
    """Whether every output of `call` is cached where `policies` say (so another process, or
    with EVERYWHERE another clone, can load it)."""
    task = call.task
    return all(task.policy(p.index) in policies for p in call.outputs)


def call_body(call: Call, values: Mapping[Lazy, Any]) -> tuple[tuple[Any, ...], float]:
    """Run the task body on the values of its arguments; return its outputs and duration.

    The arguments' values are released from a `ValueMap` before the body runs (see `started`).

    An exception from the body propagates unchanged, with a note naming the task.
    """
    args, kwargs = call_arguments(call, values)
    if isinstance(values, ValueMap):
        values.started(call)
    result, duration = timed_call(call.task.fn, args, kwargs, task_label(call))
    return split_outputs(call, result), duration


def call_arguments(call: Call, values: Mapping[Lazy, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of `call`, each lazy value replaced by its value."""
    if call.task._simple:  # positional-or-keyword parameters only: all passed by position
        if not call.deps:
            return list(call.values), {}
        return [substitute(value, values) for value in call.values], {}
    arguments = call.arguments
    return _split(call, substitute(arguments, values) if call.deps else arguments)


def task_label(call: Call) -> str:
    """`module.task [hash prefix]`, as error notes and progress name a call."""
    digest = call.outputs[0].hash or "unknown"
    return f"{call.task.module}.{call.task.name} [{digest[:12]}]"


def timed_call(
    fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], label: str
) -> tuple[Any, float]:
    """`fn(*args, **kwargs)` and its duration; an exception propagates unchanged, with a note
    `in merkl task <label>` (executors running bodies elsewhere call this there too)."""
    start = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        exc.add_note(f"in merkl task {label}")
        raise
    return result, time.perf_counter() - start


def split_outputs(call: Call, result: Any) -> tuple[Any, ...]:
    """The body's return value as one value per output; a wrong count is an error."""
    return split_result(call.task, call.n_outs, result)


def split_result(task: Task, n_outs: int, result: Any) -> tuple[Any, ...]:
    """`split_outputs` for a worker that has the task and the output count but not the call."""
    if n_outs == 1 and task.outs == 1:
        return (result,)
    if not isinstance(result, (tuple, list)):
        raise EvaluationError(
            f"task {task.name} declares {n_outs} outputs but returned one "
            f"{type(result).__name__}; return a tuple of {n_outs} values",
            task=task.name,
        )
    if len(result) != n_outs:
        raise EvaluationError(
            f"task {task.name} declares {n_outs} outputs but returned {len(result)}",
            task=task.name,
        )
    return tuple(result)


def store_outputs(
    call: Call, outputs: tuple[Any, ...], duration: float, session: Session
) -> list[Any]:
    """Cache the outputs of one call as their policies say and log the run.

    Returns the values as a cache hit would later return them — also without a cache
    (`--no-cache`), so a pipeline behaves the same either way.
    """
    return store_many([(call, outputs, duration)], session)[0]


def store_many(
    done: list[tuple[Call, tuple[Any, ...], float]], session: Session
) -> list[list[Any]]:
    """`store_outputs` of several calls (outputs and duration each) in one `Cache.save`."""
    if not done:
        return []
    for call, _, duration in done:
        call_finished(call, duration)  # every executor stores each call here, once
    if not session.use_cache:
        return [
            [as_stored(call.task, i, value) for i, value in enumerate(outputs)]
            for call, outputs, _ in done
        ]
    now = time.time()
    items = []
    runs = []
    code_parts = {}
    for call, outputs, duration in done:
        task = call.task
        code_parts[task.code_hash] = task.code.parts
        parents = sorted({dep.hash for dep in call.deps if dep.hash})
        arg_hashes = call.arg_hashes()
        arg_values = small_argument_values(call, arg_hashes)
        for placeholder, value in zip(call.outputs, outputs, strict=True):
            index = placeholder.index
            out_hash = placeholder.hash
            assert out_hash is not None, "a computed output always has a hash"
            items.append((out_hash, value, task.serializer(index), task.policy(index)))
            runs.append(
                RunRecord(
                    out_hash,
                    index,
                    task.name,
                    task.module,
                    task.code_hash,
                    call.args_hash or "",
                    arg_hashes,
                    parents,
                    duration,
                    0,
                    now,
                    arg_values,
                )
            )
    try:
        values = session.require_repo().cache.save(items, runs, code_parts)
    except SerializationError as exc:
        bad = getattr(exc, "out_hash", None)
        call, index = next(
            ((c, p.index) for c, _, _ in done for p in c.outputs if p.hash == bad),
            (done[0][0], -1),
        )
        raise refused_output(call.task, index, exc) from exc
    except Exception as exc:
        names = ", ".join(dict.fromkeys(f"{c.task.module}.{c.task.name}" for c, _, _ in done))
        exc.add_note(f"while storing the outputs of merkl task {names}")
        raise
    each = iter(values)  # in the order of `items`: each call's outputs in turn
    return [[next(each) for _ in range(call.n_outs)] for call, _, _ in done]


def as_stored(task: Task, index: int, value: Any) -> Any:
    """`value` as output `index` of `task` comes back from the cache: serialized and loaded
    (MEMORY and NEVER policies keep values as they are: nothing is serialized for them)."""
    if task.policy(index) in (CachePolicy.MEMORY, CachePolicy.NEVER):
        return value
    serializer = task.serializer(index)
    try:
        data = serializer.dump(value)
    except SerializationError as exc:
        raise refused_output(task, index, exc) from exc
    return serializer.load(data)


def refused_output(task: Task, index: int, exc: SerializationError) -> SerializationError:
    """`exc` (a serializer refusing a value) as one line naming the task and the output."""
    message = exc.message.replace("{index:", f"{{{index}:")
    return SerializationError(
        f"task {task.module}.{task.name} output {index}: {message}",
        task=task.name,
        index=index,
    )


def _split(call: Call, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    import inspect

    bound = inspect.BoundArguments(call.task.signature, arguments)
    return list(bound.args), dict(bound.kwargs)


_SMALL_TEXT = 80  # longer strings are logged by hash only


def small_argument_values(call: Call, arg_hashes: dict[str, str]) -> dict[str, str]:
    """{argument hash: repr} of the call's small scalar arguments (numbers, booleans, None,
    short strings), logged so `merkl why` and `show` can print old → new values."""
    values = {}
    for name, value in call.bound.arguments.items():
        if type(value) in (int, float, bool, type(None)) or (
            type(value) is str and len(value) <= _SMALL_TEXT
        ):
            text = repr(value)
            if len(text) <= _SMALL_TEXT:
                values[arg_hashes[name]] = text
    return values
