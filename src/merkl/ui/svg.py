"""A drawable graph as inline SVG: boxes on a layered layout, edges as curves.

Each node is a `<g class="node KIND STATE" data-id="…">` so the page's script can make it
clickable and the stylesheet can colour it (cached green, missing red); nothing is drawn by
the browser's script, so a 10,000-node DAG costs the browser only its SVG parsing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from merkl.ui.layout import CHAR_WIDTH, Layout, layered_layout


@dataclass
class GraphNode:
    id: str
    label: str
    kind: str  # task, output, file, … (a CSS class)
    state: str = ""  # cached, missing, unknown, tracked, … (a CSS class)
    sublabel: str = ""  # a second, smaller line: a short hash and state


@dataclass
class Graph:
    nodes: list[GraphNode]
    edges: list[tuple[str, str]] = field(default_factory=list)


def graph_svg(graph: Graph, *, title: str) -> str:
    """The graph laid out and drawn; nodes come dependencies first."""
    layout = layered_layout(
        [(n.id, max(n.label, n.sublabel, key=len)) for n in graph.nodes], graph.edges
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" '
        f'width="{layout.width:.0f}" height="{layout.height:.0f}" '
        f'viewBox="0 0 {layout.width:.0f} {layout.height:.0f}">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L8,4L0,8z"/></marker></defs>',
        '<g class="edges">',
    ]
    parts += [_edge(layout, source, target) for source, target in graph.edges]
    parts.append("</g>")
    parts += [_node(layout, node) for node in graph.nodes]
    parts.append("</svg>")
    return "".join(parts)


def _edge(layout: Layout, source: str, target: str) -> str:
    a, b = layout.boxes.get(source), layout.boxes.get(target)
    if a is None or b is None:
        return ""
    y1, y2 = a.y + a.height / 2, b.y - b.height / 2
    middle = (y1 + y2) / 2
    curve = f"C{a.x:.0f},{middle:.0f} {b.x:.0f},{middle:.0f} {b.x:.0f},{y2:.0f}"
    return f'<path d="M{a.x:.0f},{y1:.0f}{curve}"/>'


def _node(layout: Layout, node: GraphNode) -> str:
    box = layout.boxes[node.id]
    left, top = box.x - box.width / 2, box.y - box.height / 2
    limit = int((box.width - 10) / CHAR_WIDTH)
    label = _clip(node.label, limit)
    lines = (
        f'<text x="{box.x:.0f}" y="{box.y - 3:.0f}">{escape(label)}</text>'
        f'<text class="sub" x="{box.x:.0f}" y="{box.y + 11:.0f}">'
        f"{escape(_clip(node.sublabel, limit))}</text>"
        if node.sublabel
        else f'<text x="{box.x:.0f}" y="{box.y + 4:.0f}">{escape(label)}</text>'
    )
    # A tooltip only where the label is clipped, and no tabindex: on 2,000 boxes each cost
    # the browser ~100 ms (measured in Chromium).
    tooltip = f"<title>{escape(node.label)}</title>" if label != node.label else ""
    return (
        f'<g class="node {escape(node.kind)} {escape(node.state)}" data-id="{escape(node.id)}">'
        f"{tooltip}"
        f'<rect x="{left:.0f}" y="{top:.0f}" width="{box.width:.0f}" '
        f'height="{box.height:.0f}" rx="6"/>{lines}</g>'
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"
