"""The `merkl` command: a thin clize front over `merkl.ops`.

Every command prints errors as one line, `merkl: error: …`, and exits 0 (ok), 1 (failed) or
2 (usage); `--debug` (or `MERKL_DEBUG=1`) shows the traceback as well.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import IO, Any

from merkl.errors import MerklError, UsageError
from merkl.progress import set_quiet

_DESCRIPTION = """\
merkl tracks large files in git without putting them in git, and runs cached,
Merkle-hashed pipelines of plain Python functions.

Start with `merkl init` (a clone with a committed merkl.toml needs none), then
`merkl track data/` or `merkl run module.function ARGS`; `merkl install` adds git
hooks that check tracked data out after `git checkout`. `merkl COMMAND --help`
explains each command; `merkl dry-run …` is `merkl run --dry …`. Options of
`run`, `dag` and `why` may follow TARGET unless the pipeline has a parameter of
that name (then `--` or putting them before TARGET makes them merkl's).

Global options: --debug (show tracebacks), -q/--quiet (no progress bars; CI
set does the same), -V/--version. Exit status: 0 ok, 1 failed, 2 bad usage.
"""

# Command name -> "module:attribute" (or a group of them). Only the command being run is
# imported: start-up time dominates quick commands such as `merkl status`.
_COMMANDS: dict[str, str | dict[str, str]] = {
    "init": "merkl.cli.core:init",
    "run": "merkl.cli.core:run",
    "serve": "merkl.cli.serve:serve",
    "ui": "merkl.cli.ui:ui",
    "verify": "merkl.cli.verify:verify",
    "track": "merkl.cli.tracking:track",
    "untrack": "merkl.cli.tracking:untrack",
    "unprotect": "merkl.cli.tracking:unprotect",
    "status": "merkl.cli.tracking:status",
    "checkout": "merkl.cli.tracking:checkout",
    "gc": "merkl.cli.tracking:gc",
    "install": "merkl.cli.hooks:install",
    "uninstall": "merkl.cli.hooks:uninstall",
    "push": "merkl.cli.remotes:push",
    "pull": "merkl.cli.remotes:pull",
    "remote": {
        "add": "merkl.cli.remotes:remote_add",
        "list": "merkl.cli.remotes:remote_list",
        "remove": "merkl.cli.remotes:remote_remove",
    },
    "key": {
        "generate": "merkl.cli.trust:key_generate",
        "show": "merkl.cli.trust:key_show",
    },
    "trust": {
        "add": "merkl.cli.trust:trust_add",
        "list": "merkl.cli.trust:trust_list",
        "remove": "merkl.cli.trust:trust_remove",
    },
    "cache": {
        "size": "merkl.cli.cache:cache_size",
        "clear": "merkl.cli.cache:cache_clear",
    },
    "catalog": "merkl.cli.catalog:COMMANDS",
    "dag": "merkl.cli.provenance:dag",
    "log": "merkl.cli.provenance:log",
    "show": "merkl.cli.provenance:show",
    "why": "merkl.cli.provenance:why",
    "version": "merkl.cli.core:version",
}
# The command groups' one-line descriptions in `merkl --help` (a group has no docstring).
_GROUP_DESCRIPTIONS = {
    "remote": "Manage remotes: add, list, remove (where push and pull send and fetch data).",
    "key": "Your signing key: generate, show (push signs the output records it writes).",
    "trust": "Keys whose signed output records pulls accept: add, list, remove (in merkl.toml).",
    "cache": "The local cache of task outputs: size (per task), clear --task MODULE.FUNCTION.",
    "catalog": "Metadata catalog recipes: run, lint, list, info, gen (Meteor-compatible).",
}
# Commands spelled as another command with an option, as DVC and the seed's docs write them.
_ALIASES = {"dry-run": ("run", "--dry")}
# Options of merkl itself, accepted before the command (and before a pipeline's TARGET).
_GLOBAL_FLAGS = {"--debug", "-q", "--quiet"}


def _commands(only: str | None = None) -> dict[str, Any]:
    """The clize command table: every command, or just `only` when it names one."""
    names = [only] if only in _COMMANDS else list(_COMMANDS)
    return {name: _load(_COMMANDS[name], name) for name in names if name}


def _load(spec: str | dict[str, str], name: str = "") -> Any:
    """A command, or a command group with its one-line description for `merkl --help`."""
    if isinstance(spec, str) and not spec.endswith(":COMMANDS"):
        return _load_command(spec)
    if isinstance(spec, dict):
        group = {sub_name: _load_command(sub) for sub_name, sub in spec.items()}
    else:
        group = _load_attribute(spec)
    from clize.runner import SubcommandDispatcher

    return SubcommandDispatcher(group, description=_GROUP_DESCRIPTIONS.get(name)).cli


def _load_attribute(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _load_command(spec: str) -> Any:
    command = _load_attribute(spec)
    if isinstance(command, types.FunctionType):
        # sigtools (under clize) reads and parses the source of every function taking *args to
        # see whether it forwards them (~15 ms per command); these take them as they are.
        command._sigtools__forger = _own_signature  # type: ignore[attr-defined]
    return command


def _own_signature(obj: Callable[..., Any]) -> Any:
    from sigtools.signatures import signature  # the plain one: no forwarding discovery

    return signature(obj)


def main(
    argv: Sequence[str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Entry point of the `merkl` console script; returns the exit status."""
    if argv is None:
        # A command-line process: what is loaded by now lives until exit, so the collector
        # need not scan it again, and freezing everything at the end spares the interpreter
        # a last full collection at exit (~10 ms of `merkl status`, ~150 ms after a Dask run).
        gc.freeze()
        try:
            return main(sys.argv[1:], out, err)
        finally:
            gc.freeze()
    args = list(argv)
    debug = os.environ.get("MERKL_DEBUG", "") not in ("", "0")
    flags, typed = _take_global_flags(args)
    debug = debug or "--debug" in flags
    set_quiet(bool(flags & {"-q", "--quiet"}))
    if "--debug" in flags and args[:1] == ["serve"]:
        args.append("--debug")  # `merkl serve --debug` also puts exception text into 500s
    out = out or sys.stdout
    err = err or sys.stderr
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = _dispatch(args, typed, debug, err)
            out.flush()
            return status
        except BrokenPipeError:
            return _quiet_broken_pipe(out)


def _take_global_flags(args: list[str]) -> tuple[set[str], str]:
    """Remove merkl's global flags from `args` (before the command, or after it but before
    a pipeline's TARGET) and expand an alias; returns the flags and the command as typed."""
    found: set[str] = set()
    while args and args[0] in _GLOBAL_FLAGS:
        found.add(args.pop(0))
    typed = args[0] if args else ""
    if typed in _ALIASES:
        args[:1] = _ALIASES[typed]  # `merkl dry-run …` is `merkl run --dry …`
    for flag in set(_global_part(args)) & _GLOBAL_FLAGS:
        found.add(flag)
        args.remove(flag)
    return found, typed


def _quiet_broken_pipe(out: IO[str]) -> int:
    """The reader of our output went away (`merkl log | head`): stop quietly, as git does.

    Whatever is still buffered cannot be written; pointing the stream's descriptor at
    /dev/null keeps the interpreter's final flush from reporting the same error again.
    """
    with contextlib.suppress(AttributeError, OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    return 128 + 13  # 141: killed by SIGPIPE, what a shell reports for git in the same spot


def _dispatch(args: list[str], typed: str, debug: bool, err: IO[str]) -> int:
    try:
        result = _run(args, typed)
        if isinstance(result, str) and result:
            print(result)
        return 0
    except BrokenPipeError:
        raise
    except UsageError as exc:
        _report(exc, debug, err)
        return 2 if getattr(exc, "exit_code", 1) == 2 else 1
    except MerklError as exc:
        _report(exc, debug, err)
        return 1
    except KeyboardInterrupt:
        print("merkl: interrupted", file=err)
        return 130
    except Exception as exc:  # a user task's exception, or an unexpected one
        if _is_argument_error(exc):
            print(f"merkl: error: {_strip_prog(str(exc))}", file=err)
            return 2
        _report(exc, debug, err, foreign=True)
        return 1


def _run(args: list[str], typed: str) -> Any:
    if args[:1] in (["--version"], ["-V"]):
        args = ["version"]
    plain = _plain_call(args)
    if plain is not None:
        return plain()
    from clize import Clize

    command = args[0] if args and not args[0].startswith("-") else None
    spec = _COMMANDS.get(command or "")
    if isinstance(spec, str) and not spec.endswith(":COMMANDS"):
        # One plain command: parse it without the dispatcher, whose help imports docutils.
        cli: Callable[..., Any] = Clize.get_cli(_load(spec), helper_class=_LazyHelp)
        return cli(f"merkl {typed}", *_prepare(args)[1:])
    cli = Clize.get_cli(_commands(command), description=_DESCRIPTION)
    return cli("merkl", *_prepare(args))


# Commands called directly when their arguments are plain: PATHs and these flags, nothing
# that needs parsing (`--help`, an option with a value, `--`). Importing clize (with attrs,
# inspect and sigtools) is ~40 ms, more than `merkl status` of 10,000 files takes itself.
_PLAIN: dict[str, tuple[str, dict[str, str]]] = {
    "status": ("merkl.cli.tracking:status", {"--json": "json"}),
}


def _plain_call(args: list[str]) -> Callable[[], Any] | None:
    plain = _PLAIN.get(args[0]) if args else None
    if plain is None:
        return None
    spec, flags = plain
    paths: list[str] = []
    options: dict[str, bool] = {}
    for arg in args[1:]:
        if arg in flags:
            options[flags[arg]] = True
        elif arg.startswith("-"):
            return None
        else:
            paths.append(arg)
    command = _load_attribute(spec)
    return lambda: command(*paths, **options)


def _is_argument_error(exc: Exception) -> bool:
    """A command line clize could not read (clize is imported only when it parsed one)."""
    errors = sys.modules.get("clize.errors")
    return errors is not None and isinstance(exc, errors.ArgumentError)


class _LazyHelp:
    """Clize's help for one command, built only when `--help` is given.

    Clize makes its help object while it reads the command line, and that imports docutils:
    ~20 ms on every `merkl status`. This stands in for it (the `description` is what a parent
    help lists for `--help`) and hands over to `clize.help.ClizeHelp` when called.
    """

    description = "Show the help"

    def __init__(self, subject: Any, owner: Any = None) -> None:
        self.subject, self.owner = subject, owner

    @property
    def cli(self) -> _LazyHelp:
        return self

    @property
    def helper(self) -> _LazyHelp:
        return self

    def __call__(self, *args: str) -> Any:
        return self._real().cli(*args)

    def show_usage(self, name: str) -> Any:
        """The usage line clize appends to an argument error."""
        return self._real().show_usage(name)

    def _real(self) -> Any:
        from clize.help import ClizeHelp

        return ClizeHelp(self.subject, self.owner)


def _report(exc: BaseException, debug: bool, err: IO[str], foreign: bool = False) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc, file=err)
    message = str(exc) if not foreign else f"{type(exc).__name__}: {exc}"
    notes = [n for n in getattr(exc, "__notes__", []) if "merkl task " in n]
    if notes:
        message = f"{notes[0]}: {message}"
    print(f"merkl: error: {message}", file=err)
    if not debug and foreign:
        print("merkl: (run with --debug to see the traceback)", file=err)


def _strip_prog(message: str) -> str:
    first, _, rest = message.partition(": ")
    return rest if first.startswith("merkl") and rest else message


def _global_part(args: list[str]) -> list[str]:
    """The arguments that belong to merkl itself (for `run`: those before the target)."""
    if args[:1] and args[0] in _PIPELINE_COMMANDS:
        return args[: _run_target_index(args) or len(args)]
    return args


# Commands whose arguments after TARGET are the pipeline's own (`dag` and `why` call it too).
_PIPELINE_COMMANDS = ("run", "dag", "why")


def _value_options(command: str) -> set[str]:
    """The options of `command` that take a value (`--jobs N`), as clize reads its signature."""
    from merkl.cli.trailing import own_options

    return {
        name
        for option in own_options(_load(_COMMANDS[command]))
        if option.takes_value
        for name in option.names
    }


def _run_target_index(args: list[str]) -> int | None:
    value_options = _value_options(args[0])
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1 if i + 1 < len(args) else None
        if not arg.startswith("-"):
            return i
        if arg in value_options:
            i += 1
        i += 1
    return None


def _prepare(args: list[str]) -> list[str]:
    """For `run`, end merkl's options after the target: the rest belongs to the pipeline."""
    if not args[:1] or args[0] not in _PIPELINE_COMMANDS:
        return args
    index = _run_target_index(args)
    if index is None:
        return args
    head = [a for a in args[:index] if a != "--"]
    return [*head, args[index], "--", *args[index + 1 :]]
