"""Provenance commands: `dag`, `log`, `show` and `why`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import orjson
from clize import Clize, parameters

from merkl.cli.trailing import own_options, take_own_options
from merkl.ops.dag import dag as dag_op
from merkl.ops.log import log as log_op
from merkl.ops.log import render_log
from merkl.ops.show import render_show
from merkl.ops.show import show as show_op
from merkl.ops.why import render_why
from merkl.ops.why import why as why_op
from merkl.provenance.pipeline import pipeline_help, wants_help
from merkl.repo import Repo


def dag(
    prog: Annotated[str, Clize[parameters.pass_name]],
    target: str,
    *pipeline_args: str,
    format: Annotated[str, Clize[str, "f"]] = "text",  # noqa: A002 - the option is --format
    output: Annotated[str | None, Clize[str, "o"]] = None,
    fill_missing: bool = False,
) -> None:
    """Show a pipeline's DAG without running it.

    Calls TARGET (module.function) with the arguments after it, as `merkl run` does, but runs
    no task: it prints the tasks, their arguments, input files and outputs with short hashes,
    cached outputs green and missing ones red (on a terminal). Options of `merkl dag` may
    follow TARGET unless the pipeline has a keyword-only parameter of that name; after `--`
    everything belongs to the pipeline.

    Example: merkl dag pipeline2.pipeline --epochs 100 -f png -o dag.png

    :param target: the pipeline, as module.function
    :param pipeline_args: the pipeline function's arguments
    :param format: text (a tree), dot (Graphviz source), json, svg or png (both drawn by
        Graphviz's `dot` program, which must be installed), or openlineage (the planned
        lineage as OpenLineage JobEvents, one a line; needs merkl[openlineage])
    :param output: write to this file instead of stdout (needed for png)
    :param fill_missing: stand in for missing pipeline arguments with placeholders, so the
        DAG shows everything that does not depend on them
    """
    args, own = take_own_options(target, pipeline_args, own_options(dag))
    format = str(own.get("format", format))  # noqa: A001
    output = str(own["output"]) if "output" in own else output
    text = dag_op(
        target,
        args,
        fmt=format,
        output=Path(output) if output else None,
        fill_missing=bool(own.get("fill_missing", fill_missing)),
        color=_color(),
        command=prog,
    )
    sys.stdout.write(text)


def log(
    *,
    limit: Annotated[int, Clize[int, "n"]] = 20,
    task: Annotated[str | None, Clize[str]] = None,
    json: bool = False,
) -> None:
    """List recently computed outputs, newest first.

    One row per output from the run log: when it was computed, its task, how long the task
    took, its size, whether it is still cached, and its output hash (give it to `merkl show`).

    :param limit: show at most this many outputs
    :param task: only outputs of this task (name or module.name)
    :param json: print JSON (one object per output, full hashes) instead of a table
    """
    entries = log_op(Repo.find(), limit=limit, task=task)
    if json:
        _print_json([e.to_json() for e in entries])
    else:
        sys.stdout.write(render_log(entries, color=_color()))


def show(
    output: str,
    *,
    depth: Annotated[int | None, Clize[int]] = None,
    json: bool = False,
) -> None:
    """Show where an output came from, recursively.

    For the output and everything upstream of it: task, module, code hash, when it ran and
    for how long, its size, whether it is cached, the upstream outputs and input files it was
    computed from (by argument name) and the hashes of its plain argument values.

    :param output: an output hash or a unique prefix of one (see `merkl log`), or a file
        written with write_file(..., track=True) such as model.bin
    :param depth: follow upstream outputs at most this many levels (default: all)
    :param json: print JSON (every output and input file by hash) instead of a tree
    """
    provenance = show_op(Repo.find(), output, depth=depth)
    if json:
        _print_json(provenance.to_json())
    else:
        sys.stdout.write(render_show(provenance, color=_color()))


def why(
    prog: Annotated[str, Clize[parameters.pass_name]],
    target: str,
    *pipeline_args: str,
    fill_missing: bool = False,
    json: bool = False,
) -> None:
    """Explain why a pipeline would compute what it would compute.

    For each task call whose output is not cached: what changed since the closest earlier run
    of that task in the run log — its code, which argument (a plain value, an upstream output,
    an input file's content) — or that it never ran, or was removed from the cache. Root
    causes come first. Options of `merkl why` may follow TARGET, as for `merkl dag`.

    :param target: the pipeline, as module.function
    :param pipeline_args: the pipeline function's arguments
    :param fill_missing: stand in for missing pipeline arguments with placeholders
    :param json: print JSON instead of text
    """
    args, own = take_own_options(target, pipeline_args, own_options(why))
    if wants_help(args):
        sys.stdout.write(pipeline_help(target, prog))
        return
    fill_missing = bool(own.get("fill_missing", fill_missing))
    entries = why_op(target, args, fill_missing=fill_missing, command=prog)
    if own.get("json", json):
        _print_json([e.to_json() for e in entries])
    else:
        sys.stdout.write(render_why(target, entries, color=_color()))


def _print_json(data: object) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _color() -> bool:
    """Colours only on a terminal, and not in CI or with NO_COLOR set."""
    if os.environ.get("CI", "") not in ("", "0", "false") or os.environ.get("NO_COLOR"):
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
