"""Options of `merkl run`, `dag` and `why` written after TARGET.

Everything after TARGET is handed to the pipeline, whose parameters clize reads from its
signature. People write `merkl dag p.main -f json` all the same, as git lets them. So an
option of merkl's own found after TARGET is taken by merkl, unless the pipeline has a parameter
of that name: then the pipeline's wins and a note says how to reach merkl's. After `--`,
everything is the pipeline's.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from merkl.errors import UsageError
from merkl.targets import import_target
from merkl.tasks import Task


@dataclass(frozen=True)
class OwnOption:
    """One of merkl's options of a pipeline command."""

    param: str  # the command function's parameter
    names: tuple[str, ...]  # how it is written: ("--format", "-f")
    takes_value: bool = False


@functools.cache
def own_options(command: Callable[..., Any]) -> tuple[OwnOption, ...]:
    """The options of a command function, as clize reads them from its signature."""
    from clize import Clize
    from clize.parser import FlagParameter

    return tuple(
        OwnOption(
            parameter.argument_name,
            tuple(parameter.aliases),
            takes_value=not isinstance(parameter, FlagParameter),
        )
        for parameter in Clize.get_cli(command).signature.named
    )


def take_own_options(
    target: str, args: Sequence[str], options: Sequence[OwnOption]
) -> tuple[list[str], dict[str, str | bool]]:
    """Split the arguments after TARGET into the pipeline's and merkl's own (by parameter).

    Raises:
        UsageError: an own option without its value, or a flag given a value (exit 2).
    """
    by_name = {name: option for option in options for name in option.names}
    if not any(_spelled(arg, by_name)[0] for arg in _before_double_dash(args)):
        return list(args), {}  # nothing to take: the target need not be imported
    pipeline_options = _option_names(target)
    rest: list[str] = []
    own: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        option, value = _spelled(arg, by_name)
        if option is None:
            rest.append(arg)
        elif arg.split("=")[0] in pipeline_options or _short(arg) in pipeline_options:
            shown = arg.split("=")[0]
            print(
                f"merkl: {shown} after {target} is the pipeline's own parameter; put merkl's "
                f"{shown} before {target} to mean merkl's",
                file=sys.stderr,
            )
            rest.append(arg)
        elif option.takes_value:
            if value is None:
                if i + 1 >= len(args):
                    raise UsageError(f"{arg} needs a value (after {target})", exit_code=2)
                i += 1
                value = args[i]
            own[option.param] = value
        elif value is not None:
            raise UsageError(f"{arg.split('=')[0]} takes no value", exit_code=2)
        else:
            own[option.param] = True
        i += 1
    return rest, own


def _before_double_dash(args: Sequence[str]) -> Sequence[str]:
    return args[: list(args).index("--")] if "--" in args else args


def _spelled(arg: str, by_name: dict[str, OwnOption]) -> tuple[OwnOption | None, str | None]:
    """The own option `arg` spells (`--format`, `--format=json`, `-f`, `-fjson`) and its value."""
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        return by_name.get(name), (value if eq else None)
    if arg.startswith("-") and len(arg) > 2:
        option = by_name.get(arg[:2])
        if option is not None and option.takes_value:
            return option, arg[2:]
        return None, None
    return by_name.get(arg), None


def _short(arg: str) -> str:
    return arg[:2] if arg.startswith("-") and not arg.startswith("--") else arg


def _option_names(target: str) -> set[str]:
    """The options of the pipeline's own command line: clize makes keyword-only parameters
    options (`--name`, or `-n` for a one-letter name); the others are positional."""
    function = import_target(target)
    inner = function.fn if isinstance(function, Task) else function
    names: set[str] = set()
    for parameter in inspect.signature(inner).parameters.values():
        if parameter.kind is not parameter.KEYWORD_ONLY:
            continue
        dashes = "-" if len(parameter.name) == 1 else "--"
        names.add(dashes + parameter.name.replace("_", "-"))
    return names
