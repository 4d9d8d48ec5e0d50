"""The `merkl` command: a thin clize front over `merkl.ops`.

Every command prints errors as one line, `merkl: error: …`, and exits 0 (ok), 1 (failed) or
2 (usage); `--debug` (or `MERKL_DEBUG=1`) shows the traceback as well.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import IO, Any

from clize import Clize, errors as clize_errors

from merkl.errors import MerklError, UsageError


def _commands() -> dict[str, Any]:
    from merkl.cli import catalog as catalog_cli
    from merkl.cli import core
    from merkl.cli import provenance as provenance_cli
    from merkl.cli import remotes as remotes_cli
    from merkl.cli import serve as serve_cli
    from merkl.cli import tracking as tracking_cli
    from merkl.cli import verify as verify_cli

    return {
        "init": core.init,
        "run": core.run,
        "serve": serve_cli.serve,
        "verify": verify_cli.verify,
        "track": tracking_cli.track,
        "untrack": tracking_cli.untrack,
        "status": tracking_cli.status,
        "checkout": tracking_cli.checkout,
        "gc": tracking_cli.gc,
        "push": remotes_cli.push,
        "pull": remotes_cli.pull,
        "remote": {"add": remotes_cli.remote_add, "list": remotes_cli.remote_list,
                   "remove": remotes_cli.remote_remove},
        "catalog": catalog_cli.COMMANDS,
        "dag": provenance_cli.dag,
        "log": provenance_cli.log,
        "show": provenance_cli.show,
        "why": provenance_cli.why,
    }


def main(
    argv: Sequence[str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Entry point of the `merkl` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("MERKL_DEBUG", "") not in ("", "0")
    if "--debug" in _global_part(args):
        args.remove("--debug")
        debug = True
    out = out or sys.stdout
    err = err or sys.stderr
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        return _dispatch(args, debug, err)


def _dispatch(args: list[str], debug: bool, err: IO[str]) -> int:
    try:
        cli: Callable[..., Any] = Clize.get_cli(_commands(), description=__doc__)
        result = cli("merkl", *_prepare(args))
        if isinstance(result, str) and result:
            print(result)
        return 0
    except clize_errors.ArgumentError as exc:
        print(f"merkl: error: {_strip_prog(str(exc))}", file=err)
        return 2
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
        _report(exc, debug, err, foreign=True)
        return 1


def _report(exc: BaseException, debug: bool, err: IO[str], foreign: bool = False) -> None:
    if debug:
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


_RUN_VALUE_OPTIONS = {"--jobs", "-j", "--executor", "--scheduler", "--remote", "-r",
                      "--format", "-f", "--output", "-o"}
# Commands whose arguments after TARGET are the pipeline's own (`dag` and `why` call it too).
_PIPELINE_COMMANDS = ("run", "dag", "why")


def _run_target_index(args: list[str]) -> int | None:
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1 if i + 1 < len(args) else None
        if not arg.startswith("-"):
            return i
        if arg in _RUN_VALUE_OPTIONS:
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
