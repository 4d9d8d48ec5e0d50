"""Pipeline targets: `module.function` imported from the project (or `path/nb.ipynb:function`
from a notebook's code cells) and called with arguments parsed from a command line (by clize,
from the function's signature).

`merkl run`, `dag`, `why` and `serve` all name pipelines this way.

Parameters without an annotation take Python literals (`3` is an int, `[1, 2]` a list,
`'3'` a string); text that is no literal stays a string. Without this clize hands them
strings, so `merkl run p.pipe 3` would compute `"3" + 2` and hash differently from `p.pipe(3)`.

No `from __future__ import annotations` here: sigtools reads the annotations of the wrapper in
`call_with_cli_args` as strings when this module postpones them, and they are real types.
"""

import ast
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clize import Clize, parser

from merkl.cells import SUFFIX as NOTEBOOK_SUFFIX
from merkl.cells import load_notebook
from merkl.errors import UsageError
from merkl.placeholder import MissingArgument
from merkl.tasks import Task


def import_target(target: str) -> Callable[..., Any]:
    """The function named `module.function`, imported from the current directory, or
    `path/nb.ipynb:function`, from a notebook's code cells run as a module."""
    if f"{NOTEBOOK_SUFFIX}:" in target:
        return _notebook_target(target)
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


def _notebook_target(target: str) -> Callable[..., Any]:
    path, _, function_name = target.rpartition(":")
    module = load_notebook(Path(path))
    function = getattr(module, function_name, None)
    if function is None or not callable(function):
        raise UsageError(f"notebook {path} defines no function {function_name!r}")
    return function  # type: ignore[no-any-return]


def _python_literal(text: str) -> Any:
    """A command-line value as a Python literal where it is one (`3`, `2.5`, `[1, 2]`,
    `None`, `'x'`), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


python_literal: Callable[[str], Any] = parser.value_converter(_python_literal, name="VALUE")


def call_with_cli_args(
    function: Callable[..., Any],
    target: str,
    args: list[str],
    fill_missing: bool,
    command: str = "merkl run",
) -> Any:
    """Call `function` with arguments parsed by clize from its signature.

    `command` is how the user started the line (`merkl dag`), for clize's usage lines.
    """
    inner = function.fn if isinstance(function, Task) else function
    signature = inspect.signature(inner)
    signature = signature.replace(
        parameters=[_cli_parameter(p, fill_missing) for p in signature.parameters.values()]
    )

    @functools.wraps(inner)
    def call(*a: Any, **kw: Any) -> Any:
        return _call_with_defaults(function, signature, a, kw)

    call.__signature__ = signature  # type: ignore[attr-defined]
    del call.__wrapped__
    return Clize.get_cli(call)(f"{command} {target}", *args)


def _cli_parameter(parameter: inspect.Parameter, fill_missing: bool) -> inspect.Parameter:
    """`parameter` as clize should read it: literals when unannotated (unless a default's
    type says otherwise), a `MissingArgument` default under --fill-missing."""
    if parameter.kind in (parameter.VAR_KEYWORD,):
        return parameter
    if parameter.annotation is parameter.empty and parameter.default in (parameter.empty, None):
        parameter = parameter.replace(annotation=python_literal)
    if (
        fill_missing
        and parameter.default is parameter.empty
        and parameter.kind is not (parameter.VAR_POSITIONAL)
    ):
        parameter = parameter.replace(default=MissingArgument(parameter.name))
    return parameter


def wants_help(args: list[str]) -> bool:
    """True when the pipeline arguments ask for the pipeline's own `--help`."""
    return any(a in ("-h", "--help") for a in args)


def pipeline_help(target: str, command: str = "merkl run") -> str:
    """The `--help` text clize builds from the pipeline function's signature and docstring."""
    function = import_target(target)
    return f"{call_with_cli_args(function, target, ['--help'], False, command)}\n"


def _call_with_defaults(
    function: Callable[..., Any], signature: inspect.Signature, args: Any, kwargs: Any
) -> Any:
    # Not `function(*args, **kwargs)`: sigtools would see the forwarding and report the
    # callee's signature to clize instead of `signature`.
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return function(*bound.args, **bound.kwargs)
