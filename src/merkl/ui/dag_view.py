"""The data behind `/dag/<module.function>`: `merkl dag`'s model, with run times and `why`.

The pipeline is called as `merkl dag --fill-missing` calls it (nothing runs), or taken from a
request memo (`merkl.request_memo`) while its code, arguments and input files are unchanged, so
a page loaded again neither calls the pipeline nor hashes its DAG again; each output node
gets its newest run from the run log (when, how long, size) and, when it is not cached, `merkl
why`'s reasons. A DAG larger than `FULL_LIMIT` nodes is drawn collapsed: one box per task
function (its calls and outputs counted by state), one per kind of file when there are many.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from merkl.cache.index import RunRecord
from merkl.errors import UsageError
from merkl.ops.why import explain_pipeline
from merkl.provenance.history import RunLog
from merkl.provenance.model import CACHED, MISSING, UNKNOWN, Dag, build_dag
from merkl.provenance.pipeline import Pipeline, call_pipeline
from merkl.repo import Repo
from merkl.request_memo import RequestMemo, recording
from merkl.targets import import_target
from merkl.tasks import Task
from merkl.ui.discover import find_targets
from merkl.ui.svg import Graph, GraphNode

FULL_LIMIT = 1500  # nodes drawn one by one; above it the collapsed view is the default
_GROUP_KINDS_ABOVE = 20  # more files (or writes…) than this are drawn as one box per kind
_MEMBERS_SHOWN = 50
_HASH_CHARS = 8
_TRUE = ("1", "true", "yes", "on")
_MEMO_ENTRIES = 16  # built pipelines kept (a 10,000-task DAG holds a few MB)
VIEW_PARAMETER = "_view"  # ?_view=full or ?_view=collapsed (leading _: not a pipeline argument)


@dataclass
class DagPage:
    target: str
    args: list[str]
    dag: Dag
    graph: Graph
    collapsed: bool
    data: dict[str, Any]  # the JSON twin


class DagBuilder:
    """Builds DAG pages for one repository, one at a time (a pipeline call sets process-wide
    state: the session, imported modules), re-importing pipeline modules edited since."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._mtimes: dict[str, int] = {}
        self._memo = RequestMemo(max_entries=_MEMO_ENTRIES)

    def page(self, target: str, query: list[tuple[str, str]], *, details: bool = True) -> DagPage:
        """The DAG of `target` called with the arguments in `query` (`name=value` pairs);
        with `details`, each output's newest run and `why` (the JSON twin's, not the drawing's:
        the HTML page fetches them on the first click).

        Raises:
            UsageError: a bad target, unknown argument or bad value.
        """
        view = dict(query).get(VIEW_PARAMETER, "")
        if view not in ("", "full", "collapsed"):
            raise UsageError(f"{VIEW_PARAMETER}={view!r}: expected full or collapsed")
        if target not in find_targets(self.root):
            # Never import or call anything else: a GET must not run `os.system`, nor a
            # function of the repository that is not a pipeline.
            raise UsageError(
                f"{target!r} is not a pipeline or task of this repository (a function in one "
                f"of its .py files that calls @task functions); the overview lists them"
            )
        with self._lock:
            self._forget_edited_modules()
            args = cli_args(target, [(k, v) for k, v in query if k != VIEW_PARAMETER], self.root)
            pipeline = self._pipeline(target, args)
            dag = build_dag(pipeline)
            why = {}
            for entry in explain_pipeline(pipeline) if details else ():
                for key in entry.out_hashes or [entry.label]:
                    why[key] = entry.to_json()
        collapsed = view == "collapsed" or (view == "" and len(dag.nodes) > FULL_LIMIT)
        hashes = {n.hash for n in dag.nodes if n.hash} if details else set()
        runs = _newest_runs(RunLog(pipeline.repo), hashes) if hashes else {}
        data = dag.to_json()
        data["args"] = args
        data["view"] = "collapsed" if collapsed else "full"
        counts = {CACHED: 0, MISSING: 0, UNKNOWN: 0}
        for node, row in zip(dag.nodes, data["nodes"], strict=True):
            if node.kind != "output":
                continue
            counts[node.state] = counts.get(node.state, 0) + 1
            run = runs.get(node.hash or "")
            if run is not None:
                row["run"] = {"time": run.time, "duration": run.duration, "size": run.size}
            reasons = why.get(node.hash or "") or why.get(node.label)
            if reasons is not None and node.state != CACHED:
                row["why"] = reasons
        data["counts"] = counts
        graph = _collapsed_graph(dag, data) if collapsed else _full_graph(dag)
        return DagPage(target, args, dag, graph, collapsed, data)

    def _pipeline(self, target: str, args: list[str]) -> Pipeline:
        """`target` called with `args`: from the memo while the pipeline's and its tasks' code
        and the files read to build it are unchanged, else built (and remembered)."""
        key = (target, tuple(args))
        function = import_target(target)
        pipeline: Pipeline | None = self._memo.get(key, function)
        if pipeline is not None:  # its DAG, seen by the repository as it is now
            return dataclasses.replace(pipeline, repo=Repo.find())
        with recording() as reads:
            pipeline = call_pipeline(target, args, fill_missing=True, command="merkl ui")
        roots = [*pipeline.roots, *(w.source for w in pipeline.writes)]
        self._memo.put(key, function, reads, roots, pipeline)
        return pipeline

    def _forget_edited_modules(self) -> None:
        """Drop modules of this repository whose file changed since they were imported, so
        the next import reads the edit (and code hashes follow it, as `merkl run`'s would)."""
        root = str(self.root) + os.sep
        stale = []
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None) or ""
            if not path.startswith(root):
                continue
            try:
                mtime = os.stat(path).st_mtime_ns
            except OSError:
                continue
            if self._mtimes.setdefault(path, mtime) != mtime:
                stale.append(name)
                self._mtimes[path] = mtime
        for name in stale:
            sys.modules.pop(name, None)
        if stale:
            importlib.invalidate_caches()


