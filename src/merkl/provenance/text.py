"""Trees for the terminal: a pipeline's DAG (`merkl dag`) and an output's history (`merkl show`).

```
pipeline1.my_pipeline
└── pipeline1.task2  5b0e…  missing
    └── input_value: pipeline1.task1  81c4…  cached
        └── input_value = 42
```
A node reached a second time is printed once more with `(see above)` and no subtree, so a DAG
with shared parts stays as long as its node count. On a terminal, states are coloured: cached
green, missing red, unknown yellow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text

from merkl.provenance.model import CACHED, MISSING, UNKNOWN, Dag, DagNode

HASH_CHARS = 8
MAX_INDENT = 32  # tree levels before the indentation restarts from the left
STATE_STYLES = {
    CACHED: "green",
    MISSING: "red",
    UNKNOWN: "yellow",
    "missing-argument": "yellow",
}


@dataclass
class Row:
    """One line of a tree and the rows under it."""

    text: Text
    children: list[Row] = field(default_factory=list)


def draw(title: Text, rows: list[Row]) -> list[Text]:
    """`title`, then `rows` with box-drawing guides.

    Every `MAX_INDENT` levels the indentation starts again from the left, after a marker
    line: a chain of thousands of tasks prints in linear, not quadratic, space.
    """
    lines = [title]
    stack = [(row, "", i == len(rows) - 1, 1) for i, row in reversed(list(enumerate(rows)))]
    while stack:
        row, prefix, is_last, depth = stack.pop()
        lines.append(Text(prefix + ("└── " if is_last else "├── ")) + row.text)
        inner = prefix + ("    " if is_last else "│   ")
        if row.children and depth % MAX_INDENT == 0:
            lines.append(Text(f"┄┄ depth {depth}: indentation restarts ┄┄", style="dim"))
            inner = ""
        last = len(row.children) - 1
        stack.extend(
            (child, inner, i == last, depth + 1)
            for i, child in reversed(list(enumerate(row.children)))
        )
    return lines


def to_string(lines: list[Text], *, color: bool) -> str:
    """The lines as a string, with ANSI colours when `color`."""
    if not color:
        return "".join(f"{line.plain}\n" for line in lines)
    from io import StringIO

    from rich.console import Console

    buffer = StringIO()
    console = Console(
        file=buffer, force_terminal=True, color_system="standard", width=10_000, soft_wrap=True
    )
    for line in lines:
        console.print(line, highlight=False)
    return buffer.getvalue()


def local_time(timestamp: float) -> str:
    """A run-log time as local wall-clock time, to the second."""
    moment = dt.datetime.fromtimestamp(timestamp).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def table_text(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, color: bool) -> str:
    """Rows under a header: a rich table when `color`, plain aligned columns otherwise."""
    if color:
        from io import StringIO

        from rich.console import Console
        from rich.table import Table

        table = Table(*header)
        for row in rows:
            table.add_row(*row)
        buffer = StringIO()
        Console(file=buffer, force_terminal=True, width=200).print(table)
        return buffer.getvalue()
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in (header, *rows)
    )


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def short_hash(digest: str | None) -> Text:
    return Text((digest or "?" * HASH_CHARS)[:HASH_CHARS], style="dim")


def tree_text(dag: Dag, *, color: bool) -> str:
    """The DAG as a tree from the pipeline's outputs (and writes) down to its inputs."""
    return to_string(draw(Text(dag.target, style="bold"), _dag_rows(dag)), color=color)


def _dag_rows(dag: Dag) -> list[Row]:
    # Iterative: a chain of thousands of tasks must not hit the recursion limit.
    top: list[Row] = []
    expanded: set[str] = set()
    stack: list[tuple[str, str, list[Row]]] = [(r, "", top) for r in reversed(dag.roots)]
    while stack:
        item, label, siblings = stack.pop()
        if isinstance(item, _Value):
            siblings.append(Row(Text(f"{label} = {item}")))
            continue
        node = dag.node(item)
        row = Row(Text(f"{label}: " if label else "") + _describe(node))
        siblings.append(row)
        # Both outputs of one call share its inputs: expand them under the first one only.
        key = dag.inputs(item)[0].source if node.kind == "output" else item
        inputs = _inputs(dag, node)
        if key in expanded:
            if inputs:
                row.text.append("  (see above)", style="dim")
            continue
        expanded.add(key)
        stack.extend((source, name, row.children) for name, source in reversed(inputs))
    return top


class _Value(str):
    """A plain argument value, already shown as a short repr."""


def _inputs(dag: Dag, node: DagNode) -> list[tuple[str, str]]:
    """(argument name, node id or _Value) for everything `node` was computed from: plain
    values first (one line each, next to their task), then the lazy inputs' subtrees."""
    if node.kind == "write":
        return [("", edge.source) for edge in dag.inputs(node.id)]
    if node.kind != "output":
        return []
    task = dag.node(dag.inputs(node.id)[0].source)
    by_name: dict[str, list[str]] = {}
    for edge in dag.inputs(task.id):
        by_name.setdefault(edge.label, []).append(edge.source)
    values = task.detail["arguments"]
    inputs: list[tuple[str, str]] = [
        (name, _Value(values[name])) for name in task.detail["parameters"] if name in values
    ]
    for name in task.detail["parameters"]:
        inputs += [(name, source) for source in by_name.get(name, [])]
    return inputs


def _describe(node: DagNode) -> Text:
    if node.kind == "argument":
        return Text(f"missing argument {node.label}", style=STATE_STYLES[node.state])
    if node.kind == "write":
        return Text(f"write {node.label}" + ("  tracked" if node.detail.get("track") else ""))
    name = {"file": "file ", "stored": "load "}.get(node.kind, "") + node.label
    text = Text(f"{name}  ") + short_hash(node.hash)
    if node.kind in ("output", "stored"):
        text += Text("  ") + state_text(node.state)
    elif node.state == "tracked":
        text.append("  tracked")
    return text
