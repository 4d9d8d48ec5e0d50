"""A small layered layout for DAGs, computed on the server in linear time.

Graphviz's `dot` draws small DAGs beautifully but takes minutes on 10,000 nodes; the browser
should not lay out either. This places each node on the layer of its longest path from a
source (dependencies above what uses them), orders each layer once by the mean position of
its parents (a single barycenter sweep: good enough to keep chains straight), and centres the
layers. Time and memory are O(nodes + edges).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CHAR_WIDTH = 7.0  # px per label character at the page's 12px font
NODE_HEIGHT = 34.0
LAYER_GAP = 70.0
NODE_GAP = 16.0
MIN_WIDTH = 60.0
MAX_WIDTH = 260.0
MARGIN = 20.0


@dataclass
class Box:
    """A placed node: its centre (x, y) and size."""

    x: float
    y: float
    width: float
    height: float = NODE_HEIGHT


@dataclass
class Layout:
    boxes: dict[str, Box]
    width: float
    height: float


def node_width(label: str) -> float:
    return min(MAX_WIDTH, max(MIN_WIDTH, len(label) * CHAR_WIDTH + 20))


def layered_layout(nodes: Sequence[tuple[str, str]], edges: Sequence[tuple[str, str]]) -> Layout:
    """Positions for `nodes` ((id, label) pairs, dependencies first) linked by `edges`
    ((from, to) pairs; edges naming unknown ids are ignored)."""
    ids = [node_id for node_id, _ in nodes]
    known = set(ids)
    parents: dict[str, list[str]] = {node_id: [] for node_id in ids}
    for source, target in edges:
        if source in known and target in known and source != target:
            parents[target].append(source)
    layer: dict[str, int] = {}
    for node_id in _dependency_order(ids, parents):
        layer[node_id] = 1 + max((layer.get(p, -1) for p in parents[node_id]), default=-1)
    layers: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for node_id in ids:
        layers[layer[node_id]].append(node_id)
    widths = {node_id: node_width(label) for node_id, label in nodes}
    order: dict[str, float] = {}
    for row in layers:
        # Parents are on earlier layers, so their positions are final: sort by their mean.
        keyed = []
        for position, node_id in enumerate(row):
            above = [order[p] for p in parents[node_id] if p in order]
            keyed.append((sum(above) / len(above) if above else float(position), position))
        row[:] = [node_id for _, node_id in sorted(zip(keyed, row, strict=True))]
        x = 0.0
        for node_id in row:
            order[node_id] = x + widths[node_id] / 2
            x += widths[node_id] + NODE_GAP
    row_widths = [sum(widths[n] + NODE_GAP for n in row) - NODE_GAP for row in layers]
    total_width = max(row_widths, default=0.0)
    boxes: dict[str, Box] = {}
    for depth, row in enumerate(layers):
        offset = MARGIN + (total_width - row_widths[depth]) / 2
        y = MARGIN + NODE_HEIGHT / 2 + depth * (NODE_HEIGHT + LAYER_GAP)
        for node_id in row:
            boxes[node_id] = Box(offset + order[node_id], y, widths[node_id])
    height = 2 * MARGIN + len(layers) * NODE_HEIGHT + max(len(layers) - 1, 0) * LAYER_GAP
    return Layout(boxes, total_width + 2 * MARGIN, height)


def _dependency_order(ids: list[str], parents: dict[str, list[str]]) -> list[str]:
    """`ids` with every node after its parents (the given order when it already is one).

    An edge that would close a cycle is ignored rather than looping: a DAG has none.
    """
    seen: set[str] = set()
    done: list[str] = []
    for start in ids:
        if start in seen:
            continue
        stack = [(start, iter(parents[start]))]
        seen.add(start)
        while stack:
            node_id, pending = stack[-1]
            parent = next(pending, None)
            if parent is None:
                stack.pop()
                done.append(node_id)
            elif parent not in seen:
                seen.add(parent)
                stack.append((parent, iter(parents[parent])))
    return done
