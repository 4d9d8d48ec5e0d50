"""`merkl show HASH`: where one output came from, recursively, from the run log.

For the output and every output upstream of it: the task, its code hash, when it ran, how
long it took, its size, whether it is still cached, and its inputs: upstream outputs (by the
argument they were passed as), input files (by content hash, with the paths known to hold
that content) and plain argument values (by hash, and by value for small scalars: numbers,
booleans, None and short strings are logged with the run).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from merkl.cache.index import RunRecord
from merkl.errors import PointerFileError, UsageError
from merkl.pointer import POINTER_SUFFIX, pointer_path, read_pointer
from merkl.provenance.history import FileIndex, FileSource, RunLog, argument_sources
from merkl.provenance.text import Row, draw, local_time, short_hash, state_text, to_string
from merkl.repo import Repo

OUTPUT, FILE, UNKNOWN = "output", "file", "unknown"


@dataclass
class InputRef:
    """One parent of an output: an upstream output, an input file, or an unknown hash."""

    hash: str
    kind: str
    argument: str | None  # None when it sat inside an argument (a list of placeholders)


@dataclass
class OutputRecord:
    """What the run log says about one output."""

    out_hash: str
    run: RunRecord | None
    cached: bool
    written_to: list[str]
    inputs: list[InputRef] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)  # plain argument → its hash
    # plain argument → its repr, for small scalars (logged with the run)
    texts: dict[str, str] = field(default_factory=dict)
    label: str = "(no run logged)"


@dataclass
class Provenance:
    root: str
    outputs: dict[str, OutputRecord]
    files: dict[str, list[FileSource]]

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.root,
            "outputs": {h: _record_json(r) for h, r in self.outputs.items()},
            "files": {
                oid: [{"path": s.path, "tracked": s.item is not None} for s in sources]
                for oid, sources in self.files.items()
            },
        }


def show(repo: Repo, ref: str, *, depth: int | None = None) -> Provenance:
    """The provenance of the output `ref` names: a hash, a unique hash prefix, or a file
    written with `write_file(..., track=True)` (or its `.merkl` pointer).

    Raises:
        UsageError: `ref` names no output, or several.
    """
    if depth is not None and depth < 0:
        raise UsageError(f"--depth must be 0 or more, got {depth!r}", exit_code=2)
    log = RunLog(repo)
    files = FileIndex(repo)
    root = _output_of_file(ref) or log.resolve(ref)
    outputs: dict[str, OutputRecord] = {}
    file_sources: dict[str, list[FileSource]] = {}
    queue: deque[tuple[str, int]] = deque([(root, 0)])
    while queue:
        out_hash, level = queue.popleft()
        if out_hash in outputs:
            continue
        record = _record(log, files, out_hash)
        outputs[out_hash] = record
        for item in record.inputs:
            if item.kind == FILE:
                file_sources[item.hash] = files.find(item.hash)
            elif item.kind == OUTPUT and (depth is None or level < depth):
                queue.append((item.hash, level + 1))
    return Provenance(root, outputs, file_sources)


def _output_of_file(ref: str) -> str | None:
    """The output hash recorded beside a written file, when `ref` is such a file's path."""
    path = Path(ref)
    pointer_file = path if path.name.endswith(POINTER_SUFFIX) else pointer_path(path)
    if not pointer_file.is_file():
        return None
    try:
        pointer = read_pointer(pointer_file)
    except PointerFileError as exc:
        raise UsageError(str(exc)) from None
    if pointer.output is None:
        raise UsageError(
            f"{ref!r} is a tracked file, not a pipeline output (its pointer records no "
            f"output hash); `merkl show` takes an output hash, or a file written with "
            f"write_file(..., track=True)"
        )
    return pointer.output


def _record(log: RunLog, files: FileIndex, out_hash: str) -> OutputRecord:
    run = log.find_run(out_hash)
    record = OutputRecord(out_hash, run, log.is_cached(out_hash), files.written(out_hash))
    if run is None:
        return record
    record.label = log.label(run)
    by_parent: dict[str, list[str]] = {}
    for name, parent in argument_sources(run).items():
        by_parent.setdefault(parent, []).append(name)
    lazy_names = {name for names in by_parent.values() for name in names}
    record.values = {n: h for n, h in sorted(run.arg_hashes.items()) if n not in lazy_names}
    logged = log.repo.index.arg_values(record.values.values())
    record.texts = {n: logged[h] for n, h in record.values.items() if h in logged}
    for parent in run.parents:
        kind = _kind(log, files, parent)
        names: list[str | None] = [*by_parent.get(parent, [])] or [None]
        record.inputs.extend(InputRef(parent, kind, name) for name in names)
    record.inputs.sort(key=lambda i: (i.argument is None, i.argument or "", i.hash))
    return record


