"""Pipeline targets: `module.function` imported from the project and called with arguments
parsed from a command line (by clize, from the function's signature).

`merkl run`, `dag`, `why` and `serve` all name pipelines this way.

No `from __future__ import annotations` here: sigtools reads the annotations of the wrapper in
`call_with_cli_args` as strings when this module postpones them, and they are real types.
"""

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from clize import Clize

from merkl.errors import UsageError
from merkl.placeholder import MissingArgument
from merkl.tasks import Task


def import_target(target: str) -> Callable[..., Any]:
    """The function named `module.function`, imported from the current directory."""
    module_name, _, function_name = target.rpartition(".")
    if not module_name or not function_name:
        raise UsageError(
            f"target {target!r} is not of the form module.function (e.g. pipeline1.my_pipeline)",
            exit_code=2,
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(
                f"cannot import module {module_name!r} (looked in {cwd} and on sys.path)"
            ) from exc
        raise
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise UsageError(f"module {module_name!r} has no function {function_name!r}")
    return function  # type: ignore[no-any-return]


def call_with_cli_args(
    function: Callable[..., Any], target: str, args: list[str], fill_missing: bool
) -> Any:
    """Call `function` with arguments parsed by clize from its signature."""
    inner = function.fn if isinstance(function, Task) else function
    signature = inspect.signature(inner)
    if fill_missing:
        signature = signature.replace(
            parameters=[
                # clize picks a converter from the annotation, else from the default's type,
                # which a MissingArgument does not have: plain strings, as without a default.
                p.replace(
                    default=MissingArgument(p.name),
                    annotation=str if p.annotation is p.empty else p.annotation,
                )
                if p.default is p.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                else p
                for p in signature.parameters.values()
            ]
        )

    @functools.wraps(inner)
    def call(*a: Any, **kw: Any) -> Any:
        return _call_with_defaults(function, signature, a, kw)

    call.__signature__ = signature  # type: ignore[attr-defined]
    del call.__wrapped__
    return Clize.get_cli(call)(f"merkl run {target}", *args)


def wants_help(args: list[str]) -> bool:
    """True when the pipeline arguments ask for the pipeline's own `--help`."""
    return any(a in ("-h", "--help") for a in args)


def pipeline_help(target: str) -> str:
    """The `--help` text clize builds from the pipeline function's signature and docstring."""
    return f"{call_with_cli_args(import_target(target), target, ['--help'], False)}\n"


def _call_with_defaults(
    function: Callable[..., Any], signature: inspect.Signature, args: Any, kwargs: Any
) -> Any:
    # Not `function(*args, **kwargs)`: sigtools would see the forwarding and report the
    # callee's signature to clize instead of `signature`.
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return function(*bound.args, **bound.kwargs)