def parameters_of(target: str, root: Path | None = None) -> dict[str, inspect.Parameter]:
    """The parameters of the pipeline function `target` (imported if need be).

    Raises:
        UsageError: with `root`, when the module imported under that name is not a file under
            `root` (a repository file named like an installed module loses to it).
    """
    function = import_target(target)
    module = sys.modules.get(target.rpartition(".")[0])
    path = os.path.abspath(getattr(module, "__file__", None) or "")
    if root is not None and not path.startswith(str(root) + os.sep):
        raise UsageError(
            f"{target}: module {target.rpartition('.')[0]!r} is imported from {path}, not from "
            f"this repository; rename the repository's module"
        )
    inner = function.fn if isinstance(function, Task) else function
    return dict(inspect.signature(inner).parameters)


def cli_args(target: str, query: list[tuple[str, str]], root: Path | None = None) -> list[str]:
    """`merkl dag`'s command-line arguments for `?name=value…`: positional parameters in
    order, keyword-only ones as `--name value` (flags as `--name` when true)."""
    parameters = parameters_of(target, root)
    given = dict(query)
    unknown = sorted(set(given) - set(parameters))
    if unknown:
        raise UsageError(
            f"{target} has no parameter {unknown[0]!r}; its parameters: "
            f"{', '.join(parameters) or 'none'}"
        )
    args: list[str] = []
    positional: list[tuple[str, str | None]] = []
    for name, parameter in parameters.items():
        value = given.get(name)
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional.append((name, value))
        elif parameter.kind is parameter.KEYWORD_ONLY and value is not None:
            option = "--" + name.replace("_", "-")
            if isinstance(parameter.default, bool):
                args += [option] if value.lower() in _TRUE else []
            else:
                args += [option, value]
    while positional and positional[-1][1] is None:
        positional.pop()  # trailing ones left out: defaults, or filled in as missing
    for name, value in positional:
        if value is None:
            raise UsageError(
                f"{target}: give {name!r} too, or leave out the later positional arguments"
            )
        args.append(value)
    return args


def _newest_runs(log: RunLog, hashes: set[str]) -> dict[str, RunRecord]:
    found: dict[str, RunRecord] = {}
    for run in log.all_runs():  # newest first
        if run.out_hash in hashes:
            found.setdefault(run.out_hash, run)
    return found


def _sublabel(node_hash: str | None, state: str) -> str:
    return f"{(node_hash or '?' * _HASH_CHARS)[:_HASH_CHARS]} {state}"


def _full_graph(dag: Dag) -> Graph:
    nodes = []
    for node in dag.nodes:
        if node.kind == "task":
            sub = "code " + node.detail["code_hash"][:_HASH_CHARS]
        elif node.kind == "argument":
            sub = "missing argument"
        else:
            sub = _sublabel(node.hash, node.state)
        nodes.append(GraphNode(node.id, node.label, node.kind, node.state, sub))
    return Graph(nodes, [(e.source, e.target) for e in dag.edges])


def _collapsed_graph(dag: Dag, data: dict[str, Any]) -> Graph:
    """One box per task function (its calls and their outputs); files, stored outputs and
    writes one box each, or one per kind when there are many of that kind."""
    per_kind: dict[str, int] = {}
    for node in dag.nodes:
        per_kind[node.kind] = per_kind.get(node.kind, 0) + 1
    owner: dict[str, str] = {}  # output id -> its task's id
    for edge in dag.edges:
        if dag.node(edge.target).kind == "output":
            owner[edge.target] = edge.source
    group_of: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    for node in dag.nodes:
        if node.kind in ("task", "output"):
            task = dag.node(owner[node.id]) if node.kind == "output" else node
            key, label, kind = f"g:task:{task.label}", task.label, "task"
        elif per_kind[node.kind] > _GROUP_KINDS_ABOVE:
            key, label, kind = f"g:{node.kind}", f"{per_kind[node.kind]} {node.kind}s", node.kind
        else:
            key, label, kind = f"g:{node.kind}:{node.id}", node.label, node.kind
        group_of[node.id] = key
        group = groups.setdefault(
            key, {"id": key, "label": label, "kind": kind, "members": [], "states": {}}
        )
        if node.kind == "task":
            group["calls"] = group.get("calls", 0) + 1
        else:
            group["states"][node.state] = group["states"].get(node.state, 0) + 1
        if len(group["members"]) < _MEMBERS_SHOWN:
            group["members"].append(node.id)
        group["size"] = group.get("size", 0) + 1
    nodes = []
    for group in groups.values():
        states = group["states"]
        state = next((s for s in (MISSING, UNKNOWN) if states.get(s)), CACHED)
        if group["kind"] != "task":
            state = next(iter(states), "") if len(states) == 1 else state
        counts = " · ".join(f"{n} {s}" for s, n in sorted(states.items()))
        calls = group.get("calls", 0)
        sub = f"{calls} call{'s' * (calls != 1)} · {counts}" if group["kind"] == "task" else counts
        nodes.append(GraphNode(group["id"], group["label"], group["kind"], state, sub))
    edges = dict.fromkeys(
        (group_of[e.source], group_of[e.target])
        for e in dag.edges
        if group_of[e.source] != group_of[e.target]
    )
    data["groups"] = list(groups.values())
    return Graph(nodes, list(edges))
