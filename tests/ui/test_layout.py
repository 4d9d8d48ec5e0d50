"""The server-side layered layout: dependencies above their users, no overlaps, linear time."""

from __future__ import annotations

import itertools
import time

from merkl.ui.layout import NODE_GAP, layered_layout
from merkl.ui.svg import Graph, GraphNode, graph_svg


def chain_and_fan(n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """n leaves folded pairwise into one root (a 2n-node tree), ids in dependency order."""
    nodes = [(f"leaf{i}", f"leaf {i}") for i in range(n)]
    edges: list[tuple[str, str]] = []
    level = [node_id for node_id, _ in nodes]
    k = 0
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            node_id = f"join{k}"
            k += 1
            nodes.append((node_id, "join"))
            edges += [(level[i], node_id), (level[i + 1], node_id)]
            nxt.append(node_id)
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return nodes, edges


def test_parents_are_above_and_boxes_do_not_overlap() -> None:
    nodes, edges = chain_and_fan(37)
    layout = layered_layout(nodes, edges)
    for source, target in edges:
        assert layout.boxes[source].y < layout.boxes[target].y
    rows: dict[float, list[tuple[float, float]]] = {}
    for box in layout.boxes.values():
        rows.setdefault(box.y, []).append((box.x - box.width / 2, box.x + box.width / 2))
        assert box.x - box.width / 2 >= 0
        assert box.x + box.width / 2 <= layout.width
    for spans in rows.values():
        spans.sort()
        for (_, right), (left, _) in itertools.pairwise(spans):
            assert left - right >= NODE_GAP - 0.01


def test_out_of_order_nodes_and_a_cycle_do_not_hang() -> None:
    nodes = [("b", "b"), ("a", "a"), ("c", "c")]
    layout = layered_layout(nodes, [("a", "b"), ("b", "c")])
    assert layout.boxes["a"].y < layout.boxes["b"].y < layout.boxes["c"].y
    cyclic = layered_layout(nodes, [("a", "b"), ("b", "c"), ("c", "a")])  # one edge ignored
    assert len({box.y for box in cyclic.boxes.values()}) == 3


def drawing_cpu_seconds(leaves: int) -> tuple[int, float]:
    nodes, edges = chain_and_fan(leaves)
    graph = Graph([GraphNode(i, label, "task") for i, label in nodes], edges)
    start = time.process_time()  # CPU time: other processes on the machine do not count
    svg = graph_svg(graph, title="big")
    elapsed = time.process_time() - start
    assert svg.count('class="node ') == len(nodes)
    return len(nodes), elapsed


def test_ten_thousand_nodes_are_drawn_in_linear_time() -> None:
    # The best of three runs of each size: one run of a few ms is at the mercy of a collection
    # or a cold cache on a shared machine, and would make the ratio noise.
    small_nodes, small = min((drawing_cpu_seconds(500) for _ in range(3)), key=lambda r: r[1])
    big_nodes, big = min((drawing_cpu_seconds(5000) for _ in range(3)), key=lambda r: r[1])
    assert big_nodes >= 9999
    assert big < 3.0, f"{big:.2f}s of CPU for {big_nodes} nodes"
    # 10x the nodes: ~10x the time when linear, ~100x when quadratic.
    assert big / max(small, 1e-3) < 30, (
        f"{small:.3f}s for {small_nodes}, {big:.3f}s for {big_nodes}"
    )


def test_labels_are_escaped_and_clipped() -> None:
    svg = graph_svg(
        Graph([GraphNode("n<1>", "<script>" + "x" * 200, "task", "cached")]), title="t&"
    )
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "…" in svg
    assert "<title>t&amp;</title>" in svg
