"""The DAG in Graphviz: dot source, and svg/png through the `dot` program.

Drawn as in merkl's original project images: a task is a box with its name, code hash and
plain argument values; each output a dashed parallelogram with its short hash, green when
cached and red when missing; files (inputs, pointers, writes) are cylinders.
"""

from __future__ import annotations

import html
import shutil
import subprocess

from merkl.errors import MerklError
from merkl.provenance.model import CACHED, MISSING, Dag, DagNode

IMAGE_FORMATS = ("svg", "png")
_COLORS = {CACHED: "darkgreen", MISSING: "red3"}
_OTHER_COLOR = "darkorange"
_HASH_CHARS = 8
_DOT_TIMEOUT_S = 120


def to_dot(dag: Dag) -> str:
    """Graphviz source for `dag`; deterministic for a given DAG."""
    lines = [
        "digraph merkl {",
        "  rankdir=TB;",
        '  bgcolor="transparent";',
        f'  label={_html(dag.target)}; labelloc=t; fontname="Helvetica";',
        '  node [fontname="Helvetica", fontsize=11, style=filled, fillcolor=white];',
        '  edge [fontname="Helvetica", fontsize=9, color=gray40];',
    ]
    lines += [f"  {_quote(node.id)} [{_attributes(node)}];" for node in dag.nodes]
    for edge in dag.edges:
        label = f" [label={_quote(edge.label)}]" if edge.label else ""
        lines.append(f"  {_quote(edge.source)} -> {_quote(edge.target)}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _attributes(node: DagNode) -> str:
    short = (node.hash or "?" * _HASH_CHARS)[:_HASH_CHARS]
    if node.kind == "task":
        rows = [
            f"<b>{html.escape(node.label)}</b>",
            f'<font point-size="9">code {node.detail["code_hash"][:_HASH_CHARS]}</font>',
        ]
        rows += [
            html.escape(f"{name}={value}") for name, value in node.detail["arguments"].items()
        ]
        return f'shape=box, style="rounded,filled", label=<{"<br/>".join(rows)}>'
    if node.kind in ("output", "stored"):
        color = _COLORS.get(node.state, _OTHER_COLOR)
        name = node.label if node.kind == "output" else f"load {node.label}"
        label = f'<font color="{color}">{html.escape(name)}<br/>{short} {node.state}</font>'
        shape = "parallelogram" if node.kind == "output" else "cylinder"
        return f'shape={shape}, style="dashed,filled", color="{color}", label=<{label}>'
    if node.kind in ("file", "write"):
        extra = "tracked" if node.state == "tracked" or node.detail.get("track") else ""
        head = "write " if node.kind == "write" else ""
        rows = [html.escape(head + node.label), short + (f" {extra}" if extra else "")]
        return f"shape=cylinder, label=<{'<br/>'.join(rows)}>"
    if node.kind == "argument":
        label = html.escape(f"missing argument {node.label}")
        return f'shape=box, style="dashed,filled", color="{_OTHER_COLOR}", label=<{label}>'
    return f"shape=box, label=<{html.escape(node.label)}>"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _html(text: str) -> str:
    return f"<{html.escape(text)}>"


def render_image(dot_source: str, fmt: str) -> bytes:
    """`dot_source` drawn as `fmt` (svg or png) by Graphviz's `dot` program.

    Raises:
        MerklError: `dot` is not installed, or it failed (its message is passed on).
    """
    program = shutil.which("dot")
    if program is None:
        raise MerklError(
            f"--format {fmt} needs Graphviz's `dot` program, which is not on PATH; install "
            f"Graphviz (Debian/Ubuntu: apt-get install graphviz, macOS: brew install graphviz) "
            f"or use --format dot and draw it elsewhere"
        )
    try:
        proc = subprocess.run(
            [program, f"-T{fmt}"],
            input=dot_source.encode(),
            capture_output=True,
            timeout=_DOT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MerklError(f"Graphviz `dot -T{fmt}` took longer than {_DOT_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MerklError(
            f"Graphviz `dot -T{fmt}` failed (exit {proc.returncode}): "
            f"{message[0] if message else 'no message'}"
        )
    return proc.stdout
