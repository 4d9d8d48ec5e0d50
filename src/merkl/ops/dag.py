"""`merkl dag`: a pipeline's DAG without running it, as a tree, dot, JSON, svg, png or
OpenLineage (planned lineage)."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from merkl.errors import UsageError
from merkl.fs import write_atomic
from merkl.lineage.planned import planned_lineage
from merkl.provenance.dot import IMAGE_FORMATS, render_image, to_dot
from merkl.provenance.model import Dag, build_dag
from merkl.provenance.pipeline import call_pipeline, pipeline_help, wants_help
from merkl.provenance.text import tree_text

FORMATS = ("text", "dot", "json", *IMAGE_FORMATS, "openlineage")


def dag(
    target: str,
    args: list[str],
    *,
    fmt: str = "text",
    output: Path | None = None,
    fill_missing: bool = False,
    color: bool = False,
    command: str = "merkl dag",
) -> str:
    """Build the DAG of `target` called with `args` and render it as `fmt`.

    Returns what goes to stdout: the rendering, or nothing when it was written to `output`.

    Raises:
        UsageError: an unknown format, or png without an output file.
        MerklError: svg/png without Graphviz installed.
    """
    if fmt not in FORMATS:
        raise UsageError(
            f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}", exit_code=2
        )
    if fmt == "png" and output is None:
        raise UsageError("--format png is binary: give a file to write with -o FILE", exit_code=2)
    if wants_help(args):
        return pipeline_help(target, command)
    pipeline = call_pipeline(target, args, fill_missing=fill_missing, command=command)
    if fmt == "openlineage":
        data, count = planned_lineage(pipeline), "planned lineage"
    else:
        graph = build_dag(pipeline)
        data = render(graph, fmt, color=color and output is None)
        count = f"{len(graph.nodes)} nodes"
    if output is None:
        return data.decode()
    write_atomic(output, data)
    print(f"merkl: wrote {output} ({fmt}, {count})", file=sys.stderr)
    return ""


def render(graph: Dag, fmt: str, *, color: bool = False) -> bytes:
    """`graph` in one of `FORMATS`."""
    if fmt == "text":
        return tree_text(graph, color=color).encode()
    if fmt == "json":
        return orjson.dumps(graph.to_json(), option=orjson.OPT_INDENT_2) + b"\n"
    source = to_dot(graph)
    if fmt == "dot":
        return source.encode()
    return render_image(source, fmt)
