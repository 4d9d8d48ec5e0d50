"""`@task`: turn a function into a node of a Merkle DAG.

Calling a task runs nothing: it binds the arguments, hashes them (placeholders by their own hash)
and returns one `Placeholder` per output. An output's hash is
`H("merkl.output", HASH_SCHEMA, code_hash, args_hash, index)`, known before any body runs.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypedDict, Unpack, overload

from merkl.cache import CachePolicy
from merkl.deps import (
    CodeHashMode,
    CodeIdentity,
    check_source_available,
    code_generation,
    code_identity,
    module_name,
    validate_deps,
)
from merkl.errors import EvaluationError, HashingError, TaskDefinitionError
from merkl.hashing import (
    _UnknownHashError,
    encode_arguments,
    encode_value,
    hash_bytes,
    hash_digest,
    output_digest,
    output_hash_prefix,
    sorted_keys,
)
from merkl.placeholder import Lazy, Placeholder
from merkl.serializers import DEFAULT_SERIALIZER, Serializer, register_serializer

Outs = int | Callable[..., int]


class Task:
    """A decorated function. Call it to get placeholders; `.fn` is the plain function."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        outs: Outs = 1,
        serializers: Mapping[int, Serializer] | Serializer | None = None,
        cache_policy: CachePolicy | Mapping[int, CachePolicy] = CachePolicy.EVERYWHERE,
        code_hash_mode: CodeHashMode = CodeHashMode.MODULE,
        code_deps: Iterable[object] = (),
        version: str | None = None,
    ) -> None:
        if not callable(fn) or isinstance(fn, type):
            raise TaskDefinitionError(f"@task expects a function, got {fn!r}")
        self.fn = fn
        self.name: str = fn.__qualname__
        self.module = module_name(fn)
        self.signature = inspect.signature(fn)
        self.outs = _validate_outs(outs, fn, self.signature)
        self.serializers = _validate_serializers(serializers, self.name)
        self.cache_policy = _validate_policy(cache_policy, self.name)
        if not isinstance(code_hash_mode, CodeHashMode):
            raise TaskDefinitionError(
                f"@task(code_hash_mode=…) on {self.name}: expected CodeHashMode.MODULE or "
                f"CodeHashMode.FUNCTION, got {code_hash_mode!r}"
            )
        self.code_hash_mode = code_hash_mode
        self.code_deps = validate_deps(code_deps, self.name)
        if version is not None and not isinstance(version, str):
            raise TaskDefinitionError(
                f"@task(version=…) on {self.name}: expected a string, got {version!r}"
            )
        self.version = version
        if version is None:
            check_source_available(fn, code_hash_mode)
        self._code: CodeIdentity | None = None
        self._code_generation: int | None = None
        self._out_prefix: bytes | None = None
        params = self.signature.parameters.values()
        self._param_names = tuple(p.name for p in params)
        self._sorted_params = sorted_keys(self._param_names)
        # Calls of a function whose parameters are all positional-or-keyword skip inspect's
        # (slow, ~5 µs) general binding: `_bind_simple` places keywords and defaults itself.
        self._simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._defaults = tuple(p.default for p in params)
        self._n_outs = self.outs if isinstance(self.outs, int) else 0  # 0: ask `outs`
        self._lookups: dict[int, tuple[CachePolicy, str]] = {}
        self._single = self.outs == 1
        functools.update_wrapper(self, fn)

    @property
    def code_hash(self) -> str:
        """Hash of the task's identity, code (or pinned version) and code dependencies."""
        return self.code.hash

    @property
    def code(self) -> CodeIdentity:
        """The code hash and the digests of its parts (for `merkl why`)."""
        # A task defined in a notebook cell is hashed again once other cells ran: one may have
        # redefined a helper it calls (code from files never changes within a process).
        generation = code_generation(self.fn) if self.version is None else None
        if self._code is None or generation != self._code_generation:
            self._code = code_identity(self.fn, self.code_hash_mode, self.version, self.code_deps)
            self._code_generation = generation
            self._out_prefix = None
        return self._code

    @property
    def out_prefix(self) -> bytes:
        """Encoded head of `["merkl.output", HASH_SCHEMA, code_hash, args_hash, index]`."""
        if self._code_generation is not None:
            self.code  # noqa: B018 - re-hashed (and the prefix dropped) if cells ran since
        if self._out_prefix is None:
            self._out_prefix = output_hash_prefix(self.code_hash)
        return self._out_prefix

    def serializer(self, index: int) -> Serializer:
        return self.serializers.get(index, self.serializers.get(-1, DEFAULT_SERIALIZER))

    def policy(self, index: int) -> CachePolicy:
        return self.cache_policy.get(index, self.cache_policy.get(-1, CachePolicy.EVERYWHERE))

    def lookup(self, index: int) -> tuple[CachePolicy, str]:
        """(policy, serializer name) of output `index`, as a cache lookup asks them (once per
        hit; both are fixed when the task is defined)."""
        found = self._lookups.get(index)
        if found is None:
            found = self._lookups[index] = (self.policy(index), self.serializer(index).name)
        return found

    def __repr__(self) -> str:
        return f"<task {self.module}.{self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._simple:
            values = self._bind(args, kwargs)
        elif kwargs or len(args) != len(self._param_names):
            values = self._bind_simple(args, kwargs)
        else:
            values = args
        call = Call(self, values, self._n_outs or _count_outs(self, values))
        if self._single:
            return call._outputs
        return call.outputs

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Every parameter's value, in the signature's order (defaults applied)."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None
        bound.apply_defaults()
        return tuple(bound.arguments.values())

    def _bind_simple(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """`_bind` for positional-or-keyword parameters only; a call it cannot place (an
        unknown or repeated keyword, a missing or extra argument) goes to `_bind`, which
        raises inspect's error."""
        names = self._param_names
        values = list(args)
        placed = 0
        for position in range(len(args), len(names)):
            name = names[position]
            if name in kwargs:
                values.append(kwargs[name])
                placed += 1
            elif self._defaults[position] is not inspect.Parameter.empty:
                values.append(self._defaults[position])
            else:
                return self._bind(args, kwargs)
        if placed != len(kwargs) or len(args) > len(names):
            return self._bind(args, kwargs)
        return tuple(values)


class Call:
    """One invocation of a task: its arguments, their hash, the output placeholders.

    A DAG may hold a million calls, so a call keeps only what it needs: the argument values in
    the signature's order (`arguments` and `bound` are made from them on demand), the lazy
    values among them, and the digest of their hash.
    """

    __slots__ = ("_args_digest", "_outputs", "deps", "task", "values")

    def __init__(self, task: Task, values: tuple[Any, ...], n_outs: int) -> None:
        self.task = task
        self.values = values
        self.deps: tuple[Lazy, ...] = _lazy_in(values)
        self._args_digest: bytes | object | None = False  # False: not computed yet
        # One output (most calls) is kept bare: a tuple per call would cost 64 bytes and
        # one more object for the garbage collector to track.
        self._outputs: Placeholder | tuple[Placeholder, ...] = (
            Placeholder(self, 0)
            if n_outs == 1
            else tuple(Placeholder(self, i) for i in range(n_outs))
        )

    @property
    def outputs(self) -> tuple[Placeholder, ...]:
        outputs = self._outputs
        return (outputs,) if type(outputs) is Placeholder else outputs  # type: ignore[return-value]

    @property
    def n_outs(self) -> int:
        outputs = self._outputs
        return 1 if isinstance(outputs, Placeholder) else len(outputs)

    @property
    def arguments(self) -> dict[str, Any]:
        """{parameter name: value}, every parameter (defaults applied), in signature order."""
        return dict(zip(self.task._param_names, self.values, strict=True))

    @property
    def bound(self) -> inspect.BoundArguments:
        return inspect.BoundArguments(self.task.signature, self.arguments)

    @property
    def args_hash(self) -> str | None:
        """Hash of the bound arguments; None when one depends on a missing argument."""
        digest = self._args_digest
        if type(digest) is not bytes and digest is not None:  # not computed yet
            digest = self._hash_arguments()
        return None if digest is None else digest.hex()

    def _hash_arguments(self) -> bytes | None:
        if self.deps:
            _hash_upstream(self)
        return self._digest_arguments()

    def _digest_arguments(self) -> bytes | None:
        """Hash the arguments; every upstream call must have its hash already."""
        try:
            digest: bytes | None = hash_digest(
                encode_arguments(self.task._sorted_params, self.values)
            )
        except _UnknownHashError:
            digest = None
        except HashingError as exc:
            exc.message = f"{self.task.name}(): {exc.message}"
            raise
        self._args_digest = digest
        return digest

    def out_hash(self, index: int) -> str | None:
        digest = self.out_digest(index)
        return None if digest is None else digest.hex()

    def out_digest(self, index: int) -> bytes | None:
        # Once per cache hit: `_hash_arguments` and `out_prefix` are spelled out here.
        digest = self._args_digest
        if type(digest) is not bytes:
            if digest is None:  # depends on a missing argument
                return None
            if self.deps:
                _hash_upstream(self)
            digest = self._digest_arguments()
            if digest is None:
                return None
        task = self.task
        prefix = task._out_prefix
        if prefix is None or task._code_generation is not None:
            prefix = task.out_prefix  # made, or checked against the cells run since
        return output_digest(prefix, digest, index)

    def arg_hashes(self) -> dict[str, str]:
        """Per-argument hashes, for the run log and `merkl why`."""
        return {
            name: hash_bytes(encode_value(value, name)) for name, value in self.arguments.items()
        }


_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})


