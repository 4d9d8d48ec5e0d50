"""A pipeline's DAG as plain nodes and edges, each output marked cached, missing or unknown.

Node kinds:
- `task`: one call of a task, with its code hash and its plain (non-lazy) argument values;
- `output`: one output of a call, with its Merkle hash and cache state;
- `file`: an input file (`merkl.path` / `merkl.read_file`), with its content hash;
- `stored`: an output loaded back from a pointer file (`merkl.load`);
- `argument`: a pipeline argument left out under `--fill-missing`;
- `write`: a `write_file` the pipeline queued (planned, never written by `merkl dag`);
- `input`: any other lazy value.

Edges go from what is used to what uses it, labelled with the argument name. Nodes come in
dependency order, so a renderer can walk them once.
"""

from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merkl.cache import Cache, CachePolicy
from merkl.cache.index import OutputEntry
from merkl.files import FileOutput, FileRef, StoredOutput
from merkl.graph import find_cached_many, iter_nodes
from merkl.placeholder import Lazy, MissingArgument, Placeholder
from merkl.pointer import pointer_path
from merkl.provenance.pipeline import Pipeline
from merkl.repo import Repo
from merkl.tasks import Call, iter_lazy

CACHED = "cached"
MISSING = "missing"
UNKNOWN = "unknown"  # the hash depends on a pipeline argument that was not given

_short_repr = reprlib.Repr()
_short_repr.maxstring = 40
_short_repr.maxother = 40
_short_repr.maxlist = _short_repr.maxtuple = _short_repr.maxdict = _short_repr.maxset = 6


@dataclass
class DagNode:
    """One node; `state` is cached / missing / unknown for outputs, a short word otherwise."""

    id: str
    kind: str
    label: str
    hash: str | None
    state: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class DagEdge:
    source: str
    target: str
    label: str = ""


@dataclass
class Dag:
    """The DAG of one pipeline call: nodes in dependency order, edges, and the root ids."""

    target: str
    nodes: list[DagNode]
    edges: list[DagEdge]
    roots: list[str]  # the pipeline's outputs, then its writes

    def node(self, node_id: str) -> DagNode:
        return self._by_id[node_id]

    def inputs(self, node_id: str) -> list[DagEdge]:
        """Edges into `node_id`, in argument order."""
        return self._inputs.get(node_id, [])

    def __post_init__(self) -> None:
        self._by_id = {n.id: n for n in self.nodes}
        self._inputs: dict[str, list[DagEdge]] = {}
        for edge in self.edges:
            self._inputs.setdefault(edge.target, []).append(edge)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "roots": self.roots,
            "nodes": [_node_json(n) for n in self.nodes],
            "edges": [{"from": e.source, "to": e.target, "label": e.label} for e in self.edges],
        }


def _node_json(node: DagNode) -> dict[str, Any]:
    # Not dataclasses.asdict: its deep copy was most of `merkl ui`'s time on a 10,000-node DAG.
    data = {
        "id": node.id,
        "kind": node.kind,
        "label": node.label,
        "hash": node.hash,
        "state": node.state,
    }
    return {**data, **node.detail}


def short_repr(value: Any) -> str:
    """A one-line repr of an argument value, at most about 40 characters."""
    return _short_repr.repr(value).replace("\n", " ")


def display_path(repo: Repo, path: Path) -> str:
    """`path` relative to the repository root (POSIX form), or as given when outside it."""
    try:
        return Path(os.path.abspath(path)).relative_to(repo.root).as_posix()
    except ValueError:
        return str(path)


def output_label(placeholder: Placeholder) -> str:
    """`module.task`, with `[i]` when the call has several outputs."""
    suffix = f"[{placeholder.index}]" if placeholder.call.n_outs > 1 else ""
    return f"{placeholder.task.module}.{placeholder.task.name}{suffix}"


def output_state(placeholder: Placeholder, cache: Cache) -> str:
    """cached, missing or unknown — decided exactly as `merkl run --dry` decides it."""
    if placeholder.hash is None:
        return UNKNOWN
    return CACHED if placeholder.find_cached(cache) is not None else MISSING


