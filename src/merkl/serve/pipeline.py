"""A served pipeline: a `module.function` imported once, called with JSON arguments.

Shared by the server and by `merkl.client.Client`, which builds the same graph locally to find
the cached values it can send along.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from merkl.cache import Cache
from merkl.cells import SUFFIX as NOTEBOOK_SUFFIX
from merkl.errors import HashingError, UsageError
from merkl.graph import iter_nodes
from merkl.placeholder import Lazy, Placeholder
from merkl.serve.binding import bind_arguments, type_hints
from merkl.serve.payload import RequestError
from merkl.targets import import_target
from merkl.tasks import Task, iter_lazy


class Pipeline:
    """A function (or task) served under `name`, its target string `module.function`."""

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.name = name
        self.function = function
        inner = function.fn if isinstance(function, Task) else function
        self.signature = inspect.signature(inner)
        self.hints = type_hints(inner)
        self.doc = inspect.getdoc(inner) or ""

    @classmethod
    def load(cls, target: str) -> Pipeline:
        """Import `target` (`module.function`) from the working directory or `sys.path`."""
        if NOTEBOOK_SUFFIX in target:
            # A server is long-lived: its code is modules, which the cache hashes by file.
            raise UsageError(
                f"merkl serve takes module.function targets, not a notebook ({target}): move "
                f"the pipeline's code into a module"
            )
        return cls(target, import_target(target))

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        """JSON arguments bound to the signature (type-checked, widened).

        Raises:
            RequestError: 422 when the arguments do not fit the signature.
        """
        return bind_arguments(self.name, self.signature, self.hints, args, kwargs)

    def call(
        self, args: list[Any], kwargs: dict[str, Any], bound: inspect.BoundArguments | None = None
    ) -> Any:
        """The pipeline's return value (placeholders, usually) for JSON arguments (or for
        `bound`, what `bind` made of them).

        Raises:
            RequestError: 422 when the arguments do not fit the signature.
        """
        bound = bound or self.bind(args, kwargs)
        return self.function(*bound.args, **bound.kwargs)


def root_nodes(result: Any, extra: Iterable[Lazy] = ()) -> list[Lazy]:
    """The distinct lazy values in a pipeline's result (then `extra`), in order."""
    return list(dict.fromkeys([*iter_lazy(result), *extra]))


def root_hashes(name: str, roots: list[Lazy]) -> list[str | None]:
    """The Merkle hash of each root (computing every hash upstream of it).

    Raises:
        RequestError: 422 when a value in the graph has no canonical encoding.
    """
    try:
        return [node.hash for node in roots]
    except HashingError as exc:
        raise RequestError(422, f"{name}: {exc}") from None


def output_name(placeholder: Placeholder) -> str:
    """`module.task`, the name of the task that computes `placeholder`."""
    return f"{placeholder.task.module}.{placeholder.task.name}"


def dry_run_outputs(roots: list[Lazy], cache: Cache | None) -> list[dict[str, Any]]:
    """Every task output the roots depend on, dependencies first, and whether it is cached."""
    rows: list[dict[str, Any]] = []
    for node in iter_nodes(roots):
        if not isinstance(node, Placeholder):
            continue
        out_hash = node.hash
        is_cached = (
            cache is not None and out_hash is not None and node.find_cached(cache) is not None
        )
        rows.append(
            {"hash": out_hash, "task": output_name(node), "index": node.index, "cached": is_cached}
        )
    return rows