_EXPANDING = object()  # `_args_digest` of a call whose upstream `_hash_upstream` is hashing


def _hash_upstream(call: Call) -> None:
    """Hash the arguments of every upstream call not hashed yet, dependencies first, without
    recursion (hashing the end of a 10,000-task chain must not hit the stack limit) and
    without a list or set the size of the DAG (it may have a million calls)."""
    stack: list[tuple[Call, bool]] = [(call, False)]
    current = call
    try:
        while stack:
            current, expanded = stack.pop()
            if expanded:
                if current is not call:
                    current._digest_arguments()
                continue
            if current is not call:
                if current._args_digest is not False:
                    continue  # reached twice: hashed already
                current._args_digest = _EXPANDING
            stack.append((current, True))
            for dep in current.deps:
                upstream = getattr(dep, "call", None)
                if upstream is not None and upstream._args_digest is False:
                    stack.append((upstream, False))
    except BaseException:
        for pending, _ in [*stack, (current, True)]:
            if pending._args_digest is _EXPANDING:
                pending._args_digest = False
        raise


def _lazy_in(values: tuple[Any, ...]) -> tuple[Lazy, ...]:
    """The lazy values among a call's arguments; scalars (most leaves' only arguments) are
    skipped without a call."""
    found: list[Lazy] = []
    for value in values:
        if type(value) not in _SCALARS:
            _collect_lazy(value, found)
    return tuple(found) if found else ()