def _kind(log: RunLog, files: FileIndex, digest: str) -> str:
    if log.find_run(digest) is not None:
        return OUTPUT
    if files.find(digest):
        return FILE
    if log.repo.index.find_output(digest) is not None:
        return OUTPUT  # cached (pulled from a remote) but computed elsewhere
    return UNKNOWN


def _record_json(record: OutputRecord) -> dict[str, Any]:
    run = record.run
    data: dict[str, Any] = {
        "cached": record.cached,
        "written_to": record.written_to,
        "inputs": [
            {"argument": i.argument, "kind": i.kind, "hash": i.hash} for i in record.inputs
        ],
        "values": record.values,
        "value_texts": record.texts,
    }
    if run is not None:
        data.update(
            task=run.task,
            module=run.module,
            index=run.out_index,
            code_hash=run.code_hash,
            args_hash=run.args_hash,
            time=_iso(run.time),
            duration=run.duration,
            size=run.size,
        )
    return data


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat().replace("+00:00", "Z")


def render_show(provenance: Provenance, *, color: bool = False) -> str:
    """The provenance as a header about the output and a tree of what it was computed from."""
    record = provenance.outputs[provenance.root]
    lines = [Text(f"output {record.out_hash}", style="bold"), *_header(record)]
    tree = draw(Text("inputs"), _input_rows(provenance, record.out_hash))
    if len(tree) == 1:
        tree = [Text("inputs: none logged")]
    return to_string(lines + tree, color=color)


def _header(record: OutputRecord) -> list[Text]:
    run = record.run
    rows: list[tuple[str, Text]] = []
    if run is None:
        rows.append(("task", Text("no run logged (pulled from a remote, or computed elsewhere)")))
    else:
        rows += [
            ("task", Text(f"{record.label}, output {run.out_index}")),
            ("code hash", Text(run.code_hash)),
            ("computed", Text(f"{local_time(run.time)} in {run.duration:.3f}s, {run.size} bytes")),
        ]
    rows.append(
        (
            "cached",
            Text("yes", style="green")
            if record.cached
            else Text("no (removed since, or never stored)", style="red"),
        )
    )
    if record.written_to:
        rows.append(("written to", Text(", ".join(record.written_to))))
    return [Text(f"  {name:<11}") + value for name, value in rows]


def _input_rows(provenance: Provenance, root: str) -> list[Row]:
    """Rows of what `root` was computed from: plain values, then inputs (each group by name).

    Iterative and depth-first in drawing order, so an output met again is marked
    `(see above)` exactly where it was already printed in full.
    """
    top = Row(Text())
    expanded: set[str] = set()
    stack: list[tuple[str, Row]] = [(root, top)]
    while stack:
        out_hash, row = stack.pop()
        if out_hash in expanded:
            row.text.append("  (see above)", style="dim")
            continue
        expanded.add(out_hash)
        record = provenance.outputs[out_hash]
        row.children = [
            Row(Text(f"{name}: {_value_text(record, name)}  ") + short_hash(digest))
            for name, digest in sorted(record.values.items())
        ]
        inputs = sorted(record.inputs, key=lambda i: (i.argument is None, i.argument or ""))
        pending: list[tuple[str, Row]] = []
        for item in inputs:
            name = item.argument or "(inside an argument)"
            child = Row(Text(f"{name}: ") + _describe_input(provenance, item))
            row.children.append(child)
            if item.kind == OUTPUT and item.hash in provenance.outputs:
                pending.append((item.hash, child))
        stack.extend(reversed(pending))
    return top.children


def _value_text(record: OutputRecord, name: str) -> str:
    text = record.texts.get(name)
    return f"value {text}" if text is not None else "value"


def _describe_input(provenance: Provenance, item: InputRef) -> Text:
    if item.kind == FILE:
        sources = provenance.files.get(item.hash, [])
        tracked = any(s.item is not None for s in sources)
        paths = ", ".join(s.path for s in sources)
        return (
            Text(f"file {paths}  ") + short_hash(item.hash) + Text("  tracked" if tracked else "")
        )
    if item.kind == UNKNOWN:
        return (
            Text("unknown input  ")
            + short_hash(item.hash)
            + Text("  (neither a logged output nor a known file)", style="dim")
        )
    record = provenance.outputs.get(item.hash)
    if record is None:  # beyond --depth
        return Text("output  ") + short_hash(item.hash) + Text("  …", style="dim")
    return (
        Text(f"{record.label}  ")
        + short_hash(item.hash)
        + Text("  ")
        + state_text("cached" if record.cached else "missing")
    )
