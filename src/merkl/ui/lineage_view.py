"""The data behind `/lineage`: the graph the `merkl` catalog source emits.

Tracked files and the outputs they were written from, traced upstream through the run log to
the input files (`model.bin` → output of `train` → output of `load_data` → `data/train.csv`).
The catalog source needs the `[catalog]` extra (pydantic); without it the page says so.
"""

from __future__ import annotations

from typing import Any

from merkl.errors import MerklError
from merkl.repo import Repo
from merkl.ui.svg import Graph, GraphNode

_SCOPE = "ui"
_HASH_CHARS = 8


def lineage_data(repo: Repo) -> dict[str, Any]:
    """{"assets": [...], "warnings": [...]} with each asset's urn, name, kind (file or output),
    type (model or dataset), attributes and upstream urns; or {"error": …}."""
    try:
        from merkl.catalog.plugin import PluginContext
        from merkl.catalog.sources.merkl import MerklConfig, MerklSource
    except ImportError as exc:
        return {
            "assets": [],
            "warnings": [],
            "error": f"the lineage view needs the catalog extra ({exc.name} is missing): "
            f"pip install 'merkl[catalog]'",
        }
    ctx = PluginContext("merkl ui", scope=_SCOPE)
    emitted: list[dict[str, Any]] = []
    try:
        source = MerklSource(MerklConfig(path=str(repo.root)), ctx)
        try:
            source.extract(lambda asset: emitted.append(dict(asset)))
        finally:
            source.close()
    except MerklError as exc:
        return {"assets": [], "warnings": ctx.warnings, "error": str(exc)}
    assets = [_asset(a) for a in emitted]
    return {"assets": _upstream_first(assets), "warnings": ctx.warnings}


def _asset(asset: dict[str, Any]) -> dict[str, Any]:
    kind = asset["urn"].split(":")[3]  # urn:merkl:{scope}:{file|output}:{id}
    data = asset.get("data") or {}
    attributes = data.get("attributes") or {}
    return {
        "urn": asset["urn"],
        "name": asset["name"],
        "kind": kind,
        "type": asset["type"],
        "description": asset.get("description", ""),
        "attributes": attributes,
        "upstreams": [r["urn"] for r in asset["lineage"]["upstreams"]],
    }


def _upstream_first(assets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_urn = {a["urn"]: a for a in assets}
    done: dict[str, dict[str, Any]] = {}
    for start in sorted(by_urn):
        stack = [(start, False)]
        while stack:
            urn, expanded = stack.pop()
            if urn in done or urn not in by_urn:
                continue
            if expanded:
                done[urn] = by_urn[urn]
                continue
            stack.append((urn, True))
            stack += [(u, False) for u in by_urn[urn]["upstreams"] if u not in done]
    return list(done.values())


def lineage_graph(data: dict[str, Any]) -> Graph:
    nodes = []
    for asset in data["assets"]:
        attributes = asset["attributes"]
        digest = str(attributes.get("hash", "")).removeprefix("blake3:")[:_HASH_CHARS]
        if asset["kind"] == "output":
            state = "cached" if attributes.get("cached") else "missing"
            sub = f"{digest} {state}"
        else:
            state = "tracked" if attributes.get("tracked") else "file"
            sub = f"{digest} {asset['type']}"
        label = str(attributes.get("path") or asset["name"])
        nodes.append(GraphNode(asset["urn"], label, asset["kind"], state, sub))
    edges = [(up, a["urn"]) for a in data["assets"] for up in a["upstreams"]]
    return Graph(nodes, edges)