def iter_lazy(value: Any) -> list[Lazy]:
    """Every lazy value inside `value` (through lists, tuples, dicts, sets and dataclasses)."""
    found: list[Lazy] = []
    _collect_lazy(value, found)
    return found


def _collect_lazy(value: Any, found: list[Lazy]) -> None:
    if type(value) in _SCALARS:
        return
    if isinstance(value, Lazy):
        found.append(value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            _collect_lazy(item, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect_lazy(key, found)
            _collect_lazy(item, found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _collect_lazy(getattr(value, f.name), found)


def substitute(value: Any, values: Mapping[Lazy, Any]) -> Any:
    """`value` with every lazy value replaced by its computed value."""
    if isinstance(value, Lazy):
        return values[value]
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [substitute(item, values) for item in value]
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*items)  # namedtuple
        return type(value)(items)
    if isinstance(value, dict):
        return type(value)(
            (substitute(k, values), substitute(v, values)) for k, v in value.items()
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: substitute(getattr(value, f.name), values)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    return value


class TaskOptions(TypedDict, total=False):
    """The options of `@task(...)`, as `Task` takes them (defaults are `Task`'s)."""

    outs: Outs
    serializers: Mapping[int, Serializer] | Serializer | None
    cache_policy: CachePolicy | Mapping[int, CachePolicy]
    code_hash_mode: CodeHashMode
    code_deps: Iterable[object]
    version: str | None


TASK_OPTIONS = tuple(TaskOptions.__annotations__)


@overload
def task(fn: Callable[..., Any], /) -> Task: ...


@overload
def task(**options: Unpack[TaskOptions]) -> Callable[[Callable[..., Any]], Task]: ...


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Make a function a pipeline task: `@task` or `@task(outs=2, ...)`.

    Args:
        outs: number of outputs (int >= 1), or a callable with the function's parameter names
            returning it from the arguments (which may be placeholders).
        serializers: `{output index: Serializer}` (or one serializer for all); JSON by default.
        cache_policy: one `CachePolicy` or `{output index: CachePolicy}`.
        code_hash_mode: `CodeHashMode.MODULE` (default) or `CodeHashMode.FUNCTION`.
        code_deps: modules, functions, tasks, str or bytes the code depends on.
        version: a string that replaces the code in the hash (for code without source, or to
            decide yourself when caches are invalidated).

    Raises:
        TaskDefinitionError: at decoration time, for any invalid option.
    """
    if fn is not None:
        if options:
            raise TaskDefinitionError("use either @task or @task(option=…), not both")
        return Task(fn)
    unknown = set(options) - set(TASK_OPTIONS)
    if unknown:
        raise TaskDefinitionError(
            f"@task got unknown option(s) {', '.join(sorted(unknown))}; known: "
            f"{', '.join(TASK_OPTIONS)}"
        )
    return lambda f: Task(f, **options)


def _validate_outs(outs: Any, fn: Callable[..., Any], signature: inspect.Signature) -> Outs:
    name = fn.__qualname__
    if isinstance(outs, bool) or (not isinstance(outs, int) and not callable(outs)):
        raise TaskDefinitionError(
            f"@task(outs=…) on {name}: expected an int >= 1 or a callable with the same "
            f"parameters as {name}; got {outs!r}"
        )
    if isinstance(outs, int):
        if outs < 1:
            raise TaskDefinitionError(
                f"@task(outs=…) on {name}: expected an int >= 1; got {outs!r}"
            )
        return outs
    try:
        outs_params = list(inspect.signature(outs).parameters)
    except (TypeError, ValueError) as exc:
        raise TaskDefinitionError(f"@task(outs=…) on {name}: cannot inspect {outs!r}") from exc
    fn_params = list(signature.parameters)
    if outs_params != fn_params:
        raise TaskDefinitionError(
            f"@task(outs=…) on {name}: the outs callable's parameters ({', '.join(outs_params)}) "
            f"must match the function's ({', '.join(fn_params)})"
        )
    return outs  # type: ignore[no-any-return]


def _count_outs(task: Task, values: tuple[Any, ...]) -> int:
    assert not isinstance(task.outs, int)
    arguments = dict(zip(task._param_names, values, strict=True))
    bound = inspect.BoundArguments(task.signature, arguments)
    count = task.outs(*bound.args, **bound.kwargs)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise EvaluationError(
            f"{task.name}: outs callable returned {count!r}; expected an int >= 1",
            task=task.name,
        )
    return count


def _validate_serializers(serializers: Any, name: str) -> dict[int, Serializer]:
    if serializers is None:
        return {}
    if isinstance(serializers, Serializer):
        serializers = {-1: serializers}
    if not isinstance(serializers, Mapping):
        raise TaskDefinitionError(
            f"@task(serializers=…) on {name}: expected {{output index: Serializer}}, "
            f"got {serializers!r}"
        )
    for index, serializer in serializers.items():
        if isinstance(serializer, type) and issubclass(serializer, Serializer):
            raise TaskDefinitionError(
                f"@task(serializers=…) on {name}: output {index} got the class "
                f"{serializer.__name__}; pass an instance: {serializer.__name__}()"
            )
        if not isinstance(serializer, Serializer) or not isinstance(index, int):
            raise TaskDefinitionError(
                f"@task(serializers=…) on {name}: expected {{int: Serializer}}, got "
                f"{{{index!r}: {serializer!r}}}"
            )
        register_serializer(serializer)
    return dict(serializers)


def _validate_policy(policy: Any, name: str) -> dict[int, CachePolicy]:
    if isinstance(policy, CachePolicy):
        return {-1: policy}
    if isinstance(policy, Mapping) and all(
        isinstance(k, int) and isinstance(v, CachePolicy) for k, v in policy.items()
    ):
        return dict(policy)
    raise TaskDefinitionError(
        f"@task(cache_policy=…) on {name}: expected a CachePolicy or {{output index: "
        f"CachePolicy}}, got {policy!r}"
    )