def build_dag(pipeline: Pipeline) -> Dag:
    """Nodes and edges of everything the pipeline's outputs and writes depend on."""
    builder = _Builder(pipeline.repo)
    roots = [*pipeline.roots, *(w.source for w in pipeline.writes)]
    nodes = list(iter_nodes(roots))
    builder.cached = find_cached_many(nodes, pipeline.repo.cache)  # batched, not per node
    for lazy in nodes:
        builder.add(lazy)
    root_ids = [builder.ids[r] for r in pipeline.roots]
    root_ids += [builder.add_write(w) for w in pipeline.writes]
    return Dag(pipeline.target, builder.nodes, builder.edges, list(dict.fromkeys(root_ids)))


class _Builder:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.nodes: list[DagNode] = []
        self.edges: list[DagEdge] = []
        self.ids: dict[Lazy, str] = {}
        self._calls: dict[Call, str] = {}
        self._counts: dict[str, int] = {}
        self.cached: dict[Placeholder, OutputEntry] | None = None  # known states, when batched

    def _new(self, kind: str, label: str, digest: str | None, state: str, **detail: Any) -> str:
        number = self._counts.get(kind, 0)
        self._counts[kind] = number + 1
        node_id = f"{kind}{number}"
        self.nodes.append(DagNode(node_id, kind, label, digest, state, detail))
        return node_id

    def _state(self, placeholder: Placeholder) -> str:
        if self.cached is None or placeholder.hash is None:
            return output_state(placeholder, self.repo.cache)
        return CACHED if placeholder in self.cached else MISSING

    def add(self, lazy: Lazy) -> None:
        if isinstance(lazy, Placeholder):
            task_id = self._task(lazy.call)
            node_id = self._new(
                "output",
                output_label(lazy),
                lazy.hash,
                self._state(lazy),
                task=lazy.task.name,
                module=lazy.task.module,
                index=lazy.index,
            )
            self.edges.append(DagEdge(task_id, node_id))
        elif isinstance(lazy, FileRef):
            rel = display_path(self.repo, lazy.path)
            tracked = pointer_path(lazy.path).is_file()
            node_id = self._new(
                "file",
                rel,
                lazy.hash,
                "tracked" if tracked else "file",
                path=rel,
                tracked=tracked,
            )
        elif isinstance(lazy, StoredOutput):
            node_id = self._new(
                "stored",
                display_path(self.repo, lazy.pointer_file),
                lazy.hash,
                CACHED if self._has_stored(lazy) else MISSING,
                path=lazy.pointer.path,
            )
        elif isinstance(lazy, MissingArgument):
            node_id = self._new("argument", lazy.name, None, "missing-argument")
        else:
            node_id = self._new("input", short_repr(lazy), lazy.hash, "input")
        self.ids[lazy] = node_id

    def _task(self, call: Call) -> str:
        task_id = self._calls.get(call)
        if task_id is not None:
            return task_id
        task = call.task
        arguments = call.arguments  # built on each use: once per call, not three times
        plain = {
            name: short_repr(value) for name, value in arguments.items() if not iter_lazy(value)
        }
        task_id = self._new(
            "task",
            f"{task.module}.{task.name}",
            None,
            "task",
            code_hash=task.code_hash,
            parameters=list(arguments),
            arguments=plain,
            outputs=call.n_outs,
        )
        self._calls[call] = task_id
        for name, value in arguments.items():
            for lazy in dict.fromkeys(iter_lazy(value)):
                self.edges.append(DagEdge(self.ids[lazy], task_id, name))
        return task_id

    def add_write(self, write: FileOutput) -> str:
        rel = display_path(self.repo, write.path)
        node_id = self._new("write", rel, write.hash, "planned", path=rel, track=write.track)
        self.edges.append(DagEdge(self.ids[write.source], node_id))
        return node_id

    def _has_stored(self, stored: StoredOutput) -> bool:
        # What `StoredOutput.resolve` can load without running anything.
        if self.repo.cache.find(stored.hash, CachePolicy.EVERYWHERE) is not None:
            return True
        return self.repo.store.has(stored.pointer.oid)
